"""Stored results of bigger runs: JSON files shipped inside the package, so a notebook finds them wherever it is
opened (a clone, Colab, a student's folder). One format for every chapter: tidy DataFrames ("frames") beside their
provenance (command, config, hardware, torch version, date, seeds, wall time), written by :func:`save_results` and
read back by :func:`load_results`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

STORED_RUNS = Path(__file__).resolve().parent / "stored_runs"
"""The folder of stored runs (package data: installed with the package, editable or not)."""


PROVENANCE_FIELDS: tuple[str, ...] = ("command", "config", "hardware", "torch", "date", "seeds", "wall_time_s")
"""Fields every stored result must carry (see :func:`save_results`)."""


def stored_run_names() -> list[str]:
    """Names of the stored runs present (file names without ``.json``)."""
    return sorted(p.stem for p in STORED_RUNS.glob("*.json"))


def stored_run(name: str) -> Path:
    """The path of the stored run ``name`` (e.g. ``"ch05_optimizers_full"``); it may not exist yet."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.endswith(".json"):
        raise ValueError(f"a stored run is named without folder or suffix, e.g. 'ch05_optimizers_full'; got {name!r}. "
                         f"Present: {', '.join(stored_run_names()) or 'none'}.")
    return STORED_RUNS / f"{name}.json"


def _read(path: Path) -> dict[str, Any]:
    """The JSON record at ``path``, refused with ``ValueError`` when a provenance field is missing or empty."""
    payload = json.loads(path.read_text())
    missing = [f for f in PROVENANCE_FIELDS if payload.get(f) in (None, "", [])]
    if missing:
        raise ValueError(f"{path} lacks the provenance fields {missing}; re-create it with save_results() "
                         "(scripts/run_full_presets.py does).")
    return payload


def load_provenance(path: str | Path) -> dict[str, Any] | None:
    """The provenance of the stored run at ``path`` (everything but its data), or ``None`` when there is no file."""
    path = Path(path)
    if not path.is_file():
        return None
    return {k: v for k, v in _read(path).items() if k != "frames"}


def save_results(frames: Mapping[str, pd.DataFrame], config: Any, path: str | Path, *, command: str,
                 wall_time_s: float, hardware: str | None = None, date: str | None = None, note: str = "") -> Path:
    """Write DataFrames and their provenance (command, config, hardware, torch version, date, seeds, wall time) as
    JSON at ``path``; ``hardware`` defaults to the GPU's name or the CPU's, ``date`` (when the run ended) to now."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if hardware is None:
        hardware = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
                    else f"{platform.processor() or platform.machine()} CPU")
    payload = {
        "command": command,
        "config": dataclasses.asdict(config),
        "hardware": hardware,
        "torch": torch.__version__,
        "date": date or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seeds": list(getattr(config, "seeds", ())),
        "wall_time_s": round(float(wall_time_s), 1),
        "note": note,
        "frames": {name: json.loads(df.to_json(orient="records")) for name, df in frames.items()},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)
    return path


def load_results(path: str | Path) -> tuple[dict[str, pd.DataFrame], dict[str, Any]] | None:
    """The DataFrames and provenance stored by :func:`save_results`, or ``None`` when no file is at ``path``.

    A file missing any of :data:`PROVENANCE_FIELDS` is refused with ``ValueError``: results whose origin cannot be
    told are not shown.
    """
    path = Path(path)
    if not path.is_file():
        return None
    payload = _read(path)
    frames = {name: pd.DataFrame(rows) for name, rows in payload["frames"].items()}
    return frames, {k: v for k, v in payload.items() if k != "frames"}
