"""Ray executor: candidates train in parallel on Ray actors.

A pool of ``workers`` actors, each holding its own copy of the evaluator (so a
task's data is built or shipped once per worker, not once per trial). Jobs run
asynchronously: :meth:`RayExecutor.wait_any` returns as soon as any job finishes,
so the search loop asks for the next candidate at once, with no generation barrier.
Per-epoch reports travel through a Ray queue and reach ``on_report`` while the job
runs.

By default a local Ray instance is started with as many CPUs as the machine has; it
listens on 127.0.0.1 only (no dashboard unless asked for, and then there too).
``address`` (or ``RAY_ADDRESS``) joins an existing cluster instead (``"auto"``,
``"host:port"`` or ``"ray://host:port"``): see :mod:`naslab.workers.ray_connect`.
Actors are spread over the cluster's nodes; each names itself ``host/node:pid``
(the first 8 hex digits of its Ray node's ID).
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Any

from naslab.core.errors import ConfigError, EvaluationError
from naslab.core.validation import check_float, check_int
from naslab.workers.evaluator import Evaluator
from naslab.workers.executor import (
    EvaluationJob,
    Executor,
    JobOutcome,
    ReportCallback,
    describe_error,
)
from naslab.workers.ray_connect import (
    DEFAULT_CONNECT_TIMEOUT,
    cluster_address,
    join_cluster,
    require_dashboard,
    start_local,
)


def ray_worker_name() -> str:
    """``host/node:pid`` of the current Ray worker process (node: the first 8 hex
    digits of its Ray node's ID, which tells apart two nodes on one host)."""
    import ray

    node = ray.get_runtime_context().get_node_id()[:8]
    return f"{socket.gethostname()}/{node}:{os.getpid()}"


class _QueueReporter:
    """Sends reports to the driver through a Ray queue; at the job's decision steps
    it waits for the driver's answer (continue or stop)."""

    def __init__(self, job: EvaluationJob, attempt: int, channel: Any, worker: _Worker) -> None:
        self.job = job
        self.attempt = attempt
        self.channel = channel
        self.worker = worker
        self.sent = 0

    def report(self, step: int, metrics: Any) -> bool:
        step = int(step)
        decide = step in self.job.decision_steps
        if decide:
            self.worker.decision.clear()
        self.channel.put((self.job.trial_id, self.attempt, step,
                          {k: float(v) for k, v in metrics.items()}, decide))
        self.sent += 1
        if not decide:
            return True
        self.worker.decision.wait()
        return self.worker.go


class _Worker:
    """Actor body: evaluates jobs with its own evaluator.

    The actor runs two threads: one evaluates (:meth:`run`), the other receives the
    driver's decisions (:meth:`decide`) while a trial waits at a decision step.
    """

    def __init__(self, evaluator: Evaluator, channel: Any, threads: int) -> None:
        import threading

        import torch

        torch.set_num_threads(max(1, threads))
        self.evaluator = evaluator
        self.channel = channel
        self.decision = threading.Event()
        self.go = True

    def ready(self) -> str:
        """Answers once the actor is up (its evaluator unpickled): its worker name."""
        return ray_worker_name()

    def decide(self, go: bool) -> None:
        self.go = bool(go)
        self.decision.set()

    def run(self, job: EvaluationJob, attempt: int) -> tuple[Any, str | None, str, int]:
        """Evaluate ``job``: (result, error, worker name, number of reports sent)."""
        reporter = _QueueReporter(job, attempt, self.channel, self)
        try:
            result = self.evaluator.evaluate(job.space, job.arch, job.fidelity, job.seed, reporter)
        except Exception as exc:  # stored with the trial; the search goes on
            return None, describe_error(exc), ray_worker_name(), reporter.sent
        return result, None, ray_worker_name(), reporter.sent


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*$")


def _one_line(text: str) -> str:
    """Ray's error text on one line, without terminal colour codes."""
    return " ".join(_ANSI.sub("", text).split())


def _clean(text: str, last_cause: bool = False) -> str:
    """Ray's (multi-line) error text as one line, without terminal colour codes: its
    first line, or with ``last_cause`` the last ``SomeError: message`` line."""
    lines = [line.strip() for line in _ANSI.sub("", text).splitlines() if line.strip()]
    if not lines:
        return ""
    if last_cause:
        causes = [line for line in lines if _EXC_LINE.match(line)]
        if causes:
            return causes[-1]
    return lines[0]


def _here() -> dict[str, Any]:
    """Actor options that keep an actor on the driver's node (no CPU held)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    return {"num_cpus": 0,
            "scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}


@dataclass
class _Running:
    job: EvaluationJob
    actor: Any
    started: float
    attempt: int


class RayExecutor(Executor):
    """Runs jobs on a pool of Ray actors.

    Args:
        workers: number of actors (jobs in flight); default: the cluster's CPUs
            divided by ``cpus_per_trial``.
        address: an existing cluster (``"auto"``, ``"host:port"``, ``"ray://host:port"``);
            None: ``RAY_ADDRESS`` if set, else a local instance that listens on
            127.0.0.1 only (or one already initialised in this process).
        cpus_per_trial: CPUs reserved by each actor.
        gpus_per_trial: GPUs reserved by each actor (fractions allowed). None
            (default): none on a cluster without GPUs; on one with GPUs, an equal
            share for each worker, at most 1. A number larger than the cluster's
            GPUs is refused when the executor starts (no trial could ever run).
        trial_timeout: seconds a trial may run before its actor is killed and the
            trial fails; None for no limit.
        max_retries: how many times a trial whose worker process died is run again
            on a fresh worker before it fails.
        dashboard: start Ray's dashboard (on 127.0.0.1 only) with a local instance;
            off by default, as it costs about a tenth of a 2-core machine. Needs
            ``ray[default]`` (``pip install "naslab[cluster]"``).
        connect_timeout: seconds to wait for a cluster's address to answer.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float | None = None,
        trial_timeout: float | None = None,
        max_retries: int = 2,
        dashboard: bool = False,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        if workers is not None:
            check_int("workers", workers, minimum=1)
        check_float("cpus_per_trial", cpus_per_trial, minimum=0, strict_minimum=True)
        if gpus_per_trial is not None:
            check_float("gpus_per_trial", gpus_per_trial, minimum=0)
        if trial_timeout is not None:
            check_float("trial_timeout (seconds)", trial_timeout, minimum=0, strict_minimum=True)
        check_int("max_retries", max_retries, minimum=0)
        check_float("connect_timeout (seconds)", connect_timeout, minimum=0,
                    strict_minimum=True)
        address = cluster_address(address)
        if dashboard and address is not None:
            raise ConfigError(
                "dashboard starts the dashboard of a local Ray instance; a cluster has its "
                "own (`ray start --head --include-dashboard=true`)")
        if dashboard:
            require_dashboard()
        self.connect_timeout = float(connect_timeout)
        self._workers = workers
        self.dashboard = bool(dashboard)
        self.trial_timeout = trial_timeout
        self.max_retries = int(max_retries)
        self.address = address
        self.cpus_per_trial = float(cpus_per_trial)
        self._gpus_requested = gpus_per_trial
        self.gpus_per_trial = 0.0 if gpus_per_trial is None else float(gpus_per_trial)
        self._started_ray = False
        self._actors: list[Any] = []
        self._idle: list[Any] = []
        self._running: dict[Any, _Running] = {}  # result ref -> running job
        self._seen: dict[int, tuple[int, int]] = {}  # trial id -> (attempt, reports seen)
        self._names: dict[str, Any] = {}  # actor id -> ref of its host:pid
        self._channel: Any = None
        self._next_report: Any = None
        self._evaluator_ref: Any = None
        self._on_report: ReportCallback | None = None

    @property
    def requested_workers(self) -> int | None:
        """The ``workers`` asked for (None: one per CPU of the cluster)."""
        return self._workers

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
        from ray import cloudpickle
        from ray.util.queue import Queue

        from naslab.core.references import file_modules

        for module in file_modules():  # spaces and tasks loaded from a file travel by value
            cloudpickle.register_pickle_by_value(module)
        if not ray.is_initialized():
            if self.address is None:
                start_local(os.cpu_count(), dashboard=self.dashboard)
            else:
                join_cluster(self.address, self.connect_timeout)
            self._started_ray = True
        resources = ray.cluster_resources()
        workers = self._workers
        if workers is None:
            workers = max(1, int(resources.get("CPU", 1) // self.cpus_per_trial))
        cpus = float(resources.get("CPU", 0))
        if self.cpus_per_trial > cpus:
            self.shutdown()
            raise ConfigError(
                f"cpus_per_trial is {self.cpus_per_trial:g} but the Ray cluster has "
                f"{cpus:g} CPU(s); ask for at most {cpus:g}"
            )
        gpus = float(resources.get("GPU", 0))
        if self._gpus_requested is None:
            self.gpus_per_trial = 0.0 if gpus == 0 else min(1.0, gpus / workers)
        elif self.gpus_per_trial > gpus:
            self.shutdown()
            raise ConfigError(
                f"gpus_per_trial is {self.gpus_per_trial:g} but the Ray cluster has "
                f"{gpus:g} GPU(s); ask for at most {gpus:g}, or 0 to train on CPUs"
            )
        self._channel = Queue(actor_options=_here())  # lives as long as the driver's node
        self._next_report = self._channel.actor.get.remote(None)
        self._evaluator_ref = ray.put(evaluator)
        self._actors = [self._new_actor() for _ in range(workers)]
        self._idle = list(self._actors)
        self._on_report = on_report
        try:
            ray.get(list(self._names.values()))
        except Exception as exc:  # e.g. the evaluator's module is missing on the workers
            self.shutdown()
            raise ConfigError(
                "the Ray workers could not be started (the evaluator must be importable "
                "where they run: install its package there, or give Ray a runtime_env): "
                + _clean(str(exc), last_cause=True)
            ) from None

    def submit(self, job: EvaluationJob) -> None:
        """Run ``job`` on an idle actor."""
        if not self._idle:
            raise RuntimeError("RayExecutor.submit: every worker is busy (respect capacity)")
        self._launch(job, self._idle.pop(), attempt=1)

    def _launch(self, job: EvaluationJob, actor: Any, attempt: int) -> None:
        self._running[actor.run.remote(job, attempt)] = _Running(
            job, actor, time.monotonic(), attempt
        )
        self._seen[job.trial_id] = (attempt, 0)

    def _handle_report(self, item: tuple[Any, ...]) -> None:
        """Forward one report to ``on_report``; answer the worker if it waits."""
        assert self._on_report is not None
        trial_id, attempt, step, metrics, decide = item
        current = self._seen.get(trial_id)
        if current is None or current[0] != attempt:
            return  # from an attempt whose worker died: superseded by the retry
        self._seen[trial_id] = (attempt, current[1] + 1)
        go = self._on_report(trial_id, step, metrics) is not False
        if decide:
            for run in self._running.values():
                if run.job.trial_id == trial_id and run.attempt == attempt:
                    run.actor.decide.remote(go)
                    break

    def _take_report(self) -> None:
        """Handle the report the outstanding get has received, and ask for the next."""
        import ray

        try:
            item = ray.get(self._next_report)
        except Exception as exc:  # the channel's actor died with its node
            raise EvaluationError("the Ray workers' report channel died: "
                                  + _clean(str(exc))) from None
        self._next_report = self._channel.actor.get.remote(None)
        self._handle_report(item)

    def wait_any(self) -> JobOutcome:
        """Block until a job finishes, forwarding reports as they arrive.

        A job past ``trial_timeout`` has its actor killed and fails. A job whose
        actor process died (killed, segfault, out of memory) runs again on a fresh
        actor, up to ``max_retries`` times, and then fails with the reason. The
        outcome of a job is returned only after all of its reports were forwarded.
        """
        import ray

        while True:
            if not self._running:
                raise RuntimeError("wait_any() called with no job submitted")
            ready, _ = ray.wait([self._next_report, *self._running], num_returns=1,
                                timeout=self._wait_timeout())
            if not ready:
                expired = self._expired()
                if expired is not None:
                    return expired
                continue
            ref = ready[0]
            if ref == self._next_report:
                self._take_report()
                continue
            run = self._running.pop(ref)
            try:
                result, error, worker, sent = ray.get(ref)
            except Exception as exc:  # the actor process died
                fresh = self._replace(run.actor)
                if run.attempt <= self.max_retries:
                    self._launch(run.job, fresh, run.attempt + 1)
                    continue
                self._idle.append(fresh)
                self._seen.pop(run.job.trial_id, None)
                return JobOutcome(
                    run.job, None,
                    f"worker died ({run.attempt} attempts): {_one_line(describe_error(exc))}",
                    self._worker_of(run.actor),
                )
            self._idle.append(run.actor)
            while self._seen[run.job.trial_id][1] < sent:  # its reports still in the queue
                self._take_report()
            self._seen.pop(run.job.trial_id, None)
            return JobOutcome(run.job, result, error, worker)

    def _wait_timeout(self) -> float | None:
        """Seconds until the first running job passes ``trial_timeout`` (None: no limit)."""
        if self.trial_timeout is None:
            return None
        now = time.monotonic()
        first = min(run.started for run in self._running.values())
        return max(0.0, first + self.trial_timeout - now) + 0.01

    def _expired(self) -> JobOutcome | None:
        """Kill and fail the first job that has run past ``trial_timeout``."""
        import ray

        if self.trial_timeout is None:
            return None
        now = time.monotonic()
        for ref, run in list(self._running.items()):
            if now - run.started > self.trial_timeout:
                del self._running[ref]
                self._seen.pop(run.job.trial_id, None)
                worker = self._worker_of(run.actor)
                ray.kill(run.actor)
                self._idle.append(self._replace(run.actor))
                return JobOutcome(
                    run.job, None,
                    f"timed out after {self.trial_timeout:g} s (trial timeout)", worker,
                )
        return None

    def _new_actor(self) -> Any:
        import ray

        actor_cls = ray.remote(_Worker).options(
            num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial, max_concurrency=2,
            scheduling_strategy="SPREAD",  # over the cluster's nodes
        )
        threads = max(1, int(self.cpus_per_trial))
        actor = actor_cls.remote(self._evaluator_ref, self._channel, threads)
        self._names[actor._actor_id.hex()] = actor.ready.remote()  # its host:pid, once up
        return actor

    def _replace(self, dead: Any) -> Any:
        """A fresh actor in place of one whose process died (or was killed)."""
        fresh = self._new_actor()
        self._actors[self._actors.index(dead)] = fresh
        return fresh

    def _worker_of(self, actor: Any) -> str:
        """``host/node:pid`` of an actor; ``ip/node:pid`` for one that died before
        saying its name."""
        import ray

        actor_id = actor._actor_id.hex()
        ref = self._names.get(actor_id)
        if ref is not None:
            try:
                return str(ray.get(ref, timeout=1.0))
            except Exception:  # it died before it could answer: ask Ray's actor table
                pass
        try:
            from ray._private import state

            info = state.actors(actor_id)
            address = info["Address"]
            return f"{address['IPAddress']}/{str(address.get('NodeID', ''))[:8]}:{info['Pid']}"
        except Exception:
            return "?"

    def shutdown(self) -> None:
        """Kill the actors; stop Ray if this executor started it."""
        import ray

        for actor in self._actors:
            ray.kill(actor)
        self._actors, self._idle, self._running, self._seen = [], [], {}, {}
        self._names = {}
        if self._channel is not None:
            self._channel.shutdown(force=True)
            self._channel = None
            self._next_report = None
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
