"""The commands that read a study's results: ``naslab studies``, ``naslab results``
(the best trials, the Pareto front, or one trial with its learning curve) and
``naslab export`` (the best trial, or any trial by number).

``studies`` and ``results`` print ``--format table`` (the default), ``csv`` or
``json`` (see :mod:`naslab.cli_common`). Column names of csv and json follow the
SQL views (``naslab_study_summary``, ``naslab_results``): ``trial_number``,
``objective_value``, ``arch_hash`` (all 64 hex digits), ``decisions`` (JSON).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from naslab.cli_common import (
    OutputFormat,
    Storage,
    check_format,
    compact_decisions,
    console,
    err_console,
    fmt,
    json_value,
    open_store,
    print_table,
    short_task,
    write_records,
)
from naslab.core.errors import ConfigError
from naslab.core.validation import check_int

__all__ = ["RESULT_COLUMNS", "STUDY_COLUMNS", "export", "print_front", "results", "studies"]

#: The columns of ``naslab studies --format csv|json``.
STUDY_COLUMNS = ("study", "space", "task_key", "searcher", "objective", "direction", "budget",
                 "n_trials", "n_complete", "n_stopped", "n_failed", "n_running",
                 "n_interrupted", "best_objective", "created_at")
#: The columns of ``naslab results --format csv|json`` (the best trials).
RESULT_COLUMNS = ("trial_number", "trial_id", "state", "objective_value", "val_accuracy",
                  "test_accuracy", "params", "flops", "latency_ms", "train_seconds",
                  "epochs_done", "reused_from", "arch_hash", "decisions", "metrics")


def studies(
    format: OutputFormat = "table",
    storage: Storage = None,
) -> None:
    """List the stored studies."""
    check_format(format)
    store = open_store(storage)
    try:
        rows = store.studies.summaries()
    finally:
        store.close()
    if format != "table":
        write_records(format, STUDY_COLUMNS, [
            (r.name, r.space, r.task_key, r.searcher, r.objective, r.direction, r.budget,
             r.n_complete + r.n_stopped + r.n_failed + r.n_running + r.n_interrupted,
             r.n_complete, r.n_stopped, r.n_failed, r.n_running, r.n_interrupted,
             r.best_objective, r.created_at) for r in rows])
        return
    table = Table(Column("study", no_wrap=True), "space", "task", "searcher", "budget",
                  "complete", "stopped", "failed", "best")
    for r in rows:
        table.add_row(fmt(r.name), fmt(r.space), fmt(short_task(r.task_key)), fmt(r.searcher),
                      str(r.budget), str(r.n_complete), str(r.n_stopped), str(r.n_failed),
                      fmt(r.best_objective))
    print_table(table)


# --------------------------------------------------------------------------- Pareto fronts


def _front(store: Any, study: str) -> tuple[list[Any], list[Any], list[Any]] | None:
    """(objectives, front trials best first by the first objective, complete trials),
    or None when the study has no stored front."""
    from naslab.fronts import trial_metrics
    from naslab.searchers.objectives import parse_objectives

    names, front = store.fronts.get(study)
    if not front:
        return None
    objectives = parse_objectives(names)
    first = objectives[0]
    front = sorted(front, key=lambda t: -first.sign * trial_metrics(t)[first.name])
    return objectives, front, store.trials.list(study, ["complete"])


def print_front(store: Any, study: str) -> bool:
    """Print the study's stored Pareto front and its hypervolume; False if none."""
    from naslab.fronts import front_hypervolume, trial_metrics

    found = _front(store, study)
    if found is None:
        return False
    objectives, front, trials = found
    table = Table(Column("trial", no_wrap=True),
                  *(Column(str(o), no_wrap=True) for o in objectives),
                  Column("test_acc", no_wrap=True), Column("hash", no_wrap=True),
                  Column("decisions", overflow="fold", ratio=1),
                  title=f"Pareto front of {escape(study)}: {len(front)} of {len(trials)} "
                  "complete trials")
    for t in front:
        m = trial_metrics(t)
        table.add_row(str(t.number), *(fmt(m.get(o.name)) for o in objectives),
                      fmt(m.get("test_accuracy")), t.arch_hash[:10],
                      fmt(compact_decisions(t.decisions)))
    print_table(table)
    hv = front_hypervolume(trials, objectives)
    console.print(f"hypervolume {hv:.4f} (objectives scaled to the range this study observed, "
                  "cost metrics on a log scale; reference point 1.1)", soft_wrap=True)
    return True


def _write_front(store: Any, study: str, format: str) -> bool:
    """The stored front as csv or json rows (one per trial); False if none."""
    from naslab.fronts import trial_metrics

    found = _front(store, study)
    if found is None:
        return False
    objectives, front, _ = found
    metrics = list(dict.fromkeys([*(o.name for o in objectives), "test_accuracy"]))
    columns = ["trial_number", "trial_id", *metrics, "arch_hash", "decisions"]
    write_records(format, columns, [
        (t.number, t.id, *(trial_metrics(t).get(name) for name in metrics), t.arch_hash,
         t.decisions) for t in front])
    return True


# --------------------------------------------------------------------------- one trial


def _trial_fields(store: Any, info: Any, t: Any) -> dict[str, Any]:
    """Everything stored about trial ``t``, by field name."""
    origin = store.studies.trial_origin(t.reused_from) if t.reused_from is not None else None
    return {
        "study": info.name, "trial_number": t.number, "trial_id": t.id, "state": t.state,
        "error": t.error, "objective": info.objective, "objective_value": t.objective_value,
        "metrics": t.metrics, "params": t.params, "flops": t.flops,
        "latency_ms": t.latency_ms, "train_seconds": t.train_seconds,
        "epochs_done": t.epochs_done, "fidelity": t.fidelity, "seed": t.seed,
        "arch_hash": t.arch_hash, "decisions": t.decisions, "worker": t.worker,
        "driver": t.driver, "started_at": t.started_at, "finished_at": t.finished_at,
        "reused_from": t.reused_from,
        "reused_from_study": origin[0] if origin else None,
        "reused_from_trial": origin[1] if origin else None,
    }


def _curve_rows(curves: dict[str, list[tuple[int, float]]]) -> tuple[list[str], list[list[Any]]]:
    """A learning curve as rows: ``["step", *metric names]`` and one row per step."""
    names = list(curves)
    by_step: dict[int, dict[str, float]] = {}
    for name, points in curves.items():
        for step, value in points:
            by_step.setdefault(step, {})[name] = value
    rows = [[step, *(by_step[step].get(n) for n in names)] for step in sorted(by_step)]
    return ["step", *names], rows


def _print_trial(fields: dict[str, Any], columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(Column("field", no_wrap=True), Column("value", overflow="fold"),
                  title=f"trial {fields['trial_number']} of {escape(fields['study'])}")
    for key, value in fields.items():
        if key == "metrics":
            for name, number in value.items():
                table.add_row(f"metric {fmt(name)}", fmt(number))
        elif key == "decisions":
            table.add_row(key, fmt(compact_decisions(value)))
        elif value is not None:
            table.add_row(key, fmt(value))
    print_table(table)
    if not rows:
        console.print("no learning curve (no per-epoch metrics stored)")
        return
    curve = Table(*(Column(fmt(c), no_wrap=True) for c in columns), title="learning curve")
    for row in rows:
        curve.add_row(*(fmt(v) if k else str(v) for k, v in enumerate(row)))
    print_table(curve)


def _show_trial(store: Any, study: str, number: int, format: str) -> None:
    """``naslab results --trial N``: one trial and its learning curve."""
    import json

    info = store.studies.require(study)
    trial = store.trials.get(store.studies.trial_id(study, number))
    if trial is None:
        raise ConfigError(f"trial {number} of study {study!r} is gone")
    fields = _trial_fields(store, info, trial)
    columns, rows = _curve_rows(store.trials.learning_curve(trial.id))
    if format == "json":
        curve = [dict(zip(columns, row)) for row in rows]
        sys.stdout.write(json.dumps(json_value({**fields, "learning_curve": curve}),
                                    allow_nan=False) + "\n")
    elif format == "csv":
        write_records("csv", columns, rows)
    else:
        _print_trial(fields, columns, rows)


# --------------------------------------------------------------------------- results


def _check_plot(plot: Path | None, force: bool) -> Path | None:
    """The --plot file (``.png`` added to a name without a suffix), checked before
    the store is opened: a new file (or one to replace with --force), never a link."""
    from naslab.core.paths import checked_destination

    if plot is None:
        return None
    plot = plot if plot.suffix or os.path.lexists(plot) else plot.with_suffix(".png")
    checked_destination(plot, kind="file", force=force)
    if not plot.suffix:
        raise ConfigError(f"--plot {str(plot)!r} needs a suffix naming the format, e.g. .png")
    return plot


#: The largest trial number (the column is a 32-bit integer).
MAX_TRIAL = 2**31 - 1


def _check_trial_options(trial: int | None, pareto: bool | None, plot: Path | None) -> None:
    if trial is None:
        return
    check_int("--trial", trial, minimum=0, maximum=MAX_TRIAL)
    if pareto or plot is not None:
        raise ConfigError("--trial shows one trial; it cannot be combined with --pareto or "
                          "--plot")


def _write_plot(store: Any, study: str, plot: Path, force: bool, format: str) -> None:
    from naslab.core.paths import atomic_file
    from naslab.fronts import plot_front

    with atomic_file(plot, force=force) as tmp:
        plot_front(store, study, tmp)
    (console if format == "table" else err_console).print(f"wrote {fmt(plot)}", soft_wrap=True)


def _print_best(rows: Sequence[Any], format: str) -> None:
    if format != "table":
        write_records(format, RESULT_COLUMNS, [
            (t.number, t.id, t.state, t.objective_value, t.metrics.get("val_accuracy"),
             t.metrics.get("test_accuracy"), t.params, t.flops, t.latency_ms,
             t.train_seconds, t.epochs_done, t.reused_from, t.arch_hash, t.decisions,
             t.metrics) for t in rows])
        return
    numbers = ("trial", "objective", "val_acc", "test_acc", "params", "flops", "latency ms",
               "reused", "hash")
    table = Table(*(Column(name, no_wrap=True) for name in numbers),
                  Column("decisions", overflow="fold", ratio=1))
    for t in rows:
        table.add_row(str(t.number), fmt(t.objective_value), fmt(t.metrics.get("val_accuracy")),
                      fmt(t.metrics.get("test_accuracy")), fmt(t.params), fmt(t.flops),
                      fmt(t.latency_ms), "yes" if t.reused_from else "", t.arch_hash[:10],
                      fmt(compact_decisions(t.decisions)))
    print_table(table)


def _print_results(store: Any, study: str, top: int, pareto: bool | None, format: str) -> None:
    info = store.studies.require(study)
    if pareto or (pareto is None and info.config.get("objectives")):
        shown = print_front(store, study) if format == "table" else _write_front(
            store, study, format)
        if not shown:
            raise ConfigError(f"study {study!r} has no stored Pareto front (it is "
                              "single-objective, or has not run yet)")
        return
    _print_best(store.trials.best(study, top), format)


def results(
    study: str = typer.Option(..., help="Study name."),
    top: int = typer.Option(10, help="How many of the best trials to list."),
    pareto: bool | None = typer.Option(
        None, "--pareto/--no-pareto",
        help="List the stored Pareto front (default for multi-objective studies)."),
    plot: Path | None = typer.Option(
        None, help="Multi-objective studies: write a scatter of the trials with the "
        "Pareto front (PNG) here."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --plot file."),
    trial: Annotated[int | None, typer.Option(
        "--trial", help="Show trial N (by number): state, error, metrics, costs, decisions, "
        "hash, worker, timings, reuse, and its learning curve (csv: the curve, one row "
        "per epoch; json: one object with the curve).")] = None,
    format: OutputFormat = "table",
    storage: Storage = None,
) -> None:
    """The best trials of a study, its Pareto front, or one trial."""
    check_format(format)
    _check_trial_options(trial, pareto, plot)
    plot = _check_plot(plot, force)
    if top < 1:
        raise ConfigError(f"--top must be >= 1, got {top}")
    store = open_store(storage)
    try:
        if trial is not None:
            _show_trial(store, study, trial, format)
            return
        if plot is not None:
            info = store.studies.require(study)
            if not info.config.get("objectives"):
                raise ConfigError(f"--plot draws Pareto fronts; study {study!r} has one "
                                  "objective")
            _write_plot(store, study, plot, force, format)
        _print_results(store, study, top, pareto, format)
    finally:
        store.close()


def export(
    study: str = typer.Option(..., help="Study name."),
    trial: Annotated[int | None, typer.Option(
        "--trial", help="Export trial N (by number; complete or stopped early) instead of "
        "the best (default folder: naslab-exports/STUDY-trialN).")] = None,
    out: Path | None = typer.Option(
        None, help="Folder to write (default: naslab-exports/STUDY for the best trial)."),
    force: bool = typer.Option(
        False, "--force", help="Write into an existing folder, replacing the export's files."),
    storage: Storage = None,
) -> None:
    """Export a study's best architecture (or trial N): graph, decisions, seed and
    trained weights."""
    from naslab.core.paths import checked_destination
    from naslab.export import export_trial

    if trial is not None:
        check_int("--trial", trial, minimum=0, maximum=MAX_TRIAL)
    if out is not None:  # refused before the store is opened
        checked_destination(out, kind="folder", force=force)
    store = open_store(storage)
    try:
        folder = export_trial(store, study, trial, out, force=force)
    finally:
        store.close()
    files = sorted(p.name for p in folder.iterdir()
                   if p.name in ("architecture.json", "trial.json", "weights.safetensors"))
    note = "" if "weights.safetensors" in files else " (no trained weights: a table benchmark)"
    console.print(f"exported to {fmt(folder)}: " + ", ".join(fmt(f) for f in files) + note,
                  soft_wrap=True)
