"""Chapter 6 (Observation 4): does the low-rank bias come from the initialisation?

:func:`initialization_comparison` trains deep linear networks from two starting points -- the default
initialisation of chapters 2-5 (normal weights, std 1/sqrt(fan_in)) and a *low-rank* initialisation where every
weight matrix is a product of two thin random matrices (:func:`low_rank_init_`) -- on the same under-determined
regression task, and records ρ at initialisation and at convergence, the train and test loss, and the history of ρ
during training.

Sizes, the rank of the low-rank initialisation, the optimizer and its settings are our choices; the paper's are
not known to us.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from lowrank_utils import validate as check
from lowrank_utils.models import linear_layers
from lowrank_utils.presets import Presets
from lowrank_utils.regression import (
    DIVERGENCE_MODES,
    cached_task,
    check_training_args,
    linear_network,
    train_on_task,
)
from lowrank_utils.runtime import progress_bar, stable_seed
from lowrank_utils.train.loop import TrainConfig

INITS: tuple[str, ...] = ("default", "low_rank")
"""``default``: the normal initialisation of :func:`~lowrank_utils.models.make_mlp`; ``low_rank``: the same
network re-initialised by :func:`low_rank_init_`."""


def low_rank_init_(model: nn.Module, rank: int, generator: torch.Generator | None = None) -> nn.Module:
    """Re-initialise every ``nn.Linear`` weight of ``model`` in place as a rank-``rank`` product A·B; return ``model``.

    A (out × rank) and B (rank × in) have standard Gaussian entries; their product is rescaled to the Frobenius
    norm the weight had before, so each layer keeps the overall scale of its previous initialisation and only the
    spread of its singular values changes (all of the energy goes into ``rank`` directions). Biases are left alone.
    A ``rank`` at or above min(out, in) gives a generic full-rank product.
    """
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ValueError(f"rank must be a positive integer, got {rank!r}.")
    layers = linear_layers(model)
    if not layers:
        raise ValueError("the model has no nn.Linear layers to re-initialise.")
    with torch.no_grad():
        for layer in layers:
            weight = layer.weight
            out_f, in_f = weight.shape
            A = torch.randn(out_f, rank, generator=generator, dtype=torch.float64)
            B = torch.randn(rank, in_f, generator=generator, dtype=torch.float64)
            product = A @ B
            scale = float(weight.double().norm())
            if scale == 0.0:
                scale = math.sqrt(out_f)  # a zero weight has no scale to keep: use std 1/sqrt(in) per entry
            weight.copy_((product * (scale / float(product.norm()))).to(weight.dtype))
    return model


@dataclass(frozen=True)
class InitComparisonConfig(Presets):
    """Settings of the initialisation comparison (all of them our choices, not the paper's).

    Deep linear networks with ``width`` units per layer (and as inputs/outputs) learn a rank-``target_rank`` linear
    map from ``n_train < width`` samples, from each initialisation in ``inits``; the low-rank initialisation uses
    rank ``init_rank`` in every layer. Each run is ``optimizer`` at ``lr`` for at most ``steps`` full-batch steps,
    stopping when the train loss falls below ``tolerance``; ρ and the test loss are logged every ``log_every``
    steps. Both initialisations start from the same network (the low-rank one re-initialises its weights).
    """

    # quick (the defaults, ~10 s of CPU): width 32, 24 training samples, rank-4 target, rank-8 init, depths 1-16,
    # seeds 0-2, Adam at lr 3e-3 for at most 1,000 steps.
    # full: depths 1-32, ten seeds, at most 3,000 Adam steps at lr 1e-3; same sizes.
    FULL = dict(depths=(1, 2, 4, 8, 16, 32), seeds=tuple(range(10)), lr=1e-3, steps=3000, log_every=50)

    inits: tuple[str, ...] = INITS
    init_rank: int = 8
    depths: tuple[int, ...] = (1, 2, 4, 8, 16)
    width: int = 32
    target_rank: int = 4
    n_train: int = 24
    n_test: int = 256
    seeds: tuple[int, ...] = (0, 1, 2)
    optimizer: str = "adam"
    lr: float = 3e-3
    steps: int = 1000
    tolerance: float = 1e-4
    log_every: int = 25
    center: bool = True
    on_divergence: str = "record"
    cpu_threads: int | None = 1
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "inits", check.names("inits", self.inits, INITS, "init"))
        object.__setattr__(self, "depths", check.integers("depths", self.depths, unique=True))
        object.__setattr__(self, "seeds", check.integers("seeds", self.seeds, 0, unique=True))
        for name in ("init_rank", "width", "target_rank", "n_train", "steps", "log_every"):
            check.integer(name, getattr(self, name))
        check.integer("n_test", self.n_test, 2)
        if self.target_rank > self.width:
            raise ValueError(f"target_rank={self.target_rank} cannot exceed width={self.width}.")
        if self.on_divergence not in DIVERGENCE_MODES:
            raise ValueError(f"on_divergence must be one of {', '.join(DIVERGENCE_MODES)}, "
                             f"got {self.on_divergence!r}.")
        check_training_args(self.optimizer, self.lr, self.tolerance, self.cpu_threads, self.device)

    def train_config(self, seed: int, **changes: Any) -> TrainConfig:
        """The :class:`~lowrank_utils.train.TrainConfig` of every run with this seed (``changes`` override fields)."""
        values: dict[str, Any] = dict(optimizer=self.optimizer, lr=self.lr, steps=self.steps,
                                      tolerance=self.tolerance, seed=seed, cpu_threads=self.cpu_threads,
                                      device=self.device, progress=False, log_every=self.log_every)
        return TrainConfig(**{**values, **changes})


def initial_network(config: InitComparisonConfig, init: str, depth: int, seed: int) -> nn.Sequential:
    """The untrained network of one run: the default deep linear network, re-initialised at low rank if asked."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose from {', '.join(INITS)}.")
    model = linear_network(config.width, depth, seed)
    if init == "low_rank":
        g = torch.Generator().manual_seed(stable_seed("low-rank init", seed, depth, config.width, config.init_rank))
        low_rank_init_(model, config.init_rank, g)
    return model


def initialization_comparison(config: InitComparisonConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train one network per (init, depth, seed); return ``(summary, history)``.

    ``summary``: init, depth, seed and the columns of :func:`~lowrank_utils.regression.train_on_task`
    (``rho_init``, ``rho_final``, ``target_rho``, ``train_loss``, ``test_loss``...). ``history``: the same keys with
    ``step``, ``loss``, ``rho`` and ``test_loss`` every ``config.log_every`` steps.
    """
    rows, histories = [], []
    runs = [(i, d, s) for s in config.seeds for i in config.inits for d in config.depths]
    with progress_bar(len(runs), "initialisations", config.progress) as bar:
        for init, depth, seed in runs:
            task = cached_task(config.width, config.width, config.target_rank, config.n_train, config.n_test, seed,
                                config.center)
            model = initial_network(config, init, depth, seed)
            row, history = train_on_task(model, task, config.train_config(seed), center=config.center,
                                         on_divergence=config.on_divergence)
            keys = {"init": init, "depth": depth, "seed": seed}
            rows.append({**keys, **row})
            histories.append(history.assign(**keys))
            bar.update(1)
    summary = pd.DataFrame(rows)
    summary["init"] = pd.Categorical(summary["init"], categories=list(config.inits))
    summary = summary.sort_values(["init", "depth", "seed"], ignore_index=True)
    history = pd.concat(histories, ignore_index=True)
    history["init"] = pd.Categorical(history["init"], categories=list(config.inits))
    front = ["init", "depth", "seed"]
    return summary, history[front + [c for c in history.columns if c not in front]]
