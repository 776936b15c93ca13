"""Multi-fidelity on real training (issue 17, target 5): a predictor-guided searcher
with ASHA early stopping against plain regularized evolution, at equal wall clock.

For each space (``nb201`` and ``chain`` by default) on ``digits`` and each seed, two
arms run one after the other on this machine, each for ``--minutes`` of wall clock
(``Study.run(timeout=...)``; a trial in flight at the limit finishes), in-process
with one torch thread, each in a store of its own (no result is shared between arms):

* ``evolution``: regularized evolution, every trial trained for ``--epochs``;
* ``guided+asha``: ``guided-evolution`` (random-forest predictor, refitted every 5
  results) with ASHA (first rung 1 epoch, eta 3) stopping poor trials early.

Figures per space, mean over seeds: the test accuracy of the best-by-validation
trial trained to the full ``--epochs`` when the time is up, the number of trials, and
the minutes until the arm's best full-fidelity validation accuracy reached
evolution's final one (same seed; '-' when it never did).

Usage: ``python benchmarks/multifidelity.py [--spaces nb201,chain] [--seeds 5]
[--minutes 10] [--epochs 9] [--out DIR] [--json PATH]``; ``--quick`` runs nb201, one
seed, one minute per arm.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

ARMS = {
    "evolution": {"searcher": "evolution", "scheduler": None},
    "guided+asha": {"searcher": "guided-evolution", "scheduler": "asha",
                    "searcher_options": {"predictor": "rf", "refit_every": 5}},
}


def run_arm(space: str, arm: str, seed: int, minutes: float, epochs: int, out: Path
            ) -> dict[str, Any]:
    """One arm on one space and seed; its trials' (minutes, val, test, full) rows."""
    import torch

    from naslab.study import Study

    torch.set_num_threads(1)
    spec = ARMS[arm]
    slug = arm.replace("+", "_")
    url = f"sqlite:///{out / f'{space}-{slug}-s{seed}.db'}"
    name = f"mf-{space}-{slug}-s{seed}"
    with Study(name, space=space, task="digits", searcher=spec["searcher"],
               searcher_options=spec.get("searcher_options"), scheduler=spec["scheduler"],
               budget=100_000, epochs=epochs, seed=seed, storage=url) as study:
        began = time.perf_counter()
        study.run(progress=False, timeout=60 * minutes)
        wall = time.perf_counter() - began
        trials = study.store.trials.list(name)
    start = min(t.started_at for t in trials)
    rows = [((t.finished_at - start).total_seconds() / 60, t.metrics.get("val_accuracy"),
             t.metrics.get("test_accuracy"), t.state == "complete")
            for t in trials if t.finished_at is not None and t.state in ("complete", "stopped")]
    return {"wall_s": wall, "rows": sorted(rows, key=lambda r: r[0]), "trials": len(trials)}


def best_full(rows: list) -> tuple[float | None, float | None]:
    """Validation and test accuracy of the best-by-validation full-fidelity trial."""
    full = [r for r in rows if r[3] and r[1] is not None]
    if not full:
        return None, None
    best = max(full, key=lambda r: r[1])
    return best[1], best[2]


def minutes_to_reach(rows: list, target: float | None) -> float | None:
    """When the best full-fidelity validation accuracy first reached ``target``."""
    if target is None:
        return None
    for minute, val, _, full in rows:
        if full and val is not None and val >= target - 1e-12:
            return minute
    return None


def summarise(results: dict, spaces: list[str], seeds: list[int]) -> dict[str, Any]:
    """Print the table; return the figures."""
    figures: dict[str, Any] = {}
    print(f"{'space':<7} {'arm':<12} {'test acc':>9} {'trials':>7} {'min to evo':>11}  per seed")
    for space in spaces:
        for arm in ARMS:
            tests, counts, reach = [], [], []
            for seed in seeds:
                res = results[(space, arm, seed)]
                evo_val, _ = best_full(results[(space, "evolution", seed)]["rows"])
                _, test = best_full(res["rows"])
                tests.append(np.nan if test is None else test)
                counts.append(res["trials"])
                reach.append(minutes_to_reach(res["rows"], evo_val))
            hit = [r for r in reach if r is not None]
            print(f"{space:<7} {arm:<12} {100 * np.nanmean(tests):>9.2f} {np.mean(counts):>7.1f} "
                  f"{(f'{np.mean(hit):.1f} ({len(hit)}/{len(seeds)})' if hit else '-'):>11}  "
                  + " ".join(f"{100 * t:.1f}" for t in tests))
            figures[f"{space}:{arm}"] = {"test_accuracy": tests, "trials": counts,
                                        "minutes_to_evolution_final": reach}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spaces", default="nb201,chain")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--out", type=Path, default=Path("multifidelity-out"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    spaces = ["nb201"] if args.quick else [s.strip() for s in args.spaces.split(",")]
    seeds = list(range(1 if args.quick else args.seeds))
    minutes = 1.0 if args.quick else args.minutes
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for space in spaces:
        for seed in seeds:
            for arm in ARMS:
                results[(space, arm, seed)] = res = run_arm(space, arm, seed, minutes,
                                                            args.epochs, args.out)
                print(f"  {space} {arm} seed {seed}: {res['trials']} trials in "
                      f"{res['wall_s']:.0f} s", flush=True)
    figures = summarise(results, spaces, seeds)
    if args.json:
        args.json.write_text(json.dumps({"minutes": minutes, "epochs": args.epochs,
                                         "figures": figures}, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
