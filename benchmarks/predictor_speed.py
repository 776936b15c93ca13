"""Predictor speed: fit on 1,000 architectures, score 100,000 candidates.

Targets (issue 4): fitting the default GNN predictor on 1,000 architectures takes
under 10 s, and scoring 100,000 candidates under 5 s, on 2 cores.

Data: NAS-Bench-Graph ``cora`` architectures with their real validation accuracies
(the ``nas-bench-graph`` tables). The candidates are 100,000 fresh samples of the
space (new ``Architecture`` objects, so nothing is cached on them); "score" is
``predict(candidates)``: featurization plus the ensemble's forward passes, in
chunks. Sampling the candidates is timed separately. The random-forest baseline
is timed in the same run, for a ratio. Each figure is the median of ``--repeats``
runs (a fresh predictor each time, default settings, torch's default threads).

Run: ``python benchmarks/predictor_speed.py`` (about 2 minutes) or ``--quick``.
``benchmarks/predictor_layers.py`` times the GNN's layers step by step against the
PyTorch Geometric paths that were measured slower and kept out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from naslab.predictors.base import Predictor
from naslab.predictors.baselines import TreePredictor
from naslab.predictors.gnn import GNNPredictor
from naslab.predictors.metrics import kendall_tau
from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace, bench_key
from naslab.workers.benchmark_table import all_architectures, load_table


def parse_args() -> argparse.Namespace:
    """The command line (``--quick``: 1 repeat, 20,000 candidates)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, 20,000 candidates")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--json", type=Path, help="write the headline figures here")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.candidates = 1, 20_000
    return args


MAKERS: dict[str, Callable[[int], Predictor]] = {
    "gnn": lambda seed: GNNPredictor(seed=seed),
    "rf": lambda seed: TreePredictor(seed=seed),
}


def run_repeat(
    r: int, args: argparse.Namespace, archs: list, y: np.ndarray, space: NasBenchGraphSpace,
    figures: dict[str, list[float]], taus: dict[str, list[float]],
) -> None:
    """Repeat ``r``: sample the candidates, then fit, score and test each predictor.

    Appends the seconds to ``figures`` and the held-out Kendall tau to ``taus``.
    """
    rng = np.random.default_rng(r)
    order = rng.permutation(len(archs))
    train, test = order[: args.train], order[args.train : args.train + 5000]
    t0 = time.perf_counter()
    candidates = [space.sample(rng) for _ in range(args.candidates)]
    figures["sample"].append(time.perf_counter() - t0)
    for name, make in MAKERS.items():
        predictor = make(r)
        t0 = time.perf_counter()
        predictor.fit([archs[i] for i in train], y[train])
        figures[f"{name}_fit"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pred = predictor.predict(candidates)
        figures[f"{name}_score"].append(time.perf_counter() - t0)
        assert len(pred) == len(candidates)
        taus[name].append(kendall_tau(y[test], predictor.predict([archs[i] for i in test]).mean))
        print(
            f"repeat {r}: {name} fit {figures[f'{name}_fit'][-1]:.2f} s, "
            f"score {figures[f'{name}_score'][-1]:.2f} s, tau {taus[name][-1]:.3f}",
            file=sys.stderr,
        )


def print_table(args: argparse.Namespace, med: dict[str, float],
                taus: dict[str, list[float]]) -> None:
    """The medians against their targets, and the GNN/RF ratios."""
    print()
    print(f"{'measure':<44}{'median s':>10}{'target':>10}")
    rows = [
        (f"GNN (default: dgin) fit, {args.train} archs", med["gnn_fit"], "< 10 s"),
        (f"GNN score {args.candidates} candidates", med["gnn_score"], "< 5 s"),
        (f"random forest fit, {args.train} archs", med["rf_fit"], ""),
        (f"random forest score {args.candidates}", med["rf_score"], ""),
        (f"sampling {args.candidates} candidates (not scored)", med["sample"], ""),
    ]
    for label, value, target in rows:
        print(f"{label:<44}{value:>10.2f}{target:>10}")
    print(
        f"GNN/RF time ratio: fit {med['gnn_fit'] / med['rf_fit']:.1f}x, "
        f"score {med['gnn_score'] / med['rf_score']:.2f}x; Kendall tau on 5,000 held-out: "
        f"GNN {statistics.mean(taus['gnn']):.3f}, RF {statistics.mean(taus['rf']):.3f}"
    )


def write_json(path: Path, args: argparse.Namespace, med: dict[str, float],
               taus: dict[str, list[float]]) -> None:
    """The medians and mean taus as a JSON list of {name, value, unit, conditions}."""
    conditions = {
        "dataset": "nasbench_graph/cora",
        "train": args.train,
        "candidates": args.candidates,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
    }
    out = [
        {"name": f"{key}_seconds", "value": value, "unit": "s", "conditions": conditions}
        for key, value in med.items()
    ] + [
        {"name": f"{k}_tau", "value": statistics.mean(v), "unit": "", "conditions": conditions}
        for k, v in taus.items()
    ]
    path.write_text(json.dumps(out, indent=2))


def main() -> None:
    args = parse_args()
    archs = all_architectures("cora")
    table = load_table("cora")
    y = np.array([table[bench_key(a)]["valid_perf"] for a in archs])
    space = NasBenchGraphSpace("cora")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"fit on {args.train} cora architectures, score {args.candidates} candidates, "
        f"{args.repeats} repeats",
        file=sys.stderr,
    )
    figures: dict[str, list[float]] = {
        "gnn_fit": [], "gnn_score": [], "rf_fit": [], "rf_score": [], "sample": [],
    }
    taus: dict[str, list[float]] = {name: [] for name in MAKERS}
    for r in range(args.repeats):
        run_repeat(r, args, archs, y, space, figures, taus)
    med = {k: statistics.median(v) for k, v in figures.items()}
    print_table(args, med, taus)
    if args.json:
        write_json(args.json, args, med, taus)


if __name__ == "__main__":
    main()
