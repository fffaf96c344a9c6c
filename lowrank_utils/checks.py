"""Exercise checkers: each runs a student's answer against known cases and prints PASS or FAIL with a hint.

A checker returns ``True``/``False``. An answer that still raises ``NotImplementedError`` (an untouched stub)
is reported and re-raised, so an unfinished exercise stops the notebook where it is rather than further down.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

__all__ = ["Verdict", "report", "check_close", "check_entropy_rank_function", "check_diag_entropy"]


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


def report(name: str, ok: bool, hint: str = "") -> Verdict:
    """Print a one-line verdict for exercise ``name`` and return it (truthy on PASS)."""
    if ok:
        print(f"PASS  {name}")
    else:
        print(f"FAIL  {name}" + (f"\n      hint: {hint}" if hint else ""))
    return Verdict(name, ok)


def _call(name: str, fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
    try:
        return True, fn(*args)
    except NotImplementedError:
        report(name, False, "this exercise is not done yet: replace the `raise NotImplementedError` line.")
        raise
    except Exception as err:  # a student's bug is feedback, not a crash
        report(name, False, f"your function raised {type(err).__name__}: {err}")
        return False, None  # already reported


def check_close(name: str, value: Any, expected: float, *, tol: float = 1e-3, hint: str = "") -> Verdict:
    """PASS when ``value`` is a finite number within ``tol`` (absolute) of ``expected``."""
    if value is NotImplemented or value is Ellipsis:
        report(name, False, "no answer yet.")
        raise NotImplementedError(name)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return report(name, False, f"expected a number, got {type(value).__name__}.")
    ok = math.isfinite(v) and abs(v - expected) <= tol
    return report(name, ok, hint or f"got {v:.4g}; expected a value near {expected:.4g}.")


def check_entropy_rank_function(fn: Callable[[torch.Tensor], Any], name: str = "effective rank from scratch") -> Verdict:
    """Check a student's ρ(A) against known values, including matrices with exact zero singular values."""
    cases = [
        ("the 8x8 identity", torch.eye(8, dtype=torch.float64), math.log(8)),
        ("a rank-1 matrix", torch.ones(5, 7, dtype=torch.float64), 0.0),
        ("diag(3, 1, 0, 0)", torch.diag(torch.tensor([3.0, 1.0, 0.0, 0.0], dtype=torch.float64)),
         -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))),
    ]
    for label, A, expected in cases:
        ok, out = _call(name, fn, A)
        if not ok:
            return Verdict(name, False)
        try:
            value = float(torch.as_tensor(out))
        except Exception:
            return report(name, False, f"on {label} your function returned {out!r}, not a single number.")
        if math.isnan(value):
            return report(name, False, f"on {label} you returned NaN: a zero singular value gives 0 * log 0. "
                                       "Drop zeros first, or use torch.special.entr.")
        if abs(value - expected) > 1e-6:
            return report(name, False, f"on {label} you returned {value:.6f}, expected {expected:.6f}. "
                                       "Normalise the singular values to sum to 1 and use the natural log.")
    return report(name, True)


def check_diag_entropy(value: Any, name: str = "ρ of diag(4, 2, 1, 1)") -> Verdict:
    """Check the value a student computed for ρ(diag(4, 2, 1, 1)) (by hand or with code)."""
    s = torch.tensor([4.0, 2.0, 1.0, 1.0], dtype=torch.float64)
    p = s / s.sum()
    expected = float(-(p * p.log()).sum())
    return check_close(name, value, expected, tol=1e-3,
                       hint="normalise (4, 2, 1, 1) by its sum first, then take -Σ p log p with the natural log.")
