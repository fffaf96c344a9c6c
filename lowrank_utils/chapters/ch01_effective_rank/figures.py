"""Chapter 1's figures: each draws a tidy DataFrame from the chapter's ``experiment`` module in the book's style."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def plot_spectra(df: pd.DataFrame, *, hue: str = "matrix", ax: plt.Axes | None = None) -> plt.Axes:
    """Normalised singular values σ̄ᵢ against their index i, one line per ``hue`` value.

    ``df`` needs the columns ``index``, ``normalized_sv`` and ``hue``.
    """
    missing = {"index", "normalized_sv", hue} - set(df.columns)
    if missing:
        raise ValueError(f"plot_spectra needs columns {sorted(missing)} in the DataFrame.")
    ax = ax or plt.subplots()[1]
    sns.lineplot(data=df, x="index", y="normalized_sv", hue=hue, marker="o", markersize=3, ax=ax)
    ax.set_xlabel("singular value index i")
    ax.set_ylabel(r"normalised singular value $\bar\sigma_i$")
    ax.set_yscale("log")
    return ax


def plot_rank_table(df: pd.DataFrame, *, x: str = "rho", y: str = "matrix", ax: plt.Axes | None = None) -> plt.Axes:
    """A horizontal bar chart of one rank measure per matrix."""
    ax = ax or plt.subplots()[1]
    sns.barplot(data=df, x=x, y=y, hue=y, legend=False, ax=ax)
    return ax
