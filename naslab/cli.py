"""The ``naslab`` command line.

``naslab search`` runs or resumes a study; ``naslab studies``, ``naslab results`` and
``naslab sql`` read the store, ``naslab schema`` lists its tables and views;
``naslab db upgrade|version|export|import`` maintain it; ``naslab export`` writes a
study's best model;
``naslab predictor fit|eval|list|rank`` fit and evaluate performance predictors.
Options given as ``KEY=VALUE`` take JSON values (``channels=16``, ``widths=[8,16]``)
or plain strings; nothing typed on the command line is evaluated as code.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from naslab.cli_bench import bench
from naslab.cli_common import (
    SpaceOpt,
    Storage,
    TrainOpt,
    check_format,
    console,
    err_console,
    fmt,
    open_store,
    option,
    print_table,
    printable,
    seconds,
    write_records,
)
from naslab.cli_dashboard import dashboard, report
from naslab.cli_db import db_app
from naslab.cli_plot import plot_app
from naslab.cli_predictor import predictor_app
from naslab.cli_results import export, print_front, results, studies
from naslab.cli_spaces import spaces
from naslab.cli_study import study_app
from naslab.core.errors import ConfigError, NaslabError

app = typer.Typer(rich_markup_mode=None,
    add_completion=False,
    no_args_is_help=True,
    help="naslab: neural architecture search with a SQL store of every result.",
)



def _print_version(value: bool) -> None:
    if value:
        from naslab.core.version import __version__

        console.print(f"naslab {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print naslab's version and exit.")] = False,
) -> None:
    """naslab: neural architecture search with a SQL store of every result."""


Space = Annotated[str | None, option(
    "Search space: a name from 'naslab spaces' (default nb201), or your own class as "
    "path/to/file.py:Class or package.module:Class (options via --space-opt).")]
Task = Annotated[str | None, option(
    "Task: digits (trained; 'naslab spaces' lists each space's tasks), a data set of a "
    "table benchmark's space (e.g. cora for nasbench_graph), or your own as "
    "module:function or file.py:function (options via --task-opt).")]
TaskOpt = Annotated[list[str] | None, option(
    "Task option KEY=VALUE, e.g. root=data/ for cifar10.", "--task-opt")]
SearcherName = Annotated[str | None, option(
    "Searcher: evolution, random, local, nsga2, guided-evolution, guided-optuna, "
    "optuna-tpe|random|nsga2|nsga3|cmaes|gp|qmc (options via --searcher-opt).")]
Objectives = Annotated[str | None, option(
    "Multi-objective search: metrics with directions, e.g. 'val_accuracy:max,latency_ms:min' "
    "(also params, flops); needs nsga2, guided-evolution, guided-optuna, random or an "
    "optuna-* searcher.")]
SearcherOpt = Annotated[list[str] | None, option(
    "Searcher option KEY=VALUE, e.g. population_size=20.", "--searcher-opt")]
Workers = Annotated[int | None, option(
    "Ray workers training candidates in parallel (default: one per CPU core; table "
    "searches default to --in-process).")]
InProcess = Annotated[bool, option("Evaluate in this process, one at a time (debugging).",
                                    "--in-process")]
RayAddress = Annotated[str | None, option(
    "Join an existing Ray cluster: 'auto', the head's 'host:port', or 'ray://host:10001' "
    "(needs naslab[cluster]); default: $RAY_ADDRESS if set, else a local Ray that listens "
    "on 127.0.0.1 only.")]
Dashboard = Annotated[bool, option(
    "Start Ray's dashboard (on 127.0.0.1:8265) with local Ray (needs naslab[cluster]).",
    "--dashboard")]
GpusPerTrial = Annotated[float | None, option(
    "GPUs reserved by each Ray worker (fractions allowed, e.g. 0.5); default: none without "
    "GPUs, else an equal share of the cluster's GPUs, at most 1.")]
SchedulerName = Annotated[str | None, option(
    "Multi-fidelity early stopping: none (default), asha, hyperband.")]
MinEpochs = Annotated[int | None, option("Scheduler's first rung in epochs (default 1).")]
Eta = Annotated[int | None, option(
    "Scheduler's reduction factor: ~1/eta of trials pass each rung (default 3).")]
TrialTimeout = Annotated[float | None, option(
    "Seconds a trial may run on a Ray worker before it fails.")]
MaxRetries = Annotated[int, option(
    "Re-runs of a trial whose Ray worker process died, before it fails.")]
RunTimeout = Annotated[float | None, option(
    "Wall-clock limit of this run in seconds: no new trial starts after it, trials "
    "running finish and are stored; re-run to resume. (--trial-timeout limits one Ray "
    "trial.)", "--timeout")]


def _describe_executor(executor: Any) -> str:
    if executor is None or executor.inline:
        return "in-process"
    if executor.address:
        count = executor.requested_workers or "one per cluster CPU"
        return f"workers {count} (Ray, cluster {executor.address})"
    count = executor.requested_workers or f"{os.cpu_count()} (one per CPU core)"
    return f"workers {count} (Ray, local)"


def _ray_options(in_process: bool, workers: int | None, ray_address: str | None,
                 trial_timeout: float | None, dashboard: bool = False) -> bool:
    """Whether Ray options were given (refused together with --in-process); a
    malformed --ray-address, or an option whose Ray extra is missing, is refused here,
    before the study is touched."""
    from naslab.workers.ray_connect import check_address, require_dashboard

    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    given = (workers is not None or ray_address is not None or trial_timeout is not None
             or dashboard)
    if in_process and given:
        raise ConfigError(
            "--in-process cannot be combined with --workers, --ray-address, --dashboard or "
            "--trial-timeout (those configure Ray workers)")
    if ray_address is not None:
        check_address(ray_address)
        if dashboard:
            raise ConfigError("--dashboard starts the dashboard of a local Ray; a cluster "
                              "has its own (ray start --head --include-dashboard=true)")
    if dashboard:
        require_dashboard()
    return given


def _print_header(s: Any) -> None:
    console.print(
        f"study [bold]{fmt(s.name)}[/]: space {s.space!r}, task {s.evaluator.task_name}, "
        f"searcher {s.searcher.name}, budget {s.budget}, {s.epochs} epochs, seed {s.seed}, "
        f"{_describe_executor(s.executor)}, "
        + (f"scheduler {fmt(s.scheduler.config())}, " if s.scheduler else "")
        + f"store {s.store.url}", soft_wrap=True)


def _run_with_progress(s: Any, timeout: float | None = None) -> Any:
    """Run the study with a progress bar and one line per finished trial; a warning
    that every trial fails is one ``warning:`` line (the summary says the rest)."""
    import warnings

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from naslab.run_control import FailingTrialsWarning, NoCompleteTrialWarning

    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("best {task.fields[best]}"), TextColumn("elapsed {task.fields[elapsed]}"),
        TextColumn("remaining {task.fields[eta]}"), console=console, transient=False)
    bar = progress.add_task("trials", total=s.budget, best="-", elapsed="0:00", eta="?")

    def on_trial(ev: Any) -> None:
        how = "reused" if ev.reused else ev.state
        value = fmt(ev.value) if ev.value is not None else fmt((ev.error or "")[:100])
        progress.console.print(f"  trial {ev.number:>4} {how:<9} {s.evaluator.objective}={value}")
        progress.update(bar, completed=ev.finished, best=fmt(ev.best_value),
                        elapsed=seconds(ev.elapsed_s), eta=seconds(ev.eta_s))

    def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        if issubclass(category, FailingTrialsWarning):
            progress.console.print(f"[yellow]warning:[/] {fmt(message)}", soft_wrap=True)
        else:
            shown(message, category, *args, **kwargs)

    with progress, warnings.catch_warnings():
        shown = warnings.showwarning
        warnings.showwarning = show
        warnings.simplefilter("always", FailingTrialsWarning)
        warnings.simplefilter("ignore", NoCompleteTrialWarning)  # the summary says it
        report = s.run(on_trial, progress=False, timeout=timeout)
        done = report.complete + report.stopped + report.failed
        progress.update(bar, completed=done,
                        total=s.budget if report.stopped_by == "budget" else done)
    return report


def _retry_note(report: Any) -> str:
    """What became of the trials that earlier runs left interrupted."""
    from naslab.loop import MAX_INTERRUPTIONS

    notes = []
    if report.retried:
        notes.append(f"{report.retried} interrupted trial(s) from an earlier run evaluated "
                     "again first")
    elif report.interrupted_found:
        notes.append(f"{report.interrupted_found} trial(s) of a stopped driver found "
                     "interrupted; none evaluated again by this run (the study holds their "
                     "architectures, or its budget is full)")
    if report.not_retried:
        notes.append(f"{report.not_retried} architecture(s) interrupted "
                     f"{MAX_INTERRUPTIONS} times not retried")
    return f" ({'; '.join(notes)})" if notes else ""


def _print_summary(s: Any, report: Any) -> None:
    console.print(
        f"done in {seconds(report.elapsed_s)}: {report.trained_this_run} evaluated and "
        f"{report.reused_this_run} reused this run; study has {report.complete} complete, "
        + (f"{report.stopped} stopped early, " if report.stopped else "")
        + f"{report.failed} failed of budget {report.budget}"
        + _retry_note(report), soft_wrap=True)
    if report.exhausted:
        console.print(f"stopped before the budget: {fmt(report.exhausted)}", soft_wrap=True)
    elif report.stopped_by == "timeout":
        console.print("stopped before the budget: the --timeout passed (trials running "
                      "then finished); re-run the same command to continue", soft_wrap=True)
    if s.multi_objective:
        print_front(s.store, s.name)
    elif report.best is not None:
        b = report.best
        console.print(
            f"best: trial {b.number} {s.evaluator.objective}={fmt(b.objective_value)} "
            f"test_accuracy={fmt(b.metrics.get('test_accuracy'))} params={b.params} "
            f"decisions={fmt(json.dumps(b.decisions))}", soft_wrap=True)
    else:
        console.print("no complete trial yet: every trial failed (see naslab results or "
                      "the error column of naslab_results)")


def _check_numbers(cpus: float, gpus: float | None, timeout: float | None,
                   workers: int | None, max_retries: int, run_timeout: float | None) -> None:
    """Refuse NaN, infinite, negative or 64-bit-overflowing numbers before a study is
    stored."""
    from naslab.core.validation import check_float, check_int

    check_float("--cpus-per-trial", cpus, minimum=0, strict_minimum=True)
    if gpus is not None:
        check_float("--gpus-per-trial", gpus, minimum=0)
    if timeout is not None:
        check_float("--trial-timeout (seconds)", timeout, minimum=0, strict_minimum=True)
    if workers is not None:
        check_int("--workers", workers, minimum=1)
    check_int("--max-retries", max_retries, minimum=0)
    if run_timeout is not None:
        check_float("--timeout (seconds)", run_timeout, minimum=0, strict_minimum=True)


@app.command()
def search(
    space: Space = None,
    task: Task = None,
    searcher: SearcherName = None,
    objectives: Objectives = None,
    budget: Annotated[int | None, option(
        "Trials to finish, resumed ones included (default 30).")] = None,
    epochs: Annotated[int | None, option("Training epochs per candidate (fidelity).")] = None,
    seed: Annotated[int | None, option(
        "Seed of the searcher and of every training run (default 0).")] = None,
    study: Annotated[str | None, option(
        "Study name; re-running with the same name resumes it, and --study NAME alone "
        "resumes it with its stored settings.")] = None,
    storage: Storage = None,
    space_opt: SpaceOpt = None,
    task_opt: TaskOpt = None,
    searcher_opt: SearcherOpt = None,
    train_opt: TrainOpt = None,
    workers: Workers = None,
    in_process: InProcess = False,
    ray_address: RayAddress = None,
    cpus_per_trial: Annotated[float, option("CPUs reserved by each Ray worker.")] = 1.0,
    dashboard: Dashboard = False,
    gpus_per_trial: GpusPerTrial = None,
    scheduler: SchedulerName = None,
    min_epochs: MinEpochs = None,
    eta: Eta = None,
    trial_timeout: TrialTimeout = None,
    max_retries: MaxRetries = 2,
    timeout: RunTimeout = None,
) -> None:
    """Run a search, or resume the study of the same name (flags not given are taken
    from the stored study)."""
    from naslab.cli_launch import SearchFlags, search_settings
    from naslab.study import Study

    _check_numbers(cpus_per_trial, gpus_per_trial, trial_timeout, workers, max_retries,
                   timeout)
    ray_given = _ray_options(in_process, workers, ray_address, trial_timeout, dashboard)
    scheduler_options = {k: v for k, v in (("min_epochs", min_epochs), ("eta", eta))
                         if v is not None}
    settings = search_settings(SearchFlags(
        space=space, task=task, searcher=searcher, budget=budget, epochs=epochs, seed=seed,
        objectives=objectives, space_opt=space_opt, task_opt=task_opt,
        searcher_opt=searcher_opt, train_opt=train_opt, scheduler=scheduler,
        scheduler_options=scheduler_options or None), study, storage)
    s = Study(study, storage=storage, **settings)
    try:
        s.prepare()  # refuse a conflicting study before printing anything
        if not in_process and (ray_given or not s.evaluator.instant):
            from naslab.workers.ray_executor import RayExecutor

            s.executor = RayExecutor(workers=workers, address=ray_address,
                                     cpus_per_trial=cpus_per_trial,
                                     gpus_per_trial=gpus_per_trial,
                                     trial_timeout=trial_timeout, max_retries=max_retries,
                                     dashboard=dashboard)
        _print_header(s)
        report = _run_with_progress(s, timeout)
        _print_summary(s, report)
    finally:
        s.close()


#: ``--storage`` of the SQL console: ``$NASLAB_SQL_URL`` (a reader role's URL, see
#: ``naslab db grant-reader``) first, then ``$NASLAB_STORAGE``.
ConsoleStorage = Annotated[str | None, typer.Option(
    envvar=["NASLAB_SQL_URL", "NASLAB_STORAGE"],
    help="SQLAlchemy URL of the store (default: $NASLAB_SQL_URL, $NASLAB_STORAGE or "
    "sqlite:///naslab.db); on PostgreSQL, a read-only role's (naslab db grant-reader).")]


@app.command()
def sql(
    query: str = typer.Argument(..., help="One read-only SQL statement."),
    format: str = typer.Option("table", "--format", help="Output: table, csv or json."),
    timeout: float = typer.Option(
        30.0, "--timeout", help="Stop the query after this many seconds (SQLite, PostgreSQL)."),
    storage: ConsoleStorage = None,
) -> None:
    """Run a read-only SQL query on the store (see README for tables and views).

    On PostgreSQL, connect as a role that can only read (see naslab db grant-reader):
    the console refuses a superuser and roles that can reach past the tables.
    """
    check_format(format)
    if not 0 < timeout <= 86_400:  # also refuses nan
        raise ConfigError(f"--timeout must be a number of seconds in (0, 86400], got {timeout}")
    store = open_store(storage)
    try:
        columns, rows = store.sql.query(query, timeout_s=timeout)
    finally:
        store.close()
    if format == "table":
        table = Table(*(fmt(c) for c in columns))
        for r in rows:
            table.add_row(*(fmt(v) for v in r))
        print_table(table)
    else:
        write_records(format, columns, rows)


@app.command()
def schema(
    format: str = typer.Option("text", "--format", help="Output: text or json."),
    storage: ConsoleStorage = None,
) -> None:
    """Print the store's documented tables and views with their columns, for SQL."""
    if format not in ("text", "json"):
        raise ConfigError(f"--format must be one of text, json; got {format!r}")
    store = open_store(storage)
    try:
        objects = store.sql.describe_schema()
        revision = store.schema_revision
    finally:
        store.close()
    if format == "json":
        sys.stdout.write(json.dumps(
            {"revision": revision,
             "objects": [{"name": o.name, "kind": o.kind, "description": o.description,
                          "columns": [{"name": c, "type": t} for c, t in o.columns]}
                         for o in objects]}) + "\n")
        return
    out = [f"naslab schema revision {revision} (query with: naslab sql \"SELECT ...\")", ""]
    for o in objects:
        out.append(f"{o.kind} {o.name}: {o.description}")
        out.extend(f"    {c:<16} {t}" for c, t in o.columns)
        out.append("")
    sys.stdout.write("\n".join(out))


app.add_typer(predictor_app, name="predictor")
app.add_typer(db_app, name="db")
app.command(name="bench")(bench)
app.command(name="spaces")(spaces)
app.command(name="studies")(studies)
app.command(name="results")(results)
app.command(name="export")(export)
app.add_typer(study_app, name="study")
app.add_typer(plot_app, name="plot")
app.command(name="dashboard")(dashboard)
app.command(name="report")(report)


def _usage_error(exc: Any) -> None:
    """A usage error (bad or missing option) as one ``error:`` line, exit 2; the help
    screens that click raises as errors (no arguments given) are shown as they are."""
    code = getattr(exc, "exit_code", 2)
    if type(exc).__name__ == "NoArgsIsHelpError" or not callable(
        getattr(exc, "format_message", None)
    ):
        exc.show()
        sys.exit(code)
    message = " ".join(exc.format_message().split())
    context = getattr(exc, "ctx", None)
    hint = f" (see '{context.command_path} --help')" if context is not None else ""
    err_console.print(f"[red]error:[/] {escape(printable(message + hint))}", soft_wrap=True)
    sys.exit(code)


def main() -> None:
    """Entry point of the ``naslab`` console script: errors print as one line."""
    try:
        code = app(standalone_mode=False)
    except NaslabError as exc:
        # one line (no wrapping at the console width), shown as is (not read as markup)
        err_console.print(f"[red]error:[/] {escape(printable(str(exc)))}", soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        code = 130
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:
        # usage errors: click's, or those of the copy of click that newer typer bundles
        if type(exc).__module__.startswith(("click.", "typer.")) and callable(
            getattr(exc, "show", None)
        ):
            _usage_error(exc)
        raise
    # without standalone mode, typer turns Ctrl-C into an exit code of 130 and returns it
    if code == 130:
        err_console.print("interrupted; re-run the same command to resume")
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
