"""Chapter 7: linear over-parameterization of single layers -- exact collapse, cost, rank at initialisation, and the
singular-value spectrum of a conv layer while a small CNN trains.

Four experiments, each a pure function returning a tidy DataFrame:

* :func:`collapse_check` -- expanded layers (and a whole small CNN) against their collapsed form, in float64;
* :func:`cost_table` -- parameters and multiply-adds of a layer during training (chained and composed forward) and
  after collapse (inference); :func:`step_time_table` times them (never used in a checked notebook cell);
* :func:`init_rank` (:class:`InitRankConfig`) -- ρ of an expanded layer's end-to-end weight at initialisation,
  over many random draws, for several depths (depth 1 is a plain layer);
* :func:`spectrum_dynamics` (:class:`SpectrumConfig`) -- train a small CNN and its over-parameterized twin on
  Fashion-MNIST and record the singular values of one conv layer's (collapsed) weight at checkpoints.

Sizes, optimizers, learning rates and epochs are *our* choices; the paper's exact settings for these figures are
not known to us, and the presets say what they are.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from lowrank_utils import runtime
from lowrank_utils import validate as check
from lowrank_utils.data import dataset_info, load_dataset
from lowrank_utils.models import plain_cnn
from lowrank_utils.overparam import (
    OverparamConv2d,
    OverparamLayer,
    OverparamLinear,
    collapse,
    overparameterize,
)
from lowrank_utils.presets import Presets
from lowrank_utils.rank import entropy_effective_rank
from lowrank_utils.runtime import progress_enabled
from lowrank_utils.train.images import evaluate, fit, learning_rate, make_optimizer

SPECTRUM_OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
"""Optimizers of :class:`SpectrumConfig`: SGD with momentum, or AdamW (decoupled weight decay)."""


# ------------------------------------------------------------------------------------------------ validation


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------- collapse check
def _randomise(model: nn.Module, g: torch.Generator) -> None:
    """Give every bias and batch-norm statistic a non-trivial value, so that folding them is really tested."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, OverparamLayer):
                for b in m.biases:
                    b.copy_(0.1 * torch.randn(b.shape, generator=g, dtype=b.dtype))
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                # the tracked statistics and the affine parameters exist: the models built here keep both
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.copy_(0.5 * torch.randn(n, generator=g, dtype=m.running_mean.dtype))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g, dtype=m.running_var.dtype))
                m.weight.copy_(1 + 0.2 * torch.randn(n, generator=g, dtype=m.weight.dtype))
                m.bias.copy_(0.2 * torch.randn(n, generator=g, dtype=m.bias.dtype))


def _collapse_cases() -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """(description, expanded model, input shape) for :func:`collapse_check`; built under a fixed seed."""
    dt = torch.float64
    cnn = overparameterize(plain_cnn((8, 16, 16), in_channels=1, num_classes=10).to(dt), depth=4)
    return [
        ("linear 32→16, depth 4", OverparamLinear(32, 16, depth=4, dtype=dt), (5, 32)),
        ("linear 32→32, depth 3, width 2, skip", OverparamLinear(32, 32, width=2, depth=3, residual=True,
                                                                 residual_intervals=-1, dtype=dt), (5, 32)),
        ("conv 8→16, [3,1,1,1], padding 1", OverparamConv2d(8, 16, 3, depth=4, padding=1, dtype=dt),
         (2, 8, 12, 12)),
        ("conv 8→16, [3,3], stride 2, padding 2", OverparamConv2d(8, 16, [3, 3], stride=2, padding=2, dtype=dt),
         (2, 8, 13, 13)),
        ("conv 8→8, [3,3,3,3], skips, batch norm (eval)",
         OverparamConv2d(8, 8, [3, 3, 3, 3], padding=4, residual=True, batch_norm=True, dtype=dt).eval(),
         (2, 8, 12, 12)),
        ("depthwise conv 8→8, [3,1], groups 8", OverparamConv2d(8, 8, [3, 1], padding=1, groups=8, dtype=dt),
         (2, 8, 12, 12)),
        ("small CNN, every layer depth 4", cnn, (2, 1, 28, 28)),
    ]


def collapse_check(seed: int = 0) -> pd.DataFrame:
    """Expanded layers (run factor by factor) against their collapsed standard layers, in float64.

    One row per case: trainable parameters while training (expanded) and after
    :func:`~lowrank_utils.overparam.collapse`, and the largest absolute difference between the two outputs on a random
    input.
    """
    check.integer("seed", seed, 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cases = _collapse_cases()
    g = torch.Generator().manual_seed(seed)
    rows = []
    for label, model, shape in cases:
        _randomise(model, g)
        for m in model.modules():
            if isinstance(m, OverparamLayer):
                m.mode = "chained"  # the literal deep form: depth layers one after the other
        plain = collapse(model)
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        with torch.no_grad():
            diff = (model(x) - plain(x)).abs().max().item()
        rows.append({"case": label, "params_expanded": _n_params(model), "params_collapsed": _n_params(plain),
                     "max_abs_diff": diff})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------------ cost
def _cost_layers(channels: int, features: int, depths: Sequence[int]
                 ) -> list[tuple[str, int, OverparamConv2d | OverparamLinear]]:
    layers: list[tuple[str, int, OverparamConv2d | OverparamLinear]] = []
    for d in depths:
        conv = OverparamConv2d(channels, channels, 3, depth=d, padding=1)
        layers.append((f"conv {channels}→{channels} 3x3", d, conv))
    for d in depths:
        layers.append((f"linear {features}→{features}", d, OverparamLinear(features, features, depth=d)))
    return layers


def cost_table(
    channels: int = 64,
    image_size: int = 32,
    conv_batch: int = 32,
    features: int = 512,
    linear_batch: int = 256,
    depths: Sequence[int] = (1, 2, 4),
) -> pd.DataFrame:
    """Parameters and forward multiply-adds (MACs) of a 3x3 conv and a linear layer expanded to each depth.

    ``macs_chained`` runs the factors one by one; ``macs_composed`` first composes the end-to-end weight and then
    applies it once; ``forward_used`` is the form ``mode="auto"`` picks; ``macs_inference`` is the collapsed layer.
    Depth 1 is the plain layer. A backward pass costs about twice the forward in every form.
    """
    for name, v in (("channels", channels), ("image_size", image_size), ("conv_batch", conv_batch),
                    ("features", features), ("linear_batch", linear_batch)):
        check.integer(name, v)
    depths = check.integers("depths", depths)
    rows = []
    for label, d, layer in _cost_layers(channels, features, depths):
        if isinstance(layer, OverparamConv2d):
            x = torch.empty(conv_batch, channels, image_size, image_size, device="meta")
        else:
            x = torch.empty(linear_batch, features, device="meta")
        chained, composed = layer.costs(x)  # the package's own estimates, which mode="auto" compares
        plain = layer.collapse()
        with torch.no_grad():
            out = plain.to("meta")(x)
        # The collapsed layer does one multiply-add per output value and weight entry it reads.
        inference = float(out.numel() * plain.weight[0].numel())
        rows.append({
            "layer": label, "depth": d,
            "params_train": _n_params(layer), "params_inference": _n_params(plain),
            "macs_chained": chained, "macs_composed": composed if d > 1 else chained,
            "forward_used": "composed" if layer.uses_composed(x) else "chained",
            "macs_inference": inference,
        })
    return pd.DataFrame(rows)


def _median_ms(fn: Any, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def step_time_table(
    channels: int = 64, image_size: int = 32, batch: int = 8, depths: Sequence[int] = (1, 2, 4), repeats: int = 5,
    seed: int = 0, cpu_threads: int | None = 1,
) -> pd.DataFrame:
    """Median milliseconds of a training step (forward + backward) of an expanded 3x3 conv in each forward form,
    and of inference with the collapsed layer, on the CPU with ``cpu_threads`` threads (``None``: PyTorch's setting).
    Timings depend on the machine and its load: never put them in a checked cell."""
    for name, v in (("channels", channels), ("image_size", image_size), ("batch", batch), ("repeats", repeats)):
        check.integer(name, v)
    depths = check.integers("depths", depths)
    if cpu_threads is not None:
        check.integer("cpu_threads", cpu_threads)
    with runtime.cpu_threads(cpu_threads, device="cpu"):
        return _step_times(channels, image_size, batch, depths, repeats, seed)


def _step_times(channels: int, image_size: int, batch: int, depths: Sequence[int], repeats: int,
                seed: int) -> pd.DataFrame:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, image_size, image_size, generator=g, requires_grad=True)
    rows = []
    for d in depths:
        layer = OverparamConv2d(channels, channels, 3, depth=d, padding=1)
        forms = ["chained"] if d == 1 else ["chained", "composed"]
        for form in forms:
            layer.mode = form

            def step(layer: OverparamConv2d = layer) -> None:  # this iteration's layer, bound as a default (B023)
                layer.zero_grad(set_to_none=True)
                layer(x).sum().backward()

            rows.append({"depth": d, "what": f"training step, {form}", "ms": _median_ms(step, repeats)})
        plain = layer.collapse()

        def infer(plain: nn.Conv2d = plain) -> None:
            with torch.no_grad():
                plain(x)

        rows.append({"depth": d, "what": "inference, collapsed", "ms": _median_ms(infer, repeats)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------- rank at init
@dataclass(frozen=True)
class InitRankConfig(Presets):
    """ρ of an expanded layer's end-to-end weight at initialisation (our settings, not the paper's).

    For each depth in ``depths`` a linear layer ``features → features`` and a conv layer ``channels → channels``
    with factors [k, 1, ..., 1] (``kernel_size`` k) are drawn ``draws`` times with the package's initialisation
    (He-normal factors). A conv weight [out, in, k, k] is measured as the out x (in·k·k) matrix. Depth 1 is a
    plain layer. ``width`` multiplies the hidden width of the expansions.
    """

    # quick (the defaults, ~2 s): 300 draws per (layer, depth), linear 64->64, conv 32->32 with a 3x3 kernel.
    # full: 1,000 draws, linear 128->128, conv 64->64 (about 40 s on one core).
    FULL: ClassVar[dict[str, Any]] = dict(draws=1000, features=128, channels=64)

    depths: tuple[int, ...] = (1, 2, 4, 8)
    draws: int = 300
    features: int = 64
    channels: int = 32
    kernel_size: int = 3
    width: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", check.integers("depths", self.depths))
        for name in ("draws", "features", "channels", "kernel_size"):
            check.integer(name, getattr(self, name))
        check.integer("seed", self.seed, 0)
        check.number("width", self.width)


def init_rank(config: InitRankConfig) -> pd.DataFrame:
    """One row per (layer, depth, draw): ρ of the end-to-end weight at initialisation, and ρ / log(min(m, n))."""
    rows = []
    # Hundreds of small matrices: one thread is much faster than several on a shared CPU (see cpu_threads).
    with runtime.cpu_threads(1, device="cpu"), torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(config.seed)
        for layer_name in ("linear", "conv"):
            for d in config.depths:
                if layer_name == "linear":
                    layer: OverparamLayer = OverparamLinear(config.features, config.features, width=config.width,
                                                            depth=d, bias=False, dtype=torch.float64)
                    label = f"linear {config.features}→{config.features}"
                else:
                    k = config.kernel_size
                    layer = OverparamConv2d(config.channels, config.channels, k, depth=d, width=config.width,
                                            bias=False, dtype=torch.float64)
                    label = f"conv {config.channels}→{config.channels} {k}x{k}"
                weights = []
                for _ in range(config.draws):
                    layer.reset_parameters()  # a fresh draw of every factor
                    weights.append(layer_matrix(layer))
                W = torch.stack(weights)
                rho = entropy_effective_rank(W)
                top = math.log(min(W.shape[-2:]))
                rows.append(pd.DataFrame({"layer": label, "kind": layer_name, "depth": d,
                                          "draw": range(config.draws), "rho": rho.tolist(),
                                          "rho_fraction": (rho / top).tolist()}))
    return pd.concat(rows, ignore_index=True)


def init_rank_medians(df: pd.DataFrame) -> pd.DataFrame:
    """Median ρ (and its fraction of the maximum) per layer and depth, from :func:`init_rank`'s table."""
    missing = {"layer", "depth", "rho", "rho_fraction"} - set(df.columns)
    if missing:
        raise ValueError(f"init_rank_medians needs columns {sorted(missing)}; pass the table init_rank returns.")
    return df.groupby(["layer", "depth"], as_index=False, sort=False)[["rho", "rho_fraction"]].median()


# -------------------------------------------------------------------------------------- spectrum dynamics
def conv_layers(model: nn.Module) -> list[nn.Module]:
    """The model's convolutions in order, plain ``nn.Conv2d`` and :class:`~lowrank_utils.overparam.OverparamConv2d`
    alike."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, OverparamConv2d))]


def layer_matrix(layer: nn.Module) -> Tensor:
    """A layer's (end-to-end, collapsed) weight as a detached matrix: out x in, or out x (in·kh·kw) for a conv."""
    w = layer.weight
    if not isinstance(w, Tensor):
        raise ValueError(f"{type(layer).__name__} has no weight tensor to measure.")
    w = w.detach()
    return w.reshape(w.shape[0], -1)


@dataclass(frozen=True)
class SpectrumConfig(Presets):
    """Train :func:`~lowrank_utils.models.plain_cnn` twice from the same seed, plain and with every layer expanded to
    ``depth`` factors, and record the singular values of conv layer ``tracked_layer`` (0-based) at ``checkpoints``
    evenly spaced steps (plus step 0). Our settings, not the paper's (which trained a CNN on CIFAR for 180 epochs).

    ``train_subset`` / ``test_subset`` of ``None`` use the whole split. ``optimizer`` is ``"adamw"`` (the default) or
    ``"sgd"`` (with ``momentum``); the learning rate is multiplied by 0.1 at each fraction of training in
    ``milestones``. Both models see the same batches in the same order. ``cpu_threads`` caps the CPU threads while
    training (1 is the fastest on a small machine shared with other jobs; ``None`` keeps PyTorch's setting).
    """

    # quick (the defaults, ~25 s on one core): 4,000 Fashion-MNIST training and 1,000 test images, 3 epochs of
    # batch 64, channels (16, 32, 64), every layer expanded to depth 4, AdamW lr 3e-3 without weight decay,
    # 12 checkpoints, the last conv layer tracked.
    # full (a GPU preset; its time is an estimate, not measured): all 60,000 training images with random crops and
    # the 10,000 test images, 30 epochs of batch 128, channels (32, 64, 128), lr divided by 10 at 50% and 75%.
    FULL: ClassVar[dict[str, Any]] = dict(train_subset=None, test_subset=None, epochs=30, batch_size=128,
                                          channels=(32, 64, 128), milestones=(0.5, 0.75), augment=True, checkpoints=15,
                                          num_workers=2, cpu_threads=None)

    dataset: str = "fashion_mnist"
    train_subset: int | None = 4000
    test_subset: int | None = 1000
    epochs: int = 3
    batch_size: int = 64
    channels: tuple[int, ...] = (16, 32, 64)
    batch_norm: bool = False
    depth: int = 4
    width: float = 1.0
    tracked_layer: int = 2
    optimizer: str = "adamw"
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    milestones: tuple[float, ...] = ()
    augment: bool = False
    checkpoints: int = 12
    seed: int = 0
    device: str = "cpu"
    cpu_threads: int | None = 1
    num_workers: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", check.integers("channels", self.channels))
        for name in ("epochs", "batch_size", "depth", "checkpoints"):
            check.integer(name, getattr(self, name))
        for name in ("train_subset", "test_subset"):
            if getattr(self, name) is not None:
                check.integer(name, getattr(self, name))
        check.integer("seed", self.seed, 0)
        check.integer("num_workers", self.num_workers, 0)
        if self.cpu_threads is not None:
            check.integer("cpu_threads", self.cpu_threads)
        if self.depth < 2:
            raise ValueError(f"depth must be >= 2 to compare an over-parameterized model with the original, "
                             f"got {self.depth}.")
        if not 0 <= self.tracked_layer < len(self.channels):
            raise ValueError(f"tracked_layer must index one of the {len(self.channels)} conv layers "
                             f"(0..{len(self.channels) - 1}), got {self.tracked_layer}.")
        check.number("width", self.width)
        check.number("lr", self.lr)
        check.number("momentum", self.momentum, allow_zero=True)
        check.number("weight_decay", self.weight_decay, allow_zero=True)
        milestones = tuple(float(m) for m in self.milestones)
        if any(not 0 < m < 1 for m in milestones):
            raise ValueError(f"milestones are fractions of training strictly between 0 and 1, got {milestones}.")
        object.__setattr__(self, "milestones", tuple(sorted(milestones)))
        if self.optimizer not in SPECTRUM_OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(SPECTRUM_OPTIMIZERS)}, got {self.optimizer!r}.")
        dataset_info(self.dataset)  # raises ValueError for an unknown name
        check.device(self.device)


def _in_memory(ds: Dataset) -> TensorDataset:
    """Decode every image once (without augmentation there is nothing random to redo each epoch)."""
    xs, ys = zip(*DataLoader(ds, batch_size=1000, shuffle=False), strict=True)
    return TensorDataset(torch.cat(xs), torch.cat(ys))


def _loaders(config: SpectrumConfig) -> tuple[DataLoader, DataLoader]:
    train = load_dataset(config.dataset, "train", augment=config.augment, subset=config.train_subset)
    test = _in_memory(load_dataset(config.dataset, "test", subset=config.test_subset))
    if not config.augment:
        train = _in_memory(train)
    gen = torch.Generator().manual_seed(config.seed)
    pin = torch.device(config.device).type == "cuda"
    kw: dict[str, Any] = dict(num_workers=config.num_workers, pin_memory=pin,
                              persistent_workers=config.num_workers > 0)
    return (DataLoader(train, batch_size=config.batch_size, shuffle=True, generator=gen, **kw),
            DataLoader(test, batch_size=512, shuffle=False, **kw))


def _train_one(
    name: str, model: nn.Module, config: SpectrumConfig, train_loader: DataLoader, test_loader: DataLoader,
    progress: bool,
) -> list[dict]:
    """Train ``model`` with the package's image loop (:func:`lowrank_utils.train.images.fit`) and record the tracked
    layer at each checkpoint."""
    device = torch.device(config.device)
    model.to(device).train()
    tracked = conv_layers(model)[config.tracked_layer]
    opt = make_optimizer(model.parameters(), config.optimizer, config.lr, momentum=config.momentum,
                         weight_decay=config.weight_decay)
    steps_per_epoch = len(train_loader)
    total = steps_per_epoch * config.epochs

    def lr_at(epoch: float) -> float:  # /10 at each milestone (a fraction of training); constant without any
        return learning_rate(config.lr, epoch, config.epochs, schedule="step" if config.milestones else "constant",
                             milestones=config.milestones)

    marks = sorted({round(i * total / config.checkpoints) for i in range(config.checkpoints + 1)})
    rows: list[dict] = []

    def record(step: int, read: Any = None) -> None:
        W = layer_matrix(tracked).to("cpu", torch.float64)
        s = torch.linalg.svdvals(W)
        rho = float(entropy_effective_rank(W))
        test = evaluate(model, test_loader, device=device).metrics()
        train_loss, train_acc, _ = read() if read is not None else (float("nan"), float("nan"), 0)
        base = {"model": name, "step": step, "epoch": step / steps_per_epoch, "lr": lr_at(step / steps_per_epoch),
                "rho": rho, "train_loss": train_loss, "train_acc": train_acc,
                "test_loss": test["loss"], "test_acc": test["acc"]}
        total_s = float(s.sum())
        for i, v in enumerate(s.tolist()):
            rows.append({**base, "index": i + 1, "sv": v, "normalized_sv": v / total_s})

    record(0)
    bar = tqdm(total=total, desc=name, disable=not progress_enabled(progress), leave=False)

    def on_step(step: int, read: Any) -> None:
        if step in marks:
            record(step, read)  # the running train loss and accuracy since the previous checkpoint
        bar.update()

    fit(model, opt, lambda epoch: train_loader, epochs=config.epochs, lr=lr_at, on_step=on_step, device=device,
        name=name)
    bar.close()
    return rows


def spectrum_dynamics(config: SpectrumConfig, progress: bool = True) -> pd.DataFrame:
    """Train the original and the over-parameterized small CNN; one row per (model, checkpoint, singular value).

    Columns: ``model``, ``step``, ``epoch``, ``lr``, ``index`` (1-based), ``sv`` and ``normalized_sv`` (σᵢ / Σσ)
    of the tracked conv layer's (collapsed) weight, its ``rho``, and ``train_loss`` / ``train_acc`` (running
    averages over the batches since the previous checkpoint; NaN at step 0) and ``test_loss`` / ``test_acc``.
    """
    info = dataset_info(config.dataset)
    train_loader, test_loader = _loaders(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        original = plain_cnn(config.channels, info.channels, info.num_classes, config.batch_norm)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + 1)
        expanded = overparameterize(original, depth=config.depth, width=config.width)
    names = {"original": original, f"over-parameterized (depth {config.depth})": expanded}
    rows: list[dict] = []
    for name, model in names.items():
        with runtime.cpu_threads(config.cpu_threads, device=config.device), torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            train_loader.generator.manual_seed(config.seed)  # the same batches for both models
            rows += _train_one(name, model, config, train_loader, test_loader, progress)
    df = pd.DataFrame(rows)
    df.attrs["config"] = asdict(config)
    return df


def checkpoint_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, checkpoint) of :func:`spectrum_dynamics`'s table: ρ, accuracies and losses."""
    need = {"model", "step", "epoch", "rho", "index"}
    missing = need - set(df.columns)
    if missing:
        raise ValueError(f"checkpoint_table needs columns {sorted(missing)}; pass spectrum_dynamics' table.")
    keep = [c for c in df.columns if c not in ("index", "sv", "normalized_sv")]
    return df.loc[df["index"] == 1, keep].reset_index(drop=True)
