"""Effective rank: known values, invariances, batching, agreement with the naive formula, and bad input."""

import math
from collections.abc import Callable

import pytest
import torch

import lowrank_utils as lu

DT = torch.float64
Rand = Callable[..., torch.Tensor]  # the conftest fixture: rand(*shape, seed=0), float64


@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_identity_gives_log_n(n: int) -> None:
    assert lu.entropy_effective_rank(torch.eye(n, dtype=DT)).item() == pytest.approx(math.log(n), abs=1e-12)
    assert lu.roy_vetterli_rank(torch.eye(n, dtype=DT)).item() == pytest.approx(n, rel=1e-12)


def test_rank_one_gives_zero(rand: Rand) -> None:
    A = rand(9, 1) @ rand(1, 5, seed=1)
    assert lu.entropy_effective_rank(A).item() == pytest.approx(0.0, abs=1e-6)
    assert lu.roy_vetterli_rank(A).item() == pytest.approx(1.0, abs=1e-6)


def test_k_equal_singular_values_give_log_k() -> None:
    D = torch.diag(torch.tensor([2.0, 2.0, 2.0, 0.0, 0.0], dtype=DT))
    assert lu.entropy_effective_rank(D).item() == pytest.approx(math.log(3), abs=1e-12)


def test_invariances(rand: Rand) -> None:
    A = rand(12, 8)
    rho = lu.entropy_effective_rank(A)
    Q1, _ = torch.linalg.qr(rand(12, 12, seed=3))
    Q2, _ = torch.linalg.qr(rand(8, 8, seed=4))
    for B in (3.7 * A, 1e-6 * A, A.T, Q1 @ A, A @ Q2, Q1 @ A @ Q2):
        assert torch.allclose(lu.entropy_effective_rank(B), rho, atol=1e-10)


def test_batched_equals_loop_and_keeps_shape(rand: Rand) -> None:
    A = rand(3, 4, 10, 6)
    batched = lu.entropy_effective_rank(A)
    assert batched.shape == (3, 4)
    looped = torch.stack([torch.stack([lu.entropy_effective_rank(A[i, j]) for j in range(4)]) for i in range(3)])
    assert torch.allclose(batched, looped, atol=1e-12)


def test_agrees_with_naive_formula_where_defined(rand: Rand) -> None:
    A = rand(20, 15)
    assert torch.allclose(lu.entropy_effective_rank(A), lu.naive_entropy_effective_rank(A), atol=1e-12)


def test_finite_on_rank_deficient_input_where_naive_is_nan(rand: Rand) -> None:
    D = torch.diag(torch.tensor([3.0, 1.0, 0.0, 0.0], dtype=DT))
    assert torch.isnan(lu.naive_entropy_effective_rank(D))
    rho = lu.entropy_effective_rank(D)
    assert torch.isfinite(rho)
    p = torch.tensor([0.75, 0.25], dtype=DT)
    assert rho.item() == pytest.approx(float(-(p * p.log()).sum()), abs=1e-12)
    padded = torch.cat([rand(6, 3), torch.zeros(6, 3, dtype=DT)], dim=1)
    assert torch.isfinite(lu.entropy_effective_rank(padded))


def test_symmetric_psd_fast_path_matches_svd(rand: Rand) -> None:
    phi = rand(5, 40, 30)
    K = lu.gram(phi)
    fast = lu.entropy_effective_rank(K, symmetric_psd=True)
    slow = lu.entropy_effective_rank(K)
    assert torch.allclose(fast, slow, atol=1e-8)
    # A rank-deficient Gram matrix (30 features, 40 samples) has ten zero eigenvalues, some rounded below 0.
    assert torch.isfinite(fast).all()
    assert torch.allclose(lu.gram_effective_rank(phi), fast)


def test_gram_spectrum_is_squared_feature_spectrum(rand: Rand) -> None:
    phi = rand(30, 10)
    s = torch.linalg.svdvals(phi)
    eig = torch.linalg.eigvalsh(lu.gram(phi)).flip(-1)[:10]
    assert torch.allclose(eig, s**2, atol=1e-9)
    # squaring sharpens a non-flat spectrum, so rho(K) < rho(Phi)
    assert lu.gram_effective_rank(phi) < lu.entropy_effective_rank(phi)


def test_centering_removes_shared_offset(rand: Rand) -> None:
    phi = rand(100, 20) + 5.0
    plain = lu.gram_effective_rank(phi)
    centred = lu.gram_effective_rank(phi, center=True)
    assert plain < 1.0 < centred
    centred_phi = phi - phi.mean(0)
    assert torch.allclose(lu.gram(phi, center=True), centred_phi @ centred_phi.T)


def test_cosine_gram_has_unit_diagonal_and_handles_zero_rows(rand: Rand) -> None:
    phi = rand(6, 4)
    phi[2] = 0.0
    K = lu.cosine_gram(phi)
    diag = torch.diagonal(K)
    assert torch.allclose(diag[[0, 1, 3, 4, 5]], torch.ones(5, dtype=DT))
    assert diag[2] == 0 and torch.isfinite(K).all()


def test_stable_rank() -> None:
    assert lu.stable_rank(torch.eye(5, dtype=DT)).item() == pytest.approx(5.0)
    D = torch.diag(torch.tensor([2.0, 1.0], dtype=DT))
    assert lu.stable_rank(D).item() == pytest.approx(5.0 / 4.0)


def test_low_precision_input_is_measured_in_float32(rand: Rand) -> None:
    A = rand(8, 8).to(torch.bfloat16)
    out = lu.entropy_effective_rank(A)
    assert out.dtype == torch.float32 and torch.isfinite(out)


def test_stays_on_input_device(rand: Rand) -> None:
    A = rand(6, 6)
    assert lu.entropy_effective_rank(A).device == A.device
    if torch.cuda.is_available():
        assert lu.entropy_effective_rank(A.cuda()).device.type == "cuda"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.ones(5, dtype=DT), "at least 2 dimensions"),
        (torch.ones(0, 3, dtype=DT), "empty"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), "NaN or Inf"),
        (torch.tensor([[1.0, float("inf")], [0.0, 1.0]]), "NaN or Inf"),
        (torch.ones(3, 3, dtype=torch.int64), "floating point"),
        (torch.ones(3, 3, dtype=torch.complex64), "complex"),
        (torch.zeros(3, 3, dtype=DT), "all zeros"),
    ],
)
def test_bad_input_raises_clear_value_error(bad: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lu.entropy_effective_rank(bad)


def test_psd_path_rejects_non_gram_matrices(rand: Rand) -> None:
    with pytest.raises(ValueError, match="not symmetric"):
        lu.entropy_effective_rank(rand(4, 4), symmetric_psd=True)
    with pytest.raises(ValueError, match="negative eigenvalues"):
        lu.entropy_effective_rank(-torch.eye(3, dtype=DT), symmetric_psd=True)
    with pytest.raises(ValueError, match="square"):
        lu.entropy_effective_rank(rand(4, 3), symmetric_psd=True)


def test_numpy_input_is_accepted() -> None:
    import numpy as np

    assert lu.entropy_effective_rank(np.eye(4)).item() == pytest.approx(math.log(4))


def test_batched_fast_path_splits_work_across_threads_and_restores_the_setting() -> None:
    g = torch.Generator().manual_seed(1)
    phi = torch.randn(7, 40, 30, generator=g, dtype=DT)
    K = lu.gram(phi)
    before = torch.get_num_threads()
    with lu.cpu_threads(2, device="cpu"):
        fast = lu.entropy_effective_rank(K, symmetric_psd=True)
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    one_by_one = torch.stack([lu.entropy_effective_rank(phi_i, symmetric_psd=False) for phi_i in K])
    assert torch.allclose(fast, one_by_one, atol=1e-9)
    # leading batch dimensions survive the split
    assert lu.entropy_effective_rank(K.reshape(7, 1, 40, 40), symmetric_psd=True).shape == (7, 1)


def test_cheap_checks_still_catch_bad_gram_matrices(rand: Rand) -> None:
    K = lu.gram(rand(6, 5))
    bad = K.clone()
    bad[0, 3] += 1.0  # one asymmetric entry, far beyond rounding
    with pytest.raises(ValueError, match="not symmetric"):
        lu.entropy_effective_rank(bad, symmetric_psd=True)
    nan = K.clone()
    nan[2, 2] = float("nan")
    with pytest.raises(ValueError, match="1 NaN or Inf"):
        lu.entropy_effective_rank(nan, symmetric_psd=True)
    huge = torch.full((3, 3), 1e38)  # finite float32 entries whose sum overflows: still accepted (rank one)
    assert float(lu.entropy_effective_rank(huge, symmetric_psd=True)) == pytest.approx(0.0, abs=1e-4)
