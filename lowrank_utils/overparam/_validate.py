"""Argument checks shared by the layers and the model surgery (one place, so every message reads the same)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

Pair = tuple[int, int]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an int >= 1 (bools excluded), else a ValueError naming ``name``."""
    if not _is_int(value) or value < 1:  # type: ignore[operator]
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value  # type: ignore[return-value]


def number(name: str, value: object, *, minimum: float | None = None) -> float:
    """``value`` as a float if it is a real number (>= ``minimum`` when given), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise ValueError(f"{name} must be a number{bound}, got {value!r}.")
    return float(value)


def pair(name: str, value: object, minimum: int) -> Pair:
    """An int or a pair of ints, each >= ``minimum``, as a pair."""
    items = (value, value) if isinstance(value, int) else value
    if not isinstance(items, (tuple, list)) or len(items) != 2 or not all(_is_int(v) and v >= minimum for v in items):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}.")
    return int(items[0]), int(items[1])


def hidden_width(out: int, width: float, hidden: int | None, what: str) -> int:
    """The hidden width: ``hidden`` if given (then ``width`` must be left at 1), else ``round(width * out)``."""
    if hidden is not None:
        if width != 1:
            raise ValueError(f"give either width (a factor) or {what} (a count), not both.")
        return positive_int(what, hidden)
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0 or math.isinf(width):
        raise ValueError(f"width must be a positive number (the factor hidden = width * out), got {width!r}.")
    return max(1, round(width * out))


def kernel_list(kernel_sizes: int | Sequence, depth: int | None) -> list[Pair]:
    """Per-factor kernel sizes from an int k (k x k, then 1x1 factors up to ``depth``, default 2) or a list."""
    if _is_int(kernel_sizes):
        d = 2 if depth is None else positive_int("depth", depth)
        return [pair("kernel_sizes", kernel_sizes, 1)] + [(1, 1)] * (d - 1)
    if not isinstance(kernel_sizes, (list, tuple)) or not kernel_sizes:
        raise ValueError(
            f"kernel_sizes must be an int (k x k then 1x1s) or a non-empty list of per-factor sizes (int or "
            f"(kh, kw)), got {kernel_sizes!r}."
        )
    sizes = [pair(f"kernel_sizes[{i}]", k, 1) for i, k in enumerate(kernel_sizes)]
    if depth is not None and positive_int("depth", depth) != len(sizes):
        raise ValueError(
            f"depth={depth} disagrees with the {len(sizes)} kernel sizes {list(kernel_sizes)}; "
            "omit depth when you give a list (its length is the depth)."
        )
    return sizes


def conv_unsupported(conv: nn.Conv2d) -> str:
    """Why an ``nn.Conv2d`` cannot be expanded exactly, or '' if it can."""
    if tuple(conv.dilation) != (1, 1):
        return f"dilation {tuple(conv.dilation)} != 1 (a dilated kernel does not factor into dense ones)"
    if conv.padding_mode != "zeros":
        return f"padding_mode={conv.padding_mode!r} (only zero padding composes exactly)"
    if isinstance(conv.padding, str):
        return f"padding={conv.padding!r} (give numeric padding)"
    return ""
