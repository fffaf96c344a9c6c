"""Chapter 3 (why depth lowers rank): the code behind ``book/03``.

The experiment, its figures and its exercise checkers. The notebook imports everything from here; each name lives in
one of the submodules below.
"""

from __future__ import annotations

from .checks import (
    check_fraction_below,
    check_fuss_catalan_moment,
    check_participation_prediction,
    check_two_factors,
)
from .experiment import (
    LandscapeConfig,
    ProductConfig,
    VolumeConfig,
    balanced_factors,
    filter_normalized_direction,
    fuss_catalan_density,
    fuss_catalan_moment,
    fuss_catalan_rho_gap,
    landscape_summary,
    low_rank_fraction,
    predicted_product_rho,
    product_rank,
    product_spectra,
    random_products,
    rank_landscape,
    volume_curve,
    volume_draws,
)
from .figures import (
    plot_product_rank,
    plot_product_spectra,
    plot_rank_cdf,
    plot_rank_landscape,
    plot_volume,
)

__all__ = [
    "ProductConfig",
    "random_products",
    "product_spectra",
    "product_rank",
    "fuss_catalan_moment",
    "fuss_catalan_density",
    "fuss_catalan_rho_gap",
    "predicted_product_rho",
    "LandscapeConfig",
    "balanced_factors",
    "filter_normalized_direction",
    "rank_landscape",
    "landscape_summary",
    "VolumeConfig",
    "volume_draws",
    "low_rank_fraction",
    "volume_curve",
    "plot_product_spectra",
    "plot_product_rank",
    "plot_rank_landscape",
    "plot_rank_cdf",
    "plot_volume",
    "check_participation_prediction",
    "check_fuss_catalan_moment",
    "check_fraction_below",
    "check_two_factors",
]
