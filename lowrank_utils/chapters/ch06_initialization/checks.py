"""Chapter 6's exercise checkers (see :mod:`lowrank_utils.checks` for the PASS/FAIL and grading conventions)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from lowrank_utils.checks import Verdict, call_answer, mistake_hint, number_answer, report
from lowrank_utils.models import linear_layers


def check_low_rank_init(fn: Callable[[nn.Module, int, torch.Generator], Any], name: str = "low-rank initialisation"
                        ) -> Verdict:
    """Check ``fn(model, rank, generator)``: every linear weight becomes rank ``rank`` with its Frobenius norm kept."""
    model = nn.Sequential(nn.Linear(12, 10, bias=False), nn.ReLU(), nn.Linear(10, 10), nn.Linear(10, 6, bias=False))
    norms = [float(layer.weight.detach().norm()) for layer in linear_layers(model)]
    biases = [layer.bias.detach().clone() for layer in linear_layers(model) if layer.bias is not None]
    for rank in (1, 3):
        ok, _ = call_answer(name, fn, model, rank, torch.Generator().manual_seed(rank))
        if not ok:
            return Verdict(name, False)
        for i, layer in enumerate(linear_layers(model)):
            W = layer.weight.detach().double()
            r = int(torch.linalg.matrix_rank(W, rtol=1e-5))  # float32 rounding is not rank
            if r != rank:
                return report(name, False, f"layer {i} ({tuple(W.shape)}) has rank {r} after rank={rank}; make each "
                                           "weight a product A @ B of an (out x rank) and a (rank x in) matrix.")
            if not math.isclose(float(W.norm()), norms[i], rel_tol=1e-4):
                return report(name, False, f"layer {i} has Frobenius norm {float(W.norm()):.4g}, but had "
                                           f"{norms[i]:.4g}: rescale the product to the norm the weight had before.")
    after = [layer.bias for layer in linear_layers(model) if layer.bias is not None]
    if len(after) != len(biases) or any(not torch.equal(a, b) for a, b in zip(biases, after, strict=True)):
        return report(name, False, "the biases changed; only the weights should be re-initialised.")
    return report(name, True)


def _reference_gap(summary: pd.DataFrame, column: str) -> pd.Series:
    means = summary.groupby(["init", "depth"], observed=True)[column].mean().unstack("init")
    return (means["low_rank"] - means["default"]).abs()


def check_init_gap(fn: Callable[[pd.DataFrame, str], Any], summary: pd.DataFrame,
                   name: str = "the gap between initialisations") -> Verdict:
    """Check ``fn(summary, column)`` -> a Series indexed by depth: the absolute difference between the seed-mean
    of ``column`` under the low-rank init and under the default init."""
    for column in ("rho_init", "rho_final"):
        ok, out = call_answer(name, fn, summary.copy(), column)
        if not ok:
            return Verdict(name, False)
        expected = _reference_gap(summary, column)
        try:
            got = pd.Series(out).astype(float)
            got.index = got.index.astype(int)
            got = got.reindex(expected.index)
        except Exception:
            return report(name, False, f"return a pandas Series indexed by depth, got {type(out).__name__}.")
        if got.isna().any() or not np.allclose(got.to_numpy(), expected.to_numpy(), atol=1e-9):
            return report(name, False, f"for {column} your gaps differ from |mean(low_rank) − mean(default)| per depth "
                                       "(average over seeds first, then subtract, then take the absolute value).")
    return report(name, True)


def check_rho_ceiling(fn: Callable[[int, int, int, int], Any], name: str = "the ceiling of the low-rank start"
                      ) -> Verdict:
    """Check ``fn(k, width, n_inputs, depth)``: the largest ρ the centred Gram matrix of a depth-``depth`` linear
    network's outputs on ``n_inputs`` inputs can have when every weight has rank ``k``: log min(k, width, n - 1)."""
    cases = [(8, 32, 256, 1), (8, 32, 256, 16), (1, 32, 256, 4), (40, 32, 256, 2), (8, 32, 5, 3), (3, 16, 64, 8)]
    for k, width, n, depth in cases:
        label = f"k={k}, width={width}, n_inputs={n}, depth={depth}"
        value = number_answer(name, fn, k, width, n, depth, call=f"for {label} your function (a number of nats)")
        if isinstance(value, Verdict):
            return value
        expected = math.log(min(k, width, n - 1))
        if math.isclose(value, expected, abs_tol=1e-9):
            continue
        hint = mistake_hint(value, [
            (math.log(min(k, width, n)),
             "centring over n inputs removes one direction: the centred K has rank at most n - 1."),
            (math.log(k), "the rank is also limited by the width and by the number of inputs."),
        ], "ρ ≤ log(rank of K); a product of rank-k matrices has rank ≤ k whatever the depth, and centring n inputs "
           "leaves rank ≤ n - 1.", abs_tol=1e-9)
        return report(name, False, f"for {label} you gave {value:.4f}, expected {expected:.4f}: {hint}")
    return report(name, True)
