"""The benchmark harness behind ``naslab bench``.

Runs searchers x seeds x data sets on a table benchmark (NAS-Bench-Graph), each run a
:class:`~naslab.study.Study` written to the store, in parallel processes; then reads
the studies back from the store and summarises them:

- anytime curves: the best validation accuracy found after each query (as regret:
  the data set's best validation accuracy minus it) and the test accuracy of the
  best-by-validation architecture, mean and standard error over seeds (PNG);
- a table of final validation regret per searcher and data set, and how many queries
  each searcher needs to reach the final validation accuracy of a reference searcher
  (regularized evolution by default);
- with several objectives: the hypervolume after each query, computed on objectives
  normalised to the whole table's range (cost metrics such as latency and params on a
  log scale), with the reference point at 1.1 in every normalised coordinate.

Runs are studies named ``<prefix>-<dataset>-<searcher spec>-s<seed>``: running the
same command again resumes (finished runs cost nothing), and every result can be
queried with SQL afterwards (``naslab sql "SELECT ... FROM naslab_results WHERE study
LIKE 'bench-%'"``).

A searcher spec is a registered name with optional options in brackets, e.g.
``guided-evolution[predictor=rf,acquisition=ucb]`` (JSON values, else strings).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from naslab.cli_common import parse_options
from naslab.core.errors import ConfigError, UnknownNameError

#: The data sets of a NAS-Bench-Graph benchmark run by default: the eight that share
#: the full 26,206-architecture space (``proteins`` has 2,021 and other operations).
DEFAULT_DATASETS: tuple[str, ...] = (
    "cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv",
)

_SPEC = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*(?:\[(.*)\])?\s*$")


@dataclass(frozen=True)
class SearcherSpec:
    """A searcher name and its options, parsed from ``name[key=value,...]``."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    label: str = ""

    @property
    def slug(self) -> str:
        """The label as used in study names (no spaces)."""
        return re.sub(r"[^A-Za-z0-9_\-=.,\[\]]", "", self.label)


def split_specs(text: str) -> list[str]:
    """``"random,guided-evolution[predictor=rf,kappa=2]"`` -> the two specs (commas
    inside brackets do not split)."""
    out, depth, current = [], 0, ""
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += char
    out.append(current)
    return [part.strip() for part in out if part.strip()]


def parse_searcher_spec(text: str) -> SearcherSpec:
    """``guided-evolution[predictor=rf,kappa=2]`` -> name and options (JSON values)."""
    from naslab.searchers.registry import SEARCHERS

    match = _SPEC.match(text)
    if match is None:
        raise ConfigError(
            f"searcher spec {text!r} is not NAME or NAME[key=value,...], e.g. "
            "guided-evolution[predictor=rf]"
        )
    name, body = match.group(1), match.group(2)
    if name not in SEARCHERS:
        raise UnknownNameError("searcher", name, SEARCHERS)
    pairs = [p.strip() for p in (body or "").split(",") if p.strip()]
    options = parse_options(pairs, f"searcher spec {text!r}:")
    label = name if not options else f"{name}[{','.join(f'{k}={v}' for k, v in options.items())}]"
    return SearcherSpec(name, options, label)


@dataclass(frozen=True)
class BenchRun:
    """One run: a searcher on a data set with a seed."""

    searcher: SearcherSpec
    dataset: str
    seed: int
    queries: int
    objectives: tuple[str, ...] | None
    prefix: str

    @property
    def study(self) -> str:
        """The study name of this run."""
        return f"{self.prefix}-{self.dataset}-{self.searcher.slug}-s{self.seed}"


def plan_runs(
    searchers: Sequence[str],
    datasets: Sequence[str],
    seeds: int,
    queries: int,
    objectives: Sequence[str] | None = None,
    prefix: str = "bench",
    first_seed: int = 0,
) -> list[BenchRun]:
    """Every (searcher, data set, seed) run, with its inputs checked; the seeds are
    ``first_seed`` .. ``first_seed + seeds - 1`` (tune on other seeds than the ones
    you report)."""
    from naslab.search_spaces.nasbench_graph import DATASETS

    if seeds < 1 or queries < 1:
        raise ConfigError(f"seeds and queries must be >= 1, got {seeds} and {queries}")
    if first_seed < 0:
        raise ConfigError(f"the first seed must be >= 0, got {first_seed}")
    specs = [parse_searcher_spec(s) for s in searchers]
    if not specs:
        raise ConfigError("name at least one searcher, e.g. random,evolution,guided-evolution")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"searchers repeat: {', '.join(labels)}")
    for d in datasets:
        if d not in DATASETS:
            raise UnknownNameError("NAS-Bench-Graph data set", d, DATASETS)
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", prefix):
        raise ConfigError(f"--prefix must be letters, digits, '-' or '_', got {prefix!r}")
    objs = None if objectives is None else tuple(objectives)
    return [BenchRun(s, d, seed, queries, objs, prefix)
            for d in datasets for s in specs
            for seed in range(first_seed, first_seed + seeds)]


def run_one(run: BenchRun, storage: str) -> tuple[str, float]:
    """Run (or resume) one benchmark study; returns its name and wall seconds."""
    import torch

    from naslab.study import Study

    torch.set_num_threads(1)  # one core per process; processes run in parallel
    start = time.perf_counter()
    with Study(run.study, space="nasbench_graph", task=run.dataset,
               searcher=run.searcher.name, searcher_options=dict(run.searcher.options),
               budget=run.queries, seed=run.seed, storage=storage,
               objectives=list(run.objectives) if run.objectives else None) as study:
        study.run()
    return run.study, time.perf_counter() - start


def execute(
    runs: Sequence[BenchRun],
    storage: str,
    processes: int = 2,
    on_done: Callable[[BenchRun, float, int], None] | None = None,
) -> float:
    """Run every run in ``processes`` worker processes (1: in this process); calls
    ``on_done(run, seconds, done_count)`` as runs finish. Returns the wall time."""
    from naslab.db.store import Store

    Store(storage).close()  # create the schema once, before the workers race for it
    start = time.perf_counter()
    if processes <= 1:
        for i, run in enumerate(runs, 1):
            _, seconds = run_one(run, storage)
            if on_done:
                on_done(run, seconds, i)
        return time.perf_counter() - start
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        futures = {pool.submit(run_one, run, storage): run for run in runs}
        for i, fut in enumerate(as_completed(futures), 1):
            _, seconds = fut.result()
            if on_done:
                on_done(futures[fut], seconds, i)
    return time.perf_counter() - start


# ---------------------------------------------------------------------- analysis


@dataclass
class RunCurves:
    """What one stored run did, query by query."""

    val: np.ndarray  # validation accuracy of each query (NaN for a failure)
    test: np.ndarray  # its test accuracy
    points: np.ndarray | None = None  # (queries, n_objectives) for multi-objective runs


def read_run(store: Any, run: BenchRun) -> RunCurves:
    """The queries of a finished run, from the store, in order."""
    from naslab.fronts import trial_metrics
    from naslab.searchers.objectives import objective_values, parse_objectives

    if store.studies.get(run.study) is None:
        raise ConfigError(
            f"run {run.study} has 0 of {run.queries} queries; run the benchmark (without "
            "--summary-only) to finish it"
        )
    trials = [t for t in store.trials.list(run.study) if t.state in ("complete", "failed")]
    trials = trials[: run.queries]
    val = np.array([t.metrics.get("val_accuracy", np.nan) if t.state == "complete" else np.nan
                    for t in trials], dtype=float)
    test = np.array([t.metrics.get("test_accuracy", np.nan) if t.state == "complete" else np.nan
                     for t in trials], dtype=float)
    points = None
    if run.objectives:
        objs = parse_objectives(list(run.objectives))
        rows = []
        for t in trials:
            v = objective_values(objs, trial_metrics(t)) if t.state == "complete" else None
            rows.append(v if v is not None else (np.nan,) * len(objs))
        points = np.array(rows, dtype=float)
    return RunCurves(val, test, points)


def best_so_far(val: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best validation accuracy after each query, and the test accuracy of that
    best-by-validation architecture (the first one, on ties)."""
    best_v = np.full(len(val), np.nan)
    best_t = np.full(len(val), np.nan)
    bv, bt = -np.inf, np.nan
    for i, (v, t) in enumerate(zip(val, test)):
        if not math.isnan(v) and v > bv:
            bv, bt = v, t
        best_v[i] = bv if bv > -np.inf else np.nan
        best_t[i] = bt
    return best_v, best_t


def table_bounds(dataset: str, objectives: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each objective's (min, max) over the whole table, for normalising."""
    from naslab.workers.benchmark_table import load_table

    columns = {"val_accuracy": "valid_perf", "test_accuracy": "perf", "latency_ms": "latency",
               "params": "para"}
    scale = {"latency_ms": 1000.0, "params": 1e6}
    rows = list(load_table(dataset).values())
    low, high = [], []
    for name in objectives:
        metric = name.split(":")[0]
        if metric not in columns:
            raise ConfigError(
                f"the NAS-Bench-Graph table has no {metric!r}; objectives can use "
                f"{', '.join(columns)}"
            )
        values = np.array([float(r[columns[metric]]) for r in rows]) * scale.get(metric, 1.0)
        low.append(values.min())
        high.append(values.max())
    return np.array(low), np.array(high)


def hypervolume_curve(points: np.ndarray, objectives: Sequence[str], low: np.ndarray,
                      high: np.ndarray, reference: float = 1.1) -> np.ndarray:
    """Hypervolume of the first q queries, for every q (normalised objectives)."""
    from naslab.fronts import normalise_objectives
    from naslab.searchers.objectives import parse_objectives
    from naslab.searchers.pareto import hypervolume, pareto_mask

    norm = normalise_objectives(points, parse_objectives(list(objectives)), low, high)
    ref = np.full(norm.shape[1], reference)
    out = np.zeros(len(norm))
    front = np.empty((0, norm.shape[1]))
    for i, p in enumerate(norm):
        if not np.isnan(p).any():
            front = np.vstack([front, p])
            front = front[pareto_mask(front)]
        out[i] = hypervolume(front, ref) if len(front) else 0.0
    return out


@dataclass
class Summary:
    """Aggregated curves and figures per (searcher label, data set)."""

    queries: int
    searchers: list[str]
    datasets: list[str]
    regret: dict[tuple[str, str], np.ndarray]  # (seeds, queries) validation regret
    test: dict[tuple[str, str], np.ndarray]  # (seeds, queries) test acc of best-by-val
    best_val: dict[str, float]  # the table's best validation accuracy per data set
    best_test: dict[str, float]
    hypervolume: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def final_regret(self, searcher: str, dataset: str) -> tuple[float, float]:
        """Mean and standard error over seeds of the validation regret after the last
        query."""
        r = self.regret[(searcher, dataset)][:, -1]
        return float(r.mean()), float(r.std(ddof=1) / math.sqrt(len(r))) if len(r) > 1 else 0.0

    def queries_to_reach(self, searcher: str, dataset: str, reference: str) -> int | None:
        """First query after which ``searcher``'s mean best validation accuracy reaches
        ``reference``'s final mean (None if it never does)."""
        target = self.regret[(reference, dataset)][:, -1].mean()
        mean = self.regret[(searcher, dataset)].mean(axis=0)
        hits = np.flatnonzero(mean <= target + 1e-12)
        return int(hits[0]) + 1 if len(hits) else None


def summarise(store: Any, runs: Sequence[BenchRun],
              on_read: Callable[[BenchRun], None] | None = None) -> Summary:
    """Read every run back from the store and aggregate per searcher and data set;
    ``on_read(run)`` is called after each run is read (e.g. to show progress)."""
    from naslab.workers.benchmark_table import load_table

    searchers = list(dict.fromkeys(r.searcher.label for r in runs))
    datasets = list(dict.fromkeys(r.dataset for r in runs))
    queries = max(r.queries for r in runs)
    best_val, best_test = {}, {}
    for d in datasets:
        rows = load_table(d).values()
        best_val[d] = max(float(r["valid_perf"]) for r in rows)
        best_test[d] = max(float(r["perf"]) for r in rows)
    regret: dict[tuple[str, str], list[np.ndarray]] = {}
    test: dict[tuple[str, str], list[np.ndarray]] = {}
    hv: dict[tuple[str, str], list[np.ndarray]] = {}
    bounds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for run in runs:
        curves = read_run(store, run)
        if len(curves.val) < run.queries:
            raise ConfigError(
                f"run {run.study} has {len(curves.val)} of {run.queries} queries; "
                "run the benchmark (without --summary-only) to finish it"
            )
        bv, bt = best_so_far(curves.val, curves.test)
        key = (run.searcher.label, run.dataset)
        regret.setdefault(key, []).append(best_val[run.dataset] - bv)
        test.setdefault(key, []).append(bt)
        if run.objectives and curves.points is not None:
            if run.dataset not in bounds:
                bounds[run.dataset] = table_bounds(run.dataset, run.objectives)
            low, high = bounds[run.dataset]
            hv.setdefault(key, []).append(
                hypervolume_curve(curves.points, run.objectives, low, high))
        if on_read is not None:
            on_read(run)
    return Summary(
        queries=queries, searchers=searchers, datasets=datasets,
        regret={k: np.array(v) for k, v in regret.items()},
        test={k: np.array(v) for k, v in test.items()},
        best_val=best_val, best_test=best_test,
        hypervolume={k: np.array(v) for k, v in hv.items()},
    )


# ---------------------------------------------------------------------- outputs


def regret_table(summary: Summary, reference: str | None = None) -> str:
    """Markdown: final validation regret (mean ± s.e., x 100) per searcher and data set;
    the best per data set in bold; with ``reference``, a second table of the queries
    each searcher needs to reach the reference's final mean."""
    lines = ["Final validation regret x 100 (mean ± s.e. over seeds; lower is better)", "",
             "| searcher | " + " | ".join(summary.datasets) + " | mean |",
             "|---|" + "---|" * (len(summary.datasets) + 1)]
    best = {d: min(summary.final_regret(s, d)[0] for s in summary.searchers)
            for d in summary.datasets}
    for s in summary.searchers:
        cells, means = [], []
        for d in summary.datasets:
            m, se = summary.final_regret(s, d)
            means.append(m)
            cell = f"{100 * m:.2f} ± {100 * se:.2f}"
            cells.append(f"**{cell}**" if m <= best[d] + 1e-12 else cell)
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {100 * np.mean(means):.2f} |")
    if reference is not None and reference in summary.searchers:
        lines += ["", f"Queries to reach {reference}'s final mean validation accuracy "
                  f"(of {summary.queries}; '-' = not reached)", "",
                  "| searcher | " + " | ".join(summary.datasets) + " |",
                  "|---|" + "---|" * len(summary.datasets)]
        for s in summary.searchers:
            cells = []
            for d in summary.datasets:
                q = summary.queries_to_reach(s, d, reference)
                cells.append("-" if q is None else str(q))
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", "Test accuracy x 100 of the best-by-validation architecture after the last "
              "query (mean over seeds; table's best test accuracy in the header)", "",
              "| searcher | " + " | ".join(f"{d} ({100 * summary.best_test[d]:.2f})"
                                            for d in summary.datasets) + " |",
              "|---|" + "---|" * len(summary.datasets)]
    for s in summary.searchers:
        cells = [f"{100 * np.nanmean(summary.test[(s, d)][:, -1]):.2f}" for d in summary.datasets]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def hypervolume_table(summary: Summary) -> str:
    """Markdown: final hypervolume (mean ± s.e.) per searcher and data set."""
    if not summary.hypervolume:
        return ""
    lines = ["Hypervolume after the last query (normalised objectives, reference 1.1; "
             "mean ± s.e. over seeds; higher is better)", "",
             "| searcher | " + " | ".join(summary.datasets) + " | mean |",
             "|---|" + "---|" * (len(summary.datasets) + 1)]
    finals = {k: v[:, -1] for k, v in summary.hypervolume.items()}
    best = {d: max(finals[(s, d)].mean() for s in summary.searchers) for d in summary.datasets}
    for s in summary.searchers:
        cells, means = [], []
        for d in summary.datasets:
            f = finals[(s, d)]
            se = f.std(ddof=1) / math.sqrt(len(f)) if len(f) > 1 else 0.0
            cell = f"{f.mean():.4f} ± {se:.4f}"
            cells.append(f"**{cell}**" if f.mean() >= best[d] - 1e-12 else cell)
            means.append(f.mean())
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {np.mean(means):.4f} |")
    return "\n".join(lines)


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, n)
    return math.ceil(n / cols), cols


def plot_band(ax: Any, x: np.ndarray, ys: np.ndarray, label: str) -> None:
    """One anytime curve on ``ax``: the mean of the rows of ``ys`` (one per seed)
    against ``x``, with a band of ± one standard error (none for a single row)."""
    ys = np.atleast_2d(np.asarray(ys, dtype=float))
    mean = np.nanmean(ys, axis=0)
    se = np.nanstd(ys, axis=0, ddof=1) / math.sqrt(len(ys)) if len(ys) > 1 else 0 * mean
    ax.plot(x[: len(mean)], mean, label=label, linewidth=1.3)
    if len(ys) > 1:
        ax.fill_between(x[: len(mean)], mean - se, mean + se, alpha=0.2)


def plot_curves(summary: Summary, path: str | Path, kind: str = "regret") -> Path:
    """Anytime curves, one panel per data set, one line per searcher (mean, with a band
    of ± one standard error over seeds). ``kind``: ``regret`` (validation regret, log
    scale), ``test`` (test accuracy of the best-by-validation architecture) or
    ``hypervolume``."""
    from naslab.predictors.plots import new_figure, save_figure

    data = {"regret": summary.regret, "test": summary.test,
            "hypervolume": summary.hypervolume}[kind]
    rows, cols = _grid(len(summary.datasets))
    fig = new_figure(3.6 * cols, 2.9 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    x = np.arange(1, summary.queries + 1)
    for i, d in enumerate(summary.datasets):
        ax = axes[i // cols][i % cols]
        for s in summary.searchers:
            if (s, d) not in data:
                continue
            y = data[(s, d)]
            plot_band(ax, x, 100 * y if kind != "hypervolume" else y, s)
        ax.set_title(d, fontsize=10)
        ax.set_xlabel("queries", fontsize=8)
        if kind == "regret":
            ax.set_yscale("log")
            ax.set_ylabel("validation regret (%)", fontsize=8)
        elif kind == "test":
            ax.set_ylabel("test acc. of best-by-val (%)", fontsize=8)
        else:
            ax.set_ylabel("hypervolume", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    for j in range(len(summary.datasets), rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)),
               fontsize=8)
    return save_figure(fig, path)


def write_outputs(summary: Summary, out: str | Path, reference: str | None) -> dict[str, Any]:
    """Write the PNGs, ``regret.md`` and ``summary.json`` under ``out``; return the
    JSON-ready figures."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [plot_curves(summary, out / "anytime_regret.png", "regret"),
             plot_curves(summary, out / "anytime_test.png", "test")]
    text = regret_table(summary, reference)
    if summary.hypervolume:
        files.append(plot_curves(summary, out / "hypervolume.png", "hypervolume"))
        text += "\n\n" + hypervolume_table(summary)
    (out / "regret.md").write_text(text + "\n")
    figures: dict[str, Any] = {"queries": summary.queries, "datasets": summary.datasets,
                               "searchers": summary.searchers, "runs": {}}
    for (s, d), r in summary.regret.items():
        m, se = summary.final_regret(s, d)
        entry = {"seeds": int(r.shape[0]), "final_regret_mean": m, "final_regret_se": se,
                 "final_test_mean": float(np.nanmean(summary.test[(s, d)][:, -1]))}
        if reference is not None and reference in summary.searchers:
            entry["queries_to_reach_reference"] = summary.queries_to_reach(s, d, reference)
        if (s, d) in summary.hypervolume:
            entry["final_hypervolume_mean"] = float(summary.hypervolume[(s, d)][:, -1].mean())
        figures["runs"][f"{s}|{d}"] = entry
    (out / "summary.json").write_text(json.dumps(figures, indent=1) + "\n")
    figures["files"] = [str(f) for f in files] + [str(out / "regret.md"),
                                                  str(out / "summary.json")]
    return figures


def default_processes() -> int:
    """One process per CPU core."""
    return max(1, os.cpu_count() or 1)
