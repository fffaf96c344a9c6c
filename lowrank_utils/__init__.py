"""lowrank_utils: the package behind the course on "The Low-Rank Simplicity Bias in Deep Networks".

Everything a notebook needs is importable from here; each name lives in one small module:

* ``rank``     -- effective rank (ρ and exp ρ), stable rank, Gram matrices
* ``runtime``  -- device, seeding, quick/full scale, Colab detection
* ``results``  -- stored runs of bigger presets (package data, with provenance)
* ``plans``    -- what each chapter runs at each scale and its measured run time
* ``models``   -- deep linear networks and MLPs
* ``data``     -- datasets: local directories first, then download, else a clear error
* ``overparam``-- over-parameterized layers, expand a model and collapse it back exactly
* ``train``    -- training loops (gradient-based and gradient-free) with progress bars
* ``plotting`` -- the book's figure style and shared plots
* ``experiments`` -- one module per chapter: the pure functions behind each figure
* ``plotting_*`` -- figures for chapters 2-3 (depth), 4-6 (training), 7 (overparam), 8-9 (classification)
* ``checks_*`` -- the exercise checkers of those chapters
* ``widgets``  -- ipywidgets explorers, each with a static-figure fallback
* ``checks``   -- exercise checkers (``Verdict``, PASS/FAIL with hints)
* ``exercises`` -- the student-notebook generator (``python -m lowrank_utils.exercises``)
* ``train_imagenet`` -- DDP ImageNet training (``torchrun -m lowrank_utils.train_imagenet``)
"""

from __future__ import annotations

from .checks import Verdict, check_close, check_diag_entropy, check_entropy_rank_function, report
from .data import (
    DATA_ENV,
    DATASETS,
    FASHION_MNIST_SYSTEM_DIRS,
    DatasetInfo,
    DatasetUnavailable,
    data_root,
    dataset_info,
    load_dataset,
    make_loaders,
)
from .models import (
    ACTIVATIONS,
    activation_gain,
    WEIGHT_INITS,
    Sine,
    end_to_end_weight,
    linear_layers,
    make_activation,
    make_deep_linear,
    make_mlp,
)
from .overparam import OverparamConv2d, OverparamLayer, OverparamLinear, collapse, overparameterize
from .checks_depth import (
    check_activation_trend,
    check_centered_gram,
    check_fraction_below,
    check_fuss_catalan_moment,
    check_two_factors,
)
from .experiments.classification import (
    ClassificationConfig,
    compare_to_baseline,
    run_classification,
    significance_statement,
)
from .experiments.initialization import low_rank_init_
from .experiments.trained import make_regression_task, output_rho, train_on_task
from .plotting_training import (
    plot_activation_rho,
    plot_depth_regression,
    plot_init_comparison,
    plot_optimizer_cost,
    plot_optimizer_rho,
    plot_rank_sweep,
    plot_rho_dynamics,
    plot_trained_grams,
)
from .plotting_classification import plot_classification, plot_epoch_curves
from .checks_overparam import check_collapse_linear, check_compose_kernels
from .plotting_overparam import (
    plot_init_rank,
    plot_rank_over_training,
    plot_spectrum_change,
    plot_spectrum_dynamics,
)
from .plotting_depth import (
    GRAM_MODE_LABELS,
    plot_gram_heatmaps,
    plot_gram_modes,
    plot_median_rho,
    plot_product_rank,
    plot_product_spectra,
    plot_rank_cdf,
    plot_rank_densities,
    plot_rank_landscape,
    plot_volume,
)
from .widgets import EXPLORER_DEPTHS, EXPLORER_WIDTHS, random_init_explorer, random_init_figure
from .plotting import depth_palette, plot_rank_table, plot_spectra, set_style
from .rank import (
    cosine_gram,
    entropy_effective_rank,
    gram,
    gram_effective_rank,
    naive_entropy_effective_rank,
    normalized_spectrum,
    roy_vetterli_rank,
    singular_values,
    stable_rank,
)
from .runtime import SCALE_ENV, cpu_threads, get_device, get_scale, in_colab, progress_enabled, seed_everything
from .results import STORED_RUNS, load_provenance, stored_run, stored_run_names
from .plans import CHAPTER_PLANS, announce_chapter, measured_time
from .train import (
    GRADIENT_FREE_OPTIMIZERS,
    OPTIMIZERS,
    TrainConfig,
    TrainingDiverged,
    TrainResult,
    fit,
    fit_regression,
)

__version__ = "0.1.0"

__all__ = [
    "low_rank_init_",
    "make_regression_task",
    "output_rho",
    "train_on_task",
    "plot_activation_rho",
    "plot_depth_regression",
    "plot_init_comparison",
    "plot_optimizer_cost",
    "plot_optimizer_rho",
    "plot_rank_sweep",
    "plot_rho_dynamics",
    "plot_trained_grams",
    "ClassificationConfig",
    "compare_to_baseline",
    "plot_classification",
    "plot_epoch_curves",
    "run_classification",
    "significance_statement",
    "check_collapse_linear",
    "check_compose_kernels",
    "plot_init_rank",
    "plot_rank_over_training",
    "plot_spectrum_change",
    "plot_spectrum_dynamics",
    "EXPLORER_DEPTHS",
    "EXPLORER_WIDTHS",
    "GRAM_MODE_LABELS",
    "activation_gain",
    "check_activation_trend",
    "check_centered_gram",
    "check_fraction_below",
    "check_fuss_catalan_moment",
    "check_two_factors",
    "plot_gram_heatmaps",
    "plot_gram_modes",
    "plot_median_rho",
    "plot_product_rank",
    "plot_product_spectra",
    "plot_rank_cdf",
    "plot_rank_densities",
    "plot_rank_landscape",
    "plot_volume",
    "cpu_threads",
    "STORED_RUNS",
    "load_provenance",
    "stored_run",
    "stored_run_names",
    "CHAPTER_PLANS",
    "announce_chapter",
    "measured_time",
    "progress_enabled",
    "random_init_explorer",
    "random_init_figure",
    "GRADIENT_FREE_OPTIMIZERS",
    "OPTIMIZERS",
    "OverparamConv2d",
    "OverparamLayer",
    "OverparamLinear",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "collapse",
    "fit",
    "fit_regression",
    "overparameterize",
    "DATASETS",
    "DATA_ENV",
    "DatasetInfo",
    "DatasetUnavailable",
    "FASHION_MNIST_SYSTEM_DIRS",
    "data_root",
    "dataset_info",
    "load_dataset",
    "make_loaders",
    "ACTIVATIONS",
    "SCALE_ENV",
    "WEIGHT_INITS",
    "Sine",
    "Verdict",
    "check_close",
    "check_diag_entropy",
    "check_entropy_rank_function",
    "cosine_gram",
    "depth_palette",
    "end_to_end_weight",
    "entropy_effective_rank",
    "get_device",
    "get_scale",
    "gram",
    "gram_effective_rank",
    "in_colab",
    "linear_layers",
    "make_activation",
    "make_deep_linear",
    "make_mlp",
    "naive_entropy_effective_rank",
    "normalized_spectrum",
    "plot_rank_table",
    "plot_spectra",
    "report",
    "roy_vetterli_rank",
    "seed_everything",
    "set_style",
    "singular_values",
    "stable_rank",
]
