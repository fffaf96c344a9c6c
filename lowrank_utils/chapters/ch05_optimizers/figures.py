"""Chapter 5's figures: each draws a tidy DataFrame from the chapter's ``experiment`` module in the book's style."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lowrank_utils.plotting import (
    RHO_K_LABEL,
    depth_axis,
    require_columns,
    without_diverged,
)


def plot_optimizer_rho(df: pd.DataFrame) -> Figure:
    """ρ after training against depth for each optimizer (mean ± standard error over seeds), gradient-based on the
    left and gradient-free on the right, with ρ at initialisation (the same for every optimizer; grey, dashed) and
    the target's ρ (black, dotted) as references."""
    require_columns(df, ["optimizer", "family", "depth", "rho_final", "rho_init"], "plot_optimizer_rho")
    data = without_diverged(df).copy()
    data["optimizer"] = data["optimizer"].astype(str)
    families = [f for f in ("gradient-based", "gradient-free") if f in set(data["family"])]
    fig, axes = plt.subplots(1, len(families), figsize=(5.6 * len(families), 4.0), sharey=True, squeeze=False)
    optimizers = list(pd.unique(data["optimizer"]))
    colours = dict(zip(optimizers, sns.color_palette("tab10", len(optimizers)), strict=True))
    for ax, family in zip(axes[0], families, strict=True):
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
        if "target_rho" in data.columns:
            ax.axhline(float(data["target_rho"].mean()), color="black", linestyle=":", label=r"target's $\rho$")
        depth_axis(ax, data["depth"].unique())
        ax.set_title(family)
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel(RHO_K_LABEL + " after training")
    fig.tight_layout()
    return fig


def plot_optimizer_cost(df: pd.DataFrame) -> Figure:
    """Loss evaluations spent per run (median over seeds, log scale) against depth, one line per optimizer."""
    require_columns(df, ["optimizer", "depth", "evaluations"], "plot_optimizer_cost")
    data = without_diverged(df).copy()
    data["optimizer"] = data["optimizer"].astype(str)
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    sns.lineplot(data=data, x="depth", y="evaluations", hue="optimizer", estimator="median", errorbar=None,
                 marker="o", ax=ax, palette="tab10")
    ax.set_yscale("log")
    depth_axis(ax, data["depth"].unique())
    ax.set_ylabel("loss evaluations (median over seeds)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def plot_start_control(df: pd.DataFrame) -> Figure:
    """One panel per start (``start`` column): ρ after training against depth for each optimizer (mean ± standard
    error over seeds), with that start's ρ at initialisation (grey, dashed) and the target's ρ (black, dotted)."""
    require_columns(df, ["start", "optimizer", "depth", "rho_init", "rho_final", "target_rho"], "plot_start_control")
    data = without_diverged(df).copy()
    data["optimizer"] = data["optimizer"].astype(str)
    starts = [str(s) for s in pd.unique(data["start"].astype(str))]
    optimizers = list(pd.unique(data["optimizer"]))
    colours = dict(zip(optimizers, sns.color_palette("tab10", len(optimizers)), strict=True))
    fig, axes = plt.subplots(1, len(starts), figsize=(5.6 * len(starts), 4.0), sharey=True, squeeze=False)
    for ax, start in zip(axes[0], starts, strict=True):
        part = data[data["start"].astype(str) == start]
        stats = part.groupby(["optimizer", "depth"], observed=True)["rho_final"].agg(["mean", "sem"]).reset_index()
        for i, name in enumerate(optimizers):
            st = stats[stats["optimizer"] == name]
            if st.empty:
                continue
            xs = st["depth"].to_numpy(float) * 2 ** (0.06 * (i - (len(optimizers) - 1) / 2))
            ax.errorbar(xs, st["mean"], yerr=st["sem"].fillna(0.0), marker="o", markersize=4, capsize=3,
                        color=colours[name], label=name)
        init = part.groupby("depth")["rho_init"].mean()
        ax.plot(init.index, init.to_numpy(), color="grey", linestyle="--", marker="x", label="at initialisation")
        ax.axhline(float(part["target_rho"].mean()), color="black", linestyle=":", label=r"target's $\rho$")
        depth_axis(ax, part["depth"].unique())
        ax.set_title(f"{start} start")
    axes[0, 0].set_ylabel(RHO_K_LABEL + " after training")
    axes[0, -1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig
