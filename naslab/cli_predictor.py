"""``naslab predictor ...``: fit, evaluate, list and use performance predictors.

Data come from the store (every complete result of a space on a task, across
studies) or, for benchmark-table spaces, from the table itself (``--source table``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from naslab.core.errors import ConfigError

predictor_app = typer.Typer(
    no_args_is_help=True,
    help="Performance predictors: fit on stored results, evaluate rank quality, list, rank.",
)
console = Console()

STORAGE_HELP = "SQLAlchemy URL of the store (default: $NASLAB_STORAGE or sqlite:///naslab.db)."
SOURCES = ("store", "table")


@dataclass
class _Data:
    space: Any
    task_key: str
    archs: list
    targets: np.ndarray
    features: dict[str, np.ndarray] | None
    description: str


def _parse_list(text: str | None, what: str, cast: Any = str) -> list[Any]:
    if not text:
        return []
    try:
        return [cast(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be a comma-separated list, got {text!r}") from None


def _load(
    store: Any,
    space_name: str,
    task: str | None,
    source: str,
    metric: str,
    epochs: int | None,
    feature_names: list[str],
    space_opt: list[str] | None,
    train_opt: list[str] | None,
) -> _Data:
    """The architectures, targets and features to fit or evaluate on."""
    from naslab.cli import parse_options
    from naslab.components import TABLE_SPACES, resolve

    if source not in SOURCES:
        raise ConfigError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")
    space, evaluator = resolve(
        space_name,
        task,
        space_options=parse_options(space_opt, "space"),
        evaluator_options=parse_options(train_opt, "training"),
    )
    if source == "table":
        if space.name not in TABLE_SPACES:
            raise ConfigError(
                f"--source table needs a benchmark-table space ({', '.join(TABLE_SPACES)}); "
                f"{space.name} results come from the store (--source store)"
            )
        from naslab.search_spaces.nasbench_graph import bench_key
        from naslab.workers.benchmark_table import all_architectures, load_table

        if metric not in ("val_accuracy", "test_accuracy"):
            raise ConfigError(
                f"the table holds val_accuracy and test_accuracy; got --metric {metric!r}"
            )
        archs = all_architectures(evaluator.dataset)
        rows = load_table(evaluator.dataset)
        field = "valid_perf" if metric == "val_accuracy" else "perf"
        targets = np.array([rows[bench_key(a)][field] for a in archs], dtype=np.float64)
        columns = {"params": "para", "latency": "latency"}
        features = {}
        for name in feature_names:
            if name not in columns:
                raise ConfigError(
                    f"table feature {name!r} is not available; the table offers: "
                    + ", ".join(columns)
                )
            features[name] = np.array([rows[bench_key(a)][columns[name]] for a in archs])
        return _Data(
            space,
            evaluator.key,
            archs,
            targets,
            features or None,
            f"{len(archs)} architectures from the {evaluator.dataset} table",
        )
    from naslab.predictors.store_data import proxies_for, training_set

    data = training_set(store, space, evaluator.key, metric, epochs)
    features = {}
    computed = []
    for name in feature_names:
        if name in ("params", "flops"):
            column = data.params if name == "params" else data.flops
            if np.isnan(column).any():
                raise ConfigError(f"some stored results have no {name}; leave it out")
            features[name] = column
        else:
            computed.append(name)
    if computed:
        task_obj = getattr(evaluator, "task", None)
        if task_obj is None:
            raise ConfigError(
                f"zero-cost proxies ({', '.join(computed)}) need a task with data; "
                f"{evaluator.key} has none"
            )
        features.update(proxies_for(store, space, data.archs, task_obj, computed))
    return _Data(
        space,
        evaluator.key,
        data.archs,
        data.targets,
        features or None,
        f"{len(data.archs)} architectures ({data.n_results} results at {data.fidelity} epochs, "
        f"studies: {', '.join(data.studies)})",
    )


def _open(storage: str | None) -> Any:
    from naslab.db.store import Store

    return Store(storage)


@predictor_app.command("fit")
def fit(
    space: str = typer.Option("nb201", help="Search space."),
    task: str | None = typer.Option(None, help="Task (default: the space's default task)."),
    model: str = typer.Option("dgin", help="Predictor: dgin, gin, gcn, rf, gbdt, proxy:NAME."),
    name: str | None = typer.Option(
        None, help="Name to save it under (default SPACE-TASK-MODEL); each fit adds a version."
    ),
    source: str = typer.Option("store", help="Data: store (stored results) or table."),
    metric: str = typer.Option("val_accuracy", help="The metric to predict."),
    epochs: int | None = typer.Option(
        None, help="Fidelity of the results to use (default: the one with most results)."
    ),
    features: str | None = typer.Option(
        None,
        help="Extra per-architecture inputs, comma-separated: zero-cost proxies (synflow, "
        "jacob_cov, nwot, snip, grad_norm, params, flops; stored once computed) or, with "
        "--source table, params and latency.",
    ),
    opt: list[str] | None = typer.Option(
        None, "--opt", help="Predictor option KEY=VALUE (repeatable), e.g. members=10."
    ),
    space_opt: list[str] | None = typer.Option(None, "--space-opt", help="Space option."),
    train_opt: list[str] | None = typer.Option(
        None, "--train-opt", help="Training option (selects the task key of the results)."
    ),
    storage: str | None = typer.Option(None, envvar="NASLAB_STORAGE", help=STORAGE_HELP),
) -> None:
    """Fit a predictor on every stored result of a space and task; save it in the store."""
    from naslab.cli import parse_options
    from naslab.predictors.registry import get_predictor
    from naslab.predictors.store_data import save_to_store

    predictor = get_predictor(model, parse_options(opt, "predictor"))
    store = _open(storage)
    try:
        data = _load(store, space, task, source, metric, epochs,
                     _parse_list(features, "--features"), space_opt, train_opt)
        console.print(f"fitting {model} on {data.description}")
        started = time.perf_counter()
        predictor.fit(data.archs, data.targets, data.features)
        seconds = time.perf_counter() - started
        label = name or f"{data.space.name}-{task or 'default'}-{model.replace(':', '-')}"
        version = save_to_store(
            store,
            label,
            predictor,
            space=data.space,
            task_key=data.task_key,
            target=metric,
            summary={
                "source": source,
                "description": data.description,
                "features": sorted(data.features or {}),
                "fit_seconds": round(seconds, 3),
            },
        )
    finally:
        store.close()
    console.print(
        f"fitted in {seconds:.1f} s; saved as predictor {label!r} version {version} "
        f"(load with naslab.predictors.load_from_store(store, {label!r}))"
    )


@predictor_app.command("eval")
def evaluate(
    space: str = typer.Option("nb201", help="Search space."),
    task: str | None = typer.Option(None, help="Task (default: the space's default task)."),
    model: str = typer.Option(
        "dgin", help="Predictors to compare, comma-separated: dgin, gin, gcn, rf, gbdt, proxy:NAME."
    ),
    source: str = typer.Option("store", help="Data: store (stored results) or table."),
    metric: str = typer.Option("val_accuracy", help="The metric to predict."),
    epochs: int | None = typer.Option(None, help="Fidelity of the stored results to use."),
    sizes: str = typer.Option("25,50,100,200,500", help="Training-set sizes."),
    splits: int = typer.Option(5, help="Random splits per size."),
    test_size: int | None = typer.Option(
        None, help="Test architectures per split (default: all the others)."
    ),
    seed: int = typer.Option(0, help="Seed of the splits and predictors."),
    features: str | None = typer.Option(None, help="Extra inputs, as for 'predictor fit'."),
    opt: list[str] | None = typer.Option(None, "--opt", help="Predictor option KEY=VALUE."),
    out: Path = typer.Option(Path("naslab-predictor-eval"), help="Folder for the PNG plots."),
    space_opt: list[str] | None = typer.Option(None, "--space-opt", help="Space option."),
    train_opt: list[str] | None = typer.Option(None, "--train-opt", help="Training option."),
    storage: str | None = typer.Option(None, envvar="NASLAB_STORAGE", help=STORAGE_HELP),
) -> None:
    """Rank quality against training-set size: Kendall tau, Spearman, top-10% precision,
    coverage of the 1- and 2-sigma intervals; PNGs of tau vs size and predicted vs actual."""
    from naslab.cli import parse_options
    from naslab.predictors.evaluation import format_table, learning_curve, summarise
    from naslab.predictors.metrics import rank_report
    from naslab.predictors.plots import plot_learning_curve, plot_predicted_vs_actual
    from naslab.predictors.registry import get_predictor

    names = _parse_list(model, "--model")
    options = parse_options(opt, "predictor")
    for n in names:
        get_predictor(n, options)  # refuse bad names and options before any work
    wanted = _parse_list(sizes, "--sizes", int)
    if splits < 1:
        raise ConfigError(f"--splits must be >= 1, got {splits}")
    store = _open(storage) if source == "store" else None
    try:
        data = _load(store, space, task, source, metric, epochs,
                     _parse_list(features, "--features"), space_opt, train_opt)
    finally:
        if store is not None:
            store.close()
    total = len(data.archs)
    usable = [s for s in wanted if 2 <= s <= total - max(10, total // 5)]
    if not usable:
        raise ConfigError(
            f"none of the sizes {wanted} leaves enough test architectures out of {total} "
            f"(at least 10 and a fifth); the largest usable size is {total - max(10, total // 5)}"
        )
    dropped = sorted(set(wanted) - set(usable))
    console.print(f"evaluating {', '.join(names)} on {data.description}")
    if dropped:
        console.print(f"sizes {dropped} skipped: too few architectures left to test")
    rows: list[dict[str, Any]] = []
    for n in names:
        rows += learning_curve(
            lambda n=n: get_predictor(n, {**options, **_seeded(n, options, seed)}),
            data.archs,
            data.targets,
            usable,
            splits,
            seed,
            data.features,
            test_size,
            name=n,
        )
    summary = summarise(rows)
    for metric_name in ("kendall_tau", "spearman", "top10_precision", "coverage_1sigma",
                        "coverage_2sigma", "fit_seconds"):
        console.print(format_table(summary, metric_name), highlight=False)
        console.print()
    out.mkdir(parents=True, exist_ok=True)
    curve = plot_learning_curve(summary, out / "tau_vs_size.png",
                                title=f"{data.space.name} / {task or 'default'}")
    # predicted vs actual of the first predictor at the largest size, split 0
    largest = max(usable)
    order = np.random.default_rng((seed, 0)).permutation(total)
    train, test = order[:largest], order[largest:]
    if test_size is not None:
        test = order[total - test_size :]
    chosen = get_predictor(names[0], {**options, **_seeded(names[0], options, seed)})
    feats = data.features
    chosen.fit([data.archs[i] for i in train], data.targets[train],
               None if feats is None else {k: v[train] for k, v in feats.items()})
    pred = chosen.predict([data.archs[i] for i in test],
                          None if feats is None else {k: v[test] for k, v in feats.items()})
    report = rank_report(pred, data.targets[test])
    scatter = plot_predicted_vs_actual(
        data.targets[test], pred, out / "predicted_vs_actual.png",
        title=f"{names[0]}, {largest} training architectures",
    )
    console.print(
        f"{names[0]} at n={largest}, split 0: tau {report['kendall_tau']:.3f}, "
        f"1-sigma coverage {report['coverage_1sigma']:.2f}"
    )
    console.print(f"plots: {curve}, {scatter}")


def _seeded(name: str, options: dict[str, Any], seed: int) -> dict[str, Any]:
    if name.startswith("proxy:") or "seed" in options:
        return {}
    return {"seed": seed}


@predictor_app.command("list")
def list_predictors(
    storage: str | None = typer.Option(None, envvar="NASLAB_STORAGE", help=STORAGE_HELP),
) -> None:
    """The predictors saved in the store, every version."""
    from naslab.cli import _fmt, short_task

    store = _open(storage)
    try:
        rows = store.predictors.list()
    finally:
        store.close()
    table = Table("name", "version", "kind", "space", "task", "target", "n_train", "created")
    for r in rows:
        table.add_row(_fmt(r.name), str(r.version), _fmt(r.kind), _fmt(r.space),
                      _fmt(short_task(r.task_key or "")), _fmt(r.target), str(r.n_train),
                      r.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)


@predictor_app.command("rank")
def rank(
    name: str = typer.Option(..., help="Saved predictor name."),
    version: int | None = typer.Option(None, help="Version (default: the latest)."),
    candidates: int = typer.Option(10000, help="Random candidates to sample and score."),
    top: int = typer.Option(10, help="How many of the best to list."),
    seed: int = typer.Option(0, help="Seed of the sampling."),
    space_opt: list[str] | None = typer.Option(None, "--space-opt", help="Space option."),
    storage: str | None = typer.Option(None, envvar="NASLAB_STORAGE", help=STORAGE_HELP),
) -> None:
    """Sample candidates from the predictor's space and list those it predicts best."""
    from naslab.cli import _fmt, compact_decisions, parse_options
    from naslab.predictors.store_data import load_from_store
    from naslab.search_spaces.registry import get_space

    if candidates < 1 or top < 1:
        raise ConfigError("--candidates and --top must be >= 1")
    store = _open(storage)
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
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    archs = [space.sample(rng) for _ in range(candidates)]
    sampled = time.perf_counter()
    pred = predictor.predict(archs)
    scored = time.perf_counter()
    order = np.argsort(-pred.mean, kind="stable")
    seen: set[str] = set()
    table = Table("rank", "predicted", "std", "hash", "decisions")
    for i in order:
        if archs[i].hash in seen:
            continue
        seen.add(archs[i].hash)
        table.add_row(str(len(seen)), f"{pred.mean[i]:.4f}", f"{pred.std[i]:.4f}",
                      archs[i].hash[:10], _fmt(compact_decisions(dict(archs[i].decisions))))
        if len(seen) >= top:
            break
    console.print(table)
    console.print(
        f"sampled {candidates} candidates in {sampled - started:.2f} s, "
        f"scored them in {scored - sampled:.2f} s ({record.name} v{record.version})"
    )
