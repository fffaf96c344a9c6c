"""Exercise checkers: each runs a student's answer against known cases and prints PASS or FAIL with a hint.

Grading mode. A checker that finds a wrong answer prints ``FAIL`` and a hint, then raises :class:`CheckFailed` (an
``AssertionError`` whose message is the hint), so that any autograder that runs the cell (nbgrader, otter, plain
nbclient) scores it as failed. This is the default, because a grader must not need a switch to be correct. For
self-study without tracebacks set ``LOWRANK_GRADING=0`` (or call a checker with ``grading=False``, or use the
:func:`grading` context manager): a failing checker then only prints and returns a falsy :class:`Verdict`.

An answer that still raises ``NotImplementedError`` (an untouched stub) is reported and re-raised in both modes,
so an unfinished exercise stops the notebook where it is rather than further down.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch


class Verdict:
    """A checker's result: truthy on PASS. It is printed when made, so a notebook does not echo it again."""

    def __init__(self, name: str, ok: bool) -> None:
        self.name, self.ok = name, bool(ok)

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"Verdict({self.name!r}, {'PASS' if self.ok else 'FAIL'})"

    def _ipython_display_(self) -> None:
        pass  # the PASS/FAIL line was already printed; an extra Out[] line would only repeat it


class CheckFailed(AssertionError):
    """Raised by a checker in grading mode when an answer is wrong; the message is the hint."""


_OVERRIDE: list[bool] = []


def grading_enabled(grading: bool | None = None) -> bool:
    """Whether a failing checker raises: ``grading`` if given, else the innermost :func:`grading` block, else the
    ``LOWRANK_GRADING`` environment variable (``0``, ``false``, ``no`` or ``off`` turn raising off; default on)."""
    if grading is not None:
        return bool(grading)
    if _OVERRIDE:
        return _OVERRIDE[-1]
    return os.environ.get("LOWRANK_GRADING", "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def grading(enabled: bool = True) -> Iterator[None]:
    """Within this block, failing checkers raise (``enabled=True``) or only print and return a falsy verdict."""
    _OVERRIDE.append(bool(enabled))
    try:
        yield
    finally:
        _OVERRIDE.pop()


def report(name: str, ok: bool, hint: str = "", *, grading: bool | None = None) -> Verdict:
    """Print a one-line verdict for exercise ``name`` and return it (truthy on PASS).

    On FAIL in grading mode (see :func:`grading_enabled`) raise :class:`CheckFailed` after printing."""
    if ok:
        print(f"PASS  {name}")
        return Verdict(name, True)
    print(f"FAIL  {name}" + (f"\n      hint: {hint}" if hint else ""))
    if grading_enabled(grading):
        raise CheckFailed(f"{name}: {hint}" if hint else name)
    return Verdict(name, False)


def call_answer(name: str, fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
    """Run a student's ``fn(*args)``: ``(True, result)``, or ``(False, None)`` after reporting the error it raised
    (an untouched stub's ``NotImplementedError`` is reported and re-raised)."""
    try:
        return True, fn(*args)
    except NotImplementedError:
        report(name, False, "this exercise is not done yet: replace the `raise NotImplementedError` line.",
               grading=False)
        raise
    except Exception as err:  # a student's bug is feedback, not a crash
        report(name, False, f"your function raised {type(err).__name__}: {err}")
        return False, None  # already reported


def number_answer(name: str, fn: Callable[..., Any], *args: Any, call: str = "your function") -> float | Verdict:
    """Run a student's ``fn(*args)`` and read the result as one number (a number, or a one-element tensor or list).

    Returns the number; when ``fn`` raised or returned something else, the falsy :class:`Verdict` already reported,
    which the checker returns as it is (``if isinstance(value, Verdict): return value``). ``call`` names the call in
    the hint, e.g. ``f"fn({n}, {d})"``.
    """
    ok, out = call_answer(name, fn, *args)
    if not ok:
        return Verdict(name, False)
    if isinstance(out, torch.Tensor):
        out = out.detach()  # an answer computed from a model's outputs may carry a graph; only its value counts
    try:
        return float(out)
    except (TypeError, ValueError, RuntimeError):
        pass
    try:
        return float(torch.as_tensor(out, dtype=torch.float64))  # float64: a list of one Python float stays exact
    except Exception:  # whatever the answer was, it is not one number
        return report(name, False, f"{call} returned {out!r}, not a single number.")


def tensor_answer(name: str, fn: Callable[..., Any], *args: Any, call: str = "your function") -> torch.Tensor | Verdict:
    """Run a student's ``fn(*args)`` and read the result as a float64 tensor (from a tensor, an array or lists).

    Returns the tensor (detached); when ``fn`` raised or returned something else, the falsy :class:`Verdict` already
    reported, as :func:`number_answer` does.
    """
    ok, out = call_answer(name, fn, *args)
    if not ok:
        return Verdict(name, False)
    try:
        return torch.as_tensor(out, dtype=torch.float64).detach()
    except Exception:  # whatever the answer was, it is not an array of numbers
        return report(name, False, f"{call} returned {type(out).__name__}, not a tensor of numbers.")


def mistake_hint(value: float, mistakes: Sequence[tuple[float, str]], otherwise: str, *, rel_tol: float = 1e-9,
                 abs_tol: float = 0.0) -> str:
    """The hint of the first known mistake whose result ``value`` matches (``math.isclose`` with these tolerances).

    ``mistakes`` pairs what a typical wrong answer returns with the hint that names it; ``otherwise`` is the hint
    for a wrong answer none of them explains."""
    for wrong, hint in mistakes:
        if math.isclose(value, wrong, rel_tol=rel_tol, abs_tol=abs_tol):
            return hint
    return otherwise


def require_answer(name: str, value: Any) -> None:
    """Stop (NotImplementedError) when ``value`` is still a placeholder: None, ``...`` or ``NotImplemented``."""
    if value is NotImplemented or value is Ellipsis or value is None:
        report(name, False, "no answer yet: replace the placeholder with your answer.", grading=False)
        raise NotImplementedError(name)


def as_numbers(out: Any, n: int) -> tuple[float, ...] | None:
    """``out`` as a tuple of ``n`` floats, or ``None`` when it is not ``n`` numbers (a wrong answer's shape)."""
    try:
        values = tuple(float(v) for v in out)
    except (TypeError, ValueError):
        return None
    return values if len(values) == n else None


def check_choice(name: str, answer: Any, expected: str, options: Sequence[str], *, hint: str = "") -> Verdict:
    """PASS when ``answer`` (a string, case and surrounding spaces ignored) is ``expected``, one of ``options``.

    For predictions: the expected answer is fixed in the exercise (known in advance), never taken from the
    student's own measurement, so changing a prediction after a run cannot make it right."""
    require_answer(name, answer)
    guess = str(answer).strip().lower()
    allowed = [o.lower() for o in options]
    if guess not in allowed:
        return report(name, False, f"answer with one of {list(options)}; got {answer!r}.")
    return report(name, guess == expected.lower(), hint or f"{answer!r} is not the answer.")


def check_close(name: str, value: Any, expected: float, *, tol: float = 1e-3, hint: str = "") -> Verdict:
    """PASS when ``value`` is a finite number within ``tol`` (absolute) of ``expected``."""
    require_answer(name, value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return report(name, False, f"expected a number, got {type(value).__name__}.")
    ok = math.isfinite(v) and abs(v - expected) <= tol
    return report(name, ok, hint or f"got {v:.4g}; expected a value near {expected:.4g}.")
