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

#: A small template (plotly's own are large, and copied into every figure).
TEMPLATE: dict[str, Any] = {"layout": {
    "plot_bgcolor": "white", "paper_bgcolor": "white", "hovermode": "closest",
    "font": {"color": "#2a3f5f"}, "title": {"x": 0.05},
    "colorway": ["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3",
                 "#FF6692", "#B6E880", "#FF97FF", "#FECB52"],
    "xaxis": {"gridcolor": "#EBF0F8", "zerolinecolor": "#EBF0F8", "automargin": True},
    "yaxis": {"gridcolor": "#EBF0F8", "zerolinecolor": "#EBF0F8", "automargin": True}}}

_LAYOUT: dict[str, Any] = {"margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "height": 360,
                           "template": TEMPLATE}


#: Hover text of a point whose customdata is its trial number.
_HOVER = "trial %{customdata}<br>x %{x}<br>y %{y}<extra></extra>"


def _figure(traces: Sequence[Any], **layout: Any) -> dict[str, Any]:
    import plotly.graph_objects as go

    fig = go.Figure(data=list(traces), layout={**_LAYOUT, **layout})
    return fig.to_plotly_json()


def _array(values: Sequence[Any]) -> Any:
    """Numbers as a float array (None as NaN): plotly.py checks an array at once, not
    value by value, and writes it compactly."""
    import numpy as np

    return np.array([np.nan if v is None else v for v in values], dtype=float)


def best_so_far(progress: Sequence[tuple[int, float]], maximize: bool
                ) -> list[tuple[int, float]]:
    """The points where the best value so far improves (and the last point), from
    ``(number, value)`` in trial order."""
    out: list[tuple[int, float]] = []
    best: float | None = None
    for number, value in progress:
        if best is None or (value > best if maximize else value < best):
            best = value
            out.append((number, value))
    if progress and out and out[-1][0] != progress[-1][0]:
        out.append((progress[-1][0], out[-1][1]))
    return out


def anytime_figures(steps: Sequence[tuple[int, float]], objective: str,
                    sample: Sequence[tuple[int, float]] = (),
                    start: datetime | None = None,
                    finished: Mapping[int, datetime] | None = None,
                    ) -> dict[str, dict[str, Any]]:
    """The best objective so far (``steps``: :func:`best_so_far`) against trials, and
    against wall time (seconds from ``start``, the study's first finish, to each
    step's ``finished`` time); ``sample``: a bounded set of ``(number, value)`` points
    drawn under the trials curve."""
    import plotly.graph_objects as go

    traces = []
    if sample:
        traces.append(go.Scatter(x=_array([n for n, _ in sample]),
                                 y=_array([v for _, v in sample]), mode="markers",
                                 name="trials", marker={"size": 4, "color": "#bbb"}))
    traces.append(go.Scatter(x=_array([n for n, _ in steps]), y=_array([v for _, v in steps]),
                             mode="lines+markers", line_shape="hv", name="best so far"))
    by_trials = _figure(traces, title="best " + objective + " against trials",
                        xaxis_title="trial", yaxis_title=objective)
    finished = finished or {}
    timed = [(n, v) for n, v in steps if n in finished and start is not None]
    by_time = _figure([go.Scatter(
        x=_array([(finished[n] - start).total_seconds() for n, _ in timed]),  # type: ignore[operator]
        y=_array([v for _, v in timed]), mode="lines+markers", line_shape="hv",
        name="best so far", text=[f"trial {n}" for n, _ in timed])],
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
                x=_array([getattr(p, attr) for p in kept]),
                y=_array([p.objective_value for p in kept]),
                mode="markers", name=title, visible=True if not traces else "legendonly",
                customdata=_array([p.number for p in kept]), hovertemplate=_HOVER,
                marker={"size": 5}))
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
        return _array([v.get(x_name) for v in m]), _array([v.get(y_name) for v in m])

    ax, ay = xy(points)
    fx, fy = xy(sorted(front, key=lambda p: values(p).get(x_name, 0.0)))
    return _figure([
        go.Scatter(x=ax, y=ay, mode="markers", name="trials", marker={"color": "#bbb"},
                   customdata=_array([p.number for p in points]), hovertemplate=_HOVER),
        go.Scatter(x=fx, y=fy, mode="lines+markers", name="Pareto front", line_shape="hv",
                   marker={"color": "#d62728", "size": 8}, hovertemplate=_HOVER,
                   customdata=_array([p.number for p in front]))],
        title="Pareto front", xaxis_title=x_name, yaxis_title=y_name)


def curves_figure(curves: Mapping[int, Mapping[str, Sequence[tuple[int, float]]]],
                  metric: str) -> dict[str, Any] | None:
    """Learning curves (``metric`` per epoch) of the given trials, or None."""
    import plotly.graph_objects as go

    traces = [go.Scatter(x=_array([s for s, _ in c[metric]]), y=_array([v for _, v in c[metric]]),
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
        go.Scatter(x=_array(actual), y=_array(predicted), mode="markers", name="trials",
                   customdata=_array(numbers), hovertemplate=_HOVER, marker={"size": 5}),
        go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                   line={"dash": "dot", "color": "#888"})],
        title=title, xaxis_title="actual", yaxis_title="predicted")
