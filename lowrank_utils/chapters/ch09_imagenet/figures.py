"""Chapter 9's figures: each draws a tidy DataFrame from the chapter's ``experiment`` module in the book's style."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure


def plot_epoch_curves(history: pd.DataFrame | list[dict[str, Any]], metrics: Sequence[str] = ("train_loss", "val_top1"),
                      title: str | None = None, log: Sequence[str] = ()) -> Figure:
    """Per-epoch curves from a training log (one dict or row per epoch, with an ``epoch`` column), one panel each;
    the metrics named in ``log`` get a logarithmic axis."""
    df = pd.DataFrame(history)
    missing = {"epoch", *metrics} - set(df.columns)
    if missing:
        raise ValueError(f"plot_epoch_curves needs the columns {sorted(missing)} in the log.")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        ax.plot(df["epoch"], df[metric], marker="o")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric.replace("_", " "))
        if metric in log:
            ax.set_yscale("log")
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
