"""The overparam package's own pieces: the pure algebra, the cost model behind ``mode="auto"`` (the public
``costs`` method), one composition per read and the ``cached`` context, keyword-only options, and the names and
state-dict keys that code written against the former single module relies on."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lowrank_utils import overparam
from lowrank_utils.overparam import (
    ForwardCosts,
    OverparamConv2d,
    OverparamLinear,
    algebra,
    cached,
    collapse,
    overparameterize,
)
from lowrank_utils.overparam.costs import forward_costs

DT = torch.float64

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def compositions(monkeypatch) -> list[int]:
    """Counts calls of ``algebra.compose_kernels``, the one place where two factors are multiplied."""
    calls = [0]
    real = algebra.compose_kernels

    def counting(first, second, groups):
        calls[0] += 1
        return real(first, second, groups)

    monkeypatch.setattr(algebra, "compose_kernels", counting)
    return calls


def _randomise(layer, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
        for n in layer.norms:
            n.running_mean.copy_(torch.randn(n.num_features, generator=g, dtype=DT))
            n.running_var.copy_(0.5 + torch.rand(n.num_features, generator=g, dtype=DT))


# ------------------------------------------------------------------------------------------------ algebra
def test_a_linear_chain_is_the_1x1_case_of_the_kernel_algebra() -> None:
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(s, generator=g, dtype=DT) for s in [(5, 3), (4, 5), (2, 4)])
    ba, bb, bc = (torch.randn(n, generator=g, dtype=DT) for n in (5, 4, 2))
    kernels = [algebra.as_kernel(w) for w in (a, b, c)]
    assert kernels[0].shape == (5, 3, 1, 1) and kernels[0].data_ptr() == a.data_ptr()  # a view, no copy
    for right_to_left in (False, True):
        w = algebra.compose_weight(kernels, 1, right_to_left=right_to_left)
        torch.testing.assert_close(w.flatten(1), c @ b @ a, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(
        algebra.compose_bias(kernels, [ba, bb, bc], 1), c @ (b @ ba + bb) + bc, rtol=1e-13, atol=1e-13
    )
    assert algebra.compose_bias(kernels, [None, None, None], 1) is None
    # A skip over all three adds the identity (3 -> 2 does not fit, so use square factors).
    sq = [torch.randn(3, 3, generator=g, dtype=DT) for _ in range(2)]
    with_skip = algebra.compose_weight([algebra.as_kernel(w) for w in sq], 1, [(0, 2)])
    torch.testing.assert_close(with_skip.flatten(1), sq[1] @ sq[0] + torch.eye(3, dtype=DT), rtol=1e-13, atol=1e-13)


def test_composed_kernel_and_bias_equal_the_chained_convolutions() -> None:
    g = torch.Generator().manual_seed(1)
    groups = 2
    shapes = [(4, 1, 3, 2), (6, 2, 1, 1), (4, 3, 2, 3)]
    kernels = [torch.randn(s, generator=g, dtype=DT) for s in shapes]
    biases = [torch.randn(s[0], generator=g, dtype=DT) for s in shapes]
    x = torch.randn(2, 2, 9, 8, generator=g, dtype=DT)
    y = x
    for k, b in zip(kernels, biases, strict=True):
        y = F.conv2d(y, k, b, groups=groups)
    w = algebra.compose_weight(kernels, groups)
    assert w.shape == (4, 1, 4, 4)  # Σk − d + 1 per dimension
    bias = algebra.compose_bias(kernels, biases, groups)
    torch.testing.assert_close(F.conv2d(x, w, bias, groups=groups), y, rtol=1e-12, atol=1e-12)


def test_batch_norm_folds_into_the_factor() -> None:
    g = torch.Generator().manual_seed(2)
    norm = nn.BatchNorm2d(3).double().eval()
    assert norm.running_mean is not None and norm.running_var is not None
    with torch.no_grad():
        norm.running_mean.copy_(torch.randn(3, generator=g))
        norm.running_var.copy_(torch.rand(3, generator=g) + 0.5)
        norm.weight.copy_(torch.randn(3, generator=g))
        norm.bias.copy_(torch.randn(3, generator=g))
    k, b = torch.randn(3, 2, 3, 3, generator=g, dtype=DT), torch.randn(3, generator=g, dtype=DT)
    x = torch.randn(2, 2, 6, 6, generator=g, dtype=DT)
    fk, fb = algebra.fold_batch_norm(k, b, norm.running_mean, norm.running_var, norm.eps, norm.weight, norm.bias)
    torch.testing.assert_close(F.conv2d(x, fk, fb), norm(F.conv2d(x, k, b)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("noise_std", [0.0, 0.3])
def test_right_inverse_fill_reproduces_the_weight(noise_std: float) -> None:
    g = torch.Generator().manual_seed(3)
    weight = torch.randn(4, 3, 3, 3, generator=g, dtype=DT)  # groups 2: 6 inputs, 3 per group
    shapes = [(6, 3, 3, 3), (6, 3, 1, 1), (4, 3, 3, 3)]
    factors = algebra.right_inverse_fill(weight, shapes, 2, noise_std=noise_std, generator=g)
    assert [tuple(f.shape) for f in factors] == shapes and all(f.dtype == DT for f in factors)
    composed = algebra.compose_weight(factors, 2)
    # The 3x3 last factor is a centred delta, so the composed 5x5 kernel holds the weight in its centre.
    torch.testing.assert_close(composed, F.pad(weight, (1, 1, 1, 1)), rtol=1e-10, atol=1e-10)
    inner_is_identity = torch.equal(factors[1][:, :, 0, 0], torch.eye(3, dtype=DT).repeat(2, 1))
    assert inner_is_identity == (noise_std == 0)


# --------------------------------------------------------------------------------------------- cost model
def test_costs_method_gives_the_multiply_adds_auto_compares() -> None:
    conv = OverparamConv2d(2, 3, kernel_sizes=[3, 1], padding=1)
    x = torch.empty(5, 2, 8, 8, device="meta")  # shapes are all the model needs
    costs = conv.costs(x)
    assert isinstance(costs, ForwardCosts)
    # Chained: a 3x3 conv 2->3 and a 1x1 conv 3->3 over 8x8 outputs; composed: the 3x3 conv plus one 3x3 kernel
    # product (3 x 3 x 2 per position of the 3x3 result).
    assert costs.chained == 5 * 64 * (3 * 2 * 9 + 3 * 3)
    assert costs.composed == 3 * 3 * 2 * 9 + 5 * 64 * 3 * 2 * 9
    lin = OverparamLinear(4, 4, depth=4)
    costs = lin.costs(torch.empty(10_000, 4))
    assert costs == ForwardCosts(chained=10_000 * 4 * 16, composed=3 * 64 + 10_000 * 16)
    assert lin.uses_composed(torch.empty(10_000, 4)) == (costs.composed < costs.chained)
    big = OverparamLinear(512, 512, depth=4)
    chained, composed = big.costs(torch.empty(256, 512))
    assert not big.uses_composed(torch.empty(256, 512)) and composed > chained


def test_a_linear_layer_costs_like_its_1x1_convolution() -> None:
    lin = OverparamLinear(6, 5, depth=3, width=2)
    conv = OverparamConv2d(6, 5, kernel_sizes=[1, 1, 1], width=2)
    assert lin.costs(torch.empty(7, 3, 6)) == conv.costs(torch.empty(21, 6, 1, 1))
    shapes = [(10, 6, 1, 1), (10, 10, 1, 1), (5, 10, 1, 1)]
    assert lin.costs(torch.empty(21, 6)) == forward_costs(shapes, 1, batch=21, size=(1, 1))


def test_private_costs_is_a_deprecated_alias() -> None:
    # experiments/overparam_layers.cost_table still calls layer._costs; it must keep answering the same.
    layer = OverparamConv2d(4, 4, kernel_sizes=3, depth=3, padding=1, residual=True, residual_intervals=-1)
    x = torch.empty(2, 4, 6, 6)
    with pytest.warns(DeprecationWarning, match="costs"):
        chained, composed = layer._costs(x)
    assert (chained, composed) == layer.costs(x) and chained > 0 and composed > 0


# ------------------------------------------------------------------------------------ one composition per read
@pytest.mark.parametrize(
    "make, n_products",
    [
        (lambda: OverparamConv2d(4, 4, kernel_sizes=[3, 3, 1], padding=1), 2),
        (lambda: OverparamLinear(5, 5, depth=4, batch_norm=True), 3),  # the same algebra, as 1x1 kernels
        (lambda: OverparamConv2d(4, 4, kernel_sizes=[3, 1, 3], padding=2, residual=True, residual_intervals=1), 2),
    ],
)
def test_each_read_composes_once(compositions: list[int], make, n_products: int) -> None:
    layer = make().double().eval()
    _randomise(layer)
    _ = layer.weight  # the read is the point
    assert compositions[0] == n_products
    compositions[0] = 0
    bias = layer.bias  # needs only channel sums: no kernel product at all
    assert compositions[0] == 0 and bias is not None
    _, both_bias = layer.collapsed_weight()
    assert compositions[0] == n_products
    torch.testing.assert_close(both_bias, bias.detach(), rtol=0, atol=0)
    compositions[0] = 0
    layer.mode = "composed"
    x = torch.randn((2, 5) if isinstance(layer, OverparamLinear) else (2, 4, 7, 7), dtype=DT)
    y = layer(x)
    assert compositions[0] == n_products
    torch.testing.assert_close(y, layer.chained_forward(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(layer.collapse()(x), y, rtol=1e-10, atol=1e-10)


def test_cached_composes_once_per_context(compositions: list[int]) -> None:
    layer = OverparamConv2d(4, 6, kernel_sizes=[3, 1, 1], padding=1, mode="composed").double()
    x = torch.randn(2, 4, 5, 5, dtype=DT)
    with cached():
        first = layer.weight
        assert layer.weight is first and compositions[0] == 2
        bias = layer.bias
        with cached():  # nesting keeps the outer cache
            layer(x)
        assert layer.bias is bias
        layer(x), layer.collapsed_weight(), layer.end_to_end_weight()
        assert compositions[0] == 2
    assert overparam.layers._cache == {}  # cleared on exit: no tensors (or layers) kept alive
    assert layer.weight is not first and compositions[0] == 4


def test_cached_reads_keep_the_gradients() -> None:
    torch.manual_seed(0)
    layer = OverparamConv2d(3, 3, kernel_sizes=[3, 3], padding=2, mode="composed").double()
    xs = [torch.randn(2, 3, 6, 6, dtype=DT) for _ in range(2)]

    def grads(use_cache: bool) -> list[torch.Tensor]:
        layer.zero_grad(set_to_none=True)
        if use_cache:
            with cached():
                loss = sum(layer(x).square().sum() for x in xs) + layer.weight.sum()
        else:
            loss = sum(layer(x).square().sum() for x in xs) + layer.weight.sum()
        loss.backward()
        grads = [p.grad for p in layer.parameters()]
        assert all(g is not None for g in grads)
        return [g.clone() for g in grads if g is not None]

    for a, b in zip(grads(False), grads(True), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        assert a.abs().sum() > 0


# ------------------------------------------------------------------------------------------ signatures
def _options_after(fn, essentials: list[str]) -> None:
    params = list(inspect.signature(fn).parameters.values())
    names = [p.name for p in params if p.name not in ("self", "cls")]
    positional = [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert [n for n in positional if n not in ("self", "cls")] == essentials, fn
    assert all(
        p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD)
        for p in params if p.name in names and p.name not in essentials
    )


def test_options_are_keyword_only() -> None:
    _options_after(OverparamLinear.__init__, ["in_features", "out_features"])
    _options_after(OverparamConv2d.__init__, ["in_channels", "out_channels", "kernel_sizes"])
    _options_after(OverparamLinear.from_module, ["linear", "depth"])
    _options_after(OverparamConv2d.from_module, ["conv", "depth"])
    _options_after(overparameterize, ["model", "depth"])
    _options_after(collapse, ["model"])
    model = nn.Sequential(nn.Linear(3, 3))
    # In the former order width came before depth, so a third positional number is refused, not re-read.
    for call in (
        lambda: OverparamLinear(4, 4, 2),  # type: ignore[call-arg]
        lambda: OverparamConv2d(4, 4, 3, 1),  # type: ignore[call-arg]
        lambda: OverparamLinear.from_module(nn.Linear(3, 3), 2, 2),  # type: ignore[call-arg]
        lambda: OverparamConv2d.from_module(nn.Conv2d(3, 3, 3), 2, 2),  # type: ignore[call-arg]
        lambda: overparameterize(model, 2, 2),  # type: ignore[call-arg]
        lambda: collapse(model, True),  # type: ignore[call-arg]
    ):
        with pytest.raises(TypeError, match="positional"):
            call()
    assert OverparamLinear.from_module(nn.Linear(3, 3), 3).depth == 3
    assert overparameterize(nn.Linear(3, 3), 4).depth == 4
    conv = OverparamConv2d.from_module(nn.Conv2d(2, 2, 3, padding=1), depth=3, width=2, hidden_channels=None)
    assert conv.depth == 3 and conv.hidden_channels == 4


# ------------------------------------------------------------------------------------ compatibility
def test_names_of_the_former_module_still_import() -> None:
    from lowrank_utils.overparam import LAYER_TYPES, MODES

    assert MODES == ("auto", "chained", "composed") and LAYER_TYPES == ("linear", "conv")
    for name in ("OverparamConv2d", "OverparamLayer", "OverparamLinear", "collapse", "overparameterize", "cached"):
        assert name in overparam.__all__ and hasattr(overparam, name)


def test_state_dict_keys_and_shapes_are_those_of_the_single_module() -> None:
    conv = OverparamConv2d(3, 4, kernel_sizes=[3, 1, 1], batch_norm=True)
    expected = {
        "weights.0": (4, 3, 3, 3), "weights.1": (4, 4, 1, 1), "weights.2": (4, 4, 1, 1),
        "biases.0": (4,), "biases.1": (4,), "biases.2": (4,),
    }
    for i in (0, 1):
        expected.update({f"norms.{i}.{k}": (4,) for k in ("weight", "bias", "running_mean", "running_var")})
        expected[f"norms.{i}.num_batches_tracked"] = ()
    assert {k: tuple(v.shape) for k, v in conv.state_dict().items()} == expected
    lin = OverparamLinear(6, 2, depth=2, width=2, bias=False)
    assert {k: tuple(v.shape) for k, v in lin.state_dict().items()} == {"weights.0": (4, 6), "weights.1": (2, 4)}
