"""Chapter 2 (Observation 1: deeper networks are lower-rank at initialisation): the code behind ``book/02``.

The experiment, its figures and its exercise checkers. The notebook imports everything from here; each name lives in
one of the submodules below.
"""

from __future__ import annotations

from .checks import (
    SOFTPLUS_GAIN,
    SOFTPLUS_TREND,
    check_activation_trend,
    check_centered_gram,
    check_softplus_medians,
    check_softplus_prediction,
    softplus_reference_medians,
)
from .experiment import (
    GRAM_MODES,
    RandomInitConfig,
    gaussian_inputs,
    gram_examples,
    gram_mode_comparison,
    gram_rho,
    median_table,
    mlp_forward,
    output_gram,
    random_network_rhos,
    rank_distribution,
    sample_mlp_weights,
    width_sweep,
)
from .figures import (
    GRAM_MODE_LABELS,
    plot_gram_heatmaps,
    plot_gram_modes,
    plot_median_rho,
    plot_rank_densities,
)
from .widgets import (
    EXPLORER_DEPTHS,
    EXPLORER_WIDTHS,
    random_init_explorer,
    random_init_figure,
)

__all__ = [
    "GRAM_MODES",
    "RandomInitConfig",
    "sample_mlp_weights",
    "mlp_forward",
    "gaussian_inputs",
    "output_gram",
    "gram_rho",
    "random_network_rhos",
    "rank_distribution",
    "gram_mode_comparison",
    "width_sweep",
    "gram_examples",
    "median_table",
    "GRAM_MODE_LABELS",
    "plot_rank_densities",
    "plot_gram_heatmaps",
    "plot_median_rho",
    "plot_gram_modes",
    "SOFTPLUS_GAIN",
    "check_centered_gram",
    "SOFTPLUS_TREND",
    "check_softplus_prediction",
    "softplus_reference_medians",
    "check_softplus_medians",
    "check_activation_trend",
    "EXPLORER_DEPTHS",
    "EXPLORER_WIDTHS",
    "random_init_figure",
    "random_init_explorer",
]
