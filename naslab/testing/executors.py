"""The executor contract: what every :class:`~naslab.workers.executor.Executor` must do,
as a pytest suite.

Subclass :class:`ExecutorContract` and give it an ``executor`` fixture: a new executor
that has not been started (each check starts it, and shuts it down at the end)::

    import pytest

    from naslab.testing import ExecutorContract
    from mypackage import MyExecutor


    class TestMyExecutor(ExecutorContract):
        @pytest.fixture
        def executor(self):
            return MyExecutor(workers=2)

The checks run real, cheap evaluations: look-ups in NAS-Bench-Graph's ``cora`` table
(:class:`~naslab.workers.benchmark_table.NasBenchGraphEvaluator`) and
:class:`ContractEvaluator`, which reports every epoch, stops where it is told to, can
raise or take its time, and says where it ran. They check that:

- every submitted job comes back from :meth:`~Executor.wait_any` exactly once, with
  its trial id and job, and with the result an evaluation in this process gives;
- an exception of the evaluator comes back as a failed outcome carrying its type and
  message, and later jobs still run (the search goes on);
- per-epoch reports reach ``on_report`` with the trial id, step and metrics, in step
  order and before the job's outcome; answering False at one of the job's
  ``decision_steps`` stops the trial there;
- :attr:`~Executor.pending` counts the jobs submitted and not yet returned,
  :attr:`~Executor.capacity` jobs run at once (an :attr:`~Executor.inline` executor
  runs each inside ``wait_any``, in the calling thread), and ``wait_any`` with
  nothing pending raises RuntimeError instead of blocking;
- :meth:`~Executor.shutdown` returns promptly with a job in flight, may be called
  twice, and releases what the executor held: override
  :meth:`ExecutorContract.assert_released` to check your resources (naslab's own
  tests check that a Ray pool gives its CPUs back).

The evaluators must reach the executor's workers: where those run in other
processes or machines, naslab (and nas-bench-graph) must be importable there.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from naslab.workers.evaluator import Evaluator, NullReporter, Reporter, Result
from naslab.workers.executor import EvaluationJob, Executor, JobOutcome

if TYPE_CHECKING:
    from naslab.search_spaces.architecture import Architecture
    from naslab.search_spaces.base import SearchSpace

__all__ = ["ContractEvaluator", "ExecutorContract"]


def _fraction(arch: Architecture, start: int) -> float:
    """A number in [0, 1) read from the architecture's hash."""
    return int(arch.hash[start:start + 8], 16) / 16**8


class ContractEvaluator(Evaluator):
    """A deterministic evaluator for executor checks, for any search space.

    The final ``val_accuracy`` and ``test_accuracy`` are numbers read from the
    architecture's hash, ``seed`` comes back as a metric, and ``params`` too is read
    from the hash. Each epoch 1..``fidelity`` reports ``val_accuracy`` =
    :meth:`curve` and stops early when the reporter answers False (the result then
    says the epochs done). ``extra`` says where and when it ran: ``pid``,
    ``thread``, ``started`` and ``ended`` (``time.time()``).

    Args:
        fail: hashes of architectures whose evaluation raises RuntimeError
            (``contract failure of <hash>``).
        slow: hashes of architectures whose evaluation takes ``sleep_s`` seconds
            (after its reports).
        sleep_s: see ``slow``.
    """

    metrics = ("val_accuracy", "test_accuracy", "seed")
    costs = ("params",)

    def __init__(self, fail: Iterable[str] = (), slow: Iterable[str] = (),
                 sleep_s: float = 1.0) -> None:
        self.fail = frozenset(fail)
        self.slow = frozenset(slow)
        self.sleep_s = float(sleep_s)

    @property
    def key(self) -> str:
        """``executor-contract``."""
        return "executor-contract"

    @staticmethod
    def final(arch: Architecture) -> dict[str, float]:
        """The final accuracies of ``arch``."""
        return {"val_accuracy": _fraction(arch, 0), "test_accuracy": _fraction(arch, 8)}

    @staticmethod
    def curve(arch: Architecture, step: int, fidelity: int) -> float:
        """The ``val_accuracy`` reported at ``step`` of ``fidelity`` epochs."""
        return _fraction(arch, 0) * step / fidelity

    def evaluate(self, space: SearchSpace, arch: Architecture, fidelity: int, seed: int,
                 reporter: Reporter) -> Result:
        """Report, maybe stop, maybe raise or sleep; see the class docstring."""
        started = time.time()
        if arch.hash in self.fail:
            raise RuntimeError(f"contract failure of {arch.hash[:12]}")
        epochs = fidelity
        for step in range(1, fidelity + 1):
            if reporter.report(step, {"val_accuracy": self.curve(arch, step, fidelity)}) is False:
                epochs = step
                break
        if arch.hash in self.slow:
            time.sleep(self.sleep_s)
        return Result(
            metrics={**self.final(arch), "seed": float(seed)},
            params=int(arch.hash[16:22], 16), epochs=epochs,
            extra={"pid": os.getpid(), "thread": threading.get_ident(), "started": started,
                   "ended": time.time()})


class _Reports:
    """An ``on_report`` callback that records ``(trial_id, step, metrics)`` and answers
    False for the trials and steps in ``stop``."""

    def __init__(self, stop: set[tuple[int, int]] | None = None) -> None:
        self.stop = stop or set()
        self.seen: list[tuple[int, int, dict[str, float]]] = []

    def __call__(self, trial_id: int, step: int, metrics: Mapping[str, float]) -> bool | None:
        self.seen.append((trial_id, step, dict(metrics)))
        return False if (trial_id, step) in self.stop else None

    def of(self, trial_id: int) -> list[tuple[int, dict[str, float]]]:
        return [(step, metrics) for tid, step, metrics in self.seen if tid == trial_id]


class ExecutorContract:
    """Checks that every executor must pass (needs an ``executor`` fixture: a new,
    unstarted executor)."""

    #: Seconds each job of the capacity check takes.
    sleep_s = 1.0
    #: The capacity check runs ``min(capacity, max_parallel)`` jobs at once.
    max_parallel = 8
    #: Seconds that :meth:`~Executor.shutdown` may take with a job in flight.
    shutdown_limit_s = 15.0

    def space(self) -> SearchSpace:
        """The space the jobs' architectures come from: NAS-Bench-Graph (cora), whose
        table answers the first check."""
        from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace

        return NasBenchGraphSpace("cora")

    def architectures(self, space: SearchSpace, n: int, seed: int = 0) -> list[Architecture]:
        """``n`` distinct architectures of ``space``."""
        rng = np.random.default_rng(seed)
        found: dict[str, Architecture] = {}
        while len(found) < n:
            arch = space.sample(rng)
            found.setdefault(arch.hash, arch)
        return list(found.values())

    def assert_released(self, executor: Executor) -> None:
        """Called after :meth:`~Executor.shutdown`: check that the executor released
        what it held (override for your executor's workers and connections)."""

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def run_all(executor: Executor, jobs: list[EvaluationJob], reports: _Reports
                ) -> tuple[list[JobOutcome], dict[int, list[int]]]:
        """Run ``jobs`` as the search loop does: keep up to ``capacity`` in flight and
        submit the next as soon as one comes back, checking ``pending`` all along.
        Returns the outcomes in the order they came, and the steps reported for each
        trial by the time its outcome came."""
        queue, outcomes, steps = list(jobs), [], {}
        while queue or executor.pending:
            while queue and executor.pending < executor.capacity:
                before = executor.pending
                executor.submit(queue.pop(0))
                assert executor.pending == before + 1
            before = executor.pending
            outcome = executor.wait_any()
            assert isinstance(outcome, JobOutcome)
            assert executor.pending == before - 1
            trial_id = outcome.job.trial_id
            assert trial_id not in steps, f"trial {trial_id} came back twice"
            steps[trial_id] = [step for step, _ in reports.of(trial_id)]
            outcomes.append(outcome)
        return outcomes, steps

    @staticmethod
    def _refuses_wait_without_jobs(executor: Executor) -> None:
        raised: list[BaseException] = []

        def wait() -> None:
            try:
                executor.wait_any()
            except BaseException as exc:  # noqa: BLE001 - inspected below
                raised.append(exc)

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        waiter.join(10.0)
        assert not waiter.is_alive(), "wait_any() with no job pending blocks"
        assert raised and isinstance(raised[0], RuntimeError), raised

    # ------------------------------------------------------------------ checks

    def test_each_job_comes_back_once_with_the_in_process_result(self, executor: Executor
                                                                 ) -> None:
        from naslab.workers.benchmark_table import NasBenchGraphEvaluator

        space, evaluator = self.space(), NasBenchGraphEvaluator("cora")
        jobs = [EvaluationJob(100 + i, space, arch, 2, i)
                for i, arch in enumerate(self.architectures(space, 6))]
        reports = _Reports()
        executor.start(evaluator, reports)
        try:
            outcomes, steps = self.run_all(executor, jobs, reports)
            assert executor.pending == 0
        finally:
            executor.shutdown()
        assert sorted(o.job.trial_id for o in outcomes) == [job.trial_id for job in jobs]
        by_id = {job.trial_id: job for job in jobs}
        for outcome in outcomes:
            job = by_id[outcome.job.trial_id]
            assert outcome.job.arch == job.arch and outcome.job.arch.hash == job.arch.hash
            assert (outcome.job.fidelity, outcome.job.seed) == (job.fidelity, job.seed)
            assert outcome.error is None, outcome.error
            assert isinstance(outcome.worker, str) and outcome.worker
            expected = evaluator.evaluate(space, job.arch, job.fidelity, job.seed,
                                          NullReporter())
            assert outcome.result == expected
            # the table reports its final values once, at the last epoch, and the
            # report arrives before the outcome
            assert reports.of(job.trial_id) == [(2, expected.metrics)]
            assert steps[job.trial_id] == [2]

    def test_reports_stops_errors_capacity_and_shutdown(self, executor: Executor) -> None:
        """One started executor (starting one may take seconds) goes through each phase:
        :meth:`check_capacity`, :meth:`check_reports_stops_and_errors`, then a shutdown
        with a job in flight."""
        space = self.space()
        archs = self.architectures(space, 6 + self.max_parallel, seed=1)
        plain, slow = archs[:5], archs[5:]
        evaluator = ContractEvaluator(fail={plain[1].hash, plain[3].hash},
                                      slow={a.hash for a in slow}, sleep_s=self.sleep_s)
        reports = _Reports(stop={(202, 2)})
        executor.start(evaluator, reports)
        try:
            self.check_capacity(executor, space, slow[:-1], reports)
            self.check_reports_stops_and_errors(executor, space, plain, reports)
            # shutdown with a job in flight returns promptly, and may be repeated
            executor.submit(EvaluationJob(399, space, slow[-1], 1, 0))
        finally:
            began = time.monotonic()
            executor.shutdown()
            took = time.monotonic() - began
        assert took < self.shutdown_limit_s, f"shutdown took {took:.1f} s"
        executor.shutdown()
        self.assert_released(executor)

    def check_capacity(self, executor: Executor, space: SearchSpace,
                       slow: list[Architecture], reports: _Reports) -> None:
        """``pending`` and ``capacity``: up to ``capacity`` jobs (taking ``sleep_s``
        each) run at once, or, inline, one by one in the calling thread inside
        ``wait_any``; ``wait_any`` with nothing pending raises RuntimeError."""
        capacity = executor.capacity
        assert isinstance(capacity, int) and capacity >= 1
        assert executor.pending == 0
        self._refuses_wait_without_jobs(executor)
        n = min(capacity, len(slow))
        for i, arch in enumerate(slow[:n]):
            executor.submit(EvaluationJob(300 + i, space, arch, 1, 0))
            assert executor.pending == i + 1
        if executor.inline:  # nothing runs before wait_any
            assert reports.seen == []
        outcomes = []
        while executor.pending:
            before = executor.pending
            outcomes.append(executor.wait_any())
            assert executor.pending == before - 1
        assert sorted(o.job.trial_id for o in outcomes) == list(range(300, 300 + n))
        extras = [o.result.extra for o in outcomes if o.result is not None]
        assert len(extras) == n, [o.error for o in outcomes]
        if executor.inline:  # in the calling thread, inside wait_any
            assert all(e["pid"] == os.getpid() for e in extras)
            assert all(e["thread"] == threading.get_ident() for e in extras)
        else:  # the jobs ran at once
            assert max(e["started"] for e in extras) < min(e["ended"] for e in extras), (
                f"{n} jobs were submitted to an executor of capacity {capacity} but did "
                "not run at once")
        self._refuses_wait_without_jobs(executor)

    def check_reports_stops_and_errors(self, executor: Executor, space: SearchSpace,
                                       archs: list[Architecture], reports: _Reports) -> None:
        """Five jobs of 3 epochs (trial ids 200-204): 201 and 203 raise, 202 is stopped
        at its decision step 2, 204 has a decision step and goes on."""
        jobs = [EvaluationJob(200 + i, space, arch, 3, 10 + i) for i, arch in enumerate(archs)]
        jobs[2] = EvaluationJob(202, space, archs[2], 3, 12, frozenset({2}))
        jobs[4] = EvaluationJob(204, space, archs[4], 3, 14, frozenset({1}))
        came, steps = self.run_all(executor, jobs, reports)
        outcomes = {o.job.trial_id: o for o in came}
        assert sorted(outcomes) == [job.trial_id for job in jobs]
        for failed in (201, 203):  # an exception is a failed outcome with its message
            outcome = outcomes[failed]
            assert outcome.result is None and isinstance(outcome.error, str)
            assert "RuntimeError" in outcome.error
            assert f"contract failure of {outcome.job.arch.hash[:12]}" in outcome.error
            assert reports.of(failed) == []
        for job in (jobs[0], jobs[2], jobs[4]):  # the others, before and after, ran
            outcome = outcomes[job.trial_id]
            assert outcome.error is None and outcome.result is not None, outcome.error
            assert outcome.job.decision_steps == job.decision_steps
            assert outcome.result.metrics == {**ContractEvaluator.final(job.arch),
                                              "seed": float(job.seed)}
            epochs = 2 if job.trial_id == 202 else 3
            assert outcome.result.epochs == epochs
            assert reports.of(job.trial_id) == [
                (step, {"val_accuracy": ContractEvaluator.curve(job.arch, step, 3)})
                for step in range(1, epochs + 1)]
            assert steps[job.trial_id] == list(range(1, epochs + 1)), (
                f"trial {job.trial_id} came back before its reports")
