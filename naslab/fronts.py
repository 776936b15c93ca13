"""Pareto fronts of stored trials.

A multi-objective study keeps its objectives in its config
(``config["objectives"]``, e.g. ``["val_accuracy:max", "latency_ms:min"]``); the
front is computed from the complete trials' stored metrics and kept in the table
``naslab_pareto_fronts`` (view ``naslab_pareto``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from naslab.db.records import TrialRecord
from naslab.searchers.objectives import Objective, as_minimised, objective_values
from naslab.workers.evaluator import Result


def trial_metrics(t: TrialRecord | Result) -> dict[str, float]:
    """A stored trial's (or a fresh result's) final metrics plus its params, flops and
    latency where known: what a searcher is told."""
    out = {k: float(v) for k, v in t.metrics.items() if v is not None}
    for key in ("params", "flops", "latency_ms"):
        value = getattr(t, key)
        if value is not None:
            out.setdefault(key, float(value))
    return out


def objective_matrix(
    trials: Sequence[TrialRecord], objectives: Sequence[Objective]
) -> tuple[list[TrialRecord], np.ndarray]:
    """The complete trials that have every objective, and their objective values
    (one row each, in the objectives' own units and directions)."""
    kept, rows = [], []
    for t in trials:
        if t.state != "complete":
            continue
        values = objective_values(objectives, trial_metrics(t))
        if values is not None:
            kept.append(t)
            rows.append(values)
    return kept, np.asarray(rows, dtype=float).reshape(len(rows), len(objectives))


def pareto_trials(
    trials: Sequence[TrialRecord], objectives: Sequence[Objective]
) -> list[TrialRecord]:
    """The complete trials on the Pareto front of ``objectives`` (none dominated)."""
    from naslab.searchers.pareto import pareto_mask

    kept, values = objective_matrix(trials, objectives)
    if not kept:
        return []
    minimised = np.array([as_minimised(objectives, v) for v in values])
    return [t for t, on in zip(kept, pareto_mask(minimised)) if on]


#: Metrics scaled on a log scale for hypervolumes (costs spanning magnitudes).
LOG_METRICS: tuple[str, ...] = ("params", "flops", "latency_ms")


def normalise_objectives(values: np.ndarray, objectives: Sequence[Objective],
                         low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``values`` (one row per point, objectives' units) turned to minimisation and
    scaled to [0, 1] by the bounds ``low``/``high`` (in the same units); cost metrics
    (:data:`LOG_METRICS`) on a log scale."""
    out = np.array(values, dtype=float, copy=True).reshape(-1, len(objectives))
    lo, hi = np.asarray(low, float).copy(), np.asarray(high, float).copy()
    for j, o in enumerate(objectives):
        if o.name in LOG_METRICS:
            out[:, j] = np.log(np.maximum(out[:, j], 1e-12))
            lo[j], hi[j] = math.log(max(lo[j], 1e-12)), math.log(max(hi[j], 1e-12))
        span = hi[j] - lo[j] if hi[j] > lo[j] else 1.0
        out[:, j] = (out[:, j] - lo[j]) / span
        if o.direction == "max":
            out[:, j] = 1.0 - out[:, j]
    return out


def front_hypervolume(trials: Sequence[TrialRecord], objectives: Sequence[Objective],
                      reference: float = 1.1) -> float:
    """Hypervolume of the trials' front, objectives scaled to the range the trials
    span (see :func:`normalise_objectives`), reference point ``reference`` in every
    scaled coordinate."""
    from naslab.searchers.pareto import hypervolume

    _, values = objective_matrix(trials, objectives)
    if not len(values):
        return 0.0
    norm = normalise_objectives(values, objectives, values.min(axis=0), values.max(axis=0))
    return float(hypervolume(norm, np.full(len(objectives), reference)))


def plot_front(store: Any, study: str, path: str | Path) -> Path:
    """Scatter of a multi-objective study's complete trials on its first two
    objectives, the stored Pareto front highlighted and joined; written to ``path``."""
    from naslab.predictors.plots import new_figure, save_figure
    from naslab.searchers.objectives import parse_objectives

    names, front = store.fronts.get(study)
    info = store.studies.get(study)
    names = names or list((info.config if info else {}).get("objectives") or [])
    if len(names) < 2:
        from naslab.core.errors import ConfigError

        raise ConfigError(f"study {study!r} has no stored Pareto front to plot")
    objectives = parse_objectives(names)
    _, values = objective_matrix(store.trials.list(study, ["complete"]), objectives)
    _, front_values = objective_matrix(front, objectives)
    fig = new_figure()
    ax = fig.subplots()
    ax.scatter(values[:, 1], values[:, 0], s=12, alpha=0.5, label="complete trials")
    order = np.argsort(front_values[:, 1])
    ax.plot(front_values[order, 1], front_values[order, 0], "o-", color="C3", markersize=5,
            drawstyle="steps-post",
            label=f"Pareto front ({len(front_values)})")
    if objectives[1].name in LOG_METRICS:
        ax.set_xscale("log")
    ax.set_xlabel(str(objectives[1]))
    ax.set_ylabel(str(objectives[0]))
    ax.set_title(f"{study}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path)
