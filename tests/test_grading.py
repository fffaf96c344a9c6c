"""The nbgrader round trip, with the real nbgrader: an instructor's course folder made from book/, the release
compared with our student copies, and two submissions of every chapter graded by `nbgrader autograde`.

* the **reference** submission (the release with every solution and written answer filled in from book/) earns
  every autograded point;
* the **stub** submission (our student copy, untouched) earns zero, every stub stops with NotImplementedError and
  every cell outside the exercises runs (this replaces a separate execution of the student copies);
* a **wrong** answer to exercise 1.1 scores zero on its tests while its right answer to 1.2 scores in full, so a
  failing checker is counted as failing.

Chapters are graded two at a time (2 processes). The time each chapter took is printed (run pytest with -s)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from lowrank_utils import exercises

ROOT = Path(__file__).resolve().parents[1]
BOOK, STUDENT = ROOT / "book", ROOT / "student"
CHAPTERS = sorted(p.stem for p in BOOK.glob("*.ipynb"))
NBGRADER = [sys.executable, "-m", "nbgrader"]
STUDENTS = ("reference", "stubs", "wrong")

pytest.importorskip("nbgrader", reason="nbgrader is in the dev extra: pip install -e '.[dev]'")


def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LOWRANK_SCALE="quick", TQDM_DISABLE="1", PYTHONWARNINGS="ignore",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))  # nbgrader runs alembic
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
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Build a course folder, release every chapter, submit three students' work, autograde, export."""
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
    seconds: dict[str, float] = {}

    def grade(stem: str) -> None:
        start = time.perf_counter()
        _nbgrader(course, "autograde", "--force", stem)
        seconds[stem] = time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(grade, CHAPTERS))
    _nbgrader(course, "export")
    for stem in CHAPTERS:
        print(f"autograde {stem}: {seconds[stem]:.0f} s wall ({len([s for s in STUDENTS if (course / 'submitted' / s / stem).exists()])} submissions)")
    return {"course": course, "seconds": seconds}


def _scores(course: Path, stem: str, student: str) -> dict[str, tuple[float | None, float, bool]]:
    """grade_id -> (score, max_score, graded by hand) for one autograded submission, from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(stem, stem, student)
        return {g.name: (g.auto_score, g.max_score, g.cell.cell_type == "markdown") for g in nb.grades}


@pytest.mark.parametrize("stem", CHAPTERS)
def test_reference_earns_every_autograded_point_and_stubs_none(graded: dict, stem: str) -> None:
    course = graded["course"]
    ref, stub = _scores(course, stem, "reference"), _scores(course, stem, "stubs")
    auto = {gid for gid, (_, _, by_hand) in ref.items() if not by_hand}
    assert auto, f"{stem} has no autograded test cell"
    missed = {gid: ref[gid] for gid in auto if ref[gid][0] != ref[gid][1]}
    assert not missed, f"{stem}: the reference submission lost points on {missed}"
    assert sum(stub[gid][0] for gid in auto) == 0, f"{stem}: the stub submission earned points"
    for gid, (score, max_score, by_hand) in ref.items():
        if by_hand:
            assert score is None, f"{stem}: a written answer ({gid}) needs grading by hand"
            assert stub[gid][0] == 0, f"{stem}: an unanswered written question ({gid}) must score 0"
    total = sum(ref[g][1] for g in auto)
    print(f"{stem}: reference {sum(ref[g][0] for g in auto):g}/{total:g}, stubs "
          f"{sum(stub[g][0] for g in auto):g}/{total:g} autograded points")


@pytest.mark.parametrize("stem", CHAPTERS)
def test_stub_submission_stops_at_every_stub_and_runs_everything_else(graded: dict, stem: str) -> None:
    path = graded["course"] / "autograded" / "stubs" / stem / f"{stem}.ipynb"
    ran = nbformat.read(path, as_version=4)
    student = nbformat.read(STUDENT / f"{stem}.ipynb", as_version=4)
    assert len(ran.cells) == len(student.cells)
    roles = exercises.cell_roles(student, stem)
    for index, (cell, (label, role, _)) in enumerate(zip(ran.cells, roles)):
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


def test_a_wrong_answer_scores_zero_on_its_tests(graded: dict) -> None:
    scores = _scores(graded["course"], CHAPTERS[0], "wrong")
    assert scores["ex1_1_test1"][0] == 0 and scores["ex1_1_test2"][0] == 0
    assert scores["ex1_2_test1"][0] == scores["ex1_2_test1"][1] > 0
    assert scores["ex1_2_test2"][0] == scores["ex1_2_test2"][1] > 0


def test_export_writes_a_score_for_every_submission(graded: dict) -> None:
    with open(graded["course"] / "grades.csv") as fh:
        rows = list(csv.DictReader(fh))
    got = {(r["assignment"], r["student_id"]) for r in rows if r["timestamp"] or r["score"]}
    for stem in CHAPTERS:
        assert (stem, "reference") in got and (stem, "stubs") in got


@pytest.mark.parametrize("stem", CHAPTERS)
def test_student_copy_is_what_nbgrader_releases(graded: dict, stem: str) -> None:
    """Same cells, sources, nbgrader metadata (checksums included) and locks; only the kept outputs differ."""
    release = nbformat.read(graded["course"] / "release" / stem / f"{stem}.ipynb", as_version=4)
    student = nbformat.read(STUDENT / f"{stem}.ipynb", as_version=4)
    assert len(release.cells) == len(student.cells)
    for index, (r, s) in enumerate(zip(release.cells, student.cells)):
        where = f"{stem}, cell {index}"
        assert r.cell_type == s.cell_type, where
        if index == 0:  # the badge: ours points at the student copy itself
            continue
        assert r.source == s.source, where
        assert r.metadata.get("nbgrader") == s.metadata.get("nbgrader"), where
        for key in ("editable", "deletable"):
            assert r.metadata.get(key, True) == s.metadata.get(key, True), f"{where}: {key}"


def test_cleanup_course_folder(graded: dict) -> None:
    shutil.rmtree(graded["course"], ignore_errors=True)
