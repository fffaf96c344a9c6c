"""Chapter 9 (ImageNet with DDP): the code behind ``book/09`` -- the experiment, its figures and its exercise checkers.

The notebook imports everything from here; each name lives in one of the submodules below.
"""

from __future__ import annotations

from .checks import (
    BATCHNORM_ANSWER,
    check_batchnorm_prediction,
    check_global_batch_and_lr,
    check_overparam_conv_params,
    check_shard_average,
)
from .experiment import (
    IMAGENET_TRAIN_IMAGES,
    gpu_hours,
    imagenet_training_work,
    overparam_parameter_table,
    read_run,
    run_torchrun,
    steps_per_epoch,
    torchrun_command,
)
from .figures import (
    plot_epoch_curves,
)

__all__ = [
    "IMAGENET_TRAIN_IMAGES",
    "torchrun_command",
    "run_torchrun",
    "read_run",
    "steps_per_epoch",
    "gpu_hours",
    "imagenet_training_work",
    "overparam_parameter_table",
    "plot_epoch_curves",
    "check_global_batch_and_lr",
    "check_overparam_conv_params",
    "check_shard_average",
    "BATCHNORM_ANSWER",
    "check_batchnorm_prediction",
]
