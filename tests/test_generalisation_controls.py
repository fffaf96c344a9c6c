"""Chapters 4-6, issue 11: the baselines, the split of the test error, and the controls on the starting point.

What is asserted: the least-squares baseline is the minimum-norm least-squares solution; the split of a linear map's
test error into the target's unseen part, the map's leftover there and its error on the seen directions adds up
(exactly for the cases where the cross terms are known, on average for trained networks); gradient descent on a
depth-1 network ends where :func:`depth_one_limits` says; the orthogonal start and chapter 6's low-rank start have
the same ρ at every depth, while the default start and the every-layer low-rank start do not.
"""

from __future__ import annotations

import math

import pytest
import torch

from lowrank_utils.chapters.ch04_trained_networks.experiment import (
    DepthRegressionConfig,
    depth_one_limits,
    depth_regression,
    task_baselines,
)
from lowrank_utils.chapters.ch05_optimizers.experiment import (
    OptimizerComparisonConfig,
    start_comparison,
)
from lowrank_utils.chapters.ch06_initialization.experiment import (
    INITS,
    InitComparisonConfig,
    init_scale_sweep,
    initial_network,
    low_rank_matrix,
)
from lowrank_utils.models import end_to_end_weight, linear_layers
from lowrank_utils.regression import (
    error_split,
    least_squares_map,
    linear_network,
    make_regression_task,
    orthogonal_init_,
    output_rho,
    regression_baselines,
    unseen_projector,
)
from lowrank_utils.train.loop import TrainConfig, fit_regression

QUIET = dict(progress=False)


def _task(seed: int = 0, n_test: int = 256):
    return make_regression_task(32, 32, 4, n_train=24, n_test=n_test, seed=seed)


# ----------------------------------------------------------------------------------------------------------------
# Baselines


def test_least_squares_map_is_the_minimum_norm_solution() -> None:
    task = _task(1)
    W = least_squares_map(task)
    X, Y = task.X_train.double(), task.Y_train.double()
    lstsq = torch.linalg.lstsq(X, Y, driver="gelsd").solution.T  # gelsd: minimum-norm for under-determined systems
    assert torch.allclose(W, lstsq, atol=1e-10)
    assert torch.allclose(W, (torch.linalg.pinv(X) @ Y).T, atol=1e-12)
    assert torch.allclose(X @ W.T, Y, atol=1e-4)  # it fits the data
    assert float((W @ unseen_projector(task.X_train)).abs().max()) < 1e-10  # and is zero on the unseen directions
    assert int(torch.linalg.matrix_rank(W, rtol=1e-6)) <= task.rank  # already as low-rank as the target


def test_baselines_and_the_unseen_share() -> None:
    task = _task(2)
    base = regression_baselines(task)
    assert base["zero_test_loss"] == pytest.approx(float(task.Y_test.double().pow(2).mean()))
    assert 0 < base["ls_test_loss"] < base["zero_test_loss"]
    shares = task_baselines(32, (4, 32), 24, 256, range(5))
    assert set(shares["target"]) == {"low-rank", "full-rank"}
    # 8 of 32 input directions unseen: about a quarter of the energy, whatever the target's rank
    assert 0.15 < shares["unseen_share"].mean() < 0.35


# ----------------------------------------------------------------------------------------------------------------
# The split of the test error


def test_split_of_known_maps() -> None:
    task = _task(3)
    ls = error_split(least_squares_map(task), task)
    assert ls["leftover"] < 1e-20 and ls["seen_error"] < 1e-8
    assert ls["test_loss"] == pytest.approx(ls["target_unseen"], rel=1e-6)  # Y_train is float32
    assert abs(ls["split_remainder"]) < 1e-6
    # the target itself: no error, but a "leftover" equal to its unseen part, cancelled by the cross term
    exact = error_split(task.target.double(), task)
    assert exact["test_loss"] < 1e-10
    assert exact["leftover"] == pytest.approx(exact["target_unseen"], rel=1e-9)
    assert exact["split_remainder"] == pytest.approx(-2 * exact["target_unseen"], rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        error_split(torch.zeros(3, 3), task)


def test_split_adds_up_on_average_for_random_completions() -> None:
    # W*P plus a random guess in the unseen directions: test = unseen part + guess, the cross term averaging zero
    remainders, tests = [], []
    for seed in range(12):
        task = _task(seed, n_test=2000)
        g = torch.Generator().manual_seed(seed)
        guess = torch.randn(32, 32, generator=g, dtype=torch.float64) / math.sqrt(32)
        split = error_split(least_squares_map(task) + guess @ unseen_projector(task.X_train), task)
        assert split["seen_error"] < 1e-10
        remainders.append(split["split_remainder"])
        tests.append(split["test_loss"])
    assert abs(sum(remainders) / len(remainders)) < 0.05 * sum(tests) / len(tests)


def test_depth_regression_records_the_split_and_it_adds_up() -> None:
    summary, _ = depth_regression(DepthRegressionConfig.quick(depths=(1, 4), seeds=(0, 1), target_ranks=(4,),
                                                              steps=300, **QUIET))
    for column in ("ls_test_loss", "zero_test_loss", "target_unseen", "leftover", "leftover_init", "seen_error",
                   "split_remainder", "leftover_rho"):
        assert summary[column].notna().all(), column
    parts = summary[["target_unseen", "leftover", "seen_error"]].sum(axis=1)
    assert abs((summary["test_loss"] - parts).mean()) < 0.1 * summary["test_loss"].mean()
    assert (summary["ls_test_loss"] - summary["target_unseen"]).abs().max() < 1e-6
    # gradient descent never changes a depth-1 network in the unseen directions
    depth1 = summary[summary["depth"] == 1]
    assert (depth1["leftover"] - depth1["leftover_init"]).abs().max() < 1e-5


def test_depth_one_limit_is_where_gradient_descent_goes() -> None:
    config = DepthRegressionConfig.quick(width=8, n_train=6, n_test=64, depths=(1,), seeds=(0,), target_ranks=(2,))
    limit = depth_one_limits(config).iloc[0]
    task = make_regression_task(8, 8, 2, n_train=6, n_test=64, seed=0)
    model = linear_network(8, 1, 0)
    # a large stable step and many steps: the limit does not depend on the step size
    fit_regression(model, task.X_train, task.Y_train,
                   TrainConfig(optimizer="sgd", lr=1.0, steps=20000, tolerance=1e-14, progress=False, device="cpu"))
    trained = error_split(end_to_end_weight(model).detach().double(), task)
    assert trained["test_loss"] == pytest.approx(limit["test_loss"], rel=1e-3)
    assert trained["leftover"] == pytest.approx(limit["leftover_init"], rel=1e-4)
    assert output_rho(model, task.X_test) == pytest.approx(limit["rho_final"], abs=1e-3)


# ----------------------------------------------------------------------------------------------------------------
# Starts whose ρ does not depend on depth


def test_orthogonal_start_is_orthogonal_and_flat_in_depth() -> None:
    X = _task(0).X_test
    rhos = []
    for depth in (1, 2, 8, 16):
        model = linear_network(32, depth, seed=3, init="orthogonal")
        for layer in linear_layers(model):
            W = layer.weight.detach().double()
            assert torch.allclose(W @ W.T, torch.eye(32, dtype=torch.float64), atol=1e-5)
        rhos.append(output_rho(model, X))
    assert max(rhos) - min(rhos) < 1e-3
    default = [output_rho(linear_network(32, d, seed=3), X) for d in (1, 16)]
    assert rhos[0] > default[0] > default[1] + 1.0  # the highest start; the default one falls with depth
    with pytest.raises(ValueError, match="unknown init"):
        linear_network(8, 2, 0, init="uniform")
    with pytest.raises(ValueError, match="square"):
        orthogonal_init_(torch.nn.Linear(4, 3, bias=False))


def test_chapter6_low_rank_start_has_the_same_rho_at_every_depth() -> None:
    config = InitComparisonConfig.quick(**QUIET)
    X = _task(0).X_test
    flat = [output_rho(initial_network(config, "low_rank", d, seed=1), X) for d in (1, 2, 4, 8, 16, 32)]
    assert max(flat) - min(flat) < 1e-3
    assert flat[0] < math.log(config.init_rank) + 1e-9  # ceiling of a rank-k map
    first = linear_layers(initial_network(config, "low_rank", 4, seed=1))[0].weight.detach().double()
    assert int(torch.linalg.matrix_rank(first, rtol=1e-5)) == config.init_rank
    assert float(first.norm()) == pytest.approx(math.sqrt(config.width), rel=1e-5)
    # the every-layer construction (the exercise's) falls with depth: the confound the chapter avoids
    every = [output_rho(initial_network(config, "low_rank_every_layer", d, seed=1), X) for d in (1, 16)]
    assert every[1] < every[0] - 0.5
    with pytest.raises(ValueError, match="cannot exceed"):
        low_rank_matrix(4, 5, 0)
    assert set(INITS) >= set(config.inits)


def test_init_scale_multiplies_the_end_to_end_map() -> None:
    base = InitComparisonConfig.quick(**QUIET)
    for init in ("default", "orthogonal", "low_rank"):
        W1 = end_to_end_weight(initial_network(base, init, 4, seed=0)).detach().double()
        W3 = end_to_end_weight(initial_network(InitComparisonConfig.quick(init_scale=0.3), init, 4, seed=0))
        assert torch.allclose(W3.detach().double(), 0.3 * W1, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="init_scale"):
        InitComparisonConfig.quick(init_scale=0.0)
    with pytest.raises(ValueError, match="scales"):
        init_scale_sweep(base, ())


def test_init_scale_sweep_rows() -> None:
    config = InitComparisonConfig.quick(inits=("default",), depths=(2,), seeds=(0,), steps=40, **QUIET)
    df = init_scale_sweep(config, (0.1, 1.0))
    assert sorted(df["init_scale"]) == [0.1, 1.0]
    small, default = df.set_index("init_scale").loc[0.1], df.set_index("init_scale").loc[1.0]
    assert small["rho_init"] == pytest.approx(default["rho_init"], abs=1e-6)  # ρ ignores scale
    assert small["leftover_init"] == pytest.approx(0.01 * default["leftover_init"], rel=1e-3)


def test_start_comparison_runs_both_starts() -> None:
    config = OptimizerComparisonConfig.quick(optimizers=("sgd",), depths=(1, 4), seeds=(0,), **QUIET)
    df = start_comparison(config)
    assert list(df["start"].astype(str).unique()) == ["default", "orthogonal"]
    assert (df["rho_change"] - (df["rho_final"] - df["rho_init"])).abs().max() < 1e-12
    init = df.groupby(["start", "depth"], observed=True)["rho_init"].mean()
    assert abs(init["orthogonal"][1] - init["orthogonal"][4]) < 1e-3
    assert init["default"][4] < init["default"][1]
    with pytest.raises(ValueError, match="start"):
        OptimizerComparisonConfig.quick(start="uniform")


def test_new_figures_draw_and_refuse_missing_columns() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.figure import Figure

    from lowrank_utils.chapters.ch04_trained_networks.figures import plot_activation_test_loss
    from lowrank_utils.chapters.ch05_optimizers.figures import plot_start_control
    from lowrank_utils.chapters.ch06_initialization.figures import plot_init_scales

    acts = pd.DataFrame({"activation": ["relu", "relu", "tanh", "tanh"], "depth": [2, 4, 2, 4],
                         "test_loss": [1.0, 1.2, 0.8, 0.9], "zero_test_loss": 1.0, "ls_test_loss": 0.25})
    starts = pd.DataFrame({"start": ["default", "default", "orthogonal", "orthogonal"], "optimizer": "sgd",
                           "depth": [1, 8, 1, 8], "rho_init": [1.5, 0.5, 2.0, 2.0], "rho_final": [1.0, 0.5, 1.1, 0.9],
                           "target_rho": 0.55})
    scales = pd.DataFrame({"init_scale": [0.1, 0.1, 1.0, 1.0], "depth": [1, 16, 1, 16],
                           "test_loss": [0.4, 0.4, 0.7, 0.5], "rho_final": [1.4, 1.1, 2.0, 1.1], "ls_test_loss": 0.3,
                           "target_rho": 1.2})
    figures = [plot_activation_test_loss(acts), plot_start_control(starts), plot_init_scales(scales)]
    assert all(isinstance(f, Figure) for f in figures)
    plt.close("all")
    for plot in (plot_activation_test_loss, plot_start_control, plot_init_scales):
        with pytest.raises(ValueError, match="needs columns"):
            plot(pd.DataFrame({"depth": [1]}))
