"""Chapter 2 (Observation 1): batched random networks, ρ(K) over draws, the explorer and the chapter's checkers."""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from lowrank_utils.chapters.ch02_random_initialization.checks import (
    SOFTPLUS_GAIN,
    check_activation_trend,
    check_centered_gram,
)
from lowrank_utils.chapters.ch02_random_initialization.experiment import (
    GRAM_MODES,
    RandomInitConfig,
    gram_examples,
    gram_mode_comparison,
    gram_rho,
    median_table,
    mlp_forward,
    output_gram,
    random_network_rhos,
    rank_distribution,
    sample_mlp_weights,
    width_sweep,
)
from lowrank_utils.chapters.ch02_random_initialization.figures import (
    plot_gram_heatmaps,
    plot_rank_densities,
)
from lowrank_utils.chapters.ch02_random_initialization.widgets import (
    random_init_explorer,
    random_init_figure,
)
from lowrank_utils.models import ACTIVATIONS, activation_gain, linear_layers, make_mlp
from lowrank_utils.rank import entropy_effective_rank

pytestmark = pytest.mark.usefixtures("checkers_print_only")


DEPTHS = (1, 2, 4, 8, 16)


@pytest.fixture(scope="module")
def quick_panels() -> pd.DataFrame:
    return rank_distribution(RandomInitConfig.quick())


def test_observation_1_median_falls_strictly_with_depth_in_all_four_panels(quick_panels: pd.DataFrame) -> None:
    table = median_table(quick_panels, decimals=None)
    assert list(table.columns) == list(DEPTHS)
    assert len(table) == 4  # (linear, relu) x (normal, uniform)
    for panel, medians in table.iterrows():
        values = medians.to_numpy()
        assert all(a > b for a, b in pairwise(values)), (panel, values)


def test_fraction_of_low_rank_draws_grows_with_depth(quick_panels: pd.DataFrame) -> None:
    tau = 2.0
    for panel, part in quick_panels.groupby(["activation", "init"], observed=True):
        fractions = [float((part.loc[part["depth"] == d, "rho"] < tau).mean()) for d in DEPTHS]
        assert all(a <= b for a, b in pairwise(fractions)), (panel, fractions)
        assert fractions[0] == 0.0 and fractions[-1] == 1.0, (panel, fractions)


def test_rows_settings_and_determinism(quick_panels: pd.DataFrame) -> None:
    config = RandomInitConfig.quick()
    assert len(quick_panels) == 2 * 2 * len(DEPTHS) * config.draws
    assert set(quick_panels["gram_mode"]) == {"centered"}
    assert (quick_panels["width"] == 32).all() and (quick_panels["n_samples"] == 64).all()
    assert quick_panels["rho"].between(0, math.log(32) + 1e-9).all()
    again = rank_distribution(RandomInitConfig.quick(depths=(4,), activations=("relu",), inits=("uniform",)))
    same = quick_panels[(quick_panels.activation == "relu") & (quick_panels.init == "uniform")
                        & (quick_panels.depth == 4)]
    assert again["rho"].to_numpy() == pytest.approx(same["rho"].to_numpy(), abs=0)


def test_batched_networks_match_make_mlp() -> None:
    """The batched forward is make_mlp's network: same layer placement of activations, same weights."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, dtype=torch.float64)
    for activation in ACTIVATIONS:
        weights = sample_mlp_weights(1, [6, 7, 7, 4], gain=activation_gain(activation), generator=g)
        model = make_mlp(6, 7, 3, out_features=4, activation=activation).double()
        for layer, w in zip(linear_layers(model), weights, strict=True):
            layer.weight.data.copy_(w[0])
        with torch.no_grad():
            assert torch.allclose(mlp_forward(x, weights, activation)[0], model(x), atol=1e-12)


@pytest.mark.parametrize("init", ["normal", "uniform", "default"])
def test_weight_scale_matches_make_mlp(init: str) -> None:
    torch.manual_seed(0)
    gain = activation_gain("tanh")
    ours = sample_mlp_weights(400, [50, 50, 50], gain=gain, init=init, generator=torch.Generator().manual_seed(1))
    theirs = [make_mlp(50, 50, 2, activation="tanh", init=init) for _ in range(40)]
    for i in range(2):
        ref = torch.stack([linear_layers(m)[i].weight.detach() for m in theirs]).double()
        assert ours[i].std().item() == pytest.approx(ref.std().item(), rel=0.03)
        assert ours[i].abs().max().item() <= (ref.abs().max().item() * 1.01 if init != "normal" else math.inf)


@pytest.mark.parametrize("mode", GRAM_MODES)
@pytest.mark.parametrize("shape", [(12, 5), (5, 12)])
def test_gram_rho_equals_rho_of_the_full_gram_matrix(
    mode: str, shape: tuple[int, int], rand: Callable[..., torch.Tensor]
) -> None:
    phi = torch.relu(rand(3, *shape, seed=2))
    direct = entropy_effective_rank(output_gram(phi, mode), symmetric_psd=True)
    assert torch.allclose(gram_rho(phi, mode), direct, atol=1e-10)


def test_collapsed_network_gets_rho_zero() -> None:
    """A narrow ReLU network can map every input to one output; centred K is then 0 and ρ is set to 0."""
    config = RandomInitConfig(depths=(1,), activations=("relu",), inits=("normal",), width=2, n_samples=8, draws=300)

    def killer(h: torch.Tensor) -> torch.Tensor:  # every hidden unit dead
        return torch.zeros_like(h)

    out = random_network_rhos(config, killer, "normal", 3)
    assert torch.equal(out["centered"], torch.zeros(300, dtype=torch.float64))


def test_gram_modes_show_the_relu_mean_pitfall() -> None:
    df = gram_mode_comparison(RandomInitConfig.quick(depths=(8,), inits=("normal",), draws=60))
    med = df.groupby(["activation", "gram_mode"], observed=True)["rho"].median()
    # For ReLU the uncentred K is far lower-rank than the centred one; for a linear network centring barely matters.
    assert med[("relu", "raw")] < med[("relu", "centered")] - 0.3
    assert abs(med[("linear", "raw")] - med[("linear", "centered")]) < 0.05


def test_width_sweep_and_other_activations() -> None:
    df = width_sweep(RandomInitConfig.quick(activations=("linear",), inits=("normal",), depths=(1, 8), draws=40,
                                            sweep_widths=(8, 64)))
    assert set(df["width"]) == {8, 64}
    assert df["rho_normalized"].between(0, 1 + 1e-9).all()
    acts = median_table(rank_distribution(RandomInitConfig.quick(activations=ACTIVATIONS, inits=("normal",),
                                                                 depths=(1, 16), draws=60)), decimals=None)
    assert (acts[16] < acts[1]).all()


def test_gram_examples_are_tidy_heatmaps() -> None:
    df = gram_examples(RandomInitConfig.quick(depths=(1, 16)), "linear", "normal")
    assert set(df["depth"]) == {1, 16}
    assert len(df) == 2 * 64 * 64
    assert df["value"].between(-1 - 1e-9, 1 + 1e-9).all()
    diag = df[df["row"] == df["col"]]["value"]
    assert diag.to_numpy() == pytest.approx(1.0)  # correlation display
    rho = df.groupby("depth")["rho"].first()
    assert rho[16] < rho[1]
    fig = plot_gram_heatmaps(df)
    assert isinstance(fig, Figure)
    plt.close(fig)


def test_density_figure_has_four_panels(quick_panels: pd.DataFrame) -> None:
    fig = plot_rank_densities(quick_panels)
    assert len([ax for ax in fig.axes if ax.get_title()]) == 4
    plt.close(fig)


def test_explorer_update_draws_a_figure_without_a_display() -> None:
    fig = random_init_figure(depth=4, width=16, activation="tanh", init="uniform", draws=20)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    plt.close(fig)
    panel = random_init_explorer(draws=5, depth=2)
    assert len(panel.children) == 3
    plt.close("all")
    with pytest.raises(ValueError, match="unknown option"):
        random_init_explorer(colour="red")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"depths": (0, 2)}, "depths"),
        ({"depths": ()}, "depths"),
        ({"activations": ("swish",)}, "activation"),
        ({"inits": ("gaussian",)}, "init"),
        ({"gram_mode": "centred"}, "gram_mode"),
        ({"draws": 0}, "draws"),
        ({"width": 2.5}, "width"),
        ({"n_samples": 1}, "n_samples"),
        ({"dtype": "float16"}, "dtype"),
        ({"device": "not-a-device"}, "device"),
        ({"seed": -1}, "seed"),
    ],
)
def test_config_validation(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RandomInitConfig(**overrides)


def test_presets() -> None:
    assert RandomInitConfig.full().draws >= 1000
    assert RandomInitConfig.quick().draws < RandomInitConfig.full().draws
    assert RandomInitConfig.for_scale("quick") == RandomInitConfig.quick()
    assert RandomInitConfig.quick(width=8).width == 8
    with pytest.raises(ValueError, match="scale"):
        RandomInitConfig.for_scale("huge")
    with pytest.raises(ValueError, match="gram mode"):
        output_gram(torch.ones(3, 2), "centred")


def test_checker_centered_gram(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_centered_gram(lambda phi: (phi - phi.mean(0)) @ (phi - phi.mean(0)).T)
    assert not check_centered_gram(lambda phi: phi @ phi.T)
    assert "uncentred" in capsys.readouterr().out
    assert not check_centered_gram(lambda phi: phi.T @ phi)

    def stub(phi: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_centered_gram(stub)


def test_checker_activation_trend() -> None:
    config = RandomInitConfig.quick(inits=("normal",))
    medians = {d: float(random_network_rhos(config, torch.nn.functional.softplus, "normal", d,
                                            gain=SOFTPLUS_GAIN)["centered"].median()) for d in DEPTHS}
    assert check_activation_trend(medians, "decreases")
    assert not check_activation_trend(medians, "increases")
    assert not check_activation_trend({d: 1.0 for d in DEPTHS}, "decreases")
    with pytest.raises(NotImplementedError):
        check_activation_trend(..., "decreases")  # type: ignore[arg-type]  # the student copy's placeholder
