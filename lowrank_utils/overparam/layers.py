"""The over-parameterized layers: parameters, initialisation, the two forward forms, and reads of the end-to-end
map (composed once per read, or once per :func:`cached` context).

The arithmetic lives in :mod:`.algebra` (composition) and :mod:`.costs` (which form is cheaper); a layer only
presents its factors to them as grouped kernels, a linear layer being the 1x1, one-group case.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Self, TypedDict, Unpack

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from . import _validate as check
from . import algebra
from .costs import ForwardCosts, compose_costs, forward_costs

__all__ = ["MODES", "LayerOptions", "OverparamConv2d", "OverparamLayer", "OverparamLinear", "cached"]

MODES: tuple[str, ...] = ("auto", "chained", "composed")

# ------------------------------------------------------------------------------------------------ the cache
# Like torch.nn.utils.parametrize.cached: a nesting count and one dict, cleared when the outermost context exits.
# Keys hold the layer itself (not its id), so a layer freed inside the context cannot alias a new one.
_cache_depth = 0
_cache: dict[tuple[OverparamLayer, str], Tensor | None] = {}


@contextlib.contextmanager
def cached() -> Iterator[None]:
    """Inside this context every layer composes its end-to-end weight (and bias) at most once and reuses them.

    For code that reads ``.weight`` several times or runs several composed forwards with unchanged parameters;
    the reused tensors stay in the autograd graph, so gradients flow to the factors. As with
    ``torch.nn.utils.parametrize.cached``, nothing checks for staleness: do not change the parameters (no
    optimizer step) or batch-norm statistics (no training-mode forward) inside the context.
    """
    global _cache_depth
    _cache_depth += 1
    try:
        yield
    finally:
        _cache_depth -= 1
        if _cache_depth == 0:
            _cache.clear()


class LayerOptions(TypedDict, total=False):
    """The keyword options both :class:`OverparamLinear` and :class:`OverparamConv2d` take after their own arguments.

    ``bias`` (default True): every factor has a bias. ``batch_norm`` (False): batch norm after every factor but the
    last (needs depth >= 2). ``residual`` (False): identity skips around blocks of ``residual_intervals`` (2)
    factors: a positive int, -1 (one skip over all factors) or a list of them. ``negative_slope`` (0.0): of the
    activation that follows the layer, for the last factor's He gain. ``mode`` ("auto"): see
    :attr:`OverparamLayer.mode`. ``device`` and ``dtype`` (None): of the parameters, as in ``nn.Linear``.
    """

    bias: bool
    batch_norm: bool
    residual: bool
    residual_intervals: int | Sequence[int]
    negative_slope: float
    mode: str
    device: torch.device | str | None
    dtype: torch.dtype | None


class OverparamLayer(nn.Module):
    """Shared machinery of :class:`OverparamLinear` and :class:`OverparamConv2d` (not used directly)."""

    # Set by subclasses before _build.
    depth: int
    groups: int
    skips: list[tuple[int, int]]
    _dims: list[int]

    def _build(
        self, shapes: list[tuple[int, ...]], norm_cls: type[nn.Module], *, bias: bool = True, batch_norm: bool = False,
        residual: bool = False, residual_intervals: int | Sequence[int] = 2, negative_slope: float = 0.0,
        mode: str = "auto", device: torch.device | str | None = None, dtype: torch.dtype | None = None,
    ) -> None:
        """Check and apply the shared options (:class:`LayerOptions`, the defaults here): place the skips, create the
        factor parameters (``shapes[i]`` is factor i's weight shape) and the optional norms, and initialise them.

        Subclasses call it last, once ``depth``, ``groups`` and ``_dims`` are set (the skips depend on them).
        """
        factory: dict[str, Any] = {"device": device, "dtype": dtype}  # for torch.empty and the norms alike
        self.skips = self._place_skips(residual, residual_intervals)
        self.negative_slope = check.number("negative_slope", negative_slope)
        self.mode = mode
        self.weights = nn.ParameterList([nn.Parameter(torch.empty(s, **factory)) for s in shapes])
        self.biases = nn.ParameterList([nn.Parameter(torch.empty(s[0], **factory)) for s in shapes] if bias else [])
        if batch_norm and self.depth < 2:
            raise ValueError("batch_norm=True needs depth >= 2: the norms sit between factors, and depth 1 has none.")
        self.norms = nn.ModuleList(
            [norm_cls(self._dims[i + 1], **factory) for i in range(self.depth - 1)] if batch_norm else []
        )
        self._warned_fallback = False
        self.reset_parameters()

    # ----------------------------------------------------------------------------------------------- config
    @property
    def mode(self) -> str:
        """How ``forward`` computes: ``auto`` (cheaper by FLOPs), ``chained`` (factor by factor) or ``composed``."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"unknown mode {value!r}; choose one of {', '.join(MODES)}.")
        self._mode = value

    @property
    def has_bias(self) -> bool:
        """Whether the factors carry biases."""
        return len(self.biases) > 0

    @property
    def batch_norm(self) -> bool:
        """Whether batch norm sits between the factors."""
        return len(self.norms) > 0

    def _place_skips(self, residual: bool, intervals: int | Sequence[int]) -> list[tuple[int, int]]:
        """The blocks [start, end) of factors that get an identity skip."""
        if not residual:
            return []
        raw = [intervals] if isinstance(intervals, int) else list(intervals)
        if not raw or not all(isinstance(r, int) and not isinstance(r, bool) and (r >= 1 or r == -1) for r in raw):
            raise ValueError(
                f"residual_intervals must be a positive int, -1 (one skip over all factors) or a list of them, "
                f"got {intervals!r}."
            )
        blocks: set[tuple[int, int]] = set()
        for r in raw:
            if r == -1:
                blocks.add((0, self.depth))
            else:
                blocks.update((a, a + r) for a in range(0, self.depth - r + 1, r))
        skips = sorted(b for b in blocks if self._skip_fits(*b))
        if not skips:
            raise ValueError(
                f"residual=True but no block of factors (intervals {raw}, depth {self.depth}) maps its input to an "
                "output of the same shape, so no identity skip fits. Use a larger depth, a smaller interval, or "
                "equal in/out sizes."
            )
        return skips

    def _skip_fits(self, start: int, end: int) -> bool:
        return self._dims[start] == self._dims[end]

    def reset_parameters(self) -> None:
        """Re-draw the factors (He-normal, fan_in; gain 1 except the last), zero the biases and reset the norms."""
        last_gain = math.sqrt(2.0 / (1.0 + self.negative_slope**2))
        with torch.no_grad():
            for i, w in enumerate(self.weights):
                fan_in = w[0].numel()  # in-channels per group x kernel area
                gain = last_gain if i == self.depth - 1 else 1.0
                w.normal_(0.0, gain / math.sqrt(fan_in))
            for b in self.biases:
                b.zero_()
        for norm in self._norm_list():
            norm.reset_parameters()

    # ------------------------------------------------------------------------------------ kind-specific ops
    def _apply_factor(self, x: Tensor, i: int, padded: bool = False) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply_norm(self, x: Tensor, i: int) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _skip_value(self, saved: Tensor, start: int, end: int, out: Tensor) -> Tensor:
        return saved

    def _prepare_input(self, x: Tensor, pad: bool) -> Tensor:
        return x

    def _apply_composed(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def _cost_input(self, x: Tensor) -> tuple[int, tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(batch, spatial size, padding, stride) of ``x`` for the cost model."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _plain(self, bias: bool, like: Tensor) -> nn.Linear | nn.Conv2d:  # pragma: no cover - abstract
        """An empty standard layer of the collapsed shape."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------- forward
    def _norm_list(self) -> list[_BatchNorm]:
        return list(self.norms)  # type: ignore[arg-type]  # only batch norms are ever put there

    def _norms_training(self) -> bool:
        return any(n.training or not n.track_running_stats for n in self._norm_list())

    def costs(self, x: Tensor) -> ForwardCosts:
        """Estimated multiply-adds of ``forward(x)`` chained and composed, the numbers ``mode="auto"`` compares.

        Only the shape of ``x`` matters (a ``meta`` tensor will do). Returns ``ForwardCosts(chained, composed)``,
        a named pair; ``composed`` includes composing the kernels.
        """
        batch, size, padding, stride = self._cost_input(x)
        shapes = [tuple(algebra.as_kernel(w).shape) for w in self.weights]
        return forward_costs(
            shapes, self.groups, batch=batch, size=size, padding=padding, stride=stride, has_skips=bool(self.skips)
        )

    def _costs(self, x: Tensor) -> tuple[float, float]:
        """Deprecated alias of :meth:`costs`, kept for callers written before it was public."""
        warnings.warn(
            f"{type(self).__name__}._costs is deprecated; call the public costs() (same numbers, named fields).",
            DeprecationWarning, stacklevel=2,
        )
        return self.costs(x)

    def uses_composed(self, x: Tensor) -> bool:
        """Whether ``forward(x)`` would apply the composed weight (True) or the factors one by one (False)."""
        if self.batch_norm and self._norms_training():
            return False  # batch statistics need the intermediate activations
        if self.mode == "chained" or self.depth == 1:
            return False
        if self.mode == "composed":
            return True
        chained, composed = self.costs(x)
        return composed < chained

    def forward(self, x: Tensor) -> Tensor:
        """Apply the layer, chained or composed according to :attr:`mode` (same function either way)."""
        if self.mode == "composed" and self.batch_norm and self._norms_training() and not self._warned_fallback:
            warnings.warn(
                f"{type(self).__name__}: mode='composed' falls back to the chained form while batch norm is in "
                "training mode (it needs batch statistics); call eval() to use the composed weight.",
                stacklevel=2,
            )
            self._warned_fallback = True
        if self.uses_composed(x):
            weight, bias = self._end_to_end(weight=True, bias=True)
            assert weight is not None
            return self._apply_composed(x, weight, bias)
        return self.chained_forward(x)

    def chained_forward(self, x: Tensor) -> Tensor:
        """Apply the factors one after the other (with norms and skips): the literal deep form."""
        starts = {a for a, _ in self.skips}
        saved: dict[int, Tensor] = {}
        y = self._prepare_input(x, 0 in starts)
        for i in range(self.depth):
            if i in starts:
                saved[i] = y
            y = self._apply_factor(y, i, padded=0 in starts)
            if i < self.depth - 1 and self.batch_norm:
                y = self._apply_norm(y, i)
            for a, b in self.skips:
                if b == i + 1:
                    y = y + self._skip_value(saved[a], a, b, y)
        return y

    # ------------------------------------------------------------------------------------ end-to-end map
    def _folded_kernels(self) -> tuple[list[Tensor], list[Tensor | None]]:
        """Each factor as a grouped kernel and its bias, with the following batch norm folded in (eval mode)."""
        kernels: list[Tensor] = []
        biases: list[Tensor | None] = []
        for i, w in enumerate(self.weights):
            k = algebra.as_kernel(w)
            b = self.biases[i] if self.has_bias else None
            if self.batch_norm and i < self.depth - 1:
                n = self._norm_list()[i]
                assert n.running_mean is not None and n.running_var is not None  # the norms built here track them
                k, b = algebra.fold_batch_norm(
                    k, b, n.running_mean, n.running_var, n.eps, n.weight if n.affine else None,
                    n.bias if n.affine else None,
                )
            kernels.append(k)
            biases.append(b)
        return kernels, biases

    def _end_to_end(self, *, weight: bool, bias: bool) -> tuple[Tensor | None, Tensor | None]:
        """The requested parts of the end-to-end (weight, bias): each composed once per call, or once per
        :func:`cached` context. The bias needs no kernel composition, so asking for it alone composes nothing."""
        wanted = [what for what, on in (("weight", weight), ("bias", bias)) if on]
        parts = {what: _cache[(self, what)] for what in wanted if (self, what) in _cache}
        missing = [what for what in wanted if what not in parts]
        if missing:
            kernels, biases = self._folded_kernels()  # folded once, shared by weight and bias
            if "weight" in missing:
                parts["weight"] = self._compose_weight(kernels)
            if "bias" in missing:
                parts["bias"] = algebra.compose_bias(kernels, biases, self.groups, self.skips)
            if _cache_depth:
                _cache.update({(self, what): parts[what] for what in missing})
        return parts.get("weight"), parts.get("bias")

    def _compose_weight(self, kernels: list[Tensor]) -> Tensor:
        right_to_left = False
        if not self.skips:  # with skips the map must be built from the input side
            left, right = compose_costs([k.shape for k in kernels], self.groups)
            right_to_left = right < left  # ((W_d W_{d-1}) ...) W_1 is cheaper when the output side is narrow
        composed = algebra.compose_weight(kernels, self.groups, self.skips, right_to_left=right_to_left)
        # A linear layer's map is the 1x1 kernel of a matrix; hand it back in the layer's own [out, in] form.
        return composed.flatten(1) if self.weights[0].ndim == 2 else composed

    def end_to_end_weight(self) -> Tensor:
        """The single weight the layer computes (differentiable; batch norm folded with its running statistics)."""
        return self._end_to_end(weight=True, bias=False)[0]  # type: ignore[return-value]

    def end_to_end_bias(self) -> Tensor | None:
        """The single bias the layer computes, or None when no factor or norm adds one (composes no kernels)."""
        return self._end_to_end(weight=False, bias=True)[1]

    def collapsed_weight(self) -> tuple[Tensor, Tensor | None]:
        """The end-to-end (weight, bias), detached: what :meth:`collapse` puts into the plain layer."""
        w, b = self._end_to_end(weight=True, bias=True)
        assert w is not None
        return w.detach(), (None if b is None else b.detach())

    @property
    def weight(self) -> Tensor:
        """The end-to-end weight (read-only view for code written against ``nn.Linear`` / ``nn.Conv2d``)."""
        return self.end_to_end_weight()

    @property
    def bias(self) -> Tensor | None:
        """The end-to-end bias, or None (read-only)."""
        return self.end_to_end_bias()

    def collapse(self) -> nn.Module:
        """The equivalent standard layer (batch norm folded with its running statistics)."""
        w, b = self.collapsed_weight()
        plain = self._plain(b is not None, w)
        with torch.no_grad():
            plain.weight.copy_(w)
            if b is not None and plain.bias is not None:
                plain.bias.copy_(b)
        plain.train(self.training)
        return plain

    # ----------------------------------------------------------------------------------- keep a function
    @classmethod
    def _expand(
        cls, module: nn.Linear | nn.Conv2d, *args: Any, keep_function: bool, noise_std: float,
        generator: torch.Generator | None, **kwargs: Any,
    ) -> Self:
        """What both ``from_module`` do once they have the sizes: ``cls(*args, **kwargs)`` with ``module``'s bias,
        device and dtype, in its train/eval mode and, with ``keep_function``, computing its function."""
        w = module.weight
        layer = cls(*args, bias=module.bias is not None, device=w.device, dtype=w.dtype, **kwargs)
        if keep_function:
            bias = None if module.bias is None else module.bias.detach()
            layer._fill_from(algebra.as_kernel(w.detach()), bias, noise_std=noise_std, generator=generator,
                             training=module.training)
        layer.train(module.training)
        return layer

    def _fill_from(
        self, weight: Tensor, bias: Tensor | None, *, noise_std: float, generator: torch.Generator | None,
        training: bool,
    ) -> None:
        """Set the factors so that their product is ``weight`` (grouped 4-D form) and the composed bias is ``bias``.

        See :func:`.algebra.right_inverse_fill`. Batch norms are set to the identity of eval mode, so a module in
        training mode cannot keep its function with them.
        """
        if self.skips:
            raise ValueError("keep_function cannot be combined with residual skips: the skips add identity paths.")
        if self.batch_norm and training:
            raise ValueError(
                "keep_function with batch_norm is exact only in eval mode (training-mode batch norm normalises with "
                "batch statistics), but the module is in training mode; call .eval() on it (or the model) first."
            )
        out_c = weight.shape[0]
        hid = self._dims[1] if self.depth > 1 else out_c
        if hid < out_c:
            raise ValueError(
                f"keep_function needs hidden width >= out ({out_c}) to hold the original weight, got {hid}; "
                "use width >= 1."
            )
        noise_std = check.number("noise_std", noise_std, minimum=0)
        shapes = [tuple(algebra.as_kernel(w).shape) for w in self.weights]
        with torch.no_grad():
            filled = algebra.right_inverse_fill(weight, shapes, self.groups, noise_std=noise_std, generator=generator)
            for p, t in zip(self.weights, filled, strict=True):
                p.copy_(t.reshape(p.shape).to(p.dtype))
            for b in self.biases:
                b.zero_()
            if bias is not None:
                self.biases[-1].copy_(bias)
            for norm in self._norm_list():  # identity in eval mode: (x - 0) / sqrt(1 + eps) * sqrt(1 + eps)
                assert norm.running_mean is not None and norm.running_var is not None
                norm.running_mean.zero_()
                norm.running_var.fill_(1.0)
                if norm.affine:
                    norm.weight.fill_(math.sqrt(1.0 + norm.eps))
                    norm.bias.zero_()


class OverparamLinear(OverparamLayer):
    """A linear layer computed as a product of ``depth`` linear maps (optionally with batch norm and skips).

    Equivalent to ``nn.Linear(in_features, out_features, bias)``; see the package docstring for the conventions
    (widths, init, skips, batch norm, fast path). Everything after the two sizes is keyword-only: ``depth``,
    ``width``, ``hidden_features`` and the options both layers share, :class:`LayerOptions` (``bias``,
    ``batch_norm``, ``residual``, ``residual_intervals``, ``negative_slope``, ``mode``, ``device``, ``dtype``).
    """

    def __init__(
        self, in_features: int, out_features: int, *, depth: int = 2, width: float = 1,
        hidden_features: int | None = None, **options: Unpack[LayerOptions],
    ) -> None:
        super().__init__()
        self.in_features = check.positive_int("in_features", in_features)
        self.out_features = check.positive_int("out_features", out_features)
        self.depth = check.positive_int("depth", depth)
        self.width = width
        self.hidden_features = check.hidden_width(out_features, width, hidden_features, "hidden_features")
        self.groups = 1
        self._dims = [in_features] + [self.hidden_features] * (depth - 1) + [out_features]
        self._build([(self._dims[i + 1], self._dims[i]) for i in range(depth)], nn.BatchNorm1d, **options)

    @classmethod
    def from_module(
        cls, linear: nn.Linear, depth: int = 2, *, width: float = 1, keep_function: bool = True,
        noise_std: float = 0.0, generator: torch.Generator | None = None, **options: Any,
    ) -> OverparamLinear:
        """An expansion of ``linear`` with the same shapes; ``keep_function`` makes the product equal its weight.

        ``options`` are the constructor's other keywords (batch_norm, residual, mode, ...).
        """
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"from_module expects an nn.Linear, got {type(linear).__name__}.")
        return cls._expand(
            linear, linear.in_features, linear.out_features, depth=depth, width=width, keep_function=keep_function,
            noise_std=noise_std, generator=generator, **options,
        )

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"hidden_features={self.hidden_features}, depth={self.depth}, bias={self.has_bias}, "
            f"batch_norm={self.batch_norm}, skips={self.skips}, mode={self.mode!r}"
        )

    def _apply_factor(self, x: Tensor, i: int, padded: bool = False) -> Tensor:
        return F.linear(x, self.weights[i], self.biases[i] if self.has_bias else None)

    def _apply_norm(self, x: Tensor, i: int) -> Tensor:
        # BatchNorm1d wants channels in dim 1; a linear layer's features are last, so flatten the rest.
        return self.norms[i](x.reshape(-1, x.shape[-1])).reshape(x.shape)

    def _apply_composed(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.linear(x, weight, bias)

    def _cost_input(self, x: Tensor) -> tuple[int, tuple[int, int], tuple[int, int], tuple[int, int]]:
        return x.numel() // self.in_features, (1, 1), (0, 0), (1, 1)  # every row is a 1x1 "image"

    def _plain(self, bias: bool, like: Tensor) -> nn.Linear:
        return nn.Linear(self.in_features, self.out_features, bias=bias, device=like.device, dtype=like.dtype)

    def collapse(self) -> nn.Linear:
        """An ``nn.Linear`` with the end-to-end weight and bias (batch norm folded with running statistics)."""
        return super().collapse()  # type: ignore[return-value]


class OverparamConv2d(OverparamLayer):
    """A 2-D convolution computed as a chain of ``depth`` convolutions (optionally with batch norm and skips).

    Equivalent to ``nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias)``
    with ``kernel_size = Σkᵢ − d + 1``. ``kernel_sizes`` is an int k (k x k, then 1x1 factors up to ``depth``;
    depth defaults to 2) or a list with one size per factor, each an int or a pair (kh, kw); a list sets the
    depth. Everything after ``kernel_sizes`` is keyword-only: the conv's own ``depth``, ``stride``, ``padding``,
    ``groups``, ``width``, ``hidden_channels``, then the shared :class:`LayerOptions` (``bias``, ``batch_norm``,
    ``residual``, ...). See the package docstring for the conventions.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: int | Sequence[int | tuple[int, int]] = 3,
        *,
        depth: int | None = None,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        groups: int = 1,
        width: float = 1,
        hidden_channels: int | None = None,
        **options: Unpack[LayerOptions],
    ) -> None:
        super().__init__()
        self.in_channels = check.positive_int("in_channels", in_channels)
        self.out_channels = check.positive_int("out_channels", out_channels)
        self.kernel_sizes = check.kernel_list(kernel_sizes, depth)
        self.depth = len(self.kernel_sizes)
        self.width = width
        self.hidden_channels = check.hidden_width(out_channels, width, hidden_channels, "hidden_channels")
        self.groups = check.positive_int("groups", groups)
        for name, c in (("in_channels", in_channels), ("out_channels", out_channels)) + (
            (("hidden_channels", self.hidden_channels),) if self.depth > 1 else ()
        ):
            if c % groups:
                raise ValueError(
                    f"groups={groups} must divide {name}={c} (every factor is grouped the same way); "
                    "pick a width or hidden_channels that is a multiple of groups."
                )
        self.kernel_size: check.Pair = (
            sum(k[0] for k in self.kernel_sizes) - self.depth + 1,
            sum(k[1] for k in self.kernel_sizes) - self.depth + 1,
        )
        self.stride = check.pair("stride", stride, 1)
        self.padding = self._resolve_padding(padding)
        self._dims = [in_channels] + [self.hidden_channels] * (self.depth - 1) + [out_channels]
        self._build(
            [(self._dims[i + 1], self._dims[i] // groups, *self.kernel_sizes[i]) for i in range(self.depth)],
            nn.BatchNorm2d, **options,
        )

    def _resolve_padding(self, padding: int | tuple[int, int] | str) -> check.Pair:
        kh, kw = self.kernel_size
        if padding == "valid":
            return (0, 0)
        if padding == "same":
            if self.stride != (1, 1):
                raise ValueError("padding='same' needs stride 1 (as in nn.Conv2d); give the padding explicitly.")
            if kh % 2 == 0 or kw % 2 == 0:
                raise ValueError(
                    f"padding='same' needs an odd composed kernel, but kernel_sizes {self.kernel_sizes} compose to "
                    f"{self.kernel_size} (Σk − depth + 1). Make one factor's size one larger or smaller, or give "
                    "an explicit padding."
                )
            return ((kh - 1) // 2, (kw - 1) // 2)
        if isinstance(padding, str):
            raise ValueError(f"padding must be an int, a pair, 'same' or 'valid', got {padding!r}.")
        pad = check.pair("padding", padding, 0)
        if pad[0] > kh - 1 or pad[1] > kw - 1:
            raise ValueError(
                f"padding {pad} is larger than the composed kernel size minus one {(kh - 1, kw - 1)} for kernel_sizes "
                f"{self.kernel_sizes}: the outer output rows would see only padding. For 'same' output use "
                f"padding {((kh - 1) // 2, (kw - 1) // 2)} with an odd composed kernel."
            )
        return pad

    def _skip_fits(self, start: int, end: int) -> bool:
        # The identity of a valid conv block is its centred delta, which needs an odd composed kernel.
        span = [sum(self.kernel_sizes[i][j] - 1 for i in range(start, end)) for j in (0, 1)]
        return self._dims[start] == self._dims[end] and span[0] % 2 == 0 and span[1] % 2 == 0

    @classmethod
    def from_module(
        cls, conv: nn.Conv2d, depth: int = 2, *, width: float = 1,
        kernel_sizes: Sequence[int | tuple[int, int]] | None = None, keep_function: bool = True,
        noise_std: float = 0.0, generator: torch.Generator | None = None, **options: Any,
    ) -> OverparamConv2d:
        """An expansion of ``conv`` (factors [k, 1, ..., 1] unless ``kernel_sizes`` is given); ``keep_function``
        makes the composed kernel equal the original one.

        With explicit ``kernel_sizes`` the first must be the original kernel size and the others odd; the padding
        grows by half their extent so that the function is unchanged. ``options`` are the constructor's other
        keywords (batch_norm, residual, mode, ...).
        """
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"from_module expects an nn.Conv2d, got {type(conv).__name__}.")
        reason = check.conv_unsupported(conv)
        if reason:
            raise ValueError(f"cannot expand this convolution exactly: {reason}.")
        k = check.pair("kernel_size", tuple(conv.kernel_size), 1)
        if kernel_sizes is None:
            sizes = [k] + [(1, 1)] * (check.positive_int("depth", depth) - 1)
        else:
            sizes = check.kernel_list(kernel_sizes, None)
            if sizes[0] != k or any(s[0] % 2 == 0 or s[1] % 2 == 0 for s in sizes[1:]):
                raise ValueError(
                    f"kernel_sizes must start with the original kernel size {k} and continue with odd sizes, "
                    f"got {sizes}."
                )
        extra = (sum(s[0] - 1 for s in sizes[1:]) // 2, sum(s[1] - 1 for s in sizes[1:]) // 2)
        pad = check.pair("padding", tuple(conv.padding), 0)  # numeric: conv_unsupported rejected strings
        return cls._expand(
            conv, conv.in_channels, conv.out_channels, sizes, stride=check.pair("stride", tuple(conv.stride), 1),
            padding=(pad[0] + extra[0], pad[1] + extra[1]), groups=conv.groups, width=width,
            keep_function=keep_function, noise_std=noise_std, generator=generator, **options,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_sizes={self.kernel_sizes}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, groups={self.groups}, "
            f"hidden_channels={self.hidden_channels}, "
            f"bias={self.has_bias}, batch_norm={self.batch_norm}, skips={self.skips}, mode={self.mode!r}"
        )

    def _prepare_input(self, x: Tensor, pad: bool) -> Tensor:
        # A skip from the very start needs the padded input itself, so pad once explicitly in that case.
        if pad and self.padding != (0, 0):
            ph, pw = self.padding
            return F.pad(x, (pw, pw, ph, ph))
        return x

    def _apply_factor(self, x: Tensor, i: int, padded: bool = False) -> Tensor:
        pad = self.padding if i == 0 and not padded else (0, 0)
        stride = self.stride if i == self.depth - 1 else (1, 1)
        return F.conv2d(x, self.weights[i], self.biases[i] if self.has_bias else None, stride, pad, 1, self.groups)

    def _apply_norm(self, x: Tensor, i: int) -> Tensor:
        if x.ndim == 3:  # unbatched input, which BatchNorm2d does not take
            return self.norms[i](x.unsqueeze(0)).squeeze(0)
        return self.norms[i](x)

    def _skip_value(self, saved: Tensor, start: int, end: int, out: Tensor) -> Tensor:
        # The identity of a valid block is the centre crop, subsampled when the block ends on the strided factor.
        off = [sum(self.kernel_sizes[i][j] - 1 for i in range(start, end)) // 2 for j in (0, 1)]
        sh, sw = self.stride if end == self.depth else (1, 1)
        ho, wo = out.shape[-2:]
        return saved[..., off[0] : off[0] + sh * (ho - 1) + 1 : sh, off[1] : off[1] + sw * (wo - 1) + 1 : sw]

    def _apply_composed(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.conv2d(x, weight, bias, self.stride, self.padding, 1, self.groups)

    def _cost_input(self, x: Tensor) -> tuple[int, tuple[int, int], tuple[int, int], tuple[int, int]]:
        return (x.shape[0] if x.ndim == 4 else 1), (x.shape[-2], x.shape[-1]), self.padding, self.stride

    def _plain(self, bias: bool, like: Tensor) -> nn.Conv2d:
        return nn.Conv2d(
            self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
            groups=self.groups, bias=bias, device=like.device, dtype=like.dtype,
        )

    def collapse(self) -> nn.Conv2d:
        """An ``nn.Conv2d`` with the composed kernel, the same padding and stride (batch norm folded)."""
        return super().collapse()  # type: ignore[return-value]
