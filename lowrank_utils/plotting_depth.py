"""Figures of chapters 2 and 3 (random initialisation; why depth lowers rank), drawn from tidy DataFrames.

Every function returns the matplotlib Figure it drew (and never calls ``plt.show``), so notebooks, widgets and
tests use them alike. Colours for depths come from :func:`lowrank_utils.plotting.depth_palette`.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from .plotting import depth_palette

__all__ = [
    "GRAM_MODE_LABELS",
    "plot_rank_densities",
    "plot_gram_heatmaps",
    "plot_median_rho",
    "plot_gram_modes",
    "plot_product_spectra",
    "plot_product_rank",
    "plot_rank_landscape",
    "plot_rank_cdf",
    "plot_volume",
]

GRAM_MODE_LABELS = {
    "raw": "uncentred K",
    "centered": "centred K",
    "cosine": "cosine K",
    "centered_cosine": "centred cosine K",
}
_INIT_LABELS = {"normal": "W ~ Normal", "uniform": "W ~ Uniform", "default": "PyTorch default"}


def _need(df: pd.DataFrame, columns: Sequence[str], who: str) -> None:
    missing = set(columns) - set(df.columns)
    if missing:
        raise ValueError(f"{who} needs columns {sorted(missing)} in the DataFrame.")


def _mode_label(df: pd.DataFrame) -> str:
    if "gram_mode" in df.columns and df["gram_mode"].nunique() == 1:
        return GRAM_MODE_LABELS.get(str(df["gram_mode"].iloc[0]), str(df["gram_mode"].iloc[0]))
    return "K"


def _depth_axis(ax: plt.Axes, depths: Sequence[int]) -> None:
    depths = sorted(set(int(d) for d in depths))
    if len(depths) > 1 and depths[-1] / depths[0] >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(depths)
    ax.set_xticklabels([str(d) for d in depths])
    ax.minorticks_off()


def plot_rank_densities(df: pd.DataFrame, *, row: str = "init", col: str = "activation") -> Figure:
    """Densities of ρ(K) over random draws, one curve per depth, one panel per (``row``, ``col``) pair.

    With the columns of :func:`~lowrank_utils.experiments.random_init.rank_distribution` for two activations and two inits,
    this is the four-panel layout of the paper's Observation 1.
    """
    _need(df, ["rho", "depth", row, col], "plot_rank_densities")
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
    _need(df, ["depth", "row", "col", "value", "rho"], "plot_gram_heatmaps")
    depths = sorted(df["depth"].unique())
    fig, axes = plt.subplots(1, len(depths), figsize=(2.6 * len(depths) + 0.8, 2.9), squeeze=False)
    image = None
    for ax, depth in zip(axes[0], depths):
        part = df[df["depth"] == depth]
        n = int(part["row"].max()) + 1
        K = np.zeros((n, n))
        K[part["row"].to_numpy(), part["col"].to_numpy()] = part["value"].to_numpy()
        image = ax.imshow(K, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"depth {depth}\n" + rf"$\rho$ = {part['rho'].iloc[0]:.2f}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label=label)
    return fig


def plot_median_rho(
    df: pd.DataFrame, *, hue: str, value: str = "rho", style: str | None = None, ax: plt.Axes | None = None,
    palette: str | dict | None = None,
) -> Figure:
    """Median of ``value`` against depth, one line per ``hue`` value, with the 25–75 % band over draws."""
    _need(df, [value, "depth", hue] + ([style] if style else []), "plot_median_rho")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4.0))
    else:
        fig = ax.figure
    data = df.copy()
    data[hue] = data[hue].astype(str)
    sns.lineplot(data=data, x="depth", y=value, hue=hue, style=style, estimator="median", errorbar=("pi", 50),
                 marker="o", ax=ax, palette=palette)
    _depth_axis(ax, df["depth"].unique())
    ax.set_xlabel("depth")
    ax.legend(title=hue, loc="best", fontsize=9)
    return fig


def plot_gram_modes(df: pd.DataFrame) -> Figure:
    """Median ρ(K) against depth for each way of forming K, one panel per activation."""
    _need(df, ["rho", "depth", "gram_mode", "activation"], "plot_gram_modes")
    activations = list(pd.unique(df["activation"]))
    fig, axes = plt.subplots(1, len(activations), figsize=(5.0 * len(activations), 3.8), sharey=True, squeeze=False)
    data = df.assign(K=df["gram_mode"].map(GRAM_MODE_LABELS).fillna(df["gram_mode"]))
    for ax, activation in zip(axes[0], activations):
        sns.lineplot(data=data[data["activation"] == activation], x="depth", y="rho", hue="K",
                     hue_order=[GRAM_MODE_LABELS[m] for m in GRAM_MODE_LABELS if m in set(df["gram_mode"])],
                     estimator="median", errorbar=("pi", 50), marker="o", ax=ax)
        _depth_axis(ax, df["depth"].unique())
        ax.set_title(str(activation))
        ax.set_ylabel(r"median $\rho$(K), nats")
        ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def plot_product_spectra(spectra: pd.DataFrame, theory: pd.DataFrame | None = None, *,
                         depths: Sequence[int] | None = None) -> Figure:
    """Histograms of log σ² of random products, one panel per depth, with the Fuss–Catalan density of log x.

    ``theory`` is a concatenation of :func:`~lowrank_utils.experiments.depth_volume.fuss_catalan_density` frames (its
    ``order`` column is the depth).
    """
    _need(spectra, ["depth", "sq_sv"], "plot_product_spectra")
    depths = sorted(spectra["depth"].unique()) if depths is None else list(depths)
    palette = depth_palette(spectra["depth"].unique())
    fig, axes = plt.subplots(1, len(depths), figsize=(3.2 * len(depths), 3.2), sharey=True, squeeze=False)
    for ax, depth in zip(axes[0], depths):
        logx = np.log(spectra.loc[spectra["depth"] == depth, "sq_sv"].to_numpy())
        ax.hist(logx, bins=50, density=True, color=palette[int(depth)], alpha=0.55, label="measured")
        if theory is not None:
            t = theory[theory["order"] == depth]
            ax.plot(t["log_x"], t["log_density"], color="black", lw=1.5, label="Fuss–Catalan (N → ∞)")
        low, high = np.quantile(logx, 0.002), logx.max()
        ax.set_xlim(low - 0.1 * (high - low), high + 0.1 * (high - low))
        ax.set_title(f"product of {depth}", fontsize=11)
        ax.set_xlabel(r"$\log \sigma^2$")
    axes[0, 0].set_ylabel("density")
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_product_rank(df: pd.DataFrame, *, ax: plt.Axes | None = None) -> Figure:
    """ρ of random products against depth: median and 5–95 % band of the draws, and the N → ∞ prediction."""
    _need(df, ["depth", "rho", "rho_theory"], "plot_product_rank")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 3.8))
    else:
        fig = ax.figure
    stats = df.groupby("depth")["rho"].quantile([0.05, 0.5, 0.95]).unstack()
    ax.fill_between(stats.index, stats[0.05], stats[0.95], alpha=0.25, color="C0", label="5–95 % of draws")
    ax.plot(stats.index, stats[0.5], "o-", color="C0", label="median of draws")
    theory = df.groupby("depth")["rho_theory"].first()
    ax.plot(theory.index, theory.to_numpy(), "k--", lw=1.5, label="Fuss–Catalan prediction (N → ∞)")
    _depth_axis(ax, df["depth"].unique())
    ax.set_xlabel("number of factors d")
    ax.set_ylabel(r"$\rho(W_d \cdots W_1)$, nats")
    ax.legend(fontsize=9)
    return fig


def plot_rank_landscape(df: pd.DataFrame, *, threshold: float | None = None, cmap: str = "viridis") -> Figure:
    """Heat maps of ρ(W_e) over the (α, β) plane, one per parameterisation depth, on a shared colour scale.

    A white contour marks ``threshold`` when given; the cross marks the shared centre weight.
    """
    _need(df, ["depth", "alpha", "beta", "rho"], "plot_rank_landscape")
    depths = sorted(df["depth"].unique())
    vmin, vmax = df["rho"].min(), df["rho"].max()
    fig, axes = plt.subplots(1, len(depths), figsize=(3.4 * len(depths) + 0.8, 3.4), squeeze=False, sharey=True)
    image = None
    for ax, depth in zip(axes[0], depths):
        grid = df[df["depth"] == depth].pivot(index="beta", columns="alpha", values="rho")
        a, b = grid.columns.to_numpy(), grid.index.to_numpy()
        image = ax.pcolormesh(a, b, grid.to_numpy(), cmap=cmap, vmin=vmin, vmax=vmax, shading="nearest")
        if threshold is not None and grid.to_numpy().min() < threshold < grid.to_numpy().max():
            ax.contour(a, b, grid.to_numpy(), levels=[threshold], colors="white", linewidths=1.2)
        ax.plot(0, 0, "w+", ms=10, mew=2)
        ax.set_title("1 layer" if depth == 1 else f"{depth} layers", fontsize=11)
        ax.set_xlabel(r"$\alpha$")
        ax.set_aspect("equal")
        ax.grid(False)
    axes[0, 0].set_ylabel(r"$\beta$")
    fig.colorbar(image, ax=list(axes[0]), shrink=0.85, label=r"$\rho(W_e)$, nats")
    return fig


def plot_rank_cdf(df: pd.DataFrame, *, depths: Sequence[int] | None = None, thresholds: Sequence[float] = (),
                  ax: plt.Axes | None = None) -> Figure:
    """The fraction of draws with ρ below τ, as a function of τ (the empirical CDF), one curve per depth."""
    _need(df, ["depth", "rho"], "plot_rank_cdf")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 3.8))
    else:
        fig = ax.figure
    depths = sorted(df["depth"].unique()) if depths is None else sorted(depths)
    palette = depth_palette(depths)
    data = df[df["depth"].isin(depths)]
    for depth in depths:
        sns.ecdfplot(x=data.loc[data["depth"] == depth, "rho"], color=palette[int(depth)], ax=ax, label=str(depth))
    ax.legend(title="depth", fontsize=8, ncol=2 if len(depths) > 6 else 1, loc="lower right")
    for tau in thresholds:
        ax.axvline(tau, color="grey", ls=":", lw=1)
    ax.set_xlabel(r"threshold $\tau$ (nats)")
    ax.set_ylabel(r"fraction of draws with $\rho < \tau$")
    return fig


def plot_volume(df: pd.DataFrame, *, hue: str = "size", style: str | None = "init",
                ax: plt.Axes | None = None) -> Figure:
    """The volume curve: the fraction of draws with ρ below each threshold against depth (± one standard error)."""
    _need(df, ["depth", "fraction", hue] + ([style] if style else []), "plot_volume")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 3.8))
    else:
        fig = ax.figure
    data = df.copy()
    if hue == "threshold":
        data["threshold"] = data["threshold"].map(lambda t: f"{t:.2f}")
    if hue == "size":
        data["size"] = data["size"].map(lambda n: f"N = {n}")
    sns.lineplot(data=data, x="depth", y="fraction", hue=hue, style=style, marker="o", ax=ax)
    if "stderr" in data.columns and style is None:
        for _, part in data.groupby(hue):
            ax.fill_between(part["depth"], part["fraction"] - part["stderr"], part["fraction"] + part["stderr"],
                            alpha=0.2)
    ax.set_xlabel("depth")
    ax.set_ylabel("fraction of draws below threshold")
    ax.set_ylim(-0.03, 1.03)
    if df["depth"].nunique() <= 6:
        _depth_axis(ax, df["depth"].unique())
    ax.legend(title=None, fontsize=9)
    return fig
