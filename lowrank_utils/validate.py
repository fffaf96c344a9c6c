"""Argument checks shared by every config and experiment of the package.

Each check returns the value it accepted (so a config can store the normalised form) and raises ``ValueError``
naming the argument, the value it got and what to pass instead: a bad argument fails where it is given, never as a
NaN or a shape error three calls later.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["device", "integer", "integers", "names", "number"]


def integer(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an integer >= ``minimum`` (NumPy integers accepted, ``bool`` refused)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def integers(name: str, values: Sequence[int], minimum: int = 1, *, unique: bool = False) -> tuple[int, ...]:
    """``values`` as a non-empty tuple of integers >= ``minimum`` (without repeats when ``unique``)."""
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of integers, got {values!r}.") from None
    if not values:
        raise ValueError(f"{name} must not be empty.")
    for v in values:
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < minimum:
            raise ValueError(f"{name} must contain integers >= {minimum}, got {v!r}.")
    if unique and len(set(values)) != len(values):
        raise ValueError(f"{name} contains duplicates: {values}.")
    return tuple(int(v) for v in values)


def number(name: str, value: object, *, allow_zero: bool = False) -> float:
    """``value`` if it is a finite real number > 0 (or >= 0 with ``allow_zero``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):  # type: ignore[operator]
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}.")
    return float(value)  # type: ignore[arg-type]


def names(name: str, values: Sequence[str], allowed: Sequence[str], what: str | None = None) -> tuple[str, ...]:
    """``values`` as a non-empty tuple of names from ``allowed``; the error names the first unknown one."""
    if isinstance(values, str):
        raise ValueError(f"{name} must be a sequence of names, e.g. ({values!r},), not the string {values!r}.")
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} must not be empty.")
    for v in values:
        if v not in allowed:
            raise ValueError(f"unknown {what or name.rstrip('s')} {v!r} in {name}; choose from {', '.join(allowed)}.")
    return values


def device(value: str | torch.device) -> torch.device:
    """``value`` as a ``torch.device``; anything torch cannot parse is refused with the names it accepts."""
    try:
        return torch.device(value)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {value!r} is not a torch device name; use 'cpu', 'cuda' or 'mps'.") from err
