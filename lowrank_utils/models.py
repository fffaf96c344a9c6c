"""Builders for the networks the paper studies: deep linear networks and MLPs with a choice of activation and
weight distribution."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "WEIGHT_INITS",
    "Sine",
    "make_activation",
    "make_mlp",
    "make_deep_linear",
    "linear_layers",
    "end_to_end_weight",
    "activation_gain",
]


class Sine(nn.Module):
    """sin(ω₀·x), the activation of SIREN networks."""

    def __init__(self, w0: float = 1.0) -> None:
        super().__init__()
        self.w0 = float(w0)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.w0 * x)

    def extra_repr(self) -> str:
        return f"w0={self.w0}"


_ACTIVATION_FACTORIES: dict[str, Callable[[], nn.Module]] = {
    "linear": nn.Identity,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "sine": Sine,
}
ACTIVATIONS: tuple[str, ...] = tuple(_ACTIVATION_FACTORIES)
"""Names accepted by :func:`make_mlp`."""

# Gains that keep the activations' scale roughly constant through depth (PyTorch's calculate_gain where it has
# one; GELU behaves like ReLU for this purpose; sin(x) is close to x near 0).
_GAINS: dict[str, float] = {
    "linear": 1.0,
    "tanh": 5.0 / 3.0,
    "relu": math.sqrt(2.0),
    "leaky_relu": math.sqrt(2.0 / (1 + 0.2**2)),
    "selu": 0.75,
    "gelu": math.sqrt(2.0),
    "sine": 1.0,
}

WEIGHT_INITS: tuple[str, ...] = ("normal", "uniform", "default")
"""``normal``: N(0, g²/fan_in); ``uniform``: U(-a, a) with the same variance; ``default``: PyTorch's own."""


def activation_gain(name: str) -> float:
    """The weight-scale gain used for ``name`` (std = gain / sqrt(fan_in)), shared by every builder in the package."""
    make_activation(name)  # the same error message for an unknown name
    return _GAINS[name]


def make_activation(name: str) -> nn.Module:
    """A fresh activation module from its name (one of :data:`ACTIVATIONS`)."""
    try:
        return _ACTIVATION_FACTORIES[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}.") from None


def _init_linear(layer: nn.Linear, init: str, gain: float, generator: torch.Generator | None) -> None:
    if init == "default":
        layer.reset_parameters()
        return
    fan_in = layer.in_features
    std = gain / math.sqrt(fan_in)
    with torch.no_grad():
        if init == "normal":
            layer.weight.normal_(0.0, std, generator=generator)
        else:  # uniform with the same variance: Var U(-a, a) = a²/3
            bound = math.sqrt(3.0) * std
            layer.weight.uniform_(-bound, bound, generator=generator)
        if layer.bias is not None:
            layer.bias.zero_()


def make_mlp(
    in_features: int,
    width: int,
    depth: int,
    *,
    out_features: int | None = None,
    activation: str = "relu",
    init: str = "normal",
    bias: bool = False,
    activate_last: bool = False,
    generator: torch.Generator | None = None,
) -> nn.Sequential:
    """An MLP of ``depth`` linear layers with ``activation`` between them.

    Hidden layers have ``width`` units; the last layer has ``out_features`` (default ``width``). Weights are drawn
    from ``init`` scaled by the activation's gain so that signals neither explode nor vanish with depth;
    ``activate_last`` also applies the activation after the last layer (the output is then a hidden layer).
    """
    for name, value in (("in_features", in_features), ("width", width), ("depth", depth)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if out_features is not None and (not isinstance(out_features, int) or out_features < 1):
        raise ValueError(f"out_features must be a positive integer or None, got {out_features!r}.")
    if init not in WEIGHT_INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(WEIGHT_INITS)}.")
    make_activation(activation)  # validates the name before building anything
    out_features = width if out_features is None else out_features
    gain = _GAINS[activation]
    layers: list[nn.Module] = []
    dims = [in_features] + [width] * (depth - 1) + [out_features]
    for i in range(depth):
        linear = nn.Linear(dims[i], dims[i + 1], bias=bias)
        _init_linear(linear, init, gain if (i < depth - 1 or activate_last) else 1.0, generator)
        layers.append(linear)
        if i < depth - 1 or activate_last:
            layers.append(make_activation(activation))
    return nn.Sequential(*layers)


def make_deep_linear(
    in_features: int,
    width: int,
    depth: int,
    *,
    out_features: int | None = None,
    init: str = "normal",
    generator: torch.Generator | None = None,
) -> nn.Sequential:
    """A deep linear network: ``depth`` bias-free linear layers with nothing in between."""
    return make_mlp(
        in_features, width, depth, out_features=out_features, activation="linear", init=init, generator=generator
    )


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The model's ``nn.Linear`` layers in the order they are applied (for sequential models)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def end_to_end_weight(model: nn.Module) -> Tensor:
    """The product W_d ⋯ W₁ of a deep linear network's weights (the single matrix it computes)."""
    layers = linear_layers(model)
    if not layers:
        raise ValueError("the model has no nn.Linear layers, so it has no end-to-end weight.")
    if any(layer.bias is not None for layer in layers):
        raise ValueError("end_to_end_weight needs bias-free layers; a bias makes the map affine, not linear.")
    if any(not isinstance(m, (nn.Linear, nn.Identity, nn.Sequential)) for m in model.modules()):
        raise ValueError("end_to_end_weight is defined for deep linear networks only (no non-linear activations).")
    weight = layers[0].weight
    for layer in layers[1:]:
        weight = layer.weight @ weight
    return weight
