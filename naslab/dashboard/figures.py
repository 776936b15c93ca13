"""The study page's Plotly figures, built with plotly.py and handed to the page as
figure dicts (data and layout); the browser draws them with plotly.js.

Each builder takes plain values (read through :mod:`naslab.db.dashboard_queries`)
and returns a figure dict, or None where there is nothing to draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = [
    "COST_AXES",
    "anytime_figures",
    "best_so_far",
    "cost_figure",
    "curves_figure",
    "pareto_figure",
    "predictor_figure",
]

#: Cost columns drawn against the objective: attribute -> axis title.
COST_AXES: dict[str, str] = {"params": "parameters", "flops": "FLOPs",
                             "latency_ms": "latency (ms)"}

_LAYOUT: dict[str, Any] = {"margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "height": 360,
                           "template": "plotly_white"}


def _figure(traces: Sequence[Any], **layout: Any) -> dict[str, Any]:
    import plotly.graph_objects as go

    fig = go.Figure(data=list(traces))
    fig.update_layout(**{**_LAYOUT, **layout})
    return fig.to_plotly_json()


def best_so_far(progress: Sequence[tuple[int, float, datetime | None]], maximize: bool
                ) -> list[tuple[int, float, datetime | None]]:
    """The points where the best value so far improves (and the last point), from
    ``(number, value, finished at)`` in trial order."""
    out: list[tuple[int, float, datetime | None]] = []
    best: float | None = None
    for number, value, finished in progress:
        if best is None or (value > best if maximize else value < best):
            best = value
            out.append((number, value, finished))
    if progress and out and out[-1][0] != progress[-1][0]:
        out.append((progress[-1][0], out[-1][1], progress[-1][2]))
    return out


def anytime_figures(progress: Sequence[tuple[int, float, datetime | None]],
                    objective: str, maximize: bool, sample: Sequence[tuple[int, float]] = ()
                    ) -> dict[str, dict[str, Any]]:
    """The best objective so far against trials and against wall time (seconds since
    the first finish); ``sample``: a bounded set of ``(number, value)`` points drawn
    under the trials curve."""
    import plotly.graph_objects as go

    steps = best_so_far(progress, maximize)
    traces = []
    if sample:
        traces.append(go.Scatter(x=[n for n, _ in sample], y=[v for _, v in sample],
                                 mode="markers", name="trials",
                                 marker={"size": 4, "color": "#bbb"}))
    traces.append(go.Scatter(x=[n for n, _, _ in steps], y=[v for _, v, _ in steps],
                             mode="lines+markers", line_shape="hv", name="best so far"))
    by_trials = _figure(traces, title="best " + objective + " against trials",
                        xaxis_title="trial", yaxis_title=objective)
    times = [f for _, _, f in progress if f is not None]
    start = min(times) if times else None
    timed = [(n, v, f) for n, v, f in steps if f is not None]
    by_time = _figure([go.Scatter(
        x=[(f - start).total_seconds() for _, _, f in timed] if start else [],
        y=[v for _, v, _ in timed], mode="lines+markers", line_shape="hv",
        name="best so far", text=[f"trial {n}" for n, _, _ in timed])],
        title="best " + objective + " against wall time", xaxis_title="seconds",
        yaxis_title=objective)
    return {"anytime_trials": by_trials, "anytime_time": by_time}


def cost_figure(points: Sequence[Any], objective: str) -> dict[str, Any] | None:
    """Parameters, FLOPs and latency against the objective: one trace per cost that
    some point has (the others hidden until chosen in the legend), or None."""
    import plotly.graph_objects as go

    traces = []
    for attr, title in COST_AXES.items():
        kept = [p for p in points if getattr(p, attr) is not None and p.objective_value is not None]
        if kept:
            traces.append(go.Scatter(
                x=[getattr(p, attr) for p in kept], y=[p.objective_value for p in kept],
                mode="markers", name=title, visible=True if not traces else "legendonly",
                text=[f"trial {p.number}" for p in kept], marker={"size": 5}))
    if not traces:
        return None
    return _figure(traces, title="cost against " + objective,
                   xaxis={"type": "log", "title": "cost (parameters / FLOPs / ms)"},
                   yaxis_title=objective)


def pareto_figure(points: Sequence[Any], front: Sequence[Any], names: Sequence[str],
                  values: Any) -> dict[str, Any]:
    """The complete trials and the Pareto front on the first two objectives;
    ``values(point) -> dict`` gives a point's metrics."""
    import plotly.graph_objects as go

    x_name, y_name = names[0], names[1] if len(names) > 1 else names[0]

    def xy(group: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        m = [values(p) for p in group]
        return [v.get(x_name) for v in m], [v.get(y_name) for v in m]

    ax, ay = xy(points)
    fx, fy = xy(sorted(front, key=lambda p: values(p).get(x_name, 0.0)))
    return _figure([
        go.Scatter(x=ax, y=ay, mode="markers", name="trials", marker={"color": "#bbb"},
                   text=[f"trial {p.number}" for p in points]),
        go.Scatter(x=fx, y=fy, mode="lines+markers", name="Pareto front", line_shape="hv",
                   marker={"color": "#d62728", "size": 8},
                   text=[f"trial {p.number}" for p in front])],
        title="Pareto front", xaxis_title=x_name, yaxis_title=y_name)


def curves_figure(curves: Mapping[int, Mapping[str, Sequence[tuple[int, float]]]],
                  metric: str) -> dict[str, Any] | None:
    """Learning curves (``metric`` per epoch) of the given trials, or None."""
    import plotly.graph_objects as go

    traces = [go.Scatter(x=[s for s, _ in c[metric]], y=[v for _, v in c[metric]],
                         mode="lines+markers", name=f"trial {number}")
              for number, c in curves.items() if metric in c]
    if not traces:
        return None
    return _figure(traces, title=f"learning curves ({metric})", xaxis_title="epoch",
                   yaxis_title=metric)


def predictor_figure(actual: Sequence[float], predicted: Sequence[float],
                     numbers: Sequence[int], title: str) -> dict[str, Any]:
    """Predicted against actual values, with the diagonal."""
    import plotly.graph_objects as go

    lo = min([*actual, *predicted], default=0.0)
    hi = max([*actual, *predicted], default=1.0)
    return _figure([
        go.Scatter(x=list(actual), y=list(predicted), mode="markers", name="trials",
                   text=[f"trial {n}" for n in numbers], marker={"size": 5}),
        go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                   line={"dash": "dot", "color": "#888"})],
        title=title, xaxis_title="actual", yaxis_title="predicted")
