"""What each search space costs: sampling, hashing, building and one epoch of training.

For every registered space (default parameters) it measures, in one run:

- **sampled + hashed / s**: architectures drawn with ``space.sample`` and their
  canonical hash computed (what a searcher pays per proposal before any training);
- **build ms**: median time to build the network of a sampled architecture for the
  space's default task (``space.build``);
- **epoch s**: median wall time of one training epoch on the default task (digits
  for the image spaces, the ``sbm`` graph for ``gnn``), through the same evaluator a
  search uses (:class:`~naslab.workers.training.TrainingEvaluator` or the graph task's
  own), with the training time and the validation accuracy after that epoch; a table
  space (``nasbench_graph``) has no training and reports the look-up instead.

Torch runs on one thread (``--threads``), as a Ray worker with one CPU does.

Usage: ``python benchmarks/space_costs.py [--quick] [--json PATH] [--spaces a,b]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from naslab.components import resolve
from naslab.search_spaces.registry import SPACES
from naslab.workers.evaluator import NullReporter


def sample_rate(space: Any, seconds: float) -> float:
    """Architectures sampled and hashed per second over about ``seconds``."""
    rng = np.random.default_rng(0)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _ = space.sample(rng).hash
        n += 1
    return n / (time.perf_counter() - start)


def build_ms(space: Any, evaluator: Any, n: int) -> float:
    """Median milliseconds to build the network of a sampled architecture."""
    task = getattr(evaluator, "task", None)
    if task is None:
        return float("nan")
    rng = np.random.default_rng(1)
    times = []
    for _ in range(n):
        arch = space.sample(rng)
        start = time.perf_counter()
        space.build(arch, task)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def epoch_costs(space: Any, evaluator: Any, n: int) -> tuple[float, float]:
    """Median seconds of a one-epoch evaluation of ``n`` sampled architectures, and
    the median validation accuracy after it."""
    rng = np.random.default_rng(2)
    times, accs = [], []
    for i in range(n):
        arch = space.sample(rng)
        start = time.perf_counter()
        result = evaluator.evaluate(space, arch, 1, i, NullReporter())
        times.append(time.perf_counter() - start)
        accs.append(result.metrics.get("val_accuracy", float("nan")))
    return statistics.median(times), statistics.median(accs)


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """The figures of space ``name`` with its default parameters and task."""
    space, evaluator = resolve(name, None)
    row: dict[str, Any] = {"space": name, "task": evaluator.task_name, "size": space.size()}
    row["sampled_hashed_per_s"] = sample_rate(space, args.sample_s)
    row["build_ms"] = build_ms(space, evaluator, args.builds)
    row["epoch_s"], row["val_accuracy_1_epoch"] = epoch_costs(space, evaluator, args.trainings)
    row["table"] = bool(evaluator.is_table)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and trainings")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--spaces", help="comma-separated spaces (default: all registered)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    args.sample_s = 1.0 if args.quick else 3.0
    args.builds = 5 if args.quick else 20
    args.trainings = 1 if args.quick else 3
    torch.set_num_threads(args.threads)
    names = args.spaces.split(",") if args.spaces else list(SPACES)
    rows = [measure(name, args) for name in names]
    print(f"{'space':16}{'task':10}{'size':>28}{'sampled+hashed/s':>18}{'build ms':>10}"
          f"{'epoch s':>9}{'val acc':>9}")
    for r in rows:
        size = "-" if r["size"] is None else f"{r['size']:,}"
        epoch = "table" if r["table"] else f"{r['epoch_s']:.2f}"
        build = "-" if r["build_ms"] != r["build_ms"] else f"{r['build_ms']:.1f}"
        print(f"{r['space']:16}{r['task']:10}{size:>28}{r['sampled_hashed_per_s']:>18,.0f}"
              f"{build:>10}{epoch:>9}{r['val_accuracy_1_epoch']:>9.3f}")
    print(f"(one torch thread: {args.threads == 1}; epoch = one-epoch evaluation incl. "
          "validation, test and latency measurement; median of "
          f"{args.trainings} sampled architectures)")
    if args.json:
        figures = [{"name": f"{r['space']}.{key}", "value": r[key], "unit": unit,
                    "conditions": {"task": r["task"], "threads": args.threads,
                                   "quick": args.quick}}
                   for r in rows for key, unit in (("sampled_hashed_per_s", "1/s"),
                                                   ("build_ms", "ms"), ("epoch_s", "s"))]
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
