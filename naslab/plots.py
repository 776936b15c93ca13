"""Figures of any stored study: learning curves and the anytime curve.

- :func:`plot_learning_curves`: the per-epoch values of one metric (the store's
  ``naslab_metrics`` rows with a step) of chosen trials, one line per trial;
- :func:`plot_anytime`: the best objective found so far against the number of
  finished trials and against wall time since the study's first trial started
  (for a multi-objective study: the hypervolume of the front so far, objectives
  scaled to the range the study observed). It draws with ``naslab bench``'s code.

Figures are written with matplotlib's Agg canvas (no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from naslab.core.errors import ConfigError

__all__ = ["AnytimeCurve", "anytime_curve", "check_figure_format", "choose_curves",
           "new_figure_formats", "plain", "plot_anytime",
           "plot_learning_curves"]

#: States of the trials that count as queries of the anytime curve (finished ones).
FINISHED = ("complete", "failed", "stopped")


def _no_curves(store: Any, study: str, metric: str) -> ConfigError:
    """The error for a study without per-epoch values of ``metric``."""
    from naslab.workers.evaluator import TABLE_BENCHMARKS

    info = store.studies.require(study)
    if info.space in TABLE_BENCHMARKS:
        return ConfigError(
            f"study {study!r} has no per-epoch values of {metric!r}: its results come from "
            f"the {info.space} table, which stores no learning curve of it; plot its "
            "anytime curve with naslab plot anytime")
    names: set[str] = set()
    for t in store.trials.list(study, ["complete", "stopped"])[:20]:
        names.update(store.trials.learning_curve(t.id))
    if names:
        return ConfigError(f"study {study!r} has no per-epoch values of {metric!r}; its "
                           f"trials report: {', '.join(sorted(names))} (choose with --metric)")
    return ConfigError(f"study {study!r} has no per-epoch values yet (no finished trial "
                       "reported any); plot its anytime curve with naslab plot anytime")


def choose_curves(store: Any, study: str, metric: str, trials: Sequence[int] | None = None,
                  top: int | None = None) -> list[tuple[int, dict[int, float]]]:
    """The learning curves of ``metric`` to draw: of the trial numbers ``trials``, or
    of the ``top`` best complete trials (default 10), as ``[(number, {step: value})]``.

    Raises:
        ConfigError: a trial number the study does not have, or none of the chosen
            trials with per-epoch values of ``metric`` (the message says why: a
            table-benchmark study, another metric, no finished trial yet).
    """
    info = store.studies.require(study)
    if trials is not None and top is not None:
        raise ConfigError("give --trials or --top, not both")
    if trials is None:
        chosen = [t.number for t in store.trials.best(info.name, top or 10)]
    else:
        numbers = {t.number for t in store.trials.list(info.name)}
        missing = [n for n in trials if n not in numbers]
        if missing:
            shown = f"{min(numbers)}..{max(numbers)}" if numbers else "none yet"
            raise ConfigError(f"study {study!r} has no trial {missing[0]} (its trials: "
                              f"{shown})")
        chosen = list(dict.fromkeys(trials))
    curves = dict(store.trials.study_curves(info.name, metric))
    picked = [(n, curves[n]) for n in chosen if curves.get(n)]
    if not picked:
        if not curves:
            raise _no_curves(store, info.name, metric)
        raise ConfigError(f"none of the chosen trials of study {study!r} has per-epoch values "
                          f"of {metric!r}; trials that have: "
                          f"{', '.join(str(n) for n in sorted(curves)[:20])}"
                          + (", ..." if len(curves) > 20 else ""))
    return picked


def check_figure_format(path: str | Path) -> Path:
    """``path`` if matplotlib can write the format its suffix names (``.png``,
    ``.svg``, ``.pdf``, ...), else ConfigError listing the formats."""
    path = Path(path)
    supported = new_figure_formats()
    if path.suffix[1:].lower() not in supported:
        raise ConfigError(f"cannot write a figure as {path.suffix!r} ({str(path)!r}); use "
                          f".png or one of {', '.join('.' + f for f in sorted(supported))}")
    return path


def new_figure_formats() -> list[str]:
    """The file formats (suffixes without the dot) matplotlib's Agg canvas writes."""
    from naslab.predictors.plots import new_figure

    return list(new_figure(1, 1).canvas.get_supported_filetypes())


def plain(text: str) -> str:
    """``text`` shown as it is by matplotlib (a ``$`` would start math mode)."""
    return str(text).replace("$", r"\$")


def plot_learning_curves(curves: Sequence[tuple[int, dict[int, float]]], metric: str,
                         title: str, path: str | Path) -> Path:
    """One line per trial: ``metric`` against the epoch; written to ``path``."""
    from naslab.predictors.plots import new_figure, save_figure

    fig = new_figure(6.4, 4.4)
    ax = fig.subplots()
    for number, steps in curves:
        xs = sorted(steps)
        ax.plot(xs, [steps[x] for x in xs], marker="o" if len(xs) < 30 else None,
                markersize=3, linewidth=1.2, label=f"trial {number}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(plain(metric))
    ax.set_title(plain(title), fontsize=10)
    ax.grid(True, alpha=0.3)
    if len(curves) <= 20:
        ax.legend(fontsize=7, ncols=2 if len(curves) > 10 else 1)
    return save_figure(fig, path)


@dataclass(frozen=True)
class AnytimeCurve:
    """A study's best-so-far curves: after each finished trial in trial-number order,
    and after each trial's end in wall-time order."""

    label: str  # what the curves measure
    best: np.ndarray  # after each finished trial, by trial number
    seconds: np.ndarray  # wall seconds from the study's first start to each end, sorted
    best_by_time: np.ndarray  # after each of those ends
    note: str = ""  # how to read the values, shown under the title


def anytime_curve(store: Any, study: str) -> AnytimeCurve:
    """The best objective so far of ``study`` (its direction respected; failed and
    stopped trials count as queries that found nothing), or the hypervolume so far
    for a multi-objective study."""
    info = store.studies.require(study)
    trials = store.trials.list(info.name, list(FINISHED))
    if not any(t.state == "complete" and t.objective_value is not None for t in trials):
        raise ConfigError(f"study {study!r} has no complete trial yet ({len(trials)} "
                          "failed or stopped); nothing to plot")
    first = min(t.started_at for t in store.trials.list(info.name))
    ends = np.array([((t.finished_at or t.started_at) - first).total_seconds()
                     for t in trials])
    order = np.argsort(ends, kind="stable")
    objectives = info.config.get("objectives")
    if objectives:
        curve = _hypervolume_curve(trials, objectives)
        return AnytimeCurve("hypervolume so far", curve(trials), ends[order],
                            curve([trials[i] for i in order]),
                            f"{', '.join(objectives)}: scaled to the range the study "
                            "observed, reference point 1.1")
    from naslab.bench import best_so_far

    sign = -1.0 if info.direction == "minimize" else 1.0
    values = np.array([sign * t.objective_value if t.state == "complete"
                       and t.objective_value is not None else np.nan for t in trials])
    return AnytimeCurve(f"best {info.objective} so far", sign * best_so_far(values, values)[0],
                        ends[order], sign * best_so_far(values[order], values[order])[0])


def _hypervolume_curve(trials: Sequence[Any], names: Sequence[str]) -> Any:
    """A function giving the hypervolume so far along a sequence of these trials,
    objectives scaled to the range all of them span."""
    from naslab.bench import hypervolume_curve
    from naslab.fronts import objective_matrix, trial_metrics
    from naslab.searchers.objectives import objective_values, parse_objectives

    objectives = parse_objectives(list(names))
    _, values = objective_matrix(trials, objectives)

    def curve(ordered: Sequence[Any]) -> np.ndarray:
        if not len(values):
            return np.zeros(len(ordered))
        rows = []
        for t in ordered:
            v = objective_values(objectives, trial_metrics(t)) if t.state == "complete" else None
            rows.append(v if v is not None else (np.nan,) * len(objectives))
        return hypervolume_curve(np.array(rows, dtype=float), list(names),
                                 values.min(axis=0), values.max(axis=0))

    return curve


def plot_anytime(curve: AnytimeCurve, title: str, path: str | Path) -> Path:
    """Two panels: the curve against finished trials and against wall time."""
    from naslab.bench import plot_band
    from naslab.predictors.plots import new_figure, save_figure

    fig = new_figure(9.0, 3.6)
    by_trial, by_time = fig.subplots(1, 2)
    title = plain(title)
    plot_band(by_trial, np.arange(1, len(curve.best) + 1), curve.best, title)
    unit, scale = _time_unit(float(curve.seconds[-1]))
    plot_band(by_time, curve.seconds / scale, curve.best_by_time, title)
    by_trial.set_xlabel("finished trials")
    by_time.set_xlabel(f"wall time since the first trial started ({unit})")
    for ax in (by_trial, by_time):
        ax.set_ylabel(plain(curve.label), fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
    fig.suptitle(title + (f"\n{plain(curve.note)}" if curve.note else ""), fontsize=10)
    return save_figure(fig, path)


def _time_unit(longest: float) -> tuple[str, float]:
    """The unit to show ``longest`` seconds in: (name, seconds per unit)."""
    if longest < 180:
        return "seconds", 1.0
    if longest < 3 * 3600:
        return "minutes", 60.0
    return "hours", 3600.0
