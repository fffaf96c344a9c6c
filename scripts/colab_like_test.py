"""Execute every chapter alone, as a Colab user would, in the environment running this script.

Each notebook is copied into an empty temporary folder (nothing of the repository beside it) and executed with
this interpreter's kernel, $LOWRANK_SCALE unset and progress bars on. A chapter passes when no cell errors; then
ipywidgets must still be the version the environment started
with, and the chapters that plot stored full-preset runs must show them. Prints a table and writes
_build/colab-check/report.json. Usage: python scripts/colab_like_test.py book
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import TypedDict

import nbformat
from nbclient import NotebookClient

from lowrank_utils.plans import CHAPTER_PLANS

# The chapters that plot stored full-preset runs (those whose plan in lowrank_utils.plans names stored runs): each
# must print their provenance ("stored run:") and draw them.
STORED_RUN_CHAPTERS = tuple(chapter for chapter, plan in CHAPTER_PLANS.items() if plan.full_runs)
CELL_TIMEOUT_S = 180


class ChapterRun(TypedDict):
    """What one chapter's run reports."""

    chapter: str
    seconds: float
    errors: list[str]
    stored_figures: int
    stored_run_printed: bool
    widget_outputs: int


def run_alone(path: Path) -> ChapterRun:
    """Execute ``path`` in an empty folder; return what a check needs (errors, stored-run figures, time)."""
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="colab-") as folder:
        shutil.copy(path, Path(folder) / path.name)
        start = time.perf_counter()
        NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                       resources={"metadata": {"path": folder}}).execute()
        seconds = time.perf_counter() - start
    errors = [f"cell {i}: {o.ename}: {o.evalue}" for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    stored_cells = [c for c in nb.cells if c.cell_type == "code" and "stored_run(" in c.source]
    stored_figures = sum(1 for c in stored_cells for o in c.outputs if "image/png" in o.get("data", {}))
    stored_text = "".join(o.get("text", "") for c in stored_cells for o in c.outputs)
    widgets = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs
                  if "application/vnd.jupyter.widget-view+json" in o.get("data", {}))
    return {"chapter": path.stem, "seconds": round(seconds, 1), "errors": errors, "stored_figures": stored_figures,
            "stored_run_printed": "stored run:" in stored_text, "widget_outputs": widgets}


def main(book: str) -> int:
    os.environ.pop("LOWRANK_SCALE", None)
    os.environ.pop("TQDM_DISABLE", None)  # progress bars on, as in Colab: they must work with this ipywidgets
    before = metadata.version("ipywidgets")
    rows: list[ChapterRun] = []
    problems: list[str] = []
    for path in sorted(Path(book).glob("*.ipynb")):
        row = run_alone(path)
        rows.append(row)
        print(f"{row['chapter']:<34s} {row['seconds']:6.1f} s  errors {len(row['errors'])}  "
              f"stored-run figures {row['stored_figures']}  widget outputs {row['widget_outputs']}", flush=True)
        problems += [f"{row['chapter']}: {e}" for e in row["errors"]]
        if row["chapter"] in STORED_RUN_CHAPTERS and not (row["stored_figures"] and row["stored_run_printed"]):
            problems.append(f"{row['chapter']}: the stored full-preset runs were not found or not drawn")
    after = metadata.version("ipywidgets")
    if after != before:
        problems.append(f"ipywidgets changed from {before} to {after}: the package must keep the host's version")
    report = {"python": platform.python_version(), "ipywidgets_before": before, "ipywidgets_after": after,
              "torch": metadata.version("torch"), "lowrank_utils": metadata.version("lowrank-utils"),
              "chapters": rows, "problems": problems}
    out = Path("_build") / "colab-check"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(f"Python {report['python']}, ipywidgets {before} before and {after} after, torch {report['torch']}; "
          f"{sum(r['seconds'] for r in rows):.0f} s for {len(rows)} chapters")
    for p in problems:
        print("PROBLEM:", p)
    print(f"colab-like: {len(rows) - len({p.split(':')[0] for p in problems})} passed, "
          f"{len({p.split(':')[0] for p in problems})} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "book"))
