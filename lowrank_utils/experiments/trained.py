"""Chapter 4 (Observation 2): the effective rank of what *trained* networks compute.

Two experiments, each a pure function of a frozen config:

* :func:`trained_activations` -- MLPs with each of the seven activations, depths 2, 4, 8, 16, trained on the same
  small regression task; ρ of the Gram matrix of their outputs on held-out inputs before and after training, and
  the Gram matrices themselves (for heat maps).
* :func:`depth_regression` -- deep linear networks trained toward a low-rank and a full-rank linear target in an
  *under-determined* regime (fewer training samples than input dimensions, so the data do not pin down the map):
  ρ at initialisation and at convergence, the target's own ρ, train and test loss, and the history of ρ during
  training (recorded by :func:`lowrank_utils.train.fit`'s ``metrics`` callback). With ``target_ranks`` set to
  several ranks the same function gives the "targets of several ranks" sweep.

The building blocks (:func:`make_regression_task`, :func:`output_rho`, :func:`train_on_task`) are shared with the
optimizer (chapter 5) and initialisation (chapter 6) experiments.

All sizes, step budgets and learning rates are *our* choices for a CPU course: the paper's exact settings are not
known to us. ρ is always measured on K = Φ̃Φ̃ᵀ with Φ the network's outputs on held-out inputs and Φ̃ = Φ centred
over inputs (as in chapter 2): the training inputs would say less, because a network that fits them reproduces the
target's Gram matrix there whatever its depth.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import platform
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..models import ACTIVATIONS, make_mlp
from ..rank import entropy_effective_rank
from ..runtime import progress_enabled
from ..train import OPTIMIZERS, TrainConfig, TrainingDiverged, fit_regression

__all__ = [
    "RegressionTask",
    "ActivationTrainingConfig",
    "DepthRegressionConfig",
    "stable_seed",
    "make_regression_task",
    "make_target",
    "linear_network",
    "output_rho",
    "display_gram",
    "train_on_task",
    "trained_activations",
    "depth_regression",
    "seed_summary",
    "best_depths",
    "PROVENANCE_FIELDS",
    "save_results",
    "load_results",
]

_DIVERGENCE_MODES = ("record", "raise")


# ----------------------------------------------------------------------------------------------------------------
# Validation helpers shared by the configs of chapters 4-6


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from printable parts, independent of Python's per-run string hashing and of list positions."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _ints(name: str, values: Sequence[int], minimum: int = 1) -> tuple[int, ...]:
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of integers, got {values!r}.") from None
    if not values:
        raise ValueError(f"{name} must not be empty.")
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            raise ValueError(f"{name} must contain integers >= {minimum}, got {v!r}.")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} contains duplicates: {values}.")
    return values


def _choices(name: str, values: Sequence[str], allowed: Sequence[str], what: str) -> tuple[str, ...]:
    """``values`` as a non-empty tuple of names from ``allowed``; a ValueError names the first bad one."""
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} must not be empty.")
    for value in values:
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}; choose from {', '.join(allowed)}.")
    return values


def _int(name: str, value: object, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _positive(name: str, value: object, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value < 0 if allow_zero else value <= 0):  # type: ignore[operator]
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}.")


def _device(value: str) -> None:
    try:
        torch.device(value)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {value!r} is not a torch device name; use 'cpu', 'cuda' or 'mps'.") from err


def _scale_preset(cls: Any, scale: str, overrides: dict[str, object]) -> Any:
    if scale not in ("quick", "full"):
        raise ValueError(f"scale must be 'quick' or 'full' (see lowrank_utils.get_scale), got {scale!r}.")
    return cls.quick(**overrides) if scale == "quick" else cls.full(**overrides)


# ----------------------------------------------------------------------------------------------------------------
# The regression task


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
    _int("out_features", out_features)
    _int("in_features", in_features)
    _int("rank", rank)
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
    _int("n_train", n_train)
    _int("n_test", n_test, 2)
    W = make_target(out_features, in_features, rank, seed)
    g = torch.Generator().manual_seed(stable_seed("inputs", seed, in_features, n_train, n_test))
    X_train = torch.randn(n_train, in_features, generator=g)
    X_test = torch.randn(n_test, in_features, generator=g)
    Y_test = X_test @ W.T
    return RegressionTask(
        X_train=X_train, Y_train=X_train @ W.T, X_test=X_test, Y_test=Y_test, target=W, rank=rank, seed=seed,
        target_rho=_rho_of_features(Y_test, center),
    )


# ----------------------------------------------------------------------------------------------------------------
# Measuring ρ


def _rho_of_features(phi: Tensor, center: bool = True) -> float:
    """ρ(K) for features Φ (n × f), from the smaller of ΦΦᵀ and ΦᵀΦ (same non-zero spectrum); 0 for a constant map."""
    phi = phi.detach().double().cpu()
    if center:
        phi = phi - phi.mean(dim=0, keepdim=True)
    if not bool(torch.isfinite(phi).all()):
        return math.nan
    if float(phi.norm()) <= 1e-12 * max(1.0, float(phi.abs().max())):
        return 0.0  # every input mapped to the same output: the limit of an ever more concentrated spectrum
    small = phi @ phi.T if phi.shape[0] <= phi.shape[1] else phi.T @ phi
    return float(entropy_effective_rank((small + small.T) / 2, symmetric_psd=True))


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


# ----------------------------------------------------------------------------------------------------------------
# One training run


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
    step, from the ``metrics`` callback). A diverging run raises :class:`~lowrank_utils.train.TrainingDiverged`
    when ``on_divergence="raise"``; with ``"record"`` it is kept as a row with ``diverged=True`` and NaN results.
    """
    if on_divergence not in _DIVERGENCE_MODES:
        raise ValueError(f"on_divergence must be one of {', '.join(_DIVERGENCE_MODES)}, got {on_divergence!r}.")
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


def _progress(total: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=desc, disable=not progress_enabled(enabled), leave=False)


# ----------------------------------------------------------------------------------------------------------------
# Experiment 1: seven activations


@dataclass(frozen=True)
class ActivationTrainingConfig:
    """Trained MLPs for each activation and depth (all settings are our choices, not the paper's).

    Every network has ``width`` units per layer, ``width`` inputs and outputs, bias-free layers initialised as in
    :func:`~lowrank_utils.models.make_mlp` (normal, std = gain/sqrt(fan_in)), and is trained with ``optimizer`` at
    ``lr`` for at most ``steps`` full-batch steps (stopping once the train loss is below ``tolerance``) on a
    rank-``target_rank`` linear target from ``n_train`` samples. ρ is measured on ``n_test`` held-out inputs; the
    heat maps show K on the first ``n_gram`` of them for the first seed.
    """

    activations: tuple[str, ...] = ACTIVATIONS
    depths: tuple[int, ...] = (2, 4, 8, 16)
    width: int = 32
    target_rank: int = 4
    n_train: int = 24
    n_test: int = 128
    n_gram: int = 48
    seeds: tuple[int, ...] = (0,)
    optimizer: str = "adam"
    lr: float = 3e-3
    steps: int = 300
    tolerance: float = 1e-4
    center: bool = True
    cpu_threads: int | None = 1
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "activations", _choices("activations", self.activations, ACTIVATIONS, "activation"))
        object.__setattr__(self, "depths", _ints("depths", self.depths))
        object.__setattr__(self, "seeds", _ints("seeds", self.seeds, 0))
        for name in ("width", "target_rank", "n_train", "steps"):
            _int(name, getattr(self, name))
        _int("n_test", self.n_test, 2)
        _int("n_gram", self.n_gram, 2)
        if self.n_gram > self.n_test:
            raise ValueError(f"n_gram={self.n_gram} cannot exceed n_test={self.n_test} (K is shown on test inputs).")
        if self.target_rank > self.width:
            raise ValueError(f"target_rank={self.target_rank} cannot exceed width={self.width}.")
        _check_training(self.optimizer, self.lr, self.tolerance, self.cpu_threads, self.device)

    @classmethod
    def quick(cls, **overrides: Any) -> "ActivationTrainingConfig":
        """CPU preset (~10 s of CPU time): width 32, 24 training samples, one seed, Adam (lr 3e-3), <= 300 steps."""
        return cls(**overrides)

    @classmethod
    def full(cls, **overrides: Any) -> "ActivationTrainingConfig":
        """Larger preset: width 64, 48 training samples, 256 test inputs, 5 seeds, at most 2,000 Adam steps at 1e-3."""
        settings: dict[str, Any] = dict(width=64, n_train=48, n_test=256, n_gram=64, seeds=(0, 1, 2, 3, 4),
                                        lr=1e-3, steps=2000)
        return cls(**{**settings, **overrides})

    @classmethod
    def from_scale(cls, scale: str, **overrides: Any) -> "ActivationTrainingConfig":
        """The ``quick`` or ``full`` preset by name (as returned by :func:`lowrank_utils.runtime.get_scale`)."""
        return _scale_preset(cls, scale, overrides)

    def train_config(self, seed: int) -> TrainConfig:
        """The :class:`~lowrank_utils.train.TrainConfig` of every run with this seed."""
        return TrainConfig(optimizer=self.optimizer, lr=self.lr, steps=self.steps, tolerance=self.tolerance,
                           seed=seed, cpu_threads=self.cpu_threads, device=self.device, progress=False,
                           log_every=self.steps)


def _check_training(optimizer: str, lr: float, tolerance: float, cpu_threads: int | None, device: str) -> None:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
    _positive("lr", lr)
    _positive("tolerance", tolerance, allow_zero=True)
    if cpu_threads is not None:
        _int("cpu_threads", cpu_threads)
    _device(device)


def trained_activations(config: ActivationTrainingConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train one MLP per (activation, depth, seed); return ``(results, grams)``.

    ``results``: one row per network -- activation, depth, seed, and the columns of :func:`train_on_task`.
    ``grams``: the display form of K after training (see :func:`display_gram`) for the first seed, as tidy rows
    (activation, depth, row, col, value, rho).
    """
    rows, grams = [], []
    runs = [(a, d, s) for s in config.seeds for a in config.activations for d in config.depths]
    with _progress(len(runs), "trained networks", config.progress) as bar:
        for activation, depth, seed in runs:
            task = _cached_task(config.width, config.width, config.target_rank, config.n_train, config.n_test, seed,
                                config.center)
            g = torch.Generator().manual_seed(stable_seed("mlp", seed, activation, depth, config.width))
            model = make_mlp(config.width, config.width, depth, activation=activation, generator=g)
            row, _ = train_on_task(model, task, config.train_config(seed), center=config.center, track=False)
            rows.append({"activation": activation, "depth": depth, "seed": seed, **row})
            if seed == config.seeds[0] and not row["diverged"]:
                with torch.no_grad():
                    phi = model(task.X_test[: config.n_gram].to(config.device))
                K, rho = display_gram(phi, center=config.center)
                n = K.shape[0]
                r, c = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
                grams.append(pd.DataFrame({"activation": activation, "depth": depth, "row": r.ravel(),
                                           "col": c.ravel(), "value": K.ravel(), "rho": rho}))
            bar.update(1)
    results = pd.DataFrame(rows)
    results["activation"] = pd.Categorical(results["activation"], categories=list(config.activations))
    results = results.sort_values(["activation", "depth", "seed"], ignore_index=True)
    gram_df = pd.concat(grams, ignore_index=True) if grams else pd.DataFrame(
        columns=["activation", "depth", "row", "col", "value", "rho"])
    return results, gram_df


_TASKS: dict[tuple[Any, ...], RegressionTask] = {}


def _cached_task(d_in: int, d_out: int, rank: int, n_train: int, n_test: int, seed: int,
                 center: bool) -> RegressionTask:
    """make_regression_task, memoised within the process (the tasks are pure functions of their arguments)."""
    key = (d_in, d_out, rank, n_train, n_test, seed, center)
    if key not in _TASKS:
        if len(_TASKS) > 256:
            _TASKS.clear()
        _TASKS[key] = make_regression_task(d_in, d_out, rank, n_train=n_train, n_test=n_test, seed=seed,
                                           center=center)
    return _TASKS[key]


# ----------------------------------------------------------------------------------------------------------------
# Experiment 2: deep linear regression toward low- and full-rank targets


@dataclass(frozen=True)
class DepthRegressionConfig:
    """Deep linear networks trained toward linear targets of several ranks (all settings are our choices).

    Inputs and outputs have ``width`` dimensions and so does every layer; there are ``n_train < width`` training
    samples (under-determined) and ``n_test`` held-out inputs. Each (target rank, depth, seed) is one run of
    ``optimizer`` at ``lr`` for at most ``steps`` full-batch steps, stopping early when the train loss falls below
    ``tolerance``; ρ and the test loss are recorded every ``log_every`` steps. The same seed gives the same inputs
    for every target and the same initial network for every target. A run whose loss explodes is recorded with
    ``diverged=True`` (``on_divergence="record"``) or stops everything with a clear error (``"raise"``).
    """

    depths: tuple[int, ...] = (1, 2, 4, 8, 16)
    target_ranks: tuple[int, ...] = (4, 32)
    width: int = 32
    n_train: int = 24
    n_test: int = 256
    seeds: tuple[int, ...] = (0, 1)
    optimizer: str = "sgd"
    lr: float = 0.05
    steps: int = 1000
    tolerance: float = 1e-4
    log_every: int = 50
    center: bool = True
    on_divergence: str = "record"
    cpu_threads: int | None = 1
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", _ints("depths", self.depths))
        object.__setattr__(self, "target_ranks", _ints("target_ranks", self.target_ranks))
        object.__setattr__(self, "seeds", _ints("seeds", self.seeds, 0))
        for name in ("width", "n_train", "steps", "log_every"):
            _int(name, getattr(self, name))
        _int("n_test", self.n_test, 2)
        too_big = [r for r in self.target_ranks if r > self.width]
        if too_big:
            raise ValueError(f"target_ranks {too_big} exceed width={self.width}, the largest possible rank.")
        if self.on_divergence not in _DIVERGENCE_MODES:
            raise ValueError(f"on_divergence must be one of {', '.join(_DIVERGENCE_MODES)}, "
                             f"got {self.on_divergence!r}.")
        _check_training(self.optimizer, self.lr, self.tolerance, self.cpu_threads, self.device)

    @classmethod
    def quick(cls, **overrides: Any) -> "DepthRegressionConfig":
        """CPU preset (~8 s of CPU time): width 32, 24 training samples, targets of rank 4 and 32, depths 1-16, seeds
        0 and 1, SGD at lr 0.05 for at most 1,000 steps."""
        return cls(**overrides)

    @classmethod
    def full(cls, **overrides: Any) -> "DepthRegressionConfig":
        """Larger preset: depths 1-32, five seeds, SGD at lr 0.02 (0.05 diverges at depth 32) for at most 4,000
        steps; same width and sample sizes as the quick preset."""
        settings: dict[str, Any] = dict(depths=(1, 2, 4, 8, 16, 32), seeds=(0, 1, 2, 3, 4), lr=0.02, steps=4000,
                                        log_every=100)
        return cls(**{**settings, **overrides})

    @classmethod
    def from_scale(cls, scale: str, **overrides: Any) -> "DepthRegressionConfig":
        """The ``quick`` or ``full`` preset by name (as returned by :func:`lowrank_utils.runtime.get_scale`)."""
        return _scale_preset(cls, scale, overrides)

    @classmethod
    def rank_sweep(cls, scale: str = "quick", **overrides: Any) -> "DepthRegressionConfig":
        """The "targets of several ranks" variant of the preset: ranks 1-32 at a few depths, one seed in quick."""
        if scale == "quick":
            settings: dict[str, Any] = dict(target_ranks=(1, 2, 4, 8, 16, 32), depths=(1, 4, 16), seeds=(0,),
                                            steps=600, log_every=600)
        else:
            settings = dict(target_ranks=(1, 2, 4, 8, 16, 32), depths=(1, 2, 4, 8, 16), seeds=(0, 1, 2))
        return cls.from_scale(scale, **{**settings, **overrides})

    def train_config(self, seed: int) -> TrainConfig:
        """The :class:`~lowrank_utils.train.TrainConfig` of every run with this seed."""
        return TrainConfig(optimizer=self.optimizer, lr=self.lr, steps=self.steps, tolerance=self.tolerance,
                           seed=seed, cpu_threads=self.cpu_threads, device=self.device, progress=False,
                           log_every=self.log_every)


def linear_network(width: int, depth: int, seed: int) -> nn.Sequential:
    """The deep linear network of chapters 4-6 for (``width``, ``depth``, ``seed``): normal init, std 1/sqrt(width)."""
    g = torch.Generator().manual_seed(stable_seed("linear", seed, depth, width))
    return make_mlp(width, width, depth, activation="linear", generator=g)


def depth_regression(config: DepthRegressionConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train one deep linear network per (target rank, depth, seed); return ``(summary, history)``.

    ``summary``: one row per run with ``target`` ("low-rank"/"full-rank"), ``target_rank``, ``depth``, ``seed`` and
    the columns of :func:`train_on_task`. ``history``: the same keys plus ``step``, ``loss`` (train), ``rho`` and
    ``test_loss`` every ``config.log_every`` steps and at the end -- how ρ evolves during training.
    """
    rows, histories = [], []
    runs = [(r, d, s) for s in config.seeds for r in config.target_ranks for d in config.depths]
    with _progress(len(runs), "deep linear regression", config.progress) as bar:
        for rank, depth, seed in runs:
            task = _cached_task(config.width, config.width, rank, config.n_train, config.n_test, seed, config.center)
            model = linear_network(config.width, depth, seed)
            row, history = train_on_task(model, task, config.train_config(seed), center=config.center,
                                         on_divergence=config.on_divergence)
            keys = {"target": task.label, "target_rank": rank, "depth": depth, "seed": seed}
            rows.append({**keys, **row})
            histories.append(history.assign(**keys))
            bar.update(1)
    summary = pd.DataFrame(rows).sort_values(["target_rank", "depth", "seed"], ignore_index=True)
    history = pd.concat(histories, ignore_index=True)
    front = ["target", "target_rank", "depth", "seed"]
    history = history[front + [c for c in history.columns if c not in front]]
    return summary, history


# ----------------------------------------------------------------------------------------------------------------
# Summaries


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


# ----------------------------------------------------------------------------------------------------------------
# Stored results of bigger runs, with provenance

PROVENANCE_FIELDS: tuple[str, ...] = ("command", "config", "hardware", "torch", "date", "seeds", "wall_time_s")
"""Fields every stored result must carry (see :func:`save_results`)."""


def save_results(frames: Mapping[str, pd.DataFrame], config: Any, path: str | Path, *, command: str,
                 wall_time_s: float, hardware: str | None = None, date: str | None = None, note: str = "") -> Path:
    """Write DataFrames and their provenance (command, config, hardware, torch version, date, seeds, wall time) as
    JSON at ``path``; ``hardware`` defaults to the GPU's name or the CPU's, ``date`` (when the run ended) to now."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if hardware is None:
        hardware = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
                    else f"{platform.processor() or platform.machine()} CPU")
    payload = {
        "command": command,
        "config": dataclasses.asdict(config),
        "hardware": hardware,
        "torch": torch.__version__,
        "date": date or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seeds": list(getattr(config, "seeds", ())),
        "wall_time_s": round(float(wall_time_s), 1),
        "note": note,
        "frames": {name: json.loads(df.to_json(orient="records")) for name, df in frames.items()},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)
    return path


def load_results(path: str | Path) -> tuple[dict[str, pd.DataFrame], dict[str, Any]] | None:
    """The DataFrames and provenance stored by :func:`save_results`, or ``None`` when no file is at ``path``.

    A file missing any of :data:`PROVENANCE_FIELDS` is refused with ``ValueError``: results whose origin cannot be
    told are not shown.
    """
    path = Path(path)
    if not path.is_file():
        return None
    payload = json.loads(path.read_text())
    missing = [f for f in PROVENANCE_FIELDS if payload.get(f) in (None, "", [])]
    if missing:
        raise ValueError(f"{path} lacks the provenance fields {missing}; re-create it with save_results().")
    frames = {name: pd.DataFrame(rows) for name, rows in payload["frames"].items()}
    return frames, {k: v for k, v in payload.items() if k != "frames"}
