"""Chapter 1's tables: the spectra flag rounding-level singular values, and the Gram-versus-features table compares
like with like."""

from __future__ import annotations

import torch

from lowrank_utils.chapters.ch01_effective_rank import example_matrices, gram_vs_features, spectra_table


def test_spectra_flag_only_singular_values_that_are_zero_up_to_rounding() -> None:
    spectra = spectra_table(example_matrices(n=64, k=4, seed=0))
    zeros = spectra.groupby("matrix", sort=False)["numerically_zero"].sum()
    # a rank-4 matrix has 60 singular values that are zero in exact arithmetic; full-rank matrices have none
    assert zeros.to_dict() == {"identity": 0, "rank-4": 60, "Gaussian": 0, "spiked Gaussian": 0}
    kept = spectra[~spectra["numerically_zero"]]
    assert kept["normalized_sv"].min() > 1e-6  # what the log-scale plot draws is structure, not rounding


def test_gram_and_features_get_the_same_treatment() -> None:
    g = torch.Generator().manual_seed(1)
    relu = torch.relu(torch.randn(256, 32, generator=g, dtype=torch.float64))
    table = gram_vs_features(relu).set_index("treatment")
    assert list(table.index) == ["none", "centred", "cosine"]
    # within a row, the Gram matrix squares the singular values, so its rho is never larger
    assert (table["rho(Gram)"] <= table["rho(features)"] + 1e-9).all()
    # the shared mean of ReLU features lowers rho; centring both removes it from both
    assert table.loc["centred", "rho(Gram)"] > table.loc["none", "rho(Gram)"] + 0.3
    assert table.loc["centred", "rho(features)"] > table.loc["none", "rho(features)"]
