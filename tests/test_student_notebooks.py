"""Student copies run end to end: every stub stops its exercise with NotImplementedError, nothing else fails,
and every reference solution in book/ passed its checker when the chapter was executed."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from lowrank_utils.exercises import BEGIN

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.name for p in (ROOT / "book").glob("*.ipynb"))


def _text(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


@pytest.mark.parametrize("name", CHAPTERS)
def test_reference_solutions_passed_their_checkers(name: str) -> None:
    nb = nbformat.read(ROOT / "book" / name, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and BEGIN in c.source]
    assert len(cells) >= 1
    for cell in cells:
        out = _text(cell)
        assert "PASS" in out and "FAIL" not in out, f"{name}: a solution cell did not pass:\n{cell.source}\n{out}"
        # nbval compares this cell's output on every run, so a solution that stops passing fails the suite
        assert "nbval-check-output" in cell.metadata.get("tags", []), f"{name}: tag solution cells nbval-check-output"


@pytest.mark.parametrize("name", CHAPTERS)
def test_student_copy_runs_and_every_stub_fails(name: str) -> None:
    path = ROOT / "student" / name
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    stubs = [c for c in nb.cells if "raises-exception" in c.metadata.get("tags", [])]
    assert stubs, f"{name} has no exercise stubs"
    for cell in stubs:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert errors and errors[0].ename == "NotImplementedError", (
            f"{name}: a stub did not stop with NotImplementedError:\n{cell.source}\n{_text(cell)}"
        )
        assert "PASS" not in _text(cell)
    others = [c for c in nb.cells if c.cell_type == "code" and c not in stubs]
    for cell in others:
        assert not [o for o in cell.outputs if o.output_type == "error"], f"{name}: a non-exercise cell failed"
