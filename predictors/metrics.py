"""How good a performance predictor is: ranking quality and calibration.

A NAS predictor is mostly used to *rank* candidates, so the headline figures are
rank correlations (:func:`kendall_tau`, :func:`spearman`) and the precision of the
predicted top set (:func:`top_precision`). Predictors that report an uncertainty are
also judged on calibration with :func:`coverage`: the share of true values within
``k`` predicted standard deviations of the predicted mean. For a calibrated Gaussian
predictive distribution, 68.3 % of the values fall within 1 sigma and 95.4 % within
2 sigma (:data:`NOMINAL_COVERAGE`).

Higher targets are better throughout (accuracy, not error). Every function checks
its input and raises :class:`~naslab.core.errors.ConfigError` with a message saying what
was wrong: vectors of different lengths, too few values, non-finite values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from naslab.core.errors import ConfigError
from naslab.core.validation import check_float
from naslab.predictors.base import Prediction

__all__ = [
    "NOMINAL_COVERAGE",
    "check_vectors",
    "coverage",
    "kendall_tau",
    "rank_report",
    "rmse",
    "spearman",
    "top_precision",
]

#: Coverage of a calibrated Gaussian within 1 and 2 standard deviations.
NOMINAL_COVERAGE = {"coverage_1sigma": 0.683, "coverage_2sigma": 0.954}


def _vector(values: Any, what: str) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{what} must be a sequence of numbers, got {type(values).__name__}"
        ) from None
    if v.ndim != 1:
        raise ConfigError(
            f"{what} must be one-dimensional (one number per architecture), got shape {v.shape}"
        )
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        raise ConfigError(
            f"{what} must be finite; {what}[{int(bad[0])}] is {v[bad[0]]} ({bad.size} non-finite "
            "in all)"
        )
    return v


def check_vectors(minimum: int, **named: Any) -> list[np.ndarray]:
    """The named inputs as finite float64 vectors of one common length >= ``minimum``.

    Each keyword is a vector's name (used in the error messages) and its values.

    Raises:
        ConfigError: a value is not a one-dimensional sequence of finite numbers, the
            lengths differ, or there are fewer than ``minimum`` values.
    """
    out = [_vector(v, name) for name, v in named.items()]
    lengths = {name: v.shape[0] for name, v in zip(named, out)}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ConfigError(f"inputs differ in length: {described}; give one value per architecture")
    n = out[0].shape[0]
    if n < minimum:
        raise ConfigError(f"need at least {minimum} values to compare, got {n}")
    return out


def _constant(*vectors: np.ndarray) -> bool:
    """Whether any of the vectors is constant (its rank correlation is undefined)."""
    return any(bool(np.all(v == v[0])) for v in vectors)


def _finite_or_zero(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0


def kendall_tau(y_true: Any, y_pred: Any) -> float:
    """Kendall's tau-b between true and predicted values (ties accounted for).

    Returns 0.0, not NaN, when either vector is constant (e.g. a predictor that
    predicts the same value for every architecture): such a prediction carries no
    ranking information, and 0 keeps averages over splits meaningful.

    Raises:
        ConfigError: different lengths, fewer than 2 values, or non-finite values.
    """
    t, p = check_vectors(2, y_true=y_true, y_pred=y_pred)
    if _constant(t, p):
        return 0.0
    return _finite_or_zero(stats.kendalltau(t, p, variant="b").statistic)


def spearman(y_true: Any, y_pred: Any) -> float:
    """Spearman's rank correlation between true and predicted values.

    As for :func:`kendall_tau`, a constant vector gives 0.0 instead of NaN.

    Raises:
        ConfigError: different lengths, fewer than 2 values, or non-finite values.
    """
    t, p = check_vectors(2, y_true=y_true, y_pred=y_pred)
    if _constant(t, p):
        return 0.0
    return _finite_or_zero(stats.spearmanr(t, p).statistic)


def _top_count(fraction: float, n: int) -> int:
    fraction = check_float("fraction", fraction, minimum=0.0, maximum=1.0, strict_minimum=True)
    # the small epsilon keeps e.g. 0.29 * 100 = 28.999999999999996 at 29
    return max(1, math.floor(fraction * n + 1e-9))


def top_precision(y_true: Any, y_pred: Any, fraction: float = 0.1) -> float:
    """Share of the predicted top ``fraction`` that is truly in the top ``fraction``.

    ``k = max(1, floor(fraction * n))`` architectures are selected by prediction and
    the result is the share of them that are truly among the best ``k``. Higher
    values are better, for both targets and predictions.

    Ties are handled deterministically:

    * **in the predictions**, the ``k`` selected are the first ``k`` of a stable
      sort by decreasing prediction, so among equal predictions the architecture
      given earlier is selected first;
    * **in the true values**, every architecture whose true value is at least the
      ``k``-th best true value counts as truly in the top, so an architecture tied
      with the last truly-top one is not counted as a miss.

    Raises:
        ConfigError: different lengths, fewer than 2 values, non-finite values, or
            ``fraction`` outside (0, 1].
    """
    t, p = check_vectors(2, y_true=y_true, y_pred=y_pred)
    k = _top_count(fraction, t.shape[0])
    predicted_top = np.argsort(-p, kind="stable")[:k]
    threshold = np.sort(t)[::-1][k - 1]
    return float(np.count_nonzero(t[predicted_top] >= threshold)) / k


def coverage(y_true: Any, mean: Any, std: Any, k: float = 1.0) -> float:
    """Share of true values within ``k`` predicted standard deviations of the mean.

    A value counts as covered when ``|y_true - mean| <= k * std``; where ``std`` is
    0 that holds only when the prediction is exact. A single value is accepted.

    Raises:
        ConfigError: different lengths, no values, non-finite values, a negative
            ``std``, or ``k`` not a positive number.
    """
    k = check_float("k (standard deviations)", k, minimum=0.0, strict_minimum=True)
    t, m, s = check_vectors(1, y_true=y_true, mean=mean, std=std)
    negative = np.flatnonzero(s < 0)
    if negative.size:
        raise ConfigError(f"std must be >= 0; std[{int(negative[0])}] is {s[negative[0]]}")
    return float(np.mean(np.abs(t - m) <= k * s))


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error between true and predicted values.

    Raises:
        ConfigError: different lengths, no values, or non-finite values.
    """
    t, p = check_vectors(1, y_true=y_true, y_pred=y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def rank_report(prediction: Prediction, y_true: Any) -> dict[str, float]:
    """Every figure of merit of ``prediction`` against the true values.

    Returns:
        ``kendall_tau``, ``spearman``, ``top10_precision`` (:func:`top_precision`
        with ``fraction=0.1``), ``coverage_1sigma`` and ``coverage_2sigma``
        (:func:`coverage` with ``k`` 1 and 2; nominally 0.683 and 0.954 for a
        calibrated Gaussian, see :data:`NOMINAL_COVERAGE`), ``rmse``, and ``n``
        (the number of architectures, an int).

    Raises:
        ConfigError: ``prediction`` is not a :class:`Prediction`, its length differs
            from ``y_true``'s, there are fewer than 2 values, or a value is
            non-finite (or a std negative).
    """
    if not isinstance(prediction, Prediction):
        raise ConfigError(
            f"prediction must be a Prediction (from predictor.predict), got "
            f"{type(prediction).__name__}"
        )
    t, m, s = check_vectors(2, y_true=y_true, mean=prediction.mean, std=prediction.std)
    return {
        "kendall_tau": kendall_tau(t, m),
        "spearman": spearman(t, m),
        "top10_precision": top_precision(t, m, 0.1),
        "coverage_1sigma": coverage(t, m, s, 1.0),
        "coverage_2sigma": coverage(t, m, s, 2.0),
        "rmse": rmse(t, m),
        "n": int(t.shape[0]),
    }
