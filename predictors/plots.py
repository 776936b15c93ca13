"""Figures of predictor quality: predicted vs actual, and learning curves.

Figures are drawn with matplotlib's non-interactive Agg canvas on a standalone
:class:`matplotlib.figure.Figure` (no pyplot, no global state, no display needed)
and written to a file, PNG unless the path names another format matplotlib writes
(``.pdf``, ``.svg``, ...). matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from naslab.core.errors import ConfigError
from naslab.predictors.base import Prediction
from naslab.predictors.evaluation import check_summary
from naslab.predictors.metrics import check_vectors, kendall_tau, spearman

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["new_figure", "plot_learning_curve", "plot_predicted_vs_actual", "save_figure"]


def new_figure(width: float = 6.0, height: float = 4.5) -> Figure:
    """A standalone matplotlib figure (``width`` x ``height`` inches, 120 dpi,
    constrained layout) on an Agg canvas: no pyplot, no global state, no display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` in the format its suffix names (``.png`` added when it
    has none), creating the folder; returns the path written.

    Raises:
        ConfigError: matplotlib cannot write the suffix's format.
    """
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    fmt = path.suffix[1:].lower()
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ConfigError(
            f"cannot write a figure as {path.suffix!r}; use .png or one of "
            f"{', '.join('.' + f for f in sorted(supported))}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=fmt)
    return path


def plot_predicted_vs_actual(
    y_true: Any, prediction: Prediction, path: str | Path, title: str | None = None
) -> Path:
    """Scatter of predicted against actual values, with 1-sigma error bars.

    The x axis is the actual value, the y axis the predicted mean; thin,
    semi-transparent vertical bars show ``±1 std`` (omitted when every std is 0);
    the dashed diagonal is a perfect prediction. Kendall's tau and Spearman's rho
    are given in the title, under ``title`` if one is given.

    Returns:
        The path written (``.png`` added when ``path`` has no suffix).

    Raises:
        ConfigError: ``prediction`` is not a :class:`Prediction`, lengths differ,
            fewer than 2 values, non-finite values, or an unknown file suffix.
    """
    if not isinstance(prediction, Prediction):
        raise ConfigError(
            f"prediction must be a Prediction (from predictor.predict), got "
            f"{type(prediction).__name__}"
        )
    t, m, s = check_vectors(2, y_true=y_true, mean=prediction.mean, std=prediction.std)
    tau, rho = kendall_tau(t, m), spearman(t, m)

    fig = new_figure(5.5, 5.0)
    ax = fig.add_subplot()
    ax.errorbar(
        t, m, yerr=s if np.any(s > 0) else None, fmt="o", markersize=3,
        color="tab:blue", ecolor="tab:blue", elinewidth=0.6, alpha=0.5,
        label="prediction ±1σ" if np.any(s > 0) else "prediction",
    )
    low = float(min(t.min(), m.min()))
    high = float(max(t.max(), m.max()))
    pad = 0.02 * (high - low) if high > low else 0.5
    ax.plot([low - pad, high + pad], [low - pad, high + pad], "--", color="0.4", linewidth=1,
            label="perfect prediction")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    stats = f"Kendall τ = {tau:.3f}, Spearman ρ = {rho:.3f} (n = {t.shape[0]})"
    ax.set_title(f"{title}\n{stats}" if title else stats, fontsize=10)
    ax.grid(True, linewidth=0.3, alpha=0.5)
    ax.legend(loc="best", fontsize=8)
    return save_figure(fig, path)


def plot_learning_curve(
    summary: Sequence[Mapping[str, Any]],
    path: str | Path,
    metric: str = "kendall_tau",
    title: str | None = None,
) -> Path:
    """A metric against training-set size, one line per predictor, ±1 std shaded.

    ``summary`` is the output of :func:`~naslab.predictors.evaluation.summarise`
    (``<metric>_mean`` and ``<metric>_std`` per predictor and size). The x axis is
    logarithmic with a tick at each size; the shaded band is ``mean ± std`` over
    splits. A summary without ``predictor`` draws a single line.

    Returns:
        The path written (``.png`` added when ``path`` has no suffix).

    Raises:
        ConfigError: the summary is empty, has no ``size``, or lacks ``metric``; or
            an unknown file suffix.
    """
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    summary = list(summary)
    check_summary(summary, metric)
    series: dict[str, list[tuple[float, float, float]]] = {}
    for entry in summary:
        if f"{metric}_mean" not in entry:
            continue
        label = str(entry.get("predictor", metric))
        std = float(entry.get(f"{metric}_std", 0.0))
        series.setdefault(label, []).append(
            (float(entry["size"]), float(entry[f"{metric}_mean"]), std)
        )

    fig = new_figure()
    ax = fig.add_subplot()
    for label, points in series.items():
        x, mean, std = (np.array(v) for v in zip(*sorted(points)))
        (line,) = ax.plot(x, mean, marker="o", markersize=4, linewidth=1.5, label=label)
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2,
                        linewidth=0)
    sizes = sorted({float(e["size"]) for e in summary})
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    if len(sizes) == 1:
        ax.set_xlim(sizes[0] / 1.5, sizes[0] * 1.5)
    ax.set_xlabel("training-set size")
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} vs training-set size (mean ± std over splits)",
                 fontsize=10)
    ax.grid(True, which="major", linewidth=0.3, alpha=0.5)
    ax.legend(loc="best", fontsize=8)
    return save_figure(fig, path)
