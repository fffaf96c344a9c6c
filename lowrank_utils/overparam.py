"""Linear over-parameterization: layers that are a product of several linear maps, and tools to expand a model
into them and collapse it back.

An over-parameterized layer computes the same *kind* of function as ``nn.Linear`` / ``nn.Conv2d`` (one affine
map), but through ``depth`` factors with no non-linearity between them. This changes the optimisation (the
paper's low-rank simplicity bias) without changing what the layer can express, so every layer can be collapsed
into a single standard layer with identical outputs.

Entry points: :class:`OverparamLinear` and :class:`OverparamConv2d` (fresh layers, or ``from_module`` to expand an
existing one, optionally keeping its function), :func:`overparameterize` (a whole model) and :func:`collapse` (back
to plain ``nn.Linear`` / ``nn.Conv2d``). Each layer's ``end_to_end_weight()`` / ``end_to_end_bias()`` (also the
read-only ``.weight`` / ``.bias``) give the single map it computes, e.g. to measure its effective rank.

Conventions, shared by every function here:

* **Factors.** Widths run ``in -> hidden -> ... -> hidden -> out``; ``hidden = round(width * out)`` unless an
  explicit hidden width is given. Grouped convolutions keep the same ``groups`` in every factor.
* **Padding and stride.** All zero padding belongs to the first factor and the stride to the last; the factors
  in between are "valid" (unpadded, stride 1) convolutions. Valid convolutions compose into one valid
  convolution whose kernel is the full convolution of the kernels, of size ``Σkᵢ − d + 1``, so the whole layer
  equals one ``nn.Conv2d`` with that kernel, the original padding and the original stride.
* **Padding rule.** Each padding value must lie in ``[0, K − 1]`` where ``K`` is the composed kernel size in
  that dimension (beyond ``K − 1`` output rows would see only padding); ``padding="same"`` needs an odd ``K``
  and stride 1, because a centred kernel is what keeps the size.
* **Skips** (``residual=True``): an identity skip around a block of factors adds the block's input, centred
  (the valid convolutions shrink the map, so "identity" means the centre crop, i.e. a centred delta kernel) and
  subsampled by the stride when the block ends on the last factor. A block gets a skip only when its input and
  output channels match and its composed kernel is odd in both dimensions; ``self.skips`` lists the blocks.
* **Batch norm** (``batch_norm=True``) sits after every factor but the last, before any skip is added (as in a
  ResNet block). In eval mode it is a per-channel affine map and folds exactly into the composed weight.
* **Init.** Every factor is He-normal with ``fan_in`` mode: ``N(0, gain²/fan_in)``, gain 1 for all factors but
  the last and ``sqrt(2 / (1 + negative_slope²))`` for the last. Each gain-1 factor preserves the per-unit
  variance, so the product is scaled like one He-initialised layer. Biases start at zero. Skips add identity
  paths on top, so a layer with skips starts larger than a plain He layer.
* **Fast path.** A layer is a re-parameterisation of one weight, so ``forward`` may compose the end-to-end
  weight and apply it once (same function and gradients). ``mode="auto"`` picks the form with fewer estimated
  FLOPs for the input's shape; batch norm in training mode needs batch statistics and forces the chained form.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["OverparamLayer", "OverparamLinear", "OverparamConv2d", "overparameterize", "collapse"]

MODES: tuple[str, ...] = ("auto", "chained", "composed")
LAYER_TYPES: tuple[str, ...] = ("linear", "conv")

_Pair = tuple[int, int]


def _check_positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


def _pair(name: str, value: object, minimum: int) -> _Pair:
    """An int or a pair of ints, each >= minimum, as a pair."""
    items = (value, value) if isinstance(value, int) else value
    if (
        not isinstance(items, (tuple, list))
        or len(items) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in items)
    ):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}.")
    return int(items[0]), int(items[1])


def _hidden_width(out: int, width: float, hidden: int | None, what: str) -> int:
    if hidden is not None:
        if width != 1:
            raise ValueError(f"give either width (a factor) or {what} (a count), not both.")
        return _check_positive_int(what, hidden)
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0 or math.isinf(width):
        raise ValueError(f"width must be a positive number (the factor hidden = width * out), got {width!r}.")
    return max(1, int(round(width * out)))


def _grouped_identity(channels: int, groups: int, like: Tensor) -> Tensor:
    """The identity map as a grouped 1x1 kernel of shape [channels, channels // groups, 1, 1]."""
    eye = torch.zeros(channels, channels // groups, 1, 1, dtype=like.dtype, device=like.device)
    idx = torch.arange(channels, device=like.device)
    eye[idx, idx % (channels // groups), 0, 0] = 1
    return eye


def _compose_kernels(first: Tensor, second: Tensor, groups: int) -> Tensor:
    """The kernel of ``second ∘ first`` for two valid, grouped 2-D convolutions (full convolution of the kernels)."""
    c1, c0g, ah, aw = first.shape
    c2, c1g, bh, bw = second.shape
    # A 1x1 factor is a channel matrix, so composing with it is a (batched per group) matrix product, far cheaper
    # than a convolution; this is the common [k, 1, 1, ...] case.
    if bh == bw == 1:
        out = second.reshape(groups, c2 // groups, c1g) @ first.reshape(groups, c1 // groups, c0g * ah * aw)
        return out.reshape(c2, c0g, ah, aw)
    if ah == aw == 1:
        out = torch.einsum(
            "gpqs,gqr->gprs",
            second.reshape(groups, c2 // groups, c1g, bh * bw),
            first.reshape(groups, c1 // groups, c0g),
        )
        return out.reshape(c2, c0g, bh, bw)
    # General case: C[w] = Σ_{u+v=w} B[v] A[u]. Treat A as a batch of c0/g "images" with c1 channels and
    # correlate with the flipped B, padded so every overlap counts.
    out = F.conv2d(first.transpose(0, 1), second.flip((-2, -1)), padding=(bh - 1, bw - 1), groups=groups)
    return out.transpose(0, 1)


def _kernel_compose_cost(first: Sequence[int], second: Sequence[int], groups: int) -> float:
    """Multiply-adds of :func:`_compose_kernels` for kernels of these shapes."""
    c1, c0g, ah, aw = first
    c2, c1g, bh, bw = second
    out_sp = (ah + bh - 1) * (aw + bw - 1)
    if bh == bw == 1 or ah == aw == 1:
        return c2 * c0g * c1g * out_sp
    return c0g * c2 * c1g * out_sp * bh * bw


class OverparamLayer(nn.Module):
    """Shared machinery of :class:`OverparamLinear` and :class:`OverparamConv2d` (not used directly)."""

    # Filled in by subclasses.
    depth: int
    groups: int
    skips: list[tuple[int, int]]
    _dims: list[int]

    def _build(
        self,
        shapes: list[tuple[int, ...]],
        bias: bool,
        batch_norm: bool,
        norm_cls: type[nn.Module],
        mode: str,
        negative_slope: float,
        factory: dict,
    ) -> None:
        """Create the factor parameters (``shapes[i]`` is factor i's weight shape) and the optional norms."""
        if not isinstance(negative_slope, (int, float)) or isinstance(negative_slope, bool):
            raise ValueError(f"negative_slope must be a number, got {negative_slope!r}.")
        self.negative_slope = float(negative_slope)
        self.mode = mode
        self.weights = nn.ParameterList([nn.Parameter(torch.empty(s, **factory)) for s in shapes])
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.empty(s[0], **factory)) for s in shapes] if bias else []
        )
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

    def _bias(self, i: int) -> Tensor | None:
        return self.biases[i] if self.has_bias else None

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

    # --------------------------------------------------------------------------------------------- init
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
        for norm in self.norms:
            norm.reset_parameters()

    # ------------------------------------------------------------------------------------ kind-specific ops
    def _apply_factor(self, x: Tensor, i: int, padded: bool = False) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply_norm(self, x: Tensor, i: int) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _skip_value(self, saved: Tensor, start: int, end: int, out: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def _compose(self, first: Tensor, second: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _propagate_bias(self, weight: Tensor, bias: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _identity(self, channels: int, like: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _embed(self, small: Tensor, big: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply_composed(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def _costs(self, x: Tensor) -> tuple[float, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _chain_costs(self) -> tuple[float, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------- forward
    def _norms_training(self) -> bool:
        return any(n.training or not n.track_running_stats for n in self.norms)

    def uses_composed(self, x: Tensor) -> bool:
        """Whether ``forward(x)`` would apply the composed weight (True) or the factors one by one (False)."""
        if self.batch_norm and self._norms_training():
            return False  # batch statistics need the intermediate activations
        if self.mode == "chained" or self.depth == 1:
            return False
        if self.mode == "composed":
            return True
        chained, composed = self._costs(x)
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
            return self._apply_composed(x, *self._compose_all())
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

    def _prepare_input(self, x: Tensor, pad: bool) -> Tensor:
        return x

    # -------------------------------------------------------------------------------------- composition
    def _folded_factors(self) -> list[tuple[Tensor, Tensor | None]]:
        """Each factor's (weight, bias) with the following batch norm folded in (eval-mode statistics)."""
        out: list[tuple[Tensor, Tensor | None]] = []
        for i, w in enumerate(self.weights):
            b = self._bias(i)
            if self.batch_norm and i < self.depth - 1:
                norm = self.norms[i]
                scale = torch.rsqrt(norm.running_var + norm.eps)
                shift = -norm.running_mean * scale
                if norm.affine:
                    scale = scale * norm.weight
                    shift = shift * norm.weight + norm.bias
                w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
                b = shift if b is None else b * scale + shift
            out.append((w, b))
        return out

    def end_to_end_weight(self) -> Tensor:
        """The single weight the layer computes (differentiable; batch norm folded with its running statistics)."""
        return self._compose_all()[0]

    def end_to_end_bias(self) -> Tensor | None:
        """The single bias the layer computes, or None when no factor or norm adds one."""
        return self._compose_all()[1]

    def collapsed_weight(self) -> tuple[Tensor, Tensor | None]:
        """The end-to-end (weight, bias), detached: what :meth:`collapse` puts into the plain layer."""
        w, b = self._compose_all()
        return w.detach(), (None if b is None else b.detach())

    @property
    def weight(self) -> Tensor:
        """The end-to-end weight (read-only view for code written against ``nn.Linear`` / ``nn.Conv2d``)."""
        return self.end_to_end_weight()

    @property
    def bias(self) -> Tensor | None:
        """The end-to-end bias, or None (read-only)."""
        return self.end_to_end_bias()

    def _compose_all(self) -> tuple[Tensor, Tensor | None]:
        factors = self._folded_factors()
        if not self.skips:
            bias: Tensor | None = None
            for w, b in factors:
                bias = self._propagate_bias(w, bias) if bias is not None else None
                bias = b if bias is None else (bias if b is None else bias + b)
            left, right = self._chain_costs()
            if right < left:  # ((W_d W_{d-1}) ...) W_1 is cheaper when the output side is narrow
                acc = factors[-1][0]
                for w, _ in reversed(factors[:-1]):
                    acc = self._compose(w, acc)
                return acc, bias
            acc = factors[0][0]
            for w, _ in factors[1:]:
                acc = self._compose(acc, w)
            return acc, bias
        # With skips the map must be built left to right: a block adds the map that reached its start.
        starts = {a for a, _ in self.skips}
        saved: dict[int, tuple[Tensor, Tensor | None]] = {}
        acc_w: Tensor | None = None
        acc_b: Tensor | None = None
        for i, (w, b) in enumerate(factors):
            if i in starts:
                saved[i] = (self._identity(self._dims[0], w) if acc_w is None else acc_w, acc_b)
            if acc_w is None:
                acc_w, acc_b = w, b
            else:
                new_b = self._propagate_bias(w, acc_b) if acc_b is not None else None
                acc_b = b if new_b is None else (new_b if b is None else new_b + b)
                acc_w = self._compose(acc_w, w)
            for a, e in self.skips:
                if e == i + 1:
                    sw, sb = saved[a]
                    acc_w = acc_w + self._embed(sw, acc_w)
                    if sb is not None:
                        acc_b = sb if acc_b is None else acc_b + sb
        assert acc_w is not None
        return acc_w, acc_b

    # -------------------------------------------------------------------------------------- collapse
    def collapse(self) -> nn.Module:  # pragma: no cover - abstract
        """The equivalent standard layer."""
        raise NotImplementedError

    def _fill_from(
        self, weight: Tensor, bias: Tensor | None, noise_std: float, generator: torch.Generator | None, training: bool
    ) -> None:
        """Set the factors so that their product is ``weight`` (grouped 4-D form) and the composed bias is ``bias``.

        The first factor holds the weight (padded with zero rows up to the hidden width), the middle factors are
        identities (a centred delta for kernels larger than 1x1) and the last selects the first ``out`` rows. With
        ``noise_std > 0`` the identities' channel matrices get Gaussian noise and the first factor is solved so
        that the product is still ``weight`` (exact up to rounding in the parameters' dtype). Batch norms are set
        to the identity of eval mode, so a module in training mode cannot keep its function with them.
        """
        if self.skips:
            raise ValueError("keep_function cannot be combined with residual skips: the skips add identity paths.")
        if self.batch_norm and training:
            raise ValueError(
                "keep_function with batch_norm is exact only in eval mode (training-mode batch norm normalises with "
                "batch statistics), but the module is in training mode; call .eval() on it (or the model) first."
            )
        g = self.groups
        out_c, _, kh, kw = weight.shape
        hid = self._dims[1] if self.depth > 1 else out_c
        if hid < out_c:
            raise ValueError(
                f"keep_function needs hidden width >= out ({out_c}) to hold the original weight, got {hid}; "
                "use width >= 1."
            )
        if not isinstance(noise_std, (int, float)) or noise_std < 0:
            raise ValueError(f"noise_std must be a number >= 0, got {noise_std!r}.")
        params = list(self.weights)
        with torch.no_grad():
            if self.depth == 1:
                params[0].copy_(weight.reshape(params[0].shape))
            else:
                w64 = weight.to("cpu", torch.float64)  # solve on the CPU in float64, whatever the device
                og, hg = out_c // g, hid // g
                # Channel matrices of the factors after the first, per group: [g, rows/g, cols/g].
                mats = []
                for i in range(1, self.depth):
                    rows = self._dims[i + 1] // g
                    m = torch.eye(rows, hg, dtype=torch.float64).expand(g, rows, hg).clone()
                    if noise_std > 0:
                        m += noise_std * torch.randn(m.shape, dtype=torch.float64, generator=generator)
                    mats.append(m)
                first = torch.zeros(g, hg, w64.shape[1] * kh * kw, dtype=torch.float64)
                target = w64.reshape(g, og, -1)
                if noise_std > 0:
                    prod = mats[0]
                    for m in mats[1:]:
                        prod = m @ prod
                    first = torch.linalg.pinv(prod) @ target  # prod has full row rank, so prod @ first == target
                else:
                    first[:, :og] = target
                for i in range(1, self.depth):
                    p = params[i]
                    kernel = torch.zeros(p.shape, dtype=torch.float64)
                    m = mats[i - 1].reshape(p.shape[0], p.shape[1])
                    if kernel.ndim == 2:
                        kernel.copy_(m)
                    else:
                        kernel[:, :, (p.shape[2] - 1) // 2, (p.shape[3] - 1) // 2] = m
                    p.copy_(kernel.to(p.dtype))
                params[0].copy_(first.reshape(params[0].shape).to(params[0].dtype))
            for b in self.biases:
                b.zero_()
            if bias is not None:
                self.biases[-1].copy_(bias)
            for norm in self.norms:  # identity in eval mode: (x - 0) / sqrt(1 + eps) * sqrt(1 + eps)
                norm.running_mean.zero_()
                norm.running_var.fill_(1.0)
                if norm.affine:
                    norm.weight.fill_(math.sqrt(1.0 + norm.eps))
                    norm.bias.zero_()


class OverparamLinear(OverparamLayer):
    """A linear layer computed as a product of ``depth`` linear maps (optionally with batch norm and skips).

    Equivalent to ``nn.Linear(in_features, out_features, bias)``; see the module docstring for the conventions
    (widths, init, skips, batch norm, fast path).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        width: float = 1,
        depth: int = 2,
        bias: bool = True,
        batch_norm: bool = False,
        residual: bool = False,
        residual_intervals: int | Sequence[int] = 2,
        *,
        hidden_features: int | None = None,
        negative_slope: float = 0.0,
        mode: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = _check_positive_int("in_features", in_features)
        self.out_features = _check_positive_int("out_features", out_features)
        self.depth = _check_positive_int("depth", depth)
        self.width = width
        self.hidden_features = _hidden_width(out_features, width, hidden_features, "hidden_features")
        self.groups = 1
        self._dims = [in_features] + [self.hidden_features] * (depth - 1) + [out_features]
        self.skips = self._place_skips(residual, residual_intervals)
        shapes = [(self._dims[i + 1], self._dims[i]) for i in range(depth)]
        self._build(shapes, bias, batch_norm, nn.BatchNorm1d, mode, negative_slope, {"device": device, "dtype": dtype})

    @classmethod
    def from_module(
        cls,
        linear: nn.Linear,
        depth: int = 2,
        width: float = 1,
        *,
        keep_function: bool = True,
        noise_std: float = 0.0,
        generator: torch.Generator | None = None,
        **kwargs,
    ) -> OverparamLinear:
        """An expansion of ``linear`` with the same shapes; ``keep_function`` makes the product equal its weight."""
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"from_module expects an nn.Linear, got {type(linear).__name__}.")
        w = linear.weight
        layer = cls(
            linear.in_features, linear.out_features, width, depth, linear.bias is not None,
            device=w.device, dtype=w.dtype, **kwargs,
        )
        if keep_function:
            bias = None if linear.bias is None else linear.bias.detach()
            layer._fill_from(w.detach()[:, :, None, None], bias, noise_std, generator, linear.training)
        layer.train(linear.training)
        return layer

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"hidden_features={self.hidden_features}, depth={self.depth}, bias={self.has_bias}, "
            f"batch_norm={self.batch_norm}, skips={self.skips}, mode={self.mode!r}"
        )

    def _apply_factor(self, x: Tensor, i: int, padded: bool = False) -> Tensor:
        return F.linear(x, self.weights[i], self._bias(i))

    def _apply_norm(self, x: Tensor, i: int) -> Tensor:
        # BatchNorm1d wants channels in dim 1; a linear layer's features are last, so flatten the rest.
        return self.norms[i](x.reshape(-1, x.shape[-1])).reshape(x.shape)

    def _skip_value(self, saved: Tensor, start: int, end: int, out: Tensor) -> Tensor:
        return saved

    def _compose(self, first: Tensor, second: Tensor) -> Tensor:
        return second @ first

    def _propagate_bias(self, weight: Tensor, bias: Tensor) -> Tensor:
        return weight @ bias

    def _identity(self, channels: int, like: Tensor) -> Tensor:
        return torch.eye(channels, dtype=like.dtype, device=like.device)

    def _embed(self, small: Tensor, big: Tensor) -> Tensor:
        return small

    def _apply_composed(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.linear(x, weight, bias)

    def _chain_costs(self) -> tuple[float, float]:
        d, dims = self.depth, self._dims
        left = sum(dims[i + 1] * dims[i] * dims[0] for i in range(1, d))
        right = sum(dims[d] * dims[i + 1] * dims[i] for i in range(0, d - 1))
        return float(left), float(right)

    def _costs(self, x: Tensor) -> tuple[float, float]:
        n = x.numel() // self.in_features
        dims = self._dims
        chained = n * sum(dims[i] * dims[i + 1] for i in range(self.depth))
        left, right = self._chain_costs()
        composed = (min(left, right) if not self.skips else left) + n * dims[0] * dims[-1]
        return float(chained), float(composed)

    def collapse(self) -> nn.Linear:
        """An ``nn.Linear`` with the end-to-end weight and bias (batch norm folded with running statistics)."""
        w, b = self.collapsed_weight()
        layer = nn.Linear(self.in_features, self.out_features, bias=b is not None, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            layer.weight.copy_(w)
            if b is not None:
                layer.bias.copy_(b)
        layer.train(self.training)
        return layer


def _kernel_list(kernel_sizes: int | Sequence, depth: int | None) -> list[_Pair]:
    if isinstance(kernel_sizes, int) and not isinstance(kernel_sizes, bool):
        d = 2 if depth is None else _check_positive_int("depth", depth)
        return [_pair("kernel_sizes", kernel_sizes, 1)] + [(1, 1)] * (d - 1)
    if not isinstance(kernel_sizes, (list, tuple)) or not kernel_sizes:
        raise ValueError(
            f"kernel_sizes must be an int (k x k then 1x1s) or a non-empty list of per-factor sizes (int or "
            f"(kh, kw)), got {kernel_sizes!r}."
        )
    sizes = [_pair(f"kernel_sizes[{i}]", k, 1) for i, k in enumerate(kernel_sizes)]
    if depth is not None and _check_positive_int("depth", depth) != len(sizes):
        raise ValueError(
            f"depth={depth} disagrees with the {len(sizes)} kernel sizes {list(kernel_sizes)}; "
            "omit depth when you give a list (its length is the depth)."
        )
    return sizes


class OverparamConv2d(OverparamLayer):
    """A 2-D convolution computed as a chain of ``depth`` convolutions (optionally with batch norm and skips).

    Equivalent to ``nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias)``
    with ``kernel_size = Σkᵢ − d + 1``. ``kernel_sizes`` is an int k (k x k, then 1x1 factors up to ``depth``;
    depth defaults to 2) or a list with one size per factor, each an int or a pair (kh, kw); a list sets the
    depth. See the module docstring for padding, stride, skips, batch norm and init.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: int | Sequence[int | tuple[int, int]] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        width: float = 1,
        depth: int | None = None,
        bias: bool = True,
        batch_norm: bool = False,
        residual: bool = False,
        residual_intervals: int | Sequence[int] = 2,
        *,
        groups: int = 1,
        hidden_channels: int | None = None,
        negative_slope: float = 0.0,
        mode: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = _check_positive_int("in_channels", in_channels)
        self.out_channels = _check_positive_int("out_channels", out_channels)
        self.kernel_sizes = _kernel_list(kernel_sizes, depth)
        self.depth = len(self.kernel_sizes)
        self.width = width
        self.hidden_channels = _hidden_width(out_channels, width, hidden_channels, "hidden_channels")
        self.groups = _check_positive_int("groups", groups)
        for name, c in (("in_channels", in_channels), ("out_channels", out_channels)) + (
            (("hidden_channels", self.hidden_channels),) if self.depth > 1 else ()
        ):
            if c % groups:
                raise ValueError(
                    f"groups={groups} must divide {name}={c} (every factor is grouped the same way); "
                    "pick a width or hidden_channels that is a multiple of groups."
                )
        self.kernel_size: _Pair = (
            sum(k[0] for k in self.kernel_sizes) - self.depth + 1,
            sum(k[1] for k in self.kernel_sizes) - self.depth + 1,
        )
        self.stride = _pair("stride", stride, 1)
        self.padding = self._resolve_padding(padding)
        self._dims = [in_channels] + [self.hidden_channels] * (self.depth - 1) + [out_channels]
        self.skips = self._place_skips(residual, residual_intervals)
        shapes = [
            (self._dims[i + 1], self._dims[i] // groups, *self.kernel_sizes[i]) for i in range(self.depth)
        ]
        self._build(shapes, bias, batch_norm, nn.BatchNorm2d, mode, negative_slope, {"device": device, "dtype": dtype})

    def _resolve_padding(self, padding: int | tuple[int, int] | str) -> _Pair:
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
        pad = _pair("padding", padding, 0)
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
        cls,
        conv: nn.Conv2d,
        depth: int = 2,
        width: float = 1,
        *,
        kernel_sizes: Sequence[int | tuple[int, int]] | None = None,
        keep_function: bool = True,
        noise_std: float = 0.0,
        generator: torch.Generator | None = None,
        **kwargs,
    ) -> OverparamConv2d:
        """An expansion of ``conv`` (factors [k, 1, ..., 1] unless ``kernel_sizes`` is given); ``keep_function``
        makes the composed kernel equal the original one.

        With explicit ``kernel_sizes`` the first must be the original kernel size and the others odd; the padding
        grows by half their extent so that the function is unchanged.
        """
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"from_module expects an nn.Conv2d, got {type(conv).__name__}.")
        reason = _conv_unsupported(conv)
        if reason:
            raise ValueError(f"cannot expand this convolution exactly: {reason}.")
        k = tuple(conv.kernel_size)
        if kernel_sizes is None:
            sizes: list[_Pair] = [k] + [(1, 1)] * (_check_positive_int("depth", depth) - 1)  # type: ignore[list-item]
        else:
            sizes = _kernel_list(kernel_sizes, None)
            if sizes[0] != k or any(s[0] % 2 == 0 or s[1] % 2 == 0 for s in sizes[1:]):
                raise ValueError(
                    f"kernel_sizes must start with the original kernel size {k} and continue with odd sizes, "
                    f"got {sizes}."
                )
        extra = (sum(s[0] - 1 for s in sizes[1:]) // 2, sum(s[1] - 1 for s in sizes[1:]) // 2)
        padding = (conv.padding[0] + extra[0], conv.padding[1] + extra[1])
        w = conv.weight
        layer = cls(
            conv.in_channels, conv.out_channels, sizes, conv.stride, padding, width, None, conv.bias is not None,
            groups=conv.groups, device=w.device, dtype=w.dtype, **kwargs,
        )
        if keep_function:
            bias = None if conv.bias is None else conv.bias.detach()
            layer._fill_from(w.detach(), bias, noise_std, generator, conv.training)
        layer.train(conv.training)
        return layer

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
        return F.conv2d(x, self.weights[i], self._bias(i), stride, pad, 1, self.groups)

    def _apply_norm(self, x: Tensor, i: int) -> Tensor:
        if x.ndim == 3:  # unbatched input, which BatchNorm2d does not take
            return self.norms[i](x.unsqueeze(0)).squeeze(0)
        return self.norms[i](x)

    def _skip_value(self, saved: Tensor, start: int, end: int, out: Tensor) -> Tensor:
        off = [sum(self.kernel_sizes[i][j] - 1 for i in range(start, end)) // 2 for j in (0, 1)]
        sh, sw = self.stride if end == self.depth else (1, 1)
        ho, wo = out.shape[-2:]
        return saved[..., off[0] : off[0] + sh * (ho - 1) + 1 : sh, off[1] : off[1] + sw * (wo - 1) + 1 : sw]

    def _compose(self, first: Tensor, second: Tensor) -> Tensor:
        return _compose_kernels(first, second, self.groups)

    def _propagate_bias(self, weight: Tensor, bias: Tensor) -> Tensor:
        # An inner bias is spatially constant and the later convs are unpadded, so each output sees Σ_space K·b.
        g = self.groups
        c2, c1g = weight.shape[:2]
        summed = weight.sum(dim=(2, 3)).reshape(g, c2 // g, c1g)
        return (summed @ bias.reshape(g, c1g, 1)).reshape(c2)

    def _identity(self, channels: int, like: Tensor) -> Tensor:
        return _grouped_identity(channels, self.groups, like)

    def _embed(self, small: Tensor, big: Tensor) -> Tensor:
        dh = (big.shape[2] - small.shape[2]) // 2
        dw = (big.shape[3] - small.shape[3]) // 2
        return F.pad(small, (dw, dw, dh, dh))

    def _apply_composed(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.conv2d(x, weight, bias, self.stride, self.padding, 1, self.groups)

    def _kernel_shapes(self) -> list[tuple[int, int, int, int]]:
        return [tuple(w.shape) for w in self.weights]  # type: ignore[misc]

    def _chain_costs(self) -> tuple[float, float]:
        shapes, g = self._kernel_shapes(), self.groups
        left, acc = 0.0, shapes[0]
        for s in shapes[1:]:
            left += _kernel_compose_cost(acc, s, g)
            acc = (s[0], acc[1], acc[2] + s[2] - 1, acc[3] + s[3] - 1)
        right, acc = 0.0, shapes[-1]
        for s in reversed(shapes[:-1]):
            right += _kernel_compose_cost(s, acc, g)
            acc = (acc[0], s[1], acc[2] + s[2] - 1, acc[3] + s[3] - 1)
        return left, right

    def _costs(self, x: Tensor) -> tuple[float, float]:
        n = x.shape[0] if x.ndim == 4 else 1
        h, w = x.shape[-2] + 2 * self.padding[0], x.shape[-1] + 2 * self.padding[1]
        chained = 0.0
        for i, (c_out, c_in_g, kh, kw) in enumerate(self._kernel_shapes()):
            sh, sw = self.stride if i == self.depth - 1 else (1, 1)
            h, w = (h - kh) // sh + 1, (w - kw) // sw + 1
            chained += n * max(h, 0) * max(w, 0) * c_out * c_in_g * kh * kw
        left, right = self._chain_costs()
        kh, kw = self.kernel_size
        composed = (min(left, right) if not self.skips else left) + n * max(h, 0) * max(w, 0) * self.out_channels * (
            self.in_channels // self.groups
        ) * kh * kw
        return chained, composed

    def collapse(self) -> nn.Conv2d:
        """An ``nn.Conv2d`` with the composed kernel, the same padding and stride (batch norm folded)."""
        w, b = self.collapsed_weight()
        conv = nn.Conv2d(
            self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
            groups=self.groups, bias=b is not None, device=w.device, dtype=w.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(w)
            if b is not None:
                conv.bias.copy_(b)
        conv.train(self.training)
        return conv


# ------------------------------------------------------------------------------------------ model-level tools
def _conv_unsupported(conv: nn.Conv2d) -> str:
    """Why an nn.Conv2d cannot be expanded exactly, or '' if it can."""
    if tuple(conv.dilation) != (1, 1):
        return f"dilation {tuple(conv.dilation)} != 1 (a dilated kernel does not factor into dense ones)"
    if conv.padding_mode != "zeros":
        return f"padding_mode={conv.padding_mode!r} (only zero padding composes exactly)"
    if isinstance(conv.padding, str):
        return f"padding={conv.padding!r} (give numeric padding)"
    return ""


def _why_unexpandable(module: nn.Module, kind: str, shared: set[int]) -> str:
    """Why a module of an expandable family must stay as it is, or '' if it can be expanded."""
    exact = nn.Linear if kind == "linear" else nn.Conv2d
    if type(module) is not exact:
        return f"{type(module).__name__} is not a plain nn.{exact.__name__} (only exactly that type is expanded)"
    if any(id(p) in shared for p in module.parameters(recurse=False)):
        return "its weight is shared with another module (expanding would untie it)"
    if torch.nn.utils.parametrize.is_parametrized(module):
        return "it has a parametrization (e.g. weight norm), which reads .weight directly"
    if module._forward_hooks or module._forward_pre_hooks:
        return "it has forward hooks that may read .weight"
    if kind == "conv":
        return _conv_unsupported(module)  # type: ignore[arg-type]
    return ""


def _family(module: nn.Module) -> str | None:
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    return None


def overparameterize(
    model: nn.Module,
    depth: int = 2,
    width: float = 1,
    *,
    layer_types: Iterable[str] = LAYER_TYPES,
    skip: Iterable[str] = (),
    keep_function: bool = False,
    noise_std: float = 0.0,
    batch_norm: bool = False,
    residual: bool = False,
    residual_intervals: int | Sequence[int] = 2,
    negative_slope: float = 0.0,
    mode: str = "auto",
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> nn.Module:
    """Replace every ``nn.Linear`` / ``nn.Conv2d`` of ``model`` by an over-parameterized layer of ``depth`` factors.

    A conv with a k x k kernel becomes factors [k, 1, ..., 1] with the same padding, stride, groups and bias, so
    the collapsed model has the original's shapes and parameter count. ``layer_types`` picks the families
    (``"linear"``, ``"conv"``); ``skip`` names modules (as in ``named_modules``) left alone with everything inside
    them. ``keep_function`` makes each expansion compute the original layer's function (first factor = weight,
    then identities, optionally perturbed by ``noise_std`` and compensated exactly); otherwise factors are freshly
    initialised. Modules that cannot be expanded exactly (dilated or non-zero-padded convs, other conv types,
    subclasses, shared or parametrized weights, impossible skip/width requests) stay unchanged with a warning
    naming them. Returns the new model (a copy unless ``inplace``).
    """
    _check_positive_int("depth", depth)
    _hidden_width(1, width, None, "hidden")  # validates width
    types = set(layer_types)
    if not types or not types <= set(LAYER_TYPES):
        raise ValueError(f"layer_types must be a non-empty subset of {LAYER_TYPES}, got {sorted(types)}.")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}.")
    if batch_norm and depth < 2:
        raise ValueError("batch_norm=True needs depth >= 2: the norms sit between factors.")
    if keep_function and residual:
        raise ValueError("keep_function cannot be combined with residual skips: the skips add identity paths.")
    if not isinstance(noise_std, (int, float)) or noise_std < 0:
        raise ValueError(f"noise_std must be a number >= 0, got {noise_std!r}.")
    skip = [skip] if isinstance(skip, str) else list(skip)
    names = dict(model.named_modules())
    unknown = [s for s in skip if s not in names]
    if unknown:
        raise ValueError(f"skip names {unknown} are not modules of the model; use names from model.named_modules().")
    if not inplace:
        model = copy.deepcopy(model)

    counts: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        counts[id(p)] = counts.get(id(p), 0) + 1
    shared = {pid for pid, c in counts.items() if c > 1}
    options = dict(
        batch_norm=batch_norm, residual=residual, residual_intervals=residual_intervals,
        negative_slope=negative_slope, mode=mode,
    )

    def convert(name: str, module: nn.Module) -> nn.Module | None:
        kind = _family(module)
        if kind is None or kind not in types:
            return None
        reason = _why_unexpandable(module, kind, shared)
        if not reason:
            cls = OverparamLinear if kind == "linear" else OverparamConv2d
            try:
                return cls.from_module(
                    module, depth, width, keep_function=keep_function, noise_std=noise_std, generator=generator,
                    **options,
                )
            except ValueError as err:  # a per-module impossibility (groups vs width, no skip fits, ...)
                reason = str(err)
        label = name or "the model"
        warnings.warn(f"overparameterize: left {label!r} ({type(module).__name__}) unchanged: {reason.rstrip('.')}.")
        return None

    def walk(parent: nn.Module, prefix: str) -> None:
        for child_name, child in list(parent.named_children()):
            full = f"{prefix}.{child_name}" if prefix else child_name
            if full in skip or isinstance(child, OverparamLayer):
                continue
            new = convert(full, child)
            if new is not None:
                setattr(parent, child_name, new)
            else:
                walk(child, full)

    if "" in skip or isinstance(model, OverparamLayer):
        return model
    root = convert("", model)
    if root is not None:
        return root
    walk(model, "")
    return model


def collapse(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace every over-parameterized layer by the equivalent ``nn.Linear`` / ``nn.Conv2d`` (same outputs;
    batch norm inside an expansion is folded with its running statistics, i.e. eval-mode behaviour)."""
    if isinstance(model, OverparamLayer):
        return model.collapse()
    if not inplace:
        model = copy.deepcopy(model)

    def walk(parent: nn.Module) -> None:
        for child_name, child in list(parent.named_children()):
            if isinstance(child, OverparamLayer):
                setattr(parent, child_name, child.collapse())
            else:
                walk(child)

    walk(model)
    return model
