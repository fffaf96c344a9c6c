"""Student copies: every chapter page links its own, nothing in it solves an exercise, no solution text leaks, it
keeps the chapter's figures and clears only what the exercises produce; every reference answer in book/ passed its
tests when the chapter was executed. (Running the student copies is done by nbgrader in tests/test_grading.py.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from lowrank_utils import exercises

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.name for p in (ROOT / "book").glob("*.ipynb"))
REPO = "https://colab.research.google.com/github/lowrank-course/lowrank-simplicity-course/blob/main"

# Package functions that would answer an exercise outright, on top of the functions the exercises ask for.
SOLVERS = {
    "1.1": {"entropy_effective_rank", "naive_entropy_effective_rank"},
    "2.1": {"gram"},
    "2.2": {"softplus_reference_medians"},
    "3.1": {"fuss_catalan_moment"},
    "3.3": {"balanced_factors"},
    "4.2": {"unseen_projector"},
    "6.1": {"low_rank_init_"},
    "7.1": {"end_to_end_weight"},
    "7.2": {"_compose_kernels"},
    "8.1": {"gram_effective_rank"},
}


def _text(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def _read(folder: str, name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / folder / name, as_version=4)


def _imported_names(source: str) -> set[str]:
    code = "\n".join(line for line in source.split("\n") if not line.lstrip().startswith(("%", "!")))
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom):
            names |= {a.name for a in node.names} | {a.asname for a in node.names if a.asname}
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[-1] for a in node.names} | {a.asname for a in node.names if a.asname}
    return names


@pytest.mark.parametrize("name", CHAPTERS)
def test_reference_answers_passed_their_tests(name: str) -> None:
    nb = _read("book", name)
    roles = exercises.cell_roles(nb, name)
    tests = [c for c, (_, role, _) in zip(nb.cells, roles, strict=True) if role == "test"]
    assert tests, f"{name} has no test cell"
    for cell in tests:
        out = _text(cell)
        assert "PASS" in out and "FAIL" not in out, f"{name}: a test cell did not pass:\n{cell.source}\n{out}"
        assert not [o for o in cell.outputs if o.output_type == "error"], f"{name}: a test cell raised"
        # nbval compares this cell's output on every run, so a reference answer that stops passing fails the suite
        assert "nbval-check-output" in cell.metadata.get("tags", []), f"{name}: tag test cells nbval-check-output"


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_page_links_its_student_copy(name: str) -> None:
    badge = _read("book", name).cells[0].source
    assert f"({REPO}/student/{name})" in badge, "an Open-in-Colab link to the student copy"
    assert f"<../student/{name}>`" in badge and "{download}" in badge, "a download link that works offline"
    assert (ROOT / "student" / name).exists()
    own = _read("student", name).cells[0].source
    assert f"{REPO}/student/{name}" in own and "/book/" not in own and "{download}" not in own


@pytest.mark.parametrize("name", CHAPTERS)
def test_student_copy_imports_nothing_that_solves_an_exercise(name: str) -> None:
    book = _read("book", name)
    forbidden: set[str] = set()
    for cell, (label, role, _) in zip(book.cells, exercises.cell_roles(book, name), strict=True):
        if role == "solution":
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.FunctionDef):
                    forbidden |= {node.name, node.name.removeprefix("my_")}
        if label:
            forbidden |= SOLVERS.get(label, set())
    student = _read("student", name)
    imported = set().union(*(_imported_names(c.source) for c in student.cells if c.cell_type == "code"))
    assert not imported & forbidden, f"{name}: the student copy imports {sorted(imported & forbidden)}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_no_solution_text_leaks(name: str) -> None:
    book = _read("book", name)
    text = (ROOT / "student" / name).read_text()
    student = _read("student", name)
    sources = "\n".join(c.source for c in student.cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "Instructor note"):
        assert marker not in text, f"{name}: '{marker}' in the student copy"
    for cell in book.cells:
        for begin, end in ((exercises.BEGIN, exercises.END), (exercises.BEGIN_HIDDEN, exercises.END_HIDDEN)):
            inside = re.findall(rf"{begin.lstrip('# ')}[^\n]*\n(.*?)\n[^\n]*{end.lstrip('# ')}", cell.source, re.S)
            for region in inside:
                for line in region.split("\n"):
                    if len(line.strip()) > 25:  # long lines are specific enough to be a leak
                        assert line.strip() not in sources, f"{name}: leaked line {line.strip()!r}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_student_copy_keeps_figures_and_clears_only_exercise_output(name: str) -> None:
    book, student = _read("book", name), _read("student", name)
    assert len(book.cells) == len(student.cells)
    kept = 0
    for b, s, (label, _, _) in zip(book.cells, student.cells, exercises.cell_roles(book, name), strict=True):
        if b.cell_type != "code":
            continue
        if label is None:
            assert s.outputs == b.outputs, f"{name}: outputs of a non-exercise cell changed"
            kept += sum(o.output_type == "display_data" for o in s.outputs)
        else:
            assert s.outputs == [] and "raises-exception" in s.metadata.get("tags", [])
    assert kept or name.startswith("09"), f"{name}: the student copy keeps no figure"
