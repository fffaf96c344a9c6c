"""Exercise checkers for chapter 4b (deep matrix completion).

Same conventions as :mod:`lowrank_utils.checks`: a checker prints PASS or FAIL with a hint and returns a
:class:`~lowrank_utils.checks.Verdict`; an answer that is still a placeholder (or a stub that raises
``NotImplementedError``) is reported and re-raised, so an unfinished exercise stops the notebook where it is.
The expected answers are fixed here, never taken from the student's own run, so a prediction cannot be fitted to
what was measured after the fact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from lowrank_utils.checks import Verdict, number_answer, report, require_answer

DEEP_START_OPTIONS: tuple[str, ...] = ("recovers", "stays at zero", "diverges")
"""The answers offered in exercise 4b.2 (what a depth-5 factorisation does from the chapter's initial scale)."""


def degrees_of_freedom(size: int, rank: int) -> int:
    """r(2n − r): the number of free parameters of an n × n matrix of rank r (the dimension of that manifold)."""
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (size, rank)) or rank > size:
        raise ValueError(f"need integers 1 <= rank <= size, got size={size!r}, rank={rank!r}.")
    return rank * (2 * size - rank)


def check_degrees_of_freedom(fn: Callable[[int, int], Any], name: str = "degrees of freedom of a rank-r matrix"
                             ) -> Verdict:
    """Check ``fn(n, r)`` against the dimension r(2n − r) of the n × n rank-r matrices, on several (n, r)."""
    cases = [(20, 2), (20, 1), (30, 5), (7, 7), (100, 3)]
    for n, r in cases:
        value = number_answer(name, fn, n, r, call=f"for n={n}, r={r} your function")
        if isinstance(value, Verdict):
            return value
        expected = degrees_of_freedom(n, r)
        if not math.isclose(value, expected):
            hint = f"for n={n}, r={r} you returned {value:g}; expected {expected}."
            if math.isclose(value, 2 * n * r):
                hint += (" 2nr counts the entries of U (n × r) and V (r × n), but UV = (UA)(A⁻¹V) for any invertible"
                         " r × r matrix A: subtract the r² parameters of A.")
            return report(name, False, hint)
    return report(name, True)


def check_deep_start(answer: Any, name: str = "depth 5 from the chapter's initial scale") -> Verdict:
    """Check the prediction for exercise 4b.2: a depth-5 factorisation from factors of scale 0.03, 12,000 steps.

    The answer was measured when the exercise was written (every entry of every seed's product stays below 1e-6, so
    the test error is 1.00, that of predicting zero; ``tests/test_completion.py`` measures it again).
    """
    require_answer(name, answer)
    guess = str(answer).strip().lower()
    if guess not in DEEP_START_OPTIONS:
        return report(name, False, f"answer with one of {list(DEEP_START_OPTIONS)}; got {answer!r}.")
    return report(name, guess == "stays at zero",
                  "compare the size of the gradient at the start for depth 3 and depth 5: each factor's gradient is "
                  "a product of the other d − 1 factors, each of norm about 0.03.")
