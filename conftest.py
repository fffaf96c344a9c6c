"""Shared test configuration (at the repository root, so it also applies when pytest is given only book/ paths).

With pytest-xdist (`make test` runs `-n auto --dist loadgroup`), the cells of one notebook must run in order in one
kernel, so every nbval item is put in a group named after its notebook; other tests are spread one by one.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.xdist_group(f"notebook-{item.path.stem}"))
