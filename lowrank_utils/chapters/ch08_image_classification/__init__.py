"""Chapter 8 (over-parameterized image classifiers): the code behind ``book/08`` -- the protocol, its figures
and its exercise checkers.

The notebook imports everything from here; each name lives in one of the submodules below.
"""

from __future__ import annotations

from . import experiment
from .checks import (
    check_embedding_rho,
    check_welch_t,
)
from .experiment import *  # noqa: F403  (the protocol's names, listed once in experiment.__all__)
from .figures import (
    CLASSIFICATION_PANELS,
    plot_classification,
    plot_history,
    plot_lr_grid,
    plot_protocol,
)

__all__ = [
    "CLASSIFICATION_PANELS",
    "plot_classification",
    "plot_protocol",
    "plot_lr_grid",
    "plot_history",
    "check_embedding_rho",
    "check_welch_t",
]
__all__ += experiment.__all__
