"""Training: :mod:`.loop` (one ``fit`` for the regression networks of chapters 4-6, with six optimizers) and
:mod:`.imagenet` (the DDP trainer run with ``torchrun -m lowrank_utils.train.imagenet``)."""

from __future__ import annotations

from .loop import (
    CMA_FULL_COVARIANCE_MAX_PARAMS,
    GRADIENT_FREE_OPTIMIZERS,
    OPTIMIZERS,
    TrainConfig,
    TrainingDiverged,
    TrainResult,
    fit,
    fit_regression,
)

__all__ = [
    "CMA_FULL_COVARIANCE_MAX_PARAMS",
    "GRADIENT_FREE_OPTIMIZERS",
    "OPTIMIZERS",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "fit",
    "fit_regression",
]
