"""Execute notebooks in place so they are stored with fresh outputs (what nbval compares and GitHub shows).

Usage: python scripts/execute_notebooks.py book/01_effective_rank.ipynb [more.ipynb ...]
Each notebook runs top to bottom in its own folder with the current environment's python3 kernel; cells tagged
`raises-exception` may raise. Per-cell timing metadata is dropped so re-running changes only real outputs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

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


def main(paths: list[str]) -> None:
    if not paths:
        raise SystemExit(__doc__)
    # Progress bars are for people watching a kernel; stored as outputs they would only show a frozen bar
    # (or a widget without state) on GitHub and on the site. tqdm reads TQDM_DISABLE from the environment.
    os.environ.setdefault("TQDM_DISABLE", "1")
    for p in paths:
        print(f"{p}: executed in {execute(Path(p)):.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
