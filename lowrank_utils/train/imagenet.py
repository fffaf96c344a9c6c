"""ImageNet-style training of a (linearly over-parameterized) torchvision model with PyTorch DDP.

One process per GPU, on one node or many, launched by ``torchrun``; evaluation uses the collapsed model, so the
reported accuracy is that of a network with exactly the original architecture and parameter count::

    # one node, 8 GPUs
    torchrun --nproc-per-node 8 -m lowrank_utils.train.imagenet --data /data/imagenet --overparam-depth 2
    # two nodes (run on each; the rendezvous endpoint is node 0)
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint node0:29500 \
        -m lowrank_utils.train.imagenet --data /data/imagenet --overparam-depth 2
    # CPU smoke test with two processes (gloo backend) on a generated ImageFolder
    torchrun --nproc-per-node 2 -m lowrank_utils.train.imagenet --data /tmp/tiny --make-tiny-data \
        --image-size 32 --epochs 2 --batch-size 8

Every epoch it appends one JSON line to ``<out>/metrics.jsonl`` and rewrites ``<out>/checkpoint.pt``;
``--resume`` continues from that checkpoint. ``<out>/final.json`` records the provenance of the run.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from torchvision.datasets import ImageFolder

from lowrank_utils.data import load_dataset
from lowrank_utils.models import count_parameters
from lowrank_utils.overparam import collapse, overparameterize
from lowrank_utils.train.images import EpochStats, Precision, evaluate, fit, learning_rate, make_optimizer


def write_tiny_imagefolder(root: str | os.PathLike[str], classes: int = 4, per_class: int = 16,
                           val_per_class: int = 8, size: int = 32, seed: int = 0) -> Path:
    """Write a small learnable ImageFolder (``train/`` and ``val/``) of PNGs: each class has its own colour
    pattern plus noise. Returns the root."""
    from PIL import Image

    if classes < 2 or per_class < 1 or val_per_class < 1 or size < 8:
        raise ValueError("need classes >= 2, per_class >= 1, val_per_class >= 1 and size >= 8.")
    root = Path(root)
    rng = np.random.default_rng(seed)
    bases = rng.uniform(40, 215, size=(classes, 3))
    yy, xx = np.mgrid[0:size, 0:size] / size
    for split, n in (("train", per_class), ("val", val_per_class)):
        for c in range(classes):
            folder = root / split / f"class_{c:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            stripes = np.sin(2 * np.pi * (c + 1) * (xx if c % 2 else yy))[..., None] * 30
            for i in range(n):
                img = bases[c] + stripes + rng.normal(0, 20, size=(size, size, 3))
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{i:04d}.png")
    return root


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description="DDP ImageNet training with linear over-parameterization.")
    p.add_argument("--data", required=True,
                   help="ImageFolder root with train/ and val/ (or a folder holding imagenet/)")
    p.add_argument("--arch", default="resnet18", help="torchvision model name (resnet18, alexnet, mobilenet_v2, ...)")
    p.add_argument("--overparam-depth", type=int, default=1, help="factors per layer; 1 trains the plain model")
    p.add_argument("--epochs", type=int, default=90)
    p.add_argument("--batch-size", type=int, default=256, help="per process")
    p.add_argument("--lr", type=float, default=None, help="default: 0.1 x global batch / 256")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--schedule", choices=("cosine", "step"), default="cosine")
    p.add_argument("--warmup-epochs", type=int, default=0)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--amp", choices=("auto", "on", "off"), default="auto", help="mixed precision (auto: on with CUDA)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster convolutions on GPUs)")
    p.add_argument("--max-steps-per-epoch", type=int, default=None, help="cap for smoke tests")
    p.add_argument("--out", default="runs/imagenet")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt if it exists")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--make-tiny-data", action="store_true", help="first write a tiny generated ImageFolder at --data")
    args = p.parse_args(argv)
    if args.overparam_depth < 1:
        p.error("--overparam-depth must be >= 1 (1 means no over-parameterization).")
    if args.epochs < 1 or args.batch_size < 1:
        p.error("--epochs and --batch-size must be positive.")
    return args


class _Dist:
    """Process-group facts, with single-process runs (no torchrun) treated as a world of one."""

    def __init__(self) -> None:
        self.enabled = "RANK" in os.environ and "WORLD_SIZE" in os.environ
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if self.enabled:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.enabled:
            dist.all_reduce(t)
        return t.tolist()

    def close(self) -> None:
        if self.enabled:
            dist.destroy_process_group()


def _build_model(args: argparse.Namespace, num_classes: int) -> nn.Module:
    import torchvision

    try:
        builder = getattr(torchvision.models, args.arch)
    except AttributeError:
        raise SystemExit(f"unknown --arch {args.arch!r}: use a torchvision.models builder such as resnet18.") from None
    model = builder(weights=None, num_classes=num_classes)
    if args.overparam_depth > 1:
        model = overparameterize(model, depth=args.overparam_depth)
    return model


def _evaluate(model: nn.Module, loader: DataLoader, ctx: _Dist, args: argparse.Namespace) -> dict[str, float]:
    """Validation loss, top-1 and top-5 of ``model`` over every process's shard, summed across processes."""
    totals = evaluate(model, loader, device=ctx.device, channels_last=args.channels_last)
    loss_sum, correct1, correct5, count = ctx.sum([float(t) for t in totals])
    return {"val_loss": loss_sum / count, "val_top1": correct1 / count, "val_top5": correct5 / count}


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint of this trainer with ``weights_only=True``: tensors and plain containers, never code.

    A checkpoint holding any other pickled object (which would run arbitrary code when unpickled) is refused.
    """
    import pickle

    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"refusing to load {path}: it holds objects other than tensors, numbers, strings and containers, and "
            f"unpickling those can run arbitrary code. Resume only from checkpoints this trainer wrote "
            f"(torch said: {str(err).splitlines()[0]})"
        ) from None
    expected = {"epoch", "model", "optimizer", "scaler", "history"}
    if not isinstance(ckpt, dict) or not expected <= set(ckpt):
        found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not a checkpoint of this trainer: expected the keys {sorted(expected)}, "
                         f"found {found}.")
    return ckpt


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint behind


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, checkpoint every epoch, evaluate the collapsed model; return the last epoch's metrics."""
    args = parse_args(argv)
    ctx = _Dist()
    out = Path(args.out)
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        if args.make_tiny_data and not (Path(args.data) / "train").exists():
            write_tiny_imagefolder(args.data, size=args.image_size)
    ctx.barrier()
    torch.manual_seed(args.seed + ctx.rank)

    train_set = load_dataset("imagenet", "train", root=args.data, augment=True, image_size=args.image_size)
    val_set = load_dataset("imagenet", "val", root=args.data, image_size=args.image_size)
    assert isinstance(train_set, ImageFolder)  # ImageNet without a subset is the ImageFolder itself
    num_classes = len(train_set.classes)
    train_sampler: DistributedSampler[int] = DistributedSampler(train_set, ctx.world, ctx.rank, shuffle=True,
                                                                seed=args.seed)
    val_sampler: DistributedSampler[int] = DistributedSampler(val_set, ctx.world, ctx.rank, shuffle=False)
    pin = ctx.device.type == "cuda"
    train_loader = DataLoader(train_set, args.batch_size, sampler=train_sampler, num_workers=args.workers,
                              pin_memory=pin, drop_last=len(train_set) >= args.batch_size * ctx.world,
                              persistent_workers=args.workers > 0)
    val_loader = DataLoader(val_set, args.batch_size, sampler=val_sampler, num_workers=args.workers, pin_memory=pin)

    torch.manual_seed(args.seed)  # identical initial weights on every process
    model = _build_model(args, num_classes).to(ctx.device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    original_params = count_parameters(_build_model(argparse.Namespace(**{**vars(args), "overparam_depth": 1}),
                                                    num_classes))
    base_lr = args.lr if args.lr is not None else 0.1 * args.batch_size * ctx.world / 256
    optimizer = make_optimizer(model.parameters(), "nesterov", base_lr, momentum=args.momentum,
                               weight_decay=args.weight_decay)
    precision = Precision(ctx.device, amp=args.amp != "off")
    scaler = precision.scaler

    start_epoch, history = 0, []
    ckpt_path = out / "checkpoint.pt"
    if args.resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, map_location=ctx.device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, history = ckpt["epoch"] + 1, ckpt["history"]
        if ctx.main:
            print(f"resumed from {ckpt_path} at epoch {start_epoch}", flush=True)

    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[ctx.local_rank] if pin else None) \
        if ctx.enabled else model
    if ctx.main:
        print(f"{args.arch}, overparam depth {args.overparam_depth}: {count_parameters(model):,} training "
              f"parameters, {original_params:,} after collapse; world size {ctx.world} on {ctx.device.type}",
              flush=True)

    def epoch_batches(epoch: int) -> DataLoader:
        train_sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every process
        return train_loader

    # Step schedule: /10 at 1/3 and 2/3 of training (epochs 30 and 60 of 90).
    milestones = (1 / 3, 2 / 3) if args.schedule == "step" else ()
    metrics: dict[str, Any] = {}

    def end_of_epoch(stats: EpochStats) -> None:
        nonlocal metrics
        loss_sum, correct, count = ctx.sum([stats.train_loss * stats.images, stats.train_acc * stats.images,
                                            float(stats.images)])
        collapsed = collapse(copy.deepcopy(model)).to(ctx.device)  # deploy-time architecture
        if args.channels_last:
            collapsed = collapsed.to(memory_format=torch.channels_last)
        val = _evaluate(collapsed, val_loader, ctx, args)
        metrics = {"epoch": stats.epoch, "train_loss": loss_sum / max(count, 1), "train_top1": correct / max(count, 1),
                   **val, "lr": stats.lr, "epoch_seconds": stats.seconds,
                   "collapsed_params": count_parameters(collapsed), "world_size": ctx.world}
        history.append(metrics)
        if ctx.main:
            with open(out / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(metrics) + "\n")
            _save_atomic({"epoch": stats.epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scaler": scaler.state_dict(), "history": history, "args": vars(args)}, ckpt_path)
            print(f"epoch {stats.epoch}: train loss {metrics['train_loss']:.3f}, val top-1 (collapsed) "
                  f"{metrics['val_top1']:.3f}", flush=True)
        ctx.barrier()

    if start_epoch < args.epochs:
        fit(ddp, optimizer, epoch_batches, epochs=args.epochs, start_epoch=start_epoch, precision=precision,
            lr=lambda epoch: learning_rate(base_lr, epoch, args.epochs, schedule=args.schedule,
                                           warmup_epochs=args.warmup_epochs, milestones=milestones),
            channels_last=args.channels_last, max_steps_per_epoch=args.max_steps_per_epoch, on_epoch=end_of_epoch,
            device=ctx.device, check_every=50, name=f"{args.arch} x{args.overparam_depth}")

    if ctx.main:
        on_cuda = ctx.device.type == "cuda"
        hardware = torch.cuda.get_device_name(ctx.device) if on_cuda else platform.processor() or "cpu"
        final = {"command": " ".join([Path(sys.executable).name, "-m", "lowrank_utils.train.imagenet", *sys.argv[1:]]),
                 "args": vars(args), "world_size": ctx.world, "device": ctx.device.type, "hardware": hardware,
                 "torch": torch.__version__, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                 "original_params": original_params, "history": history}
        (out / "final.json").write_text(json.dumps(final, indent=2))
    ctx.close()
    return metrics


if __name__ == "__main__":
    main()
