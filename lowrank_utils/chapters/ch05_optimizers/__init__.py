"""Chapter 5 (Observation 3: optimizers): the code behind ``book/05``.

The experiment, its figures and its exercise checkers. The notebook imports everything from here; each name lives in
one of the submodules below.
"""

from __future__ import annotations

from .checks import (
    PARAMETERISATION_ANSWERS,
    check_parameterisation_prediction,
    check_random_search,
    check_seed_summary,
)
from .experiment import (
    DEFAULT_OPTIMIZER_SETTINGS,
    OptimizerComparisonConfig,
    depth_trend,
    optimizer_comparison,
    optimizer_summary,
    start_comparison,
)
from .figures import (
    plot_optimizer_cost,
    plot_optimizer_rho,
    plot_start_control,
)

__all__ = [
    "DEFAULT_OPTIMIZER_SETTINGS",
    "OptimizerComparisonConfig",
    "optimizer_comparison",
    "optimizer_summary",
    "start_comparison",
    "depth_trend",
    "plot_optimizer_rho",
    "plot_optimizer_cost",
    "plot_start_control",
    "check_random_search",
    "check_seed_summary",
    "PARAMETERISATION_ANSWERS",
    "check_parameterisation_prediction",
]
