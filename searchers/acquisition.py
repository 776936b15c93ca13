"""Acquisition functions: how a predictor's mean and uncertainty score candidates.

Every function takes the predicted ``mean`` and ``std`` (arrays, one entry per
candidate, in the objective's units, larger is better) and returns a score, larger
is better:

``ucb``
    Upper confidence bound, ``mean + kappa * std``.
``ei``
    Expected improvement over the best value observed, ``(mean - best) Phi(z) +
    std phi(z)`` with ``z = (mean - best) / std`` (Jones et al. 1998).
``ts``
    Thompson sampling: one draw from ``N(mean, std^2)`` per candidate (independent
    draws, as in BANANAS' "independent Thompson sampling", White et al. 2021).
``mean``
    The predicted mean only (greedy exploitation).
"""

from __future__ import annotations

import math

import numpy as np

from naslab.core.errors import UnknownNameError

#: The acquisition functions by name.
ACQUISITIONS: tuple[str, ...] = ("ucb", "ei", "ts", "mean")


def _norm_pdf(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(z)


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """Expected improvement over ``best``; where ``std`` is 0 it is ``max(mean - best, 0)``."""
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    gain = mean - best
    safe = np.where(std > 0, std, 1.0)
    z = gain / safe
    ei = gain * _norm_cdf(z) + safe * _norm_pdf(z)
    return np.where(std > 0, ei, np.maximum(gain, 0.0))


def acquire(
    name: str,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    best: float | None = None,
    kappa: float = 1.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The acquisition ``name`` (one of :data:`ACQUISITIONS`) of each candidate.

    Args:
        name: ``ucb``, ``ei``, ``ts`` or ``mean``.
        mean, std: the predictor's mean and standard deviation per candidate.
        best: the best value observed so far (``ei`` needs it).
        kappa: the weight of ``std`` in ``ucb``.
        rng: the generator of ``ts``'s draws.
    """
    mean, std = np.asarray(mean, float), np.maximum(np.asarray(std, float), 0.0)
    if name == "ucb":
        return mean + kappa * std
    if name == "mean":
        return mean
    if name == "ei":
        if best is None:
            raise ValueError("expected improvement needs the best value observed")
        return expected_improvement(mean, std, best)
    if name == "ts":
        if rng is None:
            raise ValueError("Thompson sampling needs a random generator")
        return mean + std * rng.standard_normal(mean.shape)
    raise UnknownNameError("acquisition function", name, ACQUISITIONS)
