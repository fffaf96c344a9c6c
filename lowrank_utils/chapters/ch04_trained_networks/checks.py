"""Chapter 4's exercise checkers (see :mod:`lowrank_utils.checks` for the PASS/FAIL and grading conventions)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from lowrank_utils.checks import Verdict, call_answer, report, require_answer
from lowrank_utils.regression import linear_network, make_regression_task, output_rho
from lowrank_utils.train.loop import TrainConfig, fit_regression


def check_rho_callback(make_callback: Callable[[torch.Tensor], Callable[..., Any]],
                       name: str = "ρ as a metrics callback") -> Verdict:
    """Check ``make_callback(X_eval)``: it must return a ``metrics(model, X)`` callback whose ``"rho"`` is ρ of the
    centred Gram matrix of ``model(X_eval)``, usable by :func:`lowrank_utils.train.loop.fit`."""
    task = make_regression_task(8, 8, 2, n_train=6, n_test=40, seed=3)
    ok, callback = call_answer(name, make_callback, task.X_test)
    if not ok:
        return Verdict(name, False)
    if not callable(callback):
        return report(name, False, f"make_callback should return a function metrics(model, X), got "
                                   f"{type(callback).__name__}.")
    model = linear_network(8, 3, seed=5)
    config = TrainConfig(optimizer="sgd", lr=0.05, steps=30, log_every=10, progress=False, device="cpu")
    try:
        result = fit_regression(model, task.X_train, task.Y_train, config, metrics=callback)
    except NotImplementedError:
        report(name, False, "this exercise is not done yet: replace the `raise NotImplementedError` line.",
               grading=False)
        raise
    except Exception as err:
        return report(name, False, f"training with your callback raised {type(err).__name__}: {err}")
    history = result.history
    if "rho" not in history.columns:
        return report(name, False, f"the callback must return a dict with the key 'rho'; the history has columns "
                                   f"{list(history.columns)}.")
    expected = output_rho(model, task.X_test)
    got = float(history["rho"].iloc[-1])
    if math.isclose(got, output_rho(model, task.X_train), abs_tol=1e-4) and not math.isclose(got, expected,
                                                                                              abs_tol=1e-4):
        return report(name, False, "you measured ρ on the training inputs X that fit passes in; use X_eval, the "
                                   "held-out inputs captured when the callback was made.")
    if not math.isclose(got, expected, abs_tol=1e-4):
        uncentred = output_rho(model, task.X_test, center=False)
        hint = ("you used the uncentred Gram matrix; subtract the mean output first."
                if math.isclose(got, uncentred, abs_tol=1e-4) else
                "ρ of the centred Gram matrix of model(X_eval): lu.gram_effective_rank(out, center=True).")
        return report(name, False, f"final ρ is {got:.4f}, expected {expected:.4f}: {hint}")
    if history["rho"].nunique() < 2:
        return report(name, False, "ρ never changes in the history: compute it from the model passed to the "
                                   "callback, not from a fixed tensor.")
    return report(name, True)


def _reference_best(summary: pd.DataFrame, target: str) -> int:
    part = summary[summary["target"] == target]
    if "diverged" in part.columns:
        part = part[~part["diverged"].astype(bool)]
    means = part.groupby("depth")["test_loss"].mean()
    return int(means.idxmin())


def check_best_test_depth(fn: Callable[[pd.DataFrame, str], Any], summary: pd.DataFrame,
                          name: str = "best depth for generalisation") -> Verdict:
    """Check ``fn(summary, target)`` -> the depth with the lowest seed-mean test loss, on the chapter's results and
    on a synthetic table (so a hard-coded answer fails)."""
    rng = np.random.default_rng(0)
    fake = pd.DataFrame([{"target": t, "depth": d, "seed": s, "diverged": False,
                          "test_loss": 1.0 + 0.1 * abs(d - best) + 0.01 * rng.standard_normal()}
                         for t, best in (("low-rank", 8), ("full-rank", 2)) for d in (1, 2, 4, 8, 16) for s in (0, 1)])
    fake.loc[(fake["depth"] == 4) & (fake["seed"] == 0) & (fake["target"] == "low-rank"), "test_loss"] = 0.5
    fake.loc[(fake["depth"] == 4) & (fake["seed"] == 1) & (fake["target"] == "low-rank"), "test_loss"] = 3.0
    cases = [("the chapter's results", summary, t) for t in pd.unique(summary["target"])]
    cases += [("a synthetic table", fake, t) for t in ("low-rank", "full-rank")]
    for label, df, target in cases:
        ok, out = call_answer(name, fn, df.copy(), target)
        if not ok:
            return Verdict(name, False)
        expected = _reference_best(df, target)
        try:
            got = int(out)
        except (TypeError, ValueError):
            return report(name, False, f"return a depth (an integer), got {out!r}.")
        if got != expected:
            hint = ("average the test loss over seeds first (groupby depth, mean), then take the depth of the "
                    "minimum (idxmin).")
            return report(name, False, f"on {label}, {target} target: you returned depth {got}, expected {expected}; "
                                       + hint)
    return report(name, True)


def _null_projector(X: torch.Tensor) -> torch.Tensor:
    """I - P with P the orthogonal projector onto the span of the rows of ``X`` (samples x features)."""
    return torch.eye(X.shape[1], dtype=X.dtype) - torch.linalg.pinv(X) @ X


def check_frozen_part(fn: Callable[[torch.Tensor, torch.Tensor], Any],
                      name: str = "the part of W that gradient descent never changes") -> Verdict:
    """Check ``fn(W0, X) -> W0 (I - X⁺X)``: the component of a one-layer linear model's initial weight along the
    input directions that the training inputs ``X`` (one row per sample) do not span. The checker also trains such
    a model by gradient descent and confirms that this component of the trained weight equals the student's."""
    g = torch.Generator().manual_seed(23)
    cases = [(4, 6, 3), (5, 8, 5), (3, 5, 1)]
    for out_dim, in_dim, n in cases:
        W0 = torch.randn(out_dim, in_dim, generator=g, dtype=torch.float64)
        X = torch.randn(n, in_dim, generator=g, dtype=torch.float64)
        Y = torch.randn(n, out_dim, generator=g, dtype=torch.float64)
        ok, out = call_answer(name, fn, W0.clone(), X.clone())
        if not ok:
            return Verdict(name, False)
        try:
            got = torch.as_tensor(out, dtype=torch.float64)
        except Exception:
            return report(name, False, f"return a matrix, got {type(out).__name__}.")
        label = f"W0 {out_dim}x{in_dim} with {n} training inputs"
        if got.shape != W0.shape:
            return report(name, False, f"for {label} return a {out_dim}x{in_dim} matrix (the shape of W0), got "
                                       f"{tuple(got.shape)}.")
        expected = W0 @ _null_projector(X)
        if not torch.allclose(got, expected, atol=1e-8, rtol=1e-6):
            if torch.allclose(got, W0 - expected, atol=1e-8, rtol=1e-6):
                hint = "you returned the part along the training inputs, the part training does change."
            else:
                hint = ("project W0's rows onto the orthogonal complement of the span of the rows of X: "
                        "W0 @ (I - pinv(X) @ X).")
            return report(name, False, f"for {label}: {hint}")
        # the claim itself: gradient descent on the squared error leaves this component where it started
        W = W0.clone().requires_grad_(True)
        opt = torch.optim.SGD([W], lr=0.05)
        for _ in range(200):
            opt.zero_grad()
            torch.nn.functional.mse_loss(X @ W.T, Y).backward()
            opt.step()
        trained = W.detach() @ _null_projector(X)
        if not torch.allclose(trained, got, atol=1e-8, rtol=1e-6):  # pragma: no cover - a fact about GD
            return report(name, False, f"for {label} the trained weight moved in the directions you returned.")
    return report(name, True)


UNCONSTRAINED_DIRECTIONS = 8
"""Exercise 4.2's known answer: 24 generic training inputs in 32 dimensions leave 32 - 24 directions unconstrained."""


def check_unconstrained_count(value: Any, name: str = "directions the data leave free") -> Verdict:
    """Check the number of input directions chapter 4's training set (24 samples in 32 dimensions) does not span."""
    require_answer(name, value)
    return check_close_int(name, value, UNCONSTRAINED_DIRECTIONS,
                           "24 generic vectors span a 24-dimensional subspace of the 32-dimensional input space.")


def check_close_int(name: str, value: Any, expected: int, hint: str) -> Verdict:
    """PASS when ``value`` is the integer ``expected``."""
    try:
        got = float(value)
    except (TypeError, ValueError):
        return report(name, False, f"expected a whole number, got {value!r}.")
    return report(name, got == expected, f"you gave {value!r}. {hint}")
