"""Chapter 8: does linear over-parameterization make image classifiers generalise better? A fair, powered test.

A baseline network and its linearly over-parameterized versions (every conv / linear layer a product of ``depth``
factors, :func:`~lowrank_utils.overparam.overparameterize`) are compared under one protocol:

1. **Validation split.** ``validation_size`` images are drawn (class-balanced, by ``split_seed``) from the *training*
   split; the models train on (a class-balanced ``train_subset`` subset of) the rest. The test split is never used to
   choose anything.
2. **Learning rate per model.** Each model trains once (seed ``grid_seed``) at every learning rate of ``lr_grid``;
   the one with the best final validation accuracy is kept (:func:`select_learning_rates`). A product of factors
   has a different effective step size, so one shared learning rate would not be fair.
3. **Seeds.** Each model trains from every seed of ``seeds`` at its chosen rate; only then is each run, collapsed
   back to the baseline architecture, evaluated on the test split (once).
4. **Statistics.** The mean difference to the baseline with a 95% confidence interval, Welch's and a paired t-test,
   and the smallest difference the seeds could have detected (:func:`compare_to_baseline`).

Training runs through the package's one image-classification loop (:func:`lowrank_utils.train.images.fit`); the
over-parameterized layers use their composed fast path where it is cheaper, so an over-parameterized run costs about
what the baseline costs.

Presets of :class:`ClassificationConfig`: :meth:`~lowrank_utils.presets.Presets.quick` (a live CPU run of well
under a minute on Fashion-MNIST subsets), :meth:`~lowrank_utils.presets.Presets.full` (the full Fashion-MNIST,
55,000 / 5,000 / 10,000 images, two architectures: the runs stored with the package, under an hour of CPU time) and
:meth:`ClassificationConfig.cifar` (ResNet-18 on CIFAR-10, one GPU, run it yourself). The command line runs a
preset and stores one JSON file per run, resumably::

    python -m lowrank_utils.chapters.ch08_image_classification.experiment --preset full \\
        --out lowrank_utils/stored_runs/ch08_fashion_mnist
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from tqdm.auto import tqdm

from lowrank_utils import validate as check
from lowrank_utils.data import dataset_info, load_dataset
from lowrank_utils.models import ARCHS, build_model, count_parameters, forward_macs, model_label
from lowrank_utils.overparam import collapse
from lowrank_utils.presets import Presets
from lowrank_utils.rank import gram_effective_rank
from lowrank_utils.results import STORED_RUNS, load_results, save_results
from lowrank_utils.runtime import cpu_threads, get_device, progress_enabled, seed_everything
from lowrank_utils.train.images import (
    OPTIMIZERS,
    Precision,
    TensorBatches,
    TrainingDiverged,
    cudnn_benchmark,
    evaluate,
    fit,
    learning_rate,
    make_optimizer,
    predict,
    random_crop_flip,
)

__all__ = [
    "RESULT_COLUMNS",
    "STORED_FOLDER",
    "ClassificationConfig",
    "RunSpec",
    "SplitData",
    "classification_facts",
    "compare_to_baseline",
    "composed_cost_ratio",
    "detectable_difference",
    "load_stored_protocol",
    "main",
    "prepare_data",
    "run_protocol",
    "run_stored_protocol",
    "select_learning_rates",
    "significance_statement",
    "summarize",
    "train_run",
    "training_flops",
    "validation_split",
]

RESULT_COLUMNS: tuple[str, ...] = (
    "dataset", "arch", "model", "depth", "stage", "lr", "seed", "val_acc", "val_loss", "test_acc", "train_acc", "gap",
    "rho", "rho_uncentered", "train_loss", "params_train", "params_collapsed", "collapse_error", "epochs",
    "diverged", "wall_time", "cpu_time",
)
"""Columns of a run's row (:func:`train_run`). Grid runs leave the test columns (and ``train_acc``, ``gap``, ``rho``)
empty: they are never evaluated on the test split."""

STORED_FOLDER = STORED_RUNS / "ch08_fashion_mnist"
"""Where the full preset's runs are stored, one JSON file per run (package data)."""

STAGES: tuple[str, ...] = ("grid", "final")


# --------------------------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class ClassificationConfig(Presets):
    """Everything the protocol needs; invalid values raise ``ValueError`` when the config is made.

    * ``datasets``, ``archs`` -- names from :data:`lowrank_utils.data.DATASETS` (not ImageNet: chapter 9 trains it)
      and from :data:`lowrank_utils.models.ARCHS`; ``width`` -- first-block channels (``None``: the arch's default).
    * ``depths`` -- factors per layer; ``1`` is the plain baseline and must be included.
    * ``lr_grid``, ``grid_seed`` -- the learning rates tried for every model, from one seed; ``seeds`` -- the seeds
      each model then trains from at its chosen rate (``grid_seed`` must not be one of them).
    * ``validation_size``, ``split_seed`` -- images held out of the training split for choosing; ``train_subset`` /
      ``test_subset`` -- class-balanced subsets of the rest and of the test split (``None``: all of it).
    * ``rank_samples``, ``rank_center`` -- ρ of the (centred) Gram matrix of the penultimate embeddings of the first
      ``rank_samples`` test images. ``train_eval_subset`` -- the final train accuracy (and so the gap) is measured on
      the first this-many training images (``None``: all), to save time on big training sets.
    * ``epochs``, ``batch_size``, ``optimizer`` (:data:`~lowrank_utils.train.images.OPTIMIZERS`), ``momentum``,
      ``weight_decay``, ``schedule``, ``milestones`` (fractions of training), ``warmup_epochs``.
    * ``augment`` (random crops, flips for CIFAR), ``amp``, ``channels_last`` (CUDA only), ``device`` (``None``:
      CUDA, then MPS, then CPU), ``cpu_threads`` (``None``: leave torch's setting), ``progress``.
    """

    FULL: ClassVar[Mapping[str, Any]] = dict(
        archs=("compact_cnn", "small_cnn"), train_subset=None, validation_size=5000, test_subset=None,
        train_eval_subset=10000, rank_samples=1000, lr_grid=(0.004, 0.02, 0.1), grid_seed=100,
        seeds=(0, 1, 2, 3, 4), epochs=3, batch_size=128, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
        schedule="cosine", progress=False,
    )
    CIFAR: ClassVar[Mapping[str, Any]] = dict(
        datasets=("cifar10",), archs=("resnet18",), lr_grid=(0.03, 0.1, 0.3), train_subset=None, validation_size=5000,
        test_subset=None, epochs=60, batch_size=128, rank_samples=1000, augment=True, amp=True, channels_last=True,
        cpu_threads=None, warmup_epochs=1,
    )

    datasets: tuple[str, ...] = ("fashion_mnist",)
    archs: tuple[str, ...] = ("compact_cnn",)
    width: int | None = None
    depths: tuple[int, ...] = (1, 2, 4)
    lr_grid: tuple[float, ...] = (0.004, 0.02, 0.1)
    grid_seed: int = 100
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    validation_size: int = 500
    split_seed: int = 0
    train_subset: int | None = 1000
    test_subset: int | None = 1000
    train_eval_subset: int | None = None
    rank_samples: int = 300
    rank_center: bool = True
    epochs: int = 4
    batch_size: int = 50
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    milestones: tuple[float, ...] = ()
    warmup_epochs: int = 0
    augment: bool = False
    amp: bool = False
    channels_last: bool = False
    device: str | None = None
    cpu_threads: int | None = 1
    data_root: str | None = None
    download: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        check.names("datasets", self.datasets, [d for d in _dataset_names() if d != "imagenet"], "dataset")
        check.names("archs", self.archs, ARCHS, "arch")
        if self.width is not None:
            check.integer("width", self.width)
        depths = check.integers("depths", self.depths, unique=True)
        if 1 not in depths:
            raise ValueError(f"depths must include 1, the plain baseline the others are compared with; got {depths}.")
        if not self.lr_grid:
            raise ValueError("lr_grid must hold at least one learning rate.")
        for lr in self.lr_grid:
            check.number("every learning rate of lr_grid", lr)
        if len(set(self.lr_grid)) != len(self.lr_grid):
            raise ValueError(f"lr_grid repeats a value: {self.lr_grid}.")
        seeds = check.integers("seeds", self.seeds, 0, unique=True)
        check.integer("grid_seed", self.grid_seed, 0)
        if self.grid_seed in seeds:
            raise ValueError(f"grid_seed={self.grid_seed} is also one of the seeds {seeds}: the runs that choose the "
                             "learning rate must not be the runs that are reported.")
        check.integer("validation_size", self.validation_size)
        check.integer("split_seed", self.split_seed, 0)
        for name in ("train_subset", "test_subset", "train_eval_subset"):
            if getattr(self, name) is not None:
                check.integer(name, getattr(self, name))
        for name in ("epochs", "batch_size"):
            check.integer(name, getattr(self, name))
        check.integer("rank_samples", self.rank_samples, 2)
        if self.test_subset is not None and self.rank_samples > self.test_subset:
            raise ValueError(f"rank_samples={self.rank_samples} exceeds test_subset={self.test_subset}; lower it.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}.")
        check.number("weight_decay", self.weight_decay, allow_zero=True)
        learning_rate(1.0, 0.0, self.epochs, schedule=self.schedule)  # raises for an unknown schedule
        if any(not 0 < m < 1 for m in self.milestones) or list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"milestones are increasing fractions of training strictly between 0 and 1, e.g. "
                             f"(1/3, 2/3); got {self.milestones!r}.")
        if self.schedule == "step" and not self.milestones:
            raise ValueError("schedule='step' needs milestones (fractions of training at which the lr drops /10).")
        if not isinstance(self.warmup_epochs, int) or not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs must be an integer in [0, epochs), got {self.warmup_epochs!r}.")
        if self.cpu_threads is not None:
            check.integer("cpu_threads", self.cpu_threads)
        if self.device is not None:
            check.device(self.device)

    @classmethod
    def cifar(cls, **overrides: Any) -> ClassificationConfig:
        """The run-it-yourself GPU preset: a CIFAR-style ResNet-18 on CIFAR-10 (45,000 / 5,000 / 10,000), the same
        protocol, 60 epochs with crops and flips, mixed precision, channels-last (quick with ``CIFAR`` applied)."""
        return cls(**{**cls.QUICK, **cls.CIFAR, **overrides})

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ClassificationConfig:
        """A preset by name: ``quick``, ``full`` or ``cifar``."""
        presets = {"quick": cls.quick, "full": cls.full, "cifar": cls.cifar}
        if name not in presets:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(presets)}.")
        return presets[name](**overrides)

    def replace(self, **changes: Any) -> ClassificationConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def lr_at(self, base_lr: float) -> Any:
        """The schedule of this config for a base learning rate, as a function of the fractional epoch."""
        return lambda epoch: learning_rate(base_lr, epoch, self.epochs, schedule=self.schedule,
                                           warmup_epochs=self.warmup_epochs, milestones=self.milestones)


def _dataset_names() -> tuple[str, ...]:
    from lowrank_utils.data import DATASETS

    return DATASETS


# --------------------------------------------------------------------------------------------------------------------
# Data: one split, held as tensors on the training device


@dataclass(frozen=True)
class SplitData:
    """Training, validation and test images and labels of one dataset, and where the first two came from: indices
    into the dataset's training split (``test`` is the separate test split)."""

    dataset: str
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    train_index: Tensor
    val_index: Tensor

    def to(self, device: torch.device) -> SplitData:
        """The same data on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            moved[name] = moved[name].to(device)
        return SplitData(**moved)


def validation_split(labels: Tensor, validation_size: int, seed: int = 0,
                     train_subset: int | None = None) -> tuple[Tensor, Tensor]:
    """(train indices, validation indices) into a training split with these ``labels``: class-balanced, drawn in a
    random order fixed by ``seed``; the validation images are never training images. ``train_subset`` keeps a
    class-balanced subset of the rest (``None``: all of it)."""
    labels = torch.as_tensor(labels).long()
    n = len(labels)
    check.integer("validation_size", validation_size)
    if validation_size >= n:
        raise ValueError(f"validation_size={validation_size} leaves no training images out of {n}.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val = _balanced_take(order, labels, validation_size)
    taken = torch.zeros(n, dtype=torch.bool)
    taken[val] = True
    rest = order[~taken[order]]
    train = rest if train_subset is None or train_subset >= len(rest) else _balanced_take(rest, labels, train_subset)
    return train.sort().values, val.sort().values


def _balanced_take(order: Tensor, labels: Tensor, k: int) -> Tensor:
    """The first ``k`` indices of ``order`` taken round-robin over classes (as class-balanced as ``k`` allows)."""
    by_class = [order[labels[order] == c] for c in labels.unique().tolist()]
    picked: list[Tensor] = []
    rank = 0
    while sum(len(p) for p in picked) < k:
        row = [members[rank : rank + 1] for members in by_class if rank < len(members)]
        if not row:
            break
        picked.extend(row)
        rank += 1
    return torch.cat(picked)[:k]


def _decode(ds: Dataset, indices: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Images (through the dataset's transform) and labels of ``ds`` at ``indices`` (``None``: all), as tensors."""
    if indices is not None:
        ds = Subset(ds, indices.tolist())
    xs, ys = [], []
    for x, y in DataLoader(ds, batch_size=1000, shuffle=False):
        xs.append(x)
        ys.append(torch.as_tensor(y))
    return torch.cat(xs), torch.cat(ys).long()


def _labels(ds: Dataset) -> Tensor:
    """Every label of ``ds`` without decoding its images where the dataset keeps them apart."""
    if isinstance(ds, TensorDataset):
        return ds.tensors[1].long()
    targets = getattr(ds, "targets", None)
    if targets is not None:
        return torch.as_tensor(targets).long()
    return _decode(ds)[1]


def prepare_data(config: ClassificationConfig, dataset: str) -> SplitData:
    """The dataset's training split cut into training and validation images (:func:`validation_split`), and its
    test split (a class-balanced ``test_subset`` subset), as CPU tensors. Only the images used are decoded."""
    train_split = load_dataset(dataset, "train", root=config.data_root, download=config.download)
    train, val = validation_split(_labels(train_split), config.validation_size, config.split_seed, config.train_subset)
    x_train, y_train = _decode(train_split, train)
    x_val, y_val = _decode(train_split, val)
    x_test, y_test = _decode(load_dataset(dataset, "test", root=config.data_root, download=config.download,
                                          subset=config.test_subset))
    if config.rank_samples > len(x_test):
        raise ValueError(f"rank_samples={config.rank_samples} exceeds the {len(x_test)} test images of {dataset}.")
    return SplitData(dataset, x_train, y_train, x_val, y_val, x_test, y_test, train, val)


# --------------------------------------------------------------------------------------------------------------------
# One training run


def train_run(config: ClassificationConfig, data: SplitData, arch: str, depth: int, lr: float, seed: int,
              stage: str, device: torch.device | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """Train one model and return its row (:data:`RESULT_COLUMNS`) and its per-epoch history (training loss and
    accuracy, validation loss and accuracy, learning rate, seconds).

    ``stage="grid"`` runs only touch the training and validation images; ``stage="final"`` runs are evaluated once,
    after training, on the test images (and on all training images, for the train-test gap). Every evaluation is
    of the collapsed model, the baseline architecture. A run whose loss becomes NaN is returned with
    ``diverged=True`` and NaN metrics instead of raising.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}.")
    device = device if device is not None else data.x_train.device
    info = dataset_info(data.dataset)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    channels_last = config.channels_last and device.type == "cuda"  # channels-last conv backward is CUDA-only here
    generator = seed_everything(seed)
    model = build_model(arch, info.channels, info.num_classes, config.width, depth, info.image_size).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    params_train = count_parameters(model)
    optimizer = make_optimizer(model.parameters(), config.optimizer, lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    fill = torch.tensor([-m / s for m, s in zip(info.mean, info.std, strict=True)])  # black after normalisation
    pad, flip = (4 if info.image_size >= 32 else 2), data.dataset.startswith("cifar")

    def augment(x: Tensor) -> Tensor:
        return random_crop_flip(x, pad, flip, fill, generator)

    transform = augment if config.augment else None
    batches = TensorBatches(data.x_train, data.y_train, config.batch_size, generator=generator, drop_last=True,
                             transform=transform)
    history: list[dict[str, Any]] = []

    def on_epoch(stats: Any) -> None:
        val = evaluate(model, _chunks(data.x_val, data.y_val), channels_last=channels_last).metrics()
        history.append({"epoch": stats.epoch + 1, "train_loss": stats.train_loss, "train_acc": stats.train_acc,
                        "val_loss": val["loss"], "val_acc": val["acc"], "lr": stats.lr, "seconds": stats.seconds})

    row: dict[str, Any] = {
        "dataset": data.dataset, "arch": arch, "model": model_label(depth), "depth": depth, "stage": stage,
        "lr": lr, "seed": seed, "params_train": params_train, "epochs": config.epochs, "diverged": False,
    }
    for name in ("val_acc", "val_loss", "test_acc", "train_acc", "gap", "rho", "rho_uncentered", "train_loss",
                 "params_collapsed", "collapse_error"):
        row[name] = math.nan
    try:
        fit(model, optimizer, lambda epoch: batches, epochs=config.epochs, lr=config.lr_at(lr),
            precision=Precision(device, config.amp), channels_last=channels_last, on_epoch=on_epoch,
            name=f"{data.dataset}, {arch}, {model_label(depth)}, lr {lr:g}, seed {seed}")
    except TrainingDiverged:
        row["diverged"] = True
    if not row["diverged"]:
        row["train_loss"] = history[-1]["train_loss"]
        collapsed = collapse(model).eval()
        if channels_last:
            collapsed = collapsed.to(memory_format=torch.channels_last)
        row["params_collapsed"] = count_parameters(collapsed)
        val = evaluate(collapsed, _chunks(data.x_val, data.y_val), channels_last=channels_last).metrics()
        row.update(val_acc=val["acc"], val_loss=val["loss"])
        probe = data.x_val[:500]
        reference = predict(model, probe, channels_last=channels_last)
        candidate = predict(collapsed, probe, channels_last=channels_last)
        row["collapse_error"] = float((reference - candidate).abs().max() / reference.abs().max().clamp_min(1e-12))
        if stage == "final":  # the only place the test split is read
            test = evaluate(collapsed, _chunks(data.x_test, data.y_test), channels_last=channels_last)
            k = config.train_eval_subset or len(data.x_train)
            train = evaluate(collapsed, _chunks(data.x_train[:k], data.y_train[:k]), channels_last=channels_last)
            row["test_acc"], row["train_acc"] = test.metrics()["acc"], train.metrics()["acc"]
            row["gap"] = row["train_acc"] - row["test_acc"]
            embeddings = predict(collapsed, data.x_test[: config.rank_samples], channels_last=channels_last,
                                 features=True).double()
            rho = float(gram_effective_rank(embeddings, center=config.rank_center))
            other = float(gram_effective_rank(embeddings, center=not config.rank_center))
            row["rho"], row["rho_uncentered"] = (rho, other) if config.rank_center else (other, rho)
    row["wall_time"] = time.perf_counter() - wall0
    row["cpu_time"] = time.process_time() - cpu0
    frame = pd.DataFrame(history, columns=["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr_now",
                                           "seconds"] if not history else None)
    if history:
        frame = frame.rename(columns={"lr": "lr_now"})
    for position, key in enumerate(("dataset", "arch", "depth", "stage", "lr", "seed")):
        frame.insert(position, key, row[key])
    return {k: row[k] for k in RESULT_COLUMNS}, frame


def _chunks(x: Tensor, y: Tensor, size: int = 1000) -> Iterator[tuple[Tensor, Tensor]]:
    for start in range(0, len(x), size):
        yield x[start : start + size], y[start : start + size]


def select_learning_rates(grid: pd.DataFrame) -> pd.DataFrame:
    """For each (dataset, arch, depth), the learning rate of the grid run with the best **validation** accuracy
    (ties: the lower validation loss). Test columns, if present, are ignored.

    Columns: dataset, arch, depth, model, lr, val_acc, lrs_tried, at_edge (the choice is the smallest or largest rate
    tried: the grid may not have bracketed the best rate) and diverged (runs of that model that diverged).
    """
    missing = {"dataset", "arch", "depth", "lr", "val_acc", "val_loss"} - set(grid.columns)
    if missing:
        raise ValueError(f"select_learning_rates needs the columns {sorted(missing)} of the grid runs.")
    rows = []
    for (dataset, arch, depth), part in grid.groupby(["dataset", "arch", "depth"], sort=True):
        ok = part[part["val_acc"].notna()]
        if ok.empty:
            raise ValueError(f"every grid run of {dataset}, {arch}, depth {depth} diverged; try smaller rates.")
        best = ok.sort_values(["val_acc", "val_loss"], ascending=[False, True]).iloc[0]
        tried = sorted(part["lr"].unique())
        rows.append({"dataset": dataset, "arch": arch, "depth": int(depth), "model": model_label(int(depth)),
                     "lr": float(best["lr"]), "val_acc": float(best["val_acc"]),
                     "lrs_tried": ", ".join(f"{v:g}" for v in tried),
                     "at_edge": bool(len(tried) > 1 and best["lr"] in (tried[0], tried[-1])),
                     "diverged": int(part["val_acc"].isna().sum())})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------------------
# The protocol, in memory (the notebook's live run)


def run_protocol(config: ClassificationConfig | None = None) -> dict[str, pd.DataFrame]:
    """Run the whole protocol and return tidy frames: ``grid`` (one row per grid run), ``choice``
    (:func:`select_learning_rates`), ``results`` (one row per final run) and ``history`` (per epoch, every run)."""
    config = ClassificationConfig.quick() if config is None else config
    if not isinstance(config, ClassificationConfig):
        raise ValueError(f"config must be a ClassificationConfig, got {type(config).__name__}.")
    device = get_device(config.device, verbose=False)
    grid_rows, final_rows, histories, choices = [], [], [], []
    n_models = len(config.archs) * len(config.depths)
    total = len(config.datasets) * n_models * (len(config.lr_grid) + len(config.seeds))
    with cpu_threads(config.cpu_threads, device=device), cudnn_benchmark(device), \
            tqdm(total=total, desc="runs", disable=not progress_enabled(config.progress)) as bar:
        for dataset in config.datasets:
            data = prepare_data(config, dataset).to(device)
            for arch in config.archs:
                for depth in config.depths:
                    for lr in config.lr_grid:
                        row, hist = train_run(config, data, arch, depth, lr, config.grid_seed, "grid", device)
                        grid_rows.append(row)
                        histories.append(hist)
                        bar.update(1)
                choice = select_learning_rates(pd.DataFrame(
                    [r for r in grid_rows if r["dataset"] == dataset and r["arch"] == arch]))
                choices.append(choice)
                for _, chosen in choice.iterrows():
                    for seed in config.seeds:
                        row, hist = train_run(config, data, arch, int(chosen["depth"]), float(chosen["lr"]), seed,
                                              "final", device)
                        final_rows.append(row)
                        histories.append(hist)
                        bar.update(1)
    return {"grid": pd.DataFrame(grid_rows, columns=list(RESULT_COLUMNS)),
            "choice": pd.concat(choices, ignore_index=True),
            "results": pd.DataFrame(final_rows, columns=list(RESULT_COLUMNS)),
            "history": pd.concat([h for h in histories if len(h)], ignore_index=True)}


# --------------------------------------------------------------------------------------------------------------------
# The protocol, stored: one JSON file per run, resumable, shareable between worker processes


@dataclass(frozen=True)
class RunSpec:
    """What one stored run is: its stage, dataset, architecture, factors per layer, learning rate and seed, and the
    protocol's whole config (stored as the run's ``config``)."""

    stage: str
    dataset: str
    arch: str
    depth: int
    lr: float
    seed: int
    protocol: dict[str, Any]

    @property
    def seeds(self) -> tuple[int, ...]:
        """The run's seed, as the stored ``seeds`` field."""
        return (self.seed,)


def _run_name(stage: str, dataset: str, arch: str, depth: int, lr: float, seed: int) -> str:
    return f"{stage}_{dataset}_{arch}_x{depth}_lr{lr:g}_seed{seed}"


def _hardware(threads: int | None) -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    return f"{cpu} CPU, {os.cpu_count()} cores shared with other jobs, {threads or torch.get_num_threads()} torch " \
           f"thread(s) per run"


def _claim(path: Path) -> bool:
    """Create ``path`` (a lock file) atomically; False when another worker holds it."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    return True


def run_stored_protocol(config: ClassificationConfig, folder: str | Path, *, command: str,
                        poll_seconds: float = 20.0) -> Path:
    """Run the protocol with one JSON file per run in ``folder`` (:func:`lowrank_utils.results.save_results`:
    provenance, the run's row and its history), skipping runs whose file exists, so an interrupted job resumes
    where it stopped. Several processes may work on one folder at once: each claims a run with a lock file
    (``<run>.lock``; delete stale ones after a crash). Final runs of a model start once all its grid runs exist."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    device = get_device(config.device, verbose=False)
    data_cache: dict[str, SplitData] = {}

    def done(name: str) -> bool:
        return (folder / f"{name}.json").is_file()

    def run(stage: str, dataset: str, arch: str, depth: int, lr: float, seed: int) -> None:
        name = _run_name(stage, dataset, arch, depth, lr, seed)
        lock = folder / f"{name}.lock"
        if done(name) or not _claim(lock):
            return
        try:
            if dataset not in data_cache:
                data_cache.clear()
                data_cache[dataset] = prepare_data(config, dataset).to(device)
            row, history = train_run(config, data_cache[dataset], arch, depth, lr, seed, stage, device)
            spec = RunSpec(stage, dataset, arch, depth, lr, seed, dataclasses.asdict(config))
            save_results({"run": pd.DataFrame([row]), "history": history}, spec, folder / f"{name}.json",
                         command=command, wall_time_s=row["wall_time"], hardware=_hardware(config.cpu_threads),
                         note=f"{stage} run; {row['cpu_time']:.1f} s of CPU time (this process).")
            print(f"{name}: val {row['val_acc']:.4f}, test {row['test_acc']:.4f}, {row['wall_time']:.0f} s wall, "
                  f"{row['cpu_time']:.0f} s CPU", flush=True)
        finally:
            lock.unlink(missing_ok=True)

    with cpu_threads(config.cpu_threads, device=device), cudnn_benchmark(device):
        while _stored_pass(config, folder, run, done):
            time.sleep(poll_seconds)  # another worker holds a run this one needs
    return folder


def _stored_pass(config: ClassificationConfig, folder: Path, run: Any, done: Any) -> bool:
    """One pass over every run of the protocol; True while some run is still held by another worker."""
    waiting = False
    for dataset in config.datasets:
        for arch in config.archs:
            grid_names = [(d, lr) for d in config.depths for lr in config.lr_grid]
            for depth, lr in grid_names:
                run("grid", dataset, arch, depth, lr, config.grid_seed)
            if not all(done(_run_name("grid", dataset, arch, d, lr, config.grid_seed)) for d, lr in grid_names):
                waiting = True
                continue
            grid = _load_runs(folder, f"grid_{dataset}_{arch}_")
            grid = grid[grid["lr"].isin(config.lr_grid) & grid["depth"].isin(config.depths)
                        & (grid["seed"] == config.grid_seed)]
            for _, chosen in select_learning_rates(grid).iterrows():
                for seed in config.seeds:
                    run("final", dataset, arch, int(chosen["depth"]), float(chosen["lr"]), seed)
                    if not done(_run_name("final", dataset, arch, int(chosen["depth"]), float(chosen["lr"]),
                                          seed)):
                        waiting = True
    return waiting


def _load_runs(folder: Path, prefix: str) -> pd.DataFrame:
    rows = []
    for path in sorted(folder.glob(f"{prefix}*.json")):
        loaded = load_results(path)
        assert loaded is not None
        rows.append(loaded[0]["run"])
    return _numeric(pd.concat(rows, ignore_index=True)) if rows else pd.DataFrame(columns=list(RESULT_COLUMNS))


def _numeric(table: pd.DataFrame) -> pd.DataFrame:
    """Metric columns as floats (JSON stores a diverged run's NaN as null, which pandas reads as None)."""
    for name in ("lr", "val_acc", "val_loss", "test_acc", "train_acc", "gap", "rho", "rho_uncentered", "train_loss",
                 "collapse_error", "wall_time", "cpu_time"):
        if name in table:
            table[name] = pd.to_numeric(table[name], errors="coerce").astype(float)
    return table


def load_stored_protocol(folder: str | Path = STORED_FOLDER) -> tuple[dict[str, pd.DataFrame], pd.DataFrame] | None:
    """The stored runs in ``folder`` as the frames :func:`run_protocol` returns, plus ``status`` (per dataset and
    arch: grid runs and seeded runs done out of those the protocol asks for), and one provenance row per run file
    (command, hardware, torch, date, seeds, wall time, note); ``None`` when the folder holds no run.

    A learning rate is chosen only for an architecture whose grid is complete, and only seeded runs at the chosen
    rate are returned (a folder may keep runs of an earlier grid). A run file without its provenance is refused with
    ``ValueError`` (by :func:`lowrank_utils.results.load_results`).
    """
    folder = Path(folder)
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not paths:
        return None
    runs, histories, provenance = [], [], []
    protocols: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        loaded = load_results(path)
        assert loaded is not None
        frames, prov = loaded
        runs.append(frames["run"])
        if len(frames["history"]):
            histories.append(frames["history"])
        protocol = prov["config"]["protocol"]
        for dataset in protocol["datasets"]:  # every model the protocol asks for, whether it has run or not
            for arch in protocol["archs"]:
                protocols.setdefault((dataset, arch), protocol)
        provenance.append({"file": path.name, **{k: prov[k] for k in ("command", "hardware", "torch", "date",
                                                                       "seeds", "wall_time_s", "note")}})
    table = _numeric(pd.concat(runs, ignore_index=True))
    grid = table[table["stage"] == "grid"].reset_index(drop=True)
    status, complete = [], []
    for (dataset, arch), protocol in sorted(protocols.items()):
        ours = grid[(grid["dataset"] == dataset) & (grid["arch"] == arch) & grid["lr"].isin(protocol["lr_grid"])
                    & grid["depth"].isin(protocol["depths"]) & (grid["seed"] == protocol["grid_seed"])]
        grid_asked = len(protocol["depths"]) * len(protocol["lr_grid"])
        seeded = table[(table["stage"] == "final") & (table["dataset"] == dataset) & (table["arch"] == arch)]
        status.append({"dataset": dataset, "arch": arch, "grid_runs": f"{len(ours)}/{grid_asked}",
                       "seeded_runs": f"{len(seeded)}/{len(protocol['depths']) * len(protocol['seeds'])}"})
        if len(ours) == grid_asked:
            complete.append(ours)
    choice = select_learning_rates(pd.concat(complete)) if complete else pd.DataFrame(
        columns=["dataset", "arch", "depth", "model", "lr", "val_acc", "lrs_tried", "at_edge", "diverged"])
    final = table[table["stage"] == "final"]
    if choice.empty:
        final = final.iloc[:0]
    else:
        final = final.merge(choice[["dataset", "arch", "depth", "lr"]], on=["dataset", "arch", "depth", "lr"])
    frames_out = {"grid": grid, "choice": choice, "results": final.reset_index(drop=True),
                  "history": pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(),
                  "status": pd.DataFrame(status)}
    return frames_out, pd.DataFrame(provenance)


# --------------------------------------------------------------------------------------------------------------------
# Statistics


def _t_interval(values: pd.Series, level: float = 0.95) -> float:
    from scipy import stats

    n = values.count()
    if n < 2:
        return math.nan
    return float(stats.t.ppf(0.5 + level / 2, n - 1) * values.std() / math.sqrt(n))


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, arch, model): the seeds, the learning rate, and the mean of test accuracy (± the half-width of
    its 95% t-interval over seeds), train accuracy, gap (± half-width), ρ (± half-width) and seconds per run."""
    missing = {"dataset", "arch", "model", "depth", "seed", "lr", "test_acc", "train_acc", "gap", "rho",
               "wall_time"} - set(results)
    if missing:
        raise ValueError(f"summarize needs the columns {sorted(missing)} (the final runs of run_protocol).")
    rows = []
    for (dataset, arch, depth, model), part in results.groupby(["dataset", "arch", "depth", "model"], sort=True):
        rows.append({
            "dataset": dataset, "arch": arch, "depth": int(depth), "model": model, "seeds": part["seed"].nunique(),
            "lr": ", ".join(f"{v:g}" for v in sorted(part["lr"].unique())),
            "test_acc": part["test_acc"].mean(), "test_acc_ci": _t_interval(part["test_acc"]),
            "train_acc": part["train_acc"].mean(), "gap": part["gap"].mean(), "gap_ci": _t_interval(part["gap"]),
            "rho": part["rho"].mean(), "rho_ci": _t_interval(part["rho"]), "seconds": part["wall_time"].mean(),
        })
    return pd.DataFrame(rows)


def detectable_difference(sd_a: float, n_a: int, sd_b: float, n_b: int, alpha: float = 0.05,
                          power: float = 0.8) -> float:
    """The smallest true difference of means that a two-sided Welch test at level ``alpha`` detects with probability
    ``power``, for groups with these standard deviations and sizes (normal data; t quantiles at Welch's degrees of
    freedom, the usual approximation to the noncentral t)."""
    from scipy import stats

    if n_a < 2 or n_b < 2:
        return math.nan
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    if va + vb == 0:
        return 0.0
    nu = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    return float((stats.t.ppf(1 - alpha / 2, nu) + stats.t.ppf(power, nu)) * math.sqrt(va + vb))


def compare_to_baseline(results: pd.DataFrame, metric: str = "test_acc", alpha: float = 0.05,
                        power: float = 0.8) -> pd.DataFrame:
    """Each over-parameterized model against its baseline on ``metric``, per (dataset, arch).

    Columns: the means, their difference (model minus baseline) with a Welch 95% confidence interval, Welch's p-value
    (seeds of the two models as independent samples), the p-value of a paired t-test over shared seeds (a seed fixes
    the batch order), ``significant`` (Welch p < ``alpha``) and ``detectable`` (:func:`detectable_difference` at
    ``power``: the difference these seeds would find most of the time). Fewer than two seeds give NaN statistics.
    """
    from scipy import stats

    if metric not in results:
        raise ValueError(f"metric {metric!r} is not a column of the results; use e.g. 'test_acc', 'gap' or 'rho'.")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha!r} and {power!r}.")
    results = results.copy()
    if "arch" not in results:
        results["arch"] = "model"
    rows = []
    for (dataset, arch), part in results.groupby(["dataset", "arch"], sort=True):
        base = part[part["depth"] == 1].set_index("seed")[metric]
        if base.empty:
            raise ValueError(f"no baseline (depth 1) runs for {dataset}, {arch}; compare_to_baseline needs them.")
        for depth, other_part in part[part["depth"] != 1].groupby("depth", sort=True):
            other = other_part.set_index("seed")[metric]
            row: dict[str, Any] = {
                "dataset": dataset, "arch": arch, "model": model_label(int(depth)), "depth": int(depth),
                "metric": metric, "n_baseline": len(base), "n_model": len(other), "baseline_mean": base.mean(),
                "model_mean": other.mean(), "difference": other.mean() - base.mean(), "ci_low": math.nan,
                "ci_high": math.nan, "welch_p": math.nan, "paired_p": math.nan,
                "detectable": detectable_difference(base.std(), len(base), other.std(), len(other), alpha, power),
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


def significance_statement(comparison: pd.DataFrame, alpha: float = 0.05, unit: str = "points") -> str:
    """Plain-language sentences for :func:`compare_to_baseline`'s rows, each with the difference the seeds could
    have detected."""
    lines = []
    for _, r in comparison.iterrows():
        scale = 100.0 if unit == "points" and r["metric"] in ("test_acc", "train_acc", "gap", "val_acc") else 1.0
        what = {"test_acc": "test accuracy", "train_acc": "train accuracy", "gap": "train-test gap",
                "val_acc": "validation accuracy"}.get(r["metric"], r["metric"])
        suffix = " points" if scale == 100.0 else ""
        head = f"{r['dataset']}, {r['arch']}, {r['model']} vs baseline: {what} {scale * r['difference']:+.2f}{suffix}"
        if math.isnan(r["welch_p"]):
            lines.append(head + "; no test is possible (fewer than two seeds per model, or no spread at all).")
            continue
        ci = f"95% CI [{scale * r['ci_low']:+.2f}, {scale * r['ci_high']:+.2f}]"
        verdict = "significant" if r["welch_p"] < alpha else "not significant"
        lines.append(f"{head} ({ci}; Welch p = {r['welch_p']:.2g}, {verdict} at {alpha:g}; "
                     f"{int(min(r['n_baseline'], r['n_model']))} seeds detect about {scale * r['detectable']:.2f}"
                     f"{suffix} with 80% power).")
    return "\n".join(lines)


def classification_facts(results: pd.DataFrame, grid: pd.DataFrame | None = None,
                         choice: pd.DataFrame | None = None) -> dict[str, Any]:
    """Robust, qualitative facts about a protocol's runs (what the book's checked cells print): run counts, that every
    collapsed model is the baseline architecture and computes the trained function, that the grid runs were never
    evaluated on the test split and that every seeded run used its model's chosen rate, and chance-level sanity."""
    facts: dict[str, Any] = {"seeded runs": len(results)}
    if grid is not None:
        facts["grid runs"] = len(grid)
        facts["grid runs evaluated on the test split"] = int(grid["test_acc"].notna().sum())
    if choice is not None:
        chosen = results.merge(choice[["dataset", "arch", "depth", "lr"]], on=["dataset", "arch", "depth"],
                               suffixes=("", "_chosen"))
        facts["seeded runs at their model's chosen rate"] = bool(
            len(chosen) == len(results) and (chosen["lr"] == chosen["lr_chosen"]).all())
    same_params = exact = True
    for _, part in results.groupby(["dataset", "arch"], sort=True):
        base = part[part["depth"] == 1]
        same_params &= bool((part["params_collapsed"] == base["params_train"].iloc[0]).all())
        exact &= bool((part["collapse_error"] < 1e-4).all())
    facts["collapsed models have the baseline's parameter count"] = same_params
    facts["collapsed models compute the trained function (rel. error < 1e-4)"] = exact
    facts["every seeded model far above chance (test accuracy > 0.5)"] = bool((results["test_acc"] > 0.5).all())
    return facts


# --------------------------------------------------------------------------------------------------------------------
# Cost


def training_flops(config: ClassificationConfig) -> pd.DataFrame:
    """A back-of-the-envelope count of the floating-point operations a config's protocol needs, one row per
    (dataset, arch): about 3 forward passes per training image (a backward pass costs two), 2 FLOPs per
    multiply-accumulate, every over-parameterized model at the baseline's cost (the composed path). A lower bound
    on work, not a time: divide by a throughput you have measured to get seconds."""
    rows = []
    for dataset in config.datasets:
        info = dataset_info(dataset)
        for arch in config.archs:
            model = build_model(arch, info.channels, info.num_classes, config.width, 1, info.image_size)
            macs = forward_macs(model, (info.channels, info.image_size, info.image_size))
            images = min(config.train_subset or info.train_size, info.train_size - config.validation_size)
            runs = len(config.depths) * (len(config.lr_grid) + len(config.seeds))
            rows.append({"dataset": dataset, "arch": arch, "macs_per_image": macs, "train_images": images,
                         "epochs": config.epochs, "runs": runs,
                         "flops": 6.0 * macs * images * config.epochs * runs})
    return pd.DataFrame(rows)


def composed_cost_ratio(arch: str = "small_cnn", depths: tuple[int, ...] = (1, 2, 4), batch_size: int = 128,
                        steps: int = 20, threads: int = 1, dataset: str = "fashion_mnist") -> pd.DataFrame:
    """Measured seconds per training step of ``arch`` with ``depth`` factors per layer, with the layers' automatic
    choice (composed where cheaper) and forced to the chained form, and the ratio to the baseline's step time (one
    CPU thread by default). Timings: never print them in a checked cell."""
    from lowrank_utils.overparam import OverparamLayer

    info = dataset_info(dataset)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, info.channels, info.image_size, info.image_size, generator=gen)
    y = torch.randint(0, info.num_classes, (batch_size,), generator=gen)
    rows = []
    with cpu_threads(threads):
        for depth in depths:
            for mode in (("auto", "chained") if depth > 1 else ("auto",)):
                torch.manual_seed(0)
                model = build_model(arch, info.channels, info.num_classes, None, depth, info.image_size)
                for m in model.modules():
                    if isinstance(m, OverparamLayer):
                        m.mode = mode
                opt = make_optimizer(model.parameters(), "sgd", 0.01)
                times = []
                for i in range(steps + 3):
                    t0 = time.perf_counter()
                    out = model(x)
                    loss = torch.nn.functional.cross_entropy(out, y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    if i >= 3:  # the first steps warm up caches and allocators
                        times.append(time.perf_counter() - t0)
                rows.append({"arch": arch, "depth": depth, "forward": "plain" if depth == 1 else mode,
                             "seconds_per_step": float(np.median(times))})
    table = pd.DataFrame(rows)
    base = table.loc[table["depth"] == 1, "seconds_per_step"].iloc[0]
    table["ratio_to_baseline"] = table["seconds_per_step"] / base
    return table


# --------------------------------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> Path:
    """Command line: run a preset's protocol, one JSON file per run in ``--out`` (resumable; several processes may
    share one folder)."""
    parser = argparse.ArgumentParser(description="Baseline vs linearly over-parameterized image classifiers: "
                                                 "validation-chosen learning rates, several seeds, one test.")
    parser.add_argument("--preset", choices=("quick", "full", "cifar"), default="full")
    parser.add_argument("--out", required=True, help="folder for the run files, e.g. "
                                                     "lowrank_utils/stored_runs/ch08_fashion_mnist")
    parser.add_argument("--archs", nargs="+", default=None, help="override the preset's architectures")
    parser.add_argument("--datasets", nargs="+", default=None, help="override the preset's datasets")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="override the preset's seeds")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    parser.add_argument("--cpu-threads", type=int, default=None, help="torch CPU threads per process")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    for name in ("archs", "datasets", "seeds"):
        if getattr(args, name):
            overrides[name] = tuple(getattr(args, name))
    if args.epochs:
        overrides["epochs"] = args.epochs
    if args.cpu_threads:
        overrides["cpu_threads"] = args.cpu_threads
    config = ClassificationConfig.preset(args.preset, **overrides)
    command = " ".join(["python", "-m", "lowrank_utils.chapters.ch08_image_classification.experiment",
                        *(sys.argv[1:] if argv is None else argv)])
    return run_stored_protocol(config, args.out, command=command)


if __name__ == "__main__":
    main()
