"""Model surgery: expand every plain linear / conv layer of a model (:func:`overparameterize`) and collapse the
expansions back (:func:`collapse`), with the checks of what can be expanded exactly."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from . import _validate as check
from .layers import MODES, OverparamConv2d, OverparamLayer, OverparamLinear

__all__ = ["LAYER_TYPES", "collapse", "overparameterize"]

LAYER_TYPES: tuple[str, ...] = ("linear", "conv")


def _family(module: nn.Module) -> str | None:
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    return None


def _why_unexpandable(module: nn.Module, kind: str, shared: set[int]) -> str:
    """Why a module of an expandable family must stay as it is, or '' if it can be expanded."""
    exact = nn.Linear if kind == "linear" else nn.Conv2d
    if type(module) is not exact:
        return f"{type(module).__name__} is not a plain nn.{exact.__name__} (only exactly that type is expanded)"
    if any(id(p) in shared for p in module.parameters(recurse=False)):
        return "its weight is shared with another module (expanding would untie it)"
    if torch.nn.utils.parametrize.is_parametrized(module):
        return "it has a parametrization (e.g. weight norm), which reads .weight directly"
    if module._forward_hooks or module._forward_pre_hooks:
        return "it has forward hooks that may read .weight"
    if kind == "conv":
        return check.conv_unsupported(module)  # type: ignore[arg-type]
    return ""


def overparameterize(
    model: nn.Module,
    depth: int = 2,
    *,
    width: float = 1,
    layer_types: Iterable[str] = LAYER_TYPES,
    skip: Iterable[str] = (),
    keep_function: bool = False,
    noise_std: float = 0.0,
    batch_norm: bool = False,
    residual: bool = False,
    residual_intervals: int | Sequence[int] = 2,
    negative_slope: float = 0.0,
    mode: str = "auto",
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> nn.Module:
    """Replace every ``nn.Linear`` / ``nn.Conv2d`` of ``model`` by an over-parameterized layer of ``depth`` factors.

    A conv with a k x k kernel becomes factors [k, 1, ..., 1] with the same padding, stride, groups and bias, so
    the collapsed model has the original's shapes and parameter count. ``layer_types`` picks the families
    (``"linear"``, ``"conv"``); ``skip`` names modules (as in ``named_modules``) left alone with everything inside
    them. ``keep_function`` makes each expansion compute the original layer's function (first factor = weight,
    then identities, optionally perturbed by ``noise_std`` and compensated exactly); otherwise factors are freshly
    initialised. Modules that cannot be expanded exactly (dilated or non-zero-padded convs, other conv types,
    subclasses, shared or parametrized weights, impossible skip/width requests) stay unchanged with a warning
    naming them. Returns the new model (a copy unless ``inplace``). Every option after ``depth`` is keyword-only.
    """
    check.positive_int("depth", depth)
    check.hidden_width(1, width, None, "hidden")  # validates width
    types = set(layer_types)
    if not types or not types <= set(LAYER_TYPES):
        raise ValueError(f"layer_types must be a non-empty subset of {LAYER_TYPES}, got {sorted(types)}.")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}.")
    if batch_norm and depth < 2:
        raise ValueError("batch_norm=True needs depth >= 2: the norms sit between factors.")
    if keep_function and residual:
        raise ValueError("keep_function cannot be combined with residual skips: the skips add identity paths.")
    check.number("noise_std", noise_std, minimum=0)
    skip = [skip] if isinstance(skip, str) else list(skip)
    names = dict(model.named_modules())
    unknown = [s for s in skip if s not in names]
    if unknown:
        raise ValueError(f"skip names {unknown} are not modules of the model; use names from model.named_modules().")
    if not inplace:
        model = copy.deepcopy(model)

    counts: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        counts[id(p)] = counts.get(id(p), 0) + 1
    shared = {pid for pid, c in counts.items() if c > 1}
    options = {
        "depth": depth, "width": width, "keep_function": keep_function, "noise_std": noise_std,
        "generator": generator, "batch_norm": batch_norm, "residual": residual,
        "residual_intervals": residual_intervals, "negative_slope": negative_slope, "mode": mode,
    }

    # Warnings wait until the walk is done, so that they point at the caller of overparameterize (stacklevel=2)
    # whatever the depth of the recursion that found them.
    unchanged: list[str] = []

    def convert(name: str, module: nn.Module) -> nn.Module | None:
        kind = _family(module)
        if kind is None or kind not in types:
            return None
        reason = _why_unexpandable(module, kind, shared)
        if not reason:
            cls = OverparamLinear if kind == "linear" else OverparamConv2d
            try:
                return cls.from_module(module, **options)  # type: ignore[arg-type]
            except ValueError as err:  # a per-module impossibility (groups vs width, no skip fits, ...)
                reason = str(err)
        label = name or "the model"
        unchanged.append(f"overparameterize: left {label!r} ({type(module).__name__}) unchanged: {reason.rstrip('.')}.")
        return None

    def walk(parent: nn.Module, prefix: str) -> None:
        for child_name, child in list(parent.named_children()):
            full = f"{prefix}.{child_name}" if prefix else child_name
            if full in skip or isinstance(child, OverparamLayer):
                continue
            new = convert(full, child)
            if new is not None:
                setattr(parent, child_name, new)
            else:
                walk(child, full)

    if "" in skip or isinstance(model, OverparamLayer):
        return model
    root = convert("", model)
    if root is None:
        walk(model, "")
    for message in unchanged:
        warnings.warn(message, stacklevel=2)
    return model if root is None else root


def collapse(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Replace every over-parameterized layer by the equivalent ``nn.Linear`` / ``nn.Conv2d`` (same outputs;
    batch norm inside an expansion is folded with its running statistics, i.e. eval-mode behaviour)."""
    if isinstance(model, OverparamLayer):
        return model.collapse()
    if not inplace:
        model = copy.deepcopy(model)

    def walk(parent: nn.Module) -> None:
        for child_name, child in list(parent.named_children()):
            if isinstance(child, OverparamLayer):
                setattr(parent, child_name, child.collapse())
            else:
                walk(child)

    walk(model)
    return model
