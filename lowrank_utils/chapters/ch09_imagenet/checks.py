"""Chapter 9's exercise checkers (see :mod:`lowrank_utils.checks` for the PASS/FAIL and grading conventions)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lowrank_utils.checks import Verdict, as_numbers, call_answer, check_choice, report
from lowrank_utils.overparam import OverparamConv2d


def check_global_batch_and_lr(fn: Callable[[int, int, int], Any],
                              name: str = "global batch size and linearly scaled learning rate") -> Verdict:
    """Check ``fn(per_gpu_batch, gpus_per_node, nodes) -> (global_batch, lr)`` with lr = 0.1 x global_batch / 256,
    the rule ``lowrank_utils.train.imagenet`` applies when ``--lr`` is not given."""
    cases = [(256, 1, 1), (32, 8, 1), (64, 8, 4), (8, 2, 1)]
    for per_gpu, gpus, nodes in cases:
        ok, out = call_answer(name, fn, per_gpu, gpus, nodes)
        if not ok:
            return Verdict(name, False)
        got = as_numbers(out, 2)
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
        ok, out = call_answer(name, fn, c_in, c_out, k, depth, bias)
        if not ok:
            return Verdict(name, False)
        got = as_numbers(out, 2)
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


def _shard_average_reference(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, processes: int
                             ) -> list[torch.Tensor]:
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    shards = list(zip(torch.tensor_split(X, processes), torch.tensor_split(Y, processes), strict=True))
    for xs, ys in shards:
        grads = torch.autograd.grad(nn.functional.mse_loss(model(xs), ys), params)
        total = [t + g for t, g in zip(total, grads, strict=True)]
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
        ok, out = call_answer(name, fn, model, X.clone(), Y.clone(), processes)
        if not ok:
            return Verdict(name, False)
        model.zero_grad(set_to_none=True)
        expected = _shard_average_reference(model, X, Y, processes)
        try:
            got = [torch.as_tensor(v, dtype=torch.float64).detach() for v in out]
        except Exception:
            return report(name, False,
                          f"return a list with one gradient tensor per parameter, got {type(out).__name__}.")
        label = f"a batch of {n} split over {processes} process(es)"
        if len(got) != len(expected) or any(a.shape != b.shape for a, b in zip(got, expected, strict=True)):
            return report(name, False, f"for {label} return one tensor per parameter, in model.parameters() order.")
        if all(torch.allclose(a, b, atol=1e-10, rtol=1e-8) for a, b in zip(got, expected, strict=True)):
            continue
        full = torch.autograd.grad(nn.functional.mse_loss(model(X), Y), list(model.parameters()))
        if all(torch.allclose(a, p * processes, atol=1e-10, rtol=1e-8) for a, p in zip(got, expected, strict=True)):
            hint = "you summed the shards' gradients; all-reduce in DDP averages them (divides by the world size)."
        elif all(torch.allclose(a, b, atol=1e-10, rtol=1e-8) for a, b in zip(got, full, strict=True)):
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
    return check_choice(name, answer, BATCHNORM_ANSWER, ("same", "different"),
                        hint="what does a BatchNorm layer compute from its batch in training mode, and which batch "
                             "does it see in each process?")
