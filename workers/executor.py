"""Executors: where evaluations run.

An :class:`Executor` takes :class:`EvaluationJob` s and hands back
:class:`JobOutcome` s as they finish; per-epoch reports go to the ``on_report``
callback given to :meth:`Executor.start` as they arrive. The search loop keeps up to
:attr:`Executor.capacity` jobs in flight and asks the searcher for a new candidate as
soon as one finishes, so an asynchronous executor (Ray, in its own module) needs no
generation barrier.

:class:`InProcessExecutor` runs one job at a time in the calling thread (inline):
the simplest to debug, what tests use, and what table searches use, whose look-ups
cost less than a dispatch.
"""

from __future__ import annotations

import os
import socket
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.workers.evaluator import Evaluator, Result

#: ``on_report(trial_id, step, metrics) -> continue?``: returning False at one of the
#: job's ``decision_steps`` stops the trial early (None or True: go on).
ReportCallback = Callable[[int, int, Mapping[str, float]], "bool | None"]


@dataclass(frozen=True)
class EvaluationJob:
    """One evaluation to run: trial ``trial_id`` of ``arch`` at ``fidelity`` epochs.

    ``decision_steps`` are the epochs at which the driver decides whether the trial
    goes on (a scheduler's rungs): there the worker waits for the answer of
    ``on_report`` before training further. Other reports are not waited for.
    """

    trial_id: int
    space: SearchSpace
    arch: Architecture
    fidelity: int
    seed: int
    decision_steps: frozenset[int] = frozenset()


@dataclass
class JobOutcome:
    """A finished job: a result, or the error that stopped it."""

    job: EvaluationJob
    result: Result | None
    error: str | None
    worker: str


def worker_name() -> str:
    """``host:pid`` of the current process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def describe_error(exc: BaseException) -> str:
    """A one-paragraph description of an exception for the store's error column."""
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


class Executor(ABC):
    """Runs evaluation jobs and returns their outcomes as they finish."""

    #: How many jobs may be in flight at once.
    capacity: int = 1
    #: Whether it runs each job to completion in the calling thread, inside
    #: :meth:`wait_any` (so that a search loop may hold one store transaction from the
    #: claim to the stored result of an instant evaluation).
    inline: bool = False

    @abstractmethod
    def start(self, evaluator: Evaluator, on_report: ReportCallback) -> None:
        """Prepare to run jobs with ``evaluator``; reports go to ``on_report``."""

    @abstractmethod
    def submit(self, job: EvaluationJob) -> None:
        """Queue ``job``."""

    @abstractmethod
    def wait_any(self) -> JobOutcome:
        """Block until a submitted job finishes and return its outcome."""

    @property
    @abstractmethod
    def pending(self) -> int:
        """Jobs submitted and not yet returned by :meth:`wait_any`."""

    def shutdown(self) -> None:
        """Release resources (workers, connections)."""


class _CallbackReporter:
    def __init__(self, trial_id: int, on_report: ReportCallback) -> None:
        self.trial_id = trial_id
        self.on_report = on_report

    def report(self, step: int, metrics: Mapping[str, float]) -> bool:
        return self.on_report(self.trial_id, step, metrics) is not False


class InProcessExecutor(Executor):
    """The inline executor: runs each job in the calling thread when its outcome is
    awaited, one at a time.

    An exception raised by the evaluator becomes a failed outcome carrying its
    message; ``KeyboardInterrupt`` and ``SystemExit`` propagate.
    """

    capacity = 1
    inline = True

    def __init__(self) -> None:
        self._queue: deque[EvaluationJob] = deque()
        self._evaluator: Evaluator | None = None
        self._on_report: ReportCallback | None = None
        self._worker = worker_name()

    def start(self, evaluator: Evaluator, on_report: ReportCallback) -> None:
        """Remember the evaluator and the report callback."""
        self._evaluator = evaluator
        self._on_report = on_report
        self._worker = worker_name()

    def submit(self, job: EvaluationJob) -> None:
        """Queue ``job``; it runs in :meth:`wait_any`."""
        self._queue.append(job)

    @property
    def pending(self) -> int:
        """Queued jobs."""
        return len(self._queue)

    def wait_any(self) -> JobOutcome:
        """Run the oldest queued job now and return its outcome."""
        if self._evaluator is None or self._on_report is None:
            raise RuntimeError("InProcessExecutor.start() must be called before wait_any()")
        if not self._queue:
            raise RuntimeError("wait_any() called with no job submitted")
        job = self._queue.popleft()
        reporter = _CallbackReporter(job.trial_id, self._on_report)
        try:
            result = self._evaluator.evaluate(job.space, job.arch, job.fidelity, job.seed, reporter)
        except Exception as exc:  # the search goes on; the error is stored with the trial
            return JobOutcome(job, None, describe_error(exc), self._worker)
        return JobOutcome(job, result, None, self._worker)
