"""Zero-cost proxies on really trained networks: each alone, and as GNN inputs.

NAS-Bench-Graph's data sets cannot be downloaded here, so its GNNs cannot be run
and proxies such as synflow cannot be computed for them. This benchmark measures
the proxies where the data exist: ``nb201`` cells (8 channels) trained for real on
scikit-learn's digits.

1. A random search trains ``--archs`` architectures (default 150) for ``--epochs``
   epochs (default 4) each and stores them (``--storage``, default a fresh SQLite
   file in a temporary folder; re-running with the same file reuses the results).
2. Every proxy (synflow, jacob_cov, nwot, snip, grad_norm, params, flops) is
   computed on each untrained network on one training minibatch of 64 and stored
   in ``naslab_proxies`` (:func:`naslab.predictor_store.proxies_for`); the time per
   architecture is reported.
3. Each proxy alone: Kendall tau and Spearman against the stored validation
   accuracy over all architectures.
4. Predictors on the same random splits (training sizes ``--sizes``, default
   25 and 50; ``--splits`` 10; the rest is the test set): ``proxy:NAME`` for each
   proxy (a line fitted on the training split, so its sign is learned), the default
   GNN (``dgin``), the GNN with all proxies as extra inputs (``dgin+proxies``) and the
   random forest (``rf``).

Run: ``python benchmarks/proxy_quality.py`` (about 10 minutes on 2 cores, most of
it training) or ``--quick`` (40 architectures, 2 epochs, sizes 15, 3 splits).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import naslab
from naslab.predictor_store import proxies_for, training_set
from naslab.predictors import PROXIES, get_predictor
from naslab.predictors.evaluation import format_table, learning_curve, summarise
from naslab.predictors.metrics import kendall_tau, spearman


def parse_args() -> argparse.Namespace:
    """The command line (``--quick`` sets the small settings)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--archs", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--sizes", default="25,50")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--storage", help="SQLAlchemy URL (default: a temporary SQLite file)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.archs, args.epochs, args.sizes, args.splits = 40, 2, "15", 3
    args.sizes = [int(s) for s in args.sizes.split(",")]
    return args


def train_and_score(
    args: argparse.Namespace, space: Any, task: Any
) -> tuple[Any, dict[str, np.ndarray], float]:
    """Train the random search's architectures and compute every proxy of each.

    Returns the training set (architectures and validation accuracies), the proxies
    by name, and the proxy seconds per architecture.
    """
    url = args.storage or f"sqlite:///{tempfile.mkdtemp(prefix='naslab-proxy-bench-')}/proxies.db"
    t0 = time.perf_counter()
    report = naslab.Study(
        f"proxy-bench-{args.archs}-{args.epochs}",
        space=space,
        task=task,
        searcher="random",
        budget=args.archs,
        epochs=args.epochs,
        storage=url,
    ).run()
    print(
        f"trained {report.trained_this_run} architectures ({report.complete} complete) "
        f"in {time.perf_counter() - t0:.0f} s; store {url}",
        file=sys.stderr,
    )
    store = naslab.Store(url)
    try:
        data = training_set(store, space, task, fidelity=args.epochs)
        t0 = time.perf_counter()
        proxies = proxies_for(store, space, data.archs, task, PROXIES)
        per_arch = (time.perf_counter() - t0) / len(data.archs)
    finally:
        store.close()
    return data, proxies, per_arch


def proxies_alone(y: np.ndarray, proxies: dict[str, np.ndarray]) -> dict[str, float]:
    """Print and return each proxy's Kendall tau (and print Spearman) against ``y``."""
    print(f"{'proxy alone':<12}{'kendall_tau':>12}{'spearman':>10}")
    alone = {}
    for name in PROXIES:
        tau, rho = kendall_tau(y, proxies[name]), spearman(y, proxies[name])
        alone[name] = tau
        print(f"{name:<12}{tau:>12.3f}{rho:>10.3f}")
    return alone


def predictor_curves(
    args: argparse.Namespace, archs: list, y: np.ndarray, proxies: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    """Learning curves of every proxy predictor, the GNN with and without proxies, and RF."""
    makers = {f"proxy:{name}": (f"proxy:{name}", {}, {name: proxies[name]}) for name in PROXIES}
    makers["dgin"] = ("dgin", {"seed": 0}, None)
    makers["dgin+proxies"] = ("dgin", {"seed": 0}, proxies)
    makers["rf"] = ("rf", {"seed": 0}, None)
    rows = []
    for label, (name, options, features) in makers.items():
        rows += learning_curve(
            lambda name=name, options=options: get_predictor(name, options),
            archs,
            y,
            args.sizes,
            args.splits,
            0,
            features,
            name=label,
        )
    return summarise(rows)


def write_json(path: Path, args: argparse.Namespace, n_archs: int, alone: dict[str, float],
               summary: list[dict[str, Any]]) -> None:
    """The headline figures as a JSON list of {name, value, unit, conditions}."""
    conditions = {
        "space": "nb201(channels=8)",
        "task": "digits",
        "archs": n_archs,
        "epochs": args.epochs,
        "splits": args.splits,
    }
    out = [
        {"name": f"tau_alone_{k}", "value": v, "unit": "", "conditions": conditions}
        for k, v in alone.items()
    ] + [
        {
            "name": f"tau_{r['predictor']}_n{r['size']}",
            "value": r["kendall_tau_mean"],
            "unit": "",
            "conditions": conditions,
        }
        for r in summary
    ]
    path.write_text(json.dumps(out, indent=2))


def main() -> None:
    args = parse_args()
    space = naslab.NB201Space(channels=8)
    task = naslab.digits_task()
    data, proxies, per_arch = train_and_score(args, space, task)
    y = data.targets
    print(
        f"\n{len(y)} architectures, val accuracy after {args.epochs} epochs: "
        f"mean {y.mean():.3f}, min {y.min():.3f}, max {y.max():.3f}"
    )
    print(
        f"all seven proxies: {per_arch * 1000:.0f} ms per architecture "
        "(first run; read from the store afterwards)\n"
    )
    alone = proxies_alone(y, proxies)
    summary = predictor_curves(args, data.archs, y, proxies)
    print()
    print(format_table(summary, "kendall_tau"))
    print()
    print(format_table(summary, "top10_precision"))
    if args.json:
        write_json(args.json, args, len(y), alone, summary)


if __name__ == "__main__":
    main()
