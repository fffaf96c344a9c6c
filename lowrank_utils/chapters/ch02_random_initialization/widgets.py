"""Interactive explorers (ipywidgets). Each has a plain update function that returns a matplotlib Figure, so the
same picture can be drawn without a kernel (a static figure for the site, or a test)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from lowrank_utils.chapters.ch02_random_initialization.experiment import (
    GRAM_MODES,
    RandomInitConfig,
    gram_examples,
    random_network_rhos,
)
from lowrank_utils.models import ACTIVATIONS
from lowrank_utils.plotting import depth_palette

EXPLORER_DEPTHS: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


EXPLORER_WIDTHS: tuple[int, ...] = (8, 16, 32, 64, 128)


def random_init_figure(
    depth: int = 8, width: int = 32, activation: str = "relu", init: str = "normal", *, draws: int = 100,
    n_samples: int = 64, gram_mode: str = "centered", seed: int = 0,
) -> Figure:
    """The explorer's picture: ρ(K) over random draws at ``depth`` next to depth 1, and one K at ``depth``.

    Left: histograms of ρ(K) for ``draws`` random networks of depth 1 and of ``depth``. Right: the Gram matrix of
    one of them (ordered by its leading eigenvector, scaled to [-1, 1]). Returns the Figure; never shows it.
    """
    config = RandomInitConfig(depths=tuple(sorted({1, int(depth)})), activations=(activation,), inits=(init,),
                              width=width, n_samples=n_samples, draws=draws, gram_mode=gram_mode, seed=seed)
    palette = depth_palette(EXPLORER_DEPTHS)
    fig, (ax_hist, ax_k) = plt.subplots(1, 2, figsize=(10.0, 3.8), gridspec_kw={"width_ratios": [1.6, 1]})
    rhos = {d: random_network_rhos(config, activation, init, d)[gram_mode].numpy() for d in config.depths}
    everything = np.concatenate(list(rhos.values()))
    bins = np.linspace(everything.min(), everything.max(), 41) if np.ptp(everything) > 0 else 10
    for d, rho in rhos.items():
        sns.histplot(x=rho, ax=ax_hist, color=palette.get(d, "grey"), alpha=0.55, stat="density", bins=bins,
                     edgecolor=None, label=f"depth {d}: median {np.median(rho):.2f}")
    ax_hist.axvline(np.log(min(n_samples, width)), color="grey", ls=":", lw=1)
    ax_hist.set_xlabel(r"$\rho$(K), nats  (dotted: the ceiling log min(n, width))")
    ax_hist.set_title(f"{activation}, {init} weights, width {width}: {draws} draws", fontsize=11)
    ax_hist.legend(fontsize=9)
    example = gram_examples(config, activation, init)
    part = example[example["depth"] == depth]
    n = int(part["row"].max()) + 1
    K = np.zeros((n, n))
    K[part["row"].to_numpy(), part["col"].to_numpy()] = part["value"].to_numpy()
    ax_k.imshow(K, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax_k.set_title(rf"one K at depth {depth} ($\rho$ = {part['rho'].iloc[0]:.2f})", fontsize=11)
    ax_k.set_xticks([])
    ax_k.set_yticks([])
    ax_k.grid(False)
    fig.tight_layout()
    return fig


def random_init_explorer(**defaults: Any) -> Any:
    """An ipywidgets panel (depth, width, activation, distribution) that redraws :func:`random_init_figure`.

    Live only in a running kernel (Jupyter, Colab); ``defaults`` set the initial values and any keyword-only
    option of :func:`random_init_figure` (e.g. ``draws=50``).
    """
    import ipywidgets as widgets
    from IPython.display import display

    options: dict[str, Any] = {"draws": 100, "n_samples": 64, "gram_mode": "centered", "seed": 0}
    start: dict[str, Any] = {"depth": 8, "width": 32, "activation": "relu", "init": "normal"}
    for key, value in defaults.items():
        if key in start:
            start[key] = value
        elif key in options:
            options[key] = value
        else:
            raise ValueError(f"unknown option {key!r}; use {', '.join([*start, *options])}.")
    if options["gram_mode"] not in GRAM_MODES:
        raise ValueError(f"unknown gram_mode {options['gram_mode']!r}; choose one of {', '.join(GRAM_MODES)}.")
    controls = {
        "depth": widgets.SelectionSlider(options=list(EXPLORER_DEPTHS), value=start["depth"], description="depth",
                                         continuous_update=False),
        "width": widgets.SelectionSlider(options=list(EXPLORER_WIDTHS), value=start["width"], description="width",
                                         continuous_update=False),
        "activation": widgets.Dropdown(options=list(ACTIVATIONS), value=start["activation"],
                                       description="activation"),
        "init": widgets.ToggleButtons(options=["normal", "uniform"], value=start["init"],
                                      description="weights"),
    }
    out = widgets.Output()

    def redraw(**values: Any) -> None:
        with out:
            out.clear_output(wait=True)
            fig = random_init_figure(**values, **options)
            display(fig)
            plt.close(fig)

    for control in controls.values():
        control.observe(lambda _change: redraw(**{k: c.value for k, c in controls.items()}), names="value")
    redraw(**{k: c.value for k, c in controls.items()})
    return widgets.VBox([widgets.HBox([controls["depth"], controls["width"]]),
                         widgets.HBox([controls["activation"], controls["init"]]), out])
