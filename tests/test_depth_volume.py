"""Chapter 3: random products and the Fuss–Catalan law, the rank landscape, the volume curve, and the checkers."""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from lowrank_utils.chapters.ch03_why_depth_lowers_rank.checks import (
    check_fraction_below,
    check_fuss_catalan_moment,
    check_two_factors,
)
from lowrank_utils.chapters.ch03_why_depth_lowers_rank.experiment import (
    LandscapeConfig,
    ProductConfig,
    VolumeConfig,
    balanced_factors,
    filter_normalized_direction,
    fuss_catalan_density,
    fuss_catalan_moment,
    fuss_catalan_rho_gap,
    landscape_summary,
    low_rank_fraction,
    predicted_product_rho,
    product_rank,
    product_spectra,
    random_products,
    rank_landscape,
    volume_curve,
    volume_draws,
)
from lowrank_utils.chapters.ch03_why_depth_lowers_rank.figures import (
    plot_product_rank,
    plot_product_spectra,
    plot_rank_cdf,
    plot_rank_landscape,
    plot_volume,
)
from lowrank_utils.rank import entropy_effective_rank

pytestmark = pytest.mark.usefixtures("checkers_print_only")


DEPTHS = (1, 2, 4, 8, 16)


def test_fuss_catalan_moments_are_the_known_numbers() -> None:
    assert [round(fuss_catalan_moment(1, k)) for k in range(1, 6)] == [1, 2, 5, 14, 42]  # Catalan
    assert [round(fuss_catalan_moment(2, k)) for k in range(1, 5)] == [1, 3, 12, 55]
    assert fuss_catalan_moment(1, 0.5) == pytest.approx(8 / (3 * math.pi))  # mean of the quarter-circle law
    with pytest.raises(ValueError):
        fuss_catalan_moment(0, 1)
    with pytest.raises(ValueError):
        fuss_catalan_moment(2, -0.5)


@pytest.mark.parametrize("s", [1, 2, 4, 16])
def test_fuss_catalan_density_integrates_to_its_moments(s: int) -> None:
    d = fuss_catalan_density(s, points=2000)
    # integrate in log x, where the density x f(x) is smooth
    assert np.trapezoid(d["log_density"], d["log_x"]) == pytest.approx(1.0, abs=1e-4)
    assert np.trapezoid(d["log_density"] * d["x"] ** 2, d["log_x"]) == pytest.approx(s + 1, rel=1e-4)
    assert d["x"].max() == pytest.approx((s + 1) ** (s + 1) / s**s, rel=1e-3)


def test_rho_prediction_matches_a_large_monte_carlo_product() -> None:
    n = 300
    w = random_products(3, n, 1, seed=5)
    measured = float(entropy_effective_rank(w)[0])
    assert measured == pytest.approx(math.log(n) + fuss_catalan_rho_gap(3), abs=0.02)
    gaps = [fuss_catalan_rho_gap(d) for d in DEPTHS]
    assert all(a > b for a, b in pairwise(gaps))
    assert predicted_product_rho(DEPTHS, 32)["rho_theory"].iloc[0] == pytest.approx(math.log(32) + gaps[0])


def test_products_lose_rank_with_depth_as_predicted() -> None:
    df = product_rank(ProductConfig.quick())
    med = df.groupby("depth")["rho"].median()
    assert all(a > b for a, b in pairwise(med))
    theory = df.groupby("depth")["rho_theory"].first()
    assert (med - theory).abs().max() < 0.05
    spectra = product_spectra(ProductConfig.quick(depths=(1, 4), draws=50))
    # every factor preserves E||Wx||^2, so the mean squared singular value stays near 1
    assert spectra.groupby("depth")["sq_sv"].mean().to_numpy() == pytest.approx([1, 1], abs=0.05)
    theory_df = pd.concat([fuss_catalan_density(d) for d in (1, 4)])
    for fig in (plot_product_spectra(spectra, theory_df), plot_product_rank(df)):
        plt.close(fig)


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
@pytest.mark.parametrize("mix", [False, True])
def test_balanced_factors_multiply_back_to_the_weight(depth: int, mix: bool, rand: Callable[..., torch.Tensor]) -> None:
    W = rand(7, 7, seed=depth)
    factors = balanced_factors(W, depth, torch.Generator().manual_seed(0) if mix else None)
    product = factors[0]
    for f in factors[1:]:
        product = f @ product
    assert torch.allclose(product, W, atol=1e-10)
    s = torch.linalg.svdvals(W) ** (1 / depth)
    for f in factors:
        assert torch.allclose(torch.linalg.svdvals(f), s, atol=1e-10)
    with pytest.raises(ValueError):
        balanced_factors(torch.ones(2, 3), 2)


def test_filter_normalized_directions_match_row_norms() -> None:
    ws = [torch.randn(4, 5, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)]
    for w, d in zip(ws, filter_normalized_direction(ws, torch.Generator().manual_seed(0)), strict=True):
        assert torch.allclose(d.norm(dim=-1), w.norm(dim=-1))


def test_rank_landscape_deeper_parameterisations_sit_lower() -> None:
    df = rank_landscape(LandscapeConfig.quick(grid=21))
    assert len(df) == 3 * 21 * 21
    summary = landscape_summary(df, threshold=0.0)
    assert summary["rho_at_centre"].nunique() == 1 or np.ptp(summary["rho_at_centre"]) < 1e-9
    centre = float(summary["rho_at_centre"].iloc[0])
    summary = landscape_summary(df, threshold=centre - 0.1)
    assert list(summary["depth"]) == [1, 2, 4]
    assert all(a > b for a, b in pairwise(summary["mean_rho"]))
    assert all(a < b for a, b in pairwise(summary["fraction_below"]))
    plt.close(plot_rank_landscape(df, threshold=centre - 0.1))


def test_volume_of_low_rank_draws_grows_with_depth() -> None:
    config = VolumeConfig.quick(depths=DEPTHS)
    draws = volume_draws(config)
    curve = volume_curve(config, draws)
    assert set(curve["size"]) == set(config.sizes)
    for (size, init), part in curve.groupby(["size", "init"]):
        fractions = part.sort_values("depth")["fraction"].to_numpy()
        assert all(a <= b for a, b in pairwise(fractions)), (size, init, fractions)
        assert fractions[-1] - fractions[0] > 0.9, (size, init, fractions)
    assert curve["threshold"].to_numpy() == pytest.approx(0.7 * np.log(curve["size"].to_numpy()))
    plt.close(plot_volume(curve))
    plt.close(plot_rank_cdf(draws[draws["size"] == 32], depths=(1, 16), thresholds=[2.0]))


def test_low_rank_fraction_counts_strictly_below() -> None:
    df = pd.DataFrame({"depth": [1, 1, 2, 2], "rho": [1.0, 2.0, 0.5, 1.0]})
    out = low_rank_fraction(df, [1.0, 1.5])
    assert out["fraction"].tolist() == [0.0, 0.5, 0.5, 1.0]
    with pytest.raises(ValueError, match="columns"):
        low_rank_fraction(df.drop(columns="rho"), [1.0])


@pytest.mark.parametrize(
    "factory, overrides, message",
    [
        (ProductConfig, {"size": 1}, "size"),
        (ProductConfig, {"init": "default"}, "init"),
        (ProductConfig, {"depths": (0,)}, "depths"),
        (LandscapeConfig, {"span": -1.0}, "span"),
        (LandscapeConfig, {"grid": 1}, "grid"),
        (VolumeConfig, {"threshold_fractions": (1.5,)}, "threshold_fractions"),
        (VolumeConfig, {"sizes": (1, 4)}, "sizes"),
        (VolumeConfig, {"draws": 0}, "draws"),
        (VolumeConfig, {"dtype": "int64"}, "dtype"),
    ],
)
def test_config_validation(factory: type, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        factory(**overrides)


def test_presets() -> None:
    assert ProductConfig.full().draws >= 1000 and VolumeConfig.full().draws >= 1000
    assert LandscapeConfig.for_scale("full").grid > LandscapeConfig.for_scale("quick").grid
    with pytest.raises(ValueError):
        VolumeConfig.for_scale("medium")


def test_checker_fuss_catalan_moment() -> None:
    assert check_fuss_catalan_moment(lambda s, k: math.comb((s + 1) * k, k) / (s * k + 1))
    assert not check_fuss_catalan_moment(lambda s, k: math.comb(2 * k, k) / (k + 1))

    def stub(s: int, k: int) -> float:
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_fuss_catalan_moment(stub)


def test_checker_fraction_below() -> None:
    def right(df: pd.DataFrame, tau: float) -> dict[int, float]:
        return {int(d): float((g["rho"] < tau).mean()) for d, g in df.groupby("depth")}

    def counts_ties(df: pd.DataFrame, tau: float) -> dict[int, float]:
        return {int(d): float((g["rho"] <= tau).mean()) for d, g in df.groupby("depth")}

    data = pd.DataFrame({"depth": np.repeat([1, 2, 3], 10), "rho": np.linspace(0, 3, 30)})
    assert check_fraction_below(right, data, 1.5)
    assert not check_fraction_below(counts_ties)


def test_checker_two_factors() -> None:
    def balanced(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        U, S, Vh = torch.linalg.svd(W)
        return torch.diag(S.sqrt()) @ Vh, U @ torch.diag(S.sqrt())

    assert check_two_factors(balanced)
    assert not check_two_factors(lambda W: (W, torch.eye(W.shape[0], dtype=W.dtype)))
    assert not check_two_factors(lambda W: (torch.eye(W.shape[0], dtype=W.dtype), W.T))
