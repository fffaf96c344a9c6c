"""The teacher-student regression task of chapters 4-6: a linear target (of chosen rank), few training samples,
held-out test inputs, and one call that trains a network on it and measures ρ of its outputs.

ρ is always measured on K = Φ̃Φ̃ᵀ with Φ the network's outputs on held-out inputs and Φ̃ = Φ centred over inputs
(as in chapter 2): the training inputs would say less, because a network that fits them reproduces the target's
Gram matrix there whatever its depth."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from lowrank_utils import validate as check
from lowrank_utils.models import make_mlp
from lowrank_utils.presets import Presets
from lowrank_utils.rank import entropy_effective_rank, gram_effective_rank, gram_features
from lowrank_utils.runtime import stable_seed
from lowrank_utils.train.loop import (
    OPTIMIZERS,
    TrainConfig,
    TrainingDiverged,
    fit_regression,
)

DIVERGENCE_MODES = ("record", "raise")


@dataclass(frozen=True)
class RegressionTask:
    """Inputs, targets and the target map of one linear regression problem ``y = W* x``.

    ``target_rho`` is ρ of the centred Gram matrix of the targets on the test inputs: the ρ a network that
    generalised perfectly would have.
    """

    X_train: Tensor
    Y_train: Tensor
    X_test: Tensor
    Y_test: Tensor
    target: Tensor
    rank: int
    seed: int
    target_rho: float

    @property
    def label(self) -> str:
        """``"full-rank"`` when the target has the largest possible rank, else ``"low-rank"``."""
        return "full-rank" if self.rank == min(self.target.shape) else "low-rank"


def make_target(out_features: int, in_features: int, rank: int, seed: int = 0) -> Tensor:
    """A random rank-``rank`` matrix W* = UV (Gaussian factors), scaled so that ‖W*‖_F² = ``out_features``.

    With standard Gaussian inputs each output then has variance 1 on average, so predicting 0 gives a test mean
    squared error of about 1: losses are comparable across ranks and sizes.
    """
    check.integer("out_features", out_features)
    check.integer("in_features", in_features)
    check.integer("rank", rank)
    if rank > min(out_features, in_features):
        raise ValueError(f"rank={rank} exceeds min(out_features, in_features) = {min(out_features, in_features)}.")
    g = torch.Generator().manual_seed(stable_seed("target", seed, out_features, in_features, rank))
    U = torch.randn(out_features, rank, generator=g, dtype=torch.float64)
    V = torch.randn(rank, in_features, generator=g, dtype=torch.float64)
    W = U @ V
    return (W * math.sqrt(out_features) / W.norm()).float()


def make_regression_task(
    in_features: int, out_features: int, rank: int, *, n_train: int, n_test: int, seed: int = 0, center: bool = True
) -> RegressionTask:
    """Gaussian inputs and targets ``Y = X W*ᵀ`` for a rank-``rank`` target (see :func:`make_target`).

    The inputs depend only on (``seed``, sizes), not on the rank, so tasks with different targets share them.
    The regime is under-determined when ``n_train < in_features``.
    """
    check.integer("n_train", n_train)
    check.integer("n_test", n_test, 2)
    W = make_target(out_features, in_features, rank, seed)
    g = torch.Generator().manual_seed(stable_seed("inputs", seed, in_features, n_train, n_test))
    X_train = torch.randn(n_train, in_features, generator=g)
    X_test = torch.randn(n_test, in_features, generator=g)
    Y_test = X_test @ W.T
    return RegressionTask(
        X_train=X_train, Y_train=X_train @ W.T, X_test=X_test, Y_test=Y_test, target=W, rank=rank, seed=seed,
        target_rho=_rho_of_features(Y_test, center),
    )


def _rho_of_features(phi: Tensor, center: bool = True) -> float:
    """ρ(K) for features Φ (n × f), from the smaller of ΦΦᵀ and ΦᵀΦ (same non-zero spectrum); 0 for a constant map."""
    phi = phi.detach().double().cpu()
    if not bool(torch.isfinite(phi).all()):
        return math.nan
    centred = gram_features(phi, center=center)
    if float(centred.norm()) <= 1e-12 * max(1.0, float(centred.abs().max())):
        return 0.0  # every input mapped to the same output: the limit of an ever more concentrated spectrum
    return float(gram_effective_rank(phi, center=center))


def output_rho(model: nn.Module, X: Tensor, *, center: bool = True) -> float:
    """ρ (nats) of the Gram matrix of ``model``'s outputs on the inputs ``X`` (rows), centred over inputs by default."""
    with torch.no_grad():
        return _rho_of_features(model(X), center)


def display_gram(phi: Tensor, *, center: bool = True) -> tuple[np.ndarray, float]:
    """K of features Φ for a heat map, and ρ(K).

    K is shown as K_ij / sqrt(K_ii K_jj) (values in [-1, 1], so every panel shares one colour scale), with rows
    and columns ordered by K's leading eigenvector: when K is close to low rank this ordering makes its blocks
    visible.
    """
    phi = phi.detach().double().cpu()
    if center:
        phi = phi - phi.mean(dim=0, keepdim=True)
    K = phi @ phi.T
    rho = _rho_of_features(phi, center=False)
    _, vecs = torch.linalg.eigh(K)
    lead = vecs[:, -1]
    lead = lead * torch.sign(lead[lead.abs().argmax()])  # a fixed sign, so the order does not flip at random
    order = torch.argsort(lead, descending=True)
    K = K[order][:, order]
    d = torch.diagonal(K).clamp_min(torch.finfo(K.dtype).tiny).sqrt()
    return (K / (d[:, None] * d[None, :])).clamp(-1, 1).numpy(), rho


def _test_loss(model: nn.Module, task: RegressionTask) -> float:
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(model(task.X_test), task.Y_test))


def train_on_task(
    model: nn.Module,
    task: RegressionTask,
    train_config: TrainConfig,
    *,
    center: bool = True,
    on_divergence: str = "record",
    track: bool = True,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Train ``model`` on ``task`` (mean squared error) and measure it before and after.

    Returns a summary row -- ``rho_init``, ``rho_final`` (ρ on the test inputs), ``target_rho``, ``train_loss_init``,
    ``train_loss``, ``test_loss_init``, ``test_loss``, ``steps``, ``evaluations``, ``stop_reason``, ``diverged`` --
    and the training history (``step``, ``loss``, and with ``track`` also ``rho`` and ``test_loss`` at every logged
    step, from the ``metrics`` callback). A diverging run raises :class:`~lowrank_utils.train.loop.TrainingDiverged`
    when ``on_divergence="raise"``; with ``"record"`` it is kept as a row with ``diverged=True`` and NaN results.
    """
    if on_divergence not in DIVERGENCE_MODES:
        raise ValueError(f"on_divergence must be one of {', '.join(DIVERGENCE_MODES)}, got {on_divergence!r}.")
    device = torch.device("cpu") if train_config.device is None else torch.device(train_config.device)
    model = model.to(device)
    X_test, Y_test = task.X_test.to(device), task.Y_test.to(device)
    on_device = replace(task, X_test=X_test, Y_test=Y_test)
    row: dict[str, Any] = {
        "target_rank": task.rank,
        "target_rho": task.target_rho,
        "rho_init": output_rho(model, X_test, center=center),
        "train_loss_init": _loss(model, task.X_train.to(device), task.Y_train.to(device)),
        "test_loss_init": _test_loss(model, on_device),
    }

    metrics: Callable[[nn.Module, Tensor], dict[str, float]] | None = None
    if track:
        def metrics(m: nn.Module, _X: Tensor) -> dict[str, float]:
            out = m(X_test)
            return {"rho": _rho_of_features(out, center),
                    "test_loss": float(torch.nn.functional.mse_loss(out, Y_test))}

    try:
        result = fit_regression(model, task.X_train, task.Y_train, train_config, metrics=metrics)
    except TrainingDiverged as err:
        if on_divergence == "raise":
            raise
        row.update(rho_final=math.nan, train_loss=math.nan, test_loss=math.nan, steps=err.step + 1,
                   evaluations=math.nan, stop_reason="diverged", diverged=True)
        return row, err.history.assign(diverged=True)
    row.update(
        rho_final=output_rho(model, X_test, center=center),
        train_loss=result.final_loss,
        test_loss=_test_loss(model, on_device),
        steps=result.steps,
        evaluations=result.evaluations,
        stop_reason=result.stop_reason,
        diverged=False,
    )
    return row, result.history.assign(diverged=False)


def _loss(model: nn.Module, X: Tensor, Y: Tensor) -> float:
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(model(X), Y))


@dataclass(frozen=True)
class RegressionConfig(Presets):
    """What every regression experiment of chapters 4-6 shares: the task's sizes, the seeds, when a run stops and
    where it runs.

    Deep linear networks with ``width`` units in every layer (inputs and outputs too) learn a linear map from
    ``n_train`` samples (fewer than ``width``: under-determined); ρ and the test loss are measured on ``n_test``
    held-out inputs, centred over inputs when ``center``. Every run stops once the train loss falls below
    ``tolerance``. A run whose loss explodes is recorded with ``diverged=True`` (``on_divergence="record"``) or
    stops everything with a clear error (``"raise"``). The chapters' configs derive from this one and add their own
    fields; the defaults here are the quick preset of chapters 4 and 6.
    """

    depths: tuple[int, ...] = (1, 2, 4, 8, 16)
    width: int = 32
    n_train: int = 24
    n_test: int = 256
    seeds: tuple[int, ...] = (0, 1)
    tolerance: float = 1e-4
    center: bool = True
    on_divergence: str = "record"
    cpu_threads: int | None = 1
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", check.integers("depths", self.depths, unique=True))
        object.__setattr__(self, "seeds", check.integers("seeds", self.seeds, 0, unique=True))
        check.integer("width", self.width)
        check.integer("n_train", self.n_train)
        check.integer("n_test", self.n_test, 2)
        check.number("tolerance", self.tolerance, allow_zero=True)
        if self.on_divergence not in DIVERGENCE_MODES:
            raise ValueError(f"on_divergence must be one of {', '.join(DIVERGENCE_MODES)}, "
                             f"got {self.on_divergence!r}.")
        if self.cpu_threads is not None:
            check.integer("cpu_threads", self.cpu_threads)
        check.device(self.device)

    def check_rank(self, name: str, rank: int) -> None:
        """Raise a clear error unless ``rank`` (field ``name``) is a possible rank of a ``width`` × ``width`` map."""
        check.integer(name, rank)
        if rank > self.width:
            raise ValueError(f"{name}={rank} cannot exceed width={self.width}, the largest possible rank.")

    def task(self, rank: int, seed: int) -> RegressionTask:
        """The task of this config's sizes with a rank-``rank`` target, drawn from ``seed`` (cached)."""
        return cached_task(self.width, self.width, rank, self.n_train, self.n_test, seed, self.center)

    def train(self, model: nn.Module, task: RegressionTask, train_config: TrainConfig, *,
              track: bool = True) -> tuple[dict[str, Any], pd.DataFrame]:
        """:func:`train_on_task` with this config's centring and handling of divergence."""
        return train_on_task(model, task, train_config, center=self.center, on_divergence=self.on_divergence,
                             track=track)


@dataclass(frozen=True)
class OneOptimizerConfig(RegressionConfig):
    """A :class:`RegressionConfig` whose every run is ``optimizer`` at ``lr`` for at most ``steps`` full-batch steps,
    logging ρ and the test loss every ``log_every`` steps (chapters 4 and 6; chapter 5 gives each optimizer its own)."""

    optimizer: str = "sgd"
    lr: float = 0.05
    steps: int = 1000
    log_every: int = 50

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
        check.number("lr", self.lr)
        check.integer("steps", self.steps)
        check.integer("log_every", self.log_every)

    def train_config(self, seed: int, **changes: Any) -> TrainConfig:
        """The :class:`~lowrank_utils.train.loop.TrainConfig` of every run with this seed (``changes``: overrides)."""
        values: dict[str, Any] = dict(optimizer=self.optimizer, lr=self.lr, steps=self.steps,
                                      tolerance=self.tolerance, seed=seed, cpu_threads=self.cpu_threads,
                                      device=self.device, progress=False, log_every=self.log_every)
        return TrainConfig(**{**values, **changes})


_TASKS: dict[tuple[Any, ...], RegressionTask] = {}


def cached_task(d_in: int, d_out: int, rank: int, n_train: int, n_test: int, seed: int,
                 center: bool) -> RegressionTask:
    """make_regression_task, memoised within the process (the tasks are pure functions of their arguments)."""
    key = (d_in, d_out, rank, n_train, n_test, seed, center)
    if key not in _TASKS:
        if len(_TASKS) > 256:
            _TASKS.clear()
        _TASKS[key] = make_regression_task(d_in, d_out, rank, n_train=n_train, n_test=n_test, seed=seed,
                                           center=center)
    return _TASKS[key]


LINEAR_INITS: tuple[str, ...] = ("default", "orthogonal")
"""Starts of :func:`linear_network`: ``default`` (normal weights, std 1/sqrt(width)) and ``orthogonal``."""


def orthogonal_init_(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Set every square ``nn.Linear`` weight of ``model`` to a random orthogonal matrix (Haar-distributed); return it.

    All singular values are 1, so ‖W‖_F² = width, the expected squared norm of the default normal initialisation
    (std 1/sqrt(width)): the same overall scale with the flattest possible spectrum. A product of orthogonal matrices
    is orthogonal, so a deep linear network started this way computes a map of the same (maximal) ρ at every depth.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise ValueError("the model has no nn.Linear layers to re-initialise.")
    with torch.no_grad():
        for layer in layers:
            out_f, in_f = layer.weight.shape
            if out_f != in_f:
                raise ValueError(f"orthogonal_init_ needs square weights, got a {out_f}x{in_f} layer.")
            A = torch.randn(out_f, in_f, generator=generator, dtype=torch.float64)
            Q, R = torch.linalg.qr(A)
            # the sign fix makes Q Haar-distributed (QR alone would bias it by the sign convention of R's diagonal)
            layer.weight.copy_((Q * torch.sign(torch.diagonal(R))).to(layer.weight.dtype))
    return model


def linear_network(width: int, depth: int, seed: int, init: str = "default") -> nn.Sequential:
    """The deep linear network of chapters 4-6 for (``width``, ``depth``, ``seed``).

    ``init="default"``: normal weights, std 1/sqrt(width); ``"orthogonal"``: every layer a random orthogonal matrix
    (see :func:`orthogonal_init_`), drawn from its own seed so that it does not depend on the default weights.
    """
    check.names("init", (init,), LINEAR_INITS, "init")
    g = torch.Generator().manual_seed(stable_seed("linear", seed, depth, width))
    model = make_mlp(width, width, depth, activation="linear", generator=g)
    if init == "orthogonal":
        orthogonal_init_(model, torch.Generator().manual_seed(stable_seed("orthogonal", seed, depth, width)))
    return model


# ----------------------------------------------------------------------------------------------------------------
# Baselines and where the test error of a linear map comes from


def least_squares_map(task: RegressionTask) -> Tensor:
    """The minimum-norm least-squares map Ŵ = (X⁺Y)ᵀ of ``task`` (float64).

    It fits the training data and maps every input direction the training inputs leave unseen to zero; here it
    equals W*P, the target restricted to the span of the training inputs.
    """
    X, Y = task.X_train.double(), task.Y_train.double()
    return (torch.linalg.pinv(X) @ Y).T


def unseen_projector(X: Tensor) -> Tensor:
    """I − X⁺X (float64): the orthogonal projector onto the input directions that the rows of ``X`` do not span."""
    X = X.double()
    return torch.eye(X.shape[1], dtype=torch.float64) - torch.linalg.pinv(X) @ X


def regression_baselines(task: RegressionTask) -> dict[str, float]:
    """Test MSE of two fits that need no network: ``zero_test_loss`` (predict 0) and ``ls_test_loss`` (the
    minimum-norm least-squares map of :func:`least_squares_map`)."""
    X_test, Y_test = task.X_test.double(), task.Y_test.double()
    W = least_squares_map(task)
    return {"zero_test_loss": float(Y_test.pow(2).mean()),
            "ls_test_loss": float((X_test @ W.T - Y_test).pow(2).mean())}


def error_split(W: Tensor, task: RegressionTask) -> dict[str, float]:
    """Where the test error of a linear map ``W`` (out × in) on ``task`` comes from, on the task's test inputs.

    With P the projector onto the span of the training inputs and Q = I − P (mean squared errors over test inputs
    and outputs, like the test loss):

    * ``target_unseen`` -- the target's own part in the unseen directions, ‖x(W*Q)ᵀ‖²: what nothing fitted to the
      data can know. It is exactly the test loss of the minimum-norm least-squares map, which predicts 0 there.
    * ``leftover`` -- the map's own part in the unseen directions, ‖x(WQ)ᵀ‖² (for a network: the initial weights it
      kept there plus whatever training put there).
    * ``seen_error`` -- its error on the seen directions, ‖x((W − W*)P)ᵀ‖² (zero once the data are fitted exactly).
    * ``test_loss`` -- the measured test loss of W, and ``split_remainder`` = test_loss − (the three parts): the
      cross terms, which are zero on average because the data carry no information about W*Q.
    """
    W = W.detach().double().cpu()
    target = task.target.double()
    if W.shape != target.shape:
        raise ValueError(f"W has shape {tuple(W.shape)}, the task's target {tuple(target.shape)}.")
    Q = unseen_projector(task.X_train)
    P = torch.eye(Q.shape[0], dtype=torch.float64) - Q
    X_test = task.X_test.double()

    def energy(A: Tensor) -> float:
        return float((X_test @ A.T).pow(2).mean())

    parts = {"target_unseen": energy(target @ Q), "leftover": energy(W @ Q), "seen_error": energy((W - target) @ P)}
    test_loss = energy(W - target)
    return {**parts, "test_loss": test_loss, "split_remainder": test_loss - sum(parts.values())}


def split_columns(W_init: Tensor, W_final: Tensor, task: RegressionTask) -> dict[str, float]:
    """The summary columns of one trained linear network: :func:`regression_baselines`, :func:`error_split` of its
    end-to-end map after training (without its ``test_loss``, which the run records already), ``leftover_init`` (the
    leftover of the initial map) and ``leftover_rho`` (ρ of the leftover matrix WQ itself: how many directions it
    spreads over, which the test loss does not see)."""
    split = error_split(W_final, task)
    split.pop("test_loss")
    Q = unseen_projector(task.X_train)
    leftover = W_final.detach().double().cpu() @ Q
    return {**regression_baselines(task), **split, "leftover_init": error_split(W_init, task)["leftover"],
            "leftover_rho": float(entropy_effective_rank(leftover)) if float(leftover.norm()) > 0 else 0.0}


def seed_summary(df: pd.DataFrame, value: str, by: Sequence[str]) -> pd.DataFrame:
    """Mean, standard deviation, standard error and count of ``value`` over seeds, per group ``by`` (diverged runs
    are left out and counted in ``n_diverged``)."""
    missing = ({value} | set(by)) - set(df.columns)
    if missing:
        raise ValueError(f"seed_summary needs columns {sorted(missing)} in the DataFrame.")
    data = df.copy()
    if "diverged" in data.columns:
        data["_div"] = data["diverged"].astype(bool)
    else:
        data["_div"] = False
    grouped = data.groupby(list(by), observed=True)
    out = grouped[value].agg(mean="mean", std="std", n="count").reset_index()
    out["sem"] = out["std"] / np.sqrt(out["n"].clip(lower=1))
    out["n_diverged"] = grouped["_div"].sum().to_numpy()
    return out


def best_depths(summary: pd.DataFrame, value: str = "test_loss", by: Sequence[str] = ("target",)) -> pd.DataFrame:
    """The depth with the lowest seed-mean ``value`` in each group ``by`` (e.g. the best test loss per target)."""
    means = seed_summary(summary, value, [*by, "depth"])
    idx = means.groupby(list(by), observed=True)["mean"].idxmin()
    return means.loc[idx, [*by, "depth", "mean"]].rename(columns={"mean": value}).reset_index(drop=True)
