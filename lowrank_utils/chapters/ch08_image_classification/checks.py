"""Chapter 8's exercise checkers (see :mod:`lowrank_utils.checks` for the PASS/FAIL and grading conventions)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from lowrank_utils.checks import Verdict, as_numbers, call_answer, mistake_hint, number_answer, report


def check_embedding_rho(fn: Callable[[nn.Module, torch.Tensor], Any],
                        name: str = "effective rank of the penultimate embeddings") -> Verdict:
    """Check ``fn(model, images) -> ρ``: the effective rank of the centred Gram matrix of ``model.features(images)``
    (the embeddings the classifier reads), for small CNNs in eval mode."""
    from lowrank_utils.models import SmallCNN
    from lowrank_utils.rank import gram_effective_rank

    for seed, width in ((0, 4), (1, 8)):
        torch.manual_seed(seed)
        model = SmallCNN(1, 10, width, hidden=32).eval()
        images = torch.randn(48, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            phi = model.features(images).double()
            logits = model(images).double()
        expected = float(gram_effective_rank(phi, center=True))
        value = number_answer(name, fn, model, images.clone(), call="your function (one number, ρ)")
        if isinstance(value, Verdict):
            return value
        if math.isclose(value, expected, rel_tol=1e-4, abs_tol=1e-6):
            continue
        hint = mistake_hint(value, [
            (float(gram_effective_rank(phi)),
             "you measured the uncentred Gram matrix: subtract the mean embedding (over images) first."),
            (float(gram_effective_rank(logits, center=True)),
             "you measured the logits; the embeddings are model.features(images), the classifier's input."),
        ], "ρ = entropy of the normalised eigenvalues of K = (Φ − mean Φ)(Φ − mean Φ)ᵀ with Φ = model.features(x).",
           rel_tol=1e-4)
        return report(name, False, f"you returned {value:.4f}, expected {expected:.4f}: {hint}")
    return report(name, True)


def check_welch_t(fn: Callable[[Any, Any], Any], name: str = "Welch's t statistic") -> Verdict:
    """Check ``fn(a, b) -> (t, df)``: Welch's t statistic for mean(a) − mean(b) and its Welch–Satterthwaite degrees
    of freedom, against hand-computed values."""
    cases = [
        (np.array([0.86, 0.87, 0.88]), np.array([0.84, 0.85, 0.87])),
        (np.array([1.0, 2.0, 4.0, 7.0]), np.array([3.0, 3.5, 2.5])),
        (np.array([10.0, 12.0]), np.array([9.0, 9.5, 11.0, 8.0, 10.0])),
    ]
    for a, b in cases:
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        t = (a.mean() - b.mean()) / math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
        ok, out = call_answer(name, fn, a.copy(), b.copy())
        if not ok:
            return Verdict(name, False)
        got = as_numbers(out, 2)
        if got is None:
            return report(name, False, f"return a pair (t, df) of numbers; got {out!r}.")
        if abs(got[0] + t) < 1e-6 * max(1.0, abs(t)) and abs(t) > 1e-9:
            return report(name, False, "your t has the wrong sign: use mean(a) − mean(b) in the numerator.")
        if not math.isclose(got[0], t, rel_tol=1e-6, abs_tol=1e-9):
            va0, vb0 = a.var() / len(a), b.var() / len(b)
            if math.isclose(got[0], (a.mean() - b.mean()) / math.sqrt(va0 + vb0), rel_tol=1e-6):
                hint = "use the sample variance with ddof=1 (divide by n − 1), not by n."
            else:
                hint = "t = (mean(a) − mean(b)) / sqrt(s_a²/n_a + s_b²/n_b): each group keeps its own variance."
            return report(name, False, f"on a={a.tolist()}, b={b.tolist()} you gave t = {got[0]:.4f}, expected "
                                       f"{t:.4f}. {hint}")
        if not math.isclose(got[1], df, rel_tol=1e-6):
            hint = ("df = (s_a²/n_a + s_b²/n_b)² / [(s_a²/n_a)²/(n_a − 1) + (s_b²/n_b)²/(n_b − 1)]; "
                    + ("n_a + n_b − 2 is Student's df for equal variances, not Welch's."
                       if math.isclose(got[1], len(a) + len(b) - 2) else ""))
            return report(name, False, f"on a={a.tolist()}, b={b.tolist()} you gave df = {got[1]:.4f}, expected "
                                       f"{df:.4f}. {hint}")
    return report(name, True)
