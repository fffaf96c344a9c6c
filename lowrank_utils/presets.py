"""Quick and full presets: one mechanism for every experiment config of the book.

A config is a frozen dataclass that also derives from :class:`Presets`. Its field defaults *are* the quick preset
(a CPU run of seconds), with ``QUICK`` for the few defaults a quick run changes; ``FULL`` lists only what the full
preset changes on top of quick, so a reader sees the difference between the two scales in one place::

    @dataclass(frozen=True)
    class MyConfig(Presets):
        FULL: ClassVar[dict[str, Any]] = dict(draws=1000, seeds=tuple(range(10)))
        draws: int = 200
        seeds: tuple[int, ...] = (0, 1, 2)

    MyConfig.for_scale("full", seeds=(0,))   # the full preset, with one override
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from lowrank_utils.runtime import SCALES

__all__ = ["Presets"]

_C = TypeVar("_C", bound="Presets")


class Presets:
    """Adds ``quick()``, ``full()`` and ``for_scale(scale)`` to a config dataclass (see the module docstring)."""

    QUICK: ClassVar[Mapping[str, Any]] = {}
    FULL: ClassVar[Mapping[str, Any]] = {}

    @classmethod
    def quick(cls: type[_C], **overrides: Any) -> _C:
        """The quick (CPU) preset, with ``overrides`` applied."""
        return cls(**{**cls.QUICK, **overrides})

    @classmethod
    def full(cls: type[_C], **overrides: Any) -> _C:
        """The full preset (quick with ``FULL`` applied), with ``overrides`` applied."""
        return cls(**{**cls.QUICK, **cls.FULL, **overrides})

    @classmethod
    def for_scale(cls: type[_C], scale: str, **overrides: Any) -> _C:
        """The ``quick`` or ``full`` preset by name (as :func:`lowrank_utils.runtime.get_scale` returns it)."""
        if scale not in SCALES:
            raise ValueError(f"scale must be 'quick' or 'full' (see lowrank_utils.get_scale), got {scale!r}.")
        return cls.quick(**overrides) if scale == "quick" else cls.full(**overrides)
