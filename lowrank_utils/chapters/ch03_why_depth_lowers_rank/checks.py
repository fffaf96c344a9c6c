"""Chapter 3's exercise checkers (see :mod:`lowrank_utils.checks` for the PASS/FAIL and grading conventions)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from lowrank_utils.chapters.ch03_why_depth_lowers_rank.experiment import (
    fuss_catalan_moment,
    low_rank_fraction,
)
from lowrank_utils.checks import Verdict, call_answer, number_answer, report


def check_participation_prediction(fn: Callable[[int, int], Any],
                                   name: str = "participation ratio from the Fuss–Catalan moments") -> Verdict:
    """Check ``fn(N, d)``: the large-N prediction N / (d + 1) of the participation ratio (Σ s)² / Σ s² of the squared
    singular values s = σ² of a product of d random N x N matrices (first moment 1, second moment d + 1)."""
    cases = [(32, 1), (32, 4), (64, 2), (100, 9), (16, 16), (7, 3)]
    for n, d in cases:
        value = number_answer(name, fn, n, d, call=f"fn({n}, {d})")
        if isinstance(value, Verdict):
            return value
        expected = n / (d + 1)
        if math.isclose(value, expected, rel_tol=1e-9):
            continue
        if math.isclose(value, n / d, rel_tol=1e-9):
            hint = "the second moment of σ² for depth d is d + 1 (Catalan: 2 for d = 1), not d."
        elif math.isclose(value, n * (d + 1), rel_tol=1e-9) or math.isclose(value, (d + 1) / n, rel_tol=1e-9):
            hint = "(Σ s)² ≈ (N·E[s])² and Σ s² ≈ N·E[s²]: check which one is on top."
        else:
            hint = "replace each sum by N times a moment: Σ s ≈ N·E[s], Σ s² ≈ N·E[s²]."
        return report(name, False, f"fn({n}, {d}) = {value:.4g}, expected {expected:.4g}; {hint}")
    return report(name, True)


def check_fuss_catalan_moment(fn: Callable[[int, int], Any], name: str = "Fuss–Catalan moments") -> Verdict:
    """Check a student's E[x^k] for the Fuss–Catalan law of order s (integer k) against known values."""
    cases: list[tuple[int, int, float]] = [
        (1, 1, 1), (1, 2, 2), (1, 3, 5), (1, 4, 14), (2, 2, 3), (2, 3, 12), (3, 2, 4),
    ]
    cases += [(s, k, fuss_catalan_moment(s, k)) for s in (4, 8, 16) for k in (2, 3)]
    for s, k, expected in cases:
        value = number_answer(name, fn, s, k, call=f"fn({s}, {k})")
        if isinstance(value, Verdict):
            return value
        if not math.isclose(value, expected, rel_tol=1e-6):
            hint = "for s = 1 these are the Catalan numbers 1, 2, 5, 14." if s == 1 else \
                "the k-th moment is binom((s+1)k, k) / (sk + 1)."
            return report(name, False, f"fn({s}, {k}) = {value:.6g}, expected {expected:.6g}; {hint}")
    return report(name, True)


def _fractions(out: Any) -> dict[int, float] | None:
    """A student's ``{depth: fraction}`` answer with int keys and float values, or None when it is not one."""
    try:
        return {int(k): float(v) for k, v in dict(out).items()}
    except Exception:  # whatever the answer was, it is not such a dict
        return None


def check_fraction_below(fn: Callable[[pd.DataFrame, float], Any], data: pd.DataFrame | None = None,
                         tau: float = 1.5, name: str = "the volume fraction") -> Verdict:
    """Check a student's ``fn(df, tau) -> {depth: fraction of rows with rho < tau}``.

    First on a small table with a known answer (values equal to τ do not count), then on ``data`` when given.
    """
    toy = pd.DataFrame({"depth": [1, 1, 1, 1, 2, 2, 2, 2], "rho": [3.0, 2.0, 1.5, 1.0, 1.4, 1.0, 0.5, 2.5]})
    ok, out = call_answer(name, fn, toy, 1.5)
    if not ok:
        return Verdict(name, False)
    expected = {1: 0.25, 2: 0.75}
    got = _fractions(out)
    if got is None:
        return report(name, False, f"return a dict {{depth: fraction}}, got {type(out).__name__}.")
    if got.keys() != expected.keys() or any(abs(got[d] - expected[d]) > 1e-9 for d in expected):
        hint = "count rho strictly below tau (rho < tau), per depth, divided by the number of draws at that depth."
        return report(name, False, f"on a small table you returned {got}, expected {expected}: {hint}")
    if data is not None:
        ok, out = call_answer(name, fn, data, tau)
        if not ok:
            return Verdict(name, False)
        reference = low_rank_fraction(data, [tau]).set_index("depth")["fraction"]
        got = _fractions(out)
        if got is None:
            return report(name, False, f"return a dict {{depth: fraction}}, got {type(out).__name__}.")
        if got.keys() != set(int(d) for d in reference.index) or any(
                abs(got[int(d)] - float(p)) > 1e-9 for d, p in reference.items()):
            return report(name, False, "your answer is right on the small table but not on the chapter's data; "
                                       "group by depth only.")
    return report(name, True)


def check_two_factors(fn: Callable[[torch.Tensor], Any], name: str = "a balanced two-layer factorisation") -> Verdict:
    """Check ``fn(W) -> (W1, W2)`` with W2 @ W1 = W and W1, W2 having the same singular values."""
    g = torch.Generator().manual_seed(11)
    cases = {
        "a Gaussian 6 x 6 matrix": torch.randn(6, 6, generator=g, dtype=torch.float64),
        "diag(4, 1, 0.25)": torch.diag(torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64)),
    }
    for label, W in cases.items():
        ok, out = call_answer(name, fn, W.clone())
        if not ok:
            return Verdict(name, False)
        try:
            W1, W2 = (torch.as_tensor(m, dtype=torch.float64) for m in out)
        except Exception:
            return report(name, False, "return a pair (W1, W2) of matrices.")
        if W1.shape != W.shape or W2.shape != W.shape:
            return report(name, False, f"on {label} both factors should have shape {tuple(W.shape)}.")
        if not torch.allclose(W2 @ W1, W, atol=1e-8, rtol=1e-6):
            return report(name, False, f"on {label} W2 @ W1 is not W (W1 is applied first, so the product is "
                                       "W2 @ W1).")
        s1, s2 = torch.linalg.svdvals(W1), torch.linalg.svdvals(W2)
        if not torch.allclose(s1, s2, atol=1e-6, rtol=1e-6):
            return report(name, False, f"on {label} the factors are not balanced: singular values "
                                       f"{np.round(s1.numpy(), 3)} vs {np.round(s2.numpy(), 3)}. Give each factor "
                                       "the square roots of W's singular values.")
    return report(name, True)
