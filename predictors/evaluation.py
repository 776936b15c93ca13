"""Learning curves of predictors: ranking quality against training-set size.

:func:`learning_curve` fits fresh predictors on growing random training sets and
scores them (:func:`~naslab.predictors.metrics.rank_report`) on held-out
architectures; the splits depend only on ``seed`` and the number of
architectures, so predictors run with the same seed are compared on identical
training and test sets. :func:`compare` does this for several predictors at once
and labels the rows; :func:`summarise` averages the rows over splits and
:func:`format_table` prints one metric as a table::

    rows = compare({"gnn": GNNPredictor, "mean": MeanPredictor}, archs, accuracies)
    print(format_table(summarise(rows)))
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

from naslab.core.errors import ConfigError
from naslab.core.validation import check_int, check_str
from naslab.predictors.base import (
    FeaturesLike,
    FeatureTable,
    Predictor,
    check_archs,
    check_targets,
)
from naslab.predictors.metrics import rank_report
from naslab.search_spaces.architecture import Architecture

__all__ = ["check_summary", "compare", "format_table", "learning_curve", "summarise"]


def _check_sizes(sizes: Any, n: int, test_size: int | None) -> list[int]:
    if isinstance(sizes, Integral) and not isinstance(sizes, bool):
        sizes = [sizes]
    try:
        raw = list(sizes)
    except TypeError:
        raise ConfigError(f"sizes must be a sequence of integers, got {sizes!r}") from None
    if not raw:
        raise ConfigError("sizes is empty; give at least one training-set size")
    checked = sorted({check_int("a training-set size", s, minimum=2) for s in raw})
    needed = 2 if test_size is None else test_size
    too_big = [s for s in checked if s > n - needed]
    if too_big:
        reason = (
            f"a test set of {test_size}" if test_size is not None else "at least 2 for testing"
        )
        raise ConfigError(
            f"training-set sizes {too_big} are too large for {n} architectures: each split "
            f"keeps {reason} apart from the training set; use sizes of at most {n - needed}"
        )
    return checked


def _rows_of(features: FeatureTable, idx: np.ndarray) -> dict[str, np.ndarray] | None:
    if not features.names:
        return None
    return {name: features.values[idx, j] for j, name in enumerate(features.names)}


def learning_curve(
    make_predictor: Callable[[], Predictor],
    archs: Sequence[Architecture],
    targets: Any,
    sizes: Iterable[int] = (25, 50, 100, 200, 500),
    n_splits: int = 10,
    seed: int = 0,
    features: FeaturesLike = None,
    test_size: int | None = None,
    *,
    name: str | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Fit fresh predictors on random training sets of each size and score them.

    For each split ``s`` in ``range(n_splits)`` the architectures are shuffled with
    ``numpy.random.default_rng((seed, s))``; for each size ``n`` the first ``n`` of
    the shuffled order form the training set, so within a split the smaller
    training sets are nested in the larger ones. The test set is disjoint from the
    training set: all the remaining architectures when ``test_size`` is ``None``,
    else the last ``test_size`` of the shuffled order (a random sample of the rest,
    the same for every size of that split). The shuffle depends only on ``seed``,
    ``s`` and ``len(archs)``, so every predictor evaluated with the same ``seed`` sees
    identical splits.

    Args:
        make_predictor: builds a fresh, unfitted predictor (a class or a
            ``lambda: GNNPredictor(epochs=50)``); called once per fit.
        archs: the architectures.
        targets: their measured values, one per architecture (higher is better).
        sizes: training-set sizes; duplicates are dropped and they run in
            increasing order. Each must be at least 2 and leave at least 2 (or
            ``test_size``) architectures for testing.
        n_splits: number of random splits per size.
        seed: seed of the splits.
        features: optional per-architecture features (see
            :meth:`~naslab.predictors.base.FeatureTable.coerce`: a mapping
            ``name -> values`` or a 2-D array); their rows are sliced along with the
            architectures and passed to ``fit`` and ``predict`` as a mapping.
        test_size: number of test architectures per split; ``None`` tests on all
            architectures outside the training set.
        name: when given, every row gets ``"predictor": name``.
        on_row: called with each row as soon as it is scored (e.g. to show
            progress: there are ``n_splits * len(set(sizes))`` rows).

    Returns:
        One row per (split, size), in split-major order: the figures of
        :func:`~naslab.predictors.metrics.rank_report` (``n`` is the number of test
        architectures) plus ``size``, ``split``, ``fit_seconds`` and
        ``predict_seconds`` (wall-clock), and ``predictor`` when ``name`` is given.

    Raises:
        ConfigError: invalid inputs (see above), a size too large for the number of
            architectures, ``make_predictor`` not returning a :class:`Predictor`, or
            a prediction that cannot be scored (wrong length, non-finite values).
    """
    archs = check_archs(archs)
    y = check_targets(targets, len(archs))
    table = FeatureTable.coerce(features, len(archs))
    n_splits, seed, test_size, checked_sizes = _check_settings(
        make_predictor, len(archs), sizes, n_splits, seed, test_size, name
    )
    rows: list[dict[str, Any]] = []
    for split in range(n_splits):
        order = np.random.default_rng((seed, split)).permutation(len(archs))
        for size in checked_sizes:
            test = order[size:] if test_size is None else order[len(archs) - test_size :]
            row: dict[str, Any] = {} if name is None else {"predictor": name}
            row.update(size=size, split=split)
            row.update(_fit_and_score(make_predictor(), archs, y, table, order[:size], test,
                                      f"training-set size {size}, split {split}"))
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def _check_settings(
    make_predictor: Any, n_total: int, sizes: Any, n_splits: Any, seed: Any,
    test_size: Any, name: Any,
) -> tuple[int, int, int | None, list[int]]:
    """:func:`learning_curve`'s settings, checked: splits, seed, test size, sizes."""
    if not callable(make_predictor):
        raise ConfigError(
            "make_predictor must be a callable returning a fresh predictor (e.g. the "
            f"predictor class), got {type(make_predictor).__name__}"
        )
    n_splits = check_int("n_splits", n_splits, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    if test_size is not None:
        test_size = check_int("test_size", test_size, minimum=2)
        if test_size > n_total - 2:
            raise ConfigError(
                f"test_size {test_size} leaves fewer than 2 of the {n_total} architectures "
                f"for training; use at most {n_total - 2}"
            )
    checked_sizes = _check_sizes(sizes, n_total, test_size)
    if name is not None:
        check_str("name", name)
    return n_splits, seed, test_size, checked_sizes


def _fit_and_score(
    predictor: Any, archs: list[Architecture], y: np.ndarray, table: FeatureTable,
    train: np.ndarray, test: np.ndarray, where: str,
) -> dict[str, Any]:
    """Fit ``predictor`` on ``train``, score it on ``test``: the rank report and timings.

    ``where`` (the size and split) goes into the message of a prediction that cannot
    be scored.
    """
    if not isinstance(predictor, Predictor):
        raise ConfigError(
            f"make_predictor must return a Predictor, got {type(predictor).__name__}"
        )
    start = time.perf_counter()
    predictor.fit([archs[i] for i in train], y[train], _rows_of(table, train))
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    prediction = predictor.predict([archs[i] for i in test], _rows_of(table, test))
    predict_seconds = time.perf_counter() - start
    try:
        report = rank_report(prediction, y[test])
    except ConfigError as exc:
        raise ConfigError(
            f"cannot score {type(predictor).__name__} ({where}): {exc}"
        ) from None
    return {**report, "fit_seconds": fit_seconds, "predict_seconds": predict_seconds}


def compare(
    makers: Mapping[str, Callable[[], Predictor]],
    archs: Sequence[Architecture],
    targets: Any,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """:func:`learning_curve` of each predictor, on identical splits, rows labelled.

    ``makers`` maps a display name to a ``make_predictor`` callable; ``kwargs`` go to
    :func:`learning_curve` (``sizes``, ``n_splits``, ``seed``, ``features``,
    ``test_size``). Every row carries ``"predictor": name``.
    """
    if not isinstance(makers, Mapping) or not makers:
        raise ConfigError("makers must be a non-empty mapping name -> make_predictor")
    if "name" in kwargs:
        raise ConfigError("compare names the rows from the keys of makers; do not pass name")
    rows: list[dict[str, Any]] = []
    for label, make in makers.items():
        rows.extend(learning_curve(make, archs, targets, name=str(label), **kwargs))
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def summarise(
    rows: Iterable[Mapping[str, Any]], by: Sequence[str] = ("predictor", "size")
) -> list[dict[str, Any]]:
    """Mean and standard deviation over splits of every numeric figure of ``rows``.

    Rows are grouped by the keys of ``by`` that they carry (a key absent from every
    row, such as ``predictor`` in the rows of a single :func:`learning_curve`, is
    ignored). Every other numeric key except ``split`` that all rows of a group
    carry is summarised as ``<key>_mean`` and ``<key>_std`` (the sample standard
    deviation over splits, ddof=1; 0.0 for a single split); ``n_splits`` counts the
    rows of the group. Groups keep the order in which they first appear.

    Raises:
        ConfigError: a key of ``by`` is carried by some rows but not all.
    """
    rows = [dict(r) for r in rows]
    if isinstance(by, str):
        by = (by,)
    keys = [k for k in by if any(k in r for r in rows)]
    for k in keys:
        missing = sum(1 for r in rows if k not in r)
        if missing:
            raise ConfigError(
                f"{missing} of {len(rows)} rows have no {k!r}; label every row or none"
            )
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    skip = set(keys) | {"split"}
    summary: list[dict[str, Any]] = []
    for group_key, members in groups.items():
        entry: dict[str, Any] = dict(zip(keys, group_key))
        entry["n_splits"] = len(members)
        metrics = [
            k for k in members[0]
            if k not in skip and all(_is_number(m.get(k)) for m in members)
        ]
        for metric in metrics:
            values = np.array([float(m[metric]) for m in members])
            entry[f"{metric}_mean"] = float(np.mean(values))
            entry[f"{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        summary.append(entry)
    return summary


def _metrics_of(summary: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for entry in summary:
        for k in entry:
            if k.endswith("_mean"):
                seen[k[: -len("_mean")]] = None
    return list(seen)


def check_summary(summary: Sequence[Mapping[str, Any]], metric: str) -> None:
    """Raise :class:`ConfigError` unless ``summary`` (from :func:`summarise`) has ``metric``.

    It must be non-empty, carry ``size`` in every entry, and ``<metric>_mean`` in one.
    """
    if not summary:
        raise ConfigError("the summary is empty; run learning_curve and summarise first")
    if not all("size" in e for e in summary):
        raise ConfigError("the summary has no 'size'; summarise learning_curve rows by size")
    if not any(f"{metric}_mean" in e for e in summary):
        raise ConfigError(
            f"the summary has no metric {metric!r}; it has: {', '.join(_metrics_of(summary))}"
        )


def _format_cell(mean: float, std: float, digits: int) -> str:
    if not (math.isfinite(mean) and math.isfinite(std)):
        return "nan"
    return f"{mean:.{digits}f}±{std:.{digits}f}"


def format_table(
    summary: Sequence[Mapping[str, Any]], metric: str = "kendall_tau", digits: int = 3
) -> str:
    """One metric of a :func:`summarise` result as a plain-text table.

    Predictors are rows (one row labelled ``all`` when the summary has no
    ``predictor``), training-set sizes are columns, and each cell is
    ``mean±std`` over splits with ``digits`` decimals (``-`` where a predictor was
    not run at that size).

    Raises:
        ConfigError: the summary is empty, has no ``size``, or lacks ``metric``.
    """
    summary = list(summary)
    check_summary(summary, metric)
    digits = check_int("digits", digits, minimum=0)
    labels: dict[str, None] = {}
    cells: dict[tuple[str, int], str] = {}
    for entry in summary:
        label = str(entry.get("predictor", "all"))
        labels[label] = None
        if f"{metric}_mean" in entry:
            cells[(label, entry["size"])] = _format_cell(
                float(entry[f"{metric}_mean"]), float(entry.get(f"{metric}_std", 0.0)), digits
            )
    sizes = sorted({entry["size"] for entry in summary})
    header = ["predictor", *(f"n={s}" for s in sizes)]
    body = [[label, *(cells.get((label, s), "-") for s in sizes)] for label in labels]
    widths = [max(len(row[j]) for row in [header, *body]) for j in range(len(header))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = (cell.rjust(w) for cell, w in zip(row[1:], widths[1:]))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    title = f"{metric} (mean±std over splits, by training-set size)"
    return "\n".join([title, line(header), rule, *(line(row) for row in body)])
