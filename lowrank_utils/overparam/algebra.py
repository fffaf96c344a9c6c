"""The algebra of chained linear maps, as pure tensor functions (no modules, no state).

Every map is a *grouped kernel* ``[out, in // groups, kh, kw]`` of a valid (unpadded, stride 1) convolution; a
matrix ``[out, in]`` is the 1x1 case with one group (:func:`as_kernel`). Valid convolutions compose into one valid
convolution whose kernel is the full convolution of the kernels, so a chain of factors, with its biases, batch
norms (eval mode) and identity skips, reduces to a single kernel and bias. Padding and stride are the layer's
business: they apply once, outside the composed map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "as_kernel", "compose_bias", "compose_kernels", "compose_weight", "embed_centred", "fold_batch_norm",
    "grouped_identity", "propagate_bias", "right_inverse_fill",
]

Skips = Sequence[tuple[int, int]]


def as_kernel(weight: Tensor) -> Tensor:
    """A linear weight ``[out, in]`` as the 1x1 kernel ``[out, in, 1, 1]`` (a view); kernels pass through."""
    return weight[:, :, None, None] if weight.ndim == 2 else weight


def grouped_identity(channels: int, groups: int, like: Tensor) -> Tensor:
    """The identity map as a grouped 1x1 kernel ``[channels, channels // groups, 1, 1]`` (dtype/device of ``like``)."""
    eye = torch.zeros(channels, channels // groups, 1, 1, dtype=like.dtype, device=like.device)
    idx = torch.arange(channels, device=like.device)
    eye[idx, idx % (channels // groups), 0, 0] = 1
    return eye


def compose_kernels(first: Tensor, second: Tensor, groups: int) -> Tensor:
    """The kernel of ``second ∘ first`` for two valid, grouped 2-D convolutions (full convolution of the kernels)."""
    c1, c0g, ah, aw = first.shape
    c2, c1g, bh, bw = second.shape
    # A 1x1 factor is a channel matrix, so composing with it is a (batched per group) matrix product, far cheaper
    # than a convolution; this is the common [k, 1, 1, ...] case, and every composition of a linear layer.
    if bh == bw == 1:
        if groups == 1:  # a plain matrix product (mm), which autograd runs leaner than a one-batch bmm
            return (second.reshape(c2, c1g) @ first.reshape(c1, c0g * ah * aw)).reshape(c2, c0g, ah, aw)
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


def embed_centred(small: Tensor, like: Tensor) -> Tensor:
    """``small`` zero-padded to the spatial size of ``like``, centred (the identity of a valid block is its centre)."""
    dh = (like.shape[2] - small.shape[2]) // 2
    dw = (like.shape[3] - small.shape[3]) // 2
    return F.pad(small, (dw, dw, dh, dh)) if dh or dw else small


def propagate_bias(weight: Tensor, bias: Tensor, groups: int) -> Tensor:
    """What a constant per-channel input ``bias`` becomes after the valid convolution ``weight``: Σ_space K·b."""
    c2, c1g, kh, kw = weight.shape
    # A 1x1 kernel (every factor of a linear layer) is already its own channel sum: a view, not a reduction.
    summed = (weight.reshape(c2, c1g) if kh == kw == 1 else weight.sum(dim=(2, 3))).reshape(groups, c2 // groups, c1g)
    return (summed @ bias.reshape(groups, c1g, 1)).reshape(c2)


def fold_batch_norm(
    weight: Tensor, bias: Tensor | None, mean: Tensor, var: Tensor, eps: float,
    gamma: Tensor | None = None, beta: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """A factor followed by an eval-mode batch norm, as one factor: scale the output channels, shift the bias."""
    scale = torch.rsqrt(var + eps)
    shift = -mean * scale
    if gamma is not None and beta is not None:
        scale = scale * gamma
        shift = shift * gamma + beta
    weight = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    return weight, (shift if bias is None else bias * scale + shift)


def compose_weight(kernels: Sequence[Tensor], groups: int, skips: Skips = (), *, right_to_left: bool = False) -> Tensor:
    """The single kernel of a chain of factor kernels (first factor first), identity skips included.

    A skip ``(a, b)`` adds the map that reached factor ``a`` to the output of factor ``b - 1``. Without skips the
    product is associative, and ``right_to_left`` multiplies from the output side (cheaper when it is narrow).
    """
    if not skips:
        if right_to_left:
            acc = kernels[-1]
            for k in reversed(kernels[:-1]):
                acc = compose_kernels(k, acc, groups)
            return acc
        acc = kernels[0]
        for k in kernels[1:]:
            acc = compose_kernels(acc, k, groups)
        return acc
    # With skips the map is built left to right: a block adds the map that reached its start.
    starts = {a for a, _ in skips}
    saved: dict[int, Tensor] = {}
    out: Tensor | None = None
    for i, k in enumerate(kernels):
        if i in starts:
            saved[i] = grouped_identity(k.shape[1] * groups, groups, k) if out is None else out
        out = k if out is None else compose_kernels(out, k, groups)
        for a, e in skips:
            if e == i + 1:
                out = out + embed_centred(saved[a], out)
    assert out is not None
    return out


def compose_bias(kernels: Sequence[Tensor], biases: Sequence[Tensor | None], groups: int, skips: Skips = ()) -> (
    Tensor | None
):
    """The single bias of a chain of factors, or None when none adds one.

    It needs each factor's channel sums only, never the composed kernel, so reading a bias costs no composition.
    """
    starts = {a for a, _ in skips}
    saved: dict[int, Tensor | None] = {}
    acc: Tensor | None = None
    for i, (k, b) in enumerate(zip(kernels, biases, strict=True)):
        if i in starts:
            saved[i] = acc
        moved = None if acc is None else propagate_bias(k, acc, groups)
        acc = b if moved is None else (moved if b is None else moved + b)
        for a, e in skips:
            held = saved[a] if e == i + 1 else None
            if held is not None:
                acc = held if acc is None else acc + held
    return acc


def right_inverse_fill(
    weight: Tensor, shapes: Sequence[Sequence[int]], groups: int, *, noise_std: float = 0.0,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """Factor kernels of the given 4-D ``shapes`` whose composition is ``weight`` (float64, on the CPU).

    The first factor holds the weight (zero rows up to the hidden width), the later ones are identities (a
    centred delta for kernels larger than 1x1) and the last selects the first ``out`` rows. With ``noise_std > 0``
    the later factors' channel matrices get Gaussian noise and the first factor is solved (pseudo-inverse) so the
    product is still ``weight``: the noisy product has full row rank, so the solve is exact up to rounding.
    """
    if len(shapes) == 1:
        return [weight.to("cpu", torch.float64).reshape(shapes[0])]
    w64 = weight.to("cpu", torch.float64)
    out_c, _, kh, kw = w64.shape
    hid = shapes[0][0]
    og, hg = out_c // groups, hid // groups
    mats = []  # channel matrices of the factors after the first, per group: [g, rows/g, cols/g]
    for shape in shapes[1:]:
        rows = shape[0] // groups
        m = torch.eye(rows, hg, dtype=torch.float64).expand(groups, rows, hg).clone()
        if noise_std > 0:
            m += noise_std * torch.randn(m.shape, dtype=torch.float64, generator=generator)
        mats.append(m)
    target = w64.reshape(groups, og, -1)
    if noise_std > 0:
        prod = mats[0]
        for m in mats[1:]:
            prod = m @ prod
        first = torch.linalg.pinv(prod) @ target
    else:
        first = torch.zeros(groups, hg, w64.shape[1] * kh * kw, dtype=torch.float64)
        first[:, :og] = target
    out = [first.reshape(shapes[0])]
    for shape, m in zip(shapes[1:], mats, strict=True):
        kernel = torch.zeros(tuple(shape), dtype=torch.float64)
        kernel[:, :, (shape[2] - 1) // 2, (shape[3] - 1) // 2] = m.reshape(shape[0], shape[1])
        out.append(kernel)
    return out
