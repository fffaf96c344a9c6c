"""Where the stored results of bigger runs live: JSON files shipped inside the package, so a notebook finds them
wherever it is opened (a clone, Colab, a student's folder). Each file carries its provenance (command, config,
hardware, torch version, date, seeds, wall time); the chapters' loaders read the rest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["STORED_RUNS", "stored_run", "stored_run_names", "load_provenance"]

STORED_RUNS = Path(__file__).resolve().parent / "stored_runs"
"""The folder of stored runs (package data: installed with the package, editable or not)."""

PROVENANCE_FIELDS = ("command", "hardware", "torch", "date")


def stored_run_names() -> list[str]:
    """Names of the stored runs present (file names without ``.json``)."""
    return sorted(p.stem for p in STORED_RUNS.glob("*.json"))


def stored_run(name: str) -> Path:
    """The path of the stored run ``name`` (e.g. ``"ch05_optimizers_full"``); it may not exist yet."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.endswith(".json"):
        raise ValueError(f"a stored run is named without folder or suffix, e.g. 'ch05_optimizers_full'; got {name!r}. "
                         f"Present: {', '.join(stored_run_names()) or 'none'}.")
    return STORED_RUNS / f"{name}.json"


def load_provenance(path: str | Path) -> dict[str, Any] | None:
    """The provenance fields of the stored run at ``path`` (everything but its data), or ``None`` if absent."""
    path = Path(path)
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    missing = [k for k in PROVENANCE_FIELDS if k not in record]
    if missing:
        raise ValueError(f"{path} lacks the provenance fields {missing}; re-create it with the script that made it.")
    return {k: v for k, v in record.items() if k not in ("frames", "results", "rows")}
