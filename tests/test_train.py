"""Tests for lowrank_utils.train: every optimizer learns, early stopping, divergence, batching, seeding, history."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from lowrank_utils.models import make_deep_linear
from lowrank_utils.rank import gram_effective_rank
from lowrank_utils.train.loop import (
    OPTIMIZERS,
    TrainConfig,
    TrainingDiverged,
    fit,
    fit_regression,
)

# A step budget and step size per optimizer that reliably halve the loss on the tiny problem below, in well under 1 s.
SETTINGS = {
    "sgd": dict(lr=0.05, steps=100),
    "nesterov": dict(lr=0.02, steps=100),
    "adam": dict(lr=0.01, steps=100),
    "lbfgs": dict(lr=1.0, steps=20),
    "cma": dict(lr=0.1, steps=40),
    "random_search": dict(lr=0.05, steps=200),
}


def problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """8 samples in dimension 6 with a linear target a deep linear network can fit exactly."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(8, 6, generator=g)
    Y = X @ torch.randn(6, 6, generator=g).T
    return X, Y


def net(seed: int = 1, depth: int = 3) -> torch.nn.Sequential:
    return make_deep_linear(6, 6, depth, generator=torch.Generator().manual_seed(seed))


def config(**kwargs) -> TrainConfig:
    kwargs.setdefault("device", "cpu")
    kwargs.setdefault("progress", False)
    return TrainConfig(**kwargs)


def test_settings_cover_every_optimizer():
    assert set(SETTINGS) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_reduces_the_loss(name):
    X, Y = problem()
    result = fit_regression(net(), X, Y, config(optimizer=name, **SETTINGS[name]))
    first = result.history["loss"].iloc[0]
    assert result.final_loss < 0.5 * first, f"{name}: {first:.3g} -> {result.final_loss:.3g}"
    assert result.history["loss"].iloc[-1] == pytest.approx(result.final_loss)
    assert result.stop_reason == "max_steps" and result.steps == SETTINGS[name]["steps"]
    assert result.wall_time > 0 and result.evaluations >= result.steps


def test_gradient_free_history_never_gets_worse():
    X, Y = problem()
    for name in ("cma", "random_search"):
        losses = fit_regression(net(), X, Y, config(optimizer=name, **SETTINGS[name])).history["loss"]
        assert (losses.diff().dropna() <= 1e-6).all(), name


def test_cma_counts_population_evaluations():
    X, Y = problem()
    result = fit_regression(net(), X, Y, config(optimizer="cma", lr=0.1, steps=5, popsize=10))
    assert result.evaluations == 1 + 5 * 10  # the starting point, then one population per step


def test_stops_when_loss_below_tolerance():
    X, Y = problem()
    result = fit_regression(net(), X, Y, config(optimizer="lbfgs", lr=1.0, steps=500, tolerance=1e-4))
    assert result.stop_reason == "converged" and result.converged
    assert result.steps < 500
    assert result.final_loss < 1e-3


def test_stops_when_relative_improvement_stalls():
    X, Y = problem()
    # A rank-1 bottleneck cannot fit the rank-6 target, so the loss plateaus well above 0.
    model = torch.nn.Sequential(torch.nn.Linear(6, 1, bias=False), torch.nn.Linear(1, 6, bias=False))
    result = fit_regression(model, X, Y, config(optimizer="adam", lr=0.05, steps=3000, rel_tolerance=1e-3, patience=20))
    assert result.stop_reason == "converged"
    assert result.steps < 3000
    assert result.final_loss > 0.1  # stopped on the plateau, not because the loss reached 0


def test_no_early_stop_without_tolerances():
    X, Y = problem()
    result = fit_regression(net(), X, Y, config(optimizer="adam", lr=0.01, steps=30))
    assert result.stop_reason == "max_steps" and result.steps == 30


def test_diverging_learning_rate_raises_with_step_and_advice():
    X, Y = problem()
    with pytest.raises(TrainingDiverged, match=r"step \d+.*smaller learning rate") as info:
        fit_regression(net(), X, Y, config(optimizer="sgd", lr=1e3, steps=100))
    err = info.value
    assert isinstance(err, RuntimeError)
    assert 0 < err.step < 100
    assert not math.isfinite(err.loss) or err.loss > 1e6
    assert f"step {err.step}" in str(err) and "lr=100" in str(err)
    assert err.history["step"].iloc[-1] == err.step


def test_nan_loss_raises_even_without_divergence_ratio():
    X, Y = problem()
    X[0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"step 0.*not finite"):
        fit_regression(net(), X, Y, config(optimizer="adam", steps=5, divergence_ratio=None))


@pytest.mark.parametrize("batch_size", [None, 3, 100])
def test_full_batch_and_mini_batch_both_train(batch_size):
    X, Y = problem()
    result = fit_regression(net(), X, Y, config(optimizer="sgd", lr=0.02, epochs=40, batch_size=batch_size))
    per_epoch = 1 if batch_size in (None, 100) else 3  # 8 samples in batches of 3, 3, 2
    assert result.steps == 40 * per_epoch
    assert result.history["epoch"].iloc[-1] == 40
    assert result.final_loss < 0.5 * result.history["loss"].iloc[0]


def test_mini_batch_early_stopping_uses_epochs():
    X, Y = problem()
    result = fit_regression(net(), X, Y, config(optimizer="adam", lr=0.02, steps=3000, batch_size=4, tolerance=0.05))
    assert result.stop_reason == "converged"
    assert result.steps % 2 == 0  # convergence is only checked at the end of an epoch of 2 batches


@pytest.mark.parametrize("name", ["lbfgs", "cma", "random_search"])
def test_full_batch_only_optimizers_refuse_mini_batches(name):
    X, Y = problem()
    with pytest.raises(ValueError, match=r"full-batch method.*batch_size=None"):
        fit_regression(net(), X, Y, config(optimizer=name, batch_size=4))


@pytest.mark.parametrize("name,batch_size", [("sgd", 3), ("cma", None), ("random_search", None)])
def test_same_seed_gives_identical_histories(name, batch_size):
    X, Y = problem()
    settings = dict(SETTINGS[name], steps=30)
    runs = [
        fit_regression(net(), X, Y, config(optimizer=name, batch_size=batch_size, seed=seed, **settings)).history
        for seed in (7, 7, 8)
    ]
    pd.testing.assert_frame_equal(runs[0], runs[1])
    assert not runs[0]["loss"].equals(runs[2]["loss"])


def test_history_has_one_row_per_logged_step_plus_the_final_model():
    X, Y = problem()
    result = fit_regression(net(), X, Y, config(optimizer="sgd", lr=0.01, steps=25, log_every=10))
    history = result.history
    assert list(history["step"]) == [0, 10, 20, 25]
    assert list(history.columns[:4]) == ["step", "epoch", "loss", "evaluations"]
    assert list(history["evaluations"]) == [0, 10, 20, 25]


def test_metrics_callback_adds_columns():
    X, Y = problem()

    def metrics(model: torch.nn.Module, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"rank": gram_effective_rank(model(inputs)), "norm": next(model.parameters()).norm()}

    result = fit_regression(net(), X, Y, config(optimizer="adam", lr=0.01, steps=20, log_every=5), metrics=metrics)
    history = result.history
    assert len(history) == 5 and {"rank", "norm"} <= set(history.columns)
    assert history[["rank", "norm"]].notna().all().all()
    assert history["rank"].between(0, math.log(8)).all()


def test_metrics_may_not_overwrite_loss():
    X, Y = problem()
    with pytest.raises(ValueError, match="reserved"):
        fit_regression(net(), X, Y, config(steps=2), metrics=lambda m, x: {"loss": 1.0})


def test_progress_bar_runs_without_a_display_and_keeps_stdout_clean(capsys):
    X, Y = problem()
    result = fit_regression(net(), X, Y, config(optimizer="adam", lr=0.01, steps=20, progress=True))
    assert result.steps == 20
    assert capsys.readouterr().out == ""


def test_fit_with_a_custom_loss_and_a_tensor_dataset():
    X, Y = problem()
    data = torch.utils.data.TensorDataset(X, Y)
    result = fit(net(), lambda p, t: (p - t).abs().mean(), data, config(optimizer="adam", lr=0.01, steps=50))
    assert result.final_loss < result.history["loss"].iloc[0]


def test_model_and_data_move_to_the_chosen_device():
    X, Y = problem()
    result = fit_regression(net(), X, Y, config(steps=2, device="cpu"))
    assert result.device.type == "cpu"
    assert next(result.model.parameters()).device.type == "cpu"


# Every optimizer on every accelerator this machine has (the CPU always; CUDA where present, as on the GPU runs).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_training_on_each_available_device(name, device):
    X, Y = problem()  # on the CPU: fit moves them
    result = fit_regression(net(), X, Y, config(optimizer=name, device=device, **SETTINGS[name]))
    assert result.device.type == device
    assert next(result.model.parameters()).device.type == device
    assert result.final_loss < 0.5 * result.history["loss"].iloc[0]


def test_cpu_threads_apply_during_training_only() -> None:
    X, Y = problem()
    before = torch.get_num_threads()
    seen: list[int] = []

    def record_threads(model: torch.nn.Module, inputs: torch.Tensor) -> dict[str, float]:
        seen.append(torch.get_num_threads())
        return {}

    fit_regression(net(), X, Y, config(steps=3, cpu_threads=1), metrics=record_threads)
    assert seen[:3] == [1, 1, 1]  # the logged steps ran with one thread...
    assert torch.get_num_threads() == before  # ...and the caller's setting is back


def test_cpu_threads_takes_the_device_by_keyword_and_refuses_a_swapped_call() -> None:
    from lowrank_utils.runtime import cpu_threads

    before = torch.get_num_threads()
    with pytest.raises(TypeError):
        with cpu_threads("cpu", 1):  # type: ignore[arg-type,call-arg]  # the old swapped call: the device is keyword-only
            pass
    with pytest.raises(ValueError, match="positive number of threads"):
        with cpu_threads("cpu"):  # type: ignore[arg-type]  # a device where the count belongs
            pass
    with pytest.raises(ValueError, match="positive number of threads"):
        with cpu_threads(0, device="cuda"):  # checked even where the context would do nothing
            pass
    with cpu_threads(1, device="cpu"):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_chapter_7_training_runs_with_its_configured_threads(monkeypatch: pytest.MonkeyPatch):
    """Regression: chapter 7 passed (device, n) to cpu_threads, so its thread setting never took effect."""
    from lowrank_utils import runtime
    from lowrank_utils.chapters.ch07_linear_overparameterization import experiment as ch7

    cfg = ch7.SpectrumConfig.quick(dataset="digits", train_subset=64, test_subset=32, epochs=1, batch_size=32,
                                   channels=(4, 8), tracked_layer=1, depth=2, checkpoints=1, cpu_threads=1)
    seen: list[int] = []
    original = ch7._train_one

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(ch7, "_train_one", spy)
    with runtime.cpu_threads(2, device="cpu"):
        ch7.spectrum_dynamics(cfg, progress=False)
    assert seen == [1, 1]  # both models trained with the configured single thread


def test_regression_shape_mismatch_is_explained():
    X, Y = problem()
    model = make_deep_linear(6, 6, 2, out_features=1)
    with pytest.raises(ValueError, match=r"shape \(8, 1\).*Y has shape \(8,\)"):
        fit_regression(model, X, Y[:, 0], config(steps=2))


def test_bad_data_is_rejected():
    X, Y = problem()
    with pytest.raises(ValueError, match="8 samples but Y has 7"):
        fit_regression(net(), X, Y[:7], config(steps=2))
    with pytest.raises(ValueError, match=r"pair \(X, Y\)"):
        fit(net(), torch.nn.functional.mse_loss, X, config(steps=2))


def test_unknown_optimizer_lists_valid_names():
    names = "sgd, nesterov, adam, lbfgs, cma, random_search"
    with pytest.raises(ValueError, match=rf"unknown optimizer 'rmsprop'.*{names}"):
        TrainConfig(optimizer="rmsprop")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(lr=0), "lr must be"),
        (dict(lr=float("nan")), "lr must be"),
        (dict(steps=0), "steps must be"),
        (dict(epochs=1.5), "epochs must be"),
        (dict(batch_size=0), "batch_size must be"),
        (dict(tolerance=-1), "tolerance must be"),
        (dict(rel_tolerance=-0.1), "rel_tolerance must be"),
        (dict(patience=0), "patience must be"),
        (dict(log_every=0), "log_every must be"),
        (dict(divergence_ratio=0.5), "divergence_ratio must be"),
        (dict(optimizer="adam", momentum=0.9), "momentum applies to 'sgd' and 'nesterov'"),
        (dict(momentum=1.0), "momentum must be in"),
        (dict(optimizer="nesterov", momentum=0.0), "Nesterov momentum needs momentum > 0"),
        (dict(optimizer="cma", weight_decay=0.1), "weight_decay is supported for"),
        (dict(optimizer="sgd", popsize=10), "popsize applies to optimizer='cma'"),
        (dict(optimizer="cma", popsize=1), "popsize must be"),
        (dict(seed=-1), "seed must be"),
        (dict(cpu_threads=0), "cpu_threads must be"),
        (dict(device="gpu"), "not a device name"),
        (dict(progress="yes"), "progress must be"),
    ],
)
def test_bad_hyper_parameters_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_model_without_parameters_is_rejected():
    X, Y = problem()
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit_regression(torch.nn.Identity(), X, Y, config(steps=2))
