"""Execute notebooks in place so they are stored with fresh outputs (what nbval compares and GitHub shows).

Usage: python scripts/execute_notebooks.py book/01_effective_rank.ipynb [more.ipynb ...]
Each notebook runs top to bottom in its own folder with the current environment's python3 kernel; cells tagged
`raises-exception` may raise. Per-cell timing metadata is dropped so re-running changes only real outputs.
The wall time of each chapter is recorded, with the machine, torch version, date and scale, in
lowrank_utils/stored_runs/chapter_times.json: it is what a chapter's set-up cell announces as its run time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from lowrank_utils.plans import TIMES_FILE
from lowrank_utils.results import stored_run
from lowrank_utils.runtime import get_scale

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
TIMEOUT_S = 600


def execute(path: Path) -> float:
    """Run one notebook in place; return its wall time in seconds."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = KERNELSPEC
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    elapsed = time.perf_counter() - start
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return elapsed


def record_time(chapter: str, seconds: float) -> None:
    """Store the measured wall time of ``chapter`` at the current scale (only for CPU runs: what was measured)."""
    import torch

    path = stored_run(TIMES_FILE)
    times = json.loads(path.read_text()) if path.exists() else {}
    cpu = f"{platform.machine()} CPU, {os.cpu_count()} cores"
    times.setdefault(chapter, {})[get_scale()] = {
        "wall_time_s": round(seconds, 1),
        "hardware": cpu if not torch.cuda.is_available() else torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": f"LOWRANK_SCALE={get_scale()} python scripts/execute_notebooks.py book/{chapter}.ipynb",
    }
    path.write_text(json.dumps(dict(sorted(times.items())), indent=1) + "\n")


def main(paths: list[str]) -> None:
    if not paths:
        raise SystemExit(__doc__)
    # Progress bars are for people watching a kernel; stored as outputs they would only show a frozen bar
    # (or a widget without state) on GitHub and on the site. tqdm reads TQDM_DISABLE from the environment.
    os.environ.setdefault("TQDM_DISABLE", "1")
    for p in paths:
        seconds = execute(Path(p))
        record_time(Path(p).stem, seconds)
        print(f"{p}: executed in {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
