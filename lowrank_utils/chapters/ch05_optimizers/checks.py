"""Chapter 5's exercise checkers (see :mod:`lowrank_utils.checks` for the PASS/FAIL and grading conventions)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from lowrank_utils.chapters.ch05_optimizers.experiment import optimizer_summary
from lowrank_utils.checks import (
    Verdict,
    call_answer,
    check_choice,
    report,
    require_answer,
)
from lowrank_utils.regression import linear_network, make_regression_task


def check_random_search(fn: Callable[..., Any], name: str = "random search by hand") -> Verdict:
    """Check ``fn(model, X, Y, steps, sigma, generator)``: a (1+1) random search that returns the list of accepted
    losses (one per step), never gets worse, and leaves the best parameters in the model."""
    task = make_regression_task(4, 4, 1, n_train=3, n_test=8, seed=11)
    model = linear_network(4, 2, seed=2)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        start = float(torch.nn.functional.mse_loss(model(task.X_train), task.Y_train))
    ok, losses = call_answer(name, fn, model, task.X_train, task.Y_train, 600, 0.05, torch.Generator().manual_seed(0))
    if not ok:
        return Verdict(name, False)
    try:
        losses = [float(v) for v in losses]
    except Exception:
        return report(name, False, f"return the list of losses (one number per step), got {type(losses).__name__}.")
    if len(losses) != 600:
        return report(name, False, f"expected one loss per step (600), got {len(losses)}.")
    if any(b > a + 1e-6 for a, b in itertools.pairwise(losses)):
        return report(name, False, "the loss went up: keep a proposal only if its loss is lower than the current "
                                   "one, otherwise restore the previous parameters.")
    with torch.no_grad():
        final = float(torch.nn.functional.mse_loss(model(task.X_train), task.Y_train))
    if all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)):
        return report(name, False, "the model's parameters never changed: write accepted proposals back into it "
                                   "(torch.nn.utils.vector_to_parameters).")
    if not math.isclose(final, losses[-1], rel_tol=1e-4, abs_tol=1e-7):
        return report(name, False, f"the model ends with loss {final:.4g} but your last accepted loss is "
                                   f"{losses[-1]:.4g}: leave the best parameters in the model.")
    if final > 0.5 * start:
        return report(name, False, f"600 steps only took the loss from {start:.3g} to {final:.3g}; with sigma=0.05 "
                                   "it should at least halve. Are proposals x + sigma * noise?")
    return report(name, True)


def check_seed_summary(fn: Callable[[pd.DataFrame], Any], df: pd.DataFrame,
                       name: str = "mean and standard error over seeds") -> Verdict:
    """Check ``fn(df)`` -> a DataFrame with columns optimizer, depth, mean, sem of ``rho_final`` over seeds."""
    ok, out = call_answer(name, fn, df.copy())
    if not ok:
        return Verdict(name, False)
    if not isinstance(out, pd.DataFrame):
        return report(name, False, f"return a DataFrame, got {type(out).__name__}.")
    out = out.reset_index() if not {"optimizer", "depth"} <= set(out.columns) else out
    missing = {"optimizer", "depth", "mean", "sem"} - set(out.columns)
    if missing:
        return report(name, False, f"your DataFrame lacks the columns {sorted(missing)}.")
    ref = optimizer_summary(df)
    merged = ref.assign(optimizer=ref["optimizer"].astype(str)).merge(
        out.assign(optimizer=out["optimizer"].astype(str)), on=["optimizer", "depth"], suffixes=("", "_yours"))
    if len(merged) != len(ref):
        return report(name, False, f"expected one row per (optimizer, depth): {len(ref)} rows, matched {len(merged)}.")
    if not np.allclose(merged["mean"], merged["mean_yours"], atol=1e-9):
        return report(name, False, "your means differ: average rho_final over seeds within each (optimizer, depth).")
    if not np.allclose(merged["sem"], merged["sem_yours"], atol=1e-9):
        pop = merged["std"] * np.sqrt((merged["n"] - 1) / merged["n"]) / np.sqrt(merged["n"])
        hint = ("you used the population standard deviation (ddof=0); pandas' .std() (ddof=1) is the usual choice."
                if np.allclose(pop, merged["sem_yours"], atol=1e-9) else
                "the standard error is the standard deviation over seeds divided by sqrt(number of seeds).")
        return report(name, False, "your standard errors differ: " + hint)
    return report(name, True)


PARAMETERISATION_ANSWERS = {"sum": "same", "product": "lower"}
"""Exercise 5.2's known answers: ρ of W1 + W2 is distributed as ρ of one Gaussian matrix (a sum of independent
Gaussians is Gaussian); ρ of W2 @ W1 is lower (chapter 3: a product of random matrices spreads its spectrum)."""


def check_parameterisation_prediction(prediction: Any, key: str,
                                      name: str = "prediction: more parameters or more depth") -> Verdict:
    """Grade ``prediction[key]`` (``key`` is "sum" or "product"; each answer "lower", "same" or "higher") against
    :data:`PARAMETERISATION_ANSWERS`. One key per call, so that each part earns its own points."""
    require_answer(name, prediction)
    if not isinstance(prediction, dict) or key not in prediction:
        return report(name, False, f'give a dict with the keys "sum" and "product"; got {prediction!r}.')
    hints = {"sum": "a sum of two independent Gaussian matrices is again a Gaussian matrix, only rescaled.",
             "product": "chapter 3: a product of two random matrices has a more uneven spectrum than one."}
    return check_choice(f"{name} ({key})", prediction[key], PARAMETERISATION_ANSWERS[key],
                        ("lower", "same", "higher"), hint=hints[key])
