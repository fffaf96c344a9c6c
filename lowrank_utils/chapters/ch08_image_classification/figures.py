"""Chapter 8's figures: each draws a tidy DataFrame from :mod:`.experiment` in the book's style."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lowrank_utils.plotting import depth_palette

CLASSIFICATION_PANELS: dict[str, str] = {
    "test_acc": "test accuracy",
    "gap": "train − test accuracy",
    "rho": r"$\rho$ of centred Gram matrix",
}
"""The default panels of :func:`plot_classification`: column name -> axis label."""


def plot_classification(results: pd.DataFrame, panels: Sequence[str] = tuple(CLASSIFICATION_PANELS),
                        title: str | None = None) -> Figure:
    """One row of panels per dataset, one panel per metric: a dot per seed and the mean ± one standard deviation per
    model, coloured by the number of factors per layer (``depth``)."""
    needed = {"dataset", "model", "depth", "seed", *panels}
    missing = needed - set(results.columns)
    if missing:
        raise ValueError(f"plot_classification needs the columns {sorted(missing)} (as run_classification returns).")
    if results.empty:
        raise ValueError("plot_classification got an empty DataFrame: there is nothing to plot.")
    datasets = sorted(results["dataset"].unique())
    order = results.drop_duplicates("model").sort_values("depth")["model"].tolist()
    depth_of = dict(zip(results["model"], results["depth"]))
    colours = depth_palette(results["depth"].unique())
    palette = {m: colours[int(depth_of[m])] for m in order}
    fig, axes = plt.subplots(len(datasets), len(panels), figsize=(4.2 * len(panels), 3.4 * len(datasets)),
                             squeeze=False)
    for row, dataset in enumerate(datasets):
        part = results[results["dataset"] == dataset]
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
                ax.set_title(dataset, loc="left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
