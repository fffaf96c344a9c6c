"""Chapter 7 (linear over-parameterization of layers): the code behind ``book/07``.

The experiment, its figures and its exercise checkers. The notebook imports everything from here; each name lives in
one of the submodules below.
"""

from __future__ import annotations

from .checks import (
    check_collapse_linear,
    check_compose_kernels,
)
from .experiment import (
    SPECTRUM_OPTIMIZERS,
    InitRankConfig,
    SpectrumConfig,
    checkpoint_table,
    collapse_check,
    conv_layers,
    cost_table,
    init_rank,
    init_rank_medians,
    layer_matrix,
    spectrum_dynamics,
    step_time_table,
)
from .figures import (
    pick_checkpoints,
    plot_init_rank,
    plot_rank_over_training,
    plot_spectrum_change,
    plot_spectrum_dynamics,
)

__all__ = [
    "SPECTRUM_OPTIMIZERS",
    "collapse_check",
    "cost_table",
    "step_time_table",
    "InitRankConfig",
    "init_rank",
    "init_rank_medians",
    "conv_layers",
    "layer_matrix",
    "SpectrumConfig",
    "spectrum_dynamics",
    "checkpoint_table",
    "plot_init_rank",
    "pick_checkpoints",
    "plot_spectrum_dynamics",
    "plot_spectrum_change",
    "plot_rank_over_training",
    "check_collapse_linear",
    "check_compose_kernels",
]
