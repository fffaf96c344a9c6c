"""The experiments behind the book's figures: one module per chapter, each a pure function of its arguments or of a
small config dataclass, returning tidy pandas DataFrames (one row per measurement)."""

from __future__ import annotations

from .effective_rank import example_matrices, gram_vs_features, power_law_spectra, rank_table, spectra_table

__all__ = ["example_matrices", "gram_vs_features", "power_law_spectra", "rank_table", "spectra_table"]
