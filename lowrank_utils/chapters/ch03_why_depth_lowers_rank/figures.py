"""Chapter 3's figures: each draws a tidy DataFrame from the chapter's ``experiment`` module in the book's style."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lowrank_utils.plotting import depth_axis, depth_palette, figure_and_axes, require_columns


def plot_product_spectra(spectra: pd.DataFrame, theory: pd.DataFrame | None = None, *,
                         depths: Sequence[int] | None = None) -> Figure:
    """Histograms of log σ² of random products, one panel per depth, with the Fuss–Catalan density of log x.

    ``theory`` is a concatenation of
    :func:`~lowrank_utils.chapters.ch03_why_depth_lowers_rank.experiment.fuss_catalan_density` frames (its ``order``
    column is the depth).
    """
    require_columns(spectra, ["depth", "sq_sv"], "plot_product_spectra")
    depths = sorted(spectra["depth"].unique()) if depths is None else list(depths)
    palette = depth_palette(spectra["depth"].unique())
    fig, axes = plt.subplots(1, len(depths), figsize=(3.2 * len(depths), 3.2), sharey=True, squeeze=False)
    for ax, depth in zip(axes[0], depths, strict=True):
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
    require_columns(df, ["depth", "rho", "rho_theory"], "plot_product_rank")
    fig, ax = figure_and_axes(ax, (6.0, 3.8))
    stats = df.groupby("depth")["rho"].quantile([0.05, 0.5, 0.95]).unstack()
    ax.fill_between(stats.index, stats[0.05], stats[0.95], alpha=0.25, color="C0", label="5–95 % of draws")
    ax.plot(stats.index, stats[0.5], "o-", color="C0", label="median of draws")
    theory = df.groupby("depth")["rho_theory"].first()
    ax.plot(theory.index, theory.to_numpy(), "k--", lw=1.5, label="Fuss–Catalan prediction (N → ∞)")
    depth_axis(ax, df["depth"].unique())
    ax.set_xlabel("number of factors d")
    ax.set_ylabel(r"$\rho(W_d \cdots W_1)$, nats")
    ax.legend(fontsize=9)
    return fig


def plot_rank_landscape(df: pd.DataFrame, *, threshold: float | None = None, cmap: str = "viridis") -> Figure:
    """Heat maps of ρ(W_e) over the (α, β) plane, one per parameterisation depth, on a shared colour scale.

    A white contour marks ``threshold`` when given; the cross marks the shared centre weight.
    """
    require_columns(df, ["depth", "alpha", "beta", "rho"], "plot_rank_landscape")
    depths = sorted(df["depth"].unique())
    vmin, vmax = df["rho"].min(), df["rho"].max()
    fig, axes = plt.subplots(1, len(depths), figsize=(3.4 * len(depths) + 0.8, 3.4), squeeze=False, sharey=True)
    image = None
    for ax, depth in zip(axes[0], depths, strict=True):
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
    if image is not None:  # one image per depth; the colour scale is shared
        fig.colorbar(image, ax=list(axes[0]), shrink=0.85, label=r"$\rho(W_e)$, nats")
    return fig


def plot_rank_cdf(df: pd.DataFrame, *, depths: Sequence[int] | None = None, thresholds: Sequence[float] = (),
                  ax: plt.Axes | None = None) -> Figure:
    """The fraction of draws with ρ below τ, as a function of τ (the empirical CDF), one curve per depth."""
    require_columns(df, ["depth", "rho"], "plot_rank_cdf")
    fig, ax = figure_and_axes(ax, (6.0, 3.8))
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
    require_columns(df, ["depth", "fraction", hue] + ([style] if style else []), "plot_volume")
    fig, ax = figure_and_axes(ax, (6.5, 3.8))
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
        depth_axis(ax, df["depth"].unique())
    ax.legend(title=None, fontsize=9)
    return fig
