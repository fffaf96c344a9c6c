"""Figures of chapters 4-6 (trained networks, optimizers, initialisation), drawn from tidy DataFrames.

Every function returns the matplotlib Figure it drew and never calls ``plt.show``. Depth colours come from
:func:`lowrank_utils.plotting.depth_palette`; error bars are over seeds (mean ± one standard deviation unless the
function says otherwise). Runs that diverged (``diverged=True``) are left out.
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
    "plot_activation_rho",
    "plot_trained_grams",
    "plot_depth_regression",
    "plot_rho_dynamics",
    "plot_rank_sweep",
    "plot_optimizer_rho",
    "plot_optimizer_cost",
    "plot_init_comparison",
]

_RHO = r"$\rho$(K), nats"
_INIT_LABELS = {"default": "default init", "low_rank": "low-rank init"}


def _need(df: pd.DataFrame, columns: Sequence[str], who: str) -> None:
    missing = set(columns) - set(df.columns)
    if missing:
        raise ValueError(f"{who} needs columns {sorted(missing)} in the DataFrame.")


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[~df["diverged"].astype(bool)] if "diverged" in df.columns else df


def _depth_axis(ax: plt.Axes, depths: Sequence[int]) -> None:
    depths = sorted(set(int(d) for d in depths))
    if len(depths) > 1 and depths[-1] / max(depths[0], 1) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(depths)
    ax.set_xticklabels([str(d) for d in depths])
    ax.minorticks_off()
    ax.set_xlabel("depth")


def _mean_sd(df: pd.DataFrame, x: str, y: str, by: str | None) -> pd.DataFrame:
    keys = [by, x] if by else [x]
    out = df.groupby(keys, observed=True)[y].agg(["mean", "std", "min", "max", "count"]).reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def _errorbar_lines(ax: plt.Axes, df: pd.DataFrame, x: str, y: str, by: str | None, *, colors: dict | None = None,
                    linestyle: str = "-", marker: str = "o", label_suffix: str = "", labels: dict | None = None,
                    offset: float = 0.0, alpha: float = 1.0, spread: str = "sd") -> None:
    """Mean of ``y`` against ``x`` per ``by`` group, with error bars of ± one sd or the min-max ``range``."""
    stats = _mean_sd(df, x, y, by)
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


# ----------------------------------------------------------------------------------------------------------------
# Chapter 4


def plot_activation_rho(results: pd.DataFrame) -> Figure:
    """ρ(K) against depth for every activation: at initialisation (left) and after training (right)."""
    _need(results, ["activation", "depth", "rho_init", "rho_final"], "plot_activation_rho")
    data = _ok(results)
    activations = [str(a) for a in pd.unique(data["activation"])]
    colours = dict(zip(activations, sns.color_palette("tab10", len(activations))))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), sharey=True)
    for ax, column, title in ((axes[0], "rho_init", "at initialisation"), (axes[1], "rho_final", "after training")):
        part = data.assign(activation=data["activation"].astype(str))
        _errorbar_lines(ax, part, "depth", column, "activation", colors=colours)
        if "target_rho" in data.columns:
            ax.axhline(float(data["target_rho"].mean()), color="grey", linestyle=":", label=r"target's $\rho$")
        _depth_axis(ax, data["depth"].unique())
        ax.set_title(title)
    axes[0].set_ylabel(_RHO + " on held-out inputs")
    axes[1].legend(fontsize=8, ncol=2, loc="upper right")
    fig.tight_layout()
    return fig


def plot_trained_grams(grams: pd.DataFrame, *, activations: Sequence[str] | None = None,
                       cmap: str = "RdBu_r") -> Figure:
    """Heat maps of K after training: one row per activation, one column per depth, ρ in each title."""
    _need(grams, ["activation", "depth", "row", "col", "value", "rho"], "plot_trained_grams")
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


def plot_depth_regression(summary: pd.DataFrame, *, hue: str = "target") -> Figure:
    """Three panels against depth: ρ at initialisation (dashed), at convergence (solid) and the target's ρ (dotted);
    the train loss (log scale, bars from the smallest to the largest seed); the test loss. One colour per ``hue``
    value."""
    _need(summary, [hue, "depth", "rho_init", "rho_final", "train_loss", "test_loss"], "plot_depth_regression")
    data = _ok(summary).copy()
    data[hue] = data[hue].astype(str)
    keys = list(pd.unique(data[hue]))
    colours = dict(zip(keys, sns.color_palette("deep", len(keys))))
    labels = _INIT_LABELS if hue == "init" else None
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0))
    _errorbar_lines(axes[0], data, "depth", "rho_final", hue, colors=colours, labels=labels,
                    label_suffix=": converged")
    _errorbar_lines(axes[0], data, "depth", "rho_init", hue, colors=colours, labels=labels, linestyle="--",
                    marker="x", label_suffix=": at init", alpha=0.6)
    if "target_rho" in data.columns:
        for key, part in data.groupby(hue, observed=True, sort=False):
            axes[0].axhline(float(part["target_rho"].mean()), color=colours[key], linestyle=":", linewidth=1.5)
    axes[0].set_ylabel(_RHO + " (dotted: target's)")
    axes[0].set_title(r"effective rank $\rho$")
    _errorbar_lines(axes[1], data, "depth", "train_loss", hue, colors=colours, labels=labels, spread="range")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("train MSE (log scale; bars: min-max)")
    axes[1].set_title("train loss")
    _errorbar_lines(axes[2], data, "depth", "test_loss", hue, colors=colours, labels=labels)
    axes[2].set_ylabel("test MSE (predicting 0 gives about 1)")
    axes[2].set_title("test loss")
    for ax in axes:
        _depth_axis(ax, data["depth"].unique())
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
    _need(history, [col, hue, "step", "rho", "seed"], "plot_rho_dynamics")
    data = _ok(history)
    seed = int(data["seed"].min()) if seed is None else seed
    data = data[data["seed"] == seed]
    panels = list(pd.unique(data[col]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), sharey=True, squeeze=False)
    if hue == "depth":
        colours: dict = depth_palette(data["depth"].unique())
    else:
        keys = list(pd.unique(data[hue]))
        colours = dict(zip(keys, sns.color_palette("deep", len(keys))))
    styles = ["-", "--", ":", "-."]
    for ax, key in zip(axes[0], panels):
        part = data[data[col] == key]
        for i, (h, run) in enumerate(part.groupby(hue, observed=True, sort=True)):
            subgroups = [(None, run)]
            if hue != "depth" and "depth" in run.columns and run["depth"].nunique() > 1:
                subgroups = list(run.groupby("depth", observed=True))
            for j, (d, line) in enumerate(subgroups):
                label = f"{_INIT_LABELS.get(h, h)}" if d is None else f"{_INIT_LABELS.get(h, h)}, depth {d}"
                ax.plot(line["step"], line["rho"], color=colours[h], linestyle=styles[j % len(styles)],
                        label=label if hue != "depth" else f"depth {h}")
        if reference and key in reference:
            ax.axhline(reference[key], color="grey", linestyle=":", label=r"target's $\rho$")
        ax.set_title(f"{col} = {key}" if col != "target" else f"{key} target")
        ax.set_xlabel("training step")
    axes[0, 0].set_ylabel(_RHO + " on held-out inputs")
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_rank_sweep(summary: pd.DataFrame) -> Figure:
    """Converged ρ against the target's own ρ, one line per depth, with the diagonal "ρ = target's ρ"."""
    _need(summary, ["depth", "target_rho", "rho_final", "target_rank"], "plot_rank_sweep")
    data = _ok(summary)
    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    palette = depth_palette(data["depth"].unique())
    stats = data.groupby(["depth", "target_rank"], observed=True)[["target_rho", "rho_final"]].mean().reset_index()
    for depth, part in stats.groupby("depth"):
        ax.plot(part["target_rho"], part["rho_final"], marker="o", color=palette[depth], label=f"depth {depth}")
    lo, hi = 0.0, float(max(stats["target_rho"].max(), stats["rho_final"].max())) * 1.05
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle=":", label="converged = target")
    ax.set_xlim(lo - 0.05 * hi, hi)
    ranks = stats.drop_duplicates("target_rank").sort_values("target_rank")
    top = ax.twiny()  # the targets' ranks on a top axis, at their ρ
    top.set_xlim(ax.get_xlim())
    top.set_xticks(ranks["target_rho"].to_numpy())
    top.set_xticklabels([str(int(r)) for r in ranks["target_rank"]], fontsize=8)
    top.set_xlabel("target rank", fontsize=9)
    top.grid(False)
    ax.set_xlabel(r"target's $\rho$ (nats)")
    ax.set_ylabel(r"converged $\rho$ (nats)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Chapter 5


def plot_optimizer_rho(df: pd.DataFrame) -> Figure:
    """Converged ρ against depth for each optimizer (mean ± standard error over seeds), gradient-based on the
    left and gradient-free on the right, with ρ at initialisation (the same for every optimizer) in grey."""
    _need(df, ["optimizer", "family", "depth", "rho_final", "rho_init"], "plot_optimizer_rho")
    data = _ok(df).copy()
    data["optimizer"] = data["optimizer"].astype(str)
    families = [f for f in ("gradient-based", "gradient-free") if f in set(data["family"])]
    fig, axes = plt.subplots(1, len(families), figsize=(5.6 * len(families), 4.0), sharey=True, squeeze=False)
    optimizers = list(pd.unique(data["optimizer"]))
    colours = dict(zip(optimizers, sns.color_palette("tab10", len(optimizers))))
    for ax, family in zip(axes[0], families):
        part = data[data["family"] == family]
        stats = part.groupby(["optimizer", "depth"], observed=True)["rho_final"].agg(["mean", "sem"]).reset_index()
        names = list(pd.unique(stats["optimizer"]))
        for i, name in enumerate(names):
            s = stats[stats["optimizer"] == name]
            xs = s["depth"].to_numpy(float) * 2 ** (0.06 * (i - (len(names) - 1) / 2))
            ax.errorbar(xs, s["mean"], yerr=s["sem"].fillna(0.0), marker="o", markersize=4, capsize=3,
                        color=colours[name], label=name)
        init = data.groupby("depth")["rho_init"].mean()
        ax.plot(init.index, init.to_numpy(), color="grey", linestyle="--", marker="x", label="at initialisation")
        _depth_axis(ax, data["depth"].unique())
        ax.set_title(family)
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("converged " + _RHO)
    fig.tight_layout()
    return fig


def plot_optimizer_cost(df: pd.DataFrame) -> Figure:
    """Loss evaluations spent per run (median over seeds, log scale) against depth, one line per optimizer."""
    _need(df, ["optimizer", "depth", "evaluations"], "plot_optimizer_cost")
    data = _ok(df).copy()
    data["optimizer"] = data["optimizer"].astype(str)
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    sns.lineplot(data=data, x="depth", y="evaluations", hue="optimizer", estimator="median", errorbar=None,
                 marker="o", ax=ax, palette="tab10")
    ax.set_yscale("log")
    _depth_axis(ax, data["depth"].unique())
    ax.set_ylabel("loss evaluations (median over seeds)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Chapter 6


def plot_init_comparison(summary: pd.DataFrame) -> Figure:
    """:func:`plot_depth_regression` with one colour per initialisation."""
    _need(summary, ["init"], "plot_init_comparison")
    return plot_depth_regression(summary, hue="init")
