"""Predictor transfer: does pre-training on other data sets help with few samples?

NAS-Bench-Graph has the same architectures on every data set (26,206 of them;
proteins' 2,021 use a subset of the operations), so this measures transfer across
*tasks* (the same architectures, their accuracies on another graph data set), not
across search spaces.

For each target data set T:

1. **Pre-training** (once per target): a ``GNNPredictor(max_steps=2000)`` (the default
   ``dgin``, with the step bound the guided searchers pre-train with) is fitted
   in a single call on ``--pretrain-size`` random architectures (default 1,000) of
   each *source* data set: every data set of NAS-Bench-Graph but T and proteins
   (``--include-proteins`` adds proteins as a source; it is left out by default
   because its space differs, though its operations are a subset of the others').
   Targets are ``valid_perf``, z-scored per source data set, so the sources'
   scales do not mix. A source's sample depends only on ``--seed`` and the source,
   not on T. No label of T is used; the pre-training sample can contain T's test
   architectures, with their *source* accuracies only, as when the other tasks'
   tables are fully known.
2. **Per split** ``s`` (default 5): T's architectures are shuffled with
   ``numpy.random.default_rng((seed, s))`` (as in
   :func:`naslab.predictors.evaluation.learning_curve`): the first ``n`` are the
   training set of size ``n`` (nested across sizes), the last ``--test-size``
   (default 5,000; capped at what the largest training set leaves) the test set.
   For each ``n`` (default 25, 50, 100):

   * *scratch*: a fresh ``GNNPredictor(seed=seed)`` fitted on the n;
   * *fine-tuned*: a copy of the pre-trained predictor
     (``predictor_from_bytes(pre.to_bytes())``) given ``fine_tune`` on the same n
     (its defaults: a third of the learning rate, early stopping as in ``fit``);

   and once per split, *zero-shot*: the pre-trained predictor as is.

The figure is the Kendall tau on T's test set; *gain* is fine-tuned minus scratch,
paired by split. The table gives mean±std over splits per target and n, then the
mean over targets per n. Fit times are wall-clock inside worker processes that
share the machine.

Work units: one pre-training per target, then one unit per (target, split),
submitted when that target's pre-training is done, in ``--jobs`` worker
processes (``spawn``, one torch thread each); progress lines go to stderr.

Usage::

    python benchmarks/predictor_transfer.py          # full: the 8 targets but
        # proteins, pretrain 1000 per source, n 25,50,100, 5 splits, 2 jobs
    python benchmarks/predictor_transfer.py --quick  # cora and citeseer, pretrain
        # 200 per source, n 25,50, 2 splits
    python benchmarks/predictor_transfer.py --json figures.json --rows rows.jsonl

``--targets``, ``--sizes``, ``--splits``, ``--pretrain-size``, ``--test-size``,
``--seed``, ``--jobs`` override the defaults (of the quick mode too). ``--json
PATH`` writes the headline figures as a JSON list of {name, value, unit,
conditions}; ``--rows PATH`` writes one JSON line per (target, split, n).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from naslab.search_spaces.nasbench_graph import DATASETS

#: Issue 17: the mean Kendall tau at n=100 with transfer from the other data sets.
TRANSFER_TAU_TARGET = 0.70
TRANSFER_TARGET_SIZE = 100
FULL = {"targets": [d for d in DATASETS if d != "proteins"], "pretrain_size": 1000,
        "sizes": [25, 50, 100], "splits": 5, "test_size": 5000}
QUICK = {"targets": ["cora", "citeseer"], "pretrain_size": 200, "sizes": [25, 50],
         "splits": 2, "test_size": 5000}

# ------------------------------------------------------------------ worker side

_ARCHS: dict[tuple[int, ...], list] = {}


def _init_worker() -> None:
    """One torch thread; heavy imports done here, so that no fit's time includes them."""
    import torch

    import naslab.predictors.gnn  # noqa: F401
    import naslab.predictors.metrics  # noqa: F401

    torch.set_num_threads(1)


def load_dataset(dataset: str) -> tuple[list, np.ndarray]:
    """A data set's architectures (table-key order) and their ``valid_perf``.

    Every data set but proteins has the same rows, so the architectures are built
    once per process and shared.
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
    return archs, np.array([float(table[k]["valid_perf"]) for k in keys])


def sources_for(target: str, include_proteins: bool) -> list[str]:
    return [d for d in DATASETS if d != target and (include_proteins or d != "proteins")]


def pretrain(target: str, sources: list[str], pretrain_size: int,
             seed: int) -> dict[str, Any]:
    """Fit the pre-trained GNN for ``target`` on ``sources``; its bytes and timings."""
    from naslab.predictors.gnn import GNNPredictor
    from naslab.searchers.predictor_guide import PRETRAIN_STEPS

    started = time.perf_counter()
    archs: list = []
    targets: list[np.ndarray] = []
    for source in sources:
        src_archs, y = load_dataset(source)
        rng = np.random.default_rng((seed, 10_000 + DATASETS.index(source)))
        pick = rng.choice(len(src_archs), min(pretrain_size, len(src_archs)), replace=False)
        z = y[pick]
        z = (z - z.mean()) / (z.std() if z.std() > 1e-12 else 1.0)
        archs.extend(src_archs[i] for i in pick)
        targets.append(z)
    load_seconds = time.perf_counter() - started
    predictor = GNNPredictor(seed=seed, max_steps=PRETRAIN_STEPS)  # as the searchers do
    predictor.fit(archs, np.concatenate(targets))
    return {
        "target": target,
        "sources": sources,
        "n_pretrain": len(archs),
        "bytes": predictor.to_bytes(),
        "fit_seconds": predictor.fit_seconds_,
        "load_seconds": load_seconds,
        "epochs": list(predictor.epochs_),
        "pid": os.getpid(),
    }


def run_split(target: str, split: int, sizes: list[int], test_size: int, seed: int,
              pre_bytes: bytes) -> dict[str, Any]:
    """Zero-shot, then scratch and fine-tuned at each size, on one split of ``target``."""
    from naslab.predictors.base import predictor_from_bytes
    from naslab.predictors.gnn import GNNPredictor
    from naslab.predictors.metrics import kendall_tau

    started = time.perf_counter()
    archs, y = load_dataset(target)
    n_total = len(archs)
    test_n = min(test_size, n_total - max(sizes))
    order = np.random.default_rng((seed, split)).permutation(n_total)
    test = order[n_total - test_n:]
    test_archs, y_test = [archs[i] for i in test], y[test]
    zero_shot = kendall_tau(y_test, predictor_from_bytes(pre_bytes).predict(test_archs).mean)
    rows = []
    for size in sorted(sizes):
        train = order[:size]
        train_archs, y_train = [archs[i] for i in train], y[train]
        scratch = GNNPredictor(seed=seed).fit(train_archs, y_train)
        scratch_tau = kendall_tau(y_test, scratch.predict(test_archs).mean)
        tuned = predictor_from_bytes(pre_bytes)
        tuned.fine_tune(train_archs, y_train)
        tuned_tau = kendall_tau(y_test, tuned.predict(test_archs).mean)
        rows.append({
            "target": target, "split": split, "size": size, "test_size": int(test_n),
            "scratch_tau": scratch_tau, "finetuned_tau": tuned_tau,
            "gain": tuned_tau - scratch_tau, "zeroshot_tau": zero_shot,
            "scratch_seconds": scratch.fit_seconds_, "finetune_seconds": tuned.fit_seconds_,
            "scratch_epochs": float(np.mean(scratch.epochs_)),
            "finetune_epochs": float(np.mean(tuned.epochs_)),
        })
    return {"rows": rows, "seconds": time.perf_counter() - started, "pid": os.getpid()}


# ------------------------------------------------------------------ driver side


class _Progress:
    """What the runs have given so far (pre-trainings, rows, failures), and the log lines."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.perf_counter()
        self.total = len(args.targets) * (1 + args.splits)
        self.done = 0
        self.pretrains: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = []
        self.failures: list[str] = []

    def log(self, text: str) -> None:
        print(f"[{self.done}/{self.total}] {text} "
              f"(elapsed {time.perf_counter() - self.started:.0f} s)", file=sys.stderr, flush=True)

    def pretrain_args(self, target: str) -> tuple:
        args = self.args
        return (target, sources_for(target, args.include_proteins), args.pretrain_size,
                args.seed)

    def split_args(self, target: str, split: int, pre: dict[str, Any]) -> tuple:
        return (target, split, self.args.sizes, self.args.test_size, self.args.seed,
                pre["bytes"])

    def took_pretrain(self, pre: dict[str, Any]) -> None:
        self.pretrains.append({k: v for k, v in pre.items() if k != "bytes"})
        self.log(f"{pre['target']} pre-trained on {pre['n_pretrain']} architectures of "
                 f"{len(pre['sources'])} sources in {pre['fit_seconds']:.1f} s "
                 f"(epochs {pre['epochs']}; pid {pre['pid']})")

    def took_split(self, target: str, split: int, out: dict[str, Any]) -> None:
        self.rows.extend(out["rows"])
        cells = " ".join(f"n={r['size']}: {r['scratch_tau']:.3f}->{r['finetuned_tau']:.3f}"
                         for r in out["rows"])
        self.log(f"{target} split {split} in {out['seconds']:.1f} s: zero-shot "
                 f"{out['rows'][0]['zeroshot_tau']:.3f}; scratch->fine-tuned {cells}")

    def failed(self, what: str, message: str, skipped: int = 0) -> None:
        self.done += skipped
        self.failures.append(f"{what}: {message}")
        self.log(f"{what} FAILED" + ("" if "\n" in message else f" ({message})"))


def _run_serial(progress: _Progress) -> None:
    """Every unit in this process, one after the other."""
    _init_worker()
    splits = progress.args.splits
    for target in progress.args.targets:
        progress.done += 1
        try:
            pre = pretrain(*progress.pretrain_args(target))
        except Exception:  # reported; the other targets go on
            progress.failed(f"{target} pre-training", traceback.format_exc(), splits)
            continue
        progress.took_pretrain(pre)
        for split in range(splits):
            progress.done += 1
            try:
                progress.took_split(target, split,
                                    run_split(*progress.split_args(target, split, pre)))
            except Exception:  # reported; the other splits go on
                progress.failed(f"{target} split {split}", traceback.format_exc())


def _run_pool(progress: _Progress) -> None:
    """Every unit in ``--jobs`` worker processes; a target's splits follow its pre-training."""
    args = progress.args
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.jobs, mp_context=context, initializer=_init_worker) as pool:
        pending: dict[Future, tuple[str, int | None]] = {
            pool.submit(pretrain, *progress.pretrain_args(t)): (t, None) for t in args.targets
        }
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                target, split = pending.pop(future)
                what = f"{target} " + ("pre-training" if split is None else f"split {split}")
                progress.done += 1
                try:
                    out = future.result()
                except Exception as exc:  # reported; the other units go on
                    progress.failed(what, repr(exc), args.splits if split is None else 0)
                    continue
                if split is None:
                    progress.took_pretrain(out)
                    for s in range(args.splits):
                        future = pool.submit(run_split, *progress.split_args(target, s, out))
                        pending[future] = (target, s)
                else:
                    progress.took_split(target, split, out)


def run_all(args: argparse.Namespace) -> tuple[list[dict], list[dict], list[str]]:
    """Every pre-training and split; returns pre-training infos, rows, failures."""
    progress = _Progress(args)
    if args.jobs == 1:
        _run_serial(progress)
    else:
        _run_pool(progress)
    return progress.pretrains, progress.rows, progress.failures


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


Cells = dict[tuple[str, int], dict[str, tuple[float, float]]]


def _report_pretrains(pretrains: list[dict], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The pre-training table; its figures."""
    figures: list[dict[str, Any]] = []
    order = {t: i for i, t in enumerate(args.targets)}
    print("pre-training (one per target; sources z-scored, one fit call):")
    for p in sorted(pretrains, key=lambda p: order[p["target"]]):
        print(f"  {p['target']:<10} {p['n_pretrain']:>6} architectures from "
              f"{','.join(p['sources'])}: fit {p['fit_seconds']:.1f} s, "
              f"epochs (per member) {p['epochs']}")
        figures.append({
            "name": f"pretrain_seconds_{p['target']}", "value": round(p["fit_seconds"], 2),
            "unit": "s", "conditions": {"target": p["target"], "sources": p["sources"],
                                        "n_pretrain": p["n_pretrain"], "jobs": args.jobs},
        })
    print()
    return figures


def _cells(rows: list[dict], args: argparse.Namespace) -> Cells:
    """Mean and std over splits of every figure, per (target, size) that has rows."""
    cells: Cells = {}
    for target in args.targets:
        for size in args.sizes:
            mine = [r for r in rows if r["target"] == target and r["size"] == size]
            if mine:
                cells[(target, size)] = {
                    key: _mean_std([r[key] for r in mine])
                    for key in ("scratch_tau", "finetuned_tau", "gain", "zeroshot_tau",
                                "scratch_seconds", "finetune_seconds")
                } | {"splits": (len(mine), 0.0), "test": (mine[0]["test_size"], 0.0)}
    return cells


def _cell(ms: tuple[float, float], sign: str = "") -> str:
    return f"{ms[0]:{sign}.3f}±{ms[1]:.3f}"


def _report_targets(cells: Cells, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The table per target and size; its figures."""
    figures: list[dict[str, Any]] = []
    tests = sorted({int(c["test"][0]) for c in cells.values()})
    print(f"Kendall tau on the target's test set ({'/'.join(map(str, tests))} architectures "
          "per split), mean±std over splits; gain = fine-tuned - scratch, paired by split")
    header = (f"{'target':<10} {'n':>4}  {'scratch':>13}  {'fine-tuned':>13}  {'gain':>14}  "
              f"{'zero-shot':>13}  {'fit s scratch/ft':>16}")
    print(header)
    print("-" * len(header))
    for (target, size), c in cells.items():
        print(f"{target:<10} {size:>4}  {_cell(c['scratch_tau']):>13}  "
              f"{_cell(c['finetuned_tau']):>13}  {_cell(c['gain'], '+'):>14}  "
              f"{_cell(c['zeroshot_tau']):>13}  "
              f"{c['scratch_seconds'][0]:>7.1f}/{c['finetune_seconds'][0]:.1f}")
        cond = {"target": target, "size": size, "splits": int(c["splits"][0]),
                "test_size": int(c["test"][0]), "pretrain_size": args.pretrain_size}
        for key, name in (("scratch_tau", "scratch"), ("finetuned_tau", "finetuned"),
                          ("gain", "gain"), ("zeroshot_tau", "zeroshot")):
            figures.append({"name": f"tau_{name}_{target}_n{size}",
                            "value": round(c[key][0], 4), "unit": "kendall_tau",
                            "conditions": {**cond, "std": round(c[key][1], 4)}})
    print()
    return figures


def _report_means(cells: Cells, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The mean over targets per size; its figures."""
    figures: list[dict[str, Any]] = []
    print("mean over targets, per n:")
    print(f"{'n':>4}  {'scratch':>8}  {'fine-tuned':>10}  {'gain':>16}  {'zero-shot':>9}  "
          "targets with gain > 0")
    for size in args.sizes:
        per = [c for (t, s), c in cells.items() if s == size]
        if not per:
            continue
        scratch = np.mean([c["scratch_tau"][0] for c in per])
        tuned = np.mean([c["finetuned_tau"][0] for c in per])
        gain_mean, gain_std = _mean_std([c["gain"][0] for c in per])
        zero = np.mean([c["zeroshot_tau"][0] for c in per])
        positive = sum(c["gain"][0] > 0 for c in per)
        print(f"{size:>4}  {scratch:>8.3f}  {tuned:>10.3f}  {gain_mean:>+8.3f}±{gain_std:.3f}  "
              f"{zero:>9.3f}  {positive} of {len(per)}")
        figures.append({
            "name": f"mean_gain_n{size}", "value": round(gain_mean, 4), "unit": "kendall_tau",
            "conditions": {"size": size, "targets": len(per), "std_over_targets":
                           round(gain_std, 4), "targets_with_gain": positive,
                           "mean_scratch": round(float(scratch), 4),
                           "mean_finetuned": round(float(tuned), 4),
                           "mean_zeroshot": round(float(zero), 4),
                           "pretrain_size": args.pretrain_size, "splits": args.splits},
        })
    print("(± in the last table: std over targets of the per-target mean gain)")
    at = [c for (t, s), c in cells.items() if s == TRANSFER_TARGET_SIZE]
    if at:
        tuned = float(np.mean([c["finetuned_tau"][0] for c in at]))
        print(f"issue 17: fine-tuned mean tau at n={TRANSFER_TARGET_SIZE} {tuned:.3f} >= "
              f"{TRANSFER_TAU_TARGET}: {'met' if tuned >= TRANSFER_TAU_TARGET else 'NOT met'}")
    return figures


def report(pretrains: list[dict], rows: list[dict], args: argparse.Namespace,
           wall: float) -> list[dict[str, Any]]:
    """Print the tables; return the headline figures."""
    figures = _report_pretrains(pretrains, args)
    cells = _cells(rows, args)
    if not cells:
        print("no results")
        return figures
    figures += _report_targets(cells, args)
    figures += _report_means(cells, args)
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
                        help="targets cora,citeseer; pretrain 200 per source; n 25,50; 2 splits")
    parser.add_argument("--targets", type=_csv_list,
                        help="comma-separated target data sets (default: all but proteins)")
    parser.add_argument("--pretrain-size", type=int,
                        help="random architectures per source data set (default 1000)")
    parser.add_argument("--include-proteins", action="store_true",
                        help="use proteins as a source too (its space is a subset)")
    parser.add_argument("--sizes", type=lambda t: _csv_list(t, int),
                        help="target training-set sizes (default 25,50,100)")
    parser.add_argument("--splits", type=int, help="random splits per target (default 5)")
    parser.add_argument("--test-size", type=int, help="test architectures per split (5000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of samples and predictors")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--json", type=Path, help="write the headline figures here")
    parser.add_argument("--rows", type=Path, help="write one JSON line per (target, split, n)")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, list(value) if isinstance(value, list) else value)
    bad = [d for d in args.targets if d not in DATASETS]
    if bad:
        parser.error(f"unknown data sets {bad}; known: {', '.join(DATASETS)}")
    if args.jobs < 1 or args.splits < 1 or args.pretrain_size < 2 or args.test_size < 2:
        parser.error("--jobs and --splits must be >= 1, --pretrain-size and --test-size >= 2")
    if not args.sizes or min(args.sizes) < 2:
        parser.error("--sizes must be integers >= 2")
    args.sizes = sorted(set(args.sizes))
    smallest = 2021 if "proteins" in args.targets else 26206
    if smallest - max(args.sizes) < 2:
        parser.error(f"size {max(args.sizes)} leaves no test set on a data set of {smallest}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # inherited by the spawned workers
    print(f"predictor transfer on NAS-Bench-Graph (dgin): targets {','.join(args.targets)}; "
          f"pretrain {args.pretrain_size} per source"
          f"{' (proteins included)' if args.include_proteins else ' (proteins excluded)'}; "
          f"n {','.join(map(str, args.sizes))}; {args.splits} splits; test {args.test_size}; "
          f"seed {args.seed}; {args.jobs} jobs; {os.cpu_count()} cores")
    started = time.perf_counter()
    pretrains, rows, failures = run_all(args)
    wall = time.perf_counter() - started
    print(f"done in {wall:.1f} s wall")
    print()
    order = {t: i for i, t in enumerate(args.targets)}
    rows.sort(key=lambda r: (order[r["target"]], r["split"], r["size"]))
    if args.rows:
        args.rows.parent.mkdir(parents=True, exist_ok=True)
        args.rows.write_text("".join(json.dumps(r) + "\n" for r in rows))
    figures = report(pretrains, rows, args, wall)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))
    if failures:
        print(f"\nWARNING: {len(failures)} unit(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
