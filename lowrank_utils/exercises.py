"""Student notebooks from instructor notebooks: every fenced solution becomes a stub.

A solution sits inside a code cell between a ``### BEGIN SOLUTION`` line and a ``### END SOLUTION`` line. The
generator replaces that region with ``raise NotImplementedError(...)`` at the same indentation, tags the cell
``raises-exception`` (so the unfinished notebook still runs end to end in Jupyter Book and nbval), clears every
output, and points the Colab badge at the student copy. Command line::

    python -m lowrank_utils.exercises book student          # write student/ from book/
    python -m lowrank_utils.exercises book student --check  # exit 1 if student/ is out of date
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

__all__ = ["BEGIN", "END", "strip_solutions", "student_notebook", "generate", "stale_students"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
_EXERCISE_HEADING = re.compile(r"^#+\s*(Exercise\s+[\w.]+)", re.MULTILINE)


def strip_solutions(source: str, label: str = "this exercise", where: str = "cell") -> tuple[str, int]:
    """Replace each fenced solution in ``source`` by a stub; return the new source and the number replaced."""
    out: list[str] = []
    inside = False
    indent = ""
    count = 0
    for lineno, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"{where}, line {lineno}: '{BEGIN}' opened twice; close the first with '{END}'.")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# YOUR CODE HERE")
            out.append(f'{indent}raise NotImplementedError("{label}: replace this line with your solution")')
            count += 1
        elif stripped == END:
            if not inside:
                raise ValueError(f"{where}, line {lineno}: '{END}' without a matching '{BEGIN}'.")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: '{BEGIN}' is never closed; add a '{END}' line after the solution.")
    return "\n".join(out), count


def _badge_to_student(source: str, book_dir: str, student_dir: str) -> str:
    return source.replace(f"/blob/main/{book_dir}/", f"/blob/main/{student_dir}/")


def student_notebook(nb: nbformat.NotebookNode, *, book_dir: str = "book", student_dir: str = "student",
                     name: str = "notebook") -> nbformat.NotebookNode:
    """Return the student version of an instructor notebook (the input is left untouched)."""
    nb = copy.deepcopy(nb)
    label = "this exercise"
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            heading = _EXERCISE_HEADING.search(cell.source)
            if heading:
                label = heading.group(1)
            cell.source = _badge_to_student(cell.source, book_dir, student_dir)
            continue
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
        source, n = strip_solutions(cell.source, label, where=f"{name}, cell {index}")
        if n:
            cell.source = source
            drop = ("hide-input", "remove-input", "nbval-check-output")  # students see the cell; no stored output
            tags = [t for t in cell.metadata.get("tags", []) if t not in drop]
            cell.metadata["tags"] = tags + ["raises-exception"]
    nb.metadata.pop("widgets", None)
    return nb


def generate(book: Path, student: Path) -> list[Path]:
    """Write a student copy of every notebook in ``book`` into ``student``; return the paths written."""
    book, student = Path(book), Path(student)
    notebooks = sorted(book.glob("*.ipynb"))
    if not notebooks:
        raise ValueError(f"no notebooks found in {book}; pass the folder that holds the instructor chapters.")
    student.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        out = student / path.name
        nbformat.write(student_notebook(nb, book_dir=book.name, student_dir=student.name, name=path.name), out)
        written.append(out)
    return written


def stale_students(book: Path, student: Path) -> list[str]:
    """Names of student notebooks that are missing or differ from what the generator would write now."""
    book, student = Path(book), Path(student)
    stale = []
    for path in sorted(book.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        expected = nbformat.writes(student_notebook(nb, book_dir=book.name, student_dir=student.name, name=path.name))
        target = student / path.name
        if not target.exists() or target.read_text().rstrip("\n") != expected.rstrip("\n"):
            stale.append(path.name)
    extra = {p.name for p in student.glob("*.ipynb")} - {p.name for p in book.glob("*.ipynb")}
    return stale + sorted(extra)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Write student notebooks (solutions replaced by stubs).")
    parser.add_argument("book", type=Path, nargs="?", default=Path("book"))
    parser.add_argument("student", type=Path, nargs="?", default=Path("student"))
    parser.add_argument("--check", action="store_true", help="only report whether student/ is up to date")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_students(args.book, args.student)
        if stale:
            print(f"{args.student}/ is out of date for: {', '.join(stale)}. Run `make student`.")
            return 1
        print(f"{args.student}/ is up to date.")
        return 0
    for path in generate(args.book, args.student):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
