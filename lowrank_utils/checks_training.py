"""Exercise checkers for chapters 4 (trained networks), 5 (optimizers) and 6 (initialisation).

Same conventions as :mod:`lowrank_utils.checks`: a checker prints PASS or FAIL with a hint and returns a
:class:`~lowrank_utils.checks.Verdict`; an answer that still raises ``NotImplementedError`` is reported and
re-raised, so an unfinished exercise stops the notebook where it is.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from .checks import Verdict, _call, _unfinished, check_choice, report
from .experiments.optimizers import optimizer_summary
from .experiments.trained import linear_network, make_regression_task, output_rho
from .models import linear_layers
from .train import TrainConfig, fit_regression

__all__ = [
    "check_rho_callback",
    "check_best_test_depth",
    "check_random_search",
    "check_seed_summary",
    "check_low_rank_init",
    "check_init_gap",
    "check_frozen_part",
    "check_unconstrained_count",
    "check_parameterisation_prediction",
    "check_rho_ceiling",
    "UNCONSTRAINED_DIRECTIONS",
    "PARAMETERISATION_ANSWERS",
]


# ----------------------------------------------------------------------------------------------------------------
# Chapter 4


def check_rho_callback(make_callback: Callable[[torch.Tensor], Callable[..., Any]],
                       name: str = "ρ as a metrics callback") -> Verdict:
    """Check ``make_callback(X_eval)``: it must return a ``metrics(model, X)`` callback whose ``"rho"`` is ρ of the
    centred Gram matrix of ``model(X_eval)``, usable by :func:`lowrank_utils.train.fit`."""
    task = make_regression_task(8, 8, 2, n_train=6, n_test=40, seed=3)
    ok, callback = _call(name, make_callback, task.X_test)
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
        ok, out = _call(name, fn, df.copy(), target)
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


# ----------------------------------------------------------------------------------------------------------------
# Chapter 5


def check_random_search(fn: Callable[..., Any], name: str = "random search by hand") -> Verdict:
    """Check ``fn(model, X, Y, steps, sigma, generator)``: a (1+1) random search that returns the list of accepted
    losses (one per step), never gets worse, and leaves the best parameters in the model."""
    task = make_regression_task(4, 4, 1, n_train=3, n_test=8, seed=11)
    model = linear_network(4, 2, seed=2)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        start = float(torch.nn.functional.mse_loss(model(task.X_train), task.Y_train))
    ok, losses = _call(name, fn, model, task.X_train, task.Y_train, 600, 0.05, torch.Generator().manual_seed(0))
    if not ok:
        return Verdict(name, False)
    try:
        losses = [float(v) for v in losses]
    except Exception:
        return report(name, False, f"return the list of losses (one number per step), got {type(losses).__name__}.")
    if len(losses) != 600:
        return report(name, False, f"expected one loss per step (600), got {len(losses)}.")
    if any(b > a + 1e-6 for a, b in zip(losses, losses[1:])):
        return report(name, False, "the loss went up: keep a proposal only if its loss is lower than the current "
                                   "one, otherwise restore the previous parameters.")
    with torch.no_grad():
        final = float(torch.nn.functional.mse_loss(model(task.X_train), task.Y_train))
    if all(torch.equal(a, b) for a, b in zip(before, model.parameters())):
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
    ok, out = _call(name, fn, df.copy())
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


# ----------------------------------------------------------------------------------------------------------------
# Chapter 6


def check_low_rank_init(fn: Callable[[nn.Module, int, torch.Generator], Any], name: str = "low-rank initialisation"
                        ) -> Verdict:
    """Check ``fn(model, rank, generator)``: every linear weight becomes rank ``rank`` with its Frobenius norm kept."""
    model = nn.Sequential(nn.Linear(12, 10, bias=False), nn.ReLU(), nn.Linear(10, 10), nn.Linear(10, 6, bias=False))
    norms = [float(layer.weight.detach().norm()) for layer in linear_layers(model)]
    biases = [layer.bias.detach().clone() for layer in linear_layers(model) if layer.bias is not None]
    for rank in (1, 3):
        ok, _ = _call(name, fn, model, rank, torch.Generator().manual_seed(rank))
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
    if any(not torch.equal(a, b) for a, b in zip(biases, after)):
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
        ok, out = _call(name, fn, summary.copy(), column)
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


# ----------------------------------------------------------------------------------------------------------------
# New exercises: 4.2 (what gradient descent cannot change), 5.2 (parameters are not depth), 6.2 (the ceiling of
# the low-rank start)


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
        ok, out = _call(name, fn, W0.clone(), X.clone())
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
    _unfinished(name, value)
    return check_close_int(name, value, UNCONSTRAINED_DIRECTIONS,
                           "24 generic vectors span a 24-dimensional subspace of the 32-dimensional input space.")


def check_close_int(name: str, value: Any, expected: int, hint: str) -> Verdict:
    """PASS when ``value`` is the integer ``expected``."""
    try:
        got = float(value)
    except (TypeError, ValueError):
        return report(name, False, f"expected a whole number, got {value!r}.")
    return report(name, got == expected, f"you gave {value!r}. {hint}")


PARAMETERISATION_ANSWERS = {"sum": "same", "product": "lower"}
"""Exercise 5.2's known answers: ρ of W1 + W2 is distributed as ρ of one Gaussian matrix (a sum of independent
Gaussians is Gaussian); ρ of W2 @ W1 is lower (chapter 3: a product of random matrices spreads its spectrum)."""


def check_parameterisation_prediction(prediction: Any, key: str,
                                      name: str = "prediction: more parameters or more depth") -> Verdict:
    """Grade ``prediction[key]`` (``key`` is "sum" or "product"; each answer "lower", "same" or "higher") against
    :data:`PARAMETERISATION_ANSWERS`. One key per call, so that each part earns its own points."""
    _unfinished(name, prediction)
    if not isinstance(prediction, dict) or key not in prediction:
        return report(name, False, f'give a dict with the keys "sum" and "product"; got {prediction!r}.')
    hints = {"sum": "a sum of two independent Gaussian matrices is again a Gaussian matrix, only rescaled.",
             "product": "chapter 3: a product of two random matrices has a more uneven spectrum than one."}
    return check_choice(f"{name} ({key})", prediction[key], PARAMETERISATION_ANSWERS[key],
                        ("lower", "same", "higher"), hint=hints[key])


def check_rho_ceiling(fn: Callable[[int, int, int, int], Any], name: str = "the ceiling of the low-rank start"
                      ) -> Verdict:
    """Check ``fn(k, width, n_inputs, depth)``: the largest ρ the centred Gram matrix of a depth-``depth`` linear
    network's outputs on ``n_inputs`` inputs can have when every weight has rank ``k``: log min(k, width, n - 1)."""
    cases = [(8, 32, 256, 1), (8, 32, 256, 16), (1, 32, 256, 4), (40, 32, 256, 2), (8, 32, 5, 3), (3, 16, 64, 8)]
    for k, width, n, depth in cases:
        ok, out = _call(name, fn, k, width, n, depth)
        if not ok:
            return Verdict(name, False)
        try:
            value = float(out)
        except (TypeError, ValueError):
            return report(name, False, f"return a number (nats), got {out!r}.")
        expected = math.log(min(k, width, n - 1))
        if math.isclose(value, expected, abs_tol=1e-9):
            continue
        label = f"k={k}, width={width}, n_inputs={n}, depth={depth}"
        if math.isclose(value, math.log(min(k, width, n)), abs_tol=1e-9):
            hint = "centring over n inputs removes one direction: the centred K has rank at most n - 1."
        elif math.isclose(value, math.log(k), abs_tol=1e-9):
            hint = "the rank is also limited by the width and by the number of inputs."
        else:
            hint = ("ρ ≤ log(rank of K); a product of rank-k matrices has rank ≤ k whatever the depth, and centring "
                    "n inputs leaves rank ≤ n - 1.")
        return report(name, False, f"for {label} you gave {value:.4f}, expected {expected:.4f}: {hint}")
    return report(name, True)
