"""Wall time of naslab searches, end to end, with the SQLite store.

Two measurements, in one run:

1. ``train``: the default search (nb201 on digits, regularized evolution, real
   training), its wall time, networks trained and time per network.
2. ``table``: a NAS-Bench-Graph search (table look-ups), so the per-trial cost is
   naslab's own overhead: searcher, canonical hashing, reuse look-up, store writes.
   It is compared with a hand-written loop doing the same look-ups with no store
   (the ratio is what the store and bookkeeping cost).

Usage: ``python benchmarks/search_speed.py [--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from naslab import Study
from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace
from naslab.workers.benchmark_table import NasBenchGraphEvaluator
from naslab.workers.evaluator import NullReporter


def run_study(db: Path, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    with Study(storage=f"sqlite:///{db}", **kwargs) as study:
        report = study.run()
    return time.perf_counter() - start, report


def hand_loop(n: int, dataset: str, seed: int) -> float:
    """Random sampling and table look-ups only: the floor for a table search."""
    space, evaluator = NasBenchGraphSpace(dataset), NasBenchGraphEvaluator(dataset)
    rng = np.random.default_rng(seed)
    evaluator.evaluate(space, space.sample(rng), 200, seed, NullReporter())  # load table
    start = time.perf_counter()
    for _ in range(n):
        evaluator.evaluate(space, space.sample(rng), 200, seed, NullReporter())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small budgets, for a first look")
    parser.add_argument("--json", type=Path, help="write the headline figures here")
    args = parser.parse_args()
    train_budget, table_budget = (4, 100) if args.quick else (30, 1000)

    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        wall, rep = run_study(tmpdir / "train.db", space="nb201", task="digits",
                              searcher="evolution", budget=train_budget, seed=0)
        figures += [
            {"name": "default_search_wall", "value": round(wall, 2), "unit": "s",
             "conditions": {"space": "nb201(channels=8,cells_per_stage=1)", "task": "digits",
                            "epochs": 10, "trials": train_budget}},
            {"name": "default_search_per_network", "value": round(wall / train_budget, 3),
             "unit": "s", "conditions": {"networks_trained": rep.trained_this_run}},
        ]
        NasBenchGraphEvaluator("cora").evaluate(  # table loading is not search overhead
            NasBenchGraphSpace("cora"), NasBenchGraphSpace("cora").sample(
                np.random.default_rng(0)), 200, 0, NullReporter())
        wall_t, rep_t = run_study(tmpdir / "table.db", space="nasbench_graph", task="cora",
                                  searcher="random", budget=table_budget, seed=0)
        floor = hand_loop(table_budget, "cora", 0)
        figures += [
            {"name": "table_search_per_trial", "value": round(1000 * wall_t / table_budget, 3),
             "unit": "ms", "conditions": {"space": "nasbench_graph", "task": "cora",
                                          "trials": table_budget, "store": "sqlite"}},
            {"name": "hand_loop_per_trial", "value": round(1000 * floor / table_budget, 3),
             "unit": "ms", "conditions": {"what": "sample + table look-up, no store"}},
            {"name": "table_search_vs_hand_loop", "value": round(wall_t / floor, 1),
             "unit": "x", "conditions": {}},
        ]
    width = max(len(f["name"]) for f in figures)
    print(f"{'figure':<{width}}  value")
    for f in figures:
        print(f"{f['name']:<{width}}  {f['value']} {f['unit']}")
    print(f"(trained {rep.trained_this_run} networks; table search: {rep_t.complete} trials)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
