"""Figures of chapter 4b (deep matrix completion), drawn from the tidy DataFrames of
:mod:`lowrank_utils.chapters.ch04b_matrix_completion.experiment`.

Every function returns the matplotlib Figure it drew and never calls ``plt.show``. Depth colours come from
:func:`lowrank_utils.plotting.depth_palette`; the baselines are black (nuclear norm, dashed) and grey (predicting
zero, dotted). Lines are medians over seeds, shaded bands or bars span the smallest to the largest seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lowrank_utils.plotting import depth_palette, require_columns

_ERR = "test error on unobserved entries\n(relative; predicting 0 scores 1)"


_RHO = r"$\rho$(W), nats"




def _depth_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["depth"] > 0]


def _baseline(df: pd.DataFrame, method: str, value: str) -> pd.DataFrame:
    part = df[df["method"].astype(str) == method]
    return part.groupby("n_observed")[value].median().reset_index()


def plot_depth_comparison(df: pd.DataFrame, *, threshold: float | None = 0.1) -> Figure:
    """At one number of observations: test error (left, log scale) and ρ of the completed matrix (right) against
    depth, each seed a dot and the median a line, with the baselines as horizontal lines."""
    require_columns(df, ["method", "depth", "seed", "test_error", "rho", "target_rho", "n_observed"],
                    "plot_depth_comparison")
    if df["n_observed"].nunique() != 1:
        raise ValueError("plot_depth_comparison draws one number of observations; select it first "
                         "(e.g. df[df.n_observed == m]).")
    deep = _depth_rows(df)
    depths = sorted(int(d) for d in deep["depth"].unique())
    colours = depth_palette(depths)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0))
    for ax, value in ((axes[0], "test_error"), (axes[1], "rho")):
        for d in depths:
            part = deep[deep["depth"] == d]
            jitter = np.linspace(-0.08, 0.08, len(part)) if len(part) > 1 else np.zeros(1)
            ax.scatter(d + jitter, part[value], color=colours[d], s=18, alpha=0.8, zorder=3)
        med = deep.groupby("depth")[value].median()
        ax.plot(med.index, med.to_numpy(), color="black", linewidth=1.2, marker="_", markersize=14, zorder=2,
                label="median over seeds")
        nuc = float(df.loc[df["method"].astype(str) == "nuclear norm", value].median())
        ax.axhline(nuc, color="black", linestyle="--", linewidth=1, label="nuclear norm (median)")
        if value == "test_error":
            ax.axhline(1.0, color="grey", linestyle=":", label="predict 0 (= depth 1)")
            if threshold is not None:
                ax.axhline(threshold, color="tab:red", linewidth=0.8, alpha=0.6,
                           label=f"recovery threshold {threshold}")
            ax.set_yscale("log")
            ax.set_ylabel(_ERR)
        else:
            ax.axhline(float(df["target_rho"].median()), color="tab:green", linestyle=":",
                       label=r"truth's $\rho$ (median)")
            ax.set_ylabel(_RHO)
            ax.set_ylim(bottom=0)
        ax.set_xticks(depths)
        ax.set_xlabel("depth of the factorisation")
    m = int(df["n_observed"].iloc[0])
    axes[0].set_title(f"m = {m} observed entries")
    axes[1].set_title("effective rank of the completion")
    axes[0].legend(fontsize=8, loc="lower left")
    axes[1].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def _sweep_axes(ax: plt.Axes, df: pd.DataFrame, value: str, *, colours: dict, threshold: float | None,
                total: int | None, show_band: bool = True) -> None:
    deep = _depth_rows(df)
    for d in sorted(int(x) for x in deep["depth"].unique()):
        stats = deep[deep["depth"] == d].groupby("n_observed")[value].agg(["median", "min", "max"]).reset_index()
        ax.plot(stats["n_observed"], stats["median"], marker="o", markersize=4, color=colours[d], label=f"depth {d}")
        if show_band:
            ax.fill_between(stats["n_observed"], stats["min"], stats["max"], color=colours[d], alpha=0.12,
                            linewidth=0)
    nuc = _baseline(df, "nuclear norm", value)
    if len(nuc):
        ax.plot(nuc["n_observed"], nuc[value], color="black", linestyle="--", marker="s", markersize=3,
                label="nuclear norm")
    if value == "test_error":
        ax.axhline(1.0, color="grey", linestyle=":", label="predict 0")
        if threshold is not None:
            ax.axhline(threshold, color="tab:red", linewidth=0.8, alpha=0.6)
        ax.set_yscale("log")
        ax.set_ylabel(_ERR)
    else:
        ax.plot(*_baseline(df, "depth 1", "target_rho").to_numpy().T, color="tab:green", linestyle=":",
                label=r"truth's $\rho$")
        ax.set_ylabel(_RHO)
        ax.set_ylim(bottom=0)
    ax.set_xlabel("m, observed entries" + (f" (of {total})" if total else ""))


def plot_observation_sweep(df: pd.DataFrame, *, threshold: float | None = 0.1, size: int | None = None) -> Figure:
    """Test error (left, log scale) and ρ (right) against the number of observed entries m, one line per depth
    (median over seeds, band from the smallest to the largest seed), with the nuclear-norm and zero baselines."""
    require_columns(df, ["method", "depth", "n_observed", "test_error", "rho", "target_rho"], "plot_observation_sweep")
    colours = depth_palette(sorted(int(d) for d in _depth_rows(df)["depth"].unique()))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    total = size * size if size else None
    _sweep_axes(axes[0], df, "test_error", colours=colours, threshold=threshold, total=total)
    _sweep_axes(axes[1], df, "rho", colours=colours, threshold=None, total=total, show_band=False)
    axes[0].set_title("where each depth recovers the matrix")
    axes[1].set_title("effective rank of the completion (median)")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def plot_sweep_pair(live: pd.DataFrame, stored: pd.DataFrame, *, stored_label: str, threshold: float | None = 0.1,
                    size: int | None = None) -> Figure:
    """The test-error sweep of this session's run (left) beside a stored bigger run (right), on one y scale."""
    for frame, who in ((live, "live"), (stored, "stored")):
        require_columns(frame, ["method", "depth", "n_observed", "test_error"], f"plot_sweep_pair ({who})")
    depths = sorted(set(int(d) for d in _depth_rows(live)["depth"].unique())
                    | set(int(d) for d in _depth_rows(stored)["depth"].unique()))
    colours = depth_palette(depths)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    total = size * size if size else None
    for ax, frame, title in ((axes[0], live, "this run"), (axes[1], stored, stored_label)):
        _sweep_axes(ax, frame, "test_error", colours=colours, threshold=threshold, total=total)
        ax.set_title(title, fontsize=10)
    axes[1].set_ylabel("")
    axes[1].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def plot_init_scales(df: pd.DataFrame, *, threshold: float | None = 0.1,
                     palette_depths: Sequence[int] | None = None) -> Figure:
    """Test error (log scale) against the initial scale of the factors, one line per depth (median over seeds, band
    from the smallest to the largest seed), with the nuclear-norm baseline (median) as a dashed line.

    ``palette_depths`` (e.g. all the depths of the chapter) keeps each depth's colour the same as in the other
    figures; by default the colours are spread over the depths present."""
    require_columns(df, ["method", "depth", "init_scale", "test_error"], "plot_init_scales")
    deep = _depth_rows(df)
    present = sorted(int(d) for d in deep["depth"].unique())
    colours = depth_palette(sorted(set(present) | set(palette_depths or ())))
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for d in present:
        stats = deep[deep["depth"] == d].groupby("init_scale")["test_error"].agg(["median", "min", "max"])
        ax.plot(stats.index, stats["median"], marker="o", markersize=4, color=colours[d], label=f"depth {d}")
        ax.fill_between(stats.index, stats["min"], stats["max"], color=colours[d], alpha=0.12, linewidth=0)
    nuc = df.loc[df["method"].astype(str) == "nuclear norm", "test_error"]
    if len(nuc):
        ax.axhline(float(nuc.median()), color="black", linestyle="--", linewidth=1, label="nuclear norm")
    ax.axhline(1.0, color="grey", linestyle=":", label="predict 0")
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", linewidth=0.8, alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("initial scale of each factor (entries N(0, scale²/n))")
    ax.set_ylabel(_ERR)
    m = df["n_observed"].iloc[0] if "n_observed" in df.columns else None
    ax.set_title("smaller starts" + (f", m = {int(m)}" if m is not None else ""))
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_completion_examples(examples: pd.DataFrame, *, cmap: str = "RdBu_r") -> Figure:
    """Heat maps of one task: the truth, what is observed, and each method's completion (one panel each, in the
    order of the ``panel`` column), on one symmetric colour scale; unobserved entries of the data are blank."""
    require_columns(examples, ["panel", "row", "col", "value"], "plot_completion_examples")
    panels = list(pd.unique(examples["panel"]))
    vmax = float(np.nanmax(np.abs(examples["value"].to_numpy())))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels) + 0.8, 2.7), squeeze=False,
                             layout="constrained")
    image = None
    for ax, panel in zip(axes[0], panels, strict=True):
        part = examples[examples["panel"] == panel]
        grid = part.pivot(index="row", columns="col", values="value").to_numpy()
        image = ax.imshow(grid, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(str(panel), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    return fig
