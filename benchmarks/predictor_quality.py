"""Predictor quality: rank quality against training-set size on NAS-Bench-Graph.

For each data set of NAS-Bench-Graph (26,206 architectures; 2,021 for proteins)
and each predictor, :func:`naslab.predictors.evaluation.learning_curve` fits fresh
predictors on random training sets of each size and scores them on held-out
architectures. The target is the table's ``valid_perf`` (validation accuracy).

Splits. Split ``s`` shuffles a data set's architectures with
``numpy.random.default_rng((seed, s))``; the first ``n`` form the training set of
size ``n`` (so within a split the training sets are nested), and the *test set* is
the last ``--test-size`` (default 5,000) of that order: a fixed-size random
sample of the architectures outside every training set of the split, the same for
every size and every predictor. Where a data set is too small for it (proteins:
2,021 architectures) the test set is everything outside the largest training set
(1,521 with the default sizes). Every predictor runs with the same ``--seed``,
so all of them see identical splits.

Predictors (``--predictors`` picks a subset, by these names):

* ``gnn-gin``, ``gnn-gcn``, ``gnn-dgin``: ``GNNPredictor(model=...)``, defaults
  otherwise (a deep ensemble of 5, pairwise loss), seed ``--seed``;
* ``rf-onehot``, ``gbdt-onehot``, ``rf-path``: ``TreePredictor`` (random forest or
  gradient boosting on the one-hot decision or path encoding), seed ``--seed``;
* ``proxy-params``: ``ProxyPredictor("params")`` on the table's parameter count
  (``para``, millions); ``proxy-latency``: ``ProxyPredictor("latency")`` on the
  table's latency. Latency is a cost, but the proxy predictor fits a line, so it
  learns the sign: it ranks by whichever direction fits the training set.

The GNN and tree predictors see the architecture only (no extra features); the
proxies see their one feature only.

Figures (``rank_report``): Kendall tau, Spearman rho, top-10% precision, and the
coverage of the 1- and 2-sigma intervals (nominal 0.683 and 0.954), each as
mean±std over splits; then, per data set, the Kendall tau at n=100 of the default
GNN (gnn-dgin) against the best tree baseline (the best mean of rf-onehot,
gbdt-onehot and rf-path), with the target "gnn-dgin >= best tree + 0.05", and the
mean fit time per predictor and size (over every data set and split). Fit times
are wall-clock inside the worker processes, which share the machine with each
other (``--jobs``) and with anything else running.

Work is split into units of one (data set, predictor) pair, all splits and sizes,
run in ``--jobs`` worker processes (``spawn`` start method, one torch thread
each); progress lines go to stderr as units finish.

Usage::

    python benchmarks/predictor_quality.py            # full: 9 data sets, sizes 25,
        # 50, 100, 200, 500, 10 splits, test 5000, 8 predictors, 2 jobs
    python benchmarks/predictor_quality.py --quick    # cora and citeseer, sizes 25
        # and 100, 2 splits, test 1000, gnn-dgin, rf-onehot and proxy-params
    python benchmarks/predictor_quality.py --json figures.json --rows rows.jsonl \\
        --plot plots/

Options: ``--datasets``, ``--predictors``, ``--sizes``, ``--splits``,
``--test-size``, ``--seed``, ``--jobs`` override the defaults (of the quick mode
too). ``--rows PATH`` writes every raw row (one per data set, predictor, split and
size; CSV when PATH ends in ``.csv``, else JSON lines); ``--from-rows PATH`` reads
such a file back and prints the tables (and writes ``--json`` / ``--plot``)
without fitting anything. ``--json PATH`` writes the headline figures (tau per
data set, predictor and size; the n=100 difference per data set; the number of
data sets meeting the target) as a JSON list of {name, value, unit, conditions};
``--plot DIR`` writes one tau-vs-size PNG per data set.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from naslab.search_spaces.nasbench_graph import DATASETS

PREDICTORS: tuple[str, ...] = (
    "gnn-gin",
    "gnn-gcn",
    "gnn-dgin",
    "rf-onehot",
    "gbdt-onehot",
    "rf-path",
    "proxy-params",
    "proxy-latency",
)
TREES: tuple[str, ...] = ("rf-onehot", "gbdt-onehot", "rf-path")
DEFAULT_GNN = "gnn-dgin"
METRICS: tuple[str, ...] = (
    "kendall_tau",
    "spearman",
    "top10_precision",
    "coverage_1sigma",
    "coverage_2sigma",
)
TARGET_SIZE = 100
TARGET_MARGIN = 0.05
#: Issue 17: the mean Kendall tau at n=100 over the data sets, without transfer.
MEAN_TAU_TARGET = 0.60
#: Issue 17: the 1- and 2-sigma coverage within 10 points of nominal.
COVERAGE_NOMINAL = {"coverage_1sigma": 0.683, "coverage_2sigma": 0.954}
COVERAGE_SLACK = 0.10
# a rough relative cost per predictor, to start the longest units first
_COST = {"gnn-dgin": 6, "gnn-gin": 5, "gnn-gcn": 5, "rf-path": 2, "gbdt-onehot": 1,
         "rf-onehot": 1, "proxy-params": 0, "proxy-latency": 0}
FULL = {"datasets": list(DATASETS), "sizes": [25, 50, 100, 200, 500], "splits": 10,
        "test_size": 5000, "predictors": list(PREDICTORS)}
QUICK = {"datasets": ["cora", "citeseer"], "sizes": [25, 100], "splits": 2,
         "test_size": 1000, "predictors": ["gnn-dgin", "rf-onehot", "proxy-params"]}


# ------------------------------------------------------------------ worker side

_ARCHS: dict[tuple[int, ...], list] = {}


def _init_worker() -> None:
    """One torch thread; heavy imports done here, so that no fit's time includes them."""
    import sklearn.ensemble  # noqa: F401
    import torch

    import naslab.predictors.baselines  # noqa: F401
    import naslab.predictors.evaluation  # noqa: F401
    import naslab.predictors.gnn  # noqa: F401

    torch.set_num_threads(1)


def load_dataset(dataset: str) -> tuple[list, dict[str, np.ndarray]]:
    """A data set's architectures (key order) and its table's columns.

    Every data set but proteins has the same rows, so the architectures are built
    once per process and shared (building them takes a few seconds).
    """
    from naslab.search_spaces.nasbench_graph import bench_key
    from naslab.workers.benchmark_table import all_architectures, load_table

    table = load_table(dataset)
    keys = tuple(sorted(table))
    archs = _ARCHS.get(keys)
    if archs is None:
        archs = all_architectures(dataset)
        if bench_key(archs[0]) != keys[0] or bench_key(archs[-1]) != keys[-1]:
            raise RuntimeError(f"{dataset}: architectures are not in table-key order")
        _ARCHS[keys] = archs
    columns = {
        name: np.array([float(table[k][name]) for k in keys])
        for name in ("valid_perf", "perf", "latency", "para")
    }
    return archs, columns


def make_predictor(name: str, seed: int) -> Any:
    """A fresh, unfitted predictor called ``name`` (one of :data:`PREDICTORS`)."""
    from naslab.predictors.baselines import ProxyPredictor, TreePredictor
    from naslab.predictors.gnn import GNNPredictor

    if name.startswith("gnn-"):
        return GNNPredictor(model=name[len("gnn-"):], seed=seed)
    if name in TREES:
        model, encoding = name.split("-")
        return TreePredictor(model=model, encoding=encoding, seed=seed)
    if name == "proxy-params":
        return ProxyPredictor("params")
    if name == "proxy-latency":
        return ProxyPredictor("latency")
    raise ValueError(f"unknown predictor {name!r}; known: {', '.join(PREDICTORS)}")


def features_for(name: str, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """The per-architecture features predictor ``name`` is given (proxies only)."""
    if name == "proxy-params":
        return {"params": columns["para"]}
    if name == "proxy-latency":
        return {"latency": columns["latency"]}
    return None


def test_size_for(n_archs: int, test_size: int, sizes: Sequence[int]) -> int:
    """``test_size``, or all that the largest training set leaves when that is less."""
    return min(test_size, n_archs - max(sizes))


def run_unit(dataset: str, predictor: str, sizes: list[int], splits: int, test_size: int,
             seed: int) -> tuple[list[dict[str, Any]], float, int]:
    """Every split and size of one (data set, predictor) pair: rows, seconds, pid."""
    from naslab.predictors.evaluation import learning_curve

    started = time.perf_counter()
    archs, columns = load_dataset(dataset)
    rows = learning_curve(
        lambda: make_predictor(predictor, seed),
        archs,
        columns["valid_perf"],
        sizes=sizes,
        n_splits=splits,
        seed=seed,
        features=features_for(predictor, columns),
        test_size=test_size_for(len(archs), test_size, sizes),
        name=predictor,
    )
    for row in rows:
        row["dataset"] = dataset
    return rows, time.perf_counter() - started, os.getpid()


# ------------------------------------------------------------------ driver side


def run_all(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str]]:
    """Run every unit in ``args.jobs`` processes; rows and the failures' messages."""
    order = {d: i for i, d in enumerate(args.datasets)}
    units = sorted(
        ((d, p) for d in args.datasets for p in args.predictors),
        key=lambda u: (order[u[0]], -_COST.get(u[1], 1)),
    )
    common = (args.sizes, args.splits, args.test_size, args.seed)
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    started = time.perf_counter()
    total = len(units)

    def progress(done: int, unit: tuple[str, str], got: list, seconds: float, pid: int) -> None:
        tau = {r["size"]: [] for r in got}
        for r in got:
            tau[r["size"]].append(r["kendall_tau"])
        taus = " ".join(f"n={s}:{np.mean(v):.3f}" for s, v in sorted(tau.items()))
        print(f"[{done}/{total}] {unit[0]} {unit[1]}: {len(got)} fits in {seconds:.1f} s "
              f"(pid {pid}; elapsed {time.perf_counter() - started:.0f} s) tau {taus}",
              file=sys.stderr, flush=True)

    if args.jobs == 1:
        _init_worker()
        for done, unit in enumerate(units, 1):
            try:
                got, seconds, pid = run_unit(*unit, *common)
            except Exception:  # reported; the other units go on
                failures.append(f"{unit[0]} {unit[1]}:\n{traceback.format_exc()}")
                print(f"[{done}/{total}] {unit[0]} {unit[1]}: FAILED", file=sys.stderr)
                continue
            rows.extend(got)
            progress(done, unit, got, seconds, pid)
        return rows, failures

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.jobs, mp_context=context, initializer=_init_worker) as pool:
        pending = {pool.submit(run_unit, *unit, *common): unit for unit in units}
        done = 0
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                unit = pending.pop(future)
                done += 1
                try:
                    got, seconds, pid = future.result()
                except Exception as exc:  # reported; the other units go on
                    failures.append(f"{unit[0]} {unit[1]}: {exc!r}")
                    print(f"[{done}/{total}] {unit[0]} {unit[1]}: FAILED ({exc!r})",
                          file=sys.stderr, flush=True)
                    continue
                rows.extend(got)
                progress(done, unit, got, seconds, pid)
    return rows, failures


def sort_rows(rows: list[dict[str, Any]], datasets: Sequence[str],
              predictors: Sequence[str]) -> list[dict[str, Any]]:
    """Rows in a fixed order (data set, predictor, split, size), whatever finished first."""
    d_order = {d: i for i, d in enumerate(datasets)}
    p_order = {p: i for i, p in enumerate(predictors)}
    return sorted(rows, key=lambda r: (d_order.get(r["dataset"], 99), p_order.get(
        r["predictor"], 99), r["predictor"], r["split"], r["size"]))


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        fields = list(dict.fromkeys(k for r in rows for k in r))
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    else:
        with path.open("w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as f:
            return [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(f)]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def gap_at_target(rows: list[dict[str, Any]], dataset: str) -> dict[str, Any] | None:
    """The default GNN vs the best tree baseline, Kendall tau at n=100, on one data set."""
    by: dict[str, dict[int, float]] = {}
    for r in rows:
        if r["dataset"] == dataset and r["size"] == TARGET_SIZE:
            by.setdefault(r["predictor"], {})[r["split"]] = float(r["kendall_tau"])
    trees = [t for t in TREES if t in by]
    if DEFAULT_GNN not in by or not trees:
        return None
    mean = {p: float(np.mean(list(v.values()))) for p, v in by.items()}
    best = max(trees, key=lambda t: mean[t])
    shared = sorted(set(by[DEFAULT_GNN]) & set(by[best]))
    paired = np.array([by[DEFAULT_GNN][s] - by[best][s] for s in shared])
    diff = mean[DEFAULT_GNN] - mean[best]
    return {
        "gnn": mean[DEFAULT_GNN],
        "gnn_std": _std(list(by[DEFAULT_GNN].values())),
        "best_tree": best,
        "tree": mean[best],
        "tree_std": _std(list(by[best].values())),
        "diff": diff,
        "diff_std": _std(list(paired)),
        "trees_compared": trees,
        "met": bool(diff >= TARGET_MARGIN - 1e-12),
    }


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _report_dataset(rows: list[dict[str, Any]], dataset: str,
                    args: argparse.Namespace) -> list[dict[str, Any]]:
    """One data set's metric tables (and its plot); its tau figures."""
    from naslab.predictors.evaluation import format_table, summarise

    mine = [r for r in rows if r["dataset"] == dataset]
    splits = len({r["split"] for r in mine})
    tests = sorted({int(r["n"]) for r in mine})
    print(f"=== {dataset}: target valid_perf; {splits} splits; test set {tests[0]} "
          f"architectures per split ===")
    summary = summarise(mine)
    for metric in METRICS:
        print(format_table(summary, metric))
        print()
    figures = [{
        "name": f"tau_{dataset}_{entry['predictor']}_n{entry['size']}",
        "value": round(entry["kendall_tau_mean"], 4),
        "unit": "kendall_tau",
        "conditions": {"dataset": dataset, "predictor": entry["predictor"],
                       "size": entry["size"], "std": round(entry["kendall_tau_std"], 4),
                       "splits": entry["n_splits"], "test_size": tests[0],
                       "target": "valid_perf"},
    } for entry in summary]
    if args.plot:
        from naslab.predictors.plots import plot_learning_curve

        path = plot_learning_curve(
            summary, Path(args.plot) / f"tau_{dataset}.png",
            title=f"NAS-Bench-Graph {dataset}: Kendall τ vs training-set size "
                  f"({splits} splits, test {tests[0]})")
        print(f"(plot written to {path})")
        print()
    return figures


def _report_fit_seconds(rows: list[dict[str, Any]],
                        args: argparse.Namespace) -> list[dict[str, Any]]:
    """The fit-time table over every data set and split; its figures."""
    from naslab.predictors.evaluation import format_table, summarise

    print("=== fit seconds (mean±std over every data set and split) ===")
    print(format_table(summarise(rows), "fit_seconds", digits=2))
    print()
    return [{
        "name": f"fit_seconds_{entry['predictor']}_n{entry['size']}",
        "value": round(entry["fit_seconds_mean"], 3), "unit": "s",
        "conditions": {"predictor": entry["predictor"], "size": entry["size"],
                       "over": "every data set and split", "jobs": args.jobs},
    } for entry in summarise(rows)]


def _report_target(rows: list[dict[str, Any]], datasets: Sequence[str]) -> list[dict[str, Any]]:
    """The default GNN against the best tree baseline at n=100, per data set; its figures."""
    present = [t for t in TREES if any(r["predictor"] == t for r in rows)]
    print(f"=== Kendall tau at n={TARGET_SIZE}: {DEFAULT_GNN} vs the best tree baseline "
          f"(best mean of {', '.join(present) or 'none run'}) ===")
    gaps = {d: gap_at_target(rows, d) for d in datasets}
    measured = {d: g for d, g in gaps.items() if g is not None}
    if not measured:
        print(f"(not measured: needs size {TARGET_SIZE}, {DEFAULT_GNN} and a tree baseline)")
        return []
    figures: list[dict[str, Any]] = []
    width = max(len(d) for d in measured)
    header = (f"{'dataset':<{width}}  {DEFAULT_GNN:>13}  {'best tree':>13}  {'which':<11}  "
              f"{'difference':>14}  met")
    print(header)
    print("-" * len(header))
    for d, g in measured.items():
        print(f"{d:<{width}}  {g['gnn']:>7.3f}±{g['gnn_std']:.3f}  "
              f"{g['tree']:>7.3f}±{g['tree_std']:.3f}  {g['best_tree']:<11}  "
              f"{g['diff']:>+8.3f}±{g['diff_std']:.3f}  {'yes' if g['met'] else 'no'}")
        figures.append({
            "name": f"tau_gap_{DEFAULT_GNN}_vs_best_tree_n{TARGET_SIZE}_{d}",
            "value": round(g["diff"], 4), "unit": "kendall_tau",
            "conditions": {"dataset": d, "gnn_tau": round(g["gnn"], 4),
                           "best_tree": g["best_tree"], "tree_tau": round(g["tree"], 4),
                           "paired_std": round(g["diff_std"], 4),
                           "trees_compared": g["trees_compared"]},
        })
    k = sum(g["met"] for g in measured.values())
    print("(± is the std over splits; the difference's is that of the per-split paired "
          "difference)")
    print(f"target ({DEFAULT_GNN} tau at {TARGET_SIZE} >= best tree + {TARGET_MARGIN}): "
          f"met on {k} of {len(measured)} data sets")
    figures.append({
        "name": "target_met_datasets", "value": k, "unit": "data sets",
        "conditions": {"of": len(measured), "size": TARGET_SIZE, "margin": TARGET_MARGIN,
                       "gnn": DEFAULT_GNN, "trees": list(TREES)},
    })
    return figures


def _report_issue17(rows: list[dict[str, Any]], datasets: Sequence[str]
                    ) -> list[dict[str, Any]]:
    """Issue 17's targets for each predictor measured at n=100: mean Kendall tau over
    the data sets >= MEAN_TAU_TARGET, and the mean 1- and 2-sigma coverage within
    COVERAGE_SLACK of nominal (predictors with an uncertainty only)."""
    at = [r for r in rows if r["size"] == TARGET_SIZE and r["dataset"] in datasets]
    figures: list[dict[str, Any]] = []
    names = list(dict.fromkeys(r["predictor"] for r in at))
    if not names:
        return figures
    print(f"=== issue 17 at n={TARGET_SIZE}: mean tau over {len(datasets)} data sets >= "
          f"{MEAN_TAU_TARGET}; coverage within {COVERAGE_SLACK:.2f} of "
          f"{COVERAGE_NOMINAL['coverage_1sigma']}/{COVERAGE_NOMINAL['coverage_2sigma']} ===")
    for name in names:
        mine = [r for r in at if r["predictor"] == name]
        per = [float(np.mean([r["kendall_tau"] for r in mine if r["dataset"] == d]))
               for d in datasets if any(r["dataset"] == d for r in mine)]
        tau = float(np.mean(per))
        cover = {k: float(np.mean([r[k] for r in mine])) for k in COVERAGE_NOMINAL}
        has_std = cover["coverage_2sigma"] > 0
        ok_cover = has_std and all(abs(cover[k] - v) <= COVERAGE_SLACK
                                   for k, v in COVERAGE_NOMINAL.items())
        print(f"{name:<14} tau {tau:.3f} ({'met' if tau >= MEAN_TAU_TARGET else 'NOT met'}; "
              f"{len(per)} data sets)  coverage {cover['coverage_1sigma']:.3f}/"
              f"{cover['coverage_2sigma']:.3f} "
              f"({'met' if ok_cover else 'no uncertainty' if not has_std else 'NOT met'})")
        figures.append({"name": f"mean_tau_n{TARGET_SIZE}_{name}", "value": round(tau, 4),
                        "unit": "kendall_tau",
                        "conditions": {"datasets": len(per), "target": MEAN_TAU_TARGET,
                                       **{k: round(v, 4) for k, v in cover.items()}}})
    return figures


def report(rows: list[dict[str, Any]], datasets: Sequence[str], args: argparse.Namespace,
           wall: float | None) -> list[dict[str, Any]]:
    """Print every table; return the headline figures."""
    datasets = [d for d in datasets if any(r["dataset"] == d for r in rows)]
    figures: list[dict[str, Any]] = []
    for dataset in datasets:
        figures += _report_dataset(rows, dataset, args)
    figures += _report_fit_seconds(rows, args)
    target = _report_target(rows, datasets)
    figures += target
    figures += _report_issue17(rows, datasets)
    if target and wall is not None:
        figures.append({"name": "benchmark_wall", "value": round(wall, 1), "unit": "s",
                        "conditions": {"jobs": args.jobs, "quick": bool(args.quick)}})
    return figures


def _csv_list(text: str, kind: type = str) -> list:
    return [kind(t.strip()) for t in text.split(",") if t.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="cora and citeseer, sizes 25,100, 2 splits, test 1000, "
                             "gnn-dgin, rf-onehot, proxy-params")
    parser.add_argument("--datasets", type=_csv_list, help="comma-separated (default: all 9)")
    parser.add_argument("--predictors", type=_csv_list,
                        help=f"comma-separated subset of {','.join(PREDICTORS)}")
    parser.add_argument("--sizes", type=lambda t: _csv_list(t, int),
                        help="training-set sizes (default 25,50,100,200,500)")
    parser.add_argument("--splits", type=int, help="random splits per size (default 10)")
    parser.add_argument("--test-size", type=int,
                        help="test architectures per split (default 5000; capped at what the "
                             "largest training set leaves)")
    parser.add_argument("--seed", type=int, default=0, help="seed of splits and predictors")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--json", type=Path, help="write the headline figures here")
    parser.add_argument("--rows", type=Path, help="write every raw row here (.csv or JSON lines)")
    parser.add_argument("--from-rows", type=Path,
                        help="read rows written by --rows and report them; fits nothing")
    parser.add_argument("--plot", type=Path, help="write tau-vs-size PNGs into this folder")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, list(value) if isinstance(value, list) else value)
    bad = [d for d in args.datasets if d not in DATASETS]
    if bad:
        parser.error(f"unknown data sets {bad}; known: {', '.join(DATASETS)}")
    bad = [p for p in args.predictors if p not in PREDICTORS]
    if bad:
        parser.error(f"unknown predictors {bad}; known: {', '.join(PREDICTORS)}")
    if args.jobs < 1 or args.splits < 1 or args.test_size < 2 or not args.sizes:
        parser.error("--jobs and --splits must be >= 1, --test-size >= 2, --sizes non-empty")
    if min(args.sizes) < 2:
        parser.error("training-set sizes must be at least 2")
    args.sizes = sorted(set(args.sizes))
    smallest = 2021 if "proteins" in args.datasets else 26206
    if smallest - max(args.sizes) < 2:
        parser.error(f"size {max(args.sizes)} leaves no test set on a data set of {smallest}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # inherited by the spawned workers
    wall: float | None = None
    failures: list[str] = []
    if args.from_rows:
        rows = read_rows(args.from_rows)
        datasets = list(dict.fromkeys(r["dataset"] for r in rows))
        predictors = list(dict.fromkeys(r["predictor"] for r in rows))
        print(f"rows read from {args.from_rows}: {len(rows)}")
    else:
        datasets, predictors = args.datasets, args.predictors
        print(f"predictor quality on NAS-Bench-Graph: data sets {','.join(datasets)}; "
              f"predictors {','.join(predictors)}; sizes {','.join(map(str, args.sizes))}; "
              f"{args.splits} splits; test {args.test_size}; seed {args.seed}; "
              f"{args.jobs} jobs; {os.cpu_count()} cores")
        started = time.perf_counter()
        rows, failures = run_all(args)
        wall = time.perf_counter() - started
        print(f"{len(rows)} fits in {wall:.1f} s wall")
    print()
    rows = sort_rows(rows, datasets, predictors)
    if args.rows and not args.from_rows:
        write_rows(rows, args.rows)
    if not rows:
        print("no rows: nothing to report")
        figures: list[dict[str, Any]] = []
    else:
        figures = report(rows, datasets, args, wall)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, default=_jsonable))
    if failures:
        print(f"\nWARNING: {len(failures)} unit(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


if __name__ == "__main__":
    sys.exit(main())
