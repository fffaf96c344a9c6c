"""lowrank_utils: the package behind the course on "The Low-Rank Simplicity Bias in Deep Networks".

Two layers. The **core**, by concern, is importable from here (``import lowrank_utils as lu``):

=================  ======================================================================================
``rank``           effective rank ρ (entropy, nats) and exp ρ, stable rank, Gram matrices and their ρ
``models``         MLPs and deep linear networks, the small CNN and ResNet-18 for images, parameter counts
``overparam``      over-parameterized layers; expand a model and collapse it back exactly
``regression``     the teacher-student regression task of chapters 4-6 and one call that trains on it
``train``          one training loop for those networks (six optimizers); the DDP ImageNet trainer
``data``           datasets: a local directory first, then download, else a clear error
``runtime``        device, seeding, quick/full scale, threads, Colab detection
``presets``        the quick/full preset scheme every experiment config uses
``validate``       argument checks shared by every config (clear ``ValueError``)
``results``        stored runs of the bigger presets, with provenance (one format)
``plans``          what each chapter runs at each scale, and its measured run time
``checks``         the exercise-checker conventions (PASS/FAIL, grading)
``plotting``       the book's figure style
``exercises``      the student-notebook generator (``python -m lowrank_utils.exercises``)
=================  ======================================================================================

The **chapters** each have one package named like the notebook, holding that chapter's experiment, figures and
exercise checkers: ``from lowrank_utils.chapters.ch04_trained_networks import depth_regression``.
"""

from __future__ import annotations

# Data and training: every public name of each, as listed once in its own __all__ (spliced in at the end)
from . import data, train

# Exercise checks and figure style
from .checks import CheckFailed, Verdict, check_choice, check_close, grading, report
from .data import *  # noqa: F403

# Models
from .models import (
    ACTIVATIONS,
    WEIGHT_INITS,
    CompactCNN,
    Sine,
    SmallCNN,
    activation_gain,
    build_model,
    count_parameters,
    end_to_end_weight,
    linear_layers,
    make_activation,
    make_deep_linear,
    make_mlp,
    plain_cnn,
)

# Over-parameterized layers
from .overparam import (
    OverparamConv2d,
    OverparamLayer,
    OverparamLinear,
    collapse,
    overparameterize,
)
from .plans import CHAPTER_PLANS, announce_chapter
from .plotting import depth_palette, set_style

# Effective rank and Gram matrices
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

# The regression task of chapters 4-6 and its training loop
from .regression import RegressionTask, make_regression_task, output_rho, train_on_task

# Stored runs and chapter plans
from .results import (
    STORED_RUNS,
    load_provenance,
    load_results,
    save_results,
    stored_run,
    stored_run_names,
)

# Runtime: device, seeds, scale, threads
from .runtime import (
    SCALE_ENV,
    cpu_threads,
    get_device,
    get_scale,
    in_colab,
    progress_enabled,
    seed_everything,
    stable_seed,
)
from .train import *  # noqa: F403

__all__ = [
    # rank
    "cosine_gram",
    "entropy_effective_rank",
    "gram",
    "gram_effective_rank",
    "naive_entropy_effective_rank",
    "normalized_spectrum",
    "roy_vetterli_rank",
    "singular_values",
    "stable_rank",
    # runtime
    "SCALE_ENV",
    "cpu_threads",
    "get_device",
    "get_scale",
    "in_colab",
    "progress_enabled",
    "seed_everything",
    "stable_seed",
    # models
    "ACTIVATIONS",
    "WEIGHT_INITS",
    "CompactCNN",
    "Sine",
    "SmallCNN",
    "activation_gain",
    "build_model",
    "count_parameters",
    "end_to_end_weight",
    "linear_layers",
    "make_activation",
    "make_deep_linear",
    "make_mlp",
    "plain_cnn",
    # overparam
    "OverparamConv2d",
    "OverparamLayer",
    "OverparamLinear",
    "collapse",
    "overparameterize",
    # regression task (its training loop: train.__all__, below)
    "RegressionTask",
    "make_regression_task",
    "output_rho",
    "train_on_task",
    # stored runs and plans
    "STORED_RUNS",
    "load_provenance",
    "load_results",
    "save_results",
    "stored_run",
    "stored_run_names",
    "CHAPTER_PLANS",
    "announce_chapter",
    # checks and style
    "CheckFailed",
    "Verdict",
    "check_choice",
    "check_close",
    "grading",
    "report",
    "depth_palette",
    "set_style",
]
# The data and training names are listed once, in their modules; the top level re-exports all of them.
__all__ += data.__all__
__all__ += train.__all__
