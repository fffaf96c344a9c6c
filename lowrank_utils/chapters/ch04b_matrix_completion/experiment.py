"""Chapter 4b: a task where a rank prior *can* generalise -- low-rank matrix completion with deep factorisations.

An n × n matrix of rank r is observed on m of its n² entries, chosen at random; the task is to predict the others.
The observations leave the matrix undetermined (many matrices agree with them), and the right answer is the
lowest-rank completion. Each model is a product W = W_d ⋯ W_1 of ``depth`` square factors, trained by full-batch
gradient descent on the squared error of the observed entries (Gunasekar et al. 2017; Arora, Cohen, Hu, Luo 2019).

* :func:`make_completion_task` -- the ground truth (rank r, unit Frobenius norm) and a nested family of masks.
* :func:`factorization_fit` -- gradient descent on the factors, batched over tasks; depth 1 starts from zero, which
  makes its limit the minimum-norm fit: the observed entries copied, zero everywhere else.
* :func:`nuclear_norm_completion` -- the convex baseline: accelerated proximal gradient (soft-impute steps) on the
  squared error plus λ‖W‖_*, with λ decreasing to a tiny final value: the minimum-nuclear-norm completion, nearly.
* :func:`depth_comparison` (one m, several depths) and :func:`observation_sweep` (several m) -- tidy DataFrames with
  one row per (method, m, seed).

All sizes, the initialisation scale, the step size and the step budget are *our* choices for a CPU course, in the
regime of Arora et al. (small initialisation, a rank far below n); they are not the settings of the paper this course
is about, which does not run this experiment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lowrank_utils import validate as check
from lowrank_utils.presets import Presets
from lowrank_utils.rank import entropy_effective_rank
from lowrank_utils.runtime import cpu_threads, progress_bar, stable_seed

_DTYPE = torch.float64


@dataclass(frozen=True)
class CompletionTask:
    """One matrix-completion problem: the rank-``rank`` ground truth and the 0/1 mask of its ``n_observed`` entries.

    ``truth`` has unit Frobenius norm; the test set is every entry where ``mask`` is 0.
    """

    truth: Tensor
    mask: Tensor
    rank: int
    n_observed: int
    seed: int

    @property
    def size(self) -> int:
        """n, the number of rows (and columns)."""
        return int(self.truth.shape[0])


def make_completion_task(size: int, rank: int, n_observed: int, seed: int = 0) -> CompletionTask:
    """A random n × n rank-``rank`` matrix W* = UV (Gaussian U, V) scaled to ‖W*‖_F = 1, observed on ``n_observed``
    entries chosen uniformly at random.

    The truth depends on (``seed``, ``size``, ``rank``) only, and the observed entries are the first ``n_observed``
    of one random order of all n² entries per (``seed``, ``size``): a larger ``n_observed`` adds entries to the same
    task, so a sweep over ``n_observed`` compares like with like.
    """
    check.integer("size", size, 2)
    check.integer("rank", rank)
    check.integer("n_observed", n_observed)
    check.integer("seed", seed, 0)
    if rank >= size:
        raise ValueError(f"rank={rank} must be below size={size}: a full-rank truth leaves nothing for a rank prior.")
    if n_observed >= size * size:
        raise ValueError(f"n_observed={n_observed} must be below size² = {size * size}: with every entry observed "
                         "there is nothing left to complete.")
    g = torch.Generator().manual_seed(stable_seed("completion-truth", seed, size, rank))
    U = torch.randn(size, rank, generator=g, dtype=_DTYPE)
    V = torch.randn(rank, size, generator=g, dtype=_DTYPE)
    truth = U @ V
    truth = truth / truth.norm()
    g = torch.Generator().manual_seed(stable_seed("completion-mask", seed, size))
    order = torch.randperm(size * size, generator=g)
    mask = torch.zeros(size * size, dtype=_DTYPE)
    mask[order[:n_observed]] = 1.0
    return CompletionTask(truth=truth, mask=mask.view(size, size), rank=rank, n_observed=n_observed, seed=seed)


def stack_tasks(tasks: Sequence[CompletionTask]) -> tuple[Tensor, Tensor]:
    """The truths and masks of same-sized tasks stacked into two (B, n, n) tensors, for batched fitting."""
    if not tasks:
        raise ValueError("stack_tasks needs at least one task.")
    sizes = {t.size for t in tasks}
    if len(sizes) != 1:
        raise ValueError(f"tasks of different sizes {sorted(sizes)} cannot be stacked.")
    return torch.stack([t.truth for t in tasks]), torch.stack([t.mask for t in tasks])


def _check_pair(truth: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    if not isinstance(truth, Tensor) or not isinstance(mask, Tensor):
        raise ValueError("truth and mask must be torch tensors.")
    if truth.ndim < 2 or truth.shape[-1] != truth.shape[-2]:
        raise ValueError(f"truth must be a square matrix or a batch of them, got shape {tuple(truth.shape)}.")
    if mask.shape != truth.shape:
        raise ValueError(f"mask has shape {tuple(mask.shape)} but truth has {tuple(truth.shape)}; they must match.")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("mask must contain only 0 (unobserved) and 1 (observed).")
    if not bool(torch.isfinite(truth).all()):
        raise ValueError("truth contains NaN or Inf entries.")
    return truth.to(_DTYPE), mask.to(_DTYPE)


def end_to_end(factors: Sequence[Tensor]) -> Tensor:
    """The product W = W_d ⋯ W_1 of ``factors`` given in the order [W_1, ..., W_d] (batched over leading dims)."""
    if not factors:
        raise ValueError("end_to_end needs at least one factor.")
    W = factors[0]
    for f in factors[1:]:
        W = f @ W
    return W


def _relative(diff: Tensor, ref: Tensor) -> Tensor:
    """‖diff‖_F / ‖ref‖_F per matrix of a batch (NaN where ``ref`` is zero)."""
    num = diff.flatten(-2).norm(dim=-1)
    den = ref.flatten(-2).norm(dim=-1)
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, math.nan))


def initial_factors(size: int, depth: int, init_scale: Sequence[float], seeds: Sequence[int]) -> list[Tensor]:
    """The starting factors [W_1, ..., W_d] of :func:`factorization_fit`, each (B, n, n) with B = len(seeds): i.i.d.
    N(0, init_scale²/n) entries drawn from (seed, depth, n), or one zero factor for depth 1."""
    check.integer("size", size)
    check.integer("depth", depth)
    if len(init_scale) != len(seeds):
        raise ValueError(f"got {len(init_scale)} init scales for {len(seeds)} seeds.")
    if depth == 1:
        return [torch.zeros(len(seeds), size, size, dtype=_DTYPE)]
    draws = []
    for s, a in zip(seeds, init_scale, strict=True):
        g = torch.Generator().manual_seed(stable_seed("completion-init", s, depth, size))
        draws.append(a / math.sqrt(size) * torch.randn(depth, size, size, generator=g, dtype=_DTYPE))
    stacked = torch.stack(draws, dim=1)  # (depth, B, n, n)
    return [stacked[i].clone() for i in range(depth)]


def factorization_fit(truth: Tensor, mask: Tensor, depth: int, *, init_scale: float | Sequence[float], lr: float,
                      steps: int,
                      tolerance: float = 1e-6, check_every: int = 100,
                      seed: int | Sequence[int] = 0) -> tuple[Tensor, dict[str, Any]]:
    """Gradient descent on ½‖mask ⊙ (W_d ⋯ W_1 − truth)‖²_F over the factors; returns W and a summary of the run.

    ``truth`` and ``mask`` are (B, n, n) (or (n, n)); every matrix of the batch gets its own factors, drawn with
    i.i.d. N(0, init_scale²/n) entries (depth ≥ 2), or zero (depth 1). Each step updates all factors at once with the
    exact gradient of that loss (computed by hand: no autograd), in float64. ``seed`` and ``init_scale`` (one, or
    one per matrix of the batch) fix the initial factors: the same seed and depth give the same start, up to the
    scale, whatever the mask. Training stops after ``steps`` steps,
    or earlier once every matrix fits its observed entries to a relative error below ``tolerance`` (checked every
    ``check_every`` steps). The summary has ``steps`` (taken) and ``diverged`` (a non-finite or exploding W).
    """
    truth, mask = _check_pair(truth, mask)
    check.integer("depth", depth)
    check.number("lr", lr)
    check.integer("steps", steps)
    check.number("tolerance", tolerance, allow_zero=True)
    check.integer("check_every", check_every)
    single = truth.ndim == 2
    if single:
        truth, mask = truth[None], mask[None]
    if truth.ndim != 3:
        raise ValueError(f"truth must be (n, n) or (B, n, n), got shape {tuple(truth.shape)}.")
    seeds = [seed] * truth.shape[0] if isinstance(seed, int) else list(seed)
    if len(seeds) != truth.shape[0]:
        raise ValueError(f"got {len(seeds)} seeds for a batch of {truth.shape[0]} matrices.")
    for s in seeds:
        check.integer("seed", s, 0)
    scales = [init_scale] * truth.shape[0] if isinstance(init_scale, (int, float)) else list(init_scale)
    if len(scales) != truth.shape[0]:
        raise ValueError(f"got {len(scales)} init scales for a batch of {truth.shape[0]} matrices.")
    for a in scales:
        check.number("init_scale", a)
    n = truth.shape[-1]
    target = mask * truth
    observed_norm = target.flatten(-2).norm(dim=-1).clamp_min(1e-300)
    factors = initial_factors(n, depth, scales, seeds)
    diverged = False
    taken = 0
    for step in range(1, steps + 1):
        # prefix[i] = W_i ⋯ W_1 (prefix[0] = I), suffix[i] = W_d ⋯ W_{i+1} (suffix[d] = I)
        prefix: list[Tensor | None] = [None]
        for f in factors:
            prefix.append(f if prefix[-1] is None else f @ prefix[-1])
        W = prefix[-1]
        assert W is not None
        residual = mask * W - target
        suffix: list[Tensor | None] = [None] * (depth + 1)
        for i in range(depth - 1, 0, -1):
            nxt = suffix[i + 1]
            suffix[i] = factors[i] if nxt is None else nxt @ factors[i]
        grads = []
        for i in range(depth):
            left, right = suffix[i + 1], prefix[i]
            grad = residual if left is None else left.transpose(-1, -2) @ residual
            grads.append(grad if right is None else grad @ right.transpose(-1, -2))
        for f, grad in zip(factors, grads, strict=True):
            f.sub_(lr * grad)
        taken = step
        if step % check_every == 0 or step == steps:
            fit = residual.flatten(-2).norm(dim=-1) / observed_norm
            if not bool(torch.isfinite(fit).all()) or float(fit.max()) > 1e6:
                diverged = True
                break
            if float(fit.max()) < tolerance:
                break
    W = end_to_end(factors)
    if not bool(torch.isfinite(W).all()):
        diverged = True
    return (W[0] if single else W), {"steps": taken, "diverged": diverged}


def nuclear_norm_completion(truth: Tensor, mask: Tensor, *, lam_final: float = 1e-6, lam_steps: int = 12,
                            iters_per_lam: int = 150) -> Tensor:
    """The minimum-nuclear-norm completion, approximately: accelerated proximal gradient on
    ½‖mask ⊙ (W − truth)‖²_F + λ‖W‖_* with λ decreasing to ``lam_final``.

    One proximal-gradient step with step size 1 is a soft-impute step (Mazumder, Hastie, Tibshirani 2010): fill the
    unobserved entries with the current estimate, then soft-threshold the singular values by λ. Steps are
    accelerated with FISTA momentum (Beck and Teboulle 2009), restarted at each stage. λ starts at the largest
    singular value of the observed matrix (where the answer is 0) and falls geometrically to ``lam_final`` over
    ``lam_steps`` stages of ``iters_per_lam`` steps, each stage starting from the last one's answer. As λ → 0 the
    answer approaches the matrix of least nuclear norm that agrees with the observed entries; ``lam_final`` is tiny
    against the truth's singular values (its Frobenius norm is 1). Batched over leading dimensions; float64.
    """
    truth, mask = _check_pair(truth, mask)
    check.number("lam_final", lam_final)
    check.integer("lam_steps", lam_steps)
    check.integer("iters_per_lam", iters_per_lam)
    observed = mask * truth
    lam_start = float(torch.linalg.matrix_norm(observed, ord=2).max())
    if lam_start <= lam_final:
        return torch.zeros_like(truth)
    W = torch.zeros_like(truth)
    for lam in np.geomspace(lam_start, lam_final, lam_steps + 1)[1:]:
        Y, t = W, 1.0
        for _ in range(iters_per_lam):
            filled = observed + (1 - mask) * Y  # = Y − gradient of the squared error at Y
            U, s, Vh = torch.linalg.svd(filled, full_matrices=False)
            W_next = (U * (s - float(lam)).clamp_min(0).unsqueeze(-2)) @ Vh
            t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
            Y = W_next + ((t - 1) / t_next) * (W_next - W)
            W, t = W_next, t_next
    return W


def completion_metrics(W: Tensor, truth: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Per matrix of a batch: ``test_error`` (‖(1−mask)⊙(W−W*)‖_F / ‖(1−mask)⊙W*‖_F, the relative error on the
    unobserved entries: predicting 0 there scores exactly 1), ``train_error`` (the same on the observed entries),
    ``rho`` (ρ of W, nats; 0 for W = 0) and ``target_rho`` (ρ of the truth)."""
    truth, mask = _check_pair(truth, mask)
    if W.shape != truth.shape:
        raise ValueError(f"W has shape {tuple(W.shape)} but truth has {tuple(truth.shape)}.")
    W = W.to(_DTYPE)
    unseen = 1 - mask
    zero = W.flatten(-2).norm(dim=-1) == 0
    safe = torch.where(zero[..., None, None], torch.ones_like(W), W)
    rho = torch.where(zero, torch.zeros_like(zero, dtype=_DTYPE), entropy_effective_rank(safe))
    return {
        "test_error": _relative(unseen * (W - truth), unseen * truth),
        "train_error": _relative(mask * (W - truth), mask * truth),
        "rho": rho,
        "target_rho": entropy_effective_rank(truth),
    }


@dataclass(frozen=True)
class CompletionConfig(Presets):
    """Deep matrix completion (all settings are our choices, in the regime of Arora et al. 2019; not the paper's).

    The truth is a ``size`` × ``size`` matrix of rank ``rank`` (unit Frobenius norm); :func:`depth_comparison` observes
    ``n_observed`` of its entries, :func:`observation_sweep` each number in ``sweep``. Every depth in ``depths`` is a
    product of that many ``size`` × ``size`` factors with N(0, ``init_scale``²/size) entries (depth 1 starts from zero),
    trained by full-batch gradient descent at step size ``lr`` for at most ``steps`` steps (stopping once every fit is
    within ``tolerance`` of its observed entries, relative). :func:`init_scale_sweep` repeats the fixed-m comparison for
    ``init_depths`` at each scale in ``init_scales``. The nuclear-norm baseline is accelerated soft-impute down to
    λ = ``nuclear_lam``. A method "recovers" the matrix at m when its median test error over seeds is below
    ``recovery_threshold``.
    """

    # quick (the defaults, ~25 s on one core): 20 x 20, rank 2, depths 1-4, five seeds, m = 160 and a sweep of six
    # values of m, at most 12,000 steps of gradient descent at step size 0.5 from factors of scale 0.03.
    # full: ten seeds, a finer sweep of m (twelve values), an extra init scale and at most 40,000 steps.
    FULL: ClassVar[dict[str, Any]] = dict(
        seeds=tuple(range(10)), sweep=(50, 60, 75, 90, 105, 120, 140, 160, 190, 220, 260, 300),
        init_scales=(0.1, 0.03, 0.01, 0.003, 0.001), steps=40_000,
    )

    size: int = 20
    rank: int = 2
    depths: tuple[int, ...] = (1, 2, 3, 4)
    n_observed: int = 160
    sweep: tuple[int, ...] = (60, 90, 120, 160, 220, 300)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    init_scale: float = 0.03
    lr: float = 0.5
    steps: int = 12_000
    tolerance: float = 1e-5
    init_depths: tuple[int, ...] = (2, 3)
    init_scales: tuple[float, ...] = (0.1, 0.03, 0.01, 0.003)
    nuclear_lam: float = 1e-6
    recovery_threshold: float = 0.1
    cpu_threads: int | None = 1
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", check.integers("depths", self.depths, unique=True))
        object.__setattr__(self, "init_depths", check.integers("init_depths", self.init_depths, 2, unique=True))
        object.__setattr__(self, "sweep", tuple(sorted(check.integers("sweep", self.sweep, unique=True))))
        object.__setattr__(self, "seeds", check.integers("seeds", self.seeds, 0, unique=True))
        check.integer("size", self.size, 2)
        check.integer("rank", self.rank)
        check.integer("n_observed", self.n_observed)
        check.integer("steps", self.steps)
        if self.rank >= self.size:
            raise ValueError(f"rank={self.rank} must be below size={self.size}.")
        for m in (self.n_observed, *self.sweep):
            if m >= self.size ** 2:
                raise ValueError(f"n_observed values must be below size² = {self.size ** 2} (something must be "
                                 f"left to complete), got {m}.")
        try:
            scales = tuple(self.init_scales)
        except TypeError:
            raise ValueError(f"init_scales must be a sequence of numbers, got {self.init_scales!r}.") from None
        if not scales:
            raise ValueError("init_scales must not be empty.")
        for a in scales:
            check.number("init_scales entry", a)
        object.__setattr__(self, "init_scales", tuple(float(a) for a in scales))
        check.number("init_scale", self.init_scale)
        check.number("lr", self.lr)
        check.number("tolerance", self.tolerance, allow_zero=True)
        check.number("nuclear_lam", self.nuclear_lam)
        check.number("recovery_threshold", self.recovery_threshold)
        if self.cpu_threads is not None:
            check.integer("cpu_threads", self.cpu_threads)


METHOD_ORDER: tuple[str, ...] = ("zero", "nuclear norm", "depth 1", "depth 2", "depth 3", "depth 4", "depth 5",
                                 "depth 6", "depth 8")
"""The order in which tables and figures list the methods (depths beyond these are appended)."""


def run_completion(config: CompletionConfig, n_observed: Sequence[int]) -> pd.DataFrame:
    """Every method of ``config`` on every (m in ``n_observed``, seed); one row per (method, m, seed).

    Methods: ``"zero"`` (predict 0 on the unobserved entries), ``"nuclear norm"`` and ``"depth d"`` for each depth.
    Columns: method, depth (0 for the baselines), n_observed, seed, test_error, train_error, rho, target_rho, steps,
    diverged. All (m, seed) pairs of one depth are fitted as one batch.
    """
    values = check.integers("n_observed", n_observed, unique=True)
    tasks = [make_completion_task(config.size, config.rank, m, s) for m in values for s in config.seeds]
    truth, mask = stack_tasks(tasks)
    keys = pd.DataFrame({"n_observed": [t.n_observed for t in tasks], "seed": [t.seed for t in tasks]})
    frames = []

    def add(method: str, depth: int, W: Tensor, steps: int, diverged: bool) -> None:
        m = {k: v.numpy() for k, v in completion_metrics(W, truth, mask).items()}
        frames.append(keys.assign(method=method, depth=depth, **m, steps=steps, diverged=diverged))

    with cpu_threads(config.cpu_threads), progress_bar(len(config.depths) + 1, "matrix completion",
                                                    config.progress) as bar:
        add("zero", 0, torch.zeros_like(truth), 0, False)
        add("nuclear norm", 0, nuclear_norm_completion(truth, mask, lam_final=config.nuclear_lam), 0, False)
        bar.update(1)
        for depth in config.depths:
            W, info = factorization_fit(truth, mask, depth, init_scale=config.init_scale, lr=config.lr,
                                        steps=config.steps, tolerance=config.tolerance,
                                        seed=[t.seed for t in tasks])
            add(f"depth {depth}", depth, W, info["steps"], info["diverged"])
            bar.update(1)
    df = pd.concat(frames, ignore_index=True)
    front = ["method", "depth", "n_observed", "seed"]
    df = df[front + [c for c in df.columns if c not in front]]
    return _order_methods(df).sort_values(["method", "n_observed", "seed"], ignore_index=True)


def _order_methods(df: pd.DataFrame) -> pd.DataFrame:
    present = [str(m) for m in pd.unique(df["method"])]
    order = [m for m in METHOD_ORDER if m in present] + [m for m in present if m not in METHOD_ORDER]
    return df.assign(method=pd.Categorical(df["method"].astype(str), categories=order, ordered=True))


def depth_comparison(config: CompletionConfig) -> pd.DataFrame:
    """Every depth and baseline at m = ``config.n_observed`` over ``config.seeds`` (see :func:`run_completion`)."""
    return run_completion(config, [config.n_observed])


def observation_sweep(config: CompletionConfig) -> pd.DataFrame:
    """Every depth and baseline at each m in ``config.sweep`` over ``config.seeds`` (see :func:`run_completion`)."""
    return run_completion(config, config.sweep)


def init_scale_sweep(config: CompletionConfig) -> pd.DataFrame:
    """Each depth in ``config.init_depths`` at m = ``config.n_observed`` from each initial scale in
    ``config.init_scales`` (same seeds, step size and budget); one row per (depth, init_scale, seed) with the columns
    of :func:`run_completion` plus ``init_scale``. The nuclear-norm baseline is added once per seed (init_scale NaN)."""
    tasks = [make_completion_task(config.size, config.rank, config.n_observed, s) for s in config.seeds]
    truth, mask = stack_tasks(tasks)
    k = len(config.init_scales)
    batch_truth, batch_mask = truth.repeat(k, 1, 1), mask.repeat(k, 1, 1)
    scales = [a for a in config.init_scales for _ in tasks]
    seeds = [t.seed for _ in config.init_scales for t in tasks]
    frames = []
    with cpu_threads(config.cpu_threads), progress_bar(len(config.init_depths) + 1, "initial scales",
                                                    config.progress) as bar:
        nuc = completion_metrics(nuclear_norm_completion(truth, mask, lam_final=config.nuclear_lam), truth, mask)
        frames.append(pd.DataFrame({"method": "nuclear norm", "depth": 0, "init_scale": math.nan,
                                    "n_observed": config.n_observed, "seed": [t.seed for t in tasks],
                                    **{c: v.numpy() for c, v in nuc.items()}, "steps": 0, "diverged": False}))
        bar.update(1)
        for depth in config.init_depths:
            W, info = factorization_fit(batch_truth, batch_mask, depth, init_scale=scales, lr=config.lr,
                                        steps=config.steps, tolerance=config.tolerance, seed=seeds)
            metrics = completion_metrics(W, batch_truth, batch_mask)
            frames.append(pd.DataFrame({"method": f"depth {depth}", "depth": depth, "init_scale": scales,
                                        "n_observed": config.n_observed, "seed": seeds,
                                        **{c: v.numpy() for c, v in metrics.items()}, "steps": info["steps"],
                                        "diverged": info["diverged"]}))
            bar.update(1)
    df = _order_methods(pd.concat(frames, ignore_index=True))
    return df.sort_values(["method", "init_scale", "seed"], ascending=[True, False, True], ignore_index=True)


def completion_experiments(config: CompletionConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """All three experiments of the chapter: ``(depth_comparison, observation_sweep, init_scale_sweep)``."""
    return depth_comparison(config), observation_sweep(config), init_scale_sweep(config)


def completion_examples(config: CompletionConfig, seed: int = 0, depths: Sequence[int] = (1, 2, 3)) -> pd.DataFrame:
    """One task of ``config`` (m = ``config.n_observed``, one seed) as tidy rows for heat maps: the truth, the observed
    entries (NaN elsewhere), the nuclear-norm completion and each depth's completion, with its test error in the panel
    name. Columns: panel, row, col, value."""
    check.integer("seed", seed, 0)
    depths = check.integers("depths", depths, unique=True)
    task = make_completion_task(config.size, config.rank, config.n_observed, seed)
    truth, mask = task.truth[None], task.mask[None]
    panels: list[tuple[str, Tensor]] = [("truth", task.truth),
                                        (f"observed ({config.n_observed} entries)",
                                         torch.where(task.mask > 0, task.truth, torch.full_like(task.truth, math.nan)))]
    with cpu_threads(config.cpu_threads):
        fits = [("nuclear norm", nuclear_norm_completion(truth, mask, lam_final=config.nuclear_lam))]
        for depth in depths:
            W, _ = factorization_fit(truth, mask, depth, init_scale=config.init_scale, lr=config.lr, steps=config.steps,
                                     tolerance=config.tolerance, seed=seed)
            fits.append((f"depth {depth}", W))
    for name, W in fits:
        error = float(completion_metrics(W, truth, mask)["test_error"][0])
        panels.append((f"{name}\ntest error {error:.2f}", W[0]))
    n = config.size
    r, c = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return pd.concat([pd.DataFrame({"panel": name, "row": r.ravel(), "col": c.ravel(), "value": M.numpy().ravel()})
                      for name, M in panels], ignore_index=True)


def regression_contrast(in_features: int = 32, out_features: int = 32, rank: int = 4, *, n_train: int = 24,
                        n_test: int = 256, seed: int = 0) -> pd.DataFrame:
    """Chapter 4's under-determined regression task seen as a completion problem: two rank-``rank`` maps that both fit
    the training data exactly -- the minimum-norm least-squares solution W = Y X⁺ and the target W* itself -- and
    what tells them apart, beside the zero map (the baseline). Columns: solution, rank (singular values above 1e-5
    of the largest: the target was made in float32), train_error, test_error (both relative: ‖error‖/‖target‖), and
    unseen_share (the share of ‖W‖²_F in the input directions the training inputs do not span)."""
    from lowrank_utils.regression import make_regression_task  # chapter 4's task maker

    task = make_regression_task(in_features, out_features, rank, n_train=n_train, n_test=n_test, seed=seed)
    target = task.target.double()  # the task's float32 tensors, with the targets recomputed in float64
    X, X_test = task.X_train.double(), task.X_test.double()
    Y, Y_test = X @ target.T, X_test @ target.T
    min_norm = Y.T @ torch.linalg.pinv(X.T)
    seen = torch.linalg.pinv(X) @ X  # projector onto the span of the training inputs
    unseen = torch.eye(in_features, dtype=_DTYPE) - seen
    rows = []
    for name, W in (("predict zero", torch.zeros_like(target)), ("minimum-norm least squares", min_norm),
                    ("the target W*", target)):
        rows.append({
            "solution": name,
            "rank": int(torch.linalg.matrix_rank(W, rtol=1e-5)),  # the target was stored in float32
            "train_error": float((X @ W.T - Y).norm() / Y.norm()),
            "test_error": float((X_test @ W.T - Y_test).norm() / Y_test.norm()),
            "unseen_share": float((W @ unseen).norm() ** 2 / W.norm() ** 2) if float(W.norm()) > 0 else math.nan,
        })
    return pd.DataFrame(rows)


def completion_summary(df: pd.DataFrame, value: str = "test_error") -> pd.DataFrame:
    """Median, minimum and maximum of ``value`` over seeds per (method, n_observed), with the number of seeds."""
    missing = {"method", "n_observed", value} - set(df.columns)
    if missing:
        raise ValueError(f"completion_summary needs columns {sorted(missing)} in the DataFrame.")
    data = df if isinstance(df["method"].dtype, pd.CategoricalDtype) else _order_methods(df)
    out = data.groupby(["method", "n_observed"], observed=True)[value].agg(
        median="median", min="min", max="max", seeds="count").reset_index()
    return out


def recovery_points(df: pd.DataFrame, threshold: float = 0.1) -> pd.DataFrame:
    """For each method, the smallest m from which on its median test error stays below ``threshold`` (NaN if never).

    "Stays": at that m and at every larger m of the sweep, so one lucky value of m does not count as recovery.
    """
    check.number("threshold", threshold)
    summary = completion_summary(df)
    rows = []
    for method, part in summary.groupby("method", observed=True, sort=True):
        part = part.sort_values("n_observed")
        below = (part["median"] < threshold).to_numpy()
        first = math.nan
        for i in range(len(below)):
            if below[i:].all():
                first = int(part["n_observed"].iloc[i])
                break
        rows.append({"method": method, "recovers_from_m": first})
    out = pd.DataFrame(rows)
    out["recovers_from_m"] = out["recovers_from_m"].astype("Int64")
    return out
