"""Chapter 4's figures: each draws a tidy DataFrame from the chapter's ``experiment`` module in the book's style."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lowrank_utils.plotting import (
    RHO_K_LABEL,
    depth_axis,
    depth_palette,
    errorbar_lines,
    require_columns,
    without_diverged,
)


def plot_activation_rho(results: pd.DataFrame) -> Figure:
    """ρ(K) against depth for every activation: at initialisation (left) and after training (right)."""
    require_columns(results, ["activation", "depth", "rho_init", "rho_final"], "plot_activation_rho")
    data = without_diverged(results)
    activations = [str(a) for a in pd.unique(data["activation"])]
    colours = dict(zip(activations, sns.color_palette("tab10", len(activations)), strict=True))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), sharey=True)
    for ax, column, title in ((axes[0], "rho_init", "at initialisation"), (axes[1], "rho_final", "after training")):
        part = data.assign(activation=data["activation"].astype(str))
        errorbar_lines(ax, part, "depth", column, "activation", colors=colours)
        if "target_rho" in data.columns:
            ax.axhline(float(data["target_rho"].mean()), color="grey", linestyle=":", label=r"target's $\rho$")
        depth_axis(ax, data["depth"].unique())
        ax.set_title(title)
    axes[0].set_ylabel(RHO_K_LABEL + " on held-out inputs")
    axes[1].legend(fontsize=8, ncol=2, loc="upper right")
    fig.tight_layout()
    return fig


def plot_activation_test_loss(results: pd.DataFrame, baselines: pd.DataFrame | None = None) -> Figure:
    """Test loss after training against depth for every activation (mean ± sd over seeds), with the task's
    baselines as horizontal lines: predicting zero (dashed) and minimum-norm least squares (dotted).

    The baselines come from ``baselines`` (columns ``zero_test_loss`` and ``ls_test_loss``, e.g. from
    :func:`~lowrank_utils.chapters.ch04_trained_networks.experiment.task_baselines`) or else from the same columns
    of ``results``; the mean over seeds is drawn.
    """
    require_columns(results, ["activation", "depth", "test_loss"], "plot_activation_test_loss")
    source = results if baselines is None else baselines
    require_columns(source, ["zero_test_loss", "ls_test_loss"], "plot_activation_test_loss (baselines)")
    data = without_diverged(results)
    activations = [str(a) for a in pd.unique(data["activation"])]
    colours = dict(zip(activations, sns.color_palette("tab10", len(activations)), strict=True))
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    errorbar_lines(ax, data.assign(activation=data["activation"].astype(str)), "depth", "test_loss", "activation",
                   colors=colours, offset=0.03)
    ax.axhline(float(source["zero_test_loss"].mean()), color="black", linestyle="--", label="predict zero")
    ax.axhline(float(source["ls_test_loss"].mean()), color="black", linestyle=":", label="least squares")
    depth_axis(ax, data["depth"].unique())
    ax.set_ylabel("test MSE after training")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, ncol=1, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def plot_trained_grams(grams: pd.DataFrame, *, activations: Sequence[str] | None = None,
                       cmap: str = "RdBu_r") -> Figure:
    """Heat maps of K after training: one row per activation, one column per depth, ρ in each title."""
    require_columns(grams, ["activation", "depth", "row", "col", "value", "rho"], "plot_trained_grams")
    acts = list(activations) if activations is not None else [str(a) for a in pd.unique(grams["activation"])]
    depths = sorted(grams["depth"].unique())
    fig, axes = plt.subplots(len(acts), len(depths), figsize=(1.9 * len(depths) + 1.4, 1.95 * len(acts) + 0.4),
                             squeeze=False, layout="constrained")
    image = None
    for i, act in enumerate(acts):
        for j, depth in enumerate(depths):
            ax = axes[i, j]
            part = grams[(grams["activation"].astype(str) == act) & (grams["depth"] == depth)]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if part.empty:
                ax.set_axis_off()
                continue
            n = int(part["row"].max()) + 1
            K = np.zeros((n, n))
            K[part["row"].to_numpy(), part["col"].to_numpy()] = part["value"].to_numpy()
            image = ax.imshow(K, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
            ax.set_title(rf"$\rho$ = {part['rho'].iloc[0]:.2f}", fontsize=9)
            if j == 0:
                ax.set_ylabel(act, fontsize=10)
            if i == 0:
                ax.set_title(f"depth {depth}\n" + rf"$\rho$ = {part['rho'].iloc[0]:.2f}", fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.4, label=r"$K_{ij}/\sqrt{K_{ii}K_{jj}}$")
    return fig


def plot_rank_sweep(summary: pd.DataFrame) -> Figure:
    """ρ after training against the target's own ρ, one line per depth, with the diagonal "ρ = target's ρ"."""
    require_columns(summary, ["depth", "target_rho", "rho_final", "target_rank"], "plot_rank_sweep")
    data = without_diverged(summary)
    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    palette = depth_palette(data["depth"].unique())
    stats = data.groupby(["depth", "target_rank"], observed=True)[["target_rho", "rho_final"]].mean().reset_index()
    for depth, part in stats.groupby("depth"):
        ax.plot(part["target_rho"], part["rho_final"], marker="o", color=palette[depth], label=f"depth {depth}")
    lo, hi = 0.0, float(max(stats["target_rho"].max(), stats["rho_final"].max())) * 1.05
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle=":", label="after training = target")
    ax.set_xlim(lo - 0.05 * hi, hi)
    ranks = stats.drop_duplicates("target_rank").sort_values("target_rank")
    top = ax.twiny()  # the targets' ranks on a top axis, at their ρ
    top.set_xlim(ax.get_xlim())
    top.set_xticks(ranks["target_rho"].to_numpy())
    top.set_xticklabels([str(int(r)) for r in ranks["target_rank"]], fontsize=8)
    top.set_xlabel("target rank", fontsize=9)
    top.grid(False)
    ax.set_xlabel(r"target's $\rho$ (nats)")
    ax.set_ylabel(r"$\rho$ after training (nats)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
