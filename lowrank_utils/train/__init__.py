"""Training: :mod:`.loop` (one ``fit`` for the regression networks of chapters 4-6, with six optimizers),
:mod:`.images` (one ``fit`` for image classifiers: chapters 7 and 8 and the ImageNet trainer) and :mod:`.imagenet`
(the DDP trainer run with ``torchrun -m lowrank_utils.train.imagenet``). The two ``fit`` functions are imported from
their modules (``lowrank_utils.train.images.fit``); this package re-exports the regression loop's names."""

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
