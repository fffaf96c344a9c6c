"""The student-notebook generator: stubs replace fenced solutions, nothing leaks, student/ is current."""

from pathlib import Path

import nbformat
import pytest

from lowrank_utils import exercises

ROOT = Path(__file__).resolve().parents[1]
BOOK, STUDENT = ROOT / "book", ROOT / "student"


def test_strip_solutions_keeps_indentation_and_code_around_the_fence() -> None:
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\ncheck(f)"
    out, n = exercises.strip_solutions(src, "Exercise 9.9")
    assert n == 1
    assert out.splitlines() == [
        "def f(x):",
        "    # YOUR CODE HERE",
        '    raise NotImplementedError("Exercise 9.9: replace this line with your solution")',
        "",
        "check(f)",
    ]
    compile(out, "<stub>", "exec")  # the stub is valid Python


@pytest.mark.parametrize(
    ("src", "message"),
    [
        ("### BEGIN SOLUTION\nx = 1", "never closed"),
        ("x = 1\n### END SOLUTION", "without a matching"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "opened twice"),
    ],
)
def test_unbalanced_fences_are_reported(src: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        exercises.strip_solutions(src)


def test_student_notebook_stubs_tags_and_clears(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("[Colab](https://colab.research.google.com/github/o/r/blob/main/book/x.ipynb)"),
        nbformat.v4.new_markdown_cell("### Exercise 3.2: something"),
        nbformat.v4.new_code_cell("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION\ncheck(answer)"),
    ]
    nb.cells[2].metadata["tags"] = ["hide-input"]
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="PASS")]
    nb.cells[2].execution_count = 3
    student = exercises.student_notebook(nb)
    cell = student.cells[2]
    assert "answer = 42" not in cell.source and "Exercise 3.2" in cell.source
    assert cell.metadata["tags"] == ["raises-exception"]
    assert cell.outputs == [] and cell.execution_count is None
    assert "/blob/main/student/x.ipynb" in student.cells[0].source
    assert nb.cells[2].outputs  # the instructor notebook is untouched


def _solution_regions(source: str) -> list[str]:
    regions, current = [], None
    for line in source.splitlines():
        if line.strip() == exercises.BEGIN:
            current = []
        elif line.strip() == exercises.END:
            regions.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return regions


def test_every_chapter_has_exercises_and_student_copy_is_current_without_leaks() -> None:
    assert exercises.stale_students(BOOK, STUDENT) == [], "student/ is out of date: run `make student`"
    for path in sorted(BOOK.glob("*.ipynb")):
        book_nb = nbformat.read(path, as_version=4)
        student_text = (STUDENT / path.name).read_text()
        regions = [r for c in book_nb.cells if c.cell_type == "code" for r in _solution_regions(c.source)]
        assert regions, f"{path.name} has no fenced exercise"
        assert exercises.BEGIN not in student_text
        student_nb = nbformat.read(STUDENT / path.name, as_version=4)
        student_code = "\n".join(c.source for c in student_nb.cells if c.cell_type == "code")
        for region in regions:
            assert region.strip() not in student_code
        stubs = [c for c in student_nb.cells if "raise NotImplementedError" in c.get("source", "")]
        assert len(stubs) == len(regions)
        assert all("raises-exception" in c.metadata.get("tags", []) for c in stubs)


def test_cli_check_reports_stale_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert exercises.main([str(BOOK), str(tmp_path / "student"), "--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    assert exercises.main([str(BOOK), str(tmp_path / "student")]) == 0
    assert exercises.main([str(BOOK), str(tmp_path / "student"), "--check"]) == 0
