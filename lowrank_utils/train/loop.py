"""Training loops: one :func:`fit` for six optimizers, full-batch or mini-batch, with early stopping and a tidy history.

The optimizers share one interface (:class:`TrainConfig`):

* gradient-based -- ``sgd``, ``nesterov`` (SGD with Nesterov momentum), ``adam``, ``lbfgs`` (full batch only);
* gradient-free  -- ``cma`` (CMA-ES from the ``cma`` package) and ``random_search`` (a (1+1) evolution strategy
  with the 1/5th success rule), both full batch only. For these, ``lr`` is the initial step size σ₀, the standard
  deviation of the Gaussian perturbations of the flattened parameter vector.

Gradient-free methods scale badly with the number of parameters n: each step explores one or a few random directions
in an n-dimensional space, so the steps needed grow roughly linearly with n (CMA-ES with a full covariance matrix
also costs O(n²) memory and up to O(n³) time per generation). They are meant for small models -- a few thousand
parameters at most -- where they finish within seconds; above :data:`CMA_FULL_COVARIANCE_MAX_PARAMS` parameters
CMA-ES switches to a diagonal covariance matrix (sep-CMA-ES) to stay fast.

History conventions: steps are numbered from 0 and the row for step k describes the parameters after k updates.
Its loss is the one step k computes anyway before updating, on step k's batch (the full data in full-batch
training), so logging costs nothing extra. Rows are written at steps 0, ``log_every``, 2·``log_every``, … and once
more at the end for the returned parameters (step = number of steps taken, loss on the full data).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters
from tqdm.auto import tqdm

from lowrank_utils import validate as check
from lowrank_utils.runtime import (
    cpu_threads,
    get_device,
    progress_enabled,
    seed_everything,
)

OPTIMIZERS: tuple[str, ...] = ("sgd", "nesterov", "adam", "lbfgs", "cma", "random_search")
"""Optimizer names accepted by :class:`TrainConfig`."""


GRADIENT_FREE_OPTIMIZERS: tuple[str, ...] = ("cma", "random_search")
"""The optimizers that never compute a gradient (``lr`` is their initial step size)."""


_FULL_BATCH_ONLY: tuple[str, ...] = ("lbfgs", "cma", "random_search")


_WEIGHT_DECAY_OK: tuple[str, ...] = ("sgd", "nesterov", "adam")


CMA_FULL_COVARIANCE_MAX_PARAMS = 500
"""Above this many parameters CMA-ES learns only a diagonal covariance (sep-CMA-ES): a full one costs O(n²) memory
and its eigendecomposition O(n³) time, already ~80 ms per generation at n = 2000."""


StopReason = Literal["converged", "max_steps"]


Metrics = Callable[[nn.Module, Tensor], Mapping[str, Any]]


LossFn = Callable[[Tensor, Tensor], Tensor]


_RESERVED_COLUMNS = ("step", "epoch", "loss", "evaluations")


class TrainingDiverged(RuntimeError):
    """Raised when the loss becomes NaN/Inf or explodes; carries the step, the loss and the history so far."""

    def __init__(self, step: int, loss: float, reason: str, optimizer: str, lr: float, history: pd.DataFrame) -> None:
        self.step = step
        self.loss = loss
        self.history = history
        what = "step size σ₀ (lr)" if optimizer in GRADIENT_FREE_OPTIMIZERS else "learning rate"
        super().__init__(
            f"Training diverged at step {step}: loss = {loss:.4g} ({reason}). The {optimizer!r} optimizer with "
            f"lr={lr:g} is overshooting; try a smaller {what}, e.g. lr={lr / 10:g}. "
            "The history up to this point is in the exception's .history attribute."
        )


@dataclass(frozen=True)
class TrainConfig:
    """Everything :func:`fit` needs besides the model and the data; invalid values raise ``ValueError`` at once.

    * ``optimizer`` -- one of :data:`OPTIMIZERS`; ``lr`` -- learning rate, or the initial step size σ₀ for the
      gradient-free ones.
    * ``steps`` -- maximum number of optimizer steps (mini-batch updates, L-BFGS iterations, CMA-ES generations or
      random-search proposals); ``epochs``, if given, replaces it by ``epochs`` passes over the data.
    * ``batch_size`` -- ``None`` (or at least the number of samples) for full-batch training.
    * Early stopping (``stop_reason='converged'``): the loss falls below ``tolerance``, or the best loss improved by
      less than the fraction ``rel_tolerance`` over the last ``patience`` steps (``None`` switches that test off).
      With mini-batches both tests use the mean loss of each epoch, checked at the end of the epoch.
    * ``divergence_ratio`` -- a loss above ``divergence_ratio × max(first loss, 1)`` (or NaN/Inf) raises
      :class:`TrainingDiverged`; ``None`` checks NaN/Inf only.
    * ``momentum`` -- for ``sgd`` (default 0) and ``nesterov`` (default 0.9); ``weight_decay`` -- L2 penalty for
      ``sgd``/``nesterov``/``adam``; ``popsize`` -- CMA-ES population size (``None``: its default 4 + 3 ln n).
    * ``cpu_threads`` -- torch's CPU thread count during training (restored afterwards). ``None`` keeps the current
      setting for gradient-based optimizers and uses 1 for gradient-free ones, whose many tiny sequential
      evaluations only lose time to thread synchronisation (10x and more on a busy 2-core machine).
    * ``device`` -- ``None`` picks CUDA, then MPS, then CPU; ``progress`` -- show a tqdm bar on stderr;
      ``log_every`` -- record a history row every that many steps (plus one final row for the returned model).
    """

    optimizer: str = "sgd"
    lr: float = 1e-2
    steps: int = 1000
    epochs: int | None = None
    batch_size: int | None = None
    tolerance: float = 0.0
    rel_tolerance: float | None = None
    patience: int = 100
    divergence_ratio: float | None = 1e8
    momentum: float | None = None
    weight_decay: float = 0.0
    popsize: int | None = None
    seed: int = 0
    cpu_threads: int | None = None
    device: str | torch.device | None = None
    progress: bool = True
    log_every: int = 1

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
        check.number("lr", self.lr)
        check.integer("steps", self.steps)
        check.integer("patience", self.patience)
        check.integer("log_every", self.log_every)
        for name in ("epochs", "batch_size", "cpu_threads"):
            if getattr(self, name) is not None:
                check.integer(name, getattr(self, name))
        if not _is_real(self.tolerance) or not self.tolerance >= 0:
            raise ValueError(f"tolerance must be a number >= 0 (0 switches it off), got {self.tolerance!r}.")
        if self.rel_tolerance is not None and (not _is_real(self.rel_tolerance) or not self.rel_tolerance >= 0):
            raise ValueError(f"rel_tolerance must be a number >= 0 or None, got {self.rel_tolerance!r}.")
        if self.divergence_ratio is not None and (not _is_real(self.divergence_ratio) or not self.divergence_ratio > 1):
            raise ValueError(f"divergence_ratio must be a number > 1 or None, got {self.divergence_ratio!r}.")
        if self.momentum is not None:
            if self.optimizer not in ("sgd", "nesterov"):
                raise ValueError(f"momentum applies to 'sgd' and 'nesterov' only; remove it for {self.optimizer!r}.")
            if not _is_real(self.momentum) or not 0 <= self.momentum < 1:
                raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}.")
        if self.optimizer == "nesterov" and self.momentum == 0:
            raise ValueError("Nesterov momentum needs momentum > 0 (e.g. 0.9); use optimizer='sgd' for plain SGD.")
        if not _is_real(self.weight_decay) or not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}.")
        if self.weight_decay and self.optimizer not in _WEIGHT_DECAY_OK:
            raise ValueError(
                f"weight_decay is supported for {', '.join(_WEIGHT_DECAY_OK)} only; "
                f"add the penalty to loss_fn to use it with {self.optimizer!r}."
            )
        if self.popsize is not None:
            if self.optimizer != "cma":
                raise ValueError(f"popsize applies to optimizer='cma' only, not {self.optimizer!r}.")
            if not isinstance(self.popsize, int) or isinstance(self.popsize, bool) or self.popsize < 2:
                raise ValueError(f"popsize must be an integer >= 2, got {self.popsize!r}.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}.")
        if self.device is not None:
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError) as err:
                raise ValueError(
                    f"device {self.device!r} is not a device name; use 'cpu', 'cuda', 'cuda:0', 'mps' or None (auto)."
                ) from err
        if not isinstance(self.progress, bool):
            raise ValueError(f"progress must be True or False, got {self.progress!r}.")


@dataclass
class TrainResult:
    """What :func:`fit` returns: the trained model (the same object, trained in place) and how training went."""

    model: nn.Module
    history: pd.DataFrame
    """One row per logged step: ``step`` (updates so far), ``epoch`` (complete passes over the data so far),
    ``loss``, ``evaluations`` (loss evaluations spent so far, a fair cost measure across optimizers) and one column
    per metric returned by the ``metrics`` callback. The last row is the returned model."""
    stop_reason: StopReason
    steps: int
    """Optimizer steps taken."""
    final_loss: float
    """Loss of the returned parameters on the full training data."""
    evaluations: int
    """Loss evaluations (forward passes over a batch) in total."""
    wall_time: float
    """Seconds spent in :func:`fit`."""
    device: torch.device
    config: TrainConfig = field(repr=False)

    @property
    def converged(self) -> bool:
        """True when training stopped early because the convergence test passed."""
        return self.stop_reason == "converged"


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    data: Sequence[Tensor],
    config: TrainConfig | None = None,
    *,
    metrics: Metrics | None = None,
) -> TrainResult:
    """Train ``model`` in place to minimise ``loss_fn(model(X), Y)`` on ``data = (X, Y)`` as ``config`` says.

    ``metrics(model, X)``, if given, is called without gradients at every logged step (with ``X`` on the training
    device) and returns extra history columns, e.g. ``{"rank": gram_effective_rank(model(X))}``. The model is moved
    to the training device and left there; its train/eval mode is not changed.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}.")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (none with requires_grad=True); nothing to fit.")
    X, Y = _check_data(data)
    n = X.shape[0]
    full_batch = config.batch_size is None or config.batch_size >= n
    if config.optimizer in _FULL_BATCH_ONLY and not full_batch:
        raise ValueError(
            f"{config.optimizer!r} is a full-batch method (it compares or combines losses from different steps, "
            f"which must be the same objective); set batch_size=None or use sgd, nesterov or adam for mini-batches."
        )

    start = time.perf_counter()
    device = get_device(None if config.device is None else str(config.device), verbose=False)
    generator = seed_everything(config.seed)
    model.to(device)
    X, Y = X.to(device), Y.to(device)
    batch_size = n if full_batch else int(config.batch_size)  # type: ignore[arg-type]
    batches_per_epoch = math.ceil(n / batch_size)
    max_steps = config.steps if config.epochs is None else config.epochs * batches_per_epoch

    def objective(batch: tuple[Tensor, Tensor]) -> Tensor:
        return loss_fn(model(batch[0]), batch[1])

    stepper = _make_stepper(config, params, objective, generator)
    batches = _batches(X, Y, batch_size, full_batch, generator)
    monitor = _ConvergenceMonitor(config.tolerance, config.rel_tolerance, config.patience)
    rows: list[dict[str, float]] = []
    epoch_losses: list[float] = []
    threshold = math.inf
    stop_reason: StopReason = "max_steps"
    steps_taken = 0

    threads = config.cpu_threads
    if threads is None and config.optimizer in GRADIENT_FREE_OPTIMIZERS:
        threads = 1
    with contextlib.ExitStack() as stack:
        stack.enter_context(cpu_threads(threads, device=device))
        stack.enter_context(_blas_single_thread(config.optimizer == "cma"))
        # tqdm writes to stderr (and to a widget in Jupyter), so stdout never carries progress or timings.
        bar = stack.enter_context(
            tqdm(total=max_steps, desc=config.optimizer, disable=not progress_enabled(config.progress), leave=False)
        )
        for step in range(max_steps):
            epoch = step // batches_per_epoch
            logged = step % config.log_every == 0
            # Metrics describe the parameters the step starts from, like the loss the step returns.
            extra = _evaluate_metrics(metrics, model, X) if logged else {}
            spent = stepper.evaluations
            loss = stepper.step(next(batches), step)
            steps_taken = step + 1
            row = {"step": step, "epoch": epoch, "loss": loss, "evaluations": spent, **extra}
            if logged:
                rows.append(row)
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            bar.update(1)

            if step == 0 and config.divergence_ratio is not None:
                threshold = config.divergence_ratio * max(loss, 1.0)
            if not math.isfinite(loss) or loss > threshold:
                reason = "not finite" if not math.isfinite(loss) else f"above the divergence threshold {threshold:.3g}"
                if not logged:  # the exploding step belongs in the history the exception carries
                    rows.append(row)
                raise TrainingDiverged(step, loss, reason, config.optimizer, config.lr, pd.DataFrame(rows))

            # Mini-batch losses are noisy, so convergence is judged on each epoch's mean loss.
            epoch_losses.append(loss)
            if full_batch or steps_taken % batches_per_epoch == 0:
                if monitor.update(step, float(np.mean(epoch_losses))) or stepper.converged():
                    stop_reason = "converged"
                    break
                epoch_losses = []

    # The last row is the returned model: loss on the full data, metrics of the final parameters.
    with torch.no_grad():
        final_loss = float(objective((X, Y)))
    rows.append({"step": steps_taken, "epoch": steps_taken // batches_per_epoch, "loss": final_loss,
                 "evaluations": stepper.evaluations, **_evaluate_metrics(metrics, model, X)})
    return TrainResult(
        model=model,
        history=pd.DataFrame(rows),
        stop_reason=stop_reason,
        steps=steps_taken,
        final_loss=final_loss,
        evaluations=stepper.evaluations,
        wall_time=time.perf_counter() - start,
        device=device,
        config=config,
    )


def fit_regression(
    model: nn.Module, X: Tensor, Y: Tensor, config: TrainConfig | None = None, *, metrics: Metrics | None = None
) -> TrainResult:
    """Train ``model`` to regress ``Y`` on ``X`` with the mean squared error (see :func:`fit`)."""

    def mse(pred: Tensor, target: Tensor) -> Tensor:
        # Broadcasting (n, 1) against (n,) would silently compare every prediction with every target.
        if pred.shape != target.shape:
            raise ValueError(
                f"model output has shape {tuple(pred.shape)} but Y has shape {tuple(target.shape)}; make them match, "
                "e.g. Y.reshape(-1, 1) for a single output or out_features=Y.shape[1] when building the model."
            )
        return torch.nn.functional.mse_loss(pred, target)

    return fit(model, mse, (X, Y), config, metrics=metrics)


class _Stepper(Protocol):
    @property
    def evaluations(self) -> int: ...  # read-only here: CMA-ES and random search report their objective's count

    def step(self, batch: tuple[Tensor, Tensor], step: int) -> float: ...

    def converged(self) -> bool: ...


Objective = Callable[[tuple[Tensor, Tensor]], Tensor]


class _TorchStepper:
    """SGD, Nesterov SGD and Adam: one backward pass and one update per step."""

    def __init__(self, optimizer: torch.optim.Optimizer, objective: Objective) -> None:
        self.optimizer = optimizer
        self.objective = objective
        self.evaluations = 0

    def step(self, batch: tuple[Tensor, Tensor], step: int) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.objective(batch)
        self.evaluations += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            return value  # stepping on a NaN gradient would only destroy the parameters; fit raises next
        loss.backward()
        self.optimizer.step()
        return value

    def converged(self) -> bool:
        return False


class _LBFGSStepper:
    """L-BFGS with a strong-Wolfe line search; one iteration per step (its curvature memory persists across steps)."""

    def __init__(self, params: list[nn.Parameter], lr: float, objective: Objective) -> None:
        # max_eval must be set: its default, max_iter * 5 // 4 = 1, would leave the line search no evaluations.
        self.optimizer = torch.optim.LBFGS(params, lr=lr, max_iter=1, max_eval=25, line_search_fn="strong_wolfe")
        self.objective = objective
        self.evaluations = 0

    def step(self, batch: tuple[Tensor, Tensor], step: int) -> float:
        def closure() -> Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.objective(batch)
            self.evaluations += 1
            loss.backward()
            return loss

        # LBFGS.step returns the closure's first value, i.e. the loss before this iteration's update.
        return float(self.optimizer.step(closure).detach())

    def converged(self) -> bool:
        return False


class _VectorObjective:
    """The loss as a function of the flattened parameter vector, evaluated without gradients (gradient-free use)."""

    def __init__(self, params: list[nn.Parameter], objective: Objective) -> None:
        self.params = params
        self.objective = objective
        self.evaluations = 0

    def current(self) -> Tensor:
        """The parameters as one detached vector on their device."""
        return parameters_to_vector(self.params).detach().clone()

    def set(self, vector: Tensor) -> None:
        """Load ``vector`` into the parameters (a fresh copy, so later edits to ``vector`` cannot leak in)."""
        with torch.no_grad():
            vector_to_parameters(vector.clone(), self.params)

    def __call__(self, vector: Tensor, batch: tuple[Tensor, Tensor]) -> float:
        self.set(vector)
        with torch.no_grad():
            value = float(self.objective(batch))
        self.evaluations += 1
        return value


class _GradientFreeStepper:
    """What CMA-ES and random search share: the loss as a function of the parameter vector, an incumbent (the best
    point so far, which the model holds between steps) and the step around a subclass's search."""

    def __init__(self, params: list[nn.Parameter], objective: Objective) -> None:
        self.f = _VectorObjective(params, objective)
        self.x = self.f.current()
        self.fx: float | None = None  # the incumbent's loss: measured on the first batch, then kept from the search

    @property
    def evaluations(self) -> int:
        return self.f.evaluations

    def step(self, batch: tuple[Tensor, Tensor], step: int) -> float:
        if self.fx is None:
            self.fx = self.f(self.x, batch)
        before = self.fx
        if not math.isfinite(before):
            return before
        self.x, self.fx = self._search(batch, before)
        self.f.set(self.x)
        return before

    def _search(self, batch: tuple[Tensor, Tensor], fx: float) -> tuple[Tensor, float]:
        """Evaluate candidates on ``batch``; the new incumbent and its loss (the old ones, ``fx``, if none beat it)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def converged(self) -> bool:
        raise NotImplementedError  # pragma: no cover - abstract


class _CMAStepper(_GradientFreeStepper):
    """CMA-ES: one generation (``popsize`` evaluations) per step; the model holds the best solution found so far."""

    def __init__(self, params: list[nn.Parameter], sigma0: float, popsize: int | None, seed: int,
                 objective: Objective) -> None:
        import cma  # imported here: it takes seconds, and only this optimizer needs it

        super().__init__(params, objective)
        x0 = self.x
        self.dtype, self.device = x0.dtype, x0.device
        options: dict[str, Any] = {
            "seed": seed + 1,  # cma reads seed 0 as "seed from the clock"
            "verbose": -9,  # cma prints nothing; progress is fit's job
            "verb_log": 0,  # and writes no outcmaes/ files
            "maxiter": math.inf,  # fit counts the steps
            "CMA_diagonal": x0.numel() > CMA_FULL_COVARIANCE_MAX_PARAMS,
        }
        if popsize is not None:
            options["popsize"] = popsize
        self.es = cma.CMAEvolutionStrategy(x0.double().cpu().numpy(), sigma0, options)

    def _search(self, batch: tuple[Tensor, Tensor], fx: float) -> tuple[Tensor, float]:
        best_x, best_f = self.x, fx
        candidates = self.es.ask()
        values = []
        for candidate in candidates:
            x = torch.as_tensor(candidate, dtype=self.dtype).to(self.device)
            value = self.f(x, batch)
            if value < best_f:
                best_x, best_f = x, value
            values.append(value)
        # CMA-ES only ranks the values; a NaN/Inf candidate (a wild sample) should simply rank last.
        finite = [v for v in values if math.isfinite(v)]
        penalty = 10 * max(abs(v) for v in finite) + 1 if finite else 1e300
        self.es.tell(candidates, [v if math.isfinite(v) else penalty for v in values])
        return best_x, best_f

    def converged(self) -> bool:
        # CMA-ES's own criteria (tolfun, tolx, stagnation...) all mean "nothing more to gain here".
        return bool(self.es.stop())


class _RandomSearchStepper(_GradientFreeStepper):
    """(1+1)-ES: propose x + σ·N(0, I), keep it if the loss drops; σ follows the 1/5th success rule."""

    # Success multiplies σ by exp(1/3) and failure by exp(-1/12), so σ is stationary at a 1/5 success rate.
    _UP = math.exp(1 / 3)
    _DOWN = math.exp(-1 / 12)

    def __init__(self, params: list[nn.Parameter], sigma0: float, generator: torch.Generator,
                 objective: Objective) -> None:
        super().__init__(params, objective)
        self.sigma = sigma0
        self.generator = generator

    def _search(self, batch: tuple[Tensor, Tensor], fx: float) -> tuple[Tensor, float]:
        # Noise is drawn on the CPU so a seed gives the same run on every device.
        noise = torch.randn(self.x.shape, generator=self.generator, dtype=self.x.dtype).to(self.x.device)
        candidate = self.x + self.sigma * noise
        value = self.f(candidate, batch)
        if value < fx:
            self.sigma *= self._UP
            return candidate, value
        self.sigma *= self._DOWN
        return self.x, fx

    def converged(self) -> bool:
        # A step size below float32 resolution of the parameters cannot move them any more.
        return self.sigma < 1e-12 * max(float(self.x.abs().max()), 1.0)


def _make_stepper(
    config: TrainConfig, params: list[nn.Parameter], objective: Objective, generator: torch.Generator
) -> _Stepper:
    name = config.optimizer
    if name in ("sgd", "nesterov"):
        momentum = config.momentum if config.momentum is not None else (0.9 if name == "nesterov" else 0.0)
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=config.lr, momentum=momentum, nesterov=name == "nesterov", weight_decay=config.weight_decay
        )
        return _TorchStepper(opt, objective)
    if name == "adam":
        # foreach: one kernel per step for all layers; on the CPU it gives the same weights to the bit as PyTorch's
        # per-tensor default, about 13% faster on the book's deep narrow networks (measured at depth 16, width 32).
        adam = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)
        return _TorchStepper(adam, objective)
    if name == "lbfgs":
        return _LBFGSStepper(params, config.lr, objective)
    if name == "cma":
        return _CMAStepper(params, config.lr, config.popsize, config.seed, objective)
    return _RandomSearchStepper(params, config.lr, generator, objective)


class _ConvergenceMonitor:
    """Stop when the loss is below ``tolerance`` or the best loss gained < ``rel_tolerance`` in ``patience`` steps."""

    def __init__(self, tolerance: float, rel_tolerance: float | None, patience: int) -> None:
        self.tolerance = tolerance
        self.rel_tolerance = rel_tolerance
        self.patience = patience
        self.best = math.inf
        self.window: deque[tuple[int, float]] = deque()  # (step, best loss so far) over the last `patience` steps

    def update(self, step: int, loss: float) -> bool:
        self.best = min(self.best, loss)
        if loss < self.tolerance:
            return True
        if self.rel_tolerance is None:
            return False
        self.window.append((step, self.best))
        # Keep exactly one entry at or before step - patience: the reference the improvement is measured from.
        while len(self.window) > 1 and self.window[1][0] <= step - self.patience:
            self.window.popleft()
        ref_step, ref_best = self.window[0]
        if ref_step > step - self.patience:
            return False  # not yet `patience` steps of history
        improvement = (ref_best - self.best) / max(abs(ref_best), torch.finfo(torch.float64).tiny)
        return improvement < self.rel_tolerance


def _batches(
    X: Tensor, Y: Tensor, batch_size: int, full_batch: bool, generator: torch.Generator
) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless stream of (x, y) batches: the whole data set, or reshuffled mini-batches each epoch."""
    n = X.shape[0]
    while True:
        if full_batch:
            yield X, Y
            continue
        # The permutation is drawn on the CPU from the seeded generator, so it does not depend on the device.
        order = torch.randperm(n, generator=generator).to(X.device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            yield X[idx], Y[idx]


def _blas_single_thread(active: bool) -> contextlib.AbstractContextManager[Any]:
    """Limit NumPy's BLAS to one thread while ``active`` (CMA-ES's small linear algebra runs between torch calls)."""
    # Multi-threaded OpenBLAS fighting torch's threads for the cores made CMA-ES 6-10x slower on a 2-core machine.
    if not active:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:  # pragma: no cover - only a speed-up
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _evaluate_metrics(metrics: Metrics | None, model: nn.Module, X: Tensor) -> dict[str, float]:
    if metrics is None:
        return {}
    with torch.no_grad():
        values = metrics(model, X)
    if not isinstance(values, Mapping):
        raise ValueError(f"metrics must return a mapping of column name to number, got {type(values).__name__}.")
    clash = [k for k in values if k in _RESERVED_COLUMNS]
    if clash:
        raise ValueError(
            f"metrics returned reserved column name(s) {clash}; rename them (reserved: {', '.join(_RESERVED_COLUMNS)})."
        )
    out = {}
    for key, value in values.items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"metric {key!r} must be a number or a one-element tensor, got {value!r}.") from err
    return out


def _check_data(data: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    if isinstance(data, torch.utils.data.TensorDataset):
        data = data.tensors
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError("data must be a pair (X, Y) of tensors with one row per sample, e.g. data=(X, Y).")
    X, Y = data
    for name, t in (("X", X), ("Y", Y)):
        if not isinstance(t, Tensor):
            raise ValueError(f"{name} must be a torch tensor, got {type(t).__name__}; convert with torch.as_tensor.")
        if t.ndim == 0 or t.shape[0] == 0:
            raise ValueError(
                f"{name} must have at least one sample along its first dimension, got shape {tuple(t.shape)}."
            )
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} samples but Y has {Y.shape[0]}; they must match along dimension 0.")
    return X, Y


def _is_real(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


