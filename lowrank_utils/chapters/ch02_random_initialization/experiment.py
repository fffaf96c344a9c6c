"""Chapter 2 (Observation 1): the effective rank of the Gram matrix of randomly initialised networks.

The experiment draws many networks at once. Every weight tensor has a leading *draw* dimension, so a forward pass
through ``draws`` networks of depth ``d`` is ``d`` batched matrix products, and ρ of all their Gram matrices is one
batched symmetric eigenvalue call. Nothing here builds an ``nn.Module``; the weights follow the same scaling rule
as :func:`lowrank_utils.models.make_mlp` (std = gain / sqrt(fan_in), gain 1 on the last layer), which the tests
check by loading a batched draw into ``make_mlp``.

Settings such as the width, the number of inputs in K and the number of draws are *our* choices: the paper's exact
settings are not known to us. The presets say what they are.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import pandas as pd
import torch
from torch import Tensor

from lowrank_utils import validate as check
from lowrank_utils.models import (
    ACTIVATIONS,
    WEIGHT_INITS,
    activation_gain,
    make_activation,
)
from lowrank_utils.presets import Presets
from lowrank_utils.rank import entropy_effective_rank, gram_effective_rank, gram_features
from lowrank_utils.runtime import cpu_threads, stable_seed

GRAM_MODES: tuple[str, ...] = ("raw", "centered", "cosine", "centered_cosine")
"""How K is formed from the outputs Φ: ``raw`` ΦΦᵀ; ``centered`` with the mean output removed first; ``cosine``
with every output scaled to unit length; ``centered_cosine`` both (centre, then normalise)."""


_BLOCK = 250  # draws per batched forward: bounds memory, and fixes the random stream independently of the device


_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class RandomInitConfig(Presets):
    """Settings for the random-initialisation experiments (all of them our choices, not the paper's).

    ``depths`` × ``activations`` × ``inits`` are measured with ``draws`` independent networks each. Every network
    maps the same ``n_samples`` Gaussian inputs of dimension ``in_features`` (default: ``width``) through
    ``depth`` bias-free layers of ``width`` units; its outputs Φ (n_samples × width) give K, formed as
    ``gram_mode`` says. ``sweep_widths`` are the widths of :func:`width_sweep`.
    """

    # quick: width 32, 64 inputs in K, 200 draws per (activation, init, depth) -- a CPU run.
    QUICK: ClassVar[dict[str, Any]] = dict(width=32, n_samples=64, draws=200)
    # full: width 64, 128 inputs in K, 1,000 draws, and a wider sweep of widths.
    FULL: ClassVar[dict[str, Any]] = dict(width=64, n_samples=128, draws=1000, sweep_widths=(16, 32, 64, 128, 256))

    depths: tuple[int, ...] = (1, 2, 4, 8, 16)
    activations: tuple[str, ...] = ("linear", "relu")
    inits: tuple[str, ...] = ("normal", "uniform")
    width: int = 32
    n_samples: int = 64
    in_features: int | None = None
    draws: int = 200
    gram_mode: str = "centered"
    seed: int = 0
    dtype: str = "float64"
    device: str = "cpu"
    sweep_widths: tuple[int, ...] = field(default=(8, 16, 32, 64, 128))

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", check.integers("depths", self.depths))
        object.__setattr__(self, "sweep_widths", check.integers("sweep_widths", self.sweep_widths))
        object.__setattr__(self, "activations", check.names("activations", self.activations, ACTIVATIONS))
        inits = tuple(self.inits)
        object.__setattr__(self, "inits", check.names("inits", inits, WEIGHT_INITS))
        check.integer("width", self.width)
        check.integer("n_samples", self.n_samples, 2)
        check.integer("draws", self.draws)
        check.integer("seed", self.seed, 0)
        if self.in_features is not None:
            check.integer("in_features", self.in_features)
        if self.gram_mode not in GRAM_MODES:
            raise ValueError(f"unknown gram_mode {self.gram_mode!r}; choose one of {', '.join(GRAM_MODES)}.")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}.")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"device {self.device!r} is not a torch device name.") from err

    @property
    def input_dim(self) -> int:
        """The input dimension (``in_features``, defaulting to ``width``)."""
        return self.width if self.in_features is None else self.in_features

    @property
    def torch_dtype(self) -> torch.dtype:
        """The floating-point dtype as a torch dtype."""
        return _DTYPES[self.dtype]


_F = TypeVar("_F", bound=Callable[..., Any])


def _on_config_threads(fn: _F) -> _F:
    """Decorator: run ``fn(config, ...)`` under :func:`cpu_threads` for ``config.device``."""

    @functools.wraps(fn)
    def wrapper(config: Any, *args: Any, **kwargs: Any) -> Any:
        with cpu_threads(1, device=getattr(config, "device", "cpu")):
            return fn(config, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def sample_mlp_weights(
    draws: int,
    dims: Sequence[int],
    *,
    gain: float,
    init: str = "normal",
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    last_gain: float = 1.0,
) -> list[Tensor]:
    """Weights of ``draws`` MLPs with layer sizes ``dims``: one (draws, out, in) tensor per layer.

    The scaling is :func:`~lowrank_utils.models.make_mlp`'s: std = gain / sqrt(fan_in) for hidden layers and
    ``last_gain`` / sqrt(fan_in) for the last; ``uniform`` has the same variance, ``default`` is PyTorch's
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Numbers are drawn in float32 on the CPU (fast, and identical on every
    device), then converted to ``dtype``.
    """
    check.integer("draws", draws)
    dims = check.integers("dims", dims)
    if len(dims) < 2:
        raise ValueError("dims needs at least an input and an output size.")
    if init not in WEIGHT_INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(WEIGHT_INITS)}.")
    weights = []
    n_layers = len(dims) - 1
    for i in range(n_layers):
        fan_in, fan_out = dims[i], dims[i + 1]
        g = gain if i < n_layers - 1 else last_gain
        std = g / math.sqrt(fan_in)
        w = torch.empty((draws, fan_out, fan_in), dtype=torch.float32)
        if init == "normal":
            w.normal_(0.0, 1.0, generator=generator)
            scale = std
        else:
            w.uniform_(-1.0, 1.0, generator=generator)
            # uniform: the same variance as normal (Var U(-a, a) = a²/3); default: PyTorch's bound 1/sqrt(fan_in)
            scale = math.sqrt(3.0) * std if init == "uniform" else 1.0 / math.sqrt(fan_in)
        weights.append(w.to(dtype).mul_(scale))
    return weights


def mlp_forward(x: Tensor, weights: Sequence[Tensor], activation: str | Callable[[Tensor], Tensor]) -> Tensor:
    """Outputs of a batch of bias-free MLPs: ``x`` (n, in) or (draws, n, in) → (draws, n, out).

    The activation (a name from :data:`~lowrank_utils.models.ACTIVATIONS` or any callable) is applied between
    layers, not after the last one, as in :func:`~lowrank_utils.models.make_mlp`.
    """
    act = make_activation(activation) if isinstance(activation, str) else activation
    h = x
    for i, w in enumerate(weights):
        h = h @ w.mT
        if i < len(weights) - 1:
            h = act(h)
    return h


def gaussian_inputs(n_samples: int, in_features: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> Tensor:
    """The fixed set of standard Gaussian inputs (n_samples × in_features) that every network sees."""
    g = torch.Generator().manual_seed(stable_seed("inputs", seed, n_samples, in_features))
    return torch.randn(n_samples, in_features, generator=g, dtype=dtype)


def _gram_options(mode: str) -> dict[str, bool]:
    """The ``center`` and ``cosine`` options of :mod:`lowrank_utils.rank` that form K as ``mode`` says."""
    if mode not in GRAM_MODES:
        raise ValueError(f"unknown gram mode {mode!r}; choose one of {', '.join(GRAM_MODES)}.")
    return {"center": mode in ("centered", "centered_cosine"), "cosine": mode in ("cosine", "centered_cosine")}


def output_gram(phi: Tensor, mode: str = "centered") -> Tensor:
    """K (n × n) from outputs Φ (..., n, features), formed as ``mode`` says (see :data:`GRAM_MODES`)."""
    prepared = gram_features(phi, **_gram_options(mode))
    return prepared @ prepared.mT


def gram_rho(phi: Tensor, mode: str = "centered") -> Tensor:
    """ρ(K) for outputs Φ (..., n, features), batched: :func:`lowrank_utils.rank.gram_effective_rank` with K formed
    as ``mode`` says (it measures the smaller of Φ̃Φ̃ᵀ and Φ̃ᵀΦ̃, which share their non-zero eigenvalues)."""
    return gram_effective_rank(phi, **_gram_options(mode))


def _collapse_safe_rho(phi: Tensor, mode: str) -> tuple[Tensor, Tensor]:
    """ρ(K) per draw, and a mask of draws whose K is zero (every input mapped to the same output), given ρ = 0."""
    prepared = gram_features(phi, **_gram_options(mode))
    size = prepared.flatten(-2).norm(dim=-1)
    reference = phi.flatten(-2).norm(dim=-1)
    collapsed = size <= 1e-9 * reference.clamp_min(torch.finfo(phi.dtype).tiny)
    if bool(collapsed.any()):
        phi = phi.clone()
        phi[collapsed] = torch.eye(*phi.shape[-2:], dtype=phi.dtype, device=phi.device)  # placeholder, masked below
    rho = gram_rho(phi, mode)
    return torch.where(collapsed, torch.zeros_like(rho), rho), collapsed


@_on_config_threads
def random_network_rhos(
    config: RandomInitConfig, activation: str | Callable[[Tensor], Tensor], init: str, depth: int,
    *, width: int | None = None, gain: float | None = None, modes: Sequence[str] | None = None,
) -> dict[str, Tensor]:
    """ρ(K) of ``config.draws`` random networks of one (activation, init, depth): {gram mode: 1-D CPU tensor}.

    ``modes`` defaults to ``(config.gram_mode,)``; all modes are measured on the same networks. The weights
    depend only on (seed, init, depth, width), not on the activation: every activation sees the same random
    matrices, rescaled by its gain. Pass ``gain`` for a callable activation (default 1). A network that maps
    every input to the same output (possible for narrow ReLU networks) has K = 0 after centring; it is given
    ρ = 0, the limit of an ever more concentrated spectrum.
    """
    return _simulate(config, [activation], init, depth, width=width, gain=gain, modes=modes)[0]


def _simulate(
    config: RandomInitConfig, activations: Sequence[str | Callable[[Tensor], Tensor]], init: str, depth: int,
    *, width: int | None = None, gain: float | None = None, modes: Sequence[str] | None = None,
) -> list[dict[str, Tensor]]:
    width = config.width if width is None else width
    modes = (config.gram_mode,) if modes is None else check.names("modes", modes, GRAM_MODES)
    in_features = width if config.in_features is None else config.in_features
    dtype, device = config.torch_dtype, torch.device(config.device)
    x = gaussian_inputs(config.n_samples, in_features, config.seed, dtype).to(device)
    dims = [in_features] + [width] * depth
    results: list[dict[str, list[Tensor]]] = [{m: [] for m in modes} for _ in activations]
    gains = []
    for activation in activations:
        if init == "default":
            gains.append(1.0)  # PyTorch's default init ignores the activation
        elif gain is not None:
            gains.append(gain)
        else:
            gains.append(activation_gain(activation) if isinstance(activation, str) else 1.0)
    acts = [make_activation(a) if isinstance(a, str) else a for a in activations]
    for block, start in enumerate(range(0, config.draws, _BLOCK)):
        size = min(_BLOCK, config.draws - start)
        g = torch.Generator().manual_seed(stable_seed("weights", config.seed, init, depth, width, in_features, block))
        # One layer at a time (the same random stream as sample_mlp_weights over all layers), every activation
        # advanced together: memory holds one layer and one hidden state per activation, whatever the depth.
        hs = [x for _ in activations]
        for i in range(depth):
            w = sample_mlp_weights(size, dims[i:i + 2], gain=1.0, init=init, generator=g, dtype=dtype)[0].to(device)
            last = i == depth - 1
            for a in range(len(activations)):
                h = hs[a] @ (w if last else w * gains[a]).mT
                hs[a] = h if last else acts[a](h)
        for a, phi in enumerate(hs):
            for m in modes:
                results[a][m].append(_collapse_safe_rho(phi, m)[0].cpu())
    return [{m: torch.cat(parts) for m, parts in res.items()} for res in results]


def _frame(config: RandomInitConfig, width: int, modes: Sequence[str]) -> pd.DataFrame:
    frames = []
    for init in config.inits:
        for depth in config.depths:
            per_activation = _simulate(config, config.activations, init, depth, width=width, modes=modes)
            for activation, by_mode in zip(config.activations, per_activation, strict=True):
                for mode, rho in by_mode.items():
                    frames.append(pd.DataFrame({
                        "activation": activation, "init": init, "depth": depth, "gram_mode": mode,
                        "draw": range(len(rho)), "rho": rho.double().numpy(),
                    }))
    df = pd.concat(frames, ignore_index=True)
    df["width"] = width
    df["n_samples"] = config.n_samples
    order = {"activation": list(config.activations), "init": list(config.inits)}
    for col, cats in order.items():
        df[col] = pd.Categorical(df[col], categories=cats)
    return df.sort_values(["activation", "init", "gram_mode", "depth", "draw"], ignore_index=True)


@_on_config_threads
def rank_distribution(config: RandomInitConfig) -> pd.DataFrame:
    """One row per random network: activation, init, depth, gram_mode, draw, rho (ρ(K) in nats), width, n_samples.

    Networks of one (init, depth) share their random weights across activations (each rescaled by its gain).
    """
    return _frame(config, config.width, (config.gram_mode,))


@_on_config_threads
def gram_mode_comparison(config: RandomInitConfig, modes: Sequence[str] = GRAM_MODES) -> pd.DataFrame:
    """Like :func:`rank_distribution`, with K formed each way in ``modes`` from the very same network outputs."""
    modes = check.names("modes", modes, GRAM_MODES)
    return _frame(config, config.width, modes)


@_on_config_threads
def width_sweep(config: RandomInitConfig) -> pd.DataFrame:
    """:func:`rank_distribution` for each width in ``config.sweep_widths``, with the ceiling log(min(n, width)).

    The column ``rho_normalized`` is ρ divided by that ceiling, so widths whose K can have different ranks are
    compared on one scale.
    """
    frames = []
    for width in config.sweep_widths:
        df = _frame(config, width, (config.gram_mode,))
        df["rho_max"] = math.log(min(config.n_samples, width))
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out["rho_normalized"] = out["rho"] / out["rho_max"]
    return out


@_on_config_threads
def gram_examples(
    config: RandomInitConfig, activation: str = "relu", init: str = "normal", *, mode: str | None = None,
    draw: int = 0, display: str = "correlation",
) -> pd.DataFrame:
    """K of one random network per depth, as tidy rows (depth, row, col, value, rho), for heat maps.

    ``rho`` is ρ of K formed as ``mode`` says (default ``config.gram_mode``). ``value`` is K rescaled for display so
    that every depth shares the colour scale [-1, 1]: ``display="correlation"`` shows K_ij / sqrt(K_ii K_jj),
    ``"max"`` shows K / max|K|. Rows and columns are ordered by K's leading eigenvector, the same rule at every
    depth: when K is close to low rank, this ordering makes its blocks visible.
    """
    mode = config.gram_mode if mode is None else mode
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}.")
    check.integer("draw", draw, 0)
    if display not in ("correlation", "max"):
        raise ValueError(f"display must be 'correlation' or 'max', got {display!r}.")
    dtype = config.torch_dtype
    x = gaussian_inputs(config.n_samples, config.input_dim, config.seed, dtype)
    frames = []
    n = config.n_samples
    for depth in config.depths:
        g = torch.Generator().manual_seed(stable_seed("example", config.seed, init, depth, config.width, draw))
        dims = [config.input_dim] + [config.width] * depth
        weights = sample_mlp_weights(1, dims, gain=activation_gain(activation), init=init, generator=g, dtype=dtype)
        phi = mlp_forward(x, weights, activation)[0]
        K = output_gram(phi, mode)
        rho = float(entropy_effective_rank(K, symmetric_psd=True))
        _, vecs = torch.linalg.eigh(K)
        lead = vecs[:, -1]
        lead = lead * torch.sign(lead[lead.abs().argmax()])  # a fixed sign, so the order does not flip at random
        order = torch.argsort(lead, descending=True)
        K = K[order][:, order]
        if display == "correlation":
            d = torch.diagonal(K).clamp_min(torch.finfo(K.dtype).tiny).sqrt()
            K = K / (d[:, None] * d[None, :])
        else:
            K = K / K.abs().max()
        rows, cols = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        frames.append(pd.DataFrame({
            "depth": depth, "row": rows.flatten().numpy(), "col": cols.flatten().numpy(),
            "value": K.flatten().double().numpy(), "rho": rho,
        }))
    out = pd.concat(frames, ignore_index=True)
    out["activation"], out["init"], out["gram_mode"] = activation, init, mode
    return out


def median_table(df: pd.DataFrame, *, value: str = "rho", by: Sequence[str] = ("activation", "init"),
                 decimals: int | None = 2) -> pd.DataFrame:
    """Median of ``value`` per group (rows) and depth (columns), optionally rounded."""
    missing = ({value, "depth"} | set(by)) - set(df.columns)
    if missing:
        raise ValueError(f"median_table needs columns {sorted(missing)} in the DataFrame.")
    table = df.groupby([*by, "depth"], observed=True)[value].median().unstack("depth")
    return table.round(decimals) if decimals is not None else table
