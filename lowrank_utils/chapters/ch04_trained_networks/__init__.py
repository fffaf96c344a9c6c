"""Chapter 4 (Observation 2: trained networks): the code behind ``book/04``.

The experiment, its figures and its exercise checkers. The notebook imports everything from here; each name lives in
one of the submodules below.
"""

from __future__ import annotations

from .checks import (
    UNCONSTRAINED_DIRECTIONS,
    check_best_test_depth,
    check_close_int,
    check_frozen_part,
    check_rho_callback,
    check_unconstrained_count,
)
from .experiment import (
    ActivationTrainingConfig,
    DepthRegressionConfig,
    depth_one_limits,
    depth_regression,
    task_baselines,
    trained_activations,
)
from .figures import (
    plot_activation_rho,
    plot_activation_test_loss,
    plot_rank_sweep,
    plot_trained_grams,
)

__all__ = [
    "ActivationTrainingConfig",
    "trained_activations",
    "DepthRegressionConfig",
    "depth_regression",
    "depth_one_limits",
    "task_baselines",
    "plot_activation_rho",
    "plot_activation_test_loss",
    "plot_trained_grams",
    "plot_rank_sweep",
    "check_rho_callback",
    "check_best_test_depth",
    "check_frozen_part",
    "UNCONSTRAINED_DIRECTIONS",
    "check_unconstrained_count",
    "check_close_int",
]
