"""``naslab bench``: searchers x seeds x data sets on NAS-Bench-Graph's tables.

Every run is a study in the store (``--storage``), run in parallel processes; the
summary (anytime-curve PNGs, regret table, JSON) is computed from the store, so a
re-run resumes and ``--summary-only`` redraws without running anything.
"""

from __future__ import annotations

from pathlib import Path

import typer

from naslab.cli_common import Storage, console
from naslab.core.errors import ConfigError
from naslab.core.validation import check_int

#: Upper bounds of the run grid (a mistyped number must not plan billions of runs).
MAX_SEEDS = 10_000
MAX_QUERIES = 1_000_000
MAX_PROCESSES = 1_024


def _datasets(text: str) -> list[str]:
    """The data sets of ``--datasets`` ("all": the eight), refusing an empty list."""
    from naslab.bench import DEFAULT_DATASETS

    names = list(DEFAULT_DATASETS) if text.strip() == "all" else [
        d.strip() for d in text.split(",") if d.strip()]
    if not names:
        raise ConfigError(f"--datasets names no data set (got {text!r}); give "
                          f"comma-separated names from {', '.join(DEFAULT_DATASETS)}, "
                          "or 'all'")
    return names


def _objectives(text: str | None) -> list[str] | None:
    """The objectives of ``--objectives`` (two or more), or None."""
    if not text:
        return None
    from naslab.searchers.objectives import parse_objectives

    parsed = parse_objectives(text)
    if len(parsed) < 2:
        raise ConfigError("--objectives needs two or more objectives, e.g. "
                          "'val_accuracy:max,latency_ms:min'")
    return [str(o) for o in parsed]


def bench(
    searchers: str = typer.Option(
        "random,evolution,local,guided-evolution",
        help="Comma-separated searcher specs: NAME or NAME[key=value,...], e.g. "
        "'random,evolution,guided-evolution[predictor=rf]'.",
    ),
    datasets: str = typer.Option(
        "all", help="Comma-separated NAS-Bench-Graph data sets, or 'all' (the eight with "
        "26,206 architectures: cora citeseer pubmed cs physics photo computers arxiv)."),
    seeds: int = typer.Option(20, help="Seeds per searcher and data set (0, 1, ...)."),
    first_seed: int = typer.Option(
        0, help="The first seed (seeds run FIRST..FIRST+SEEDS-1): tune on other seeds "
        "than those you report."),
    queries: int = typer.Option(100, help="Architectures each run evaluates."),
    objectives: str | None = typer.Option(
        None, help="Multi-objective runs, e.g. 'val_accuracy:max,latency_ms:min' (adds "
        "hypervolume curves and a hypervolume table)."),
    processes: int | None = typer.Option(None, help="Parallel processes (default: CPU cores)."),
    reference: str | None = typer.Option(
        None, help="Searcher whose final accuracy the 'queries to reach' table uses "
        "(default: evolution, when it runs)."),
    prefix: str = typer.Option("bench", help="Study-name prefix of the runs."),
    out: Path = typer.Option(Path("bench-out"), help="Folder for the PNGs, regret.md and "
                             "summary.json (a new or empty one, or any with --force)."),
    force: bool = typer.Option(
        False, "--force", help="Write into an existing --out folder, replacing its files of "
        "the same names."),
    summary_only: bool = typer.Option(
        False, "--summary-only", help="Only summarise runs already in the store."),
    storage: Storage = None,
) -> None:
    """Benchmark searchers on NAS-Bench-Graph: anytime curves and a regret table."""
    from naslab.bench import (
        default_processes,
        execute,
        plan_runs,
        split_specs,
        summarise,
        write_outputs,
    )
    from naslab.cli_progress import progress
    from naslab.core.paths import atomic_folder, check_name, checked_destination
    from naslab.db.store import Store

    checked_destination(out, kind="folder", force=force, option="--force")  # before any work
    names = _datasets(datasets)
    seeds = check_int("--seeds", seeds, minimum=1, maximum=MAX_SEEDS)
    queries = check_int("--queries", queries, minimum=1, maximum=MAX_QUERIES)
    objs = _objectives(objectives)
    first = check_int("--first-seed", first_seed, minimum=0, maximum=2**31 - MAX_SEEDS)
    runs = plan_runs(split_specs(searchers), names, seeds, queries, objs, prefix, first)
    for run in runs:
        check_name("study name (from --prefix, the data sets and searchers)", run.study)
    n_proc = default_processes() if processes is None else check_int(
        "--processes", processes, minimum=1, maximum=MAX_PROCESSES)
    labels = list(dict.fromkeys(r.searcher.label for r in runs))
    if reference is None:
        reference = "evolution" if "evolution" in labels else None
    elif reference not in labels:
        raise ConfigError(f"--reference {reference!r} is not one of the searchers of this "
                          f"benchmark: {', '.join(labels)}")
    url = Store(storage).connect_url  # resolves the default and checks the URL
    if not summary_only:
        console.print(f"{len(runs)} runs ({len(labels)} searchers x {len(names)} data sets x "
                      f"{seeds} seeds, {queries} queries each) in {n_proc} processes")

        with progress("runs", len(runs)) as bar:
            wall = execute(runs, url, n_proc, lambda run, seconds, count: bar.advance())
        console.print(f"ran in {wall:.0f} s")
    with Store(url) as store, progress("reading runs", len(runs)) as bar:
        summary = summarise(store, runs, on_read=lambda run: bar.advance())
    with atomic_folder(out, force=force) as tmp:  # all files, or none of them
        figures = write_outputs(summary, tmp, reference)
    console.print((out / "regret.md").read_text(), markup=False, soft_wrap=True)
    console.print("wrote " + ", ".join(str(out / Path(f).name) for f in figures["files"]))
