"""Chapter 3: why depth lowers rank. Products of random matrices, the rank landscape, and the "volume" of
low-rank parameters.

* Products of ``d`` random N × N matrices (entries of variance 1/N): their squared singular values follow, as
  N → ∞, the Fuss–Catalan law of order ``d`` (Penson & Życzkowski 2011; ``d = 1`` is the Marchenko–Pastur law with
  ratio 1). :func:`fuss_catalan_density` draws it, :func:`fuss_catalan_moment` gives its moments (also for
  non-integer order, through the Mellin transform), and :func:`fuss_catalan_rho_gap` turns them into the N → ∞
  prediction of ρ(W) − log N.
* The rank landscape: ρ of the end-to-end weight on a plane of random, filter-normalised directions around one
  weight, written as a product of 1, 2, 4, … factors.
* The volume: the fraction of random parameter draws whose ρ falls below a threshold, depth by depth.

As in chapter 2, all draws are batched (a leading draw dimension) and the sizes are our choices, not the paper's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from scipy.special import digamma, gammaln
from torch import Tensor

from lowrank_utils import validate as check
from lowrank_utils.chapters.ch02_random_initialization.experiment import (
    _DTYPES,
    _on_config_threads,
    sample_mlp_weights,
)
from lowrank_utils.presets import Presets
from lowrank_utils.rank import entropy_effective_rank
from lowrank_utils.runtime import stable_seed

_INITS = ("normal", "uniform")


_BLOCK = 250


def _check_common(dtype: str, device: str, seed: int) -> None:
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}.")
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device name.") from err
    check.integer("seed", seed, 0)


@dataclass(frozen=True)
class ProductConfig(Presets):
    """Products W = W_d ⋯ W_1 of ``depth`` random ``size`` × ``size`` matrices, ``draws`` of them per depth.

    Entries have variance 1/size (``normal``, or ``uniform`` with the same variance), so E‖Wx‖² = ‖x‖² at
    every depth and only the *shape* of the spectrum changes.
    """

    # quick: 32 x 32 matrices, 200 draws per depth; full: 64 x 64, 1,000 draws.
    QUICK: ClassVar[dict[str, Any]] = dict(size=32, draws=200)
    FULL: ClassVar[dict[str, Any]] = dict(size=64, draws=1000)

    depths: tuple[int, ...] = (1, 2, 4, 8, 16)
    size: int = 32
    draws: int = 200
    init: str = "normal"
    seed: int = 0
    dtype: str = "float64"
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", check.integers("depths", self.depths))
        check.integer("size", self.size, 2)
        check.integer("draws", self.draws)
        if self.init not in _INITS:
            raise ValueError(f"unknown init {self.init!r}; choose one of {', '.join(_INITS)}.")
        _check_common(self.dtype, self.device, self.seed)


def random_products(
    depth: int, size: int, draws: int, *, init: str = "normal", seed: int = 0, dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu", block: int = 0,
) -> Tensor:
    """``draws`` end-to-end weights W_d ⋯ W_1 of random size × size factors (entry variance 1/size)."""
    check.integer("depth", depth)
    g = torch.Generator().manual_seed(stable_seed("product", seed, init, depth, size, block))
    factors = sample_mlp_weights(draws, [size] * (depth + 1), gain=1.0, init=init, generator=g, dtype=dtype)
    w = factors[0].to(device)
    for f in factors[1:]:
        w = f.to(device) @ w
    return w


def _over_products(config: ProductConfig, depth: int, measure: Callable[[Tensor], Tensor]) -> Tensor:
    """``measure`` of all ``config.draws`` products of one depth, drawn in blocks of ``_BLOCK`` (on the CPU)."""
    out = []
    for block, start in enumerate(range(0, config.draws, _BLOCK)):
        size = min(_BLOCK, config.draws - start)
        w = random_products(depth, config.size, size, init=config.init, seed=config.seed,
                            dtype=_DTYPES[config.dtype], device=config.device, block=block)
        out.append(measure(w).cpu())
    return torch.cat(out)


def _product_svals(config: ProductConfig, depth: int) -> Tensor:
    return _over_products(config, depth, torch.linalg.svdvals)


@_on_config_threads
def product_spectra(config: ProductConfig) -> pd.DataFrame:
    """Every singular value of every product: depth, draw, index (1 = largest), sv, sq_sv (σ²), normalized_sv."""
    frames = []
    for depth in config.depths:
        s = _product_svals(config, depth).double()
        draws, n = s.shape
        frames.append(pd.DataFrame({
            "depth": depth,
            "draw": np.repeat(np.arange(draws), n),
            "index": np.tile(np.arange(1, n + 1), draws),
            "sv": s.flatten().numpy(),
            "sq_sv": (s**2).flatten().numpy(),
            "normalized_sv": (s / s.sum(dim=-1, keepdim=True)).flatten().numpy(),
        }))
    return pd.concat(frames, ignore_index=True)


@_on_config_threads
def product_rank(config: ProductConfig) -> pd.DataFrame:
    """ρ(W) of every product (depth, draw, rho), next to the N → ∞ Fuss–Catalan prediction (rho_theory)."""
    frames = []
    for depth in config.depths:
        rho = _rho_of_products(config, depth)
        frames.append(pd.DataFrame({"depth": depth, "draw": range(len(rho)), "rho": rho.numpy()}))
    df = pd.concat(frames, ignore_index=True)
    theory = predicted_product_rho(config.depths, config.size).set_index("depth")["rho_theory"]
    df["rho_theory"] = df["depth"].map(theory)
    df["size"] = config.size
    return df


def _rho_of_products(config: ProductConfig, depth: int) -> Tensor:
    return _over_products(config, depth, entropy_effective_rank).double()


def _check_order(s: int) -> None:
    if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 1:
        raise ValueError(f"the order (number of factors) must be a positive integer, got {s!r}.")


def fuss_catalan_moment(s: int, k: float) -> float:
    """E[x^k] under the Fuss–Catalan law of order ``s``: Γ((s+1)k+1) / (Γ(k+1) Γ(sk+2)).

    For integer k this is the Fuss–Catalan number binom((s+1)k, k) / (sk+1) (for s = 1, the Catalan numbers);
    the same formula (the law's Mellin transform) holds for real k > -1/(s+1), e.g. k = 1/2 gives E[σ].
    """
    _check_order(s)
    if not k > -1.0 / (s + 1):
        raise ValueError(f"the moment of order k exists only for k > -1/(s+1) = {-1 / (s + 1):.3f}, got {k!r}.")
    return float(np.exp(gammaln((s + 1) * k + 1) - gammaln(k + 1) - gammaln(s * k + 2)))


def fuss_catalan_density(s: int, points: int = 400) -> pd.DataFrame:
    """The Fuss–Catalan density of order ``s`` on a grid: x, density f(x), log_x and log_density (x·f(x), the
    density of log x).

    Uses the parametrisation x(φ) = sin((s+1)φ)^(s+1) / (sin φ · sin(sφ)^s), f = sin(φ)² sin(sφ)^(s-1) /
    (π sin((s+1)φ)^s), 0 < φ < π/(s+1); the tests check it against the moments. Support: 0 < x ≤ (s+1)^(s+1)/s^s.
    """
    _check_order(s)
    check.integer("points", points, 2)
    # φ on a grid that is denser near φ → π/(s+1), where x → 0 and log x → -∞
    u = np.linspace(0.0, 1.0, points + 2)[1:-1]
    phi = (np.pi / (s + 1)) * (1 - (1 - u) ** 3)
    x = np.sin((s + 1) * phi) ** (s + 1) / (np.sin(phi) * np.sin(s * phi) ** s)
    f = np.sin(phi) ** 2 * np.sin(s * phi) ** (s - 1) / (np.pi * np.sin((s + 1) * phi) ** s)
    order = np.argsort(x)
    x, f = x[order], f[order]
    return pd.DataFrame({"order": s, "x": x, "density": f, "log_x": np.log(x), "log_density": x * f})


def fuss_catalan_rho_gap(s: int) -> float:
    """lim_{N→∞} ρ(W) − log N for a product of ``s`` random N × N matrices.

    With σ = √x: ρ = log N + log E[σ] − E[σ log σ] / E[σ] in the limit, and both expectations follow from the
    Mellin transform M(t) = E[x^t]: E[σ] = M(1/2), E[σ log σ] = M'(1/2)/2.
    """
    _check_order(s)
    half = 0.5
    log_m = math.log(fuss_catalan_moment(s, half))
    dlog_m = (s + 1) * digamma((s + 1) * half + 1) - digamma(half + 1) - s * digamma(s * half + 2)
    return float(log_m - 0.5 * dlog_m)


def predicted_product_rho(depths: Sequence[int], size: int) -> pd.DataFrame:
    """The N → ∞ prediction log N + gap(d) for each depth d, with N = ``size``: columns depth, rho_theory."""
    depths = check.integers("depths", depths)
    check.integer("size", size, 2)
    return pd.DataFrame({"depth": list(depths),
                         "rho_theory": [math.log(size) + fuss_catalan_rho_gap(d) for d in depths]})


@dataclass(frozen=True)
class LandscapeConfig(Presets):
    """ρ of the end-to-end weight over the plane θ + α·u + β·v, α, β ∈ [-span, span] (``grid`` points each), for
    one ``size`` × ``size`` Gaussian weight written as a product of each number of factors in ``depths``."""

    # quick: a 16 x 16 weight on a 41 x 41 grid, depths 1, 2, 4; full: 32 x 32 on 101 x 101, depths up to 8.
    QUICK: ClassVar[dict[str, Any]] = dict(size=16, grid=41)
    FULL: ClassVar[dict[str, Any]] = dict(size=32, grid=101, depths=(1, 2, 4, 8))

    size: int = 16
    grid: int = 41
    span: float = 1.0
    seed: int = 0
    depths: tuple[int, ...] = (1, 2, 4)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", check.integers("depths", self.depths))
        check.integer("size", self.size, 2)
        check.integer("grid", self.grid, 2)
        check.number("span", self.span)
        check.integer("seed", self.seed, 0)


def _haar_orthogonal(n: int, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=dtype))
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # the sign fix makes Q Haar-distributed


def balanced_factors(W: Tensor, depth: int, generator: torch.Generator | None = None) -> list[Tensor]:
    """Factors [W_1, …, W_depth] (applied first to last) whose product W_depth ⋯ W_1 equals the square matrix W.

    With W = U S Vᵀ each factor carries S^(1/depth), so all factors have the same singular values ("balanced"):
    W_1 = Q_1 S^(1/d) Vᵀ, W_i = Q_i S^(1/d) Q_(i-1)ᵀ, W_d = U S^(1/d) Q_(d-1)ᵀ, with random orthogonal Q_i when a
    ``generator`` is given (identity otherwise).
    """
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"W must be a square matrix, got shape {tuple(W.shape)}.")
    check.integer("depth", depth)
    U, S, Vh = torch.linalg.svd(W)
    root = torch.diag(S ** (1.0 / depth))
    n = W.shape[0]
    qs = [_haar_orthogonal(n, generator, W.dtype) if generator is not None else torch.eye(n, dtype=W.dtype)
          for _ in range(depth - 1)]
    left = [*qs, U]
    right = [Vh] + [q.T for q in qs]
    return [left[i] @ root @ right[i] for i in range(depth)]


def filter_normalized_direction(weights: Sequence[Tensor], generator: torch.Generator | None = None) -> list[Tensor]:
    """A random Gaussian direction in parameter space, each row ("filter") rescaled to the norm of the same row of
    the weight it perturbs (filter normalisation, Li et al. 2018), so every layer is perturbed in proportion."""
    out = []
    for w in weights:
        d = torch.randn(w.shape, generator=generator, dtype=w.dtype)
        d = d * (w.norm(dim=-1, keepdim=True) / d.norm(dim=-1, keepdim=True).clamp_min(1e-30))
        out.append(d)
    return out


@_on_config_threads
def rank_landscape(config: LandscapeConfig) -> pd.DataFrame:
    """ρ(W_e(α, β)) on the grid, one row per (depth, alpha, beta); depth 1 is the one-layer parameterisation.

    All depths share the same target W (Gaussian, entry variance 1/size), so at α = β = 0 every parameterisation
    computes the same matrix and has the same ρ; only the neighbourhood differs.
    """
    dtype = torch.float64
    g = torch.Generator().manual_seed(stable_seed("landscape-target", config.seed, config.size))
    W = torch.randn(config.size, config.size, generator=g, dtype=dtype) / math.sqrt(config.size)
    axis = torch.linspace(-config.span, config.span, config.grid, dtype=dtype)
    alpha, beta = torch.meshgrid(axis, axis, indexing="ij")
    a, b = alpha.reshape(-1, 1, 1), beta.reshape(-1, 1, 1)
    frames = []
    for depth in config.depths:
        g = torch.Generator().manual_seed(stable_seed("landscape", config.seed, config.size, depth))
        factors = balanced_factors(W, depth, g)
        u = filter_normalized_direction(factors, g)
        v = filter_normalized_direction(factors, g)
        we = factors[0] + a * u[0] + b * v[0]  # (grid², n, n): every point of the plane at once
        for f, du, dv in zip(factors[1:], u[1:], v[1:], strict=True):
            we = (f + a * du + b * dv) @ we
        rho = entropy_effective_rank(we)
        frames.append(pd.DataFrame({"depth": depth, "alpha": alpha.flatten().numpy(),
                                    "beta": beta.flatten().numpy(), "rho": rho.numpy()}))
    df = pd.concat(frames, ignore_index=True)
    df["size"] = config.size
    return df


def landscape_summary(df: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per depth: ρ at the centre, the mean ρ over the plane and the fraction of the plane with ρ < ``threshold``."""
    missing = {"depth", "alpha", "beta", "rho"} - set(df.columns)
    if missing:
        raise ValueError(f"landscape_summary needs columns {sorted(missing)}.")
    rows = []
    for depth, part in df.groupby("depth"):
        centre = part.loc[(part["alpha"].abs() + part["beta"].abs()).idxmin(), "rho"]
        rows.append({"depth": depth, "rho_at_centre": float(centre), "mean_rho": float(part["rho"].mean()),
                     "fraction_below": float((part["rho"] < threshold).mean())})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class VolumeConfig(Presets):
    """The fraction of random deep linear networks (``draws`` per size, init and depth) whose end-to-end weight
    has ρ < c · log(size), for each c in ``threshold_fractions`` and each factor size in ``sizes``."""

    # quick: factors of size 4-32, 400 draws per (size, init, depth); full: sizes up to 64, 2,000 draws.
    QUICK: ClassVar[dict[str, Any]] = dict(sizes=(4, 8, 16, 32), draws=400)
    FULL: ClassVar[dict[str, Any]] = dict(sizes=(4, 8, 16, 32, 64), draws=2000)

    depths: tuple[int, ...] = tuple(range(1, 17))
    sizes: tuple[int, ...] = (4, 8, 16, 32)
    draws: int = 400
    inits: tuple[str, ...] = ("normal", "uniform")
    threshold_fractions: tuple[float, ...] = (0.7,)
    seed: int = 0
    dtype: str = "float64"
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", check.integers("depths", self.depths))
        object.__setattr__(self, "sizes", check.integers("sizes", self.sizes))
        if min(self.sizes) < 2:
            raise ValueError(f"sizes must be at least 2 (a 1 x 1 matrix always has ρ = 0), got {self.sizes!r}.")
        object.__setattr__(self, "inits", check.names("inits", self.inits, _INITS))
        check.integer("draws", self.draws)
        fractions = tuple(self.threshold_fractions)
        if not fractions or any(not (isinstance(c, (int, float)) and 0 < c <= 1) for c in fractions):
            raise ValueError(f"threshold_fractions must be numbers in (0, 1], got {self.threshold_fractions!r}.")
        object.__setattr__(self, "threshold_fractions", fractions)
        _check_common(self.dtype, self.device, self.seed)

    def thresholds(self, size: int) -> tuple[float, ...]:
        """The absolute thresholds c · log(size), in nats, for factors of ``size``."""
        return tuple(c * math.log(size) for c in self.threshold_fractions)


@_on_config_threads
def volume_draws(config: VolumeConfig) -> pd.DataFrame:
    """ρ of the end-to-end weight of every random draw: size, init, depth, draw, rho."""
    frames = []
    for size in config.sizes:
        for init in config.inits:
            pconf = ProductConfig(depths=config.depths, size=size, draws=config.draws, init=init,
                                  seed=config.seed, dtype=config.dtype, device=config.device)
            for depth in config.depths:
                rho = _rho_of_products(pconf, depth)
                frames.append(pd.DataFrame({"size": size, "init": init, "depth": depth, "draw": range(len(rho)),
                                            "rho": rho.numpy()}))
    return pd.concat(frames, ignore_index=True)


def low_rank_fraction(df: pd.DataFrame, thresholds: Sequence[float], by: Sequence[str] = ("depth",)) -> pd.DataFrame:
    """For each group in ``by`` and each threshold τ: the fraction of rows with rho < τ and its standard error."""
    by = list(by)
    missing = (set(by) | {"rho"}) - set(df.columns)
    if missing:
        raise ValueError(f"low_rank_fraction needs columns {sorted(missing)}.")
    thresholds = [float(t) for t in thresholds]
    if not thresholds:
        raise ValueError("give at least one threshold.")
    rows = []
    for key, part in df.groupby(by, observed=True, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        n = len(part)
        for tau in thresholds:
            p = float((part["rho"] < tau).mean())
            rows.append({**dict(zip(by, key, strict=True)), "threshold": tau, "fraction": p,
                         "stderr": math.sqrt(p * (1 - p) / n), "draws": n})
    return pd.DataFrame(rows)


def volume_curve(config: VolumeConfig, draws: pd.DataFrame | None = None) -> pd.DataFrame:
    """The volume curve: per size, init, depth and threshold c · log(size), the fraction of draws with ρ(W_e) below
    it. Pass the output of :func:`volume_draws` as ``draws`` to reuse it."""
    draws = volume_draws(config) if draws is None else draws
    frames = []
    for size in config.sizes:
        part = low_rank_fraction(draws[draws["size"] == size], config.thresholds(size), by=("init", "depth"))
        part["threshold_fraction"] = np.tile(config.threshold_fractions, len(part) // len(config.threshold_fractions))
        part.insert(0, "size", size)
        frames.append(part)
    return pd.concat(frames, ignore_index=True)
