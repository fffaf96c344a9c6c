"""One look for every figure in the book, and the small helpers the chapters' figure modules share.

Plots take tidy DataFrames.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

_PALETTE = "viridis"
RHO_K_LABEL = r"$\rho$(K), nats"
INIT_LABELS = {"default": "default init", "orthogonal": "orthogonal init", "low_rank": "low-rank init",
               "low_rank_every_layer": "low-rank every layer"}


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


def require_columns(df: pd.DataFrame, columns: Sequence[str], who: str) -> None:
    """Refuse a DataFrame that lacks any of ``columns`` with a ValueError naming them and the plot (``who``)."""
    missing = set(columns) - set(df.columns)
    if missing:
        raise ValueError(f"{who} needs columns {sorted(missing)} in the DataFrame.")


def figure_and_axes(ax: plt.Axes | None, figsize: tuple[float, float]) -> tuple[Figure, plt.Axes]:
    """A new figure of ``figsize`` with one axes when ``ax`` is None, else ``ax`` and the figure that holds it."""
    if ax is None:
        return plt.subplots(figsize=figsize)
    fig = ax.get_figure(root=True)
    if fig is None:
        raise ValueError("ax must belong to a figure (make it with plt.subplots).")
    return fig, ax


def without_diverged(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of runs that did not diverge (all rows when there is no ``diverged`` column)."""
    return df[~df["diverged"].astype(bool)] if "diverged" in df.columns else df


def depth_axis(ax: plt.Axes, depths: Sequence[int]) -> None:
    """Label the x axis with the depths (log base 2 when they span a factor of 8 or more)."""
    depths = sorted(set(int(d) for d in depths))
    if len(depths) > 1 and depths[-1] / max(depths[0], 1) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(depths)
    ax.set_xticklabels([str(d) for d in depths])
    ax.minorticks_off()
    ax.set_xlabel("depth")


def mean_sd(df: pd.DataFrame, x: str, y: str, by: str | None) -> pd.DataFrame:
    """Mean, sd (0 for one run), min, max and count of ``y`` per ``x`` (and ``by``)."""
    keys = [by, x] if by else [x]
    out = df.groupby(keys, observed=True)[y].agg(["mean", "std", "min", "max", "count"]).reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def errorbar_lines(ax: plt.Axes, df: pd.DataFrame, x: str, y: str, by: str | None, *, colors: dict | None = None,
                    linestyle: str = "-", marker: str = "o", label_suffix: str = "", labels: dict | None = None,
                   offset: float = 0.0, alpha: float = 1.0, spread: str = "sd") -> None:
    """Mean of ``y`` against ``x`` per ``by`` group, with error bars of ± one sd or the min-max ``range``."""
    stats = mean_sd(df, x, y, by)
    groups = [(None, stats)] if by is None else list(stats.groupby(by, observed=True, sort=False))
    for i, (key, part) in enumerate(groups):
        xs = part[x].to_numpy(dtype=float)
        if offset:
            xs = xs * 2 ** (offset * (i - (len(groups) - 1) / 2))  # small multiplicative dodge on a log axis
        name = "" if key is None else (labels or {}).get(key, str(key))
        if spread == "range":  # asymmetric, never below the smallest value: the honest choice on a log axis
            yerr = np.vstack([part["mean"] - part["min"], part["max"] - part["mean"]]).clip(min=0)
        else:
            yerr = part["std"].to_numpy()
        ax.errorbar(xs, part["mean"], yerr=yerr, color=None if colors is None else colors.get(key),
                    linestyle=linestyle, marker=marker, markersize=4, capsize=3, alpha=alpha,
                    label=(name + label_suffix) if (name or label_suffix) else None)


def label_short_log_axis(ax: plt.Axes) -> None:
    """On a log y axis spanning less than a decade, label the minor ticks too (else it shows one number or none)."""
    low, high = ax.get_ylim()
    if low > 0 and high / low < 10:  # evenly spaced plain ticks: no power of ten, or one, falls inside the range
        ax.yaxis.set_major_locator(mticker.MaxNLocator(4))
        ax.yaxis.set_major_formatter(mticker.FormatStrFormatter("%.2g"))
        ax.yaxis.set_minor_locator(mticker.NullLocator())


# Figures shared by the regression chapters (4 and 6).


def plot_depth_regression(summary: pd.DataFrame, *, hue: str = "target") -> Figure:
    """Three panels against depth: ρ at initialisation (dashed), after training (solid) and the target's ρ (dotted);
    the train loss (log scale, bars from the smallest to the largest seed); the test loss, with the minimum-norm
    least-squares baseline (dotted) when the summary has an ``ls_test_loss`` column. One colour per ``hue`` value."""
    needed = [hue, "depth", "rho_init", "rho_final", "train_loss", "test_loss"]
    require_columns(summary, needed, "plot_depth_regression")
    data = without_diverged(summary).copy()
    data[hue] = data[hue].astype(str)
    keys = list(pd.unique(data[hue]))
    colours = dict(zip(keys, sns.color_palette("deep", len(keys)), strict=True))
    labels = INIT_LABELS if hue == "init" else None
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0))
    errorbar_lines(axes[0], data, "depth", "rho_final", hue, colors=colours, labels=labels,
                    label_suffix=": after training")
    errorbar_lines(axes[0], data, "depth", "rho_init", hue, colors=colours, labels=labels, linestyle="--",
                    marker="x", label_suffix=": at init", alpha=0.6)
    if "target_rho" in data.columns:
        for key, part in data.groupby(hue, observed=True, sort=False):
            axes[0].axhline(float(part["target_rho"].mean()), color=colours[key], linestyle=":", linewidth=1.5)
    axes[0].set_ylabel(RHO_K_LABEL + " (dotted: target's)")
    axes[0].set_title(r"effective rank $\rho$")
    errorbar_lines(axes[1], data, "depth", "train_loss", hue, colors=colours, labels=labels, spread="range")
    axes[1].set_yscale("log")
    label_short_log_axis(axes[1])
    axes[1].set_ylabel("train MSE (log scale; bars: min-max)")
    axes[1].set_title("train loss")
    errorbar_lines(axes[2], data, "depth", "test_loss", hue, colors=colours, labels=labels)
    if "ls_test_loss" in data.columns:
        for i, (key, part) in enumerate(data.groupby(hue, observed=True, sort=False)):
            axes[2].axhline(float(part["ls_test_loss"].mean()), color=colours[key], linestyle=":", linewidth=1.5,
                            label="least squares (dotted)" if i == 0 else None)
    axes[2].set_ylabel("test MSE (predicting 0 gives about 1)")
    axes[2].set_title("test loss")
    for ax in axes:
        depth_axis(ax, data["depth"].unique())
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_rho_dynamics(history: pd.DataFrame, *, col: str = "target", hue: str = "depth", seed: int | None = None,
                      reference: dict | None = None) -> Figure:
    """ρ(K) on held-out inputs against the training step, one panel per ``col`` value and one line per ``hue`` value.

    ``seed`` picks one run per line (default: the smallest seed in the data); ``reference`` maps a ``col`` value to a
    horizontal dotted line (e.g. the target's ρ).
    """
    require_columns(history, [col, hue, "step", "rho", "seed"], "plot_rho_dynamics")
    data = without_diverged(history)
    seed = int(data["seed"].min()) if seed is None else seed
    data = data[data["seed"] == seed]
    panels = list(pd.unique(data[col]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), sharey=True, squeeze=False)
    if hue == "depth":
        colours: dict = depth_palette(data["depth"].unique())
    else:
        keys = list(pd.unique(data[hue]))
        colours = dict(zip(keys, sns.color_palette("deep", len(keys)), strict=True))
    styles = ["-", "--", ":", "-."]
    for ax, key in zip(axes[0], panels, strict=True):
        part = data[data[col] == key]
        for h, run in part.groupby(hue, observed=True, sort=True):
            subgroups = [(None, run)]
            if hue != "depth" and "depth" in run.columns and run["depth"].nunique() > 1:
                subgroups = list(run.groupby("depth", observed=True))
            for j, (d, line) in enumerate(subgroups):
                label = f"{INIT_LABELS.get(h, h)}" if d is None else f"{INIT_LABELS.get(h, h)}, depth {d}"
                ax.plot(line["step"], line["rho"], color=colours[h], linestyle=styles[j % len(styles)],
                        label=label if hue != "depth" else f"depth {h}")
        if reference and key in reference:
            ax.axhline(reference[key], color="grey", linestyle=":", label=r"target's $\rho$")
        ax.set_title(f"{col} = {key}" if col != "target" else f"{key} target")
        ax.set_xlabel("training step")
    axes[0, 0].set_ylabel(RHO_K_LABEL + " on held-out inputs")
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig
