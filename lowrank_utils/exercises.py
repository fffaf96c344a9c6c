"""Student notebooks and nbgrader assignments from the instructor notebooks.

The instructor notebooks in ``book/`` mark their exercises with four conventions, all of them nbgrader's own:

* a **solution cell** (code) holds the reference answer between a ``### BEGIN SOLUTION`` line and a
  ``### END SOLUTION`` line;
* an **autograded test cell** (code) starts with a comment line such as ``# Test (2 points): ...`` and calls a
  checker; a region between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` in it is run by the grader but
  removed from the student copy;
* a **written answer** (markdown) starts with a comment such as ``<!-- Written answer (2 points) ... -->``; the
  instructor note in it sits between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->`` and becomes
  ``YOUR ANSWER HERE`` for the student;
* every cell from an ``### Exercise N.M`` heading up to the next level-2 heading belongs to that exercise.

:func:`annotate` derives nbgrader's cell metadata from these (solution cells, grade cells with their points,
read-only task statements), so that ``nbgrader generate_assignment`` and ``nbgrader autograde`` work on the
notebooks unmodified. :func:`student_notebook` then does what ``generate_assignment`` does (stubs, hidden tests
removed, cells locked, checksums) with one deliberate difference: only the outputs of exercise cells are cleared,
so students keep the figures of the chapter to compare with. Command line::

    python -m lowrank_utils.exercises book student            # annotate book/, write student/
    python -m lowrank_utils.exercises book student --check    # exit 1 if book/ or student/ is out of date
    python -m lowrank_utils.exercises book student --course DIR  # also write an nbgrader course folder
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

__all__ = [
    "BEGIN", "END", "BEGIN_HIDDEN", "END_HIDDEN", "CODE_STUB", "TEXT_STUB", "Exercise",
    "strip_solutions", "strip_hidden_tests", "cell_roles", "annotate", "exercises_of", "student_notebook", "generate",
    "stale_students", "write_course", "NBGRADER_CONFIG",
]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
# nbgrader's default stubs, so that the student copy is exactly what `nbgrader generate_assignment` releases
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
TEXT_STUB = ("YOUR ANSWER HERE",)

_EXERCISE_HEADING = re.compile(r"^#{2,4}\s*Exercise\s+(\d+)\.(\d+)\b", re.MULTILINE)
_SECTION_HEADING = re.compile(r"^##\s+(?!#)", re.MULTILINE)
_POINTS = re.compile(r"\((\d+(?:\.\d+)?) points?\)")
_TEST_LINE = re.compile(r"^#\s*Test\b")
_ANSWER_LINE = re.compile(r"^<!--\s*Written answer\b")
_STUDENT_LINK_LINE = "**Student copy**"
_EXERCISE_TAGS_DROPPED = ("hide-input", "remove-input", "hide-output", "remove-output", "nbval-check-output")

NBGRADER_CONFIG = '''\
# nbgrader configuration for this course folder (written by `python -m lowrank_utils.exercises ... --course`).
import os

c = get_config()  # noqa: F821 (provided by nbgrader)
c.CourseDirectory.course_id = "lowrank-simplicity"
c.Execute.timeout = 600            # seconds per cell; chapters run at the quick scale well below this
c.Execute.interrupt_on_timeout = True
# Failing checkers raise (AssertionError) so that nbgrader scores them as failed. This is the package's default;
# set here too so that an instructor's own LOWRANK_GRADING=0 (self-study mode) cannot leak into grading.
os.environ["LOWRANK_GRADING"] = "1"
os.environ.setdefault("LOWRANK_SCALE", "quick")
os.environ.setdefault("TQDM_DISABLE", "1")
'''


def _replace_regions(source: str, begin: str, end: str, stub: tuple[str, ...], where: str) -> tuple[str, int]:
    """Replace every region from a line containing ``begin`` to a line containing ``end`` by ``stub`` (indented
    like the ``begin`` line); return the new source and the number of regions. Matching is nbgrader's: a line that
    *contains* the delimiter text."""
    begin_key, end_key = begin.lstrip("#! -<").strip(), end.lstrip("#! -<").strip()
    out: list[str] = []
    inside = False
    count = 0
    for lineno, line in enumerate(source.split("\n"), start=1):
        if begin_key in line:
            if inside:
                raise ValueError(f"{where}, line {lineno}: '{begin_key}' opened twice; close the first with "
                                 f"'{end_key}'.")
            inside = True
            count += 1
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in stub)
        elif end_key in line:
            if not inside:
                raise ValueError(f"{where}, line {lineno}: '{end_key}' without a matching '{begin_key}'.")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: '{begin_key}' is never closed; add a '{end_key}' line.")
    return "\n".join(out), count


def strip_solutions(source: str, where: str = "cell", *, markdown: bool = False) -> tuple[str, int]:
    """Replace each fenced solution in ``source`` by nbgrader's stub; return the new source and the number replaced."""
    return _replace_regions(source, BEGIN, END, TEXT_STUB if markdown else CODE_STUB, where)


def strip_hidden_tests(source: str, where: str = "cell") -> tuple[str, int]:
    """Remove each hidden-test region (delimiters included) from ``source``."""
    return _replace_regions(source, BEGIN_HIDDEN, END_HIDDEN, (), where)


@dataclass
class Exercise:
    """One exercise of a chapter: its label ("1.2"), and the grade ids and points of its graded cells."""

    label: str
    title: str
    solutions: list[str]
    tests: dict[str, float]      # autograded test cells: grade_id -> points
    answers: dict[str, float]    # written answers graded by hand: grade_id -> points
    hidden: int                  # number of hidden-test regions

    @property
    def autograded(self) -> bool:
        return bool(self.tests) and not self.answers


def _points(first_line: str, where: str) -> float:
    m = _POINTS.search(first_line)
    if not m:
        raise ValueError(f"{where}: the first line must state the points, as in '(2 points)'; got {first_line!r}.")
    return float(m.group(1))


def cell_roles(nb: nbformat.NotebookNode, name: str = "notebook") -> list[tuple[str | None, str | None, float | None]]:
    """For every cell: (exercise label or None, role or None, points or None). Roles: task, solution, test,
    answer, other (an exercise cell with no nbgrader role)."""
    out: list[tuple[str | None, str | None, float | None]] = []
    current: str | None = None
    for index, cell in enumerate(nb.cells):
        where = f"{name}, cell {index}"
        src = cell.source
        first = src.split("\n", 1)[0].strip()
        if cell.cell_type == "markdown":
            headings = _EXERCISE_HEADING.findall(src)
            if headings:
                if len(headings) > 1:
                    raise ValueError(f"{where}: one exercise heading per markdown cell, found {len(headings)}.")
                if _SECTION_HEADING.search(src):
                    raise ValueError(f"{where}: put the next section's heading in a cell of its own, after the "
                                     "exercise.")
                current = ".".join(headings[0])
                out.append((current, "task", None))
                continue
            if _SECTION_HEADING.search(src):
                current = None
            if BEGIN.lstrip("# ") in src:
                if current is None or not _ANSWER_LINE.match(first):
                    raise ValueError(f"{where}: a written answer must follow an exercise heading and start with "
                                     "'<!-- Written answer (N points) -->'.")
                out.append((current, "answer", _points(first, where)))
                continue
            out.append((current, "other" if current else None, None))
            continue
        if cell.cell_type != "code":
            out.append((current, None, None))
            continue
        if BEGIN.lstrip("# ") in src:
            if current is None:
                raise ValueError(f"{where}: a solution cell must follow an '### Exercise N.M' heading.")
            out.append((current, "solution", None))
        elif _TEST_LINE.match(first):
            if current is None:
                raise ValueError(f"{where}: a test cell must follow an '### Exercise N.M' heading.")
            out.append((current, "test", _points(first, where)))
        else:
            if BEGIN_HIDDEN.lstrip("# ") in src:
                raise ValueError(f"{where}: hidden tests belong in a test cell ('# Test (N points): ...').")
            out.append((current, "other" if current else None, None))
    return out


def annotate(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """Write nbgrader's metadata on the exercise cells of an instructor notebook (in place; also returned).

    Solution cells get ``solution: true``; test cells ``grade: true`` with their points, locked; written answers
    ``solution: true, grade: true`` (graded by hand); task statements are read-only. Every other cell loses any
    nbgrader metadata. Grade ids are ``ex{N}_{M}``, ``ex{N}_{M}_test{i}``, ``ex{N}_{M}_answer``, ``ex{N}_{M}_task``.
    """
    counters: dict[tuple[str, str], int] = {}
    for cell, (label, role, points) in zip(nb.cells, cell_roles(nb, name), strict=True):
        if label is None or role in (None, "other"):
            cell.metadata.pop("nbgrader", None)
            continue
        base = "ex" + label.replace(".", "_")
        k = counters[(label, role)] = counters.get((label, role), 0) + 1
        suffix = {"task": "_task", "solution": "", "test": f"_test{k}", "answer": "_answer"}[role]
        if role in ("solution", "answer", "task") and k > 1:
            suffix += f"_{k}"
        meta = {
            "cell_type": cell.cell_type,
            "grade": role in ("test", "answer"),
            "grade_id": base + suffix,
            "locked": role in ("test", "task"),
            "schema_version": 3,
            "solution": role in ("solution", "answer"),
            "task": False,
        }
        if points is not None:
            meta["points"] = points
        cell.metadata["nbgrader"] = meta
    return nb


def exercises_of(nb: nbformat.NotebookNode, name: str = "notebook") -> list[Exercise]:
    """The exercises of an (annotated or not) instructor notebook, in order."""
    nb = annotate(copy.deepcopy(nb), name)
    found: dict[str, Exercise] = {}
    for cell, (label, role, points) in zip(nb.cells, cell_roles(nb, name), strict=True):
        if label is None or role is None:
            continue
        ex = found.get(label)
        if ex is None:
            title = cell.source.split("\n", 1)[0].split(":", 1)[-1].strip() if role == "task" else ""
            ex = found[label] = Exercise(label, title, [], {}, {}, 0)
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if role == "solution":
            ex.solutions.append(gid)
        elif role == "test":
            assert points is not None, "cell_roles gives every test cell its points"
            ex.tests[gid] = points
            ex.hidden += strip_hidden_tests(cell.source, name)[1]
        elif role == "answer":
            assert points is not None, "cell_roles gives every written answer its points"
            ex.answers[gid] = points
    return list(found.values())


def _checksum(cell: nbformat.NotebookNode) -> str:
    """nbgrader's cell checksum (md5 of the source, type, flags, grade id and points)."""
    meta = cell.metadata["nbgrader"]
    grade, solution = bool(meta.get("grade")), bool(meta.get("solution"))
    locked = False if solution else (True if grade else bool(meta.get("locked")))
    m = hashlib.md5()
    for part in (cell.source, cell.cell_type, str(grade), str(solution), str(locked), meta["grade_id"]):
        m.update(part.encode("utf-8"))
    if grade:
        m.update(str(float(meta["points"])).encode("utf-8"))
    return m.hexdigest()


def _badge_for_student(source: str, book_dir: str, student_dir: str) -> str:
    lines = [line for line in source.split("\n") if not line.startswith(_STUDENT_LINK_LINE)]
    return "\n".join(lines).rstrip("\n").replace(f"/blob/main/{book_dir}/", f"/blob/main/{student_dir}/")


def student_notebook(nb: nbformat.NotebookNode, *, book_dir: str = "book", student_dir: str = "student",
                     name: str = "notebook") -> nbformat.NotebookNode:
    """Return the student version of an instructor notebook (the input is left untouched).

    As nbgrader's release: solution regions become stubs, hidden tests disappear, solution cells are undeletable,
    test cells and task statements read-only, nbgrader checksums are set. Unlike nbgrader's release: exercise cells
    are tagged ``raises-exception`` (the unfinished notebook runs end to end) and only their outputs are cleared.
    """
    nb = annotate(copy.deepcopy(nb), name)
    roles = cell_roles(nb, name)
    for index, (cell, (label, role, _)) in enumerate(zip(nb.cells, roles, strict=True)):
        where = f"{name}, cell {index}"
        if index == 0 and cell.cell_type == "markdown":
            cell.source = _badge_for_student(cell.source, book_dir, student_dir)
        if cell.cell_type == "markdown":
            if role == "answer":
                cell.source = strip_solutions(cell.source, where, markdown=True)[0]
        elif cell.cell_type == "code" and label is not None:
            cell.source = strip_solutions(cell.source, where)[0]
            cell.source = strip_hidden_tests(cell.source, where)[0]
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
            tags = [t for t in cell.metadata.get("tags", []) if t not in _EXERCISE_TAGS_DROPPED]
            cell.metadata["tags"] = [*tags, "raises-exception"]
        if "nbgrader" in cell.metadata:
            meta = cell.metadata["nbgrader"]
            cell.metadata["deletable"] = False
            if not meta["solution"]:
                cell.metadata["editable"] = False
            meta["checksum"] = _checksum(cell)
    nb.metadata.pop("widgets", None)
    return nb


def _write_if_changed(nb: nbformat.NotebookNode, path: Path) -> bool:
    text = nbformat.writes(nb) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def generate(book: Path, student: Path) -> list[Path]:
    """Annotate every notebook in ``book`` (rewritten only where its nbgrader metadata changes) and write its
    student copy into ``student``; return the student paths written."""
    book, student = Path(book), Path(student)
    notebooks = sorted(book.glob("*.ipynb"))
    if not notebooks:
        raise ValueError(f"no notebooks found in {book}; pass the folder that holds the instructor chapters.")
    student.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        annotate(nb, path.name)
        if nbformat.writes(nb) != before:
            _write_if_changed(nb, path)
        out = student / path.name
        _write_if_changed(student_notebook(nb, book_dir=book.name, student_dir=student.name, name=path.name), out)
        written.append(out)
    return written


def stale_students(book: Path, student: Path) -> list[str]:
    """Names of notebooks whose nbgrader metadata in ``book`` is out of date, or whose student copy is missing or
    differs from what the generator would write now."""
    book, student = Path(book), Path(student)
    stale = []
    for path in sorted(book.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        stored = nbformat.writes(nb)
        annotate(nb, path.name)
        expected = nbformat.writes(student_notebook(nb, book_dir=book.name, student_dir=student.name, name=path.name))
        target = student / path.name
        if (nbformat.writes(nb) != stored or not target.exists()
                or target.read_text().rstrip("\n") != expected.rstrip("\n")):
            stale.append(path.name)
    extra = {p.name for p in student.glob("*.ipynb")} - {p.name for p in book.glob("*.ipynb")}
    return stale + sorted(extra)


def write_course(book: Path, course: Path, chapters: list[str] | None = None) -> list[str]:
    """Write an nbgrader course folder: ``nbgrader_config.py`` and ``source/<chapter>/<chapter>.ipynb`` (annotated
    instructor notebooks), one assignment per chapter. Return the assignment names."""
    book, course = Path(book), Path(course)
    names = chapters or [p.stem for p in sorted(book.glob("*.ipynb"))]
    (course / "source").mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(NBGRADER_CONFIG)
    for stem in names:
        src = book / f"{stem}.ipynb"
        if not src.exists():
            examples = sorted(p.stem for p in book.glob("*.ipynb"))[:2]
            raise ValueError(f"{src} does not exist; chapters are named like {examples}.")
        folder = course / "source" / stem
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        nbformat.write(annotate(nbformat.read(src, as_version=4), src.name), folder / src.name)
    return names


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Write student notebooks (solutions replaced by stubs) and, "
                                                 "optionally, an nbgrader course folder.")
    parser.add_argument("book", type=Path, nargs="?", default=Path("book"))
    parser.add_argument("student", type=Path, nargs="?", default=Path("student"))
    parser.add_argument("--check", action="store_true", help="only report whether book/ and student/ are up to date")
    parser.add_argument("--course", type=Path, help="also write an nbgrader course folder here (source/, config)")
    parser.add_argument("--summary", action="store_true", help="print the exercises and points of every chapter")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_students(args.book, args.student)
        if stale:
            print(f"{args.student}/ (or the nbgrader metadata in {args.book}/) is out of date for: {', '.join(stale)}. "
                  "Run `make student`.")
            return 1
        print(f"{args.student}/ is up to date.")
        return 0
    if args.summary:
        for path in sorted(args.book.glob("*.ipynb")):
            for ex in exercises_of(nbformat.read(path, as_version=4), path.name):
                kind = "auto" if ex.autograded else ("by hand" if not ex.tests else "auto + by hand")
                print(f"{path.stem:32s} {ex.label:5s} {kind:14s} auto {sum(ex.tests.values()):g} pts"
                      f" ({ex.hidden} hidden), by hand {sum(ex.answers.values()):g} pts")
        return 0
    for path in generate(args.book, args.student):
        print(f"wrote {path}")
    if args.course:
        for name in write_course(args.book, args.course):
            print(f"wrote {args.course}/source/{name}/{name}.ipynb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
