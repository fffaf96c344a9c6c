"""Chapter 2's figures: each draws a tidy DataFrame from the chapter's ``experiment`` module in the book's style."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lowrank_utils.plotting import depth_axis, depth_palette, figure_and_axes, require_columns

GRAM_MODE_LABELS = {
    "raw": "uncentred K",
    "centered": "centred K",
    "cosine": "cosine K",
    "centered_cosine": "centred cosine K",
}


_INIT_LABELS = {"normal": "W ~ Normal", "uniform": "W ~ Uniform", "default": "PyTorch default"}


def _mode_label(df: pd.DataFrame) -> str:
    if "gram_mode" in df.columns and df["gram_mode"].nunique() == 1:
        return GRAM_MODE_LABELS.get(str(df["gram_mode"].iloc[0]), str(df["gram_mode"].iloc[0]))
    return "K"


def plot_rank_densities(df: pd.DataFrame, *, row: str = "init", col: str = "activation") -> Figure:
    """Densities of ρ(K) over random draws, one curve per depth, one panel per (``row``, ``col``) pair.

    With the columns of
    :func:`~lowrank_utils.chapters.ch02_random_initialization.experiment.rank_distribution` for two activations and
    two inits, this is the four-panel layout of the paper's Observation 1.
    """
    require_columns(df, ["rho", "depth", row, col], "plot_rank_densities")
    rows = [r for r in pd.unique(df[row])]
    cols = [c for c in pd.unique(df[col])]
    palette = depth_palette(df["depth"].unique())
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4.2 * len(cols), 3.0 * len(rows)),
                             sharex=True, squeeze=False)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i, j]
            part = df[(df[row] == r) & (df[col] == c)]
            for depth in sorted(part["depth"].unique()):
                values = part.loc[part["depth"] == depth, "rho"]
                sns.kdeplot(x=values, ax=ax, color=palette[int(depth)], fill=True, alpha=0.25, linewidth=1.5,
                            label=str(depth), warn_singular=False, cut=0)
            ax.set_title(f"{c} · {_INIT_LABELS.get(str(r), r)}", fontsize=11)
            ax.set_xlabel(rf"$\rho$({_mode_label(part)}), nats" if i == len(rows) - 1 else "")
            ax.set_ylabel("density" if j == 0 else "")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, title="depth", loc="center right", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout(rect=(0, 0, 0.92, 1))
    return fig


def plot_gram_heatmaps(
    df: pd.DataFrame, *, cmap: str = "RdBu_r", label: str = r"$K_{ij} / \sqrt{K_{ii} K_{jj}}$",
) -> Figure:
    """Heat maps of one K per depth (columns depth, row, col, value, rho), on a shared colour scale [-1, 1]."""
    require_columns(df, ["depth", "row", "col", "value", "rho"], "plot_gram_heatmaps")
    depths = sorted(df["depth"].unique())
    fig, axes = plt.subplots(1, len(depths), figsize=(2.6 * len(depths) + 0.8, 2.9), squeeze=False)
    image = None
    for ax, depth in zip(axes[0], depths, strict=True):
        part = df[df["depth"] == depth]
        n = int(part["row"].max()) + 1
        K = np.zeros((n, n))
        K[part["row"].to_numpy(), part["col"].to_numpy()] = part["value"].to_numpy()
        image = ax.imshow(K, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"depth {depth}\n" + rf"$\rho$ = {part['rho'].iloc[0]:.2f}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    if image is not None:  # one image per depth; the colour scale is shared
        fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label=label)
    return fig


def plot_median_rho(
    df: pd.DataFrame, *, hue: str, value: str = "rho", style: str | None = None, ax: plt.Axes | None = None,
    palette: str | dict | None = None,
) -> Figure:
    """Median of ``value`` against depth, one line per ``hue`` value, with the 25–75 % band over draws."""
    require_columns(df, [value, "depth", hue] + ([style] if style else []), "plot_median_rho")
    fig, ax = figure_and_axes(ax, (6.5, 4.0))
    data = df.copy()
    data[hue] = data[hue].astype(str)
    sns.lineplot(data=data, x="depth", y=value, hue=hue, style=style, estimator="median", errorbar=("pi", 50),
                 marker="o", ax=ax, palette=palette)
    depth_axis(ax, df["depth"].unique())
    ax.set_xlabel("depth")
    ax.legend(title=hue, loc="best", fontsize=9)
    return fig


def plot_gram_modes(df: pd.DataFrame) -> Figure:
    """Median ρ(K) against depth for each way of forming K, one panel per activation."""
    require_columns(df, ["rho", "depth", "gram_mode", "activation"], "plot_gram_modes")
    activations = list(pd.unique(df["activation"]))
    fig, axes = plt.subplots(1, len(activations), figsize=(5.0 * len(activations), 3.8), sharey=True, squeeze=False)
    data = df.assign(K=df["gram_mode"].map(GRAM_MODE_LABELS).fillna(df["gram_mode"]))
    for ax, activation in zip(axes[0], activations, strict=True):
        sns.lineplot(data=data[data["activation"] == activation], x="depth", y="rho", hue="K",
                     hue_order=[GRAM_MODE_LABELS[m] for m in GRAM_MODE_LABELS if m in set(df["gram_mode"])],
                     estimator="median", errorbar=("pi", 50), marker="o", ax=ax)
        depth_axis(ax, df["depth"].unique())
        ax.set_title(str(activation))
        ax.set_ylabel(r"median $\rho$(K), nats")
        ax.legend(fontsize=9)
    fig.tight_layout()
    return fig
