"""runtime (device, seeding, scale), models (builders, inits) and the exercise checkers."""

import math

import pytest
import torch
from torch import nn

import lowrank_utils as lu

pytestmark = pytest.mark.usefixtures("checkers_print_only")


def test_get_device_prints_what_it_found(capsys: pytest.CaptureFixture[str]) -> None:
    device = lu.get_device()
    out = capsys.readouterr().out
    assert isinstance(device, torch.device)
    if device.type == "cpu":
        assert "No GPU found" in out
    else:
        assert "found" in out
    assert lu.get_device("cpu", verbose=False).type == "cpu"


def test_get_device_rejects_missing_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        lu.get_device("cuda")


def test_scale_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lu.SCALE_ENV, "FULL")
    assert lu.get_scale() == "full"
    monkeypatch.setenv(lu.SCALE_ENV, "quick")
    assert lu.get_scale() == "quick"
    monkeypatch.setenv(lu.SCALE_ENV, "huge")
    with pytest.raises(ValueError, match="quick, full"):
        lu.get_scale()
    monkeypatch.delenv(lu.SCALE_ENV)
    assert lu.get_scale() == "quick"
    assert lu.get_scale("full") == "full"
    with pytest.raises(ValueError, match="quick, full"):
        lu.get_scale("huge")  # type: ignore[arg-type]


def test_a_gpu_never_switches_to_the_full_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    """Colab with a GPU, or a CUDA workstation: without $LOWRANK_SCALE every chapter runs its quick preset."""
    monkeypatch.delenv(lu.SCALE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU")
    assert lu.get_scale() == "quick"
    assert lu.get_scale("quick") == "quick"
    # what each chapter's set-up cell runs, with the form field at its default
    from pathlib import Path

    import nbformat

    for path in sorted((Path(__file__).resolve().parents[1] / "book").glob("*.ipynb")):
        setup = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code").source
        field = next(line for line in setup.splitlines() if line.startswith("SCALE ="))
        namespace: dict[str, object] = {}
        exec(field, namespace)
        assert "lu.get_scale(SCALE" in setup, path.name
        assert lu.get_scale(namespace["SCALE"]) == "quick", path.name  # type: ignore[arg-type]


def test_colab_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert lu.in_colab() is False
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-test")
    assert lu.in_colab() is True


def test_seeding_reproduces_draws() -> None:
    lu.seed_everything(3)
    a = torch.randn(4)
    lu.seed_everything(3)
    assert torch.equal(a, torch.randn(4))
    with pytest.raises(ValueError):
        lu.seed_everything(-1)


@pytest.mark.parametrize("activation", lu.ACTIVATIONS)
def test_mlp_shapes_and_activations(activation: str) -> None:
    model = lu.make_mlp(10, 16, 3, out_features=4, activation=activation)
    assert model(torch.randn(5, 10)).shape == (5, 4)
    assert len(lu.linear_layers(model)) == 3
    n_act = sum(1 for m in model if not isinstance(m, nn.Linear))
    assert n_act == 2  # between layers only, unless activate_last
    assert len(lu.make_mlp(10, 16, 3, activation=activation, activate_last=True)) == 6


@pytest.mark.parametrize("init", ["normal", "uniform"])
def test_weight_distribution_and_scale(init: str) -> None:
    g = torch.Generator().manual_seed(0)
    model = lu.make_mlp(400, 400, 2, activation="relu", init=init, generator=g)
    w = lu.linear_layers(model)[0].weight.detach()
    assert w.var().item() == pytest.approx(2.0 / 400, rel=0.05)  # He scaling: Var = gain^2 / fan_in
    if init == "uniform":
        bound = math.sqrt(3 * 2.0 / 400)
        assert w.abs().max().item() <= bound + 1e-7
    else:
        assert w.abs().max().item() > math.sqrt(3 * 2.0 / 400)  # Gaussian tails exceed the uniform bound


def test_signal_scale_is_preserved_through_depth() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 256, generator=g)
    for activation in ("linear", "relu", "tanh"):
        model = lu.make_mlp(256, 256, 8, activation=activation, activate_last=False, generator=g)
        ratio = model(x).pow(2).mean().item() / x.pow(2).mean().item()
        assert 0.1 < ratio < 10, (activation, ratio)


def test_bias_switch_and_generator_reproducibility() -> None:
    a = lu.make_mlp(4, 8, 2, bias=True, generator=torch.Generator().manual_seed(1))
    b = lu.make_mlp(4, 8, 2, bias=True, generator=torch.Generator().manual_seed(1))
    bias = lu.linear_layers(a)[0].bias
    assert bias is not None and torch.all(bias == 0)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert lu.make_mlp(4, 8, 2)[0].bias is None


def test_deep_linear_end_to_end_weight() -> None:
    model = lu.make_deep_linear(6, 8, 4, out_features=5)
    x = torch.randn(3, 6)
    W = lu.end_to_end_weight(model)
    assert W.shape == (5, 6)
    assert torch.allclose(model(x), x @ W.T, atol=1e-5)
    with pytest.raises(ValueError, match="deep linear"):
        lu.end_to_end_weight(lu.make_mlp(6, 8, 3, activation="relu"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depth": 0}, "depth"),
        ({"width": -3}, "width"),
        ({"activation": "swish"}, "unknown activation"),
        ({"init": "orthogonal"}, "unknown init"),
    ],
)
def test_mlp_bad_arguments(kwargs: dict, message: str) -> None:
    args = {"in_features": 4, "width": 8, "depth": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        lu.make_mlp(**args)


def test_checkers_pass_and_fail(capsys: pytest.CaptureFixture[str]) -> None:
    def good(A: torch.Tensor) -> float:
        return lu.entropy_effective_rank(A).item()

    def nan_prone(A: torch.Tensor) -> float:
        return lu.naive_entropy_effective_rank(A).item()

    def stub(A: torch.Tensor) -> float:
        raise NotImplementedError

    from lowrank_utils.chapters.ch01_effective_rank import (
        check_diag_entropy,
        check_entropy_rank_function,
    )

    assert check_entropy_rank_function(good)
    assert not check_entropy_rank_function(nan_prone)
    assert "NaN" in capsys.readouterr().out
    with pytest.raises(NotImplementedError):
        check_entropy_rank_function(stub)
    assert "not done yet" in capsys.readouterr().out
    assert check_diag_entropy(1.75 * math.log(2))
    assert not check_diag_entropy(math.log(4))
    assert not check_diag_entropy(float("nan"))


def test_progress_bars_follow_tqdm_disable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert lu.progress_enabled(True) and not lu.progress_enabled(False)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not lu.progress_enabled(True)


def test_answer_readers_return_the_value_or_the_reported_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    from lowrank_utils.checks import Verdict, number_answer, tensor_answer

    assert number_answer("x", lambda: 6.4) == 6.4
    assert number_answer("x", lambda: [6.4]) == 6.4  # a one-element list, read in float64: exact
    assert number_answer("x", lambda: torch.tensor([[2.5]])) == 2.5
    for bad in (lambda: "six", lambda: [1.0, 2.0], lambda: 1 / 0):
        verdict = number_answer("x", bad, call="fn(3)")
        assert isinstance(verdict, Verdict) and not verdict
    out = capsys.readouterr().out
    assert "fn(3) returned 'six', not a single number" in out and "ZeroDivisionError" in out
    K = tensor_answer("K", lambda: [[1, 2], [3, 4]])
    assert isinstance(K, torch.Tensor) and K.dtype == torch.float64 and K.shape == (2, 2)
    assert not tensor_answer("K", lambda: {"not": "numbers"})
