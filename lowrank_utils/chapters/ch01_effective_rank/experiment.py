"""Chapter 1: worked examples of effective rank."""

from __future__ import annotations

import pandas as pd
import torch
from torch import Tensor

from lowrank_utils.rank import (
    cosine_gram,
    entropy_effective_rank,
    gram,
    normalized_spectrum,
    roy_vetterli_rank,
    stable_rank,
)


def example_matrices(n: int = 64, k: int = 4, spike: float = 10.0, seed: int = 0) -> dict[str, Tensor]:
    """Four n x n float64 matrices: the identity, a random rank-k matrix, a Gaussian matrix, and a Gaussian matrix
    plus a rank-1 spike ``spike`` times stronger than the noise."""
    if n < 2 or not 1 <= k <= n:
        raise ValueError(f"need n >= 2 and 1 <= k <= n, got n={n}, k={k}.")
    g = torch.Generator().manual_seed(seed)
    gauss = torch.randn(n, n, generator=g, dtype=torch.float64) / n**0.5
    low = torch.randn(n, k, generator=g, dtype=torch.float64) @ torch.randn(k, n, generator=g, dtype=torch.float64)
    u = torch.randn(n, 1, generator=g, dtype=torch.float64)
    v = torch.randn(1, n, generator=g, dtype=torch.float64)
    rank_one = u @ v / (u.norm() * v.norm())  # unit spectral norm
    noise_scale = torch.linalg.matrix_norm(gauss, ord=2)
    return {
        "identity": torch.eye(n, dtype=torch.float64),
        f"rank-{k}": low,
        "Gaussian": gauss,
        "spiked Gaussian": gauss + spike * noise_scale * rank_one,
    }


def rank_table(matrices: dict[str, Tensor]) -> pd.DataFrame:
    """One row per matrix: its shape, ρ, exp(ρ), stable rank and numerical rank."""
    rows = []
    for name, A in matrices.items():
        rows.append(
            {
                "matrix": name,
                "shape": "x".join(str(s) for s in A.shape),
                "rho": float(entropy_effective_rank(A)),
                "exp_rho": float(roy_vetterli_rank(A)),
                "stable_rank": float(stable_rank(A)),
                "rank": int(torch.linalg.matrix_rank(A)),
            }
        )
    return pd.DataFrame(rows)


def spectra_table(matrices: dict[str, Tensor]) -> pd.DataFrame:
    """Tidy normalised spectra: one row per (matrix, singular value index).

    ``numerically_zero`` marks the singular values below ``max(m, n) * eps * sigma_1``, the default tolerance of
    ``torch.linalg.matrix_rank``: zero up to rounding, so a log-scale plot should leave them out.
    """
    frames = []
    for name, A in matrices.items():
        p = normalized_spectrum(A)
        # p is sorted in decreasing order, so p[0] is sigma_1 / sum(sigma) and the tolerance scales with it.
        tol = max(A.shape[-2:]) * torch.finfo(p.dtype).eps * p[0]
        frames.append(
            pd.DataFrame(
                {
                    "matrix": name,
                    "index": range(1, len(p) + 1),
                    "normalized_sv": p.tolist(),
                    "numerically_zero": (p < tol).tolist(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def gram_vs_features(features: Tensor) -> pd.DataFrame:
    """ρ of a feature matrix Φ (rows are samples) and ρ of its Gram matrix, with the same treatment applied to both:
    none (Φ and ΦΦᵀ), centred (Φ - mean and its Gram matrix) and cosine (unit-length rows and their Gram matrix)."""
    centred = features - features.mean(dim=-2, keepdim=True)
    # A zero row has no direction; normalize leaves it zero, as cosine_gram does.
    unit = torch.nn.functional.normalize(features, dim=-1)
    treated = {
        "none": (features, gram(features)),
        "centred": (centred, gram(features, center=True)),
        "cosine": (unit, cosine_gram(features)),
    }
    rows = [
        {
            "treatment": name,
            "rho(features)": float(entropy_effective_rank(phi)),
            "rho(Gram)": float(entropy_effective_rank(K, symmetric_psd=True)),
        }
        for name, (phi, K) in treated.items()
    ]
    return pd.DataFrame(rows)


def power_law_spectra(n: int = 64, alphas: Tensor | None = None) -> pd.DataFrame:
    """ρ and exp(ρ) of n x n diagonal matrices with singular values σᵢ = i^(-α), one row per α."""
    if alphas is None:
        alphas = torch.linspace(0.0, 3.0, 31, dtype=torch.float64)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    spectra = i[None, :] ** (-alphas[:, None])
    batch = torch.diag_embed(spectra)  # one diagonal matrix per alpha, measured in one batched call
    rho = entropy_effective_rank(batch)
    return pd.DataFrame({"alpha": alphas.tolist(), "rho": rho.tolist(), "exp_rho": rho.exp().tolist()})
