"""Chapter 6 (Observation 4: initialisation): the code behind ``book/06``.

The experiment, its figures and its exercise checkers. The notebook imports everything from here; each name lives in
one of the submodules below.
"""

from __future__ import annotations

from .checks import (
    check_init_gap,
    check_low_rank_init,
    check_rho_ceiling,
)
from .experiment import (
    INIT_SCALES,
    INITS,
    InitComparisonConfig,
    init_scale_sweep,
    initial_network,
    initialization_comparison,
    low_rank_init_,
    low_rank_matrix,
)
from .figures import (
    plot_init_comparison,
    plot_init_scales,
)

__all__ = [
    "INITS",
    "INIT_SCALES",
    "low_rank_init_",
    "InitComparisonConfig",
    "initial_network",
    "initialization_comparison",
    "init_scale_sweep",
    "low_rank_matrix",
    "plot_init_comparison",
    "plot_init_scales",
    "check_low_rank_init",
    "check_init_gap",
    "check_rho_ceiling",
]
