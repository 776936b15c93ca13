"""Ray executor: candidates train in parallel on Ray actors.

A pool of ``workers`` actors, each holding its own copy of the evaluator (so a
task's data is built or shipped once per worker, not once per trial). Jobs run
asynchronously: :meth:`RayExecutor.wait_any` returns as soon as any job finishes,
so the search loop asks for the next candidate at once, with no generation barrier.
Per-epoch reports travel through a Ray queue and reach ``on_report`` while the job
runs.

By default a local Ray instance is started with as many CPUs as the machine has
(dashboard on localhost only); ``address`` joins an existing cluster instead
(``"auto"`` or ``"ray://host:port"``).
"""

from __future__ import annotations

import os
import queue as queue_module
import time
from typing import Any

from naslab.errors import ConfigError
from naslab.workers.evaluator import Evaluator
from naslab.workers.executor import (
    EvaluationJob,
    Executor,
    JobOutcome,
    ReportCallback,
    describe_error,
    worker_name,
)


class _QueueReporter:
    """Sends reports to the driver through a Ray queue."""

    def __init__(self, trial_id: int, channel: Any) -> None:
        self.trial_id = trial_id
        self.channel = channel

    def report(self, step: int, metrics: Any) -> None:
        self.channel.put((self.trial_id, int(step), {k: float(v) for k, v in metrics.items()}))


class _Worker:
    """Actor body: evaluates jobs with its own evaluator."""

    def __init__(self, evaluator: Evaluator, channel: Any) -> None:
        self.evaluator = evaluator
        self.channel = channel

    def run(self, job: EvaluationJob) -> tuple[Any, str | None, str]:
        reporter = _QueueReporter(job.trial_id, self.channel)
        try:
            result = self.evaluator.evaluate(job.space, job.arch, job.fidelity, job.seed, reporter)
        except Exception as exc:  # stored with the trial; the search goes on
            return None, describe_error(exc), worker_name()
        return result, None, worker_name()


class RayExecutor(Executor):
    """Runs jobs on a pool of Ray actors.

    Args:
        workers: number of actors (jobs in flight); default: the cluster's CPUs
            divided by ``cpus_per_trial``.
        address: an existing cluster (``"auto"``, ``"ray://host:port"``); None starts
            a local instance (or uses one already initialised in this process).
        cpus_per_trial: CPUs reserved by each actor.
        gpus_per_trial: GPUs reserved by each actor (fractions allowed); 0 on
            CPU-only machines.
        trial_timeout: seconds a trial may run before its actor is killed and the
            trial fails; None for no limit.
        max_retries: how many times a trial whose worker process died is run again
            on a fresh worker before it fails.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        trial_timeout: float | None = None,
        max_retries: int = 2,
    ) -> None:
        if workers is not None and (isinstance(workers, bool) or workers < 1):
            raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
        if cpus_per_trial <= 0 or gpus_per_trial < 0:
            raise ConfigError(
                "cpus_per_trial must be > 0 and gpus_per_trial >= 0, got "
                f"{cpus_per_trial} and {gpus_per_trial}"
            )
        if trial_timeout is not None and trial_timeout <= 0:
            raise ConfigError(f"trial_timeout must be > 0 seconds, got {trial_timeout!r}")
        if isinstance(max_retries, bool) or max_retries < 0:
            raise ConfigError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if address is not None and not (
            address == "auto" or address.startswith("ray://") or ":" in address
        ):
            raise ConfigError(
                f"ray address {address!r} is not 'auto', 'ray://host:port' or 'host:port'"
            )
        self._workers = workers
        self.trial_timeout = trial_timeout
        self.max_retries = int(max_retries)
        self.address = address
        self.cpus_per_trial = float(cpus_per_trial)
        self.gpus_per_trial = float(gpus_per_trial)
        self._started_ray = False
        self._actors: list[Any] = []
        self._idle: list[Any] = []
        # ref -> (job, actor, start time, attempt)
        self._running: dict[Any, tuple[EvaluationJob, Any, float, int]] = {}
        self._channel: Any = None
        self._evaluator_ref: Any = None
        self._on_report: ReportCallback | None = None

    @property
    def capacity(self) -> int:  # type: ignore[override]
        """Number of actors (known after :meth:`start`)."""
        return len(self._actors) or (self._workers or 1)

    @property
    def pending(self) -> int:
        """Jobs running on actors."""
        return len(self._running)

    def start(self, evaluator: Evaluator, on_report: ReportCallback) -> None:
        """Connect to (or start) Ray and create the actor pool."""
        import ray
        from ray.util.queue import Queue

        if not ray.is_initialized():
            if self.address is None:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False,
                         log_to_driver=False)
            else:
                ray.init(address=self.address, log_to_driver=False)
            self._started_ray = True
        workers = self._workers
        if workers is None:
            cpus = ray.cluster_resources().get("CPU", 1)
            workers = max(1, int(cpus // self.cpus_per_trial))
        self._channel = Queue()
        self._evaluator_ref = ray.put(evaluator)
        actor_cls = self._actor_class()
        self._actors = [
            actor_cls.remote(self._evaluator_ref, self._channel) for _ in range(workers)
        ]
        self._idle = list(self._actors)
        self._on_report = on_report

    def submit(self, job: EvaluationJob) -> None:
        """Run ``job`` on an idle actor."""
        if not self._idle:
            raise RuntimeError("RayExecutor.submit: every worker is busy (respect capacity)")
        self._launch(job, self._idle.pop(), attempt=1)

    def _launch(self, job: EvaluationJob, actor: Any, attempt: int) -> None:
        self._running[actor.run.remote(job)] = (job, actor, time.monotonic(), attempt)

    def _drain_reports(self) -> None:
        assert self._on_report is not None
        while True:
            try:
                trial_id, step, metrics = self._channel.get_nowait()
            except queue_module.Empty:  # ray.util.queue.Empty subclasses it
                return
            self._on_report(trial_id, step, metrics)

    def wait_any(self) -> JobOutcome:
        """Block until a job finishes, forwarding reports meanwhile.

        A job past ``trial_timeout`` has its actor killed and fails. A job whose
        actor process died (killed, segfault, out of memory) runs again on a fresh
        actor, up to ``max_retries`` times, and then fails with the reason.
        """
        import ray

        while True:
            if not self._running:
                raise RuntimeError("wait_any() called with no job submitted")
            ready, _ = ray.wait(list(self._running), num_returns=1, timeout=0.2)
            self._drain_reports()
            if not ready:
                expired = self._expired()
                if expired is not None:
                    return expired
                continue
            ref = ready[0]
            job, actor, _, attempt = self._running.pop(ref)
            try:
                result, error, worker = ray.get(ref)
            except Exception as exc:  # the actor process died
                fresh = self._replace(actor)
                if attempt <= self.max_retries:
                    self._launch(job, fresh, attempt + 1)
                    continue
                self._idle.append(fresh)
                return JobOutcome(
                    job, None, f"worker died ({attempt} attempts): {describe_error(exc)}", "?"
                )
            self._idle.append(actor)
            self._drain_reports()
            return JobOutcome(job, result, error, worker)

    def _expired(self) -> JobOutcome | None:
        """Kill and fail the first job that has run past ``trial_timeout``."""
        import ray

        if self.trial_timeout is None:
            return None
        now = time.monotonic()
        for ref, (job, actor, started, _) in list(self._running.items()):
            if now - started > self.trial_timeout:
                del self._running[ref]
                ray.kill(actor)
                self._idle.append(self._replace(actor))
                return JobOutcome(
                    job, None, f"timed out after {self.trial_timeout:g} s (trial timeout)", "?"
                )
        return None

    def _actor_class(self) -> Any:
        import ray

        return ray.remote(_Worker).options(
            num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial
        )

    def _replace(self, dead: Any) -> Any:
        """A fresh actor in place of one whose process died."""
        fresh = self._actor_class().remote(self._evaluator_ref, self._channel)
        self._actors[self._actors.index(dead)] = fresh
        return fresh

    def shutdown(self) -> None:
        """Kill the actors; stop Ray if this executor started it."""
        import ray

        for actor in self._actors:
            ray.kill(actor)
        self._actors, self._idle, self._running = [], [], {}
        if self._channel is not None:
            self._channel.shutdown()
            self._channel = None
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
