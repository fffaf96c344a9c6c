"""Chapter 8 (over-parameterized image classifiers): the code behind ``book/08`` -- the protocol, its figures
and its exercise checkers.

The notebook imports everything from here; each name lives in one of the submodules below.
"""

from __future__ import annotations

from .checks import (
    check_embedding_rho,
    check_welch_t,
)
from .experiment import (
    RESULT_COLUMNS,
    STORED_FOLDER,
    ClassificationConfig,
    RunSpec,
    SplitData,
    classification_facts,
    compare_to_baseline,
    composed_cost_ratio,
    detectable_difference,
    load_stored_protocol,
    main,
    prepare_data,
    run_protocol,
    run_stored_protocol,
    select_learning_rates,
    significance_statement,
    summarize,
    train_run,
    training_flops,
    validation_split,
)
from .figures import (
    CLASSIFICATION_PANELS,
    plot_classification,
    plot_history,
    plot_lr_grid,
    plot_protocol,
)

__all__ = [
    "RESULT_COLUMNS",
    "STORED_FOLDER",
    "ClassificationConfig",
    "RunSpec",
    "SplitData",
    "validation_split",
    "prepare_data",
    "train_run",
    "select_learning_rates",
    "run_protocol",
    "run_stored_protocol",
    "load_stored_protocol",
    "summarize",
    "compare_to_baseline",
    "detectable_difference",
    "classification_facts",
    "significance_statement",
    "training_flops",
    "composed_cost_ratio",
    "main",
    "CLASSIFICATION_PANELS",
    "plot_classification",
    "plot_protocol",
    "plot_lr_grid",
    "plot_history",
    "check_embedding_rho",
    "check_welch_t",
]
