"""Builders for the networks the paper studies: deep linear networks and MLPs with a choice of activation and
weight distribution."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lowrank_utils import validate as check
from lowrank_utils.overparam import overparameterize


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


def make_deep_linear(in_features: int, width: int, depth: int, *, out_features: int | None = None,
                     init: str = "normal", generator: torch.Generator | None = None) -> nn.Sequential:
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


ARCHS: tuple[str, ...] = ("small_cnn", "compact_cnn", "resnet18")
"""Architectures :func:`build_model` knows: a small CNN, a compact ExpandNets-style CNN, a CIFAR-style ResNet-18."""

DEFAULT_WIDTHS: dict[str, int] = {"small_cnn": 16, "compact_cnn": 8, "resnet18": 64}
"""Channels of the first block of each architecture when no width is given."""


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def plain_cnn(
    channels: Sequence[int] = (16, 32, 64), in_channels: int = 1, num_classes: int = 10, batch_norm: bool = False
) -> nn.Sequential:
    """A plain CNN (chapter 7's spectra): 3x3 conv (+ batch norm) + ReLU blocks (max-pool 2 after all but the last),
    global average pool, a linear classifier. Weights are He-normal (fan_in), biases zero: the scale of an expanded
    layer's product. Unlike :class:`SmallCNN` it has no hidden fully connected layer and no batch norm by default."""
    channels = check.integers("channels", channels)
    check.integer("in_channels", in_channels)
    check.integer("num_classes", num_classes, 2)
    layers: list[nn.Module] = []
    c_in = in_channels
    for i, c in enumerate(channels):
        layers += [nn.Conv2d(c_in, c, 3, padding=1)] + ([nn.BatchNorm2d(c)] if batch_norm else []) + [nn.ReLU()]
        if i < len(channels) - 1:
            layers.append(nn.MaxPool2d(2))
        c_in = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            assert m.bias is not None  # every layer above is built with its bias
            nn.init.zeros_(m.bias)
    return model



class SmallCNN(nn.Module):
    """Two conv-BN-ReLU-max-pool blocks (``width`` and 2·``width`` channels), a fully connected layer of ``hidden``
    units with batch norm and ReLU (its output is the penultimate embedding), and a linear classifier."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16, hidden: int = 128,
                 image_size: int = 28) -> None:
        super().__init__()
        c, side = width, image_size // 4
        self.features = nn.Sequential(
            *_conv_bn(in_channels, c), nn.MaxPool2d(2),
            *_conv_bn(c, 2 * c), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * c * side * side, hidden, bias=False), nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits for a batch of images."""
        return self.classifier(self.features(x))


class CompactCNN(nn.Module):
    """A compact CNN in the spirit of the small networks of ExpandNets (Guo et al. 2020): three 3x3
    conv-BN-ReLU-max-pool blocks with ``width``, 2·``width`` and 4·``width`` channels (padded, so 28-pixel images
    keep a 3x3 map), a fully connected layer of ``hidden`` units with ReLU (its output is the penultimate
    embedding), and a linear classifier. About 25,000 parameters at the default width 8: small enough that
    capacity, not data, limits it."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 8, hidden: int = 64,
                 image_size: int = 28) -> None:
        super().__init__()
        c, side = width, image_size // 8
        if side < 1:
            raise ValueError(f"CompactCNN needs images of at least 8 pixels (three 2x2 poolings), got {image_size}.")
        self.features = nn.Sequential(
            *_conv_bn(in_channels, c), nn.MaxPool2d(2),
            *_conv_bn(c, 2 * c), nn.MaxPool2d(2),
            *_conv_bn(2 * c, 4 * c), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(4 * c * side * side, hidden), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits for a batch of images."""
        return self.classifier(self.features(x))


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet18(nn.Module):
    """ResNet-18 for 32x32 images (3x3 stem, no max-pool; four stages of two basic blocks with ``width`` x (1, 2, 4,
    8) channels), the usual CIFAR variant of He et al.'s network."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = [*_conv_bn(in_channels, width)]
        c_in = width
        for i, mult in enumerate((1, 2, 4, 8)):
            c_out = width * mult
            for j in range(2):
                layers.append(_BasicBlock(c_in, c_out, 2 if (i > 0 and j == 0) else 1))
                c_in = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits for a batch of images."""
        return self.classifier(self.features(x))


def build_model(arch: str, in_channels: int, num_classes: int, width: int | None = None, depth: int = 1,
                image_size: int = 28) -> nn.Module:
    """The baseline ``arch`` (``depth=1``) or its linear over-parameterization with ``depth`` factors per layer
    (``width=None``: the architecture's default from :data:`DEFAULT_WIDTHS`)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}.")
    check.integer("depth", depth)
    width = DEFAULT_WIDTHS[arch] if width is None else check.integer("width", width)
    if arch == "small_cnn":
        model: nn.Module = SmallCNN(in_channels, num_classes, width, image_size=image_size)
    elif arch == "compact_cnn":
        model = CompactCNN(in_channels, num_classes, width, image_size=image_size)
    else:
        model = CifarResNet18(in_channels, num_classes, width)
    return overparameterize(model, depth=depth) if depth > 1 else model


def model_label(depth: int) -> str:
    """How tables and figures name a model: ``baseline`` or ``overparam x<depth>``."""
    return "baseline" if depth == 1 else f"overparam x{depth}"


def forward_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass of one input of shape ``(C, H, W)`` through the model's convolutions
    and linear layers (batch norm, activations and pooling are ignored: they are a small fraction). A model built on
    the ``meta`` device is measured without computing anything."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output[0].numel() * (module.in_channels // module.groups) * kh * kw
        else:
            assert isinstance(module, nn.Linear)  # the hook is registered on convolutions and linear layers only
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            first = next(model.parameters(), None)  # a model built on the meta device is measured there, for free
            model(torch.zeros(1, *input_shape, device=first.device if first is not None else "cpu"))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return int(total)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not) in a model."""
    return sum(p.numel() for p in model.parameters())
