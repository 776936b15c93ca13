"""What each dashboard page shows, gathered from the store into template contexts
(plain values and figure dicts); the web app and the static report both use them."""

from __future__ import annotations

from typing import Any

from naslab.core.errors import NaslabError
from naslab.dashboard import figures
from naslab.dashboard.graph_figure import architecture_figure
from naslab.dashboard.params import TableParams
from naslab.db.dashboard_queries import DashboardQueries, StudyOverview
from naslab.db.records import StudyInfo

__all__ = [
    "MAX_POINTS",
    "NotFound",
    "live_figures",
    "require_study",
    "studies_context",
    "study_context",
    "study_figures",
    "trial_context",
]

#: The most points a scatter draws (evenly spaced by trial number), so a page stays
#: small whatever the study's size.
MAX_POINTS = 2000
#: How many of the best trials' learning curves a study page draws by default.
DEFAULT_CURVES = 5


class NotFound(NaslabError):
    """No such study or trial (a 404 page)."""


def require_study(q: DashboardQueries, name: str) -> StudyInfo:
    """The study called ``name``; NotFound if there is none."""
    info = q.study(name)
    if info is None:
        raise NotFound(f"there is no study named {name!r}")
    return info


def studies_context(q: DashboardQueries) -> dict[str, Any]:
    """The studies page: every study's overview."""
    return {"studies": q.studies()}


def _overview(q: DashboardQueries, info: StudyInfo) -> StudyOverview:
    found = q.overview(info.name)
    if found is None:  # deleted since it was read
        raise NotFound(f"there is no study named {info.name!r}")
    return found


def live_figures(q: DashboardQueries, info: StudyInfo, sample: list[Any] | None = None
                 ) -> dict[str, dict[str, Any]]:
    """The figures that change while a search runs: the anytime curves (``sample``:
    the study's points, read here if not given)."""
    if sample is None:
        sample, _ = q.points(info.id, limit=MAX_POINTS)
    steps = figures.best_so_far(q.progress(info.id), info.direction != "minimize")
    start, finished = q.finish_times(info.id, [n for n, _ in steps])
    return figures.anytime_figures(
        steps, info.objective,
        [(p.number, p.objective_value) for p in sample if p.objective_value is not None],
        start, finished)


def _front(q: DashboardQueries, info: StudyInfo, sample: list[Any]) -> dict[str, Any]:
    """The Pareto front of a multi-objective study, its hypervolume and figure."""
    from naslab.fronts import front_hypervolume, pareto_trials, trial_metrics
    from naslab.searchers.objectives import parse_objectives

    objectives = parse_objectives(list(info.config["objectives"]))
    points, _ = q.points(info.id, metrics=[o.name for o in objectives])
    front = pareto_trials(points, objectives)  # type: ignore[arg-type]
    hv = front_hypervolume(points, objectives)  # type: ignore[arg-type]
    names = [o.name for o in objectives]
    sampled = {s.number for s in sample}
    shown = [p for p in points if p.number in sampled]
    return {"objectives": [str(o) for o in objectives], "hypervolume": hv,
            "trials": sorted(front, key=lambda p: p.number),
            "metrics": {p.number: trial_metrics(p) for p in front},  # type: ignore[arg-type]
            "figure": figures.pareto_figure(shown, front, names, trial_metrics)}


def study_figures(q: DashboardQueries, info: StudyInfo, curves: list[int] | None = None
                  ) -> dict[str, Any]:
    """The study page's figures and Pareto front (the costly part: the web page fetches
    it after its first paint, the report embeds it)."""
    sample, n_complete = q.points(info.id, limit=MAX_POINTS)
    figs: dict[str, dict[str, Any] | None] = dict(live_figures(q, info, sample))
    figs["costs"] = figures.cost_figure(sample, info.objective)
    numbers = curves or q.best_numbers(info.id, info.direction, DEFAULT_CURVES)
    curve_data = q.curves(info.id, numbers)
    metric = info.objective
    if not any(metric in c for c in curve_data.values()):
        metric = next((m for c in curve_data.values() for m in c), metric)
    figs["curves"] = figures.curves_figure(curve_data, metric)
    front = _front(q, info, sample) if info.config.get("objectives") else None
    if front is not None:
        figs["pareto"] = front["figure"]
    return {"figures": {k: v for k, v in figs.items() if v is not None}, "front": front,
            "curve_numbers": numbers, "n_complete": n_complete, "n_shown": len(sample),
            "max_points": MAX_POINTS}


def study_context(q: DashboardQueries, name: str, table: TableParams,
                  curves: list[int] | None = None, *, with_figures: bool = False
                  ) -> dict[str, Any]:
    """The study page: overview and one page of trials; ``with_figures``: also
    :func:`study_figures` (else the page fetches them)."""
    info = require_study(q, name)
    context = {
        "info": info, "overview": _overview(q, info), "table": table, "curves": curves or [],
        "multi": bool(info.config.get("objectives")),
        "page": q.trial_page(info.id, page=table.page, per_page=table.per_page,
                             sort=table.sort, descending=table.descending,
                             state=table.state),
        "figures": {}, "front": None,
    }
    if with_figures:
        context.update(study_figures(q, info, curves))
    return context


def trial_context(q: DashboardQueries, name: str, number: int) -> dict[str, Any]:
    """The trial page: architecture drawing, decisions, metrics, timings, reuse."""
    info = require_study(q, name)
    trial = q.trial(info.id, number)
    if trial is None:
        raise NotFound(f"study {name!r} has no trial {number}")
    curves = q.curves(info.id, [number]).get(number, {})
    reused = q.locate(trial.reused_from) if trial.reused_from is not None else None
    figs: dict[str, Any] = {}
    try:
        figs["graph"] = architecture_figure(trial.graph, f"architecture of trial {number}")
    except (NaslabError, KeyError, TypeError, ValueError) as exc:
        graph_error: str | None = f"the stored graph cannot be drawn: {exc}"
    else:
        graph_error = None
    for metric in curves:
        figs["curve_" + str(len(figs))] = figures.curves_figure({number: curves}, metric)
    return {"info": info, "trial": trial, "curves": curves, "reused": reused,
            "figures": figs, "graph_error": graph_error}
