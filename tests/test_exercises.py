"""The student-notebook generator and the grading conventions: stubs, hidden tests, written answers, nbgrader
metadata and checksums, the checkers' grading mode, and that book/ and student/ are current."""

import shutil
from pathlib import Path

import nbformat
import pytest

from lowrank_utils import checks, exercises

ROOT = Path(__file__).resolve().parents[1]
BOOK, STUDENT = ROOT / "book", ROOT / "student"


def test_strip_solutions_keeps_indentation_and_code_around_the_fence() -> None:
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\ncheck(f)"
    out, n = exercises.strip_solutions(src)
    assert n == 1
    assert out.split("\n") == ["def f(x):", "    # YOUR CODE HERE", "    raise NotImplementedError()", "", "check(f)"]
    compile(out, "<stub>", "exec")  # the stub is valid Python


def test_written_answer_and_hidden_tests_are_removed() -> None:
    md = "<!-- Written answer (2 points) -->\n<!-- BEGIN SOLUTION -->\nthe note\n<!-- END SOLUTION -->"
    assert exercises.strip_solutions(md, markdown=True)[0] == "<!-- Written answer (2 points) -->\nYOUR ANSWER HERE"
    code = "# Test (1 point): x\n### BEGIN HIDDEN TESTS\ncheck(f(3))\n### END HIDDEN TESTS"
    assert exercises.strip_hidden_tests(code) == ("# Test (1 point): x", 1)


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


def _toy() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("[Colab](https://colab.research.google.com/github/o/r/blob/main/book/x.ipynb)\n\n"
                                      "**Student copy**: {download}`x <../student/x.ipynb>`"),
        nbformat.v4.new_code_cell("import torch"),
        nbformat.v4.new_markdown_cell("### Exercise 3.2: something"),
        nbformat.v4.new_code_cell("answer = ...\n### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION"),
        nbformat.v4.new_code_cell("# Test (2 points): the answer\ncheck(answer)\n### BEGIN HIDDEN TESTS\nsecret()\n"
                                  "### END HIDDEN TESTS"),
        nbformat.v4.new_markdown_cell("<!-- Written answer (1 point) -->\n<!-- BEGIN SOLUTION -->\nnote\n"
                                      "<!-- END SOLUTION -->"),
        nbformat.v4.new_markdown_cell("## Takeaways"),
        nbformat.v4.new_code_cell("plot()"),
    ]
    nb.cells[3].metadata["tags"] = ["hide-input"]
    for cell in (nb.cells[1], nb.cells[3], nb.cells[4], nb.cells[7]):
        cell.outputs = [nbformat.v4.new_output("stream", text="out")]
        cell.execution_count = 1
    return nb


def test_annotate_writes_nbgrader_metadata() -> None:
    nb = exercises.annotate(_toy())
    meta = [c.metadata.get("nbgrader") for c in nb.cells]
    assert meta[0] is None and meta[1] is None and meta[6] is None and meta[7] is None
    assert meta[2] == {"cell_type": "markdown", "grade": False, "grade_id": "ex3_2_task", "locked": True,
                       "schema_version": 3, "solution": False, "task": False}
    assert meta[3]["solution"] and not meta[3]["grade"] and meta[3]["grade_id"] == "ex3_2"
    assert meta[4]["grade"] and meta[4]["locked"] and meta[4]["points"] == 2 and meta[4]["grade_id"] == "ex3_2_test1"
    assert meta[5]["grade"] and meta[5]["solution"] and meta[5]["points"] == 1
    [ex] = exercises.exercises_of(nb)
    assert (ex.label, ex.tests, ex.answers, ex.hidden) == ("3.2", {"ex3_2_test1": 2}, {"ex3_2_answer": 1}, 1)


def test_student_notebook_stubs_locks_and_keeps_non_exercise_outputs() -> None:
    nb = _toy()
    student = exercises.student_notebook(nb)
    cells = student.cells
    assert cells[0].source == "[Colab](https://colab.research.google.com/github/o/r/blob/main/student/x.ipynb)"
    assert cells[1].outputs and cells[7].outputs  # figures outside the exercises stay
    assert "42" not in cells[3].source and cells[3].outputs == [] and cells[3].metadata["tags"] == ["raises-exception"]
    assert cells[4].source == "# Test (2 points): the answer\ncheck(answer)" and cells[4].outputs == []
    assert cells[4].metadata["editable"] is False and cells[4].metadata["deletable"] is False
    assert cells[5].source.endswith("YOUR ANSWER HERE") and cells[5].metadata["deletable"] is False
    assert all("checksum" in c.metadata["nbgrader"] for c in cells if "nbgrader" in c.metadata)
    assert nb.cells[3].outputs and "nbgrader" not in nb.cells[3].metadata  # the input is untouched


def test_checksums_are_nbgraders() -> None:
    utils = pytest.importorskip("nbgrader.utils")
    for cell in exercises.student_notebook(_toy()).cells:
        if "nbgrader" in cell.metadata:
            assert cell.metadata["nbgrader"]["checksum"] == utils.compute_checksum(cell)


def test_misplaced_conventions_are_errors() -> None:
    nb = _toy()
    nb.cells[2].source = "## Exercises\n### Exercise 3.2: x"
    with pytest.raises(ValueError, match="cell of its own"):
        exercises.annotate(nb)
    nb = _toy()
    nb.cells[4].source = "# Test: no points\ncheck(answer)"
    with pytest.raises(ValueError, match="points"):
        exercises.annotate(nb)


def test_checkers_raise_when_grading_and_print_otherwise(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(checks.CheckFailed, match="hint text"):
        checks.report("x", False, "hint text")  # the default: graders see a failure
    assert "FAIL  x" in capsys.readouterr().out  # the friendly line comes first
    with checks.grading(False):
        assert not checks.report("x", False, "hint text")
    with checks.grading(False):
        assert not checks.check_choice("p", "up", "down", ("up", "down"))
        assert checks.check_choice("p", " Down ", "down", ("up", "down"))
    with pytest.raises(NotImplementedError):  # an unanswered placeholder stops the cell in both modes
        checks.check_choice("p", ..., "down", ("up", "down"))


def test_grading_switch_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOWRANK_GRADING", "0")
    assert not checks.grading_enabled() and not checks.report("x", False)
    monkeypatch.setenv("LOWRANK_GRADING", "1")
    assert checks.grading_enabled() and checks.grading_enabled(False) is False


def test_every_chapter_is_gradable_and_student_copy_is_current() -> None:
    assert exercises.stale_students(BOOK, STUDENT) == [], "book/ metadata or student/ is out of date: `make student`"
    for path in sorted(BOOK.glob("*.ipynb")):
        found = exercises.exercises_of(nbformat.read(path, as_version=4), path.name)
        assert found and all(ex.tests or ex.answers for ex in found), path.name
        assert any(ex.tests for ex in found), f"{path.name}: no autograded exercise"


def test_cli_check_and_course(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert exercises.main([str(BOOK), str(tmp_path / "student"), "--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    book = tmp_path / "book"
    shutil.copytree(BOOK, book, ignore=lambda d, names: [n for n in names if not n.endswith(".ipynb")])
    assert exercises.main([str(book), str(tmp_path / "student"), "--course", str(tmp_path / "course")]) == 0
    assert exercises.main([str(book), str(tmp_path / "student"), "--check"]) == 0
    assert (tmp_path / "course" / "nbgrader_config.py").read_text() == exercises.NBGRADER_CONFIG
    assert (tmp_path / "course" / "source" / "01_effective_rank" / "01_effective_rank.ipynb").exists()
