"""Chapter 5 (Observation 3): is the low-rank bias a property of gradient descent, or of depth?

:func:`optimizer_comparison` trains the same small deep linear networks (depths 1, 2, 4, 8; the same initial
weights for every optimizer) on the same under-determined regression task with each of the six optimizers of
:mod:`lowrank_utils.train.loop` -- SGD, SGD with Nesterov momentum, Adam, L-BFGS, and the gradient-free CMA-ES and
random search -- over several seeds, and records ρ of the Gram matrix of the outputs on held-out inputs at
initialisation and after training, and its change (``rho_change``).

Where each run ends depends on where it starts, so the comparison can start from two places (``start``): the
default normal initialisation, whose ρ falls with depth (chapter 2), and an orthogonal one, whose end-to-end map is
orthogonal at every depth and so has the same, maximal, ρ whatever the depth. :func:`start_comparison` runs both.

The network is deliberately tiny (8 units per layer, at most 512 weights) so that the gradient-free methods,
whose cost grows with the number of parameters, converge in seconds on a CPU. Sizes, step budgets and step
sizes are our choices; the paper's are not known to us.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import pandas as pd

from lowrank_utils import validate as check
from lowrank_utils.regression import (
    LINEAR_INITS,
    RegressionConfig,
    linear_network,
    seed_summary,
)
from lowrank_utils.runtime import progress_bar
from lowrank_utils.train.loop import GRADIENT_FREE_OPTIMIZERS, OPTIMIZERS, TrainConfig

DEFAULT_OPTIMIZER_SETTINGS: tuple[tuple[str, float, int], ...] = (
    ("sgd", 0.05, 1000),
    ("nesterov", 0.01, 1000),
    ("adam", 0.01, 1000),
    ("lbfgs", 1.0, 200),
    ("cma", 0.05, 300),
    ("random_search", 0.02, 5000),
)
"""(optimizer, lr, maximum steps) of the quick preset. For CMA-ES and random search ``lr`` is the initial step
size σ₀; a "step" is a generation of CMA-ES (≈ 20 loss evaluations) and one proposal of random search."""


@dataclass(frozen=True)
class OptimizerComparisonConfig(RegressionConfig):
    """Settings of the optimizer comparison (all of them our choices, not the paper's).

    Deep linear networks with ``width`` units in every layer (inputs and outputs too) learn a rank-``target_rank``
    linear map from ``n_train`` samples (fewer than ``width``: under-determined); ρ is measured on ``n_test``
    held-out inputs. ``settings`` gives each optimizer's (lr, maximum steps); every run stops once the train loss
    falls below ``tolerance``. Each (optimizer, depth, seed) starts from the same initial weights for every
    optimizer, so differences between optimizers are not differences between initialisations. ``start`` picks the
    initialisation (see :func:`~lowrank_utils.regression.linear_network`): ``"default"`` or ``"orthogonal"``.
    """

    # quick (the defaults, ~20 s of CPU, most of it CMA-ES): width 8, 6 training samples, rank-2 target, seeds 0-1.
    # full: ten seeds, a tighter tolerance (1e-3) and twice the step budgets; same network sizes.
    FULL: ClassVar[dict[str, Any]] = dict(seeds=tuple(range(10)), tolerance=1e-3,
                settings=tuple((name, lr, 2 * steps) for name, lr, steps in DEFAULT_OPTIMIZER_SETTINGS))

    depths: tuple[int, ...] = (1, 2, 4, 8)
    width: int = 8
    n_train: int = 6
    n_test: int = 64
    tolerance: float = 5e-3
    optimizers: tuple[str, ...] = OPTIMIZERS
    settings: tuple[tuple[str, float, int], ...] = DEFAULT_OPTIMIZER_SETTINGS
    target_rank: int = 2
    start: str = "default"

    def __post_init__(self) -> None:
        super().__post_init__()
        optimizers = check.names("optimizers", self.optimizers, OPTIMIZERS, "optimizer")
        object.__setattr__(self, "optimizers", optimizers)
        self.check_rank("target_rank", self.target_rank)
        settings = tuple(tuple(s) for s in self.settings)
        for entry in settings:
            if len(entry) != 3 or entry[0] not in OPTIMIZERS:
                raise ValueError(f"each entry of settings must be (optimizer, lr, steps), got {entry!r}.")
            check.number(f"lr of {entry[0]}", entry[1])
            check.integer(f"steps of {entry[0]}", entry[2])
        object.__setattr__(self, "settings", settings)
        missing = [o for o in optimizers if o not in self.settings_by_name]
        if missing:
            raise ValueError(f"settings has no (lr, steps) for {missing}; add e.g. ({missing[0]!r}, 0.01, 1000).")
        check.names("start", (self.start,), LINEAR_INITS, "start")

    @property
    def settings_by_name(self) -> dict[str, tuple[float, int]]:
        """``{optimizer: (lr, maximum steps)}``."""
        return {name: (float(lr), int(steps)) for name, lr, steps in self.settings}

    def train_config(self, optimizer: str, seed: int) -> TrainConfig:
        """The :class:`~lowrank_utils.train.loop.TrainConfig` of one run."""
        lr, steps = self.settings_by_name[optimizer]
        return TrainConfig(optimizer=optimizer, lr=lr, steps=steps, tolerance=self.tolerance, seed=seed,
                           cpu_threads=self.cpu_threads, device=self.device, progress=False, log_every=steps)


def optimizer_comparison(config: OptimizerComparisonConfig) -> pd.DataFrame:
    """One row per (optimizer, depth, seed): ``start``, ``family`` (gradient-based or gradient-free), ``lr``,
    ``max_steps``, the columns of :func:`~lowrank_utils.regression.train_on_task` (``rho_init``, ``rho_final``,
    ``train_loss``, ``test_loss``, ``evaluations``, ``stop_reason``, ``diverged``...) and ``rho_change``
    (``rho_final - rho_init``: how far training moved ρ from where the run started)."""
    rows = []
    runs = [(o, d, s) for o in config.optimizers for s in config.seeds for d in config.depths]
    with progress_bar(len(runs), "optimizers", config.progress) as bar:
        for optimizer, depth, seed in runs:
            bar.set_postfix_str(f"{optimizer}, depth {depth}", refresh=False)
            task = config.task(config.target_rank, seed)
            model = linear_network(config.width, depth, seed, init=config.start)
            train_config = config.train_config(optimizer, seed)
            row, _ = config.train(model, task, train_config, track=False)
            family = "gradient-free" if optimizer in GRADIENT_FREE_OPTIMIZERS else "gradient-based"
            rows.append({"optimizer": optimizer, "family": family, "start": config.start, "depth": depth,
                         "seed": seed, "lr": train_config.lr, "max_steps": train_config.steps, **row,
                         "rho_change": row["rho_final"] - row["rho_init"]})
            bar.update(1)
    df = pd.DataFrame(rows)
    df["optimizer"] = pd.Categorical(df["optimizer"], categories=list(config.optimizers))
    return df.sort_values(["optimizer", "depth", "seed"], ignore_index=True)


def start_comparison(config: OptimizerComparisonConfig,
                     starts: Sequence[str] = LINEAR_INITS) -> pd.DataFrame:
    """:func:`optimizer_comparison` from each start in ``starts`` (the config's ``start`` is replaced), stacked;
    the ``start`` column tells the runs apart."""
    starts = check.names("starts", starts, LINEAR_INITS, "start")
    frames = [optimizer_comparison(replace(config, start=start)) for start in starts]
    df = pd.concat(frames, ignore_index=True)
    df["optimizer"] = pd.Categorical(df["optimizer"].astype(str), categories=list(config.optimizers))
    df["start"] = pd.Categorical(df["start"], categories=list(starts))
    return df


def optimizer_summary(df: pd.DataFrame, value: str = "rho_final") -> pd.DataFrame:
    """Mean, std, standard error and count of ``value`` over seeds, per (optimizer, depth)."""
    return seed_summary(df, value, ["optimizer", "depth"])


def depth_trend(df: pd.DataFrame, value: str = "rho_final", by: str = "optimizer") -> pd.DataFrame:
    """Per group: seed-mean ``value`` at the shallowest and the deepest depth, their difference, and whether the
    deepest is lower (``drops``)."""
    means = seed_summary(df, value, [by, "depth"])
    out = []
    for key, part in means.groupby(by, observed=True):
        part = part.sort_values("depth")
        first, last = part.iloc[0], part.iloc[-1]
        out.append({by: key, "shallowest": int(first["depth"]), "deepest": int(last["depth"]),
                    f"{value}_shallowest": first["mean"], f"{value}_deepest": last["mean"],
                    "change": last["mean"] - first["mean"], "drops": bool(last["mean"] < first["mean"])})
    return pd.DataFrame(out)
