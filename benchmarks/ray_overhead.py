"""Overhead: dispatch and bookkeeping per trial, through Ray, with a trivial evaluator.

The evaluator defined here answers at once (a validation accuracy made from the
architecture's hash) and reports one step, so every second measured is naslab's
and Ray's own cost per trial. Configurations, each on a fresh SQLite file (so no
trial is answered from an earlier one; the few a study reuses are counted):

a. ``Study`` + ``InProcessExecutor``: searcher, canonical hashing, reuse look-up
   and store writes, no dispatch;
b. ``Study`` + ``RayExecutor(workers=1)``;
c. ``Study`` + ``RayExecutor(workers=2)``;
d. ``RayExecutor`` alone (1 and 2 workers): a submit / ``wait_any`` loop over
   architectures sampled beforehand, with no store and no searcher, which is the
   cost of Ray dispatch (job pickling, the actor call, the report queue) by itself;
e. ``InProcessExecutor`` alone, the same loop: the floor (the evaluator's own time).

Per-trial figures divide the time between the executor's start and its shutdown
by the trials dispatched; starting the actors is shown apart. Ray is started once
by the script (2 CPUs, no dashboard), before anything is timed, and warmed up by a
short unreported loop. The space is nb201, the searcher ``random``, seed 0.

Usage: ``python benchmarks/ray_overhead.py [--quick] [--json PATH]``
(full: 300 trials per configuration, about 40 seconds; quick: 50).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from cpu_monitor import CpuMonitor

from naslab import Study
from naslab.search_spaces.registry import get_space
from naslab.workers.evaluator import Evaluator, Result
from naslab.workers.executor import EvaluationJob, InProcessExecutor
from naslab.workers.ray_executor import RayExecutor


class TrivialEvaluator(Evaluator):
    """Answers at once: a validation accuracy derived from the architecture's hash.

    Defined in the script (``__main__``), so Ray's cloudpickle ships the class by
    value to the workers; nothing needs to be importable there.
    """

    @property
    def key(self) -> str:  # noqa: D102
        return "trivial-v1(digits)"

    def evaluate(self, space, arch, fidelity, seed, reporter):  # noqa: D102
        value = int(arch.hash[:8], 16) / 2**32
        reporter.report(1, {"val_accuracy": value})
        return Result(metrics={"val_accuracy": value, "test_accuracy": value}, epochs=1)


def timed(cls: type) -> type:
    """A subclass of executor ``cls`` that times its start and shutdown."""

    class Timed(cls):  # type: ignore[misc, valid-type]
        start_s = 0.0
        shutdown_s = 0.0

        def start(self, evaluator, on_report):
            t = time.perf_counter()
            super().start(evaluator, on_report)
            self.start_s = time.perf_counter() - t

        def shutdown(self):
            t = time.perf_counter()
            super().shutdown()
            self.shutdown_s = time.perf_counter() - t

    Timed.__name__ = f"Timed{cls.__name__}"
    return Timed


def run_study(db: Path, name: str, executor: Any, budget: int) -> dict[str, Any]:
    """A study of ``budget`` trials on a fresh store."""
    with Study(name, space="nb201", task=TrivialEvaluator(), searcher="random", budget=budget,
               epochs=1, seed=0, storage=f"sqlite:///{db}", executor=executor) as study:
        with CpuMonitor() as cpu:
            start = time.perf_counter()
            report = study.run()
            wall = time.perf_counter() - start
    return {"wall": wall, "start_s": executor.start_s, "shutdown_s": executor.shutdown_s,
            "dispatched": report.trained_this_run, "reused": report.reused_this_run,
            "failed": report.failed, "cpu_ours": cpu.ours, "cpu_others": cpu.others}


def run_executor(executor: Any, space: Any, archs: list[Any]) -> dict[str, Any]:
    """Submit ``archs`` as jobs, keeping every worker busy; no store, no searcher."""
    reports = [0]

    def on_report(trial_id: int, step: int, metrics: Any) -> bool:
        reports[0] += 1
        return True

    with CpuMonitor() as cpu:
        start = time.perf_counter()
        executor.start(TrivialEvaluator(), on_report)
        try:
            capacity = executor.capacity
            queue = [EvaluationJob(i, space, a, 1, 0) for i, a in enumerate(archs)]
            done = failed = 0
            while queue or executor.pending:
                while queue and executor.pending < capacity:
                    executor.submit(queue.pop(0))
                outcome = executor.wait_any()
                done += 1
                failed += outcome.error is not None
        finally:
            executor.shutdown()
        wall = time.perf_counter() - start
    if reports[0] != len(archs) or failed:
        raise RuntimeError(f"executor loop: {reports[0]} reports, {failed} failed jobs")
    return {"wall": wall, "start_s": getattr(executor, "start_s", 0.0),
            "shutdown_s": getattr(executor, "shutdown_s", 0.0), "dispatched": done,
            "reused": 0, "failed": failed, "cpu_ours": cpu.ours, "cpu_others": cpu.others}


LABELS = {
    "e": "in-process executor alone",
    "d1": "ray executor alone, 1 worker",
    "d2": "ray executor alone, 2 workers",
    "a": "study + in-process (sqlite)",
    "b": "study + ray, 1 worker",
    "c": "study + ray, 2 workers",
}


def parse_args() -> argparse.Namespace:
    """The command line: ``--quick`` and ``--json PATH``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials, for a first look")
    parser.add_argument("--json", type=Path, help="write the headline figures here")
    return parser.parse_args()


def distinct_archs(space: Any, n: int) -> list[Any]:
    """``n`` distinct architectures sampled with seed 0, as the searcher would propose them."""
    rng = np.random.default_rng(0)
    archs: list[Any] = []
    seen: set[str] = set()
    while len(archs) < n:
        a = space.sample(rng)
        if a.hash not in seen:
            seen.add(a.hash)
            archs.append(a)
    return archs


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
    try:
        yield ray_init_s
    finally:
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)  # Ray's session files and logs


def measure(space: Any, archs: list[Any], n: int) -> dict[str, dict[str, Any]]:
    """A warm-up loop (not reported), then every configuration (keys of :data:`LABELS`),
    each with ``loop`` (seconds from the executor's start to its shutdown) added."""
    TimedRay, TimedInProc = timed(RayExecutor), timed(InProcessExecutor)
    runs: dict[str, dict[str, Any]] = {}
    run_executor(RayExecutor(workers=2), space, archs[:20])  # warm-up, not reported
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        runs["e"] = run_executor(TimedInProc(), space, archs)
        runs["d1"] = run_executor(TimedRay(workers=1), space, archs)
        runs["d2"] = run_executor(TimedRay(workers=2), space, archs)
        runs["a"] = run_study(tmpdir / "a.db", "overhead-inproc", TimedInProc(), n)
        runs["b"] = run_study(tmpdir / "b.db", "overhead-ray1", TimedRay(workers=1), n)
        runs["c"] = run_study(tmpdir / "c.db", "overhead-ray2", TimedRay(workers=2), n)
    for r in runs.values():
        r["loop"] = r["wall"] - r["start_s"] - r["shutdown_s"]
    return runs


def per_trial_ms(runs: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Milliseconds per dispatched trial of each configuration (loop time only)."""
    return {key: 1000 * r["loop"] / max(1, r["dispatched"]) for key, r in runs.items()}


def print_report(runs: dict[str, dict[str, Any]], per: dict[str, float]) -> None:
    """One line per configuration, what the columns mean, and the differences."""
    header = (f"{'configuration':<31} {'dispatched':>10} {'reused':>6} {'start s':>7} "
              f"{'loop s':>7} {'ms/trial':>8} {'trials/s':>8} {'cpu s':>6} {'other cpu s':>11}")
    print(header)
    print("-" * len(header))
    for key in ("e", "d1", "d2", "a", "b", "c"):
        r = runs[key]
        print(f"{LABELS[key]:<31} {r['dispatched']:>10} {r['reused']:>6} {r['start_s']:>7.2f} "
              f"{r['loop']:>7.2f} {per[key]:>8.2f} {1000 / per[key]:>8.1f} "
              f"{r['cpu_ours']:>6.1f} {r['cpu_others']:>11.1f}")
    print("(start s: executor start, i.e. creating the actors; loop s: from then to shutdown; "
          "ms/trial: loop s / dispatched; cpu s: CPU time of this script, Ray and its workers; "
          "other cpu s: every other process on the machine meanwhile)")
    print()
    print(f"Ray dispatch per trial (1 worker, alone - in-process alone):     "
          f"{per['d1'] - per['e']:7.2f} ms")
    print(f"store + searcher per trial, in-process (study - executor alone):  "
          f"{per['a'] - per['e']:7.2f} ms")
    print(f"store + searcher per trial, on Ray (study, 1 worker - ray alone): "
          f"{per['b'] - per['d1']:7.2f} ms")
    print(f"study on Ray, 1 worker vs in-process study:                       "
          f"{per['b'] / per['a']:7.2f}x")


def print_warnings(runs: dict[str, dict[str, Any]], cores: int) -> None:
    """Warn about runs disturbed by other processes, and about failed trials."""
    noisy = [LABELS[k] for k, r in runs.items() if r["cpu_others"] > 0.05 * cores * r["wall"]]
    if noisy:
        print("WARNING: other processes used more than 5% of the machine's CPU during: "
              f"{'; '.join(noisy)}; those figures are distorted")
    if any(r["failed"] for r in runs.values()):
        print("WARNING: some trials failed: "
              + ", ".join(f"{LABELS[k]}: {r['failed']}" for k, r in runs.items()))


def headline_figures(
    runs: dict[str, dict[str, Any]], per: dict[str, float], n: int, cores: int
) -> list[dict[str, Any]]:
    """The figures written by ``--json``."""
    cond = {"space": "nb201", "searcher": "random", "trials": n, "evaluator": "trivial",
            "store": "sqlite (fresh file)", "cores": cores, "ray_num_cpus": 2,
            "excludes": "ray.init and actor start"}
    figures = [
        {"name": f"per_trial_{name}", "value": round(per[key], 3), "unit": "ms",
         "conditions": {**cond, "configuration": LABELS[key],
                        "dispatched": runs[key]["dispatched"], "reused": runs[key]["reused"]}}
        for key, name in (("e", "in_process_executor_alone"), ("d1", "ray_executor_alone_1w"),
                          ("d2", "ray_executor_alone_2w"), ("a", "study_in_process"),
                          ("b", "study_ray_1w"), ("c", "study_ray_2w"))
    ]
    figures += [
        {"name": "ray_dispatch_per_trial", "value": round(per["d1"] - per["e"], 3),
         "unit": "ms", "conditions": {"what": "ray executor alone (1 worker) - in-process"}},
        {"name": "store_searcher_per_trial_in_process", "value": round(per["a"] - per["e"], 3),
         "unit": "ms", "conditions": {"what": "study in-process - executor alone"}},
        {"name": "store_searcher_per_trial_ray", "value": round(per["b"] - per["d1"], 3),
         "unit": "ms", "conditions": {"what": "study on ray (1 worker) - ray alone"}},
        {"name": "ray_actor_start", "value": round(runs["c"]["start_s"], 3), "unit": "s",
         "conditions": {"workers": 2, "what": "RayExecutor.start in the study"}},
    ]
    return figures


def main() -> None:
    """Measure, print, and write the headline figures if asked."""
    args = parse_args()
    n = 50 if args.quick else 300
    cores = os.cpu_count() or 1
    space = get_space("nb201")
    archs = distinct_archs(space, n)
    with ray_started() as ray_init_s:
        runs = measure(space, archs, n)
    per = per_trial_ms(runs)
    print(f"trivial evaluator, nb201, {n} trials per configuration, random searcher, seed 0; "
          f"{cores} cores; ray.init took {ray_init_s:.1f} s (excluded)")
    print_report(runs, per)
    print_warnings(runs, cores)
    if args.json:
        args.json.write_text(json.dumps(headline_figures(runs, per, n, cores), indent=2))


if __name__ == "__main__":
    main()
