"""What each chapter runs at each scale and roughly how long it takes, said before the chapter starts its work.

The times are measurements, never guesses: ``scripts/execute_notebooks.py`` records the wall time of every chapter
it executes (with the machine, torch version and date) in ``stored_runs/chapter_times.json``, and the full presets
of chapters 4-6 carry their own measured wall time in their stored-run files. Where a chapter was never timed at a
scale on a kind of device, :func:`announce_chapter` says so instead of inventing a number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from .results import load_provenance, stored_run

__all__ = ["ChapterPlan", "CHAPTER_PLANS", "measured_time", "announce_chapter"]

TIMES_FILE = "chapter_times"
"""Name of the stored file (in ``stored_runs/``) that holds measured wall times of whole chapters."""


@dataclass(frozen=True)
class ChapterPlan:
    """What a chapter runs at the quick and at the full scale, and which stored runs time its full preset."""

    quick: str
    full: str
    full_runs: tuple[str, ...] = ()  # stored runs whose measured wall times add up to the chapter's full preset
    full_note: str = ""


CHAPTER_PLANS: dict[str, ChapterPlan] = {
    "01_effective_rank": ChapterPlan(
        quick="a few small matrices and their spectra", full="the same small matrices (this chapter has one scale)"),
    "02_random_initialization": ChapterPlan(
        quick="200 random networks per (activation, weights, depth), width 32, and a width sweep up to 128",
        full="1,000 random networks per (activation, weights, depth), width 64, and a width sweep up to 256"),
    "03_why_depth_lowers_rank": ChapterPlan(
        quick="products of 32x32 random matrices, a 41x41 rank landscape, 400 draws per volume point",
        full="products of 64x64 random matrices, a 101x101 rank landscape, 2,000 draws per volume point"),
    "04_trained_networks": ChapterPlan(
        quick="about 100 small networks trained on the CPU (1-2 seeds)",
        full="about 400 small networks trained on the CPU (3-5 seeds, up to 4,000 steps each)",
        full_runs=("ch04_activations_full", "ch04_depth_regression_full", "ch04_rank_sweep_full")),
    "04b_matrix_completion": ChapterPlan(
        quick="deep matrix completion of 20x20 rank-2 matrices on the CPU: depths 1-4, 5 seeds, 6 values of m",
        full="the same with 10 seeds, 12 values of m and up to 40,000 gradient steps (CPU)",
        full_runs=("ch04b_completion_full",)),
    "05_optimizers": ChapterPlan(
        quick="6 optimizers x 4 depths x 3 seeds on a tiny regression, and the 4 gradient-based ones again from an "
              "orthogonal start (CPU)",
        full="6 optimizers x 4 depths x 10 seeds from each of two starts, twice the step budget (CPU)",
        full_runs=("ch05_optimizers_full",)),
    "06_initialization": ChapterPlan(
        quick="3 initialisations x 5 depths x 3 seeds, and 4 initial scales x 3 depths x 1 seed (CPU)",
        full="3 initialisations x 6 depths (up to 32) x 10 seeds, and 4 initial scales x 6 depths x 5 seeds, up to "
             "3,000 Adam steps each (CPU)",
        full_runs=("ch06_initialization_full", "ch06_init_scales_full")),
    "07_linear_overparameterization": ChapterPlan(
        quick="a small CNN and its x4 twin, 3 epochs on 4,000 Fashion-MNIST images",
        full="a small CNN and its x4 twin, 30 epochs on all 60,000 Fashion-MNIST images (about 28,000 steps)",
        full_note="not timed at this scale yet. By the quick run's rate per step it is hours on a 2-core CPU; on one "
                  "GPU we estimate minutes (an estimate, not a measurement)."),
    "08_image_classification": ChapterPlan(
        quick="the protocol on Fashion-MNIST subsets: a compact CNN with 1, 2 and 4 factors per layer, a learning "
              "rate chosen on validation from 3, then 5 seeds each (24 short trainings)",
        full="the protocol on the full Fashion-MNIST for the compact and the small CNN (48 trainings; the chapter "
             "also shows these runs stored)",
        full_note="under an hour of CPU time on a shared 2-core machine (the chapter prints the total measured in "
                  "the stored runs' files); minutes on a GPU (not measured)."),
    "09_imagenet": ChapterPlan(
        quick="a two-process CPU training on a tiny generated image folder",
        full="the same tiny run (real ImageNet runs use the command-line trainer, not this notebook)"),
}


@lru_cache(maxsize=1)
def _chapter_times() -> dict[str, Any]:
    path = stored_run(TIMES_FILE)
    return json.loads(path.read_text()) if path.exists() else {}


def measured_time(chapter: str, scale: str) -> tuple[float, str] | None:
    """The measured wall time (seconds) of ``chapter`` at ``scale`` and where it was measured, or ``None``."""
    if chapter not in CHAPTER_PLANS:
        raise ValueError(f"unknown chapter {chapter!r}; choose one of {', '.join(CHAPTER_PLANS)}.")
    entry = _chapter_times().get(chapter, {}).get(scale)
    if entry is not None:
        return float(entry["wall_time_s"]), f"{entry['hardware']}, torch {entry['torch']}, {entry['date'][:10]}"
    plan = CHAPTER_PLANS[chapter]
    if scale == "full" and plan.full_runs:
        provenance = [load_provenance(stored_run(name)) for name in plan.full_runs]
        if all(p is not None for p in provenance):
            total = sum(float(p["wall_time_s"]) for p in provenance if p is not None)
            first = provenance[0]
            assert first is not None
            return total, f"the stored full runs: {first['hardware']}, torch {first['torch']}, {first['date'][:10]}"
    return None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def announce_chapter(chapter: str, scale: str, device: torch.device | str) -> None:
    """Print what ``chapter`` is about to run at ``scale`` and how long that took where it was measured."""
    plan = CHAPTER_PLANS.get(chapter)
    if plan is None:
        raise ValueError(f"unknown chapter {chapter!r}; choose one of {', '.join(CHAPTER_PLANS)}.")
    if scale not in ("quick", "full"):
        raise ValueError(f"scale must be 'quick' or 'full', got {scale!r}.")
    kind = torch.device(device).type
    print(f"This chapter at the {scale} scale runs {plan.quick if scale == 'quick' else plan.full}.")
    measured = measured_time(chapter, scale)
    if measured is None:
        note = plan.full_note if scale == "full" and plan.full_note else "not measured at this scale yet."
        print(f"Run time: {note}")
        return
    seconds, where = measured
    on = "" if kind == "cpu" else f" (measured on a CPU; this {kind.upper()} run was never timed)"
    print(f"Run time: about {_duration(seconds)} in all on {where}{on}.")
