"""Run the full presets of chapters 4-6 and store their results, with provenance, in lowrank_utils/stored_runs/
(package data, so a chapter opened alone, in Colab or in a student folder, finds them).

    python scripts/run_full_presets.py [names ...]   # activations, regression, rank_sweep, optimizers, init,
                                                     # init_scales, completion

$LOWRANK_HARDWARE, if set, replaces the hardware description recorded with the results (the default names the GPU
or the CPU architecture only), e.g. "x86_64 CPU, 2 cores shared with other jobs (one torch thread per run, nice 10)".

Each file records the command (the package call that produced it), the config, the hardware, the torch version,
the date, the seeds and the wall time; the chapters plot these next to their live quick runs. The stored runs were
made with this script on a CPU (the networks are tiny; see each chapter for the measured times).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from lowrank_utils.chapters.ch04_trained_networks.experiment import (
    ActivationTrainingConfig,
    DepthRegressionConfig,
    depth_regression,
    trained_activations,
)
from lowrank_utils.chapters.ch04b_matrix_completion.experiment import (
    CompletionConfig,
    completion_experiments,
)
from lowrank_utils.chapters.ch05_optimizers.experiment import (
    OptimizerComparisonConfig,
    start_comparison,
)
from lowrank_utils.chapters.ch06_initialization.experiment import (
    InitComparisonConfig,
    init_scale_sweep,
    initialization_comparison,
)
from lowrank_utils.results import save_results, stored_run

# name -> (file, module, call as written in the provenance, config, function, names of the returned frames to keep)
JOBS: dict[str, tuple[str, str, str, object, Callable, tuple[str, ...]]] = {
    "activations": ("ch04_activations_full.json", "ch04_trained_networks",
                    "trained_activations(ActivationTrainingConfig.full())",
                    ActivationTrainingConfig.full(), trained_activations, ("results",)),
    "regression": ("ch04_depth_regression_full.json", "ch04_trained_networks",
                   "depth_regression(DepthRegressionConfig.full())",
                   DepthRegressionConfig.full(), depth_regression, ("summary",)),
    "rank_sweep": ("ch04_rank_sweep_full.json", "ch04_trained_networks",
                   "depth_regression(DepthRegressionConfig.rank_sweep('full'))",
                   DepthRegressionConfig.rank_sweep("full"), depth_regression, ("summary",)),
    "optimizers": ("ch05_optimizers_full.json", "ch05_optimizers",
                   "start_comparison(OptimizerComparisonConfig.full())",
                   OptimizerComparisonConfig.full(), start_comparison, ("results",)),
    "init": ("ch06_initialization_full.json", "ch06_initialization",
             "initialization_comparison(InitComparisonConfig.full())",
             InitComparisonConfig.full(), initialization_comparison, ("summary",)),
    "init_scales": ("ch06_init_scales_full.json", "ch06_initialization",
                    "init_scale_sweep(InitComparisonConfig.full(inits=('default',), seeds=(0, 1, 2, 3, 4)))",
                    InitComparisonConfig.full(inits=("default",), seeds=(0, 1, 2, 3, 4)), init_scale_sweep,
                    ("summary",)),
    "completion": ("ch04b_completion_full.json", "ch04b_matrix_completion",
                   "completion_experiments(CompletionConfig.full(progress=False))",
                   CompletionConfig.full(progress=False), completion_experiments,
                   ("depth_comparison", "observation_sweep", "init_scale_sweep")),
}


def main(names: list[str]) -> None:
    unknown = set(names) - set(JOBS)
    if unknown:
        raise SystemExit(f"unknown job(s) {sorted(unknown)}; choose from {', '.join(JOBS)}")
    for name in names or list(JOBS):
        filename, module, call, config, fn, keep = JOBS[name]
        start = time.perf_counter()
        out = fn(config)
        frames = out if isinstance(out, tuple) else (out,)
        wall = time.perf_counter() - start
        # keep names the leading frames only (the second frame of ch4's and ch6's results is not stored): strict=False
        path = save_results(dict(zip(keep, frames, strict=False)), config, stored_run(filename.removesuffix(".json")),
                            command=f"from lowrank_utils.chapters.{module} import *; {call}", wall_time_s=wall,
                            hardware=os.environ.get("LOWRANK_HARDWARE") or None)
        print(f"{name}: {wall / 60:.1f} min -> {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
