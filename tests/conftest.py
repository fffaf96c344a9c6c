"""Fixtures shared by the unit tests in tests/ (the notebooks in book/ run under nbval and do not see them).

- the Agg backend, chosen here before any test module imports pyplot, so tests never need a display and the test
  modules keep their imports at the top;
- ``one_thread``: run a module's tiny tensor ops on one CPU thread;
- ``checkers_print_only``: the chapter checkers print their verdict instead of raising (grading mode is the default);
- ``rand``: seeded float64 standard-normal tensors, the tiny data most tests start from.

A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread", "checkers_print_only")``; neither is
autouse, because the grading tests run nbgrader in subprocesses that must see the default environment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import matplotlib
import pytest
import torch

DT = torch.float64


def pytest_configure(config: pytest.Config) -> None:
    """Choose the Agg backend before pytest imports any test module (and through it pyplot): no display needed."""
    matplotlib.use("Agg")


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One CPU thread for a module: on a shared 2-core machine, OpenMP threads waiting on each other make tiny ops
    many times slower than one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def checkers_print_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chapter checkers print PASS/FAIL instead of raising, so a test can read a FAIL verdict."""
    monkeypatch.setenv("LOWRANK_GRADING", "0")


@pytest.fixture
def rand() -> Callable[..., torch.Tensor]:
    """A factory: ``rand(*shape, seed=0)`` draws a float64 standard-normal tensor from its own seeded generator."""

    def draw(*shape: int, seed: int = 0) -> torch.Tensor:
        return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)

    return draw
