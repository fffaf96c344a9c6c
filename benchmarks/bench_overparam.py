"""Speed of over-parameterized layers against the plain layer they replace, measured in one run.

    python benchmarks/bench_overparam.py [--rounds 15] [--quick] [--threads N]

Every ratio compares two timings taken in the same process, interleaved round by round (so a slow spell of a
shared machine hits both), each the median over rounds of the per-call time. Targets from the issue:

* training step (forward + backward) of a depth-4 expanded 3x3 conv, 64 channels, 32x32, batch 32: <= 1.3x plain
* training step of a depth-4 expanded linear 512 -> 512, batch 256: <= 5x plain
* inference after ``collapse``: <= 1.05x plain

On a machine shared with other jobs, several OpenMP threads per op wait on each other whenever one is descheduled,
and the expanded layers (more ops per call) suffer more from it; ``--threads 1`` gives steadier ratios there.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from lowrank_utils.overparam import OverparamConv2d, OverparamLinear, collapse


def _train_step(layer: nn.Module, x: Tensor) -> Callable[[], None]:
    """One forward + backward through ``layer`` (input gradient included, as for a layer inside a network)."""

    def step() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).sum().backward()

    return step


def _inference(layer: nn.Module, x: Tensor) -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad():
            layer(x)

    return step


def _time_pair(
    base: Callable[[], None], other: Callable[[], None], rounds: int, min_time: float
) -> tuple[float, float]:
    """Median seconds per call of ``base`` and ``other``, interleaved round by round after a warm-up."""
    for fn in (base, other):
        for _ in range(3):
            fn()
    # Calls per round: enough for ``min_time`` seconds of the slower function.
    t0 = time.perf_counter()
    other()
    per_call = max(time.perf_counter() - t0, 1e-6)
    number = max(1, int(min_time / per_call))
    results: dict[int, list[float]] = {0: [], 1: []}
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)  # alternate who goes first
        for k in order:
            fn = (base, other)[k]
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            results[k].append((time.perf_counter() - t0) / number)
    return statistics.median(results[0]), statistics.median(results[1])


def main() -> None:
    """Run every case and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds per case (default 15)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke test")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own default)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rounds, min_time = (3, 0.02) if args.quick else (args.rounds, 0.1)
    torch.manual_seed(0)

    x_conv = torch.randn(32, 64, 32, 32, requires_grad=True)
    x_lin = torch.randn(256, 512, requires_grad=True)
    plain_conv = nn.Conv2d(64, 64, 3, padding=1)
    plain_lin = nn.Linear(512, 512)
    conv2 = OverparamConv2d(64, 64, kernel_sizes=3, depth=2, padding=1)
    conv4 = OverparamConv2d(64, 64, kernel_sizes=3, depth=4, padding=1)
    lin4 = OverparamLinear(512, 512, depth=4)

    def form(layer: OverparamConv2d | OverparamLinear, x: Tensor) -> str:
        return "composed" if layer.uses_composed(x) else "chained"

    cases: list[tuple[str, Callable[[], None], Callable[[], None], float | None]] = [
        (f"train conv d=2 ({form(conv2, x_conv)})", _train_step(plain_conv, x_conv), _train_step(conv2, x_conv), None),
        (f"train conv d=4 ({form(conv4, x_conv)})", _train_step(plain_conv, x_conv), _train_step(conv4, x_conv), 1.3),
        (f"train linear d=4 ({form(lin4, x_lin)})", _train_step(plain_lin, x_lin), _train_step(lin4, x_lin), 5.0),
        ("infer conv d=4 collapsed", _inference(plain_conv, x_conv), _inference(collapse(conv4), x_conv), 1.05),
        ("infer linear d=4 collapsed", _inference(plain_lin, x_lin), _inference(collapse(lin4), x_lin), 1.05),
    ]
    # For reference: the forms auto did not pick, forced.
    conv4_chained = OverparamConv2d(64, 64, kernel_sizes=3, depth=4, padding=1, mode="chained")
    lin4_composed = OverparamLinear(512, 512, depth=4, mode="composed")
    cases += [
        ("train conv d=4 (forced chained)", _train_step(plain_conv, x_conv), _train_step(conv4_chained, x_conv), None),
        ("train linear d=4 (forced composed)", _train_step(plain_lin, x_lin), _train_step(lin4_composed, x_lin), None),
    ]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {rounds} interleaved rounds, median per call")
    header = f"{'case':38s} {'plain ms':>9s} {'expanded ms':>12s} {'ratio':>7s} {'target':>7s}  ok"
    print(header)
    print("-" * len(header))
    for name, base, other, target in cases:
        t_base, t_other = _time_pair(base, other, rounds, min_time)
        ratio = t_other / t_base
        ok = "" if target is None else ("yes" if ratio <= target else "NO")
        tgt = "" if target is None else f"<={target:g}"
        print(f"{name:38s} {t_base * 1e3:9.3f} {t_other * 1e3:12.3f} {ratio:7.3f} {tgt:>7s}  {ok}")


if __name__ == "__main__":
    main()
