"""Search quality on NAS-Bench-Graph: predictor-guided searchers against regularized
evolution and random search (the issue's targets), through ``naslab bench``.

Single objective (validation accuracy), 100 queries, 20 seeds, the eight data sets
with 26,206 architectures; the runs are studies in an SQLite store (``--storage``,
default ``bench.db`` in ``--out``), so an interrupted run resumes. Prints the regret
table and checks the targets:

1. the best predictor-guided searcher has lower mean validation regret than both
   ``evolution`` and ``random`` on at least 7 of the 8 data sets;
2. it reaches ``evolution``'s final mean validation accuracy in at most half the
   queries on most data sets.

With ``--objectives`` (e.g. ``val_accuracy:max,latency_ms:min``) it runs the
multi-objective comparison instead and prints hypervolumes against ``random``.

Usage: ``python benchmarks/search_quality.py [--quick] [--json PATH] [--out DIR]
[--searchers SPECS] [--objectives ...] [--seeds N] [--processes N]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from naslab.bench import (
    DEFAULT_DATASETS,
    execute,
    plan_runs,
    split_specs,
    summarise,
    write_outputs,
)
from naslab.db.store import Store

SINGLE = ("random,evolution,local,optuna-tpe[storage=memory],"
          "guided-optuna[predictor=rf,storage=memory],guided-evolution[predictor=rf],"
          "guided-evolution,guided-optuna[storage=memory]")
MULTI = ("random,nsga2,optuna-nsga2[storage=memory],guided-evolution[predictor=rf]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 data sets, 3 seeds")
    parser.add_argument("--json", type=Path, help="write the headline figures here")
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--storage", help="SQLAlchemy URL (default: OUT/bench.db)")
    parser.add_argument("--searchers", help="searcher specs (default: see the source)")
    parser.add_argument("--objectives", help="e.g. val_accuracy:max,latency_ms:min")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--summary-only", action="store_true",
                        help="only summarise runs already in the store")
    args = parser.parse_args()
    datasets = ["cora", "photo"] if args.quick else list(DEFAULT_DATASETS)
    seeds = 3 if args.quick else args.seeds
    objectives = None if not args.objectives else [
        o.strip() for o in args.objectives.split(",") if o.strip()]
    specs = split_specs(args.searchers or (MULTI if objectives else SINGLE))
    args.out.mkdir(parents=True, exist_ok=True)
    url = args.storage or f"sqlite:///{(args.out / 'bench.db').resolve()}"
    prefix = "mo" if objectives else "so"
    runs = plan_runs(specs, datasets, seeds, args.queries, objectives, prefix=prefix)
    start = time.perf_counter()
    if not args.summary_only:
        execute(runs, url, args.processes,
                lambda run, s, i: print(f"  {i}/{len(runs)} {run.study} {s:.1f}s", flush=True)
                if i % 20 == 0 or i == len(runs) else None)
    wall = time.perf_counter() - start
    with Store(url) as store:
        summary = summarise(store, runs)
    figures = write_outputs(summary, args.out, "evolution" if not objectives else None)
    print((args.out / "regret.md").read_text())
    print(f"{len(runs)} runs in {wall:.0f} s wall ({args.processes} processes)")
    labels = summary.searchers
    headline: dict[str, object] = {"wall_s": wall, "runs": len(runs), "seeds": seeds,
                                   "queries": args.queries, "datasets": datasets}
    if not objectives:
        guided = [s for s in labels if s.startswith("guided")]
        rows = []
        for g in guided:
            wins = sum(summary.final_regret(g, d)[0] < min(summary.final_regret(b, d)[0]
                                                          for b in ("evolution", "random"))
                       for d in datasets)
            half = sum((q := summary.queries_to_reach(g, d, "evolution")) is not None
                       and q <= args.queries // 2 for d in datasets)
            mean = float(np.mean([summary.final_regret(g, d)[0] for d in datasets]))
            rows.append((mean, g, wins, half))
            print(f"{g}: lower mean regret than evolution and random on {wins}/{len(datasets)}"
                  f" data sets; reaches evolution's final accuracy within "
                  f"{args.queries // 2} queries on {half}/{len(datasets)}")
        if rows:
            need = 7 if len(datasets) == 8 else len(datasets)
            mean, best, wins, half = min(rows)
            print(f"lowest mean regret: {best} (x100 {100 * mean:.3f}): target 1 "
                  f"({need}/{len(datasets)} wins) {'met' if wins >= need else 'NOT met'} "
                  f"({wins}); target 2 (most data sets within half the queries) "
                  f"{'met' if half > len(datasets) / 2 else 'NOT met'} ({half})")
            both = [g for _, g, w, h in sorted(rows) if w >= need and h > len(datasets) / 2]
            print("predictor-guided searchers meeting both targets: "
                  + (", ".join(both) if both else "none"))
            headline.update(lowest_regret=best, wins=wins, within_half=half,
                            meeting_both=both)
    else:
        for s in labels:
            hv = [float(summary.hypervolume[(s, d)][:, -1].mean()) for d in datasets]
            ref = [float(summary.hypervolume[("random", d)][:, -1].mean()) for d in datasets]
            better = sum(h > r for h, r in zip(hv, ref))
            print(f"{s}: mean hypervolume {np.mean(hv):.4f} (random {np.mean(ref):.4f}); "
                  f"higher than random on {better}/{len(datasets)} data sets")
    if args.json:
        args.json.write_text(json.dumps({**headline, "summary": figures}, indent=1,
                                        default=str) + "\n")


if __name__ == "__main__":
    main()
