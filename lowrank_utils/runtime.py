"""Where and how big the course runs: device choice, seeding, the quick/full scale switch, Colab detection."""

from __future__ import annotations

import hashlib
import os
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

SCALE_ENV = "LOWRANK_SCALE"
"""Environment variable that picks the experiment scale: ``quick`` (the default, CPU-sized) or ``full``."""


Scale = Literal["quick", "full"]


SCALES: tuple[Scale, ...] = ("quick", "full")
"""The two experiment scales every config offers (see :mod:`lowrank_utils.presets`)."""


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def get_device(prefer: str | None = None, *, verbose: bool = True) -> torch.device:
    """Pick CUDA, then Apple MPS, then CPU (or the device named by ``prefer``) and say what was found."""
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("prefer='cuda' was requested but no CUDA GPU is visible to PyTorch on this machine.")
        if device.type == "mps" and not _mps_available():
            raise ValueError("prefer='mps' was requested but Apple's MPS backend is not available here.")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif _mps_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if verbose:
        print(_describe(device))
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _describe(device: torch.device) -> str:
    if device.type == "cuda":
        return (f"GPU found: {torch.cuda.get_device_name(device)}. The quick scale is still the default; set SCALE "
                "= \"full\" in the set-up cell for the bigger presets.")
    if device.type == "mps":
        return "Apple GPU (MPS) found. The quick scale is the default; set SCALE = \"full\" for the bigger presets."
    hint = (
        "In Colab: Runtime > Change runtime type > T4 GPU, then rerun."
        if in_colab()
        else "Every chapter runs on a CPU at the quick scale."
    )
    return f"No GPU found; running on the CPU. {hint}"


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator seeded the same way."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    random.seed(seed)
    # The legacy global generator is the one to seed: NumPy code that takes no Generator draws from it.
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def get_scale(requested: Scale | None = None, *, verbose: bool = False) -> Scale:
    """The experiment scale: ``$LOWRANK_SCALE`` if set, else ``requested``, else ``quick`` (a GPU never changes it).

    The full presets run for minutes to hours, so they are never picked behind the reader's back: a GPU makes the
    quick scale faster, and ``full`` is something the reader asks for (the environment variable, or the ``SCALE``
    form field in a chapter's set-up cell, which is what ``requested`` carries).
    """
    raw = os.environ.get(SCALE_ENV, "").strip().lower()
    if raw:
        if raw not in SCALES:
            raise ValueError(f"{SCALE_ENV}={raw!r} is not a scale; use one of {', '.join(SCALES)}.")
        scale: Scale = raw
        source = f"from ${SCALE_ENV}"
    elif requested is not None:
        if requested not in SCALES:
            raise ValueError(f"scale {requested!r} is not a scale; use one of {', '.join(SCALES)}.")
        scale, source = requested, "as requested in the set-up cell"
    else:
        scale, source = "quick", "the default"
    if verbose:
        print(f"Scale: {scale} ({source}; set SCALE in the set-up cell or ${SCALE_ENV}=quick|full to change it).")
    return scale


def progress_enabled(requested: bool = True) -> bool:
    """Whether to draw a progress bar: as requested, unless ``$TQDM_DISABLE`` is set.

    Notebooks are stored (and the site is built) with ``TQDM_DISABLE=1``: a stored progress bar is a frozen bar on
    GitHub and a widget without a kernel on the site. Functions pass ``disable=not progress_enabled(...)`` to tqdm,
    because an explicit ``disable=False`` would override the environment variable.
    """
    return bool(requested) and os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("1", "true", "yes")


@contextmanager
def cpu_threads(n: int | None = 1, *, device: str | torch.device = "cpu") -> Iterator[None]:
    """Run the enclosed code with ``n`` torch CPU threads, restored afterwards (no-op for ``None`` or off the CPU).

    The course's experiments are many tiny matrices; for those one thread per process is faster than several,
    because threads of a tiny op spend more time waiting on each other than computing (measured several times
    faster on the 2-core build machine when it was shared with other jobs).
    """
    # Check before the early return: a swapped call such as cpu_threads("cpu", 1) must fail, not silently do nothing.
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"cpu_threads needs a positive number of threads or None, got {n!r}; "
                         "pass the device by keyword: cpu_threads(1, device='cpu').")
    if n is None or torch.device(device).type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from printable parts, independent of Python's per-run string hashing and of list positions."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def progress_bar(total: int, desc: str, enabled: bool = True) -> tqdm:
    """A tqdm bar that closes when done and is silent when progress is off (see :func:`progress_enabled`)."""
    return tqdm(total=total, desc=desc, disable=not progress_enabled(enabled), leave=False)
