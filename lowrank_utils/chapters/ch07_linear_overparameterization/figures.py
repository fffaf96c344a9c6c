"""Figures of chapter 7 (linear over-parameterization), drawn from the tidy DataFrames of
:mod:`lowrank_utils.chapters.ch07_linear_overparameterization.experiment`.

Every function returns the matplotlib Figure it drew (and never calls ``plt.show``). Depth colours come from
:func:`lowrank_utils.plotting.depth_palette`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lowrank_utils.plotting import depth_palette, figure_and_axes, require_columns

_MODEL_COLOURS = ("#4c72b0", "#dd8452")  # original, over-parameterized: seaborn "deep" blue and orange


def _model_palette(models: Sequence[str]) -> dict[str, str]:
    """One colour per model, cycling through :data:`_MODEL_COLOURS` (original blue, over-parameterized orange)."""
    return {model: _MODEL_COLOURS[i % len(_MODEL_COLOURS)] for i, model in enumerate(models)}


def plot_init_rank(df: pd.DataFrame, *, max_rho: dict[str, float] | None = None) -> Figure:
    """Box plots of ρ of the end-to-end weight at initialisation against depth, one panel per layer.

    ``df`` is :func:`~lowrank_utils.chapters.ch07_linear_overparameterization.experiment.init_rank`'s table
    (columns ``layer``, ``depth``, ``rho`` and ``rho_fraction``). A dashed line marks the largest possible ρ,
    log(min(m, n)), read off the data's ``rho / rho_fraction`` unless ``max_rho`` gives it per layer.
    """
    require_columns(df, ["layer", "depth", "rho"], "plot_init_rank")
    layers = list(dict.fromkeys(df["layer"]))
    palette = depth_palette(df["depth"].unique())
    fig, axes = plt.subplots(1, len(layers), figsize=(5.2 * len(layers), 3.8), squeeze=False)
    for ax, layer in zip(axes[0], layers, strict=True):
        part = df[df["layer"] == layer]
        order = sorted(part["depth"].unique())
        with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11's deprecated `vert` to bxp
            warnings.filterwarnings("ignore", message=".*vert.*", category=DeprecationWarning)
            sns.boxplot(data=part, x="depth", y="rho", hue="depth", order=order, palette=palette, legend=False,
                        fliersize=2, width=0.6, ax=ax)
        top = (max_rho or {}).get(layer)
        if top is None and "rho_fraction" in part.columns:
            top = float((part["rho"] / part["rho_fraction"]).median())
        if top is not None and math.isfinite(top):
            ax.axhline(top, ls="--", lw=1, color="0.4", label=r"largest possible $\rho$, $\log\min(m, n)$")
            ax.legend(loc="lower left", fontsize=9)
        ax.set(title=layer, xlabel="depth of the expansion (1 = plain layer)",
               ylabel=r"$\rho$ of the end-to-end weight")
    fig.tight_layout()
    return fig


def pick_checkpoints(steps: Sequence[int], n: int = 4) -> list[int]:
    """``n`` checkpoints spread evenly over ``steps`` (always the first and the last)."""
    steps = sorted(set(int(s) for s in steps))
    if n < 2 or len(steps) <= n:
        return steps
    picks = np.linspace(0, len(steps) - 1, n).round().astype(int)
    return [steps[i] for i in sorted(set(picks))]


def plot_spectrum_dynamics(df: pd.DataFrame, *, steps: Sequence[int] | None = None, n_checkpoints: int = 4) -> Figure:
    """Normalised singular values σ̄ᵢ of the tracked layer at a few checkpoints, one panel per model (log scale).

    ``df`` is :func:`~lowrank_utils.chapters.ch07_linear_overparameterization.experiment.spectrum_dynamics`'s table;
    ``steps`` picks the checkpoints (default: ``n_checkpoints`` spread over training). Lighter lines are later in
    training.
    """
    require_columns(df, ["model", "step", "epoch", "index", "normalized_sv"], "plot_spectrum_dynamics")
    models = list(dict.fromkeys(df["model"]))
    chosen = list(steps) if steps is not None else pick_checkpoints(df["step"].unique(), n_checkpoints)
    unknown = set(chosen) - set(int(s) for s in df["step"].unique())
    if unknown:
        raise ValueError(f"steps {sorted(unknown)} are not checkpoints of this run; choose from "
                         f"{sorted(df['step'].unique())}.")
    colours = sns.color_palette("viridis", n_colors=max(len(chosen), 2))
    fig, axes = plt.subplots(1, len(models), figsize=(5.4 * len(models), 3.9), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        part = df[df["model"] == model]
        for colour, step in zip(colours, chosen, strict=False):  # the palette has at least two colours
            curve = part[part["step"] == step].sort_values("index")
            epoch = float(curve["epoch"].iloc[0])
            ax.plot(curve["index"], curve["normalized_sv"], color=colour, lw=1.6, label=f"epoch {epoch:.2g}")
        ax.set_yscale("log")
        ax.set(title=model, xlabel="singular value index i")
        ax.legend(title="checkpoint", fontsize=9, title_fontsize=9)
    axes[0][0].set_ylabel(r"normalised singular value $\bar\sigma_i$")
    fig.tight_layout()
    return fig


def plot_spectrum_change(df: pd.DataFrame, *, ax: plt.Axes | None = None) -> Figure:
    """The ratio σ̄ᵢ(end) / σ̄ᵢ(start) of the tracked layer's normalised singular values, one line per model.

    Above 1: direction i holds a larger share of the weight at the end of training than at the start; below 1: a
    smaller one. A line falling from left to right means the spectrum has become steeper (lower ρ).
    """
    require_columns(df, ["model", "step", "index", "normalized_sv"], "plot_spectrum_change")
    models = list(dict.fromkeys(df["model"]))
    palette = _model_palette(models)
    fig, ax = figure_and_axes(ax, (6.0, 3.8))
    for model in models:
        part = df[df["model"] == model]
        start = part[part["step"] == part["step"].min()].set_index("index")["normalized_sv"]
        end = part[part["step"] == part["step"].max()].set_index("index")["normalized_sv"]
        ratio = (end / start).sort_index()
        ax.plot(ratio.index, ratio.values, color=palette[model], lw=1.8, label=model)
    ax.axhline(1.0, ls="--", lw=1, color="0.4")
    ax.set_yscale("log")
    ax.set(xlabel="singular value index i", ylabel=r"$\bar\sigma_i$(end) / $\bar\sigma_i$(start)",
           title="how training reshaped the spectrum")
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def plot_rank_over_training(df: pd.DataFrame) -> Figure:
    """Three panels against epoch, one line per model: ρ of the tracked layer, its change since step 0, and the
    test accuracy.

    ``df`` is the per-checkpoint table
    (:func:`~lowrank_utils.chapters.ch07_linear_overparameterization.experiment.checkpoint_table`) or the full
    spectrum table (one row per checkpoint is kept).
    """
    require_columns(df, ["model", "step", "epoch", "rho", "test_acc"], "plot_rank_over_training")
    if "index" in df.columns:
        df = df[df["index"] == 1]
    df = df.sort_values(["model", "step"]).copy()
    df["rho_change"] = df["rho"] - df.groupby("model")["rho"].transform("first")
    models = list(dict.fromkeys(df["model"]))
    palette = _model_palette(models)
    fig, axes = plt.subplots(1, 3, figsize=(14.5, 3.8))
    panels = (
        ("rho", r"$\rho$ of the tracked layer", "effective rank"),
        ("rho_change", r"$\rho(t) - \rho(0)$", "change in effective rank"),
        ("test_acc", "test accuracy", "test accuracy"),
    )
    for ax, (column, label, title) in zip(axes, panels, strict=True):
        sns.lineplot(data=df, x="epoch", y=column, hue="model", hue_order=models, palette=palette, marker="o",
                     markersize=4, ax=ax)
        ax.set(xlabel="epoch", ylabel=label, title=title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
