"""Chapter 4b (a task where a rank prior generalises): the code behind ``book/04b``.

The experiment, its figures and its exercise checkers. The notebook imports everything from here; each name lives in
one of the submodules below.
"""

from __future__ import annotations

from .checks import (
    DEEP_START_OPTIONS,
    check_deep_start,
    check_degrees_of_freedom,
    degrees_of_freedom,
)
from .experiment import (
    METHOD_ORDER,
    CompletionConfig,
    CompletionTask,
    completion_examples,
    completion_experiments,
    completion_metrics,
    completion_summary,
    depth_comparison,
    end_to_end,
    factorization_fit,
    init_scale_sweep,
    initial_factors,
    make_completion_task,
    nuclear_norm_completion,
    observation_sweep,
    recovery_points,
    regression_contrast,
    run_completion,
    stack_tasks,
)
from .figures import (
    plot_completion_examples,
    plot_depth_comparison,
    plot_init_scales,
    plot_observation_sweep,
    plot_sweep_pair,
)

__all__ = [
    "CompletionTask",
    "make_completion_task",
    "stack_tasks",
    "end_to_end",
    "initial_factors",
    "factorization_fit",
    "nuclear_norm_completion",
    "completion_metrics",
    "CompletionConfig",
    "METHOD_ORDER",
    "run_completion",
    "depth_comparison",
    "observation_sweep",
    "init_scale_sweep",
    "completion_experiments",
    "completion_examples",
    "regression_contrast",
    "completion_summary",
    "recovery_points",
    "plot_depth_comparison",
    "plot_observation_sweep",
    "plot_sweep_pair",
    "plot_init_scales",
    "plot_completion_examples",
    "DEEP_START_OPTIONS",
    "degrees_of_freedom",
    "check_degrees_of_freedom",
    "check_deep_start",
]
