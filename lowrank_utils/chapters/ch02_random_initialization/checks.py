"""Chapter 2's exercise checkers (see :mod:`lowrank_utils.checks` for the PASS/FAIL and grading conventions)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from lowrank_utils.chapters.ch02_random_initialization.experiment import (
    RandomInitConfig,
    random_network_rhos,
)
from lowrank_utils.checks import Verdict, check_choice, report, require_answer, tensor_answer
from lowrank_utils.rank import gram

SOFTPLUS_GAIN = math.sqrt(2.0)
"""The weight gain exercise 2.2 asks for (softplus behaves like ReLU for large inputs)."""


_TREND_DEPTHS = (1, 2, 4, 8, 16)


def check_centered_gram(fn: Callable[[torch.Tensor], Any], name: str = "centred Gram matrix") -> Verdict:
    """Check a student's K = HΦΦᵀH against the package on Gaussian and ReLU features (rows are samples)."""
    g = torch.Generator().manual_seed(7)
    cases = {
        "Gaussian features (20 x 5)": torch.randn(20, 5, generator=g, dtype=torch.float64),
        "ReLU features (30 x 8)": torch.relu(torch.randn(30, 8, generator=g, dtype=torch.float64)),
        "a single sample repeated (4 x 3)": torch.ones(4, 3, dtype=torch.float64),
    }
    for label, phi in cases.items():
        K = tensor_answer(name, fn, phi.clone(), call=f"on {label} your function")
        if isinstance(K, Verdict):
            return K
        n = phi.shape[0]
        if K.shape != (n, n):
            return report(name, False, f"on {label} K should be {n} x {n} (samples x samples), got "
                                       f"{tuple(K.shape)}. Did you compute ΦᵀΦ instead of ΦΦᵀ?")
        expected = gram(phi, center=True)
        if not torch.allclose(K, expected, atol=1e-8, rtol=1e-6):
            if torch.allclose(K, gram(phi), atol=1e-8, rtol=1e-6):
                hint = "you returned the uncentred K; subtract the mean feature vector first."
            else:
                hint = "subtract the mean over samples (dim=0), one mean feature vector, before the product."
            return report(name, False, f"on {label} your K differs from HΦΦᵀH: {hint}")
    return report(name, True)


SOFTPLUS_TREND = "decreases"
"""The known answer to the prediction of exercise 2.2 (the test suite re-measures it with the quick preset)."""


def check_softplus_prediction(prediction: Any, name: str = "prediction: softplus with depth") -> Verdict:
    """Grade a prediction of how the median ρ(K) of random softplus networks moves with depth against the known
    answer :data:`SOFTPLUS_TREND`, not against anything the student measured."""
    return check_choice(name, prediction, SOFTPLUS_TREND, ("decreases", "increases", "neither"),
                        hint="softplus(x) is close to ReLU for large |x|; what did depth do to ReLU networks?")


def softplus_reference_medians() -> dict[int, float]:
    """Median ρ(K) per depth for softplus networks: quick preset, normal weights, gain :data:`SOFTPLUS_GAIN`."""
    config = RandomInitConfig.quick(inits=("normal",))
    return {depth: float(random_network_rhos(config, torch.nn.functional.softplus, "normal", depth,
                                             gain=SOFTPLUS_GAIN)[config.gram_mode].median())
            for depth in _TREND_DEPTHS}


def check_softplus_medians(medians: Mapping[int, float], *, name: str = "measured: softplus medians") -> Verdict:
    """Check a student's median ρ(K) per depth for softplus networks against ``softplus_reference_medians()``."""
    require_answer(name, medians)
    if not isinstance(medians, Mapping):
        return report(name, False,
                      f"softplus_medians should be a dict {{depth: median}}, got {type(medians).__name__}.")
    if sorted(int(d) for d in medians) != list(_TREND_DEPTHS):
        return report(name, False, f"give one median per depth in {_TREND_DEPTHS}, got depths {sorted(medians)}.")
    config = RandomInitConfig.quick(inits=("normal",))
    ceiling = math.log(min(config.n_samples, config.width))
    reference = softplus_reference_medians()
    for depth in _TREND_DEPTHS:
        try:
            value = float(medians[depth])
        except (TypeError, ValueError):
            return report(name, False, f"the median for depth {depth} is not a number.")
        if not (math.isfinite(value) and 0 <= value <= ceiling + 1e-9):
            return report(name, False,
                          f"ρ(K) must lie in [0, log min(n, width)] = [0, {ceiling:.2f}]; depth {depth} gave {value}.")
        if abs(value - reference[depth]) > 0.1:
            return report(name, False, f"at depth {depth} you measured {value:.2f}, the reference gives "
                                       f"{reference[depth]:.2f}. Use random_network_rhos(config, F.softplus, "
                                       f"'normal', depth, gain=SOFTPLUS_GAIN) and take the median.")
    return report(name, True)


def check_activation_trend(medians: Mapping[int, float], prediction: str,
                           *, name: str = "a new activation: softplus") -> Verdict:
    """Both parts of exercise 2.2 at once: the measured medians, then the prediction (against the known answer)."""
    measured = check_softplus_medians(medians, name=name)
    if not measured:
        return measured
    return check_softplus_prediction(prediction, name=name)
