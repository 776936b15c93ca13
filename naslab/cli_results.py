"""The commands that read a study's results: ``naslab studies``, ``naslab results``
and ``naslab export``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from naslab.cli_common import (
    Storage,
    compact_decisions,
    console,
    fmt,
    open_store,
    short_task,
)
from naslab.core.errors import ConfigError

__all__ = ["export", "print_front", "results", "studies"]


def studies(
    storage: Storage = None,
) -> None:
    """List the stored studies."""
    store = open_store(storage)
    try:
        rows = store.studies.summaries()
    finally:
        store.close()
    table = Table(Column("study", no_wrap=True), "space", "task", "searcher", "budget",
                  "complete", "stopped", "failed", "best")
    for r in rows:
        table.add_row(fmt(r.name), fmt(r.space), fmt(short_task(r.task_key)), fmt(r.searcher),
                      str(r.budget), str(r.n_complete), str(r.n_stopped), str(r.n_failed),
                      fmt(r.best_objective))
    console.print(table)


def print_front(store: Any, study: str) -> bool:
    """Print the study's stored Pareto front and its hypervolume; False if none."""
    from naslab.fronts import front_hypervolume, trial_metrics
    from naslab.searchers.objectives import parse_objectives

    names, front = store.fronts.get(study)
    if not front:
        return False
    objectives = parse_objectives(names)
    trials = store.trials.list(study, ["complete"])
    table = Table(Column("trial", no_wrap=True),
                  *(Column(str(o), no_wrap=True) for o in objectives),
                  Column("test_acc", no_wrap=True), Column("hash", no_wrap=True),
                  Column("decisions", overflow="fold", ratio=1),
                  title=f"Pareto front of {escape(study)}: {len(front)} of {len(trials)} "
                  "complete trials")
    first = objectives[0]
    for t in sorted(front, key=lambda t: -first.sign * trial_metrics(t)[first.name]):
        m = trial_metrics(t)
        table.add_row(str(t.number), *(fmt(m.get(o.name)) for o in objectives),
                      fmt(m.get("test_accuracy")), t.arch_hash[:10],
                      fmt(compact_decisions(t.decisions)))
    console.print(table)
    hv = front_hypervolume(trials, objectives)
    console.print(f"hypervolume {hv:.4f} (objectives scaled to the range this study observed, "
                  "cost metrics on a log scale; reference point 1.1)", soft_wrap=True)
    return True


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
    storage: Storage = None,
) -> None:
    """The best trials of a study, or its Pareto front."""
    from naslab.core.paths import atomic_file, checked_destination

    if plot is not None:  # a new file (or a file with --force), never a link or device
        plot = plot if plot.suffix or os.path.lexists(plot) else plot.with_suffix(".png")
        checked_destination(plot, kind="file", force=force)
        if not plot.suffix:
            raise ConfigError(f"--plot {str(plot)!r} needs a suffix naming the format, e.g. .png")
    if top < 1:
        raise ConfigError(f"--top must be >= 1, got {top}")
    store = open_store(storage)
    try:
        info = store.studies.require(study)
        multi = bool(info.config.get("objectives"))
        if plot is not None:
            if not multi:
                raise ConfigError(f"--plot draws Pareto fronts; study {study!r} has one "
                                  "objective")
            from naslab.fronts import plot_front

            with atomic_file(plot, force=force) as tmp:
                plot_front(store, study, tmp)
            console.print(f"wrote {plot}")
        if pareto or (pareto is None and multi):
            if not print_front(store, study):
                raise ConfigError(f"study {study!r} has no stored Pareto front (it is "
                                  "single-objective, or has not run yet)")
            return
        rows = store.trials.best(study, top)
    finally:
        store.close()
    numbers = ("trial", "objective", "val_acc", "test_acc", "params", "flops", "latency ms",
               "reused", "hash")
    table = Table(*(Column(name, no_wrap=True) for name in numbers),
                  Column("decisions", overflow="fold", ratio=1))
    for t in rows:
        table.add_row(str(t.number), fmt(t.objective_value), fmt(t.metrics.get("val_accuracy")),
                      fmt(t.metrics.get("test_accuracy")), fmt(t.params), fmt(t.flops),
                      fmt(t.latency_ms), "yes" if t.reused_from else "", t.arch_hash[:10],
                      fmt(compact_decisions(t.decisions)))
    console.print(table)


def export(
    study: str = typer.Option(..., help="Study name."),
    out: Path | None = typer.Option(None, help="Folder to write (default: naslab-exports/STUDY)."),
    force: bool = typer.Option(
        False, "--force", help="Write into an existing folder, replacing the export's files."),
    storage: Storage = None,
) -> None:
    """Export a study's best architecture: graph, decisions, seed and trained weights."""
    from naslab.core.paths import checked_destination
    from naslab.export import export_best

    if out is not None:  # refused before the store is opened
        checked_destination(out, kind="folder", force=force)
    store = open_store(storage)
    try:
        folder = export_best(store, study, out, force=force)
    finally:
        store.close()
    files = sorted(p.name for p in folder.iterdir()
                   if p.name in ("architecture.json", "trial.json", "weights.safetensors"))
    note = "" if "weights.safetensors" in files else " (no trained weights: a table benchmark)"
    console.print(f"exported to {fmt(folder)}: " + ", ".join(fmt(f) for f in files) + note)
