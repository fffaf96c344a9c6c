"""Exercise checkers for chapter 7 (linear over-parameterization): collapse two linear maps by hand, and compose two
convolution kernels. Both compare the student's answer with what :mod:`lowrank_utils.overparam` computes.

Same conventions as :mod:`lowrank_utils.checks`: a checker prints PASS or FAIL with a hint and returns a
:class:`~lowrank_utils.checks.Verdict`; an answer that still raises ``NotImplementedError`` is reported and
re-raised, so an unfinished exercise stops its cell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lowrank_utils.checks import Verdict, call_answer, report, tensor_answer
from lowrank_utils.overparam import OverparamConv2d, OverparamLinear

_DT = torch.float64


def _as_tensor(value: Any) -> Tensor | None:
    try:
        return torch.as_tensor(value, dtype=_DT)
    except Exception:
        return None


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-9, rtol=1e-9)


def _linear_reference(W1: Tensor, b1: Tensor, W2: Tensor, b2: Tensor) -> tuple[Tensor, Tensor]:
    """The package's end-to-end weight and bias of the two-factor layer with these factors."""
    layer = OverparamLinear(W1.shape[1], W2.shape[0], depth=2, hidden_features=W1.shape[0], dtype=_DT)
    with torch.no_grad():
        for p, v in zip([*layer.weights, *layer.biases], (W1, W2, b1, b2), strict=True):
            p.copy_(v)
        bias = layer.end_to_end_bias()
        assert bias is not None  # both factors carry a bias
        return layer.end_to_end_weight(), bias


def check_collapse_linear(
    fn: Callable[[Tensor, Tensor, Tensor, Tensor], Any], name: str = "collapse two linear maps"
) -> Verdict:
    """Check ``fn(W1, b1, W2, b2) -> (W, b)``: the single affine map x ↦ W x + b equal to applying
    x ↦ W1 x + b1 and then y ↦ W2 y + b2, compared with :class:`~lowrank_utils.overparam.OverparamLinear`."""
    g = torch.Generator().manual_seed(17)
    cases = {"3 → 4 → 2": (3, 4, 2), "5 → 5 → 5": (5, 5, 5), "2 → 6 → 3": (2, 6, 3)}
    for label, (n_in, hidden, n_out) in cases.items():
        W1 = torch.randn(hidden, n_in, generator=g, dtype=_DT)
        b1 = torch.randn(hidden, generator=g, dtype=_DT)
        W2 = torch.randn(n_out, hidden, generator=g, dtype=_DT)
        b2 = torch.randn(n_out, generator=g, dtype=_DT)
        ok, out = call_answer(name, fn, W1.clone(), b1.clone(), W2.clone(), b2.clone())
        if not ok:
            return Verdict(name, False)
        try:
            W, b = (_as_tensor(v) for v in out)
        except Exception:
            return report(name, False, f"return a pair (W, b), got {type(out).__name__}.")
        if W is None or b is None:
            return report(name, False, "return a pair of tensors (W, b).")
        W_ref, b_ref = _linear_reference(W1, b1, W2, b2)
        where = f"for maps {label} (W1 is {hidden}x{n_in}, W2 is {n_out}x{hidden})"
        if W.shape != W_ref.shape:
            hint = ("your W is transposed: the end-to-end weight maps inputs to outputs, so it is out x in."
                    if W.shape == W_ref.T.shape else f"W should be {n_out} x {n_in} (out x in).")
            return report(name, False, f"{where} W has shape {tuple(W.shape)}: {hint}")
        if not _close(W, W_ref):
            swapped = W1.shape == W2.shape and _close(W, W1 @ W2)
            hint = ("you multiplied in the wrong order: W1 acts first, so the product is W2 @ W1." if swapped
                    else "W should be W2 @ W1 (W1 acts first).")
            return report(name, False, f"{where} W is not the end-to-end weight: {hint}")
        b = b.reshape(-1)
        if not _close(b, b_ref):
            if b1.shape == b2.shape and _close(b, b1 + b2):
                hint = "b1 passes through W2 before b2 is added: b = W2 @ b1 + b2."
            elif _close(b, b2):
                hint = "you dropped the first bias; it passes through W2: b = W2 @ b1 + b2."
            else:
                hint = "expand W2 (W1 x + b1) + b2 and collect the terms without x."
            return report(name, False, f"{where} b is not the end-to-end bias: {hint}")
    return report(name, True)


def _kernel_reference(k1: Tensor, k2: Tensor) -> Tensor:
    """The package's composed kernel of two valid convolutions, ``k1`` applied first."""
    c1, c0, ah, aw = k1.shape
    c2, _, bh, bw = k2.shape
    layer = OverparamConv2d(c0, c2, [(ah, aw), (bh, bw)], hidden_channels=c1, bias=False, dtype=_DT)
    with torch.no_grad():
        layer.weights[0].copy_(k1)
        layer.weights[1].copy_(k2)
        return layer.end_to_end_weight()


def check_compose_kernels(fn: Callable[[Tensor, Tensor], Any], name: str = "compose two kernels") -> Verdict:
    """Check ``fn(k1, k2) -> k`` for kernels k1 [c1, c0, a, a] and k2 [c2, c1, b, b]: the kernel k [c2, c0, a+b-1,
    a+b-1] with conv2d(conv2d(x, k1), k2) == conv2d(x, k), compared with
    :class:`~lowrank_utils.overparam.OverparamConv2d` and on a random image."""
    g = torch.Generator().manual_seed(23)
    cases = {
        "one channel, 3x3 then 2x2": (1, 1, 1, 3, 2),
        "channels 2 → 3 → 4, 3x3 then 1x1": (2, 3, 4, 3, 1),
        "channels 2 → 3 → 2, 3x3 then 2x2": (2, 3, 2, 3, 2),
        "channels 3 → 2 → 1, 2x2 then 3x3": (3, 2, 1, 2, 3),
    }
    for label, (c0, c1, c2, a, b) in cases.items():
        k1 = torch.randn(c1, c0, a, a, generator=g, dtype=_DT)
        k2 = torch.randn(c2, c1, b, b, generator=g, dtype=_DT)
        k = tensor_answer(name, fn, k1.clone(), k2.clone(), call="fn(k1, k2)")
        if isinstance(k, Verdict):
            return k
        ref = _kernel_reference(k1, k2)
        size = a + b - 1
        if k.shape != ref.shape:
            if k.ndim == 4 and k.shape[:2] == (c0, c2) and c0 != c2:
                hint = "the channel dimensions are swapped: the composed kernel is [out = c2, in = c0, kh, kw]."
            elif k.ndim == 4 and k.shape[-1] == abs(a - b) + 1 and size != abs(a - b) + 1:
                hint = (f"your kernel is {k.shape[-1]}x{k.shape[-1]}, the size of a 'valid' correlation. The "
                        f"composed kernel is the *full* convolution of the kernels: {size}x{size} (a + b - 1).")
            else:
                hint = f"expected shape {tuple(ref.shape)} = [c2, c0, a + b - 1, a + b - 1]."
            return report(name, False, f"on {label} the kernel has shape {tuple(k.shape)}: {hint}")
        if not _close(k, ref):
            flipped = _kernel_reference(k1, k2.flip((-2, -1))).flip((-2, -1))
            if _close(k, flipped) or _close(k, _kernel_reference(k1.flip((-2, -1)), k2).flip((-2, -1))):
                hint = ("one kernel is flipped: conv2d is a cross-correlation, and two of them compose into a "
                        "cross-correlation with the (true, flipped) convolution of the kernels. Try "
                        "F.conv_transpose2d, or pad and correlate with a flipped kernel.")
            else:
                hint = ("apply conv2d(conv2d(x, k1), k2) and conv2d(x, k) to a small random x to compare; the "
                        "entry k[o, i] is the full convolution summed over the middle channel: "
                        "Σ_m k2[o, m] * k1[m, i].")
            return report(name, False, f"on {label} the kernel does not compose the two convolutions: {hint}")
        x = torch.randn(2, c0, 7, 7, generator=g, dtype=_DT)
        if not _close(F.conv2d(F.conv2d(x, k1), k2), F.conv2d(x, k)):  # pragma: no cover - implied by the above
            return report(name, False, f"on {label} conv2d with your kernel differs from the two convolutions.")
    return report(name, True)
