"""Chapter 7 (linear over-parameterization): the experiments' quick presets, their configs, the figures and the
exercise checkers."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from lowrank_utils.chapters.ch07_linear_overparameterization.checks import (
    check_collapse_linear,
    check_compose_kernels,
)
from lowrank_utils.chapters.ch07_linear_overparameterization.experiment import (
    InitRankConfig,
    SpectrumConfig,
    checkpoint_table,
    collapse_check,
    conv_layers,
    cost_table,
    init_rank,
    init_rank_medians,
    layer_matrix,
    spectrum_dynamics,
    step_time_table,
)
from lowrank_utils.chapters.ch07_linear_overparameterization.figures import (
    pick_checkpoints,
    plot_init_rank,
    plot_rank_over_training,
    plot_spectrum_change,
    plot_spectrum_dynamics,
)
from lowrank_utils.models import plain_cnn
from lowrank_utils.overparam import OverparamConv2d, collapse, overparameterize

# One thread (tiny ops on the shared 2-core machine), and checkers that print a FAIL for the tests to read.
pytestmark = pytest.mark.usefixtures("one_thread", "checkers_print_only")


@pytest.fixture(scope="module")
def spectra():
    """The chapter's quick preset, as the notebook runs it (about 20 s on one core)."""
    return spectrum_dynamics(SpectrumConfig.quick(), progress=False)


# ---------------------------------------------------------------------------------------- collapse and cost
def test_collapse_check_agrees_in_float64():
    df = collapse_check(seed=0)
    assert len(df) >= 7
    assert (df["max_abs_diff"] <= 1e-9).all(), df
    # Expanding a k x k conv as [k, 1, ...] adds parameters; collapsing gives the plain layer's count back.
    row = df[df["case"].str.startswith("conv 8→16, [3,1,1,1]")].iloc[0]
    assert row["params_collapsed"] == 16 * 8 * 9 + 16 < row["params_expanded"]


def test_plain_cnn_round_trip_keeps_parameter_count_and_outputs():
    torch.manual_seed(0)
    cnn = plain_cnn((8, 16, 16)).double()
    expanded = overparameterize(cnn, depth=3)
    plain = collapse(expanded)
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in cnn.parameters())
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        assert (expanded(x) - plain(x)).abs().max() <= 1e-9
    assert len(conv_layers(cnn)) == len(conv_layers(expanded)) == 3
    assert layer_matrix(conv_layers(expanded)[1]).shape == layer_matrix(conv_layers(cnn)[1]).shape == (16, 72)


def test_cost_table():
    df = cost_table(channels=16, image_size=8, conv_batch=4, features=64, linear_batch=8, depths=(1, 2, 4))
    for _, part in df.groupby("layer"):
        assert part["params_inference"].nunique() == 1 and part["macs_inference"].nunique() == 1
        assert part["params_train"].is_monotonic_increasing
        plain = part[part["depth"] == 1].iloc[0]
        assert plain["macs_chained"] == plain["macs_inference"] and plain["params_train"] == plain["params_inference"]
    conv = df[df["layer"].str.startswith("conv") & (df["depth"] > 1)]
    assert (conv["forward_used"] == "composed").all()  # composing small kernels beats extra passes over the map
    plain_conv = df.loc[df["layer"].str.startswith("conv") & (df["depth"] == 1), "macs_inference"].item()
    assert plain_conv == 4 * 64 * 16 * 16 * 9  # batch x pixels x out x in x kernel area


def test_step_time_table_runs():
    df = step_time_table(channels=4, image_size=6, batch=2, depths=(1, 2), repeats=1)
    assert set(df["what"]) == {"training step, chained", "training step, composed", "inference, collapsed"}
    assert (df["ms"] > 0).all()


# -------------------------------------------------------------------------------------------- rank at init
def test_init_rank_decreases_with_depth_in_median():
    cfg = InitRankConfig.quick()
    df = init_rank(cfg)
    assert len(df) == 2 * len(cfg.depths) * cfg.draws
    assert df["rho_fraction"].between(0, 1).all()
    medians = init_rank_medians(df)
    for _, part in medians.groupby("layer"):
        assert list(part["depth"]) == [1, 2, 4, 8]
        assert part["rho"].is_monotonic_decreasing and part["rho"].iloc[0] - part["rho"].iloc[-1] > 0.5
    # Deterministic: the same config gives the same draws.
    assert init_rank(InitRankConfig.quick(draws=5)).equals(init_rank(InitRankConfig.quick(draws=5)))


def test_init_rank_depth_one_is_a_plain_he_layer():
    df = init_rank(InitRankConfig.quick(depths=(1,), draws=50))
    torch.manual_seed(1)
    plain = torch.stack([nn.init.kaiming_normal_(torch.empty(64, 64)) for _ in range(200)]).double()
    from lowrank_utils.rank import entropy_effective_rank

    expected = entropy_effective_rank(plain).median().item()
    got = df[df["kind"] == "linear"]["rho"].median()
    assert abs(got - expected) < 0.02


# --------------------------------------------------------------------------------------- spectrum dynamics
def test_spectrum_dynamics_quick_preset(spectra):
    cfg = SpectrumConfig.quick()
    assert set(spectra["model"]) == {"original", f"over-parameterized (depth {cfg.depth})"}
    # The tracked layer is the last conv: 64 x (32 * 3 * 3), so 64 singular values per checkpoint.
    assert spectra.groupby(["model", "step"]).size().eq(64).all()
    hist = checkpoint_table(spectra)
    assert hist.groupby("model").size().eq(cfg.checkpoints + 1).all()
    sums = spectra.groupby(["model", "step"])["normalized_sv"].sum()
    assert ((sums - 1).abs() < 1e-9).all()
    first = hist.groupby("model", sort=False).first()
    last = hist.groupby("model", sort=False).last()
    orig, over = first.index
    change = last["rho"] - first["rho"]
    assert first.loc[over, "rho"] < first.loc[orig, "rho"]
    assert change.loc[over] < change.loc[orig] < 0
    assert (last["test_acc"] > 0.5).all() and (last["train_loss"] < first["test_loss"]).all()
    assert hist.loc[hist["step"] > 0, "train_loss"].notna().all()
    assert hist.loc[hist["step"] == 0, "train_loss"].isna().all()


def test_spectrum_dynamics_digits_sgd_is_reproducible():
    cfg = SpectrumConfig.quick(dataset="digits", train_subset=256, test_subset=64, epochs=1, batch_size=32,
                               channels=(4, 8), tracked_layer=1, depth=2, optimizer="sgd", lr=0.01,
                               milestones=(0.5,), checkpoints=2)
    a = spectrum_dynamics(cfg, progress=False)
    b = spectrum_dynamics(cfg, progress=False)
    assert a.equals(b)
    hist = checkpoint_table(a)
    assert sorted(hist["step"].unique()) == [0, 4, 8]
    assert hist.loc[hist["step"] == 8, "lr"].eq(0.001).all()  # divided by 10 half-way


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"depth": 1}, "depth"),
        ({"tracked_layer": 3}, "tracked_layer"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"milestones": (1.5,)}, "milestones"),
        ({"lr": 0.0}, "lr"),
        ({"dataset": "mnist"}, "Unknown dataset"),
        ({"train_subset": 0}, "train_subset"),
        ({"device": "gpu0"}, "device"),
    ],
)
def test_spectrum_config_rejects_bad_values(overrides, match):
    with pytest.raises(ValueError, match=match):
        SpectrumConfig.quick(**overrides)


def test_presets_and_scale():
    assert SpectrumConfig.for_scale("quick") == SpectrumConfig.quick()
    full = SpectrumConfig.for_scale("full")
    assert full.train_subset is None and full.epochs > SpectrumConfig.quick().epochs
    assert InitRankConfig.for_scale("full").draws > InitRankConfig.quick().draws
    with pytest.raises(ValueError, match="scale"):
        InitRankConfig.for_scale("huge")
    with pytest.raises(ValueError, match="depths"):
        InitRankConfig(depths=(0, 2))


# ------------------------------------------------------------------------------------------------- figures
def test_figures(spectra):
    init = init_rank(InitRankConfig.quick(draws=10))
    figs = [plot_init_rank(init), plot_spectrum_dynamics(spectra), plot_spectrum_change(spectra),
            plot_rank_over_training(checkpoint_table(spectra))]
    assert all(isinstance(f, Figure) for f in figs)
    assert [len(f.axes) for f in figs] == [2, 2, 1, 3]
    plt.close("all")
    assert pick_checkpoints(range(13), 4) == [0, 4, 8, 12]
    with pytest.raises(ValueError, match="not checkpoints"):
        plot_spectrum_dynamics(spectra, steps=[1])
    with pytest.raises(ValueError, match="needs columns"):
        plot_rank_over_training(init)


# ------------------------------------------------------------------------------------------------ checkers
def _collapse_ok(W1, b1, W2, b2):
    return W2 @ W1, W2 @ b1 + b2


def _compose_ok(k1, k2):
    return F.conv_transpose2d(k1.transpose(0, 1), k2.transpose(0, 1)).transpose(0, 1)


def test_check_collapse_linear(capsys):
    assert check_collapse_linear(_collapse_ok)
    wrong = [
        lambda W1, b1, W2, b2: (W1.T @ W2.T, W2 @ b1 + b2),        # transposed
        lambda W1, b1, W2, b2: (W2 @ W1, b2),                      # first bias dropped
        lambda W1, b1, W2, b2: (W2 @ W1, W1.sum() + b2),           # nonsense bias
        lambda W1, b1, W2, b2: (W1 @ W2 if W1.shape == W2.shape else W2 @ W1, W2 @ b1 + b2),  # wrong order
        lambda W1, b1, W2, b2: 1 / 0,                              # a bug
    ]
    for fn in wrong:
        assert not check_collapse_linear(fn)
    out = capsys.readouterr().out
    assert "PASS" in out and "transposed" in out and "W2 @ b1 + b2" in out and "wrong order" in out


def test_check_compose_kernels(capsys):
    assert check_compose_kernels(_compose_ok)
    wrong = [
        lambda k1, k2: F.conv2d(k1.transpose(0, 1), k2, padding=k2.shape[-1] - 1).transpose(0, 1),  # flipped
        lambda k1, k2: F.conv2d(k1.transpose(0, 1), k2.flip((-2, -1))).transpose(0, 1),  # valid, too small
        lambda k1, k2: _compose_ok(k1, k2).transpose(0, 1),  # channels swapped
        lambda k1, k2: "not a kernel",
    ]
    for fn in wrong:
        assert not check_compose_kernels(fn)
    out = capsys.readouterr().out
    assert "flipped" in out and "full" in out and "swapped" in out


def test_checkers_reraise_unfinished_stubs():
    def stub(*args):
        raise NotImplementedError("exercise")

    with pytest.raises(NotImplementedError):
        check_collapse_linear(stub)
    with pytest.raises(NotImplementedError):
        check_compose_kernels(stub)


def test_checker_reference_matches_package_layer():
    """The kernel checker's reference is OverparamConv2d's composition; check it on an image too."""
    torch.manual_seed(0)
    layer = OverparamConv2d(2, 3, [3, 2], bias=False, dtype=torch.float64)
    k = _compose_ok(layer.weights[0].detach(), layer.weights[1].detach())
    assert torch.allclose(k, layer.weight.detach(), atol=1e-12)
