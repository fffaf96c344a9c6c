"""Over-parameterized layers: exact collapse over a large configuration grid, fast-path gradients, whole-model
expansion and collapse (torchvision models), keeping a pretrained function, state dicts, warnings and errors."""

from __future__ import annotations

import random
import warnings
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from lowrank_utils.overparam import (
    OverparamConv2d,
    OverparamLayer,
    OverparamLinear,
    collapse,
    overparameterize,
)

DT = torch.float64
TOL = 1e-9
N_CHUNKS = 4
N_CONV, N_LINEAR = 1000, 240

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------- helpers
def _randomise_extras(layer: OverparamLayer, g: torch.Generator) -> None:
    """Give biases and batch-norm statistics non-trivial values, so folding them is actually tested."""
    with torch.no_grad():
        for b in layer.biases:
            b.copy_(torch.randn(b.shape, generator=g, dtype=b.dtype))
        for n in layer.norms:
            assert isinstance(n, nn.modules.batchnorm._BatchNorm)
            assert n.running_mean is not None and n.running_var is not None
            n.running_mean.copy_(torch.randn(n.num_features, generator=g, dtype=DT))
            n.running_var.copy_(0.5 + 1.5 * torch.rand(n.num_features, generator=g, dtype=DT))
            n.weight.copy_(torch.randn(n.num_features, generator=g, dtype=DT))
            n.bias.copy_(torch.randn(n.num_features, generator=g, dtype=DT))


def _conv_config(rng: random.Random) -> dict[str, Any]:
    depth = rng.randint(1, 8)
    spec = rng.choice(["int", "list", "nonsquare"])
    kernel_sizes: int | list[int] | list[tuple[int, int]]
    kernel_list: list[tuple[int, int]]
    if spec == "int":
        kernel_sizes = rng.choice([1, 2, 3, 4])
        kernel_list = [(kernel_sizes, kernel_sizes)] + [(1, 1)] * (depth - 1)
    elif spec == "list":
        kernel_list = [(k, k) for k in (rng.choice([1, 2, 3]) for _ in range(depth))]
        kernel_sizes = [k for k, _ in kernel_list]
    else:
        kernel_list = [(rng.choice([1, 2, 3]), rng.choice([1, 3])) for _ in range(depth)]
        kernel_sizes = kernel_list
    kh = sum(k for k, _ in kernel_list) - depth + 1
    kw = sum(k for _, k in kernel_list) - depth + 1
    groups = rng.choice([1, 1, 2])
    stride = rng.choice([1, 2, (2, 1), (1, 2)])
    padding = rng.choice(["zero", "half", "max", "mixed"])
    pad = {
        "zero": 0, "half": (kh // 2, kw // 2), "max": (kh - 1, kw - 1), "mixed": (rng.randint(0, kh - 1), 0)
    }[padding]
    residual = rng.random() < 0.4
    chans = [groups * rng.randint(1, 3) for _ in range(2)]
    if residual:
        chans = [chans[0], chans[0]]  # equal in/out gives the whole-span skip a chance to fit
    width_kind = rng.choice(["one", "two", "half", "hidden"])
    widths: dict[str, dict[str, Any]] = {
        "one": {}, "two": {"width": 2}, "half": {"width": 0.5},
        "hidden": {"hidden_channels": groups * rng.randint(1, 3)},
    }
    width_kw = widths[width_kind]
    return dict(
        in_channels=chans[0], out_channels=chans[1], kernel_sizes=kernel_sizes,
        depth=depth if spec == "int" else None, stride=stride, padding=pad, groups=groups,
        bias=rng.random() < 0.5, batch_norm=depth > 1 and rng.random() < 0.4, residual=residual,
        residual_intervals=rng.choice([1, 2, 3, -1, [1, 2]]), **width_kw,
    )


def _linear_config(rng: random.Random) -> dict[str, Any]:
    depth = rng.randint(1, 8)
    residual = rng.random() < 0.4
    n_in = rng.randint(1, 6)
    n_out = n_in if residual and rng.random() < 0.5 else rng.randint(1, 6)
    widths: list[dict[str, Any]] = [{}, {"width": 2}, {"width": 0.5}, {"hidden_features": rng.randint(1, 6)}]
    width_kw = rng.choice(widths)
    return dict(
        in_features=n_in, out_features=n_out, depth=depth, bias=rng.random() < 0.5,
        batch_norm=depth > 1 and rng.random() < 0.4, residual=residual,
        residual_intervals=rng.choice([1, 2, 3, -1, [1, 2]]), **width_kw,
    )


def _grid(kind: str) -> list[dict]:
    """A fixed, seeded sample of valid configurations (invalid draws, e.g. no skip fits, are redrawn)."""
    rng = random.Random(1234 if kind == "conv" else 4321)
    make = _conv_config if kind == "conv" else _linear_config
    cls: type[OverparamConv2d | OverparamLinear] = OverparamConv2d if kind == "conv" else OverparamLinear
    count = N_CONV if kind == "conv" else N_LINEAR
    configs: list[dict] = []
    while len(configs) < count:
        cfg = make(rng)
        try:
            cls(**cfg)
        except ValueError:
            continue
        configs.append(cfg)
    return configs


GRIDS = {"conv": _grid("conv"), "linear": _grid("linear")}


def _check_config(kind: str, cfg: dict, seed: int) -> float:
    """Build one layer in float64 and return the largest |chained - collapsed| and |chained - composed|."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer: OverparamLayer
    if kind == "conv":
        conv = layer = OverparamConv2d(**cfg, dtype=DT)
        kh, kw = conv.kernel_size
        h = max(kh - 2 * conv.padding[0], 1) + seed % 3
        w = max(kw - 2 * conv.padding[1], 1) + (seed // 3) % 3
        x = torch.randn(2, conv.in_channels, h, w, generator=g, dtype=DT)
    else:
        layer = OverparamLinear(**cfg, dtype=DT)
        x = torch.randn(3, 2, layer.in_features, generator=g, dtype=DT)
    _randomise_extras(layer, g)
    layer.eval()
    with torch.no_grad():
        chained = layer.chained_forward(x)
        collapsed = layer.collapse()(x)
        layer.mode = "composed"
        composed = layer(x)
    assert chained.shape == collapsed.shape == composed.shape
    return max((chained - collapsed).abs().max().item(), (chained - composed).abs().max().item())


# --------------------------------------------------------------------------------------- exact collapse grid
def test_grid_is_large_and_covers_the_options() -> None:
    conv, lin = GRIDS["conv"], GRIDS["linear"]
    assert len(conv) + len(lin) >= 1000 and len(conv) >= 1000
    depths = {OverparamConv2d(**c).depth for c in conv}
    assert depths == set(range(1, 9))
    assert {str(c["stride"]) for c in conv} == {"1", "2", "(2, 1)", "(1, 2)"}
    assert {c["groups"] for c in conv} == {1, 2}
    for key in ("bias", "batch_norm", "residual"):
        assert {c[key] for c in conv} == {True, False} and {c[key] for c in lin} == {True, False}
    assert sum(bool(OverparamConv2d(**c).skips) for c in conv) > 100
    assert any(isinstance(c["kernel_sizes"], list) and isinstance(c["kernel_sizes"][0], tuple) for c in conv)


@pytest.mark.parametrize("kind", ["conv", "linear"])
@pytest.mark.parametrize("chunk", range(N_CHUNKS))
def test_collapse_is_exact_over_grid(kind: str, chunk: int) -> None:
    configs = GRIDS[kind][chunk::N_CHUNKS]
    assert len(configs) >= N_LINEAR // N_CHUNKS
    worst, worst_cfg = 0.0, None
    for i, cfg in enumerate(configs):
        err = _check_config(kind, cfg, seed=chunk * 10_000 + i)
        if err > worst:
            worst, worst_cfg = err, cfg
    assert worst <= TOL, f"max |chained - collapsed| = {worst:.3g} for {worst_cfg}"


# ---------------------------------------------------------------------------------------- API and shapes
def test_paper_style_constructors() -> None:
    lin = OverparamLinear(32, 32, depth=4)
    assert len(lin.weights) == 4 and lin(torch.randn(5, 32)).shape == (5, 32)
    assert lin.end_to_end_weight().shape == (32, 32) and lin.weight.shape == (32, 32)
    conv = OverparamConv2d(32, 64, kernel_sizes=(3, 3, 1), stride=1, padding=1)
    assert conv.depth == 3 and conv.kernel_size == (5, 5)
    assert conv(torch.randn(2, 32, 8, 8)).shape == (2, 64, 6, 6)  # padding 1 with a 5x5 composed kernel
    assert conv.end_to_end_weight().shape == (64, 32, 5, 5)
    conv = OverparamConv2d(4, 4, kernel_sizes=5, depth=3, padding="same")
    assert conv.kernel_sizes == [(5, 5), (1, 1), (1, 1)] and conv.padding == (2, 2)
    assert conv(torch.randn(1, 4, 7, 7)).shape == (1, 4, 7, 7)
    assert OverparamConv2d(4, 4, kernel_sizes=3).depth == 2  # paper default depth for an int kernel size
    assert OverparamLinear(8, 4, width=2).hidden_features == 8
    assert OverparamLinear(8, 4, hidden_features=5).hidden_features == 5


def test_end_to_end_weight_is_the_product_of_factors() -> None:
    lin = OverparamLinear(6, 5, depth=3, width=2, bias=False).double()
    w = lin.weights
    torch.testing.assert_close(lin.end_to_end_weight(), w[2] @ w[1] @ w[0], rtol=0, atol=1e-12)
    assert lin.end_to_end_bias() is None and lin.bias is None
    weight, bias = lin.collapsed_weight()
    assert not weight.requires_grad and bias is None


def test_init_scales_product_like_one_he_layer() -> None:
    torch.manual_seed(0)
    for depth in (1, 2, 4, 8):
        lin = OverparamLinear(256, 256, depth=depth, bias=False)
        std = lin.end_to_end_weight().std().item()
        assert std == pytest.approx((2 / 256) ** 0.5, rel=0.1), depth
    conv = OverparamConv2d(64, 64, kernel_sizes=3, depth=4, bias=False)
    x = torch.randn(8, 64, 12, 12)
    y = conv(x)
    # He scaling: E[y²] = 2 E[x²] away from the border.
    assert y[..., 1:-1, 1:-1].pow(2).mean().item() == pytest.approx(2.0, rel=0.15)


def test_eval_and_train_return_the_module() -> None:
    layer = OverparamConv2d(3, 4, batch_norm=True)
    assert layer.eval() is layer and not layer.training and not layer.norms[0].training
    assert layer.train() is layer and layer.training


# --------------------------------------------------------------------------------- fast path and gradients
def _grads(layer: OverparamLayer, x: torch.Tensor, mode: str) -> list[torch.Tensor]:
    layer.mode = mode
    layer.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    out = layer(x)
    (out * torch.linspace(-1, 1, out.numel(), dtype=DT).reshape(out.shape)).sum().backward()
    assert x.grad is not None
    return [x.grad] + [p.grad if p.grad is not None else torch.zeros_like(p) for p in layer.parameters()]


@pytest.mark.parametrize(
    "make",
    [
        lambda: OverparamLinear(5, 7, depth=4, width=2),
        lambda: OverparamLinear(6, 6, depth=5, residual=True, residual_intervals=[1, 2], batch_norm=True),
        lambda: OverparamConv2d(4, 6, kernel_sizes=[3, 1, 3], stride=2, padding=2),
        lambda: OverparamConv2d(4, 4, kernel_sizes=[(3, 1), 3, 1, (1, 3)], groups=2, padding=(1, 2), residual=True,
                                residual_intervals=[1, -1], batch_norm=True, stride=(1, 2)),
        lambda: OverparamConv2d(4, 4, kernel_sizes=3, depth=4, groups=4, padding=1, width=2),
    ],
)
def test_composed_gradients_equal_chained(make) -> None:
    torch.manual_seed(0)
    layer = make().double()
    _randomise_extras(layer, torch.Generator().manual_seed(1))
    layer.eval()  # batch norm folds only with running statistics
    shape = (3, 2, layer.in_features) if isinstance(layer, OverparamLinear) else (2, layer.in_channels, 9, 8)
    x = torch.randn(shape, dtype=DT)
    chained, composed = _grads(layer, x, "chained"), _grads(layer, x, "composed")
    assert len(chained) == len(composed) > 3
    for a, b in zip(chained, composed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert any(b.abs().sum() > 0 for b in composed[1:])


def test_auto_mode_picks_the_cheaper_form() -> None:
    conv = OverparamConv2d(64, 64, kernel_sizes=3, depth=4, padding=1)
    assert conv.uses_composed(torch.empty(32, 64, 32, 32))  # 1x1 factors cost more than composing kernels
    lin = OverparamLinear(512, 512, depth=4)
    assert not lin.uses_composed(torch.empty(256, 512))  # 3 matrix products of 512³ exceed 4 batch products
    small = OverparamLinear(4, 4, depth=4)
    assert small.uses_composed(torch.empty(10_000, 4))
    small.mode = "chained"
    assert not small.uses_composed(torch.empty(10_000, 4))
    lin.mode = "composed"
    assert lin.uses_composed(torch.empty(256, 512))
    with pytest.raises(ValueError, match="mode"):
        lin.mode = "fast"


def test_batch_norm_in_training_falls_back_to_chained() -> None:
    torch.manual_seed(0)
    layer = OverparamConv2d(3, 4, kernel_sizes=3, depth=3, padding=1, batch_norm=True, mode="composed").double()
    x = torch.randn(4, 3, 6, 6, dtype=DT)
    assert not layer.uses_composed(x)
    with pytest.warns(UserWarning, match="falls back"):
        y = layer(x)
    # Training-mode batch norm normalises with batch statistics and updates the running ones.
    norm = layer.norms[0]
    assert isinstance(norm, nn.BatchNorm2d) and norm.running_mean is not None
    assert norm.running_mean.abs().sum() > 0
    layer.eval()
    assert layer.uses_composed(x)
    torch.testing.assert_close(layer(x), layer.chained_forward(x), rtol=0, atol=1e-12)
    assert y.shape == (4, 4, 6, 6)


# ------------------------------------------------------------------------------------------ keep function
@pytest.mark.parametrize("noise_std", [0.0, 0.1])
def test_from_module_keeps_the_function(noise_std: float) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    lin = nn.Linear(7, 5).double().eval()  # eval: batch norm can be an exact identity only with running statistics
    x = torch.randn(4, 7, dtype=DT)
    op = OverparamLinear.from_module(lin, depth=4, width=2, noise_std=noise_std, generator=g, batch_norm=True).eval()
    torch.testing.assert_close(op(x), lin(x), rtol=0, atol=1e-12)
    assert op.chained_forward(x).sub(lin(x)).abs().max() <= 1e-12
    inner_is_identity = torch.equal(op.weights[1], torch.eye(10, dtype=DT))
    assert inner_is_identity == (noise_std == 0)

    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2).double()
    xc = torch.randn(2, 4, 9, 9, dtype=DT)
    for kwargs in ({"depth": 3}, {"kernel_sizes": [3, 3, 1]}):
        oc = OverparamConv2d.from_module(conv, noise_std=noise_std, generator=g, **kwargs).eval()
        assert oc.chained_forward(xc).sub(conv(xc)).abs().max() <= 1e-12
    if noise_std == 0:  # without noise the factors are exact copies and identities: bit-identical weights
        assert torch.equal(OverparamConv2d.from_module(conv, depth=3).end_to_end_weight(), conv.weight)


def test_keep_function_rejects_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="hidden width"):
        OverparamLinear.from_module(nn.Linear(4, 8), depth=2, width=0.5)
    with pytest.raises(ValueError, match="residual"):
        OverparamLinear.from_module(nn.Linear(4, 4), depth=2, residual=True)
    with pytest.raises(ValueError, match="original kernel size"):
        OverparamConv2d.from_module(nn.Conv2d(2, 2, 3), kernel_sizes=[1, 3])
    with pytest.raises(ValueError, match="dilation"):
        OverparamConv2d.from_module(nn.Conv2d(2, 2, 3, dilation=2))
    with pytest.raises(ValueError, match="eval mode"):
        OverparamConv2d.from_module(nn.Conv2d(2, 2, 3).train(), batch_norm=True)


def test_keep_function_with_batch_norm_needs_eval_mode() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 2, 1)).double()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        same = overparameterize(model.train(), keep_function=True, batch_norm=True)
    assert len(caught) == 2
    for name, w in zip("02", caught, strict=True):
        assert f"'{name}' (Conv2d) unchanged: keep_function with batch_norm" in str(w.message)
    assert not any(isinstance(m, OverparamLayer) for m in same.modules())
    expanded = overparameterize(model.eval(), depth=3, keep_function=True, batch_norm=True, noise_std=0.1)
    assert isinstance(expanded, nn.Sequential)  # a container comes back as its own type
    assert all(isinstance(expanded[i], OverparamConv2d) and expanded[i].batch_norm for i in (0, 2))
    x = torch.randn(2, 2, 5, 5, dtype=DT)
    with torch.no_grad():
        torch.testing.assert_close(expanded(x), model(x), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------- whole models
def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "name, size, skip",
    [("resnet18", 32, ()), ("mobilenet_v2", 32, ()), ("alexnet", 64, ("classifier.1", "classifier.4"))],
)
def test_torchvision_models_expand_and_collapse(name: str, size: int, skip: tuple[str, ...]) -> None:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).double().eval()
    n_layers = sum(type(m) in (nn.Linear, nn.Conv2d) for m in model.modules())
    expanded = overparameterize(model, depth=2, skip=skip)
    assert sum(isinstance(m, OverparamLayer) for m in expanded.modules()) == n_layers - len(skip)
    for s in skip:  # AlexNet's 9216x4096 and 4096x4096 layers are skipped to keep the test fast on 2 cores
        assert type(expanded.get_submodule(s)) is nn.Linear
    assert all(type(m) is not OverparamLayer for m in model.modules())  # the original is untouched (a copy)
    assert _count(expanded) > _count(model)
    collapsed = collapse(expanded)
    assert not any(isinstance(m, OverparamLayer) for m in collapsed.modules())
    assert _count(collapsed) == _count(model)
    x = torch.randn(2, 3, size, size, dtype=DT)
    with torch.no_grad():
        y_exp, y_col = expanded.eval()(x), collapsed.eval()(x)
    assert y_exp.abs().max() > 0
    torch.testing.assert_close(y_col, y_exp, rtol=1e-9, atol=1e-9)


def test_keep_function_on_resnet18_reproduces_the_original() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).double().eval()
    expanded = overparameterize(model, depth=3, keep_function=True, noise_std=0.05)
    x = torch.randn(2, 3, 32, 32, dtype=DT)
    with torch.no_grad():
        torch.testing.assert_close(expanded(x), model(x), rtol=1e-9, atol=1e-9)


def test_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    base = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
    a = overparameterize(base, depth=3, batch_norm=True)
    b = overparameterize(base, depth=3, batch_norm=True)
    x = torch.randn(6, 3, 5, 5)
    a(x)  # training-mode pass: moves the running statistics away from their initial values
    b.load_state_dict(a.state_dict())
    assert set(a.state_dict()) == set(b.state_dict())
    assert "0.weights.2" in a.state_dict() and "0.norms.1.running_var" in a.state_dict()
    a.eval(), b.eval()
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    c = overparameterize(base, depth=3, batch_norm=True)
    assert isinstance(a, nn.Sequential) and isinstance(c, nn.Sequential)
    first_a, first_c = a[0], c[0]
    assert isinstance(first_a, OverparamConv2d) and isinstance(first_c, OverparamConv2d)
    assert not torch.equal(first_a.weights[0], first_c.weights[0])


def test_overparameterize_options() -> None:
    base = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))
    only_linear = overparameterize(base, depth=3, layer_types=["linear"])
    assert isinstance(only_linear, nn.Sequential)
    assert type(only_linear[0]) is nn.Conv2d and isinstance(only_linear[2], OverparamLinear)
    assert only_linear[2].depth == 3
    skipped = overparameterize(base, skip=["0"])
    assert isinstance(skipped, nn.Sequential)
    assert type(skipped[0]) is nn.Conv2d and isinstance(skipped[2], OverparamLinear)
    wide = overparameterize(base, width=2)
    assert isinstance(wide, nn.Sequential)
    assert wide[0].hidden_channels == 8 and wide[2].hidden_features == 4 and type(base[0]) is nn.Conv2d
    same = overparameterize(base, depth=3, inplace=True, residual=True, residual_intervals=1)
    assert same is base and base[0].skips == [(1, 2), (2, 3)] and base[2].skips == [(1, 2), (2, 3)]
    layer = overparameterize(nn.Linear(3, 3), depth=2)
    assert isinstance(layer, OverparamLinear) and isinstance(collapse(layer), nn.Linear)
    with pytest.raises(ValueError, match="not modules"):
        overparameterize(base, skip=["nope"])
    with pytest.raises(ValueError, match="layer_types"):
        overparameterize(base, layer_types=["attention"])
    with pytest.raises(ValueError, match="depth"):
        overparameterize(base, depth=0)
    with pytest.raises(ValueError, match="keep_function"):
        overparameterize(base, keep_function=True, residual=True)


def test_unexpandable_modules_warn_and_stay() -> None:
    class Subclass(nn.Linear):
        pass

    tied = nn.Linear(4, 4)
    model = nn.ModuleDict(
        {
            "dilated": nn.Conv2d(2, 2, 3, dilation=2),
            "reflect": nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"),
            "conv1d": nn.Conv1d(2, 2, 3),
            "transposed": nn.ConvTranspose2d(2, 2, 3),
            "subclass": Subclass(2, 2),
            "depthwise": nn.Conv2d(4, 4, 3, groups=4),  # width 1.5 gives 6 hidden channels, not a multiple of 4
            "tied_a": tied,
            "tied_b": nn.Linear(4, 4),
            "fine": nn.Conv2d(2, 2, 3),
        }
    )
    model["tied_b"].weight = tied.weight
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = overparameterize(model, width=1.5)
    assert isinstance(out, nn.ModuleDict)
    messages = " | ".join(str(w.message) for w in caught)
    for name, hint in [
        ("dilated", "dilation"), ("reflect", "padding_mode"), ("conv1d", "Conv1d"), ("transposed", "ConvTranspose2d"),
        ("subclass", "Subclass"), ("depthwise", "groups"), ("tied_a", "shared"), ("tied_b", "shared"),
    ]:
        assert f"'{name}'" in messages and hint in messages, name
        assert type(out[name]) is type(model[name]), name
    assert len(caught) == 8 and isinstance(out["fine"], OverparamConv2d)


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: OverparamLinear(4, 4, depth=0), "depth"),
        (lambda: OverparamConv2d(4, 4, kernel_sizes=3, depth=0), "depth"),
        (lambda: OverparamConv2d(4, 4, kernel_sizes=[3, 1], depth=3), "disagrees"),
        (lambda: OverparamConv2d(4, 4, kernel_sizes=[]), "kernel_sizes"),
        (lambda: OverparamConv2d(4, 4, kernel_sizes=[3, 0]), "kernel_sizes"),
        (lambda: OverparamConv2d(4, 6, groups=4), "divide out_channels"),
        (lambda: OverparamConv2d(3, 4, groups=2), "divide in_channels"),
        (lambda: OverparamConv2d(4, 4, groups=4, width=1.5), "divide hidden_channels"),
        (lambda: OverparamConv2d(4, 4, kernel_sizes=[3, 2], padding="same"), "odd composed kernel"),
        (lambda: OverparamConv2d(4, 4, kernel_sizes=3, stride=2, padding="same"), "stride 1"),
        (lambda: OverparamConv2d(4, 4, kernel_sizes=[1, 1, 1], padding=1), "larger than the composed kernel"),
        (lambda: OverparamConv2d(4, 4, kernel_sizes=3, padding=(1, 3)), "larger than the composed kernel"),
        (lambda: OverparamConv2d(4, 4, kernel_sizes=3, padding=-1), "padding"),
        (lambda: OverparamConv2d(4, 4, stride=0), "stride"),
        (lambda: OverparamLinear(4, 4, width=0), "width"),
        (lambda: OverparamLinear(4, 4, width=2, hidden_features=3), "not both"),
        (lambda: OverparamLinear(4, 4, depth=1, batch_norm=True), "depth >= 2"),
        (lambda: OverparamLinear(4, 5, depth=2, residual=True, residual_intervals=2), "no identity skip"),
        (lambda: OverparamConv2d(4, 4, kernel_sizes=[2, 1], residual=True, residual_intervals=-1), "no identity skip"),
        (lambda: OverparamLinear(4, 4, residual=True, residual_intervals=0), "residual_intervals"),
        (lambda: OverparamLinear(4, 4, mode="fast"), "mode"),
    ],
)
def test_bad_arguments_raise_clear_errors(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()
