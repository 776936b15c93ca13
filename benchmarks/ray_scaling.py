"""Scaling: wall time of the same training-bound search with 1 and with 2 Ray workers.

The search is nb201 on digits with real training (``TrainingEvaluator``, default
settings) and the ``random`` searcher, so the candidates are the same whatever
order trials finish in. Each run is on a fresh SQLite file, with one of

* ``RayExecutor(workers=2, cpus_per_trial=1)``,
* ``RayExecutor(workers=1, cpus_per_trial=1)``,
* ``InProcessExecutor`` (torch in this process, using every core): a reference.

After an unreported 2-trial warm-up search on 2 workers, the runs go in the
symmetric order ray-2, ray-1, in-process, ray-1, ray-2, and each executor's figure
is the mean of its runs, so that a steady drift in the machine's speed (which on a
shared virtual machine can be larger than the effect measured) cancels out. The
wall time is that of ``Study.run()``: it includes starting the actors (and
importing torch in them) and killing them at the end, but not starting Ray, which
the script does once beforehand (2 CPUs, no dashboard). The target is a speed-up
of at least 1.8x for 2 workers over 1 on a 2-core machine.

The script also checks that every Ray run trained the same architectures (the same
canonical hashes) to the same validation accuracies (training is seeded and each
actor's torch uses one thread), records the torch thread counts each trial ran
with, and the CPU time other processes used meanwhile (it warns above 5%).

Usage: ``python benchmarks/ray_scaling.py [--quick] [--json PATH]``
(full: 14 trials x 6 epochs, about 2.5 minutes on 2 cores; quick: 4 trials x 2
epochs, where starting the actors dominates and the speed-up is not meaningful).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from cpu_monitor import CpuMonitor

from naslab import Study
from naslab.workers.executor import InProcessExecutor
from naslab.workers.ray_executor import RayExecutor
from naslab.workers.training import TrainingEvaluator

TARGET = 1.8


class ThreadProbeEvaluator(TrainingEvaluator):
    """The training evaluator, also recording the torch thread counts it ran with."""

    def evaluate(self, space, arch, fidelity, seed, reporter):  # noqa: D102
        result = super().evaluate(space, arch, fidelity, seed, reporter)
        result.extra["torch_threads"] = torch.get_num_threads()
        result.extra["torch_interop_threads"] = torch.get_num_interop_threads()
        return result


class TimedRayExecutor(RayExecutor):
    """RayExecutor that times its start (actor creation) and shutdown, in the driver."""

    start_s = 0.0
    shutdown_s = 0.0

    def start(self, evaluator, on_report):  # noqa: D102
        t = time.perf_counter()
        super().start(evaluator, on_report)
        self.start_s = time.perf_counter() - t

    def shutdown(self):  # noqa: D102
        t = time.perf_counter()
        super().shutdown()
        self.shutdown_s = time.perf_counter() - t


def run_search(db: Path, name: str, executor: Any, budget: int, epochs: int) -> dict[str, Any]:
    """One search on a fresh store: wall time of ``Study.run()`` and per-trial facts."""
    with Study(name, space="nb201", task=ThreadProbeEvaluator("digits"), searcher="random",
               budget=budget, epochs=epochs, seed=0, storage=f"sqlite:///{db}",
               executor=executor) as study:
        with CpuMonitor() as cpu:
            start = time.perf_counter()
            report = study.run()
            wall = time.perf_counter() - start
        trials = study.store.trials.list(name)
    done = [t for t in trials if t.state == "complete"]
    busy = sum((t.finished_at - t.started_at).total_seconds() for t in done if t.finished_at)
    return {
        "wall": wall,
        "trained": report.trained_this_run,
        "reused": report.reused_this_run,
        "failed": report.failed,
        "val": {t.arch_hash: t.metrics["val_accuracy"] for t in done},
        "train_sum": sum(t.train_seconds or 0.0 for t in done),
        "trial_sum": busy,  # driver's view: from submit to the outcome being stored
        "threads": sorted({(t.extra.get("torch_threads"), t.extra.get("torch_interop_threads"))
                           for t in done}),
        "workers": len({t.worker for t in done}),
        "cpu_ours": cpu.ours,
        "cpu_others": cpu.others,
        "start_s": getattr(executor, "start_s", 0.0),
        "shutdown_s": getattr(executor, "shutdown_s", 0.0),
    }


def compare(a: dict[str, float], b: dict[str, float]) -> tuple[bool, bool, float]:
    """(same architectures, same accuracies exactly, largest accuracy difference)."""
    same_set = set(a) == set(b)
    common = set(a) & set(b)
    diff = max((abs(a[h] - b[h]) for h in common), default=float("nan"))
    return same_set, same_set and all(a[h] == b[h] for h in common), diff


ORDER = ("ray2", "ray1", "inproc", "ray1", "ray2")
LABELS = {"ray1": "ray, 1 worker", "ray2": "ray, 2 workers"}  # + in-process, by core count


@dataclass
class Summary:
    """The headline figures of the runs."""

    wall: dict[str, float]  # mean wall time per executor
    speedup: float  # 2 workers vs 1
    speedup_ip: float  # 2 workers vs in-process
    speedup_loop: float  # 2 workers vs 1, actor start excluded
    same_set: bool  # every Ray run trained the same architectures ...
    same_acc: bool  # ... to the same validation accuracies
    diff: float
    ip_set: bool  # the first 1-worker run vs the in-process run
    ip_acc: bool
    ip_diff: float


def parse_args() -> argparse.Namespace:
    """The command line: ``--quick`` and ``--json PATH``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small budget, for a first look")
    parser.add_argument("--json", type=Path, help="write the headline figures here")
    return parser.parse_args()


@contextmanager
def ray_started() -> Iterator[float]:
    """Ray on 2 CPUs, no dashboard, its files in a fresh short folder under /tmp, for
    the block; yields the seconds ``ray.init`` took."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray_tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths are limited
    os.environ["RAY_TMPDIR"] = ray_tmp
    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=ray_tmp)
    ray_init_s = time.perf_counter() - t
    time.sleep(3.0)  # let the worker processes Ray prestarts finish importing
    try:
        yield ray_init_s
    finally:
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)  # Ray's session files and logs


def measure(budget: int, epochs: int, cores: int) -> list[tuple[str, dict[str, Any]]]:
    """An unreported warm-up search, then one search per executor in :data:`ORDER`."""
    runs: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        run_search(Path(tmp) / "warm-up.db", "warm-up",  # not reported
                   RayExecutor(workers=2, cpus_per_trial=1), 2, 1)
        for i, key in enumerate(ORDER):
            if key == "inproc":
                torch.set_num_threads(cores)
                executor: Any = InProcessExecutor()
            else:
                executor = TimedRayExecutor(workers=int(key[-1]), cpus_per_trial=1)
            runs.append((key, run_search(Path(tmp) / f"{i}.db", f"scaling-{key}-{i}",
                                         executor, budget, epochs)))
    return runs


def summarise(runs: list[tuple[str, dict[str, Any]]]) -> Summary:
    """Mean wall times, speed-ups, and whether the runs trained the same networks alike."""

    def mean(key: str, field: str) -> float:
        return statistics.fmean(r[field] for k, r in runs if k == key)

    wall = {key: mean(key, "wall") for key in ("ray1", "ray2", "inproc")}
    start_s = {key: mean(key, "start_s") for key in ("ray1", "ray2", "inproc")}
    ray_vals = [r["val"] for k, r in runs if k != "inproc"]
    first_ray1 = next(r["val"] for k, r in runs if k == "ray1")
    checks = [compare(first_ray1, v) for v in ray_vals]
    ip_set, ip_acc, ip_diff = compare(first_ray1, next(r["val"] for k, r in runs
                                                       if k == "inproc"))
    return Summary(
        wall=wall,
        speedup=wall["ray1"] / wall["ray2"],
        speedup_ip=wall["inproc"] / wall["ray2"],
        speedup_loop=(wall["ray1"] - start_s["ray1"]) / (wall["ray2"] - start_s["ray2"]),
        same_set=all(c[0] for c in checks),
        same_acc=all(c[1] for c in checks),
        diff=max(c[2] for c in checks),
        ip_set=ip_set,
        ip_acc=ip_acc,
        ip_diff=ip_diff,
    )


def headline_figures(s: Summary, budget: int, epochs: int, cores: int) -> list[dict[str, Any]]:
    """The figures written by ``--json``."""
    cond = {"space": "nb201(channels=8,cells_per_stage=1)", "task": "digits",
            "searcher": "random", "trials": budget, "epochs": epochs, "cores": cores,
            "ray_num_cpus": 2, "cpus_per_trial": 1, "store": "sqlite",
            "includes": "actor start and shutdown; not ray.init",
            "statistic": "mean of runs in the order " + ", ".join(ORDER)}
    return [
        {"name": "ray_1_worker_wall", "value": round(s.wall["ray1"], 2), "unit": "s",
         "conditions": cond},
        {"name": "ray_2_workers_wall", "value": round(s.wall["ray2"], 2), "unit": "s",
         "conditions": cond},
        {"name": "in_process_wall", "value": round(s.wall["inproc"], 2), "unit": "s",
         "conditions": {**cond, "torch_threads": cores,
                        "includes": "no actors; torch in the driver"}},
        {"name": "speedup_2_vs_1_workers", "value": round(s.speedup, 2), "unit": "x",
         "conditions": {"target": TARGET, "meets_target": s.speedup >= TARGET}},
        {"name": "speedup_2_vs_1_workers_after_actor_start", "value": round(s.speedup_loop, 2),
         "unit": "x", "conditions": {"excludes": "RayExecutor.start (actor creation)"}},
        {"name": "speedup_2_workers_vs_in_process", "value": round(s.speedup_ip, 2), "unit": "x",
         "conditions": {}},
        {"name": "same_results_1_vs_2_workers", "value": s.same_acc, "unit": "bool",
         "conditions": {"same_architectures": s.same_set, "max_val_acc_diff": s.diff}},
    ]


def print_runs(runs: list[tuple[str, dict[str, Any]]], labels: dict[str, str]) -> None:
    """One line per run, and what the columns mean."""
    header = (f"{'#':>1} {'run':<22} {'wall s':>7} {'actors s':>8} {'stop s':>7} "
              f"{'trained':>7} {'train sum s':>11} {'trial sum s':>11} {'busy %':>6} "
              f"{'cpu s':>6} {'other cpu s':>11}  torch threads")
    print(header)
    print("-" * len(header))
    for i, (key, r) in enumerate(runs, start=1):
        n = int(key[-1]) if key != "inproc" else 1
        loop = r["wall"] - r["start_s"] - r["shutdown_s"]
        busy = 100 * r["trial_sum"] / (n * loop) if loop > 0 else float("nan")
        threads = ", ".join(f"{a}/{b}" for a, b in r["threads"])
        print(f"{i:>1} {labels[key]:<22} {r['wall']:>7.2f} {r['start_s']:>8.2f} "
              f"{r['shutdown_s']:>7.2f} {r['trained']:>7} {r['train_sum']:>11.2f} "
              f"{r['trial_sum']:>11.2f} {busy:>6.1f} {r['cpu_ours']:>6.1f} "
              f"{r['cpu_others']:>11.1f}  {threads} (intra/inter-op)")
    print("(actors s: RayExecutor.start, actor creation until ready; stop s: shutdown; "
          "train sum: the evaluator's train_seconds summed; trial sum: submit to stored, "
          "summed; busy %: trial sum / (workers x time between start and shutdown); cpu s: "
          "CPU time of this script, Ray and its workers; other cpu s: CPU time of every "
          "other process on the machine meanwhile)")


def print_summary(s: Summary, labels: dict[str, str], cores: int) -> None:
    """Mean wall times, speed-ups against the target, and the same-results checks."""
    print("mean wall time: " + ", ".join(f"{labels[k]} {s.wall[k]:.2f} s"
                                         for k in ("ray1", "ray2", "inproc")))
    print(f"speed-up, 2 workers vs 1 worker:   {s.speedup:.2f}x  "
          f"({'meets' if s.speedup >= TARGET else 'BELOW'} the {TARGET}x target)")
    print(f"speed-up, 2 workers vs 1 worker, actor start excluded: {s.speedup_loop:.2f}x")
    print(f"speed-up, 2 workers vs in-process ({cores} threads): {s.speedup_ip:.2f}x")
    print(f"all Ray runs (1 and 2 workers): same architectures: {s.same_set}; same val "
          f"accuracies: {s.same_acc} (max difference {s.diff:.3g})")
    print(f"1 worker vs in-process ({cores} threads): same architectures: {s.ip_set}; "
          f"same val accuracies: {s.ip_acc} (max difference {s.ip_diff:.3g}; torch's thread "
          "count changes float rounding)")


def print_warnings(runs: list[tuple[str, dict[str, Any]]], cores: int) -> None:
    """Warn about runs disturbed by other processes, and about failed or reused trials."""
    noisy = [str(i) for i, (_, r) in enumerate(runs, start=1)
             if r["cpu_others"] > 0.05 * cores * r["wall"]]
    if noisy:
        print("WARNING: other processes used more than 5% of the machine's CPU during run(s) "
              f"{', '.join(noisy)}: those figures are distorted; run again on a quiet machine")
    if any(r["failed"] or r["reused"] for _, r in runs):
        print("WARNING: some trials failed or were reused: "
              + ", ".join(f"run {i}: {r['failed']} failed, {r['reused']} reused"
                          for i, (_, r) in enumerate(runs, start=1)))


def main() -> None:
    """Measure, print, and write the headline figures if asked."""
    args = parse_args()
    budget, epochs = (4, 2) if args.quick else (14, 6)
    cores = os.cpu_count() or 1
    with ray_started() as ray_init_s:
        runs = measure(budget, epochs, cores)
    summary = summarise(runs)
    labels = {**LABELS, "inproc": f"in-process ({cores} thr)"}
    print(f"nb201 on digits, random searcher, {budget} trials x {epochs} epochs, seed 0; "
          f"{cores} cores; ray.init took {ray_init_s:.1f} s (excluded)")
    print_runs(runs, labels)
    print()
    print_summary(summary, labels, cores)
    print_warnings(runs, cores)
    if args.json:
        args.json.write_text(json.dumps(headline_figures(summary, budget, epochs, cores),
                                        indent=2))


if __name__ == "__main__":
    main()
