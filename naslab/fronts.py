"""Pareto fronts of stored trials.

A multi-objective study keeps its objectives in its config
(``config["objectives"]``, e.g. ``["val_accuracy:max", "latency_ms:min"]``); the
front is computed from the complete trials' stored metrics and kept in the table
``naslab_pareto_fronts`` (view ``naslab_pareto``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from naslab.db.store import TrialRecord
from naslab.searchers.objectives import Objective, as_minimised, objective_values


def trial_metrics(t: TrialRecord) -> dict[str, float]:
    """A stored trial's final metrics plus its params, flops and latency (where known):
    what a searcher is told."""
    out = dict(t.metrics)
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
