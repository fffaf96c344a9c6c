"""The experiments behind the book's figures: one module per chapter, each a pure function of its arguments or of a
small config dataclass, returning tidy pandas DataFrames (one row per measurement)."""

from __future__ import annotations

from .effective_rank import example_matrices, gram_vs_features, power_law_spectra, rank_table, spectra_table

__all__ = ["example_matrices", "gram_vs_features", "power_law_spectra", "rank_table", "spectra_table"]

# Chapters 2 and 3: random initialisation (Observation 1) and why depth lowers rank.
from .depth_volume import (  # noqa: E402
    LandscapeConfig,
    ProductConfig,
    VolumeConfig,
    balanced_factors,
    filter_normalized_direction,
    fuss_catalan_density,
    fuss_catalan_moment,
    fuss_catalan_rho_gap,
    landscape_summary,
    low_rank_fraction,
    predicted_product_rho,
    product_rank,
    product_spectra,
    random_products,
    rank_landscape,
    volume_curve,
    volume_draws,
)
from .random_init import (  # noqa: E402
    GRAM_MODES,
    RandomInitConfig,
    cpu_threads,
    gaussian_inputs,
    gram_examples,
    gram_mode_comparison,
    gram_rho,
    median_table,
    mlp_forward,
    output_gram,
    random_network_rhos,
    rank_distribution,
    sample_mlp_weights,
    width_sweep,
)

__all__ += [
    "GRAM_MODES", "RandomInitConfig", "cpu_threads", "gaussian_inputs", "gram_examples", "gram_mode_comparison",
    "gram_rho", "median_table", "mlp_forward", "output_gram", "random_network_rhos", "rank_distribution",
    "sample_mlp_weights", "width_sweep",
    "LandscapeConfig", "ProductConfig", "VolumeConfig", "balanced_factors", "filter_normalized_direction",
    "fuss_catalan_density", "fuss_catalan_moment", "fuss_catalan_rho_gap", "landscape_summary", "low_rank_fraction",
    "predicted_product_rho", "product_rank", "product_spectra", "random_products", "rank_landscape", "volume_curve",
    "volume_draws",
]

# Chapter 7: linear over-parameterization (exact collapse, cost, rank at initialisation, spectrum over training).
from .overparam_layers import (  # noqa: E402
    InitRankConfig,
    SpectrumConfig,
    checkpoint_table,
    collapse_check,
    conv_layers,
    cost_table,
    init_rank,
    init_rank_medians,
    layer_matrix,
    small_cnn,
    spectrum_dynamics,
    step_time_table,
)

__all__ += [
    "InitRankConfig", "SpectrumConfig", "checkpoint_table", "collapse_check", "conv_layers", "cost_table",
    "init_rank", "init_rank_medians", "layer_matrix", "small_cnn", "spectrum_dynamics", "step_time_table",
]

# Chapters 4-6: trained networks, optimizers and initialisation (Observations 2-4).
from .initialization import (  # noqa: E402
    INITS,
    InitComparisonConfig,
    initial_network,
    initialization_comparison,
    low_rank_init_,
)
from .optimizers import (  # noqa: E402
    DEFAULT_OPTIMIZER_SETTINGS,
    OptimizerComparisonConfig,
    depth_trend,
    optimizer_comparison,
    optimizer_summary,
)
from .trained import (  # noqa: E402
    ActivationTrainingConfig,
    DepthRegressionConfig,
    RegressionTask,
    best_depths,
    depth_regression,
    linear_network,
    load_results,
    make_regression_task,
    make_target,
    output_rho,
    save_results,
    seed_summary,
    train_on_task,
    trained_activations,
)

__all__ += [
    "INITS", "InitComparisonConfig", "initial_network", "initialization_comparison", "low_rank_init_",
    "DEFAULT_OPTIMIZER_SETTINGS", "OptimizerComparisonConfig", "depth_trend", "optimizer_comparison",
    "optimizer_summary",
    "ActivationTrainingConfig", "DepthRegressionConfig", "RegressionTask", "best_depths", "depth_regression",
    "linear_network", "load_results", "make_regression_task", "make_target", "output_rho", "save_results",
    "seed_summary", "train_on_task", "trained_activations",
]

# Chapters 8-9: over-parameterized image classifiers; ImageNet with DDP.
from .classification import (  # noqa: E402
    ClassificationConfig,
    classification_facts,
    compare_to_baseline,
    load_classification_results,
    run_classification,
    save_classification_results,
    significance_statement,
    summarize,
    training_flops,
)
from .imagenet import (  # noqa: E402
    gpu_hours,
    imagenet_training_work,
    overparam_parameter_table,
    read_run,
    run_torchrun,
    steps_per_epoch,
)

__all__ += [
    "ClassificationConfig", "classification_facts", "compare_to_baseline", "load_classification_results",
    "run_classification", "save_classification_results", "significance_statement", "summarize", "training_flops",
    "gpu_hours", "imagenet_training_work", "overparam_parameter_table", "read_run", "run_torchrun", "steps_per_epoch",
]
