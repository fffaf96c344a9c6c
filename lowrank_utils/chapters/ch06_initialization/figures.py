"""Chapter 6's figures: each draws a tidy DataFrame from the chapter's ``experiment`` module in the book's style."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from lowrank_utils.plotting import (
    RHO_K_LABEL,
    depth_palette,
    errorbar_lines,
    plot_depth_regression,
    require_columns,
    without_diverged,
)


def plot_init_comparison(summary: pd.DataFrame) -> Figure:
    """:func:`~lowrank_utils.plotting.plot_depth_regression` with one colour per initialisation."""
    require_columns(summary, ["init"], "plot_init_comparison")
    return plot_depth_regression(summary, hue="init")


def plot_init_scales(summary: pd.DataFrame) -> Figure:
    """Two panels against the initial scale (log axis), one line per depth (mean ± sd over seeds): the test loss,
    with the least-squares baseline (dotted), and ρ after training, with the target's ρ (dotted)."""
    require_columns(summary, ["init_scale", "depth", "test_loss", "rho_final", "ls_test_loss", "target_rho"],
                    "plot_init_scales")
    data = without_diverged(summary)
    palette = depth_palette(data["depth"].unique())
    # labels in depth order (as text, "depth 16" would sort before "depth 4")
    labels = pd.Categorical(data["depth"].map(lambda d: f"depth {d}"),
                            categories=[f"depth {d}" for d in sorted(data["depth"].unique())])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0))
    for ax, column, reference, title in ((axes[0], "test_loss", "ls_test_loss", "test loss"),
                                         (axes[1], "rho_final", "target_rho", r"$\rho$ after training")):
        errorbar_lines(ax, data.assign(depth_label=labels), "init_scale", column, "depth_label",
                       colors={f"depth {d}": c for d, c in palette.items()})
        ax.axhline(float(data[reference].mean()), color="black", linestyle=":",
                   label="least squares" if reference == "ls_test_loss" else r"target's $\rho$")
        ax.set_xscale("log")
        scales = sorted(data["init_scale"].unique())
        ax.set_xticks(scales)
        ax.set_xticklabels([f"{s:g}" for s in scales])
        ax.minorticks_off()
        ax.set_xlabel("initial scale of the end-to-end map (1 = default)")
        ax.set_title(title)
    axes[0].set_ylabel("test MSE")
    axes[1].set_ylabel(RHO_K_LABEL)
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig
