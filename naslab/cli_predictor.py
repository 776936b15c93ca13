"""``naslab predictor ...``: fit, evaluate, list and use performance predictors.

Data come from the store (every complete result of a space on a task, across
studies) or, for benchmark-table spaces, from the table itself (``--source table``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from naslab.cli_common import (
    SpaceOpt,
    Storage,
    TrainOpt,
    compact_decisions,
    console,
    fmt,
    open_store,
    option,
    parse_list,
    parse_options,
    short_task,
)
from naslab.core.errors import ConfigError
from naslab.core.validation import MAX_CANDIDATES, check_int

predictor_app = typer.Typer(rich_markup_mode=None,
    no_args_is_help=True,
    help="Performance predictors: fit on stored results, evaluate rank quality, list, rank.",
)
SOURCES = ("store", "table")


@dataclass
class _Data:
    space: Any
    task_key: str
    archs: list
    targets: np.ndarray
    features: dict[str, np.ndarray] | None
    description: str


@dataclass(frozen=True)
class _Source:
    """Where a command's training data come from (its shared options)."""

    space: str
    task: str | None
    source: str
    metric: str
    epochs: int | None
    features: list[str]
    space_opt: list[str] | None
    train_opt: list[str] | None


def _load(store: Any, src: _Source) -> _Data:
    """The architectures, targets and features to fit or evaluate on."""
    from naslab.components import resolve

    _check_source(src.source)
    space, evaluator = resolve(src.space, src.task,
                               space_options=parse_options(src.space_opt, "space"),
                               evaluator_options=parse_options(src.train_opt, "training"))
    if src.metric not in evaluator.metrics:
        raise ConfigError(f"--metric {src.metric!r} is not measured by {space.name} on "
                          f"{evaluator.task_name}; choose one of: "
                          f"{', '.join(evaluator.metrics)}")
    if src.source == "table":
        return _load_table(space, evaluator, src)
    return _load_store(store, space, evaluator, src)


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ConfigError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")


def _load_table(space: Any, evaluator: Any, src: _Source) -> _Data:
    """Every architecture of a table benchmark, with the table's values."""
    from naslab.workers.evaluator import TABLE_BENCHMARKS

    if not evaluator.is_table:
        raise ConfigError(
            f"--source table needs a table benchmark's space ({', '.join(TABLE_BENCHMARKS)}); "
            f"{space.name} results come from the store (--source store)")
    archs = evaluator.architectures()
    offered = [n for n in evaluator.table_columns if n not in evaluator.metrics]
    unknown = [n for n in src.features if n not in offered]
    if unknown:
        raise ConfigError(f"table feature {unknown[0]!r} is not available; the table offers: "
                          + ", ".join(offered))
    values = evaluator.columns(archs, [src.metric, *src.features])
    features = {n: values[n] for n in src.features}
    return _Data(space, evaluator.key, archs, np.asarray(values[src.metric], dtype=np.float64),
                 features or None,
                 f"{len(archs)} architectures from the {evaluator.task_name} table")


def _load_store(store: Any, space: Any, evaluator: Any, src: _Source) -> _Data:
    """Every stored result of the space on the task, with costs and proxies."""
    from naslab.predictor_store import proxies_for, training_set

    data = training_set(store, space, evaluator.key, src.metric, src.epochs)
    features, computed = {}, []
    for name in src.features:
        if name in ("params", "flops"):
            column = data.params if name == "params" else data.flops
            if np.isnan(column).any():
                raise ConfigError(f"some stored results have no {name}; leave it out")
            features[name] = column
        else:
            computed.append(name)
    if computed:
        if evaluator.task is None:
            raise ConfigError(f"zero-cost proxies ({', '.join(computed)}) need a task with "
                              f"data; {evaluator.key} has none")
        features.update(proxies_for(store, space, data.archs, evaluator.task, computed))
    return _Data(space, evaluator.key, data.archs, data.targets, features or None,
                 f"{len(data.archs)} architectures ({data.n_results} results at "
                 f"{data.fidelity} epochs, studies: {', '.join(data.studies)})")



SpaceName = Annotated[str, option("Search space.")]
TaskName = Annotated[str | None, option("Task (default: the space's default task).")]
SourceName = Annotated[str, option("Data: store (stored results) or table.")]
Metric = Annotated[str, option("The metric to predict.")]
Epochs = Annotated[int | None, option(
    "Fidelity of the stored results to use (default: the one with most results).")]
Features = Annotated[str | None, option(
    "Extra per-architecture inputs, comma-separated: zero-cost proxies (synflow, jacob_cov, "
    "nwot, snip, grad_norm, params, flops; stored once computed) or, with --source table, "
    "params and latency.")]
PredictorOpt = Annotated[list[str] | None, option(
    "Predictor option KEY=VALUE (repeatable), e.g. members=10.", "--opt")]


@predictor_app.command("fit")
def fit(
    space: SpaceName = "nb201",
    task: TaskName = None,
    model: Annotated[str, option("Predictor: dgin, gin, gcn, rf, gbdt, proxy:NAME.")] = "dgin",
    name: Annotated[str | None, option(
        "Name to save it under (default SPACE-TASK-MODEL); each fit adds a version.")] = None,
    source: SourceName = "store",
    metric: Metric = "val_accuracy",
    epochs: Epochs = None,
    features: Features = None,
    opt: PredictorOpt = None,
    space_opt: SpaceOpt = None,
    train_opt: TrainOpt = None,
    storage: Storage = None,
) -> None:
    """Fit a predictor on every stored result of a space and task; save it in the store."""
    from naslab.core.paths import check_name
    from naslab.predictor_store import save_to_store
    from naslab.predictors.registry import get_predictor

    if name is not None:
        check_name("--name", name)
    predictor = get_predictor(model, parse_options(opt, "predictor"))
    _check_source(source)
    src = _Source(space, task, source, metric, epochs, parse_list(features, "--features"),
                  space_opt, train_opt)
    table = _load(None, src) if source == "table" else None  # checked before the store
    # a table-fitted predictor may start a new store; a store-fitted one needs results
    with open_store(storage, create=table is not None) as store:
        data = table or _load(store, src)
        console.print(f"fitting {model} on {data.description}")
        started = time.perf_counter()
        predictor.fit(data.archs, data.targets, data.features)
        took = time.perf_counter() - started
        label = name or f"{data.space.name}-{task or 'default'}-{model.replace(':', '-')}"
        version = save_to_store(
            store, label, predictor, space=data.space, task_key=data.task_key, target=metric,
            summary={"source": source, "description": data.description,
                     "features": sorted(data.features or {}), "fit_seconds": round(took, 3)})
    console.print(f"fitted in {took:.1f} s; saved as predictor {label!r} version {version} "
                  f"(load with naslab.load_from_store(store, {label!r}))")


@predictor_app.command("eval")
def evaluate(
    space: SpaceName = "nb201",
    task: TaskName = None,
    model: Annotated[str, option(
        "Predictors to compare, comma-separated: dgin, gin, gcn, rf, gbdt, proxy:NAME.")
    ] = "dgin",
    source: SourceName = "store",
    metric: Metric = "val_accuracy",
    epochs: Epochs = None,
    sizes: Annotated[str, option("Training-set sizes.")] = "25,50,100,200,500",
    splits: Annotated[int, option("Random splits per size.")] = 5,
    test_size: Annotated[int | None, option(
        "Test architectures per split (default: all the others).")] = None,
    seed: Annotated[int, option("Seed of the splits and predictors.")] = 0,
    features: Features = None,
    opt: PredictorOpt = None,
    out: Annotated[Path, option(
        "Folder for the PNG plots (a new or empty one, or any with --force).")
    ] = Path("naslab-predictor-eval"),
    force: Annotated[bool, option(
        "Write into an existing --out folder, replacing its files of the same names.")
    ] = False,
    space_opt: SpaceOpt = None,
    train_opt: TrainOpt = None,
    storage: Storage = None,
) -> None:
    """Rank quality against training-set size: Kendall tau, Spearman, top-10% precision,
    coverage of the 1- and 2-sigma intervals; PNGs of tau vs size and predicted vs actual."""
    from naslab.cli_progress import progress
    from naslab.core.paths import atomic_folder, checked_destination
    from naslab.predictors.evaluation import format_table, learning_curve, summarise
    from naslab.predictors.registry import get_predictor

    checked_destination(out, kind="folder", force=force)  # refused before any work
    names = parse_list(model, "--model")
    options = parse_options(opt, "predictor")
    for n in names:
        get_predictor(n, options)  # refuse bad names and options before any work
    if splits < 1:
        raise ConfigError(f"--splits must be >= 1, got {splits}")
    wanted = _check_numbers(parse_list(sizes, "--sizes", int), splits, test_size, seed)
    _check_source(source)
    src = _Source(space, task, source, metric, epochs, parse_list(features, "--features"),
                  space_opt, train_opt)
    if source == "store":
        with open_store(storage) as store:
            data = _load(store, src)
    else:
        data = _load(None, src)
    usable = _usable_sizes(wanted, len(data.archs))
    console.print(f"evaluating {', '.join(names)} on {data.description}")
    rows: list[dict[str, Any]] = []
    with progress("fits", len(names) * splits * len(set(usable))) as bar:
        for n in names:
            rows += learning_curve(
                lambda n=n: get_predictor(n, {**options, **_seeded(n, options, seed)}),
                data.archs, data.targets, usable, splits, seed, data.features, test_size,
                name=n, on_row=lambda row: bar.advance())
    summary = summarise(rows)
    for metric_name in ("kendall_tau", "spearman", "top10_precision", "coverage_1sigma",
                        "coverage_2sigma", "fit_seconds"):
        console.print(format_table(summary, metric_name), highlight=False)
        console.print()
    with atomic_folder(out, force=force) as tmp:  # both plots, or none
        written = _plots(summary, data, names[0], get_predictor(names[0], {**options, **_seeded(
            names[0], options, seed)}), max(usable), seed, test_size, tmp, task)
    console.print("plots: " + ", ".join(str(out / p.name) for p in written))


def _check_numbers(sizes: list[int], splits: int, test_size: int | None, seed: int
                   ) -> list[int]:
    """Refuse sizes, splits, test size and seed out of range before any data is
    loaded (a table benchmark takes seconds to load); returns the sizes."""
    for size in sizes:
        check_int("--sizes", size, minimum=2)
    check_int("--splits", splits, minimum=1)
    if test_size is not None:
        check_int("--test-size", test_size, minimum=2)
    check_int("--seed", seed, minimum=0)
    return sizes


def _usable_sizes(wanted: list[int], total: int) -> list[int]:
    """The training-set sizes that leave enough architectures to test (at least 10 and
    a fifth); ConfigError if none does."""
    usable = [s for s in wanted if 2 <= s <= total - max(10, total // 5)]
    if not usable:
        raise ConfigError(
            f"none of the sizes {wanted} leaves enough test architectures out of {total} "
            f"(at least 10 and a fifth); the largest usable size is {total - max(10, total // 5)}")
    dropped = sorted(set(wanted) - set(usable))
    if dropped:
        console.print(f"sizes {dropped} skipped: too few architectures left to test")
    return usable


def _plots(summary: Any, data: _Data, name: str, chosen: Any, largest: int, seed: int,
           test_size: int | None, out: Path, task: str | None) -> list[Path]:
    """tau against size, and predicted against actual of ``chosen`` (the first
    predictor) at the largest size, split 0, written into ``out``; returns the files."""
    from naslab.predictors.metrics import rank_report
    from naslab.predictors.plots import plot_learning_curve, plot_predicted_vs_actual

    curve = plot_learning_curve(summary, out / "tau_vs_size.png",
                                title=f"{data.space.name} / {task or 'default'}")
    total = len(data.archs)
    order = np.random.default_rng((seed, 0)).permutation(total)
    train, test = order[:largest], order[largest:]
    if test_size is not None:
        test = order[total - test_size:]
    feats = data.features
    chosen.fit([data.archs[i] for i in train], data.targets[train],
               None if feats is None else {k: v[train] for k, v in feats.items()})
    pred = chosen.predict([data.archs[i] for i in test],
                          None if feats is None else {k: v[test] for k, v in feats.items()})
    report = rank_report(pred, data.targets[test])
    scatter = plot_predicted_vs_actual(data.targets[test], pred, out / "predicted_vs_actual.png",
                                       title=f"{name}, {largest} training architectures")
    console.print(f"{name} at n={largest}, split 0: tau {report['kendall_tau']:.3f}, "
                  f"1-sigma coverage {report['coverage_1sigma']:.2f}")
    return [curve, scatter]


def _seeded(name: str, options: dict[str, Any], seed: int) -> dict[str, Any]:
    if name.startswith("proxy:") or "seed" in options:
        return {}
    return {"seed": seed}


@predictor_app.command("list")
def list_predictors(
    storage: Storage = None,
) -> None:
    """The predictors saved in the store, every version."""

    store = open_store(storage)
    try:
        rows = store.predictors.list()
    finally:
        store.close()
    table = Table("name", "version", "kind", "space", "task", "target", "n_train", "created")
    for r in rows:
        table.add_row(fmt(r.name), str(r.version), fmt(r.kind), fmt(r.space),
                      fmt(short_task(r.task_key or "")), fmt(r.target), str(r.n_train),
                      r.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)


@predictor_app.command("rank")
def rank(
    name: str = typer.Option(..., help="Saved predictor name."),
    version: int | None = typer.Option(None, help="Version (default: the latest)."),
    candidates: int | None = typer.Option(
        None, help="Candidates to score (at most 100,000): the whole space, each "
        "architecture once, when it has at most this many, else this many random samples. "
        "Default: the whole space when it has at most 100,000, else 10,000 samples."),
    top: int = typer.Option(10, help="How many of the best to list."),
    seed: int = typer.Option(0, help="Seed of the sampling."),
    space_opt: list[str] | None = typer.Option(None, "--space-opt", help="Space option."),
    storage: Storage = None,
) -> None:
    """Score candidates of the predictor's space (all of them when the space is small
    enough) and list those it predicts best."""
    from naslab.predictor_store import load_from_store
    from naslab.search_spaces.registry import get_space

    if candidates is not None:
        check_int("--candidates", candidates, minimum=1, maximum=MAX_CANDIDATES)
    check_int("--top", top, minimum=1, maximum=MAX_CANDIDATES)
    check_int("--seed", seed, minimum=0)
    if version is not None:
        check_int("--version", version)
    store = open_store(storage)
    try:
        predictor, record = load_from_store(store, name, version)
    finally:
        store.close()
    if record.space is None:
        raise ConfigError(f"predictor {name!r} was saved without a space; cannot sample")
    if record.summary.get("features"):
        raise ConfigError(
            f"predictor {name!r} needs features {record.summary['features']} per candidate; "
            "rank candidates from Python with predictor.predict(archs, features)"
        )
    space = get_space(record.space, **parse_options(space_opt, "space"))
    started = time.perf_counter()
    pool = _candidates(space, candidates, seed)
    drawn = time.perf_counter()
    mean, std = _score(predictor, pool.archs)
    scored = time.perf_counter()
    console.print(_top_table(pool.archs, mean, std, top))
    how = (f"enumerated the whole space ({pool.drawn} decision combinations, "
           f"{len(pool.archs)} distinct architectures)" if pool.enumerated
           else f"sampled {pool.drawn} candidates")
    console.print(f"{how} in {drawn - started:.2f} s, scored them in {scored - drawn:.2f} s "
                  f"({record.name} v{record.version})")


#: Candidates scored per call of the predictor (the progress advances per chunk).
SCORE_CHUNK = 2048


def _candidates(space: Any, candidates: int | None, seed: int) -> Any:
    """The candidate pool of ``rank``, with progress on stderr."""
    from contextlib import ExitStack

    from naslab.candidates import candidate_pool
    from naslab.cli_progress import progress

    with ExitStack() as stack:
        def start(what: str, total: int) -> Any:
            return stack.enter_context(progress(what, total)).advance

        return candidate_pool(space, candidates, seed, MAX_CANDIDATES, start)


def _score(predictor: Any, archs: list) -> tuple[np.ndarray, np.ndarray]:
    """Predicted mean and std of every candidate, scored in chunks (with progress)."""
    from naslab.cli_progress import progress

    means, stds = [], []
    with progress("scoring candidates", len(archs)) as bar:
        for begin in range(0, len(archs), SCORE_CHUNK):
            chunk = archs[begin:begin + SCORE_CHUNK]
            pred = predictor.predict(chunk)
            means.append(np.asarray(pred.mean, dtype=float))
            stds.append(np.asarray(pred.std, dtype=float))
            bar.advance(len(chunk))
    return np.concatenate(means), np.concatenate(stds)


def _top_table(archs: list, mean: np.ndarray, std: np.ndarray, top: int) -> Table:
    """The ``top`` distinct architectures by predicted mean (ties: first drawn)."""
    order = np.argsort(-mean, kind="stable")
    seen: set[str] = set()
    table = Table("rank", "predicted", "std", "hash", "decisions")
    for i in order:
        if archs[i].hash in seen:
            continue
        seen.add(archs[i].hash)
        table.add_row(str(len(seen)), f"{mean[i]:.4f}", f"{std[i]:.4f}",
                      archs[i].hash[:10], fmt(compact_decisions(dict(archs[i].decisions))))
        if len(seen) >= top:
            break
    return table
