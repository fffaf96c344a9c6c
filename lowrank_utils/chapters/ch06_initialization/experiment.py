"""Chapter 6 (Observation 4): does the low-rank bias come from the initialisation?

:func:`initialization_comparison` trains deep linear networks from several starting points (:data:`INITS`) on the
same under-determined regression task and records ρ at initialisation and after training, the train and test loss,
the least-squares baseline and the split of the test error (:func:`lowrank_utils.regression.error_split`), and the
history of ρ during training. Two of the starts hold ρ at initialisation fixed across depth -- ``orthogonal`` (high)
and ``low_rank`` (low) -- so that depth is not confounded with a starting ρ that itself falls with depth, as it
does for the default start and for a low-rank product in every layer (``low_rank_every_layer``).
:func:`init_scale_sweep` repeats the comparison at several initial scales.

Sizes, the rank of the low-rank initialisation, the optimizer and its settings are our choices; the paper's are
not known to us.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import pandas as pd
import torch
from torch import nn

from lowrank_utils import validate as check
from lowrank_utils.models import end_to_end_weight, linear_layers
from lowrank_utils.regression import (
    OneOptimizerConfig,
    linear_network,
    split_columns,
)
from lowrank_utils.runtime import progress_bar, stable_seed

INITS: tuple[str, ...] = ("default", "orthogonal", "low_rank", "low_rank_every_layer")
"""The starts of :func:`initial_network`.

* ``default`` -- the normal initialisation of :func:`~lowrank_utils.models.make_mlp` (std 1/sqrt(width)); its ρ
  falls with depth (chapter 2).
* ``orthogonal`` -- every layer a random orthogonal matrix: the end-to-end map is orthogonal, so ρ at
  initialisation is maximal and the same at every depth.
* ``low_rank`` -- the first layer a rank-``init_rank`` product AB (Frobenius norm sqrt(width), the default's
  expected norm), every later layer orthogonal. The first layer is drawn without regard to depth, and orthogonal
  layers do not change the Gram matrix of the outputs, so the network computes a map with the *same* Gram matrix,
  hence the same ρ, at every depth.
* ``low_rank_every_layer`` -- every layer re-initialised by :func:`low_rank_init_` (a rank-``init_rank`` product in
  each layer): a product of many such matrices is ever more concentrated, so its ρ falls with depth like the
  default's, and depth is not isolated.
"""


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
class InitComparisonConfig(OneOptimizerConfig):
    """Settings of the initialisation comparison (all of them our choices, not the paper's).

    Deep linear networks with ``width`` units per layer (and as inputs/outputs) learn a rank-``target_rank`` linear
    map from ``n_train < width`` samples, from each initialisation in ``inits`` (see :data:`INITS`; the low-rank
    ones use rank ``init_rank``), every layer multiplied by ``init_scale ** (1 / depth)`` so that the end-to-end map
    starts ``init_scale`` times as large as that start's own (1: unchanged). Each run is ``optimizer`` at ``lr`` for
    at most ``steps`` full-batch steps, stopping when the train loss falls below ``tolerance``; ρ and the test loss
    are logged every ``log_every`` steps.
    """

    # quick (the defaults, ~10 s of CPU): width 32, 24 training samples, rank-4 target, rank-8 init, depths 1-16,
    # seeds 0 and 1, Adam at lr 3e-3 for at most 1,000 steps.
    # full: depths 1-32, ten seeds, at most 3,000 Adam steps at lr 1e-3; same sizes.
    FULL: ClassVar[dict[str, Any]] = dict(depths=(1, 2, 4, 8, 16, 32), seeds=tuple(range(10)), lr=1e-3, steps=3000,
                                          log_every=50)

    optimizer: str = "adam"
    lr: float = 3e-3
    log_every: int = 25
    target_rank: int = 4
    inits: tuple[str, ...] = ("default", "orthogonal", "low_rank")
    init_rank: int = 8
    init_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_rank("target_rank", self.target_rank)
        self.check_rank("init_rank", self.init_rank)
        check.number("init_scale", self.init_scale)
        object.__setattr__(self, "inits", check.names("inits", self.inits, INITS, "init"))


def low_rank_matrix(width: int, rank: int, seed: int) -> torch.Tensor:
    """A random rank-``rank`` square matrix AB (Gaussian factors), scaled to Frobenius norm sqrt(``width``), the
    expected norm of a default layer; a pure function of (``width``, ``rank``, ``seed``)."""
    check.integer("width", width)
    check.integer("rank", rank)
    if rank > width:
        raise ValueError(f"rank={rank} cannot exceed width={width}.")
    g = torch.Generator().manual_seed(stable_seed("low-rank start", seed, width, rank))
    product = (torch.randn(width, rank, generator=g, dtype=torch.float64)
               @ torch.randn(rank, width, generator=g, dtype=torch.float64))
    return product * (math.sqrt(width) / float(product.norm()))


def initial_network(config: InitComparisonConfig, init: str, depth: int, seed: int) -> nn.Sequential:
    """The untrained network of one run (see :data:`INITS` for the starts), scaled by ``config.init_scale``."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose from {', '.join(INITS)}.")
    start = "orthogonal" if init in ("orthogonal", "low_rank") else "default"
    model = linear_network(config.width, depth, seed, init=start)
    layers = linear_layers(model)
    with torch.no_grad():
        if init == "low_rank":
            layers[0].weight.copy_(low_rank_matrix(config.width, config.init_rank, seed).to(layers[0].weight.dtype))
        elif init == "low_rank_every_layer":
            g = torch.Generator().manual_seed(stable_seed("low-rank init", seed, depth, config.width,
                                                          config.init_rank))
            low_rank_init_(model, config.init_rank, g)
        if config.init_scale != 1.0:
            for layer in layers:
                layer.weight.mul_(config.init_scale ** (1.0 / depth))
    return model


def initialization_comparison(config: InitComparisonConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train one network per (init, depth, seed); return ``(summary, history)``.

    ``summary``: init, init_scale, depth, seed, the columns of :func:`~lowrank_utils.regression.train_on_task`
    (``rho_init``, ``rho_final``, ``target_rho``, ``train_loss``, ``test_loss``...) and those of
    :func:`~lowrank_utils.regression.split_columns` (baselines and the split of the test error; NaN for a run that
    diverged). ``history``: the same keys with ``step``, ``loss``, ``rho`` and ``test_loss`` every
    ``config.log_every`` steps.
    """
    rows, histories = [], []
    runs = [(i, d, s) for s in config.seeds for i in config.inits for d in config.depths]
    with progress_bar(len(runs), "initialisations", config.progress) as bar:
        for init, depth, seed in runs:
            task = config.task(config.target_rank, seed)
            model = initial_network(config, init, depth, seed)
            W_init = end_to_end_weight(model).detach().double()
            row, history = config.train(model, task, config.train_config(seed))
            split = split_columns(W_init, end_to_end_weight(model).detach().double(), task)
            if row["diverged"]:
                split = {k: (v if k.endswith("_test_loss") else float("nan")) for k, v in split.items()}
            keys = {"init": init, "init_scale": config.init_scale, "depth": depth, "seed": seed}
            rows.append({**keys, **row, **split})
            histories.append(history.assign(**keys))
            bar.update(1)
    summary = pd.DataFrame(rows)
    summary["init"] = pd.Categorical(summary["init"], categories=list(config.inits))
    summary = summary.sort_values(["init", "depth", "seed"], ignore_index=True)
    history = pd.concat(histories, ignore_index=True)
    history["init"] = pd.Categorical(history["init"], categories=list(config.inits))
    front = ["init", "init_scale", "depth", "seed"]
    return summary, history[front + [c for c in history.columns if c not in front]]


INIT_SCALES: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0)
"""The initial scales of the end-to-end map that :func:`init_scale_sweep` tries by default (1 = the start as is)."""


def init_scale_sweep(config: InitComparisonConfig, scales: Sequence[float] = INIT_SCALES) -> pd.DataFrame:
    """:func:`initialization_comparison` at each initial scale in ``scales`` (replacing ``config.init_scale``); the
    summaries stacked, one row per (init, init_scale, depth, seed)."""
    if isinstance(scales, (int, float)) or not len(scales):
        raise ValueError(f"scales must be a non-empty sequence of numbers > 0, got {scales!r}.")
    frames = [initialization_comparison(replace(config, init_scale=check.number("scale", c)))[0] for c in scales]
    return pd.concat(frames, ignore_index=True)
