"""Chapter 9: helpers around the DDP ImageNet trainer (:mod:`lowrank_utils.train.imagenet`).

Launch it under ``torchrun`` from Python, read its per-epoch log and provenance back as tidy data, and count what a
run costs (multiply-accumulates, parameters, steps, GPU-hours) before paying for it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from lowrank_utils.data import dataset_info
from lowrank_utils.models import count_parameters, forward_macs
from lowrank_utils.overparam import collapse, overparameterize

IMAGENET_TRAIN_IMAGES = dataset_info("imagenet").train_size
"""Training images in ImageNet-1k (ILSVRC 2012)."""


def torchrun_command(trainer_args: Sequence[str], nproc: int = 2, nnodes: int = 1) -> list[str]:
    """The argument list that launches ``lowrank_utils.train.imagenet`` with ``torchrun`` (``--standalone`` on one
    node), using this Python interpreter."""
    if nproc < 1 or nnodes < 1:
        raise ValueError(f"nproc and nnodes must be positive, got nproc={nproc}, nnodes={nnodes}.")
    if nnodes != 1:
        raise ValueError("for several nodes, run torchrun on each node with --nnodes and a c10d --rdzv-endpoint "
                         "(see chapter 9); this helper launches one node.")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
            "-m", "lowrank_utils.train.imagenet", *map(str, trainer_args)]


def run_torchrun(trainer_args: Sequence[str], nproc: int = 2, cwd: str | os.PathLike[str] | None = None,
                 cpu_only: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the trainer under ``torchrun`` and wait; ``cpu_only`` hides GPUs so the processes use gloo on the CPU
    (one intra-op thread each). Raises ``RuntimeError`` with the end of stderr if it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if cpu_only:
        env["CUDA_VISIBLE_DEVICES"] = ""
    done = subprocess.run(torchrun_command(trainer_args, nproc), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun exited with code {done.returncode}:\n{done.stderr[-4000:]}")
    return done


def read_run(out: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict]:
    """A run's per-epoch log (``metrics.jsonl``, one row per epoch) and its provenance (``final.json``)."""
    out = Path(out)
    log, final = out / "metrics.jsonl", out / "final.json"
    if not log.is_file():
        raise FileNotFoundError(f"{log} does not exist: the run wrote no epoch yet (check its --out directory).")
    metrics = pd.DataFrame([json.loads(line) for line in log.read_text().splitlines() if line.strip()])
    provenance = json.loads(final.read_text()) if final.is_file() else {}
    return metrics, provenance


def steps_per_epoch(n_images: int, per_gpu_batch: int, world_size: int, drop_last: bool = True) -> int:
    """Optimizer steps per epoch under ``DistributedSampler``: each process gets ⌈n / world⌉ images, in batches
    (the last, incomplete one dropped when ``drop_last``, as the trainer does)."""
    for name, value in (("n_images", n_images), ("per_gpu_batch", per_gpu_batch), ("world_size", world_size)):
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value}.")
    per_process = math.ceil(n_images / world_size)
    return per_process // per_gpu_batch if drop_last else math.ceil(per_process / per_gpu_batch)


def gpu_hours(seconds_per_step: float, steps: int, epochs: int, gpus: int) -> float:
    """GPU-hours of a run: (seconds per step x steps per epoch x epochs) of wall time on ``gpus`` GPUs."""
    if seconds_per_step <= 0 or steps < 1 or epochs < 1 or gpus < 1:
        raise ValueError("seconds_per_step must be > 0 and steps, epochs, gpus >= 1.")
    return seconds_per_step * steps * epochs * gpus / 3600


def _torchvision_model(arch: str, num_classes: int = 1000) -> nn.Module:
    """The architecture built on the meta device: shapes without memory or initialisation, enough to count."""
    import torchvision

    try:
        with torch.device("meta"):
            return getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    except AttributeError:
        raise ValueError(f"unknown torchvision architecture {arch!r} (try resnet18, resnet50).") from None


def imagenet_training_work(archs: Sequence[str] = ("resnet18", "resnet50"), image_size: int = 224, epochs: int = 90,
                           images: int = IMAGENET_TRAIN_IMAGES) -> pd.DataFrame:
    """Forward multiply-accumulates per image and the floating-point operations of a training run (3 forward passes'
    worth per image, 2 FLOPs per multiply-accumulate), one row per torchvision architecture."""
    rows = []
    for arch in archs:
        macs = forward_macs(_torchvision_model(arch), (3, image_size, image_size))
        rows.append({"arch": arch, "gmacs_per_image": macs / 1e9, "epochs": epochs, "images": images,
                     "training_flops": 6.0 * macs * images * epochs})
    return pd.DataFrame(rows)


def overparam_parameter_table(arch: str = "resnet18", depths: Sequence[int] = (1, 2, 4),
                              num_classes: int = 1000) -> pd.DataFrame:
    """Parameters of ``arch`` over-parameterized with each depth while training, and after collapse."""
    rows = []
    for depth in depths:
        model = _torchvision_model(arch, num_classes)
        if depth > 1:
            with torch.device("meta"):
                model = overparameterize(model, depth=depth)
        rows.append({"arch": arch, "depth": depth, "training_params": count_parameters(model),
                     "deployed_params": count_parameters(collapse(model))})
    return pd.DataFrame(rows)
