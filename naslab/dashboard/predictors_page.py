"""The predictors page: the stored predictor versions, and for a study, each version
of its space scored on (at most :data:`MAX_SCORED` of) the study's complete results:
predicted against actual, Kendall's tau and Spearman's rho."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from naslab.core.errors import NaslabError
from naslab.dashboard import figures
from naslab.dashboard.pages import require_study
from naslab.db.dashboard_queries import DashboardQueries

__all__ = ["MAX_SCORED", "ScoreCache", "predictors_context"]

#: The most results a predictor is scored on (evenly spaced by trial number).
MAX_SCORED = 2000


class ScoreCache:
    """Scores already computed, by (predictor id, study id, results scored): a
    predictor version never changes, so its scores change only with the results."""

    def __init__(self, size: int = 64) -> None:
        self._items: OrderedDict[tuple[int, int, int], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, key: tuple[int, int, int]) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: tuple[int, int, int], value: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def _score(store: Any, record: Any, results: list[Any]) -> dict[str, Any]:
    """One predictor version scored on ``results`` (a message where it cannot be)."""
    from naslab.predictor_store import load_from_store
    from naslab.predictors.metrics import kendall_tau, spearman

    label = f"{record.name} v{record.version}"
    try:
        predictor, _ = load_from_store(store, record.name, record.version)
        archs = [t.architecture() for t in results]
        mean = [float(v) for v in predictor.predict(archs).mean]
    except (NaslabError, ValueError, TypeError, KeyError) as exc:
        return {"label": label, "error": f"cannot be scored here: {exc}"}
    actual = [float(t.objective_value) for t in results]
    if len(actual) < 2:
        return {"label": label, "error": "fewer than 2 complete results to score on"}
    return {"label": label, "error": None, "kendall": kendall_tau(actual, mean),
            "spearman": spearman(actual, mean), "n": len(actual),
            "figure": figures.predictor_figure(actual, mean, [t.number for t in results],
                                               f"{label}: predicted against actual")}


def predictors_context(store: Any, q: DashboardQueries, study: str | None,
                       cache: ScoreCache) -> dict[str, Any]:
    """The stored versions; with ``study``, the scores of the versions of its space."""
    records = store.predictors.list()
    context: dict[str, Any] = {"records": records, "studies": q.studies(), "study": None,
                               "scores": [], "figures": {}, "max_scored": MAX_SCORED}
    if study is None:
        return context
    info = require_study(q, study)
    results, n = q.results_for_scoring(info.id, MAX_SCORED)
    matching = [r for r in records if r.space_key == info.space_key]
    for i, record in enumerate(matching):
        key = (record.id, info.id, n)
        scored = cache.get(key)
        if scored is None:
            scored = _score(store, record, results)
            cache.put(key, scored)
        entry = {k: v for k, v in scored.items() if k != "figure"}
        entry["same_task"] = record.task_key in (None, info.task_key)
        entry["task_key"] = record.task_key
        if "figure" in scored:
            entry["figure_id"] = f"pred_{i}"
            context["figures"][f"pred_{i}"] = scored["figure"]
        context["scores"].append(entry)
    context.update(study=info, n_results=n, n_scored=len(results),
                   other=len(records) - len(matching))
    return context
