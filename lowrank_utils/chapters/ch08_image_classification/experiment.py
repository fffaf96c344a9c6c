"""Chapter 8: linear over-parameterization of non-linear image classifiers.

A baseline network and its linearly over-parameterized versions (every conv / linear layer replaced by a product of
``depth`` factors, :func:`~lowrank_utils.overparam.overparameterize`) are trained from several seeds; each trained
model is **collapsed** back to the baseline architecture before it is evaluated, so the models compared at test time
have identical architectures and parameter counts. One tidy row per (dataset, model, seed) records test and train
accuracy, the train-test gap, the effective rank ρ of the penultimate embeddings and the wall time.

Two presets: :meth:`ClassificationConfig.quick` (a small CNN on a Fashion-MNIST subset, CPU, a minute or two) and
:meth:`ClassificationConfig.full` (a CIFAR-style ResNet-18 on CIFAR-10 and CIFAR-100, 180 epochs, one GPU, mixed
precision and channels-last). Run the full preset from the command line and store its results with provenance::

    LOWRANK_SCALE=full python -m lowrank_utils.chapters.ch08_image_classification.experiment --out lowrank_utils/stored_runs/classification_full.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lowrank_utils import validate as check
from lowrank_utils.data import dataset_info, load_dataset
from lowrank_utils.models import (
    ARCHS,
    build_model,
    count_parameters,
    forward_macs,
    model_label,
)
from lowrank_utils.overparam import collapse
from lowrank_utils.presets import Presets
from lowrank_utils.rank import gram_effective_rank
from lowrank_utils.runtime import (
    cpu_threads,
    get_device,
    get_scale,
    progress_enabled,
    seed_everything,
)

SCHEDULES: tuple[str, ...] = ("cosine", "step")
"""Learning-rate schedules: cosine decay to 0, or division by 10 at each of ``milestones`` (in epochs)."""


RESULT_COLUMNS: tuple[str, ...] = (
    "dataset", "arch", "model", "depth", "seed", "test_acc", "train_acc", "gap", "rho", "rho_uncentered",
    "train_loss", "params_train", "params_collapsed", "collapse_error", "epochs", "wall_time",
)
"""Columns of the DataFrame :func:`run_classification` returns (one row per dataset, model and seed)."""


PROVENANCE_FIELDS: tuple[str, ...] = ("command", "config", "hardware", "torch", "date", "seeds", "results")
"""Fields a stored result file must have before the book plots it."""


@dataclass(frozen=True)
class ClassificationConfig(Presets):
    """Everything :func:`run_classification` needs; invalid values raise ``ValueError`` when the config is made.

    * ``datasets`` -- names from :data:`lowrank_utils.data.DATASETS` (not ImageNet: see ``lowrank_utils.train.imagenet``).
    * ``arch`` / ``width`` -- one of :data:`ARCHS`; channels of the first block (later blocks double it).
    * ``depths`` -- factors per layer; ``1`` is the plain baseline and must be included.
    * ``seeds`` -- one run per seed and depth (the seed fixes the initial weights and the batch order).
    * ``train_subset`` / ``test_subset`` -- class-balanced subsets (``None``: the whole split).
    * ``rank_samples`` -- ρ is measured on the first this-many test images (a fixed set, the same for every model).
    * ``rank_center`` -- centre the embeddings before the Gram matrix (recommended: post-ReLU features share a mean).
    * ``epochs``, ``batch_size``, ``lr``, ``momentum``, ``weight_decay`` -- SGD with momentum. Weight decay applies
      to every parameter, the factors of over-parameterized layers included (decay on the factors is not decay on
      their product: it is part of what makes over-parameterized training different).
    * ``schedule`` -- ``cosine`` or ``step`` (``/10`` at each epoch in ``milestones``); ``warmup_epochs`` -- linear
      warm-up.
    * ``augment`` -- random crops (padding 4 for 32-pixel images, 2 for 28) and, for CIFAR, horizontal flips.
    * ``amp`` -- mixed precision with ``torch.autocast`` (bfloat16 where supported, else float16 with a gradient
      scaler); it is only ever switched on for CUDA devices. ``channels_last`` -- NHWC memory format, also CUDA only.
    * ``device`` -- ``None`` picks CUDA, then MPS, then CPU; ``cpu_threads`` -- torch's CPU thread count while
      training (``None`` leaves it alone); ``progress`` -- tqdm bars on stderr.
    """

    # quick: a small CNN on 4,000 Fashion-MNIST images, 3 epochs, 3 seeds x depths (1, 2, 4), on one CPU thread
    # (these small convolutions gain little from more; on a busy 2-core machine two threads measured several times
    # slower than one).
    QUICK = dict(cpu_threads=1)
    # full: a CIFAR-style ResNet-18 on CIFAR-10 and CIFAR-100 for one GPU (our setting; see the chapter for what
    # the paper states): 180 epochs, SGD lr 0.1 divided by 10 at epochs 60 and 120, momentum 0.9, weight decay
    # 5e-4, batch 128, crops and flips, mixed precision, channels-last.
    FULL = dict(datasets=("cifar10", "cifar100"), arch="resnet18", width=64, depths=(1, 2, 4), seeds=(0, 1, 2),
                train_subset=None, test_subset=None, rank_samples=1000, epochs=180, batch_size=128, lr=0.1,
                momentum=0.9, weight_decay=5e-4, schedule="step", milestones=(60, 120), augment=True, amp=True,
                channels_last=True)

    datasets: tuple[str, ...] = ("fashion_mnist",)
    arch: str = "small_cnn"
    width: int = 16
    depths: tuple[int, ...] = (1, 2, 4)
    seeds: tuple[int, ...] = (0, 1, 2)
    train_subset: int | None = 4000
    test_subset: int | None = 2000
    rank_samples: int = 500
    rank_center: bool = True
    epochs: int = 3
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()
    warmup_epochs: int = 0
    augment: bool = False
    amp: bool = True
    channels_last: bool = False
    device: str | None = None
    cpu_threads: int | None = None
    data_root: str | None = None
    download: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.datasets, str) or not self.datasets:
            raise ValueError("datasets must be a non-empty tuple of names, e.g. ('cifar10', 'cifar100').")
        for name in self.datasets:
            info = dataset_info(name)  # raises ValueError naming the known datasets
            if info.name == "imagenet":
                raise ValueError("ImageNet is trained by the DDP script: python -m lowrank_utils.train.imagenet.")
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}.")
        check.integer("width", self.width)
        if not self.depths or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in self.depths):
            raise ValueError(f"depths must be positive integers, got {self.depths!r}.")
        if 1 not in self.depths:
            raise ValueError(f"depths must include 1, the plain baseline the others are compared with; "
                             f"got {self.depths}.")
        if len(set(self.depths)) != len(self.depths) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("depths and seeds must not repeat values.")
        if not self.seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be a non-empty tuple of non-negative integers, got {self.seeds!r}.")
        for name in ("train_subset", "test_subset"):
            if getattr(self, name) is not None:
                check.integer(name, getattr(self, name))
        for name in ("rank_samples", "epochs", "batch_size"):
            check.integer(name, getattr(self, name))
        if self.rank_samples < 2:
            raise ValueError("rank_samples must be at least 2 (a Gram matrix of one sample has no spread).")
        if self.test_subset is not None and self.rank_samples > self.test_subset:
            raise ValueError(f"rank_samples={self.rank_samples} exceeds test_subset={self.test_subset}; lower it.")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}.")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}.")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}.")
        if self.schedule == "step" and not self.milestones:
            raise ValueError("schedule='step' needs milestones (epochs at which the lr is divided by 10), "
                             "e.g. (60, 120).")
        if list(self.milestones) != sorted(set(self.milestones)) or any(
            not isinstance(m, int) or not 0 < m < self.epochs for m in self.milestones
        ):
            raise ValueError(f"milestones must be increasing epochs between 1 and epochs-1, got {self.milestones!r}.")
        if not isinstance(self.warmup_epochs, int) or not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs must be an integer in [0, epochs), got {self.warmup_epochs!r}.")
        if self.cpu_threads is not None:
            check.integer("cpu_threads", self.cpu_threads)
        if self.device is not None:
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError) as err:
                raise ValueError(
                    f"device {self.device!r} is not a device name; use 'cpu', 'cuda', 'mps' or None."
                ) from err

    def replace(self, **changes: Any) -> ClassificationConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _as_tensors(name: str, split: str, subset: int | None, config: ClassificationConfig) -> tuple[Tensor, Tensor]:
    ds = load_dataset(name, split, root=config.data_root, download=config.download, subset=subset)
    xs, ys = [], []
    for x, y in DataLoader(ds, batch_size=1000, shuffle=False):
        xs.append(x)
        ys.append(torch.as_tensor(y))
    return torch.cat(xs), torch.cat(ys).long()


def random_crop_flip(x: Tensor, pad: int, flip: bool, fill: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Random ``pad``-pixel translations (padding with the per-channel value ``fill``) and optional horizontal flips
    of a batch ``x`` of shape (N, C, H, W), vectorised on ``x``'s device."""
    n, c, h, w = x.shape
    padded = fill.to(x.device, x.dtype).view(1, c, 1, 1).expand(n, c, h + 2 * pad, w + 2 * pad).clone()
    padded[:, :, pad : pad + h, pad : pad + w] = x
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(x.device)
    rows = (offsets[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (offsets[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch_index = torch.arange(n, device=x.device)[:, None, None, None]
    channel_index = torch.arange(c, device=x.device)[None, :, None, None]
    out = padded[batch_index, channel_index, rows, cols]
    if flip:
        mirror = (torch.rand(n, generator=generator) < 0.5).to(x.device)[:, None, None, None]
        out = torch.where(mirror, out.flip(-1), out)
    return out


def learning_rate(config: ClassificationConfig, epoch: float) -> float:
    """The learning rate at a (fractional) epoch: linear warm-up, then cosine decay or steps of /10."""
    if epoch < config.warmup_epochs:
        return config.lr * (epoch + 1e-8) / config.warmup_epochs
    if config.schedule == "step":
        return config.lr * 0.1 ** sum(epoch >= m for m in config.milestones)
    progress = (epoch - config.warmup_epochs) / max(1e-8, config.epochs - config.warmup_epochs)
    return 0.5 * config.lr * (1 + math.cos(math.pi * min(1.0, progress)))


class _Precision:
    """Autocast and gradient scaling for one device: on only for CUDA with ``amp``; bf16 where the GPU supports it."""

    def __init__(self, device: torch.device, amp: bool) -> None:
        self.enabled = bool(amp) and device.type == "cuda"
        bf16 = self.enabled and torch.cuda.is_bf16_supported()
        self.dtype = torch.bfloat16 if bf16 else torch.float16
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and not bf16)

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: Tensor, labels: Tensor,
               precision: Any = None, channels_last: bool = False) -> Tensor:
    """One SGD step on a batch (autocast and gradient scaling from ``precision``, if given).

    Returns the loss as a detached 0-d tensor on the training device: reading it as a number would make the CPU wait
    for the GPU at every step, so the caller sums the losses and reads them once per epoch.
    """
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    precision = precision or _Precision(images.device, amp=False)
    with precision.autocast():
        loss = F.cross_entropy(model(images).float(), labels)
    optimizer.zero_grad(set_to_none=True)
    precision.scaler.scale(loss).backward()
    precision.scaler.step(optimizer)
    precision.scaler.update()
    return loss.detach()


@torch.no_grad()
def _predict(model: nn.Module, x: Tensor, batch_size: int, channels_last: bool, features: bool = False) -> Tensor:
    outs = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        outs.append((model.features(xb) if features else model(xb)).float())
    return torch.cat(outs)


def _steps_per_epoch(config: ClassificationConfig, n: int) -> int:
    return max(1, n // config.batch_size)  # drop the last incomplete batch (BatchNorm dislikes tiny ones)


@contextlib.contextmanager
def _cudnn_benchmark(device: torch.device) -> Iterator[None]:
    """Let cuDNN pick the fastest convolution algorithms for the fixed input shapes (CUDA only; restored after)."""
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = old or device.type == "cuda"
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old


def _train_one(config: ClassificationConfig, dataset: str, depth: int, seed: int, data: dict[str, Tensor],
               device: torch.device, bar: Any) -> dict[str, Any]:
    info = dataset_info(dataset)
    # NHWC is a GPU speed-up; on the CPU (torch 2.14) a channels-last ResNet backward was measured to crash.
    channels_last = config.channels_last and device.type == "cuda"
    start = time.perf_counter()
    generator = seed_everything(seed)
    model = build_model(config.arch, info.channels, info.num_classes, config.width, depth, info.image_size).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    precision = _Precision(device, config.amp)
    x_train, y_train = data["x_train"], data["y_train"]
    n = len(x_train)
    steps_per_epoch = _steps_per_epoch(config, n)
    fill = torch.tensor([-m / s for m, s in zip(info.mean, info.std)])  # a black pixel after normalisation
    pad = 4 if info.image_size >= 32 else 2
    flip = dataset.startswith("cifar")
    mean_loss = math.nan
    model.train()
    bar.set_description(f"{dataset}, {model_label(depth)}, seed {seed}")
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=generator).to(device)
        loss_sum = torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, epoch + step / steps_per_epoch)
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            images = x_train[idx]
            if config.augment:
                images = random_crop_flip(images, pad, flip, fill, generator)
            loss_sum += train_step(model, optimizer, images, y_train[idx], precision, channels_last)
            bar.update(1)
        mean_loss = float(loss_sum) / steps_per_epoch
        if not math.isfinite(mean_loss):
            raise RuntimeError(f"{dataset}, {model_label(depth)}, seed {seed}: the training loss became {mean_loss} in "
                               f"epoch {epoch}; lower lr (now {config.lr:g}) or add warmup_epochs.")
        bar.set_postfix(epoch=epoch, loss=f"{mean_loss:.3f}", refresh=False)

    # Evaluate the collapsed network: the baseline's architecture, with the trained end-to-end weights.
    model.eval()
    collapsed = collapse(model).eval()
    if channels_last:
        collapsed = collapsed.to(memory_format=torch.channels_last)
    eval_batch = 1000
    probe = data["x_test"][:eval_batch]
    with torch.no_grad():
        reference, candidate = _predict(model, probe, 256, channels_last), _predict(collapsed, probe, 256,
                                                                                            channels_last)
    collapse_error = float((reference - candidate).abs().max() / reference.abs().max().clamp_min(1e-12))
    test_pred = _predict(collapsed, data["x_test"], eval_batch, channels_last).argmax(1)
    train_pred = _predict(collapsed, x_train, eval_batch, channels_last).argmax(1)
    test_acc = float((test_pred == data["y_test"]).float().mean())
    train_acc = float((train_pred == y_train).float().mean())
    embeddings = _predict(collapsed, data["x_test"][: config.rank_samples], eval_batch, channels_last,
                          features=True).double()
    rho = float(gram_effective_rank(embeddings, center=config.rank_center))
    rho_other = float(gram_effective_rank(embeddings, center=not config.rank_center))
    return {
        "dataset": dataset, "arch": config.arch, "model": model_label(depth), "depth": depth, "seed": seed,
        "test_acc": test_acc, "train_acc": train_acc, "gap": train_acc - test_acc,
        "rho": rho if config.rank_center else rho_other,
        "rho_uncentered": rho_other if config.rank_center else rho,
        "train_loss": mean_loss, "params_train": count_parameters(model),
        "params_collapsed": count_parameters(collapsed), "collapse_error": collapse_error,
        "epochs": config.epochs, "wall_time": time.perf_counter() - start,
    }


def run_classification(config: ClassificationConfig | None = None) -> pd.DataFrame:
    """Train every (dataset, depth, seed) of ``config``; one tidy row per run with the columns :data:`RESULT_COLUMNS`.

    ``rho`` is ρ of the **centred** Gram matrix of the penultimate embeddings (the input of the classifier) of the
    collapsed model on the first ``rank_samples`` test images (``rho_uncentered``: the same without centring; the two
    swap meaning if ``rank_center=False``). Accuracies are fractions in [0, 1]; ``gap`` is train minus test accuracy;
    ``wall_time`` is seconds for training and evaluating one model.
    """
    config = ClassificationConfig.quick() if config is None else config
    if not isinstance(config, ClassificationConfig):
        raise ValueError(f"config must be a ClassificationConfig, got {type(config).__name__}.")
    device = get_device(config.device, verbose=False)
    rows: list[dict[str, Any]] = []
    runs = len(config.depths) * len(config.seeds)

    def train_size(dataset: str) -> int:  # what the split's published size and train_subset imply
        published = dataset_info(dataset).train_size
        return min(config.train_subset or published, published)

    def steps(n: int) -> int:
        return runs * config.epochs * _steps_per_epoch(config, n)

    # One bar for the whole experiment (one step per mini-batch), so a notebook shows a single progress line.
    total = sum(steps(train_size(d)) for d in config.datasets)
    with cpu_threads(config.cpu_threads, device=device), _cudnn_benchmark(device), \
            tqdm(total=total, desc="training", disable=not progress_enabled(config.progress)) as bar:
        for dataset in config.datasets:
            x_train, y_train = _as_tensors(dataset, "train", config.train_subset, config)
            x_test, y_test = _as_tensors(dataset, "test", config.test_subset, config)
            if config.rank_samples > len(x_test):
                raise ValueError(f"rank_samples={config.rank_samples} exceeds the {len(x_test)} test images of "
                                 f"{dataset}.")
            if len(x_train) != train_size(dataset):  # a copy of another size than the published one (a fixture)
                bar.total += steps(len(x_train)) - steps(train_size(dataset))
                bar.refresh()
            data = {k: v.to(device) for k, v in
                    dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test).items()}
            for depth in config.depths:
                for seed in config.seeds:
                    rows.append(_train_one(config, dataset, depth, seed, data, device, bar))
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def training_flops(config: ClassificationConfig) -> pd.DataFrame:
    """A back-of-the-envelope count of the floating-point operations a config's training needs, one row per dataset.

    Training costs about 3 forward passes per image (forward, and a backward pass of twice the cost), a
    multiply-accumulate is 2 FLOPs, and each over-parameterized model is counted at the baseline's cost (the composed
    fast path applies one kernel per layer). It is a lower bound on work, not a time: divide by a sustained
    throughput you have measured to get seconds.
    """
    rows = []
    for dataset in config.datasets:
        info = dataset_info(dataset)
        model = build_model(config.arch, info.channels, info.num_classes, config.width, 1, info.image_size)
        macs = forward_macs(model, (info.channels, info.image_size, info.image_size))
        images = min(config.train_subset or info.train_size, info.train_size)
        runs = len(config.depths) * len(config.seeds)
        rows.append({"dataset": dataset, "arch": config.arch, "macs_per_image": macs, "train_images": images,
                     "epochs": config.epochs, "runs": runs,
                     "flops": 6.0 * macs * images * config.epochs * runs})
    return pd.DataFrame(rows)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (over seeds, ``ddof=1``) of the test accuracy, the train accuracy, the gap, ρ and
    the wall time, one row per (dataset, model)."""
    missing = {"dataset", "model", "depth", "seed", "test_acc", "train_acc", "gap", "rho", "wall_time"} - set(results)
    if missing:
        raise ValueError(f"summarize needs the columns {sorted(missing)} (as returned by run_classification).")
    grouped = results.groupby(["dataset", "depth", "model"], sort=True)
    table = grouped.agg(
        seeds=("seed", "nunique"),
        test_acc_mean=("test_acc", "mean"), test_acc_std=("test_acc", "std"),
        train_acc_mean=("train_acc", "mean"),
        gap_mean=("gap", "mean"), gap_std=("gap", "std"),
        rho_mean=("rho", "mean"), rho_std=("rho", "std"),
        seconds_mean=("wall_time", "mean"),
    )
    return table.reset_index()


def compare_to_baseline(results: pd.DataFrame, metric: str = "test_acc", alpha: float = 0.05) -> pd.DataFrame:
    """Each over-parameterized model against the baseline on ``metric``, per dataset.

    Columns: the means, their difference (model minus baseline) with a Welch 95% confidence interval, Welch's t-test
    p-value (unequal variances, the seeds of the two models treated as independent samples), the p-value of a paired
    t-test over the seeds both models share (a seed fixes the batch order), and ``significant`` (Welch p < ``alpha``).
    Fewer than two seeds per model give NaN statistics.
    """
    from scipy import stats

    if metric not in results:
        raise ValueError(f"metric {metric!r} is not a column of the results; use e.g. 'test_acc', 'gap' or 'rho'.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}.")
    rows = []
    for dataset, part in results.groupby("dataset", sort=True):
        base = part[part["depth"] == 1].set_index("seed")[metric]
        if base.empty:
            raise ValueError(f"no baseline (depth 1) runs for {dataset}; compare_to_baseline needs them.")
        for depth, other_part in part[part["depth"] != 1].groupby("depth", sort=True):
            other = other_part.set_index("seed")[metric]
            row: dict[str, Any] = {
                "dataset": dataset, "model": model_label(int(depth)), "depth": int(depth), "metric": metric,
                "n_baseline": len(base), "n_model": len(other), "baseline_mean": base.mean(),
                "model_mean": other.mean(), "difference": other.mean() - base.mean(),
                "ci_low": math.nan, "ci_high": math.nan, "welch_p": math.nan, "paired_p": math.nan,
            }
            if len(base) >= 2 and len(other) >= 2 and (base.std() > 0 or other.std() > 0):
                test = stats.ttest_ind(other.to_numpy(), base.to_numpy(), equal_var=False)
                ci = test.confidence_interval(1 - alpha)
                row.update(welch_p=float(test.pvalue), ci_low=float(ci.low), ci_high=float(ci.high))
            shared = sorted(set(base.index) & set(other.index))
            if len(shared) >= 2:
                diffs = other.loc[shared].to_numpy() - base.loc[shared].to_numpy()
                if np.std(diffs) > 1e-9 * max(1.0, float(np.abs(diffs).max())):  # constant differences: no test
                    row["paired_p"] = float(stats.ttest_rel(other.loc[shared], base.loc[shared]).pvalue)
            row["significant"] = bool(row["welch_p"] < alpha)  # NaN compares False
            rows.append(row)
    return pd.DataFrame(rows)


def classification_facts(results: pd.DataFrame) -> dict[str, Any]:
    """Robust, qualitative facts about a results table (what the book's checked cells print): run counts, that the
    collapsed models are the baseline architecture and compute the trained function, and the direction of the mean
    train accuracy and ρ from the baseline to the deepest over-parameterization, per dataset."""
    facts: dict[str, Any] = {"runs": len(results)}
    deepest = int(results["depth"].max())
    same_params = exact = True
    for dataset, part in results.groupby("dataset", sort=True):
        base = part[part["depth"] == 1]
        same_params &= bool((part["params_collapsed"] == base["params_train"].iloc[0]).all())
        exact &= bool((part["collapse_error"] < 1e-4).all())
        deep = part[part["depth"] == deepest]
        label = model_label(deepest)
        facts[f"{dataset}: mean rho lower for {label} than baseline"] = bool(deep["rho"].mean() < base["rho"].mean())
        facts[f"{dataset}: mean train accuracy lower for {label} than baseline"] = bool(
            deep["train_acc"].mean() < base["train_acc"].mean())
    facts["collapsed models have the baseline's parameter count"] = same_params
    facts["collapsed models compute the trained function (rel. error < 1e-4)"] = exact
    facts["every model far above chance (test accuracy > 0.5)"] = bool((results["test_acc"] > 0.5).all())
    return facts


def significance_statement(comparison: pd.DataFrame, alpha: float = 0.05, unit: str = "points",
                           caution: bool = True) -> str:
    """Plain-language sentences for :func:`compare_to_baseline`'s rows; with ``caution``, a closing note when the
    tests have little power (fewer than 5 seeds per model)."""
    lines = []
    for _, r in comparison.iterrows():
        scale = 100.0 if unit == "points" and r["metric"] in ("test_acc", "train_acc", "gap") else 1.0
        what = {"test_acc": "test accuracy", "train_acc": "train accuracy", "gap": "train-test gap"}.get(
            r["metric"], r["metric"])
        suffix = " percentage points" if scale == 100.0 else ""
        head = (f"{r['dataset']}, {r['model']} vs baseline: {what} differs by {scale * r['difference']:+.2f}"
                f"{suffix}")
        if math.isnan(r["welch_p"]):
            lines.append(head + "; no test is possible (fewer than two seeds per model, or no spread at all).")
            continue
        ci = f"95% CI [{scale * r['ci_low']:+.2f}, {scale * r['ci_high']:+.2f}]"
        verdict = ("significant" if r["welch_p"] < alpha else "not significant") + f" at the {alpha:g} level"
        lines.append(f"{head} ({ci}; Welch p = {r['welch_p']:.2g}): {verdict}.")
    n = int(min(comparison["n_baseline"].min(), comparison["n_model"].min())) if len(comparison) else 0
    if caution and 2 <= n < 5:
        lines.append(f"Caution: with {n} seeds per model these tests have little power. A real difference smaller than "
                     "a few times the seed-to-seed spread would usually be missed, so 'not significant' does not mean "
                     "'no effect'; and several tests are run here without a correction for multiple comparisons.")
    return "\n".join(lines)


def save_classification_results(results: pd.DataFrame, config: ClassificationConfig, path: str | Path,
                                command: str) -> Path:
    """Write results and their provenance (command, config, hardware, torch version, date, seeds) as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if torch.cuda.is_available():
        hardware = torch.cuda.get_device_name(0)
    else:
        hardware = f"{platform.processor() or platform.machine()} CPU"
    payload = {
        "command": command,
        "config": dataclasses.asdict(config),
        "hardware": hardware,
        "torch": torch.__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seeds": list(config.seeds),
        "results": results.to_dict(orient="records"),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)
    return path


def load_classification_results(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The results and provenance stored at ``path`` by :func:`save_classification_results`, or ``None`` if there is
    no file.

    A file without every field of :data:`PROVENANCE_FIELDS` is refused with a ``ValueError``: results whose origin
    cannot be told are not shown.
    """
    path = Path(path)
    if not path.is_file():
        return None
    payload = json.loads(path.read_text())
    missing = [f for f in PROVENANCE_FIELDS if not payload.get(f)]
    if missing:
        raise ValueError(f"{path} lacks the provenance fields {missing}; "
                         "re-create it with save_classification_results().")
    provenance = {k: v for k, v in payload.items() if k != "results"}
    return pd.DataFrame(payload["results"]), provenance


def main(argv: list[str] | None = None) -> Path:
    """Command line: run the preset for ``$LOWRANK_SCALE`` (or ``--scale``) and store the results with provenance."""
    parser = argparse.ArgumentParser(description="Baseline vs linearly over-parameterized image classifiers.")
    parser.add_argument("--scale", choices=("quick", "full"), default=None, help="default: $LOWRANK_SCALE, else quick")
    parser.add_argument("--out", required=True,
                        help="JSON file for the results, e.g. lowrank_utils/stored_runs/classification_full.json")
    parser.add_argument("--datasets", nargs="+", default=None, help="override the preset's datasets")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="override the preset's seeds")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs (e.g. 1 to time it)")
    parser.add_argument("--train-subset", type=int, default=None, help="override the number of training images")
    parser.add_argument("--test-subset", type=int, default=None, help="override the number of test images")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.datasets:
        overrides["datasets"] = tuple(args.datasets)
    if args.seeds:
        overrides["seeds"] = tuple(args.seeds)
    for name in ("train_subset", "test_subset"):
        if getattr(args, name):
            overrides[name] = getattr(args, name)
    scale = args.scale or get_scale(verbose=True)
    preset = ClassificationConfig.for_scale(scale)
    if args.test_subset:
        overrides["rank_samples"] = min(args.test_subset, preset.rank_samples)
    if args.epochs:
        overrides["epochs"] = args.epochs
        if preset.schedule == "step":
            # Keep the drops at the same fractions of training (60 and 120 of 180 become 1/3 and 2/3 of the run).
            kept = {round(m * args.epochs / preset.epochs) for m in preset.milestones} - {0, args.epochs}
            if kept:
                overrides["milestones"] = tuple(sorted(kept))
            else:
                overrides.update(schedule="cosine", milestones=())
    config = ClassificationConfig.for_scale(scale, **overrides)
    results = run_classification(config)
    print(summarize(results).round(4).to_string(index=False))
    print(significance_statement(compare_to_baseline(results)))
    command = " ".join(["python", "-m", "lowrank_utils.chapters.ch08_image_classification.experiment", *(argv or sys.argv[1:])])
    return save_classification_results(results, config, args.out, f"LOWRANK_SCALE={scale} {command}")


if __name__ == "__main__":
    main()
