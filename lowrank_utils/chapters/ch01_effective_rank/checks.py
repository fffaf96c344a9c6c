"""Chapter 1's exercise checkers (see :mod:`lowrank_utils.checks` for the PASS/FAIL and grading conventions)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from lowrank_utils.checks import Verdict, check_close, number_answer, report


def check_entropy_rank_function(
    fn: Callable[[torch.Tensor], Any], name: str = "effective rank from scratch"
) -> Verdict:
    """Check a student's ρ(A) against known values, including matrices with exact zero singular values."""
    cases = [
        ("the 8x8 identity", torch.eye(8, dtype=torch.float64), math.log(8)),
        ("a rank-1 matrix", torch.ones(5, 7, dtype=torch.float64), 0.0),
        ("diag(3, 1, 0, 0)", torch.diag(torch.tensor([3.0, 1.0, 0.0, 0.0], dtype=torch.float64)),
         -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))),
    ]
    for label, A, expected in cases:
        value = number_answer(name, fn, A, call=f"on {label} your function")
        if isinstance(value, Verdict):
            return value
        if math.isnan(value):
            return report(name, False, f"on {label} you returned NaN: a zero singular value gives 0 * log 0. "
                                       "Drop zeros first, or use torch.special.entr.")
        if abs(value - expected) > 1e-6:
            return report(name, False, f"on {label} you returned {value:.6f}, expected {expected:.6f}. "
                                       "Normalise the singular values to sum to 1 and use the natural log.")
    return report(name, True)


def check_diag_entropy(value: Any, name: str = "ρ of diag(4, 2, 1, 1)") -> Verdict:
    """Check the value a student computed for ρ(diag(4, 2, 1, 1)) (by hand or with code)."""
    s = torch.tensor([4.0, 2.0, 1.0, 1.0], dtype=torch.float64)
    p = s / s.sum()
    expected = float(-(p * p.log()).sum())
    return check_close(name, value, expected, tol=1e-3,
                       hint="normalise (4, 2, 1, 1) by its sum first, then take -Σ p log p with the natural log.")
