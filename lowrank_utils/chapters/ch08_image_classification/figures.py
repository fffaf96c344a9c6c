"""Chapter 8's figures: each draws a tidy DataFrame from the chapter's ``experiment`` module in the book's style."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import stats

from lowrank_utils.plotting import depth_palette, require_columns

CLASSIFICATION_PANELS: dict[str, str] = {
    "test_acc": "test accuracy",
    "gap": "train − test accuracy",
    "rho": r"$\rho$ of centred Gram matrix",
}
"""The default panels of :func:`plot_classification` and :func:`plot_protocol`: column name -> axis label."""

_ARCH_MARKERS = ("o", "s", "^", "D")


def _finish(fig: Figure, title: str | None) -> Figure:
    """The figure with its overall title (if any), laid out."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _arch_panels(frame: pd.DataFrame) -> tuple[Figure, list[tuple[Axes, str, pd.DataFrame]]]:
    """A row of panels, one per (dataset, arch) in ``frame``: the figure and each panel's axes, name and rows."""
    groups = sorted(frame.groupby(["dataset", "arch"]).groups)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.3 * len(groups), 3.4), squeeze=False)
    panels = [
        (ax, f"{dataset} {arch}", frame[(frame["dataset"] == dataset) & (frame["arch"] == arch)])
        for ax, (dataset, arch) in zip(axes[0], groups, strict=True)
    ]
    return fig, panels


def _label_arch_panel(ax: Axes, name: str, xlabel: str, ylabel: str) -> None:
    """Axis labels, the panel's (dataset, arch) name and the legend of its lines (one per number of factors)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(name, loc="left")
    ax.legend(fontsize=8, title="factors", title_fontsize=8)


def plot_classification(results: pd.DataFrame, panels: Sequence[str] = tuple(CLASSIFICATION_PANELS),
                        title: str | None = None) -> Figure:
    """One row of panels per (dataset, arch), one panel per metric: a dot per seed and the mean ± one standard
    deviation per model, coloured by the number of factors per layer (``depth``)."""
    require_columns(results, ["dataset", "model", "depth", "seed", *panels], "plot_classification")
    if results.empty:
        raise ValueError("plot_classification got an empty DataFrame: there is nothing to plot.")
    results = results.assign(arch=results["arch"]) if "arch" in results else results.assign(arch="")
    groups = sorted(results.groupby(["dataset", "arch"]).groups)
    order = results.drop_duplicates("model").sort_values("depth")["model"].tolist()
    depth_of = dict(zip(results["model"], results["depth"], strict=False))
    colours = depth_palette(results["depth"].unique())
    palette = {m: colours[int(depth_of[m])] for m in order}
    fig, axes = plt.subplots(len(groups), len(panels), figsize=(4.2 * len(panels), 3.4 * len(groups)),
                             squeeze=False)
    for row, (dataset, arch) in enumerate(groups):
        part = results[(results["dataset"] == dataset) & (results["arch"] == arch)]
        for col, metric in enumerate(panels):
            ax = axes[row, col]
            sns.stripplot(data=part, x="model", y=metric, hue="model", order=order, hue_order=order, palette=palette,
                          size=6, alpha=0.6, jitter=0.12, legend=False, ax=ax)
            sns.pointplot(data=part, x="model", y=metric, order=order, color="black", errorbar="sd", markers="_",
                          markersize=18, linestyles="none", capsize=0.15, err_kws={"linewidth": 1.2}, ax=ax)
            ax.set_xlabel("")
            ax.set_ylabel(CLASSIFICATION_PANELS.get(metric, metric))
            ax.tick_params(axis="x", labelrotation=15)
            if col == 0:
                ax.set_title(f"{dataset} {arch}".strip(), loc="left")
    return _finish(fig, title)


def _mean_ci(values: pd.Series) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (NaN for fewer than two values)."""
    values = values.dropna()
    n = len(values)
    if n < 2:
        return float(values.mean()) if n else float("nan"), float("nan")
    return float(values.mean()), float(stats.t.ppf(0.975, n - 1) * values.std() / np.sqrt(n))


def plot_protocol(sources: Mapping[str, pd.DataFrame], panels: Sequence[str] = tuple(CLASSIFICATION_PANELS),
                  title: str | None = None) -> Figure:
    """Final runs of several sources (e.g. ``{"stored: full Fashion-MNIST": ..., "live quick run": ...}``) against
    the number of factors per layer: one row per source (each with its own scale), one panel per metric, the mean over
    seeds with its 95% t-interval, a line (and marker) per architecture."""
    if not sources:
        raise ValueError("plot_protocol needs at least one source of final runs.")
    for name, frame in sources.items():
        require_columns(frame, ["arch", "depth", "seed", *panels], f"plot_protocol (source {name!r})")
    archs = sorted({a for frame in sources.values() for a in frame["arch"].unique()})
    colours = dict(zip(archs, sns.color_palette("deep", n_colors=max(len(archs), 2)), strict=False))
    fig, axes = plt.subplots(len(sources), len(panels), figsize=(4.3 * len(panels), 3.3 * len(sources)),
                             squeeze=False)
    depths = sorted({int(d) for frame in sources.values() for d in frame["depth"].unique()})
    for row, (name, frame) in enumerate(sources.items()):
        for a, arch in enumerate(archs):
            part = frame[frame["arch"] == arch]
            if part.empty:
                continue
            by_depth = sorted(part.groupby("depth"))
            for ax, metric in zip(axes[row], panels, strict=True):
                means, halves = zip(*(_mean_ci(g[metric]) for _, g in by_depth), strict=True)
                ax.errorbar([int(d) for d, _ in by_depth], means, yerr=halves, capsize=3,
                            marker=_ARCH_MARKERS[a % len(_ARCH_MARKERS)], color=colours[arch], label=arch)
        for ax, metric in zip(axes[row], panels, strict=True):
            ax.set_xscale("log", base=2)
            ax.set_xticks(depths, [str(d) for d in depths])
            ax.minorticks_off()
            ax.set_xlabel("factors per layer (1 = baseline)" if row == len(sources) - 1 else "")
            ax.set_ylabel(CLASSIFICATION_PANELS.get(metric, metric))
        axes[row, 0].set_title(name, loc="left")
        axes[row, -1].legend(fontsize=8, loc="best")
    return _finish(fig, title)


def plot_lr_grid(grid: pd.DataFrame, title: str | None = None) -> Figure:
    """Validation accuracy of the grid runs against the learning rate, one panel per (dataset, arch), a line per
    number of factors per layer; a cross at the bottom marks a run whose loss became NaN."""
    require_columns(grid, ["dataset", "arch", "depth", "lr", "val_acc"], "plot_lr_grid")
    if grid.empty:
        raise ValueError("plot_lr_grid got an empty DataFrame: there is nothing to plot.")
    colours = depth_palette(grid["depth"].unique())
    fig, panels = _arch_panels(grid)
    for ax, name, part in panels:
        floor = float(part["val_acc"].min()) if part["val_acc"].notna().any() else 0.0
        for depth, runs in part.groupby("depth"):
            runs = runs.sort_values("lr")
            label = "baseline" if depth == 1 else f"x{depth}"
            ax.plot(runs["lr"], runs["val_acc"], marker="o", color=colours[int(depth)], label=label)
            failed = runs[runs["val_acc"].isna()]
            ax.scatter(failed["lr"], [floor] * len(failed), marker="x", color=colours[int(depth)])
        ax.set_xscale("log")
        _label_arch_panel(ax, name, "learning rate", "validation accuracy")
    return _finish(fig, title)


def plot_history(history: pd.DataFrame, metric: str = "val_acc", stage: str = "final",
                 title: str | None = None) -> Figure:
    """``metric`` per epoch of the ``stage`` runs, mean over seeds per model, one panel per (dataset, arch): does
    each model still improve at the end of its budget?"""
    require_columns(history, ["dataset", "arch", "depth", "stage", "seed", "epoch", metric], "plot_history")
    part = history[history["stage"] == stage]
    if part.empty:
        raise ValueError(f"plot_history found no {stage!r} runs in the history.")
    colours = depth_palette(part["depth"].unique())
    fig, panels = _arch_panels(part)
    for ax, name, runs in panels:
        for depth, by_depth in runs.groupby("depth"):
            mean = by_depth.groupby("epoch")[metric].mean()
            ax.plot(mean.index, mean.to_numpy(), marker="o", color=colours[int(depth)],
                    label="baseline" if depth == 1 else f"x{depth}")
        ax.set_xticks(sorted(int(e) for e in runs["epoch"].unique()))
        _label_arch_panel(ax, name, "epoch", metric.replace("_", " ").replace("acc", "accuracy"))
    return _finish(fig, title)
