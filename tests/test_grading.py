"""The nbgrader round trip, with the real nbgrader: an instructor's course folder made from book/, the release
compared with our student copies, and two submissions of every chapter graded by `nbgrader autograde`.

* the **reference** submission (the release with every solution and written answer filled in from book/) earns
  every autograded point;
* the **stub** submission (our student copy, untouched) earns zero, every stub stops with NotImplementedError and
  every cell outside the exercises runs (this replaces a separate execution of the student copies);
* a **wrong** answer to exercise 1.1 scores zero on its tests while its right answer to 1.2 scores in full, so a
  failing checker is counted as failing; `nbgrader export` writes the scores to grades.csv.

One test per chapter and submission runs `nbgrader autograde --student=...` on it; with pytest-xdist each worker has
its own course folder, so they run in parallel. Each test prints the scores and how long autograde took (pytest -s).
Grading the reference submissions is marked `slow`: it is the one cost this file adds to a test run (the stub
submissions replace an execution of the student copies), and nbval already executes the same reference answers in
book/ and compares their PASS lines; deselect it with `-m "not slow"` when time is short.
"""

from __future__ import annotations

import csv
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from lowrank_utils import exercises

ROOT = Path(__file__).resolve().parents[1]
BOOK, STUDENT = ROOT / "book", ROOT / "student"
CHAPTERS = sorted(p.stem for p in BOOK.glob("*.ipynb"))
NBGRADER = [sys.executable, "-m", "nbgrader"]

pytest.importorskip("nbgrader", reason="nbgrader is in the dev extra: pip install -e '.[dev]'")


def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LOWRANK_SCALE="quick", TQDM_DISABLE="1", PYTHONWARNINGS="ignore",
               # nbgrader runs alembic, so the venv's bin/ goes first on PATH
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    out = subprocess.run(NBGRADER + list(args), cwd=course, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _fill_in(release: nbformat.NotebookNode, source: nbformat.NotebookNode, ids: set[str] | None = None
             ) -> nbformat.NotebookNode:
    """The release notebook with the solution and written-answer cells (those in ``ids``, or all) from ``source``."""
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.from_dict(release)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers and (ids is None or gid in ids):
            cell.source = answers[gid]
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course folder with every chapter released and three students' work submitted (not yet graded). Under
    pytest-xdist each worker builds its own, so chapters are graded in parallel without sharing a gradebook."""
    course = tmp_path_factory.mktemp("course")
    assert exercises.write_course(BOOK, course) == CHAPTERS
    _nbgrader(course, "generate_assignment", "--force", "*")
    for stem in CHAPTERS:
        release = nbformat.read(course / "release" / stem / f"{stem}.ipynb", as_version=4)
        source = nbformat.read(course / "source" / stem / f"{stem}.ipynb", as_version=4)
        submissions = {"reference": _fill_in(release, source),
                       "stubs": nbformat.read(STUDENT / f"{stem}.ipynb", as_version=4)}
        if stem == CHAPTERS[0]:
            wrong = _fill_in(release, source, {"ex1_2"})
            for cell in wrong.cells:
                if cell.metadata.get("nbgrader", {}).get("grade_id") == "ex1_1":
                    # a plausible mistake: the log of the rank instead of the entropy of the spectrum
                    cell.source = ("import math\n\ndef my_rho(A):\n"
                                   "    return math.log(int(torch.linalg.matrix_rank(A)))")
            submissions["wrong"] = wrong
        for student, nb in submissions.items():
            folder = course / "submitted" / student / stem
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{stem}.ipynb")
    return course


def _scores(course: Path, stem: str, student: str) -> dict[str, tuple[float | None, float, bool]]:
    """grade_id -> (score, max_score, graded by hand) for one autograded submission, from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(stem, stem, student)
        return {g.name: (g.auto_score, g.max_score, g.cell.cell_type == "markdown") for g in nb.grades}


def _autograde(course: Path, stem: str, student: str) -> str:
    """Run nbgrader autograde on one submission; return its wall and CPU time (the CPU time of nbgrader and of the
    kernel it starts, which a busy machine inflates less than the wall time)."""
    start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    _nbgrader(course, "autograde", "--force", f"--student={student}", stem)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    return f"{time.perf_counter() - start:.0f} s wall, {used:.0f} s CPU"


def _auto_ids(scores: dict[str, tuple[float | None, float, bool]]) -> set[str]:
    return {gid for gid, (_, _, by_hand) in scores.items() if not by_hand}


def _earned(scores: dict[str, tuple[float | None, float, bool]], ids: set[str]) -> float:
    """Points earned on the cells ``ids``; after autograde every autograded cell has a score."""
    points = [scores[gid][0] for gid in ids]
    assert None not in points, f"autograde left cells without a score: {sorted(ids)}"
    return sum(p for p in points if p is not None)


@pytest.mark.timeout(600)  # one execution of the chapter's student copy; the slowest takes about 1.5 min on 2 cores
@pytest.mark.parametrize("stem", CHAPTERS)
def test_autograde_stub_submission_scores_zero(course: Path, stem: str) -> None:
    seconds = _autograde(course, stem, "stubs")
    stub = _scores(course, stem, "stubs")
    auto = _auto_ids(stub)
    assert auto, f"{stem} has no autograded test cell"
    assert _earned(stub, auto) == 0, f"{stem}: the stub submission earned points"
    for gid, (score, _, by_hand) in stub.items():
        if by_hand:
            assert score == 0, f"{stem}: an unanswered written question ({gid}) must score 0"
    print(f"\n{stem}: stubs {_earned(stub, auto):g}/{sum(stub[g][1] for g in auto):g} autograded points; "
          f"autograde took {seconds}")
    _stub_run_stops_at_every_stub(course, stem)


@pytest.mark.slow  # new execution cost on top of nbval's run of book/ (which checks the same answers' PASS lines)
@pytest.mark.timeout(600)
@pytest.mark.parametrize("stem", CHAPTERS)
def test_autograde_reference_submission_earns_every_point(course: Path, stem: str) -> None:
    seconds = _autograde(course, stem, "reference")
    ref = _scores(course, stem, "reference")
    auto = _auto_ids(ref)
    missed = {gid: ref[gid] for gid in auto if ref[gid][0] != ref[gid][1]}
    assert not missed, f"{stem}: the reference submission lost points on {missed}"
    for gid, (score, _, by_hand) in ref.items():
        if by_hand:
            assert score is None, f"{stem}: a written answer ({gid}) must wait for grading by hand"
    total = sum(ref[g][1] for g in auto)
    print(f"\n{stem}: reference {_earned(ref, auto):g}/{total:g} autograded points; "
          f"autograde took {seconds}")


def test_a_wrong_answer_loses_its_points_and_export_lists_scores(course: Path) -> None:
    stem = CHAPTERS[0]
    _autograde(course, stem, "wrong")
    scores = _scores(course, stem, "wrong")
    assert scores["ex1_1_test1"][0] == 0 and scores["ex1_1_test2"][0] == 0, scores
    assert scores["ex1_2_test1"][0] == scores["ex1_2_test1"][1] > 0
    assert scores["ex1_2_test2"][0] == scores["ex1_2_test2"][1] > 0
    _nbgrader(course, "export")
    with open(course / "grades.csv") as fh:
        rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(fh)}
    earned = _earned(scores, _auto_ids(scores))
    assert float(rows[(stem, "wrong")]["score"]) == earned == scores["ex1_2_test1"][1] + scores["ex1_2_test2"][1]


def _stub_run_stops_at_every_stub(course: Path, stem: str) -> None:
    """In the graded stub submission every stub stopped with NotImplementedError, every test failed, and every cell
    outside the exercises ran (so the student copy runs end to end)."""
    ran = nbformat.read(course / "autograded" / "stubs" / stem / f"{stem}.ipynb", as_version=4)
    student = nbformat.read(STUDENT / f"{stem}.ipynb", as_version=4)
    assert len(ran.cells) == len(student.cells)
    for index, (cell, (label, role, _)) in enumerate(zip(ran.cells, exercises.cell_roles(student, stem), strict=True)):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if role == "solution":
            assert errors and errors[0].ename == "NotImplementedError", f"{stem}, cell {index}: stub did not stop"
        elif role == "test":
            assert errors, f"{stem}, cell {index}: a test cell passed on the stub"
            assert "PASS" not in "".join(o.get("text", "") for o in cell.outputs)
        elif label is None:
            assert not errors, f"{stem}, cell {index}: a cell outside the exercises failed: {errors[0].evalue}"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_student_copy_is_what_nbgrader_releases(course: Path, stem: str) -> None:
    """Same cells, sources, nbgrader metadata (checksums included) and locks; only the kept outputs differ."""
    release = nbformat.read(course / "release" / stem / f"{stem}.ipynb", as_version=4)
    student = nbformat.read(STUDENT / f"{stem}.ipynb", as_version=4)
    assert len(release.cells) == len(student.cells)
    for index, (r, s) in enumerate(zip(release.cells, student.cells, strict=True)):
        where = f"{stem}, cell {index}"
        assert r.cell_type == s.cell_type, where
        if index == 0:  # the badge: ours points at the student copy itself
            continue
        assert r.source == s.source, where
        assert r.metadata.get("nbgrader") == s.metadata.get("nbgrader"), where
        for key in ("editable", "deletable"):
            assert r.metadata.get(key, True) == s.metadata.get(key, True), f"{where}: {key}"
