"""One look for every figure in the book, and the plots of chapter 1. Plots take tidy DataFrames."""

from __future__ import annotations

from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

__all__ = ["set_style", "depth_palette", "plot_spectra", "plot_rank_table"]

_PALETTE = "viridis"


def set_style(context: str = "notebook") -> None:
    """Apply the book's seaborn/matplotlib style (white figure background so figures read in dark mode too)."""
    sns.set_theme(context=context, style="whitegrid", palette="deep")
    matplotlib.rcParams.update(
        {
            "figure.figsize": (7.0, 4.0),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "figure.facecolor": "white",
            "savefig.facecolor": "white",
            "axes.titleweight": "bold",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
        }
    )


def depth_palette(depths: Sequence[int]) -> dict[int, tuple[float, float, float]]:
    """A colour per depth, dark (shallow) to light (deep), shared by every depth plot in the book."""
    depths = sorted(set(int(d) for d in depths))
    colours = sns.color_palette(_PALETTE, n_colors=max(len(depths), 2))
    return {d: colours[i] for i, d in enumerate(depths)}


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
