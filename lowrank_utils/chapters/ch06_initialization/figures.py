"""Chapter 6's figures: each draws a tidy DataFrame from :mod:`.experiment` in the book's style."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from lowrank_utils.plotting import plot_depth_regression, require_columns


def plot_init_comparison(summary: pd.DataFrame) -> Figure:
    """:func:`plot_depth_regression` with one colour per initialisation."""
    require_columns(summary, ["init"], "plot_init_comparison")
    return plot_depth_regression(summary, hue="init")
