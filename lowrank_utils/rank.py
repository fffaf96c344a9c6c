"""Effective rank and Gram-matrix tools.

Two quantities share the name "effective rank" in the literature, so they get names that cannot be mixed up:

* :func:`entropy_effective_rank` -- the paper's ρ(A) = -Σ σ̄ᵢ log σ̄ᵢ with σ̄ = σ / Σσ, in nats, between 0 and
  log(min(m, n)). Every figure in this course uses ρ unless it says otherwise.
* :func:`roy_vetterli_rank` -- exp(ρ), Roy & Vetterli's form, between 1 and min(m, n), read as "a number of
  dimensions".

All functions accept a matrix or a batch of matrices (any leading dimensions) and return a tensor on the input's
device.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TypeAlias

import torch
from numpy.typing import ArrayLike
from torch import Tensor

__all__ = [
    "singular_values",
    "normalized_spectrum",
    "entropy_effective_rank",
    "roy_vetterli_rank",
    "naive_entropy_effective_rank",
    "stable_rank",
    "gram_features",
    "gram",
    "cosine_gram",
    "gram_effective_rank",
]

Matrix: TypeAlias = Tensor | ArrayLike
"""What the functions here accept: a tensor, or anything ``torch.as_tensor`` reads (a NumPy array, nested lists)."""

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _as_matrix(x: Matrix, name: str = "A") -> Tensor:
    """Check that ``x`` is a finite, real, non-empty (batch of) matrix; return it as a float tensor."""
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(x)
        except Exception as err:  # pragma: no cover - exotic inputs
            raise ValueError(
                f"{name} must be a torch tensor or an array-like of numbers, got {type(x).__name__}"
            ) from err
    if x.ndim < 2:
        raise ValueError(
            f"{name} must be a matrix or a batch of matrices (at least 2 dimensions), got shape {tuple(x.shape)}. "
            "Turn a vector into a 1 x n matrix with x.reshape(1, -1)."
        )
    if x.shape[-1] == 0 or x.shape[-2] == 0 or x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); effective rank needs at least one entry.")
    if x.is_complex():
        raise ValueError(
            f"{name} has complex dtype {x.dtype}; this module works with real matrices. "
            "Pass x.real, x.abs() or torch.view_as_real(x) depending on what you mean to measure."
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} has dtype {x.dtype}; convert it to floating point first, e.g. {name}.float().")
    # One reduction decides the common case; only a non-finite sum (NaN/Inf inside, or an overflow) pays for the
    # element-wise count that the error message needs.
    if not bool(torch.isfinite(x.sum())) and not bool((finite := torch.isfinite(x)).all()):
        bad = int((~finite).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or Inf entries; its singular values are undefined. "
            "Check the computation that produced it (a diverging network, a division by zero)."
        )
    if x.dtype in _LOW_PRECISION:
        # SVD/eigh kernels are not implemented for half precision; float32 is the honest minimum.
        x = x.float()
    return x


def _normalise(s: Tensor, name: str) -> Tensor:
    """Divide non-negative spectra by their sums, refusing all-zero spectra (which would give 0/0 = NaN)."""
    total = s.sum(dim=-1, keepdim=True)
    if bool((total <= 0).any()):
        raise ValueError(
            f"{name} (or one matrix in the batch) is all zeros: its spectrum cannot be normalised, "
            "so its effective rank is undefined. Remove zero matrices before measuring."
        )
    return s / total


def _entropy_of_spectrum(s: Tensor, name: str) -> Tensor:
    """Entropy (nats) of non-negative spectra along the last dimension; zeros contribute exactly 0."""
    p = _normalise(s, name)
    # entr(p) = -p log p with entr(0) = 0: this is what keeps exact zeros from producing 0 * log 0 = NaN.
    return torch.special.entr(p).sum(dim=-1)


def singular_values(A: Matrix) -> Tensor:
    """Singular values of a (batch of) matrix, in descending order, on the input's device."""
    A = _as_matrix(A)
    return torch.linalg.svdvals(A)


def normalized_spectrum(A: Matrix) -> Tensor:
    """Singular values divided by their sum (the distribution whose entropy is ρ)."""
    return _normalise(singular_values(A), "A")


def entropy_effective_rank(A: Matrix, *, symmetric_psd: bool = False) -> Tensor:
    """The paper's effective rank ρ(A): entropy in nats of the normalised singular values.

    Set ``symmetric_psd=True`` for Gram/covariance matrices: their singular values are their eigenvalues, and
    ``eigvalsh`` is several times faster than an SVD. Tiny negative eigenvalues from rounding are clipped to 0;
    a matrix that is clearly not symmetric PSD raises ``ValueError``.
    """
    if symmetric_psd:
        return _entropy_of_spectrum(_psd_eigenvalues(A), "K")
    return _entropy_of_spectrum(singular_values(A), "A")


def roy_vetterli_rank(A: Matrix, *, symmetric_psd: bool = False) -> Tensor:
    """Roy & Vetterli's effective rank exp(ρ(A)), a real number between 1 and min(m, n)."""
    return torch.exp(entropy_effective_rank(A, symmetric_psd=symmetric_psd))


def naive_entropy_effective_rank(A: Tensor) -> Tensor:
    """ρ computed the textbook way, p * log p, kept for teaching: it returns NaN when a singular value is exactly 0."""
    s = torch.linalg.svdvals(A)
    p = s / s.sum(dim=-1, keepdim=True)
    return -(p * p.log()).sum(dim=-1)


def stable_rank(A: Matrix) -> Tensor:
    """Stable rank ‖A‖_F² / ‖A‖₂²: a smooth lower bound on the rank, between 1 and rank(A)."""
    s = singular_values(A)
    top = s[..., 0]
    if bool((top <= 0).any()):
        raise ValueError("A (or one matrix in the batch) is all zeros: its stable rank is undefined.")
    return (s**2).sum(dim=-1) / top**2


_SMALL = 512
"""Up to this size a symmetric eigensolver runs faster on one thread per matrix than on several (LAPACK's own
threads spend more time synchronising than computing), so batches of small matrices are split across threads."""


def _eigvalsh(K: Tensor) -> Tensor:
    """``torch.linalg.eigvalsh`` of a batch; on the CPU small matrices run one thread each, chunks in parallel."""
    n_threads = torch.get_num_threads()
    if K.device.type != "cpu" or K.shape[-1] > _SMALL:
        return torch.linalg.eigvalsh(K)
    flat = K.reshape(-1, *K.shape[-2:])

    def solve(chunk: Tensor) -> Tensor:
        torch.set_num_threads(1)  # also in worker threads: BLAS/OpenMP settings are per thread
        return torch.linalg.eigvalsh(chunk)

    try:
        if n_threads == 1 or flat.shape[0] == 1:
            evals = solve(flat)
        else:
            chunks = flat.chunk(n_threads)
            with ThreadPoolExecutor(len(chunks)) as pool:
                evals = torch.cat(list(pool.map(solve, chunks)))
    finally:
        torch.set_num_threads(n_threads)
    return evals.reshape(*K.shape[:-1])


def _psd_eigenvalues(K: Matrix) -> Tensor:
    K = _as_matrix(K, "K")
    if K.shape[-1] != K.shape[-2]:
        raise ValueError(f"K must be square to be a Gram matrix, got shape {tuple(K.shape)}.")
    scale = K.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(K.dtype).tiny)
    tol = 1e3 * torch.finfo(K.dtype).eps
    # Symmetry is checked on a probe vector, (K - Kᵀ) v = K v - Kᵀ v: two matrix-vector products instead of an
    # n x n difference. It finds any asymmetry well beyond rounding; eigvalsh would silently read one triangle.
    probe = torch.linspace(1.0, 2.0, K.shape[-1], dtype=K.dtype, device=K.device)
    skew = (K @ probe - K.mT @ probe).abs().amax(dim=-1)
    if bool((skew > tol * scale.squeeze(-1).squeeze(-1) * probe.sum()).any()):
        raise ValueError(
            "K is not symmetric, so it is not a Gram matrix; call entropy_effective_rank(K) without "
            "symmetric_psd=True, or symmetrise it with (K + K.mT) / 2 if the asymmetry is rounding."
        )
    evals = _eigvalsh(K)
    # Rounding makes the smallest eigenvalues of a PSD matrix slightly negative; anything beyond that is not PSD.
    floor = -tol * K.shape[-1] * scale.squeeze(-1)
    if bool((evals < floor).any()):
        raise ValueError(
            "K has clearly negative eigenvalues, so it is not positive semi-definite; pass a Gram matrix "
            "(features @ features.T) or drop symmetric_psd=True to use singular values."
        )
    return evals.clamp_min(0).flip(-1)


def gram_features(features: Matrix, *, center: bool = False, cosine: bool = False) -> Tensor:
    """The features Φ̃ a Gram matrix is formed from: Φ (..., n_samples, n_features), centred over the samples
    (``center``) and then scaled to unit-length rows (``cosine``; a zero row stays zero)."""
    features = _as_matrix(features, "features")
    if center:
        features = features - features.mean(dim=-2, keepdim=True)
    if cosine:
        features = torch.nn.functional.normalize(features, dim=-1)
    return features


def gram(features: Matrix, *, center: bool = False) -> Tensor:
    """Gram matrix K = Φ Φᵀ of features Φ with shape (..., n_samples, n_features).

    ``center=True`` subtracts the mean feature vector first (K = H Φ Φᵀ H), which removes the single large
    eigenvalue that a shared offset (e.g. non-negative ReLU features) puts in K.
    """
    phi = gram_features(features, center=center)
    return phi @ phi.mT


def cosine_gram(features: Matrix, *, center: bool = False) -> Tensor:
    """Cosine-similarity Gram matrix: each sample's feature vector is scaled to unit length first.

    A sample whose feature vector is exactly zero has no direction; its row and column stay zero.
    """
    phi = gram_features(features, center=center, cosine=True)
    return phi @ phi.mT


def gram_effective_rank(features: Matrix, *, center: bool = False, cosine: bool = False) -> Tensor:
    """ρ of the Gram matrix of ``features`` (rows are samples; K as :func:`gram` or :func:`cosine_gram` form it).

    The one place where the book measures ρ(K) from features. K = Φ̃Φ̃ᵀ (n × n) and Φ̃ᵀΦ̃ (f × f) share their non-zero
    eigenvalues, so the smaller of the two goes to the symmetric eigensolver; the extra zero eigenvalues of the
    larger one add nothing to ρ.
    """
    phi = gram_features(features, center=center, cosine=cosine)
    small = phi @ phi.mT if phi.shape[-2] <= phi.shape[-1] else phi.mT @ phi
    # Exact symmetry, so that the eigensolver (which reads one triangle) and its symmetry check see the same matrix.
    return entropy_effective_rank((small + small.mT) / 2, symmetric_psd=True)
