"""Chapter 4b: low-rank matrix completion with deep factorisations (quick preset, CPU)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from lowrank_utils.chapters.ch04b_matrix_completion.checks import (
    check_deep_start,
    check_degrees_of_freedom,
    degrees_of_freedom,
)
from lowrank_utils.chapters.ch04b_matrix_completion.experiment import (
    CompletionConfig,
    completion_metrics,
    completion_summary,
    depth_comparison,
    end_to_end,
    factorization_fit,
    init_scale_sweep,
    initial_factors,
    make_completion_task,
    nuclear_norm_completion,
    observation_sweep,
    recovery_points,
    regression_contrast,
    stack_tasks,
)
from lowrank_utils.chapters.ch04b_matrix_completion.figures import (
    plot_completion_examples,
    plot_depth_comparison,
    plot_observation_sweep,
    plot_sweep_pair,
)


@pytest.fixture(scope="module")
def quick_comparison() -> pd.DataFrame:
    return depth_comparison(CompletionConfig.quick(progress=False))


def _medians(df: pd.DataFrame) -> dict[str, float]:
    summary = completion_summary(df)
    return {str(m): float(v) for m, v in zip(summary["method"], summary["median"], strict=True)}


# ----------------------------------------------------------------------------------------------------------------
# The acceptance criterion of the chapter


def test_deeper_factorisations_complete_better_on_the_quick_preset(quick_comparison: pd.DataFrame) -> None:
    config = CompletionConfig.quick()
    assert len(config.seeds) >= 5
    assert set(quick_comparison["seed"]) == set(config.seeds)
    med = _medians(quick_comparison)
    for depth in (d for d in config.depths if d >= 3):
        assert med[f"depth {depth}"] < med["depth 2"], med
        assert med[f"depth {depth}"] < med["depth 1"], med
    # the baselines printed beside it: depth 1 is exactly the zero prediction, the nuclear norm is in between
    assert med["depth 1"] == pytest.approx(1.0, abs=1e-12)
    assert med["zero"] == 1.0
    assert not quick_comparison["diverged"].any()


def test_deep_solutions_have_lower_effective_rank(quick_comparison: pd.DataFrame) -> None:
    rho = completion_summary(quick_comparison, "rho").set_index("method")["median"]
    assert rho["depth 3"] < rho["depth 2"] < rho["depth 1"]
    target = float(quick_comparison["target_rho"].median())
    assert abs(rho["depth 3"] - target) < 0.1  # the recovered matrix has (about) the truth's spectrum


# ----------------------------------------------------------------------------------------------------------------
# Depth 1 is the minimum-norm solution


def test_depth_one_from_zero_is_the_minimum_norm_completion() -> None:
    task = make_completion_task(12, 2, 60, seed=3)
    W, info = factorization_fit(task.truth, task.mask, 1, init_scale=0.03, lr=0.5, steps=2000, tolerance=1e-12)
    assert info["steps"] < 2000 and not info["diverged"]
    unseen = task.mask == 0
    assert torch.count_nonzero(W[unseen]) == 0  # exactly zero off the mask: those gradients are always zero
    assert torch.allclose(W[~unseen], task.truth[~unseen], atol=1e-10)
    # an independent minimum-norm least-squares solution of "W agrees with the observed entries"
    rows = torch.nonzero(task.mask.flatten()).flatten()
    A = torch.eye(144, dtype=torch.float64)[rows]
    reference = torch.linalg.lstsq(A, task.truth.flatten()[rows].unsqueeze(1), driver="gelsd").solution
    assert torch.allclose(W, reference.view(12, 12), atol=1e-10)
    assert float(completion_metrics(W, task.truth, task.mask)["test_error"]) == pytest.approx(1.0, abs=1e-12)


def test_hand_written_gradient_matches_autograd() -> None:
    task = make_completion_task(6, 2, 20, seed=1)
    lr, depth = 0.3, 3
    stepped_by_hand, _ = factorization_fit(task.truth, task.mask, depth, init_scale=0.5, lr=lr, steps=1, seed=4)
    factors = [f[0].requires_grad_(True) for f in initial_factors(6, depth, [0.5], [4])]
    loss = 0.5 * (task.mask * (end_to_end(factors) - task.truth)).pow(2).sum()
    grads = torch.autograd.grad(loss, factors)
    with torch.no_grad():
        stepped = end_to_end([f - lr * g for f, g in zip(factors, grads, strict=True)])
        assert not torch.allclose(stepped, end_to_end(factors), atol=1e-6)  # the step moved something
    assert torch.allclose(stepped, stepped_by_hand, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# The task and the nuclear-norm baseline


def test_task_has_the_stated_rank_norm_and_nested_masks() -> None:
    small = make_completion_task(15, 3, 40, seed=2)
    large = make_completion_task(15, 3, 90, seed=2)
    assert torch.linalg.matrix_rank(small.truth) == 3
    assert float(small.truth.norm()) == pytest.approx(1.0)
    assert int(small.mask.sum()) == 40 and int(large.mask.sum()) == 90
    assert bool((large.mask >= small.mask).all())  # more observations add entries to the same task
    assert torch.equal(small.truth, large.truth)
    assert not torch.equal(small.truth, make_completion_task(15, 3, 40, seed=3).truth)


def test_nuclear_norm_recovers_an_easy_instance() -> None:
    tasks = [make_completion_task(20, 1, 200, seed=s) for s in range(3)]
    truth, mask = stack_tasks(tasks)
    W = nuclear_norm_completion(truth, mask)
    metrics = completion_metrics(W, truth, mask)
    assert float(metrics["test_error"].max()) < 1e-3
    assert float(metrics["train_error"].max()) < 1e-4
    # and it is not the zero prediction in disguise when the problem is hard: it fills the unobserved entries
    hard = make_completion_task(20, 2, 60, seed=0)
    W_hard = nuclear_norm_completion(hard.truth, hard.mask)
    assert float(W_hard[hard.mask == 0].abs().max()) > 1e-3


def test_recovery_points_need_every_larger_m_below_threshold() -> None:
    df = pd.DataFrame({
        "method": ["a"] * 4 + ["b"] * 4 + ["c"] * 4,
        "n_observed": [10, 20, 30, 40] * 3,
        "test_error": [0.5, 0.05, 0.2, 0.01, 0.5, 0.3, 0.05, 0.01, 0.9, 0.8, 0.7, 0.6],
    })
    points = recovery_points(df, threshold=0.1).set_index("method")["recovers_from_m"]
    assert points["a"] == 40  # the dip at 20 does not count: the error rises again at 30
    assert points["b"] == 30
    assert pd.isna(points["c"])


# ----------------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("kwargs, message", [
    (dict(rank=20), "rank=20 must be below size=20"),
    (dict(n_observed=400), "below size² = 400"),
    (dict(sweep=(60, 500)), "below size² = 400"),
    (dict(lr=-1.0), "lr must be a finite number > 0"),
    (dict(seeds=()), "seeds must not be empty"),
    (dict(depths=(2, 2)), "depths contains duplicates"),
    (dict(init_depths=(1, 2)), "init_depths must contain integers >= 2"),
    (dict(init_scales=(0.1, float("nan"))), "init_scales entry must be a finite number > 0"),
    (dict(steps=0), "steps must be an integer >= 1"),
])
def test_bad_configs_are_refused_clearly(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CompletionConfig.quick(**kwargs)


def test_bad_inputs_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="scale must be 'quick' or 'full'"):
        CompletionConfig.for_scale("medium")
    task = make_completion_task(8, 2, 20)
    with pytest.raises(ValueError, match="mask has shape"):
        factorization_fit(task.truth, task.mask[:4], 2, init_scale=0.1, lr=0.1, steps=1)
    with pytest.raises(ValueError, match="only 0 \\(unobserved\\) and 1"):
        nuclear_norm_completion(task.truth, task.mask * 0.5)
    with pytest.raises(ValueError, match="got 2 seeds for a batch of 1"):
        factorization_fit(task.truth[None], task.mask[None], 2, init_scale=0.1, lr=0.1, steps=1, seed=[0, 1])
    with pytest.raises(ValueError, match="must be below size² = 64"):
        make_completion_task(8, 2, 64)
    with pytest.raises(ValueError, match="different sizes"):
        stack_tasks([task, make_completion_task(9, 2, 20)])


def test_presets() -> None:
    quick, full = CompletionConfig.for_scale("quick"), CompletionConfig.for_scale("full")
    assert quick.n_observed in quick.sweep and full.n_observed in full.sweep
    assert len(full.seeds) > len(quick.seeds) and full.steps > quick.steps
    assert set(quick.sweep) <= set(full.sweep)
    assert (quick.size, quick.rank, quick.lr, quick.init_scale) == (full.size, full.rank, full.lr, full.init_scale)


# ----------------------------------------------------------------------------------------------------------------
# A tiny end-to-end run of every experiment and figure


def test_tiny_experiments_and_figures() -> None:
    config = CompletionConfig.quick(size=8, rank=1, n_observed=30, sweep=(20, 30), seeds=(0, 1), steps=300,
                                    init_scales=(0.3, 0.1), progress=False)
    comparison, sweep, init = depth_comparison(config), observation_sweep(config), init_scale_sweep(config)
    methods = {"zero", "nuclear norm", "depth 1", "depth 2", "depth 3", "depth 4"}
    assert set(comparison["method"].astype(str)) == methods
    assert len(comparison) == len(methods) * 2
    assert len(sweep) == len(methods) * 2 * 2
    assert len(init) == 2 + 2 * 2 * 2  # nuclear norm once per seed, then (depth, scale, seed)
    # a depth's run at one m does not depend on the other values of m fitted with it (bar the shared stopping step)
    at30 = sweep[sweep["n_observed"] == 30].reset_index(drop=True)
    assert at30["test_error"].to_numpy() == pytest.approx(comparison["test_error"].to_numpy(), rel=1e-6, abs=1e-9)
    for fig in (plot_depth_comparison(comparison), plot_observation_sweep(sweep, size=8),
                plot_sweep_pair(sweep, sweep, stored_label="stored", size=8)):
        assert isinstance(fig, Figure)
        plt.close(fig)
    examples = pd.DataFrame({"panel": ["a"] * 4 + ["b"] * 4, "row": [0, 0, 1, 1] * 2, "col": [0, 1, 0, 1] * 2,
                             "value": range(8)})
    fig = plot_completion_examples(examples)
    assert len(fig.axes) == 3  # two panels and a colour bar
    plt.close(fig)
    with pytest.raises(ValueError, match="one number of observations"):
        plot_depth_comparison(sweep)


# ----------------------------------------------------------------------------------------------------------------
# Checkers


def _fails(call: Callable[[], Any]) -> bool:
    """A checker failed: a falsy verdict, or (in grading mode) an AssertionError."""
    try:
        return not call()
    except AssertionError:
        return True


def test_checkers_pass_right_answers_and_fail_wrong_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_degrees_of_freedom(lambda n, r: r * (2 * n - r))
    assert degrees_of_freedom(20, 2) == 76
    assert _fails(lambda: check_degrees_of_freedom(lambda n, r: 2 * n * r))
    assert "subtract the r²" in capsys.readouterr().out
    assert _fails(lambda: check_degrees_of_freedom(lambda n, r: n * n))
    assert check_deep_start("stays at zero") and check_deep_start("  Stays at zero ")
    assert _fails(lambda: check_deep_start("recovers"))
    assert _fails(lambda: check_deep_start("no idea"))
    with pytest.raises(NotImplementedError):
        check_deep_start(...)

    def stub(n: int, r: int) -> int:
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_degrees_of_freedom(stub)


def test_depth_five_from_the_chapter_scale_stays_at_zero() -> None:
    """The fact behind exercise 4b.2's expected answer, measured at the quick preset's settings (3 seeds)."""
    config = CompletionConfig.quick()
    truth, mask = stack_tasks([make_completion_task(config.size, config.rank, config.n_observed, s) for s in (0, 1, 2)])
    W, info = factorization_fit(truth, mask, 5, init_scale=config.init_scale, lr=config.lr, steps=config.steps,
                                tolerance=config.tolerance, seed=[0, 1, 2])
    assert not info["diverged"]
    assert float(W.abs().max()) < 1e-6


def test_chapter_4_task_gives_a_rank_prior_nothing_to_choose() -> None:
    """The contrast the chapter draws: on chapter 4's task the minimum-norm fit already has the target's rank."""
    table = regression_contrast(32, 32, 4, n_train=24, n_test=256, seed=0).set_index("solution")
    min_norm, target = table.loc["minimum-norm least squares"], table.loc["the target W*"]
    assert min_norm["rank"] <= 4 and target["rank"] == 4
    assert min_norm["train_error"] < 1e-10 and target["train_error"] < 1e-10  # both fit the data exactly
    assert min_norm["test_error"] > 0.1 and target["test_error"] < 1e-10  # ... and differ off the data
    assert min_norm["unseen_share"] < 1e-12 < 0.1 < target["unseen_share"]
    assert table.loc["predict zero", "test_error"] == pytest.approx(1.0)
