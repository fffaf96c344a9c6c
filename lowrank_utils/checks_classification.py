"""Exercise checkers for chapters 8 (over-parameterized image classifiers) and 9 (ImageNet with DDP).

Same conventions as :mod:`lowrank_utils.checks`: a checker prints PASS or FAIL with a hint and returns a
:class:`~lowrank_utils.checks.Verdict`; an answer that still raises ``NotImplementedError`` is reported and re-raised.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .checks import Verdict, _call, report
from .overparam import OverparamConv2d

__all__ = [
    "check_embedding_rho",
    "check_welch_t",
    "check_global_batch_and_lr",
    "check_overparam_conv_params",
    "check_shard_average",
    "check_batchnorm_prediction",
    "BATCHNORM_ANSWER",
]


def _numbers(out: Any, n: int) -> tuple[float, ...] | None:
    try:
        values = tuple(float(v) for v in out)
    except (TypeError, ValueError):
        return None
    return values if len(values) == n else None


def check_embedding_rho(fn: Callable[[nn.Module, torch.Tensor], Any],
                        name: str = "effective rank of the penultimate embeddings") -> Verdict:
    """Check ``fn(model, images) -> ρ``: the effective rank of the centred Gram matrix of ``model.features(images)``
    (the embeddings the classifier reads), for small CNNs in eval mode."""
    from .experiments.classification import SmallCNN
    from .rank import gram_effective_rank

    for seed, width in ((0, 4), (1, 8)):
        torch.manual_seed(seed)
        model = SmallCNN(1, 10, width, hidden=32).eval()
        images = torch.randn(48, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            phi = model.features(images).double()
            logits = model(images).double()
        expected = float(gram_effective_rank(phi, center=True))
        ok, out = _call(name, fn, model, images.clone())
        if not ok:
            return Verdict(name, False)
        try:
            value = float(torch.as_tensor(out).detach())
        except Exception:
            return report(name, False, f"return one number (ρ); got {type(out).__name__}.")
        if math.isclose(value, expected, rel_tol=1e-4, abs_tol=1e-6):
            continue
        if math.isclose(value, float(gram_effective_rank(phi)), rel_tol=1e-4):
            hint = "you measured the uncentred Gram matrix: subtract the mean embedding (over images) first."
        elif math.isclose(value, float(gram_effective_rank(logits, center=True)), rel_tol=1e-4):
            hint = "you measured the logits; the embeddings are model.features(images), the classifier's input."
        else:
            hint = ("ρ = entropy of the normalised eigenvalues of K = (Φ − mean Φ)(Φ − mean Φ)ᵀ with "
                    "Φ = model.features(x).")
        return report(name, False, f"you returned {value:.4f}, expected {expected:.4f}: {hint}")
    return report(name, True)


def check_welch_t(fn: Callable[[Any, Any], Any], name: str = "Welch's t statistic") -> Verdict:
    """Check ``fn(a, b) -> (t, df)``: Welch's t statistic for mean(a) − mean(b) and its Welch–Satterthwaite degrees
    of freedom, against hand-computed values."""
    cases = [
        (np.array([0.86, 0.87, 0.88]), np.array([0.84, 0.85, 0.87])),
        (np.array([1.0, 2.0, 4.0, 7.0]), np.array([3.0, 3.5, 2.5])),
        (np.array([10.0, 12.0]), np.array([9.0, 9.5, 11.0, 8.0, 10.0])),
    ]
    for a, b in cases:
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        t = (a.mean() - b.mean()) / math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
        ok, out = _call(name, fn, a.copy(), b.copy())
        if not ok:
            return Verdict(name, False)
        got = _numbers(out, 2)
        if got is None:
            return report(name, False, f"return a pair (t, df) of numbers; got {out!r}.")
        if abs(got[0] + t) < 1e-6 * max(1.0, abs(t)) and abs(t) > 1e-9:
            return report(name, False, "your t has the wrong sign: use mean(a) − mean(b) in the numerator.")
        if not math.isclose(got[0], t, rel_tol=1e-6, abs_tol=1e-9):
            va0, vb0 = a.var() / len(a), b.var() / len(b)
            if math.isclose(got[0], (a.mean() - b.mean()) / math.sqrt(va0 + vb0), rel_tol=1e-6):
                hint = "use the sample variance with ddof=1 (divide by n − 1), not by n."
            else:
                hint = "t = (mean(a) − mean(b)) / sqrt(s_a²/n_a + s_b²/n_b): each group keeps its own variance."
            return report(name, False, f"on a={a.tolist()}, b={b.tolist()} you gave t = {got[0]:.4f}, expected "
                                       f"{t:.4f}. {hint}")
        if not math.isclose(got[1], df, rel_tol=1e-6):
            hint = ("df = (s_a²/n_a + s_b²/n_b)² / [(s_a²/n_a)²/(n_a − 1) + (s_b²/n_b)²/(n_b − 1)]; "
                    + ("n_a + n_b − 2 is Student's df for equal variances, not Welch's."
                       if math.isclose(got[1], len(a) + len(b) - 2) else ""))
            return report(name, False, f"on a={a.tolist()}, b={b.tolist()} you gave df = {got[1]:.4f}, expected "
                                       f"{df:.4f}. {hint}")
    return report(name, True)


def check_global_batch_and_lr(fn: Callable[[int, int, int], Any],
                              name: str = "global batch size and linearly scaled learning rate") -> Verdict:
    """Check ``fn(per_gpu_batch, gpus_per_node, nodes) -> (global_batch, lr)`` with lr = 0.1 x global_batch / 256,
    the rule ``lowrank_utils.train_imagenet`` applies when ``--lr`` is not given."""
    cases = [(256, 1, 1), (32, 8, 1), (64, 8, 4), (8, 2, 1)]
    for per_gpu, gpus, nodes in cases:
        ok, out = _call(name, fn, per_gpu, gpus, nodes)
        if not ok:
            return Verdict(name, False)
        got = _numbers(out, 2)
        if got is None:
            return report(name, False, f"return a pair (global_batch, lr); got {out!r}.")
        batch = per_gpu * gpus * nodes
        lr = 0.1 * batch / 256
        label = f"batch {per_gpu} per GPU on {nodes} node(s) x {gpus} GPU(s)"
        if got[0] != batch:
            hint = "every process (one per GPU, on every node) takes its own batch, so multiply by all of them."
            return report(name, False, f"{label}: global batch {got[0]:g}, expected {batch}. {hint}")
        if not math.isclose(got[1], lr, rel_tol=1e-9):
            return report(name, False, f"{label}: lr {got[1]:g}, expected {lr:g} = 0.1 x {batch} / 256 "
                                       "(the linear scaling rule).")
    return report(name, True)


def check_overparam_conv_params(fn: Callable[[int, int, int, int, bool], Any],
                                name: str = "parameters of an over-parameterized convolution") -> Verdict:
    """Check ``fn(c_in, c_out, k, depth, bias) -> (training_params, deployed_params)`` for
    ``OverparamConv2d(c_in, c_out, kernel_sizes=(k, 1, ..., 1))`` (depth factors, hidden width = c_out) against the
    layer itself and its collapsed ``nn.Conv2d``."""
    cases = [(3, 64, 3, 2, False), (64, 128, 3, 4, False), (16, 8, 5, 3, True), (32, 32, 1, 2, True)]
    for c_in, c_out, k, depth, bias in cases:
        layer = OverparamConv2d(c_in, c_out, kernel_sizes=(k,) + (1,) * (depth - 1), padding=k // 2, bias=bias)
        train = sum(p.numel() for p in layer.parameters())
        deploy = sum(p.numel() for p in layer.collapse().parameters())
        ok, out = _call(name, fn, c_in, c_out, k, depth, bias)
        if not ok:
            return Verdict(name, False)
        got = _numbers(out, 2)
        if got is None:
            return report(name, False, f"return a pair (training_params, deployed_params); got {out!r}.")
        label = f"c_in={c_in}, c_out={c_out}, k={k}, depth={depth}, bias={bias}"
        if got[1] != deploy:
            return report(name, False, f"{label}: deployed {got[1]:g}, expected {deploy}. The collapsed layer is an "
                                       "ordinary k x k convolution: c_out·c_in·k² weights (+ c_out biases).")
        if got[0] != train:
            return report(name, False, f"{label}: training {got[0]:g}, expected {train}. The first factor is "
                                       "c_in -> c_out with a k x k kernel; each of the depth − 1 others is a 1 x 1 "
                                       "c_out -> c_out matrix; with bias=True every factor has c_out biases.")
    return report(name, True)


# ----------------------------------------------------------------------------------------------------------------
# Exercise 9.1: what data-parallel training averages


def _shard_average_reference(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, processes: int
                             ) -> list[torch.Tensor]:
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    shards = list(zip(torch.tensor_split(X, processes), torch.tensor_split(Y, processes)))
    for xs, ys in shards:
        grads = torch.autograd.grad(nn.functional.mse_loss(model(xs), ys), params)
        total = [t + g for t, g in zip(total, grads)]
    return [t / len(shards) for t in total]


def check_shard_average(fn: Callable[[nn.Module, torch.Tensor, torch.Tensor, int], Any],
                        name: str = "the gradient DDP applies") -> Verdict:
    """Check ``fn(model, X, Y, processes)`` -> one tensor per parameter: the average over ``processes`` shards
    (``torch.tensor_split`` of the batch) of the gradient of each shard's mean squared error, i.e. what every
    process holds after DDP's all-reduce."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    g = torch.Generator().manual_seed(29)
    for n, processes in ((12, 1), (12, 3), (10, 3), (9, 4)):
        X = torch.randn(n, 5, generator=g, dtype=torch.float64)
        Y = torch.randn(n, 3, generator=g, dtype=torch.float64)
        ok, out = _call(name, fn, model, X.clone(), Y.clone(), processes)
        if not ok:
            return Verdict(name, False)
        model.zero_grad(set_to_none=True)
        expected = _shard_average_reference(model, X, Y, processes)
        try:
            got = [torch.as_tensor(v, dtype=torch.float64).detach() for v in out]
        except Exception:
            return report(name, False, f"return a list with one gradient tensor per parameter, got {type(out).__name__}.")
        label = f"a batch of {n} split over {processes} process(es)"
        if len(got) != len(expected) or any(a.shape != b.shape for a, b in zip(got, expected)):
            return report(name, False, f"for {label} return one tensor per parameter, in model.parameters() order.")
        if all(torch.allclose(a, b, atol=1e-10, rtol=1e-8) for a, b in zip(got, expected)):
            continue
        full = torch.autograd.grad(nn.functional.mse_loss(model(X), Y), list(model.parameters()))
        if all(torch.allclose(a, p * processes, atol=1e-10, rtol=1e-8) for a, p in zip(got, expected)):
            hint = "you summed the shards' gradients; all-reduce in DDP averages them (divides by the world size)."
        elif all(torch.allclose(a, b, atol=1e-10, rtol=1e-8) for a, b in zip(got, full)):
            hint = ("you returned the full-batch gradient. With unequal shards (10 = 4 + 3 + 3) the average of the "
                    "shard means is not the mean over the batch: compute each shard's gradient.")
        else:
            hint = "split with torch.tensor_split(X, processes) (and Y alike), average the per-shard gradients."
        return report(name, False, f"for {label}: {hint}")
    return report(name, True)


BATCHNORM_ANSWER = "different"
"""Exercise 9.1's known answer: with BatchNorm (and no SyncBatchNorm), each process normalises with its own batch's
statistics, so DDP over P processes of batch b is not the same step as one process with batch P·b."""


def check_batchnorm_prediction(answer: Any, name: str = "prediction: DDP with BatchNorm") -> Verdict:
    """Grade the prediction for ResNet-18 (BatchNorm layers) against :data:`BATCHNORM_ANSWER`."""
    from .checks import check_choice

    return check_choice(name, answer, BATCHNORM_ANSWER, ("same", "different"),
                        hint="what does a BatchNorm layer compute from its batch in training mode, and which batch "
                             "does it see in each process?")
