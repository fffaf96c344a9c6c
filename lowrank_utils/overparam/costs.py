"""The cost model (multiply-adds) behind ``mode="auto"``: run the factors one by one, or compose them first.

Only shapes enter, so the estimates work on ``meta`` tensors too. A linear layer is the 1x1 case: its input is
``n`` rows of a 1x1 "image".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["ForwardCosts", "compose_costs", "forward_costs", "kernel_compose_cost"]

Shape = Sequence[int]


class ForwardCosts(NamedTuple):
    """Estimated multiply-adds of one forward pass in each form (``composed`` includes composing the kernels)."""

    chained: float
    composed: float


def kernel_compose_cost(first: Shape, second: Shape, groups: int) -> float:
    """Multiply-adds of :func:`~.algebra.compose_kernels` for kernels of these shapes."""
    _, c0g, ah, aw = first
    c2, c1g, bh, bw = second
    out_sp = (ah + bh - 1) * (aw + bw - 1)
    if bh == bw == 1 or ah == aw == 1:  # the matrix-product branches
        return float(c2 * c0g * c1g * out_sp)
    return float(c0g * c2 * c1g * out_sp * bh * bw)


def compose_costs(shapes: Sequence[Shape], groups: int) -> tuple[float, float]:
    """Cost of composing the chain from the input side (left) and from the output side (right)."""
    left, acc = 0.0, tuple(shapes[0])
    for s in shapes[1:]:
        left += kernel_compose_cost(acc, s, groups)
        acc = (s[0], acc[1], acc[2] + s[2] - 1, acc[3] + s[3] - 1)
    right, acc = 0.0, tuple(shapes[-1])
    for s in reversed(shapes[:-1]):
        right += kernel_compose_cost(s, acc, groups)
        acc = (acc[0], s[1], acc[2] + s[2] - 1, acc[3] + s[3] - 1)
    return left, right


def forward_costs(
    shapes: Sequence[Shape], groups: int, *, batch: int, size: tuple[int, int], padding: tuple[int, int] = (0, 0),
    stride: tuple[int, int] = (1, 1), has_skips: bool = False,
) -> ForwardCosts:
    """Costs of the chained and the composed forward for ``batch`` inputs of spatial ``size``.

    Padding applies before the first factor and the stride at the last, as in the layers. With skips the kernels
    must be composed from the input side, so the cheaper right-to-left order is not available.
    """
    h, w = size[0] + 2 * padding[0], size[1] + 2 * padding[1]
    chained = 0.0
    for i, (c_out, c_in_g, kh, kw) in enumerate(shapes):
        sh, sw = stride if i == len(shapes) - 1 else (1, 1)
        h, w = (h - kh) // sh + 1, (w - kw) // sw + 1
        chained += batch * max(h, 0) * max(w, 0) * c_out * c_in_g * kh * kw
    left, right = compose_costs(shapes, groups)
    k_h = sum(s[2] for s in shapes) - len(shapes) + 1
    k_w = sum(s[3] for s in shapes) - len(shapes) + 1
    apply = batch * max(h, 0) * max(w, 0) * shapes[-1][0] * shapes[0][1] * k_h * k_w
    return ForwardCosts(float(chained), (left if has_skips else min(left, right)) + apply)
