"""Effective rank of a batch of Gram matrices: the package against the paper's published snippet, in one run.

    python benchmarks/bench_rank.py [--batch 100] [--n 256] [--repeats 5]

The baseline is the authors' effective-rank snippet applied to each matrix in a Python loop:
``s = w.cpu().svd(compute_uv=False)[1]; p = s / s.sum(); -(p * p.log()).sum()``.
The package measures the whole batch with its checks (NaN/Inf, symmetry, PSD) and a symmetric eigensolver (Gram
matrices are symmetric PSD), one thread per matrix and matrices spread over the threads. It prints the median
times, their ratio, and what each returns on a rank-deficient matrix.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import lowrank_utils as lu


def naive_loop(K: torch.Tensor) -> torch.Tensor:
    """The paper's snippet, once per matrix (it returns NaN when a singular value is exactly 0)."""
    out = []
    for w in K:
        s = w.cpu().svd(compute_uv=False)[1]
        p = s / s.sum()
        out.append(-(p * p.log()).sum())
    return torch.stack(out)


def package(K: torch.Tensor) -> torch.Tensor:
    """The package's batched symmetric fast path."""
    return lu.entropy_effective_rank(K, symmetric_psd=True)


def median_time(fn: Callable[[torch.Tensor], torch.Tensor], K: torch.Tensor, repeats: int) -> float:
    fn(K)  # warm-up: first calls pay for kernel selection and allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(K)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--features", type=int, default=512, help="feature dimension of the Gram matrices")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    phi = torch.randn(args.batch, args.n, args.features, generator=g)
    K = lu.gram(phi)

    agree = torch.allclose(package(K), naive_loop(K), atol=1e-3)
    # interleaved rounds, so a change in the machine's load hits both sides alike
    rounds_naive: list[float] = []
    rounds_pkg: list[float] = []
    for _ in range(args.repeats):
        rounds_naive.append(median_time(naive_loop, K, 1))
        rounds_pkg.append(median_time(package, K, 1))
    t_naive, t_pkg = statistics.median(rounds_naive), statistics.median(rounds_pkg)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32")
    print(f"batch of {args.batch} Gram matrices, {args.n} x {args.n}; median of {args.repeats} interleaved runs")
    print(f"  paper's snippet, per matrix  : {t_naive * 1e3:9.1f} ms")
    print(f"  lowrank_utils (batched eigh) : {t_pkg * 1e3:9.1f} ms")
    print(f"  speed-up                     : {t_naive / t_pkg:9.2f}x   (results agree: {agree})")

    D = torch.diag(torch.tensor([3.0, 1.0, 0.0, 0.0]))
    print(f"rank-deficient diag(3, 1, 0, 0): snippet -> {naive_loop(D[None]).item()}, "
          f"package -> {lu.entropy_effective_rank(D).item():.4f}")


if __name__ == "__main__":
    main()
