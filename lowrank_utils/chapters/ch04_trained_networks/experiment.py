"""Chapter 4 (Observation 2): the effective rank of what *trained* networks compute.

Two experiments, each a pure function of a frozen config:

* :func:`trained_activations` -- MLPs with each of the seven activations, depths 2, 4, 8, 16, trained on the same
  small regression task; ρ of the Gram matrix of their outputs on held-out inputs before and after training, and
  the Gram matrices themselves (for heat maps).
* :func:`depth_regression` -- deep linear networks trained toward a low-rank and a full-rank linear target in an
  *under-determined* regime (fewer training samples than input dimensions, so the data do not pin down the map):
  ρ at initialisation and after training, the target's own ρ, train and test loss, the least-squares and zero
  baselines, the split of each network's test error into the target's part in the unseen input directions and the
  network's own leftover there (:func:`lowrank_utils.regression.error_split`), and the history of ρ during training
  (recorded by :func:`lowrank_utils.train.loop.fit`'s ``metrics`` callback). With ``target_ranks`` set to several ranks
  the same function gives the "targets of several ranks" sweep.
* :func:`depth_one_limits` -- where gradient descent on a depth-1 network ends with unlimited steps (closed form).
* :func:`task_baselines` -- the zero and least-squares baselines of the task for any sizes and seeds.

The regression task and its training call live in :mod:`lowrank_utils.regression`, shared with chapters 5 and 6.

All sizes, step budgets and learning rates are *our* choices for a CPU course: the paper's exact settings are not
known to us. ρ is always measured on K = Φ̃Φ̃ᵀ with Φ the network's outputs on held-out inputs and Φ̃ = Φ centred
over inputs (as in chapter 2): the training inputs would say less, because a network that fits them reproduces the
target's Gram matrix there whatever its depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from lowrank_utils import validate as check
from lowrank_utils.models import ACTIVATIONS, end_to_end_weight, make_mlp
from lowrank_utils.regression import (
    OneOptimizerConfig,
    cached_task,
    display_gram,
    least_squares_map,
    linear_network,
    output_rho,
    regression_baselines,
    split_columns,
    unseen_projector,
)
from lowrank_utils.runtime import progress_bar, stable_seed


@dataclass(frozen=True)
class ActivationTrainingConfig(OneOptimizerConfig):
    """Trained MLPs for each activation and depth (all settings are our choices, not the paper's).

    Every network has ``width`` units per layer, ``width`` inputs and outputs, bias-free layers initialised as in
    :func:`~lowrank_utils.models.make_mlp` (normal, std = gain/sqrt(fan_in)), and is trained with ``optimizer`` at
    ``lr`` for at most ``steps`` full-batch steps (stopping once the train loss is below ``tolerance``) on a
    rank-``target_rank`` linear target from ``n_train`` samples. ρ is measured on ``n_test`` held-out inputs; the
    heat maps show K on the first ``n_gram`` of them for the first seed.
    """

    # quick (the defaults, ~10 s of CPU): width 32, 24 training samples, one seed, Adam at 3e-3, <= 300 steps.
    # full: width 64, 48 training samples, 256 test inputs, five seeds, at most 2,000 Adam steps at 1e-3.
    FULL: ClassVar[dict[str, Any]] = dict(width=64, n_train=48, n_test=256, n_gram=64, seeds=(0, 1, 2, 3, 4), lr=1e-3,
                                          steps=2000, log_every=2000)

    activations: tuple[str, ...] = ACTIVATIONS
    depths: tuple[int, ...] = (2, 4, 8, 16)
    n_test: int = 128
    seeds: tuple[int, ...] = (0,)
    optimizer: str = "adam"
    lr: float = 3e-3
    steps: int = 300
    log_every: int = 300  # the networks' ρ is measured once, after training
    target_rank: int = 4
    n_gram: int = 48

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "activations", check.names("activations", self.activations, ACTIVATIONS, "activation"))
        self.check_rank("target_rank", self.target_rank)
        check.integer("n_gram", self.n_gram, 2)
        if self.n_gram > self.n_test:
            raise ValueError(f"n_gram={self.n_gram} cannot exceed n_test={self.n_test} (K is shown on test inputs).")


def trained_activations(config: ActivationTrainingConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train one MLP per (activation, depth, seed); return ``(results, grams)``.

    ``results``: one row per network -- activation, depth, seed, the columns of
    :func:`~lowrank_utils.regression.train_on_task`, and the task's ``zero_test_loss`` and ``ls_test_loss``
    (:func:`~lowrank_utils.regression.regression_baselines`).
    ``grams``: the display form of K after training (see :func:`~lowrank_utils.regression.display_gram`) for the first
    seed, as tidy rows (activation, depth, row, col, value, rho).
    """
    rows, grams = [], []
    runs = [(a, d, s) for s in config.seeds for a in config.activations for d in config.depths]
    with progress_bar(len(runs), "trained networks", config.progress) as bar:
        for activation, depth, seed in runs:
            task = config.task(config.target_rank, seed)
            g = torch.Generator().manual_seed(stable_seed("mlp", seed, activation, depth, config.width))
            model = make_mlp(config.width, config.width, depth, activation=activation, generator=g)
            row, _ = config.train(model, task, config.train_config(seed), track=False)
            rows.append({"activation": activation, "depth": depth, "seed": seed, **row,
                         **regression_baselines(task)})
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


@dataclass(frozen=True)
class DepthRegressionConfig(OneOptimizerConfig):
    """Deep linear networks trained toward linear targets of several ranks (all settings are our choices).

    The fields are those of :class:`~lowrank_utils.regression.OneOptimizerConfig` (``n_train < width`` training
    samples, so the task is under-determined) plus ``target_ranks``: each (target rank, depth, seed) is one run. The
    same seed gives the same inputs for every target and the same initial network for every target.
    """

    # quick (the defaults, ~8 s of CPU): width 32, 24 training samples, targets of rank 4 and 32, depths 1-16,
    # seeds 0 and 1, SGD at lr 0.05 for at most 1,000 steps.
    # full: depths 1-32, five seeds, SGD at lr 0.02 (0.05 diverges at depth 32) for at most 4,000 steps.
    FULL: ClassVar[dict[str, Any]] = dict(depths=(1, 2, 4, 8, 16, 32), seeds=(0, 1, 2, 3, 4), lr=0.02, steps=4000,
                                          log_every=100)

    target_ranks: tuple[int, ...] = (4, 32)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "target_ranks", check.integers("target_ranks", self.target_ranks, unique=True))
        for rank in self.target_ranks:
            self.check_rank("target_ranks", rank)

    @classmethod
    def rank_sweep(cls, scale: str = "quick", **overrides: Any) -> DepthRegressionConfig:
        """The "targets of several ranks" variant of the preset: ranks 1-32 at a few depths, one seed in quick."""
        if scale == "quick":
            settings: dict[str, Any] = dict(target_ranks=(1, 2, 4, 8, 16, 32), depths=(1, 4, 16), seeds=(0,),
                                            steps=600, log_every=600)
        else:
            settings = dict(target_ranks=(1, 2, 4, 8, 16, 32), depths=(1, 2, 4, 8, 16), seeds=(0, 1, 2))
        return cls.for_scale(scale, **{**settings, **overrides})


def depth_regression(config: DepthRegressionConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train one deep linear network per (target rank, depth, seed); return ``(summary, history)``.

    ``summary``: one row per run with ``target`` ("low-rank"/"full-rank"), ``target_rank``, ``depth``, ``seed``,
    the columns of :func:`~lowrank_utils.regression.train_on_task` and those of
    :func:`~lowrank_utils.regression.split_columns` (baselines,
    ``target_unseen``, ``leftover_init``, ``leftover``, ``seen_error``, ``split_remainder``, ``leftover_rho``; NaN for
    a run that diverged). ``history``: the same keys plus ``step``, ``loss`` (train), ``rho`` and
    ``test_loss`` every ``config.log_every`` steps and at the end -- how ρ evolves during training.
    """
    rows, histories = [], []
    runs = [(r, d, s) for s in config.seeds for r in config.target_ranks for d in config.depths]
    with progress_bar(len(runs), "deep linear regression", config.progress) as bar:
        for rank, depth, seed in runs:
            task = config.task(rank, seed)
            model = linear_network(config.width, depth, seed)
            W_init = end_to_end_weight(model).detach().double()
            row, history = config.train(model, task, config.train_config(seed))
            split = split_columns(W_init, end_to_end_weight(model).detach().double(), task)
            if row["diverged"]:
                split = {k: (v if k.endswith("_test_loss") else float("nan")) for k, v in split.items()}
            keys = {"target": task.label, "target_rank": rank, "depth": depth, "seed": seed}
            rows.append({**keys, **row, **split})
            histories.append(history.assign(**keys))
            bar.update(1)
    summary = pd.DataFrame(rows).sort_values(["target_rank", "depth", "seed"], ignore_index=True)
    history = pd.concat(histories, ignore_index=True)
    front = ["target", "target_rank", "depth", "seed"]
    history = history[front + [c for c in history.columns if c not in front]]
    return summary, history


def depth_one_limits(config: DepthRegressionConfig) -> pd.DataFrame:
    """Where gradient descent on the depth-1 network of each (target rank, seed) ends with unlimited steps.

    Every gradient of the squared error with respect to W adds rows that lie in the span of the training inputs, so
    gradient descent (at any stable step size) converges to W₀Q + W*P: the initial weights W₀ kept in the unseen
    directions (Q) and the target on the seen ones (P, where W*P is the least-squares map). One row per run with
    ``target``, ``target_rank``, ``seed``, ``rho_final`` (ρ on the test inputs), ``test_loss`` and the columns of
    :func:`~lowrank_utils.regression.split_columns`; no training is done.
    """
    rows = []
    for seed in config.seeds:
        for rank in config.target_ranks:
            task = config.task(rank, seed)
            W0 = end_to_end_weight(linear_network(config.width, 1, seed)).detach().double()
            W = W0 @ unseen_projector(task.X_train) + least_squares_map(task)
            limit = torch.nn.Linear(config.width, config.width, bias=False, dtype=torch.float64)
            with torch.no_grad():
                limit.weight.copy_(W)
                test_loss = float((task.X_test.double() @ W.T - task.Y_test.double()).pow(2).mean())
            rows.append({"target": task.label, "target_rank": rank, "seed": seed, "depth": 1,
                         "rho_final": output_rho(limit, task.X_test.double(), center=config.center),
                         "test_loss": test_loss, **split_columns(W0, W, task)})
    return pd.DataFrame(rows).sort_values(["target_rank", "seed"], ignore_index=True)


def task_baselines(width: int, target_ranks: Sequence[int], n_train: int, n_test: int,
                   seeds: Sequence[int]) -> pd.DataFrame:
    """The zero and least-squares test losses (:func:`~lowrank_utils.regression.regression_baselines`) of the
    regression task for each target rank and seed, with the target's share of energy in the unseen directions."""
    rows = []
    for seed in check.integers("seeds", seeds, 0):
        for rank in check.integers("target_ranks", target_ranks):
            task = cached_task(width, width, rank, n_train, n_test, seed, True)
            base = regression_baselines(task)
            rows.append({"target_rank": rank, "target": task.label, "seed": seed, **base,
                         "unseen_share": base["ls_test_loss"] / base["zero_test_loss"]})
    return pd.DataFrame(rows)
