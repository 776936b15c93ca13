"""Per-trial overhead of a table-benchmark search, naslab against Optuna, in one run.

A NAS-Bench-Graph search answers each query from the table in microseconds, so its
wall time per trial is the search machinery's own cost: the searcher, canonical
hashing, the reuse look-up and the store's writes (SQLite file, WAL). Measured here,
in the same process and run:

- naslab ``Study`` with the SQLite store and the searchers ``random``,
  ``evolution``, ``optuna-tpe`` (Optuna's TPE inside naslab, Optuna study in
  memory) and ``optuna-tpe`` with its Optuna study in the same SQLite file;
- Optuna's own loop: ``study.optimize`` with TPE and with random sampling, its
  SQLite ``RDBStorage``, over the same decisions, the objective a table look-up;
- a hand-written loop (random sampling and look-ups, no store): the floor.

Each figure is the wall time of the whole run (study creation included) divided by
the number of trials, median of ``--repeats`` runs.

Usage: ``python benchmarks/search_overhead.py [--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import optuna

from naslab import Study
from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace, bench_key
from naslab.workers.benchmark_table import load_table

DATASET = "cora"


def naslab_run(db: Path, searcher: str, n: int, seed: int, **options) -> float:
    start = time.perf_counter()
    with Study(f"{searcher}-{seed}-{len(options)}", storage=f"sqlite:///{db}",
               space="nasbench_graph", task=DATASET, searcher=searcher, budget=n, seed=seed,
               searcher_options=options or None) as study:
        report = study.run()
    assert report.complete + report.failed == n
    return (time.perf_counter() - start) / n


def optuna_run(db: Path, sampler: str, n: int, seed: int) -> float:
    space = NasBenchGraphSpace(DATASET)
    table = load_table(DATASET)
    decisions = space.decisions()

    def objective(trial: optuna.Trial) -> float:
        chosen = {d.name: trial.suggest_categorical(d.name, list(d.choices)) for d in decisions}
        if all(chosen[f"op{i}"] == "skip" for i in range(1, 5)):
            raise optuna.TrialPruned()  # not in the table
        return float(table[bench_key(chosen)]["valid_perf"])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {"tpe": optuna.samplers.TPESampler(seed=seed),
                "random": optuna.samplers.RandomSampler(seed=seed)}
    start = time.perf_counter()
    study = optuna.create_study(study_name=f"optuna-{sampler}-{seed}",
                                storage=f"sqlite:///{db}", sampler=samplers[sampler],
                                direction="maximize")
    study.optimize(objective, n_trials=n)
    return (time.perf_counter() - start) / n


def hand_loop(n: int, seed: int) -> float:
    space = NasBenchGraphSpace(DATASET)
    table = load_table(DATASET)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(n):
        table[bench_key(space.sample(rng))]["valid_perf"]
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials, for a first look")
    parser.add_argument("--json", type=Path, help="write the headline figures here")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n_naslab, n_optuna = (100, 50) if args.quick else (1000, 300)
    load_table(DATASET)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    cases = {
        "naslab random + SQLite store": lambda db, s: naslab_run(db, "random", n_naslab, s),
        "naslab evolution + SQLite store": lambda db, s: naslab_run(db, "evolution", n_naslab, s),
        "naslab optuna-tpe (Optuna in memory) + SQLite store": lambda db, s: naslab_run(
            db, "optuna-tpe", n_optuna, s, storage="memory"),
        "naslab optuna-tpe (Optuna in the same SQLite file)": lambda db, s: naslab_run(
            db, "optuna-tpe", n_optuna, s),
        "Optuna TPE + its SQLite storage": lambda db, s: optuna_run(db, "tpe", n_optuna, s),
        "Optuna random + its SQLite storage": lambda db, s: optuna_run(db, "random", n_optuna, s),
        "hand loop (no store)": lambda db, s: hand_loop(n_naslab, s),
    }
    results: dict[str, list[float]] = {k: [] for k in cases}
    for rep in range(args.repeats):
        for name, case in cases.items():  # interleaved, so drift hits every case alike
            with tempfile.TemporaryDirectory() as tmp:
                results[name].append(case(Path(tmp) / "bench.db", rep))
    medians = {k: 1000 * statistics.median(v) for k, v in results.items()}
    peer = medians["Optuna TPE + its SQLite storage"]
    print(f"NAS-Bench-Graph ({DATASET}) table search, ms per trial, median of {args.repeats} "
          f"(naslab random/evolution: {n_naslab} trials; Optuna cases: {n_optuna})")
    print(f"{'case':55s} {'ms/trial':>9s} {'vs Optuna TPE':>14s}")
    for name, ms in medians.items():
        print(f"{name:55s} {ms:9.3f} {ms / peer:13.3f}x")
    target = medians["naslab random + SQLite store"]
    print(f"target: naslab with the SQLite store <= 1.5 ms per trial: "
          f"{'met' if target <= 1.5 else 'NOT met'} ({target:.3f} ms)")
    print(f"target: >= 10x faster than Optuna's TPE loop with its SQLite storage: "
          f"{'met' if peer >= 10 * target else 'NOT met'} ({peer / target:.1f}x)")
    if args.json:
        args.json.write_text(json.dumps([
            {"name": name, "value": ms, "unit": "ms/trial", "dataset": DATASET,
             "repeats": args.repeats, "ratio_to_optuna_tpe_sqlite": ms / peer}
            for name, ms in medians.items()], indent=1) + "\n")


if __name__ == "__main__":
    main()
