"""The search loop of one run of a study: :class:`TrialLoop`.

Each trial takes the same path, whatever evaluates it (a benchmark table in this
process, training in this process, Ray workers):

1. :meth:`~TrialLoop.sync` (every few seconds): tell the searcher what the other
   drivers of the study stored meanwhile;
2. :meth:`~TrialLoop.ask`: the searcher's next candidate;
3. :meth:`~TrialLoop.claim` it in the store (:mod:`naslab.db.protocol`): a new trial
   to evaluate, a reused result, or nothing (another driver has it, or the budget
   is taken);
4. :meth:`~TrialLoop.dispatch` a new trial to the executor; its per-epoch reports
   reach :meth:`~TrialLoop.report`, which stores them and lets a multi-fidelity
   scheduler stop it at a rung;
5. :meth:`~TrialLoop.finish` each outcome: store the result (or the failure), tell
   the searcher;
6. :meth:`~TrialLoop.emit` the finished trial to the progress callback.

When evaluations are instant and inline (a table searched in this process), the
store's batched commit wraps steps 3-5, so a trial costs one transaction (or less,
with ``batch_trials``), and the store never calls an evaluator.

Two cases take another path at step 2:

- **Interrupted trials are retried first.** An architecture whose trial an earlier
  run left ``interrupted`` (its driver was killed, or stopped by a signal) is
  claimed again before the searcher is asked for anything new, unless the study has
  finished (or is running) it since; one interrupted :data:`MAX_INTERRUPTIONS`
  times is not retried again (it may be what kills the driver).
- **An exhausted space ends the run.** A study holds each architecture once, so a
  candidate it already holds is not claimed: the searcher is asked anew. The run
  stops before its budget when the study holds every architecture of a space that
  knows its size (:meth:`SearchSpace.size
  <naslab.search_spaces.base.SearchSpace.size>`), or when the searcher proposes only
  held architectures :data:`EXHAUSTED_AFTER` times in a row; :attr:`TrialLoop.exhausted`
  says which.
- **Enqueued architectures** (:meth:`Study.enqueue <naslab.study.Study.enqueue>`)
  are claimed in order after the retries; one the study holds is skipped (logged).
  The searcher is told their results as a resume replays them.

A ``stop_reason`` (a wall-clock limit, :meth:`Study.stop <naslab.study.Study.stop>`)
ends a run early; trials in flight finish. :attr:`TrialLoop.stopped_by` says why it
ended; the ``naslab.loop`` logger says what the loop decided.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from naslab.core.drivers import Heartbeat, driver_id
from naslab.core.errors import InvalidArchitectureError
from naslab.db.protocol import Claim, ClaimContext, ClaimOutcome
from naslab.db.records import StudyInfo, TrialRecord
from naslab.events import TrialEvent
from naslab.fronts import trial_metrics
from naslab.search_spaces.architecture import Architecture
from naslab.warm_start import prime
from naslab.workers.evaluator import Result
from naslab.workers.executor import EvaluationJob, JobOutcome, worker_name

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from naslab.study import Study

__all__ = ["BATCH_S", "EXHAUSTED_AFTER", "MAX_INTERRUPTIONS", "SYNC_EVERY_S", "TrialEvent",
           "TrialLoop", "objective_error"]

#: How often a driver looks for results that other drivers of its study stored.
SYNC_EVERY_S = 2.0
#: A batch of inline table trials (``batch_trials`` > 1) is also committed once it is
#: this many seconds old.
BATCH_S = 0.1
#: The states of finished trials (those that count as done).
DONE_STATES = ("complete", "stopped", "failed")
#: Proposals in a row of architectures the study already holds after which the
#: space counts as exhausted (each :meth:`Searcher.ask
#: <naslab.searchers.base.Searcher.ask>` itself draws up to ``max_retries`` times).
EXHAUSTED_AFTER = 10
#: An architecture interrupted this many times is not retried on resume.
MAX_INTERRUPTIONS = 3


def objective_error(result: Result, objective: str) -> str | None:
    """Why ``result`` cannot be stored as complete (no finite objective), or None."""
    value = result.metrics.get(objective)
    if value is None or not math.isfinite(value):
        return f"objective {objective} is {value!r}, not a finite number"
    return None


@dataclass
class _Counts:
    """What a run has seen: trials finished (every driver's), the best objective, and
    this run's own evaluations and reuses."""

    finished: int
    best: float | None
    trained: int = 0
    reused: int = 0

    def improve(self, value: float | None) -> None:
        if value is not None:
            self.best = value if self.best is None else max(self.best, value)


class TrialLoop:
    """One run of a study (see the module docstring). Built by :meth:`Study.run
    <naslab.study.Study.run>` after :meth:`Study.prepare <naslab.study.Study.prepare>`.

    Args:
        study: the study, holding its store, searcher, executor, evaluator,
            scheduler, budget, fidelity and seed.
        info: its stored record.
        callback: called with a :class:`TrialEvent` after each finished trial (an
            exception it raises ends the run, after committing what is stored).
        queued: architectures to claim, in order, before asking the searcher; the
            loop takes them off this list as it claims them (those left stay).
        only_queued: claim only ``queued`` (no retries, never ask the searcher).
        stop_reason: asked before each new trial; a string ends the run (its trials
            in flight finish) and becomes :attr:`stopped_by`.
    """

    def __init__(self, study: Study, info: StudyInfo,
                 callback: Callable[[TrialEvent], None] | None = None, *,
                 queued: list[Architecture] | None = None, only_queued: bool = False,
                 stop_reason: Callable[[], str | None] | None = None) -> None:
        self.study, self.info, self.callback = study, info, callback
        self.queued = queued if queued is not None else []
        self.only_queued = only_queued
        self.stop_reason = stop_reason
        #: The claims made for enqueued architectures, by hash.
        self.queued_claims: dict[str, Claim] = {}
        self._from_queue: set[int] = set()  # trial ids of enqueued architectures
        #: Why the run ended early (the ``stop_reason`` answer), or None.
        self.halted: str | None = None
        self.store, self.searcher = study.store, study.searcher
        self.executor, self.scheduler = study.executor, study.scheduler
        self.objective = study.evaluator.objective
        self.driver = driver_id()
        self.context = ClaimContext.of(info, driver=self.driver, worker=worker_name())
        #: Claims, evaluations and results share one transaction per trial (or per
        #: ``batch_trials``; per trial when the searcher writes to the same database).
        self.inline = (self.executor.inline and self.executor.capacity == 1
                       and study.evaluator.instant and self.scheduler is None)
        self.batch_size = 1 if study.searcher_shares_store else study.batch_trials
        self.in_flight: dict[int, EvaluationJob] = {}
        self.numbers: dict[int, int] = {}  # trial id -> number, of this run's trials
        self.stopped: set[int] = set()  # trial ids a scheduler stopped
        self._reports: dict[int, list[tuple[int, dict[str, float]]]] = {}  # inline trials'
        self.counts = _Counts(0, None)
        #: Running trials of dead drivers that this run marked interrupted.
        self.interrupted_found = 0
        #: Interrupted architectures this run claimed again (evaluated, or reused
        #: from another study).
        self.retried = 0
        #: Hashes of interrupted architectures left alone (interrupted too often).
        self.given_up: set[str] = set()
        #: Why the run stopped before the budget (the space is used up), or None.
        self.exhausted: str | None = None
        self.space_size = study.space.size()
        self.full = False
        self._retry: list[Architecture] = []  # interrupted architectures, to claim first
        self._held: set[str] = set()  # hashes of the study's trials this driver knows
        self._seen: set[int] = set()  # ids of finished trials the searcher was told
        self._seen_number = -1
        self._watched: set[int] = set()  # other drivers' running trials
        self._last_sync = time.monotonic()
        self._busy_streak = 0
        self._repeats = 0  # proposals in a row of held architectures
        self._batch = ExitStack()
        self._batch_n, self._batch_t0 = 0, 0.0
        #: When the run started (``time.perf_counter()``).
        self.started = time.perf_counter()

    # ------------------------------------------------------------------ the run

    def run(self) -> None:
        """Resume, then claim and evaluate until the study's budget is finished."""
        self.resume()
        heartbeat = None if self.inline else Heartbeat(
            lambda: self.store.protocol.heartbeat(self.info.id, self.driver)).start()
        self.executor.start(self.study.evaluator, self.report)
        try:
            while self.step():
                pass
        except BaseException as exc:
            self._batch.__exit__(type(exc), exc, exc.__traceback__)  # roll the batch back
            raise
        finally:
            if heartbeat is not None:
                heartbeat.stop()
            self.close()

    def resume(self) -> None:
        """Interrupt dead drivers' running trials; replay the history into the searcher
        (and the scheduler)."""
        store, sid = self.store, self.info.id
        self.interrupted_found = store.protocol.interrupt_abandoned(sid)
        history = store.trials.list(sid, states=DONE_STATES)
        if not self.searcher.history:  # a fresh searcher: warm-start it if it asks
            prime(self.searcher, store, self.study.space, self.study.evaluator.key,
                  self.info.created_at)
        # a searcher that already ran in this object was told the first trials itself
        self.searcher.replay([(t.architecture(), _told_value(t), trial_metrics(t))
                              for t in history[len(self.searcher.history):]])
        if self.scheduler is not None:
            self.scheduler.replay(store.trials.study_curves(sid, self.objective, DONE_STATES))
        self.counts = _Counts(len(history), None)
        for t in history:
            if t.state == "complete":
                self.counts.improve(t.objective_value)
        self._seen = {t.id for t in history}
        self._seen_number = max((t.number for t in history), default=-1)
        self._held = {t.arch_hash for t in history}
        self.queue_retries()
        logger.info("study %s: %d of %d trials finished%s", self.info.name, len(history),
                    self.study.budget, "" if not (self.interrupted_found or self._retry) else
                    f"; {self.interrupted_found} running trial(s) of stopped drivers marked "
                    f"interrupted, {len(self._retry)} architecture(s) to retry first, "
                    f"{len(self.given_up)} not retried")

    def queue_retries(self) -> None:
        """Queue the study's interrupted architectures to be claimed before anything
        new, except those it has finished (as far as this driver knows: a claim
        finds the others) or is running, and those interrupted
        :data:`MAX_INTERRUPTIONS` times (kept in :attr:`given_up`)."""
        trials = self.store.trials.list(self.info.id, ("running", "interrupted"))
        taken = self._held | {t.arch_hash for t in trials if t.state == "running"}
        taken.update(a.hash for a in self._retry)
        times = Counter(t.arch_hash for t in trials if t.state == "interrupted")
        for t in trials:
            if t.state != "interrupted" or t.arch_hash in taken:
                continue
            taken.add(t.arch_hash)
            if times[t.arch_hash] >= MAX_INTERRUPTIONS:
                self.given_up.add(t.arch_hash)
                continue
            try:
                arch = self.study.space.from_decisions(t.decisions)
            except InvalidArchitectureError:
                continue  # no longer in the space (it cannot be evaluated either)
            if arch.hash == t.arch_hash:
                self._retry.append(arch)

    def step(self) -> bool:
        """Fill the executor, then finish one outcome; False when the run is over."""
        self.fill()
        if self.in_flight:
            self.finish(self.executor.wait_any())
            return True
        self._commit_batch()
        if self.halted is None and self.full and self.store.protocol.interrupt_abandoned(
                self.info.id):
            self.queue_retries()  # a dead driver's trials were freed: claim them again
            self.full = False
        return not self.full and self.halted is None

    @property
    def stopped_by(self) -> str:
        """Why the run ended: ``budget``, ``exhausted`` (the space is used up), or the
        ``stop_reason`` that ended it (``timeout``, ``stopped``)."""
        return self.halted or ("exhausted" if self.exhausted else "budget")

    def fill(self) -> None:
        """Ask and claim candidates until the executor is busy or the budget is taken."""
        while (not self.full and self.halted is None
               and len(self.in_flight) < self.executor.capacity):
            if time.monotonic() - self._last_sync > SYNC_EVERY_S:
                self._commit_batch()  # reads see the batch, and never run inside it
                self.sync()
            if self.counts.finished + len(self.in_flight) >= self.study.budget:
                self.full = True  # by this driver's count; the store counts them all
                return
            if self._halt():
                return
            arch, source = self.next_candidate()
            if arch is None:  # the space is exhausted (or the queue, with only_queued)
                self.full = True
                if self.exhausted:
                    logger.info("study %s: %s", self.info.name, self.exhausted)
                return
            if self.inline:
                self._open_batch()
            claim = self.claim(arch)
            if self.inline and claim.outcome is not ClaimOutcome.NEW:
                self._commit_batch_if_due()  # before the searcher hears of it
            if source == "retry" and claim.outcome in (ClaimOutcome.NEW, ClaimOutcome.REUSED):
                self.retried += 1
                logger.info("study %s: interrupted architecture %s claimed again (%s)",
                            self.info.name, arch.hash[:12], claim.outcome.name.lower())
            if source == "queue":
                self.handle_queued(claim, arch)
            else:
                self.handle(claim, arch)

    def _halt(self) -> bool:
        """Whether ``stop_reason`` ends the run now (then no new trial is claimed)."""
        reason = None if self.stop_reason is None else self.stop_reason()
        if reason is None:
            return False
        self.halted = reason
        logger.info("study %s: run ends (%s) after %.1f s; %d trial(s) in flight finish "
                    "first", self.info.name, reason, time.perf_counter() - self.started,
                    len(self.in_flight))
        return True

    def next_candidate(self) -> tuple[Architecture | None, str]:
        """The next architecture to claim and where it comes from (``retry``,
        ``queue`` or ``searcher``); None when there is none (see :attr:`exhausted`)."""
        if self._retry and not self.only_queued:
            return self._retry.pop(0), "retry"
        while self.queued:
            arch = self.queued.pop(0)
            if arch.hash not in self._held:
                return arch, "queue"
            logger.info("study %s: enqueued architecture %s skipped: the study already holds "
                        "it", self.info.name, arch.hash[:12])
        if self.only_queued:
            return None, "queue"
        return self.ask(), "searcher"

    def close(self) -> None:
        """Stop the executor; interrupt this driver's trials still in flight (the next
        run retries them); store the Pareto front of a multi-objective study."""
        self.executor.shutdown()
        if self.in_flight:
            self.store.protocol.interrupt_running(self.info.id, driver=self.driver)
        if self.study.multi_objective:
            self.study.update_pareto_front()

    # ------------------------------------------------------------------ one trial

    def ask(self) -> Architecture | None:
        """The searcher's next candidate that the study does not hold yet; None when
        the space is exhausted (see :attr:`exhausted`)."""
        while self.exhausted is None:
            if self.space_size is not None and len(self._held) >= self.space_size:
                self.exhausted = (f"the space holds {self.space_size} architectures; all "
                                  "are evaluated")
                break
            arch = self.searcher.ask(1)[0]
            if arch.hash not in self._held:
                self._repeats = 0
                return arch
            self._repeated(arch)
        return None

    def _repeated(self, arch: Architecture) -> None:
        """The searcher proposed ``arch``, which the study holds: nothing is stored;
        after :data:`EXHAUSTED_AFTER` such proposals in a row the space is exhausted."""
        if all(job.arch.hash != arch.hash for job in self.in_flight.values()):
            self.searcher.forget(arch)  # (an in-flight one's result is still due)
        self._repeats += 1
        if self._repeats >= EXHAUSTED_AFTER:
            self.exhausted = (
                f"the searcher proposed only architectures the study holds, "
                f"{EXHAUSTED_AFTER} times in a row: the space looks exhausted after "
                f"{len(self._held)} distinct architectures")

    def claim(self, arch: Architecture) -> Claim:
        """Claim ``arch`` in the store. An architecture the study already holds
        (trained or reused, by this driver or another) is answered ``KNOWN``: a study
        holds each architecture once."""
        return self.store.protocol.claim(self.context, arch)

    def handle(self, claim: Claim, arch: Architecture) -> None:
        """Act on a claim's outcome."""
        outcome = claim.outcome
        if outcome in (ClaimOutcome.NEW, ClaimOutcome.REUSED, ClaimOutcome.KNOWN):
            self._held.add(arch.hash)
        if outcome is ClaimOutcome.KNOWN and claim.trial_id in self._seen:
            self._repeated(arch)  # told already (e.g. a retry that another driver did)
            return
        if outcome is ClaimOutcome.KNOWN:  # another driver's result, not synced yet
            self._not_alone()
            self._learn(claim.trial_id, arch, claim.value, claim.metrics)
        elif outcome is ClaimOutcome.FULL:
            self.searcher.forget(arch)
            self.full = True
        elif outcome is ClaimOutcome.BUSY:  # another driver trains it; sync() tells
            self._not_alone()
            self._busy_streak += 1
            if self._busy_streak % 10 == 0:
                time.sleep(min(0.05 * self._busy_streak, 1.0))
                self.sync()
        elif outcome is ClaimOutcome.NEW:
            self._busy_streak = 0
            self.dispatch(claim, arch)
        else:  # REUSED
            self._busy_streak = 0
            assert claim.trial_id is not None and claim.number is not None
            self._seen.add(claim.trial_id)
            self.searcher.tell(arch, claim.value, claim.metrics)
            self.counts.reused += 1
            self._record(claim.number, "complete", claim.value, reused=True)

    def handle_queued(self, claim: Claim, arch: Architecture) -> None:
        """Act on the claim of an enqueued architecture: as :meth:`handle`, but the
        searcher, which never proposed it, is told its result as a replayed one; one
        another driver holds is skipped; with the budget taken it stays queued."""
        self.queued_claims[arch.hash] = claim
        outcome = claim.outcome
        if outcome is ClaimOutcome.FULL:
            self.queued.insert(0, arch)
            self.full = True
        elif outcome is ClaimOutcome.NEW:
            assert claim.trial_id is not None
            self._held.add(arch.hash)
            self._from_queue.add(claim.trial_id)
            self.dispatch(claim, arch)
        elif outcome is ClaimOutcome.REUSED:
            assert claim.trial_id is not None and claim.number is not None
            self._held.add(arch.hash)
            self._seen.add(claim.trial_id)
            self._tell_replayed(arch, claim.value, claim.metrics)
            self.counts.reused += 1
            self._record(claim.number, "complete", claim.value, reused=True)
        elif outcome is ClaimOutcome.KNOWN and claim.trial_id not in self._seen:
            self.handle(claim, arch)  # another driver's result: learn it
        else:  # BUSY, or KNOWN and told
            logger.info("study %s: enqueued architecture %s skipped: %s", self.info.name,
                        arch.hash[:12], "another driver is evaluating it"
                        if outcome is ClaimOutcome.BUSY else "the study already holds it")

    def _tell_replayed(self, arch: Architecture, value: float | None,
                       metrics: Mapping[str, float] | None) -> None:
        """Tell the searcher a result it did not propose, as a resume replays it."""
        self.searcher.replay([(arch, value, metrics or {})])

    def dispatch(self, claim: Claim, arch: Architecture) -> None:
        """Submit a newly claimed trial to the executor."""
        assert claim.trial_id is not None and claim.number is not None
        self._seen.add(claim.trial_id)
        self.numbers[claim.trial_id] = claim.number
        rungs = frozenset() if self.scheduler is None else self.scheduler.rungs(claim.number)
        job = EvaluationJob(claim.trial_id, self.study.space, arch, self.study.epochs,
                            self.study.seed, rungs)
        self.in_flight[claim.trial_id] = job
        self.executor.submit(job)

    def report(self, trial_id: int, step: int, metrics: Mapping[str, float]) -> bool:
        """Store a trial's per-epoch metrics (an inline trial's with its result, in the
        same transaction); at a scheduler's rung, decide whether it goes on (False:
        stop it)."""
        if self.inline:
            self._reports.setdefault(trial_id, []).append((int(step), dict(metrics)))
            return True
        self.store.protocol.report(trial_id, step, metrics)
        job = self.in_flight.get(trial_id)
        if self.scheduler is None or job is None or step not in job.decision_steps:
            return True
        go = self.scheduler.on_report(self.numbers[trial_id], step, metrics.get(self.objective))
        if not go:
            self.stopped.add(trial_id)
        return go

    def finish(self, outcome: JobOutcome) -> None:
        """Store an evaluation's result (or failure) and tell the searcher."""
        job = self.in_flight.pop(outcome.job.trial_id)
        result, error = outcome.result, outcome.error
        if error is None:
            error = ("the evaluator returned no result" if result is None
                     else objective_error(result, self.objective))
        value, state = None, "failed"
        if error is None and result is not None:
            # an evaluator that ignored the stop trained to the end: complete
            was_stopped = job.trial_id in self.stopped and result.epochs < job.fidelity
            self.store.protocol.finish(job.trial_id, result, objective=self.objective,
                                       worker=outcome.worker, stopped=was_stopped,
                                       reports=self._reports.pop(job.trial_id, ()))
            value = result.metrics[self.objective]
            state = "stopped" if was_stopped else "complete"
        else:
            self._reports.pop(job.trial_id, None)  # an inline failure keeps no curve
            self.store.protocol.fail(job.trial_id, error or "unknown error",
                                     worker=outcome.worker)
            self.full = False  # a failed trial counts; the budget may still allow more
        if self.inline:
            self._commit_batch_if_due()  # stored (and committed) before the searcher hears
        told = None if value is None or result is None else trial_metrics(result)
        if job.trial_id in self._from_queue:
            self._from_queue.discard(job.trial_id)
            self._tell_replayed(job.arch, value, told)
        else:
            self.searcher.tell(job.arch, value, told)
        self.stopped.discard(job.trial_id)
        self.counts.trained += 1
        self._record(self.numbers[job.trial_id], state, value, reused=False, error=error)

    def emit(self, number: int, state: str, value: float | None, reused: bool,
             error: str | None) -> None:
        """Tell the progress callback about a finished trial."""
        if self.callback is not None:
            c = self.counts
            event = TrialEvent(self.info.name, number, state, value, reused, c.finished,
                               self.study.budget, c.best, time.perf_counter() - self.started,
                               c.trained, error)
            try:
                self.callback(event)
            except BaseException:
                self._commit_batch()  # the trial is stored and told: keep it
                raise

    def _record(self, number: int, state: str, value: float | None, *, reused: bool,
                error: str | None = None) -> None:
        """Count a finished trial of this run, keep the best, emit it."""
        self.counts.finished += 1
        if state == "complete":
            self.counts.improve(value)
        self.emit(number, state, value if state != "failed" else None, reused,
                  None if state != "failed" else error)

    # ------------------------------------------------------------------ other drivers

    def sync(self) -> None:
        """Tell the searcher the results that other drivers stored since the last look
        (this driver's own trials are told as they finish, never read back)."""
        self._last_sync = time.monotonic()
        for t in self.store.trials.since(self.info.id, self._seen_number, self._watched,
                                         exclude_driver=self.driver):
            self._seen_number = max(self._seen_number, t.number)
            if t.id in self._seen:
                continue
            if t.driver is not None and t.driver != self.driver:
                self._not_alone()
            if t.state == "running":
                self._watched.add(t.id)
                continue
            self._watched.discard(t.id)
            if t.state in DONE_STATES:  # interrupted: some driver retries it
                self._held.add(t.arch_hash)
                self._learn(t.id, t.architecture(), _told_value(t), trial_metrics(t),
                            complete=t.state == "complete")

    def _learn(self, trial_id: int | None, arch: Architecture, value: float | None,
               metrics: Mapping[str, float], complete: bool = True) -> None:
        """Another driver's finished trial: count it and tell the searcher."""
        assert trial_id is not None
        self._seen.add(trial_id)
        self.counts.finished += 1
        self.searcher.observe(arch, value, metrics)
        if complete:
            self.counts.improve(value)

    def _not_alone(self) -> None:
        """Another driver works on this study: draw from this driver's own stream."""
        if not self.searcher.stream:
            self.searcher.use_own_stream(zlib.crc32(self.driver.encode()) or 1)

    # ------------------------------------------------------------------ batches

    def _open_batch(self) -> None:
        if self._batch_n == 0:
            # no savepoints: any error rolls the whole batch back (see run)
            self._batch.enter_context(self.store.database.batch(savepoints=False))
            self._batch_t0 = time.monotonic()
        self._batch_n += 1

    def _commit_batch_if_due(self) -> None:
        if (self._batch_n >= self.batch_size
                or time.monotonic() - self._batch_t0 >= BATCH_S):
            self._commit_batch()

    def _commit_batch(self) -> None:
        self._batch.close()
        self._batch_n = 0


def _told_value(t: TrialRecord) -> float | None:
    """What the searcher is told of a stored trial: its objective, None if it failed."""
    return t.objective_value if t.state != "failed" else None
