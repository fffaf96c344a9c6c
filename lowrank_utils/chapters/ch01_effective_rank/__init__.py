"""Chapter 1 (What is effective rank?): the code behind ``book/01``.

The experiment, its figures and its exercise checkers. The notebook imports everything from here; each name lives in
one of the submodules below.
"""

from __future__ import annotations

from .checks import (
    check_diag_entropy,
    check_entropy_rank_function,
)
from .experiment import (
    example_matrices,
    gram_vs_features,
    power_law_spectra,
    rank_table,
    spectra_table,
)
from .figures import (
    plot_rank_table,
    plot_spectra,
)

__all__ = [
    "example_matrices",
    "rank_table",
    "spectra_table",
    "gram_vs_features",
    "power_law_spectra",
    "plot_spectra",
    "plot_rank_table",
    "check_entropy_rank_function",
    "check_diag_entropy",
]
