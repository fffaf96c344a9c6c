"""Chapter 8 (over-parameterized image classifiers): the code behind ``book/08`` -- the experiment, its figures and its exercise checkers.

The notebook imports everything from here; each name lives in one of the submodules below.
"""

from __future__ import annotations

from .checks import (
    check_embedding_rho,
    check_welch_t,
)
from .experiment import (
    PROVENANCE_FIELDS,
    RESULT_COLUMNS,
    SCHEDULES,
    ClassificationConfig,
    classification_facts,
    compare_to_baseline,
    learning_rate,
    load_classification_results,
    main,
    random_crop_flip,
    run_classification,
    save_classification_results,
    significance_statement,
    summarize,
    train_step,
    training_flops,
)
from .figures import (
    CLASSIFICATION_PANELS,
    plot_classification,
)

__all__ = [
    "SCHEDULES",
    "RESULT_COLUMNS",
    "PROVENANCE_FIELDS",
    "ClassificationConfig",
    "random_crop_flip",
    "learning_rate",
    "train_step",
    "run_classification",
    "training_flops",
    "summarize",
    "compare_to_baseline",
    "classification_facts",
    "significance_statement",
    "save_classification_results",
    "load_classification_results",
    "main",
    "CLASSIFICATION_PANELS",
    "plot_classification",
    "check_embedding_rho",
    "check_welch_t",
]
