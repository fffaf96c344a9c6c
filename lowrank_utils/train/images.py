"""The image-classification training loop: one :func:`fit` used by chapter 7 (the spectrum of a conv layer while a
small CNN trains), chapter 8 (baseline vs over-parameterized classifiers) and the DDP ImageNet trainer of chapter 9.

Pieces, from the inside out:

* :func:`learning_rate` -- the schedule (cosine decay to 0, steps of /10 at fractions of training, or constant), with
  an optional linear warm-up, as a pure function of the fractional epoch;
* :func:`make_optimizer` -- SGD with momentum, SGD with Nesterov momentum, or AdamW;
* :class:`Precision` -- autocast and gradient scaling (on only for CUDA with ``amp``; bfloat16 where supported);
* :func:`train_step` -- one step on one batch, returning the detached loss and logits;
* :func:`fit` -- epochs of steps over any iterable of ``(images, labels)`` batches (a ``DataLoader``, a distributed
  loader, or :class:`TensorBatches` over images held in memory), with per-step and per-epoch callbacks;
* :func:`evaluate` -- loss and top-1 / top-5 correct counts as sums (so processes can add them up), and
  :func:`predict` for logits or penultimate features of images held in memory.

Statistics are accumulated on the training device in float64 and read once per epoch (or when a callback asks):
reading a loss as a Python number at every step would make the CPU wait for the GPU each time.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, cast

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lowrank_utils import validate as check
from lowrank_utils.train.loop import TrainingDiverged

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "EpochStats",
    "EvalTotals",
    "Precision",
    "StepOutput",
    "TensorBatches",
    "TrainingDiverged",
    "cudnn_benchmark",
    "evaluate",
    "fit",
    "learning_rate",
    "make_optimizer",
    "predict",
    "random_crop_flip",
    "train_step",
]

OPTIMIZERS: tuple[str, ...] = ("sgd", "nesterov", "adamw")
"""Optimizers of :func:`make_optimizer`: SGD with momentum, SGD with Nesterov momentum, AdamW."""

SCHEDULES: tuple[str, ...] = ("cosine", "step", "constant")
"""Learning-rate schedules of :func:`learning_rate`."""


# ------------------------------------------------------------------------------------------------ schedule, optimizer
def learning_rate(base_lr: float, epoch: float, epochs: int, *, schedule: str = "cosine", warmup_epochs: float = 0,
                  milestones: Iterable[float] = ()) -> float:
    """The learning rate at a fractional ``epoch`` of ``epochs``.

    A linear warm-up from 0 over the first ``warmup_epochs``; then ``cosine`` decays to 0 at the end of training,
    ``step`` divides by 10 at each fraction of training in ``milestones`` (e.g. ``(1/3, 2/3)``: epochs 60 and 120 of
    180), ``constant`` keeps ``base_lr``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}.")
    if warmup_epochs > 0 and epoch < warmup_epochs:
        return base_lr * epoch / warmup_epochs
    if schedule == "step":
        return base_lr * 0.1 ** sum(epoch >= m * epochs for m in milestones)
    if schedule == "constant":
        return base_lr
    progress = (epoch - warmup_epochs) / max(1e-8, epochs - warmup_epochs)
    return 0.5 * base_lr * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(params: Iterable[Any], name: str, lr: float, *, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``sgd`` (momentum), ``nesterov`` (SGD with Nesterov momentum) or ``adamw`` (decoupled weight decay).

    Weight decay applies to every parameter given, the factors of over-parameterized layers included: decay on the
    factors is not decay on their product, and that difference is part of what over-parameterized training changes.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")
    check.number("lr", lr)
    check.number("weight_decay", weight_decay, allow_zero=True)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if not 0 <= momentum < 1 or (name == "nesterov" and momentum == 0):
        raise ValueError(f"momentum must be in [0, 1) (and > 0 for nesterov), got {momentum!r}.")
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=name == "nesterov")


class Precision:
    """Autocast and gradient scaling for one device: on only for CUDA with ``amp``; bfloat16 where the GPU supports
    it (no scaler needed), else float16 with a gradient scaler. Off, every method is the identity."""

    def __init__(self, device: torch.device | str, amp: bool = False) -> None:
        device = torch.device(device)
        self.enabled = bool(amp) and device.type == "cuda"
        bf16 = self.enabled and torch.cuda.is_bf16_supported()
        self.dtype = torch.bfloat16 if bf16 else torch.float16
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and not bf16)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context of this precision (disabled when off)."""
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)


# ------------------------------------------------------------------------------------------------ one step
class StepOutput(NamedTuple):
    """What :func:`train_step` returns: the batch's mean loss (0-d) and its logits, both detached, on the device."""

    loss: Tensor
    logits: Tensor


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: Tensor, labels: Tensor,
               precision: Precision | None = None, channels_last: bool = False) -> StepOutput:
    """One optimizer step on a batch (cross-entropy; autocast and gradient scaling from ``precision``, if given)."""
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    precision = precision or Precision(images.device, amp=False)
    with precision.autocast():
        logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
    optimizer.zero_grad(set_to_none=True)
    precision.scaler.scale(loss).backward()
    precision.scaler.step(optimizer)
    precision.scaler.update()
    return StepOutput(loss.detach(), logits.detach())


# ------------------------------------------------------------------------------------------------ epochs
@dataclass
class EpochStats:
    """One epoch of :func:`fit`: the mean training loss and accuracy over its batches (the model changing while it
    goes), the number of steps and images, the learning rate of the last step and the wall time in seconds."""

    epoch: int
    train_loss: float
    train_acc: float
    steps: int
    images: int
    lr: float
    seconds: float


class _Running:
    """Sums of loss x batch size, correct predictions and images since the last read, on the device in float64."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self.correct = torch.zeros((), dtype=torch.float64, device=self.device)
        self.count = 0

    def add(self, out: StepOutput, labels: Tensor) -> None:
        self.loss += out.loss.double() * len(labels)
        self.correct += (out.logits.argmax(1) == labels).sum()
        self.count += len(labels)

    def read(self) -> tuple[float, float, int]:
        """(mean loss, accuracy, images) since the last reset; NaN for no images."""
        if self.count == 0:
            return math.nan, math.nan, 0
        return float(self.loss) / self.count, float(self.correct) / self.count, self.count


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Callable[[int], Iterable[tuple[Tensor, Tensor]]],
    *,
    epochs: int,
    lr: Callable[[float], float] | None = None,
    start_epoch: int = 0,
    precision: Precision | None = None,
    channels_last: bool = False,
    max_steps_per_epoch: int | None = None,
    on_step: Callable[[int, Callable[[], tuple[float, float, int]]], None] | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    device: torch.device | str | None = None,
    check_every: int = 100,
    name: str = "model",
) -> list[EpochStats]:
    """Train ``model`` for epochs ``start_epoch .. epochs-1`` and return one :class:`EpochStats` per epoch.

    * ``batches(epoch)`` gives the epoch's ``(images, labels)`` batches (moved to ``device``, default: the model's);
      when it has a length, the fractional epoch passed to ``lr`` is ``epoch + step / len``.
    * ``lr(fractional_epoch)`` sets the learning rate of every parameter group before each step (``None``: leave it).
    * ``on_step(global_step, read)`` runs after each step; ``read()`` returns the (mean loss, accuracy, images) of the
      batches since the previous ``read()`` (reading synchronises with the device, so call it only when needed).
    * ``on_epoch(stats)`` runs after each epoch (evaluation, checkpoints).

    The loss is checked for NaN/inf every ``check_every`` steps and at the end of each epoch; a non-finite loss
    raises :class:`~lowrank_utils.train.loop.TrainingDiverged` naming ``name``, the step and the learning rate.
    """
    check.integer("epochs", epochs)
    check.integer("start_epoch", start_epoch, 0)
    check.integer("check_every", check_every)
    if max_steps_per_epoch is not None:
        check.integer("max_steps_per_epoch", max_steps_per_epoch)
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    epoch_sums, step_sums = _Running(device), _Running(device)
    history: list[EpochStats] = []
    model.train()
    global_step = 0
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        epoch_sums.reset()
        source = batches(epoch)
        n_batches = len(source) if hasattr(source, "__len__") else None  # type: ignore[arg-type]
        steps = 0
        for step, (images, labels) in enumerate(source):
            if max_steps_per_epoch is not None and step >= max_steps_per_epoch:
                break
            if lr is not None:
                value = lr(epoch + step / max(1, n_batches) if n_batches else float(epoch))
                for group in optimizer.param_groups:
                    group["lr"] = value
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            out = train_step(model, optimizer, images, labels, precision, channels_last)
            epoch_sums.add(out, labels)
            steps += 1
            global_step += 1
            if on_step is not None:
                step_sums.add(out, labels)
                on_step(global_step, _reader(step_sums))
            if global_step % check_every == 0 and not torch.isfinite(epoch_sums.loss):
                _diverged(name, global_step, optimizer, history)
        loss, acc, images_seen = epoch_sums.read()
        if not math.isfinite(loss) and images_seen:
            _diverged(name, global_step, optimizer, history)
        stats = EpochStats(epoch, loss, acc, steps, images_seen, float(optimizer.param_groups[0]["lr"]),
                           time.perf_counter() - t0)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    return history


def _reader(sums: _Running) -> Callable[[], tuple[float, float, int]]:
    def read() -> tuple[float, float, int]:
        values = sums.read()
        sums.reset()
        return values

    return read


def _diverged(name: str, step: int, optimizer: torch.optim.Optimizer, history: list[EpochStats]) -> None:
    """Raise the package's :class:`~lowrank_utils.train.loop.TrainingDiverged` (its history: the finished epochs)."""
    raise TrainingDiverged(step, math.nan, f"{name}: NaN or infinite training loss",
                           type(optimizer).__name__.lower(), float(optimizer.param_groups[0]["lr"]),
                           pd.DataFrame([asdict(h) for h in history]))


# ------------------------------------------------------------------------------------------------ evaluation
class EvalTotals(NamedTuple):
    """Sums over an evaluation set (float64, on the device): loss, top-1 and top-5 correct, and the images seen."""

    loss: Tensor
    correct: Tensor
    correct5: Tensor
    total: Tensor

    def metrics(self) -> dict[str, float]:
        """``loss`` (mean), ``acc`` (top-1) and ``top5`` as numbers."""
        n = float(self.total)
        return {"loss": float(self.loss) / n, "acc": float(self.correct) / n, "top5": float(self.correct5) / n}


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, device: torch.device | str | None = None,
             channels_last: bool = False) -> EvalTotals:
    """Cross-entropy and top-1 / top-5 correct counts of ``model`` (in eval mode; its mode is restored) as sums."""
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    zero = lambda: torch.zeros((), dtype=torch.float64, device=device)  # noqa: E731
    loss, correct, correct5, count = zero(), zero(), zero(), zero()
    was_training = model.training
    model.eval()
    try:
        for images, labels in batches:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            logits = model(images).float()
            loss += F.cross_entropy(logits, labels, reduction="sum").double()
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            correct += (top[:, 0] == labels).sum()
            correct5 += (top == labels[:, None]).any(dim=1).sum()
            count += labels.numel()
    finally:
        model.train(was_training)
    return EvalTotals(loss, correct, correct5, count)


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int = 1000, *, channels_last: bool = False,
            features: bool = False) -> Tensor:
    """Logits (or, with ``features``, ``model.features(...)``: the penultimate embeddings) of images held in memory,
    in float32, batch by batch, with the model in eval mode (its mode is restored)."""
    check.integer("batch_size", batch_size)
    was_training = model.training
    model.eval()
    outs = []
    try:
        for start in range(0, len(images), batch_size):
            xb = images[start : start + batch_size]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            head = cast(nn.Module, model.features) if features else model  # features: the penultimate embeddings
            outs.append(head(xb).float())
    finally:
        model.train(was_training)
    return torch.cat(outs)


# ------------------------------------------------------------------------------------------------ data in memory
class TensorBatches:
    """Mini-batches of images held in memory, in an order drawn from ``generator`` (a new one each iteration).

    ``drop_last`` drops the last incomplete batch (batch norm dislikes tiny ones); ``transform`` (e.g. a call of
    :func:`random_crop_flip`) is applied to each batch of images on their device.
    """

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int, *, generator: torch.Generator | None = None,
                 shuffle: bool = True, drop_last: bool = True,
                 transform: Callable[[Tensor], Tensor] | None = None) -> None:
        check.integer("batch_size", batch_size)
        if len(images) != len(labels):
            raise ValueError(f"images and labels differ in length: {len(images)} vs {len(labels)}.")
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.generator, self.shuffle, self.drop_last, self.transform = generator, shuffle, drop_last, transform

    def __len__(self) -> int:
        n = len(self.images)
        return max(1, n // self.batch_size) if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.images)
        order = (torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)).to(
            self.images.device)
        for step in range(len(self)):
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            images = self.images[idx]
            yield (self.transform(images) if self.transform else images), self.labels[idx]


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


@contextlib.contextmanager
def cudnn_benchmark(device: torch.device | str) -> Iterator[None]:
    """Let cuDNN pick the fastest convolution algorithms for fixed input shapes (CUDA only; restored after)."""
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = old or torch.device(device).type == "cuda"
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old
