"""The search loop: :class:`Study`.

A study is a named search: a space, a task, a searcher, a fidelity (epochs) and a
budget of evaluations, kept in the store. :meth:`Study.run` creates the study or
resumes it:

1. trials left ``running`` by a driver that died are marked ``interrupted``
   (those of live drivers, working on the same study, are left alone);
2. the searcher's state is rebuilt by replaying the stored history;
3. until ``budget`` trials have finished (completed, stopped early or failed), the
   searcher is asked for a candidate and the store claims it (one transaction):
   if that architecture was already evaluated on the same space, task and
   fidelity (in any study), its result is reused; if another driver is training
   it in this study, it is skipped (its result arrives later); otherwise the
   executor trains it, per-epoch metrics are stored as they arrive, and the final
   result is committed before the searcher is told.

With a multi-fidelity scheduler (:mod:`naslab.searchers.schedulers`), the reports a
trial makes at the scheduler's rungs decide whether it trains on; a trial stopped
there is stored as ``stopped`` with the metrics of the epochs it reached, and the
searcher is told that (lower-fidelity) objective value.

A crash therefore loses at most the evaluations in flight, and re-running the same
study resumes where it stopped.
"""

from __future__ import annotations

import math
import sys
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from naslab.components import (
    DEFAULT_EPOCHS,
    TABLE_SPACES,
    resolve,
    resolve_searcher,
    task_name,
)
from naslab.core.drivers import Heartbeat, driver_id
from naslab.core.errors import ConfigError, StudyConflictError
from naslab.db.store import RecordedTrial, Store, StudyInfo, TrialRecord
from naslab.fronts import pareto_trials, trial_metrics
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.searchers.base import Searcher
from naslab.searchers.objectives import Objective, parse_objectives
from naslab.searchers.schedulers import Scheduler, get_scheduler
from naslab.workers.evaluator import Result
from naslab.workers.executor import (
    EvaluationJob,
    Executor,
    InProcessExecutor,
    describe_error,
    worker_name,
)

#: How often a driver looks for results that other drivers of its study stored.
SYNC_EVERY_S = 2.0
#: A batch of a table search (``batch_trials`` > 1) is also committed once it is
#: this many seconds old.
BATCH_S = 0.1


@dataclass(frozen=True)
class TrialEvent:
    """What a progress callback receives after each finished trial."""

    study: str
    number: int
    state: str
    value: float | None
    reused: bool
    finished: int
    budget: int
    best_value: float | None
    elapsed_s: float
    trained_this_run: int
    error: str | None = None

    @property
    def eta_s(self) -> float | None:
        """Estimated seconds left, from this run's pace (None before any trial)."""
        done_here = max(self.trained_this_run, 0)
        if done_here == 0 or self.finished >= self.budget:
            return None if done_here == 0 else 0.0
        return self.elapsed_s / done_here * (self.budget - self.finished)


@dataclass(frozen=True)
class StudyReport:
    """The state of a study after :meth:`Study.run`."""

    name: str
    budget: int
    complete: int
    failed: int
    reused_this_run: int
    trained_this_run: int
    interrupted_found: int
    elapsed_s: float
    best: TrialRecord | None
    stopped: int = 0


def objective_error(result: Result, objective: str) -> str | None:
    """Why ``result`` cannot be stored as complete (no finite objective), or None."""
    value = result.metrics.get(objective)
    if value is None or not math.isfinite(value):
        return f"objective {objective} is {value!r}, not a finite number"
    return None


class _ListReporter:
    """Keeps the reports of an instant evaluation, to store them with its result."""

    def __init__(self) -> None:
        self.reports: list[tuple[int, dict[str, float]]] = []

    def report(self, step: int, metrics: Mapping[str, float]) -> bool:
        self.reports.append((int(step), dict(metrics)))
        return True


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def default_study_name(space: str, task: str, searcher: str, seed: int) -> str:
    """The name a study gets when none is given: re-running the same command resumes it."""
    return f"{space}-{task}-{searcher}-s{seed}"


class Study:
    """A named, resumable search.

    Args:
        name: study name; re-running a study of that name resumes it. Default: made
            from space, task, searcher and seed.
        space: a built-in space name (``nb201``, ``chain``, ``nasbench_graph``) or a
            :class:`~naslab.search_spaces.base.SearchSpace`.
        task: a task name (``digits``; a data set name for ``nasbench_graph``), a
            :class:`~naslab.workers.task.Task`, an
            :class:`~naslab.workers.evaluator.Evaluator`, or None for the default.
        searcher: ``evolution``, ``random``, or a
            :class:`~naslab.searchers.base.Searcher`.
        budget: number of trials to finish (completed or failed), resumed runs included.
        epochs: training epochs per candidate (the fidelity).
        seed: seeds the searcher and every training run.
        storage: an SQLAlchemy URL or a :class:`~naslab.db.store.Store`; default
            ``$NASLAB_STORAGE`` or ``sqlite:///naslab.db``.
        executor: where evaluations run; default in-process
            (:class:`~naslab.workers.executor.InProcessExecutor`); a
            :class:`~naslab.workers.ray_executor.RayExecutor` trains in parallel.
        scheduler: ``asha``, ``hyperband``, a
            :class:`~naslab.searchers.schedulers.Scheduler`, or None (every trial
            trains for ``epochs``). Needs an evaluator that reports every epoch
            (not a benchmark table).
        objectives: for a multi-objective search, two or more metrics with
            directions, e.g. ``"val_accuracy:max,latency_ms:min"`` (see
            :mod:`naslab.searchers.objectives`); needs a multi-objective searcher
            (``nsga2``, ``guided-evolution``, ``optuna-*``). The study's Pareto front
            is stored after each run (:meth:`Store.pareto_front
            <naslab.db.store.Store.pareto_front>`). Default: the evaluator's
            objective, maximised.
        batch_trials: for a benchmark-table search (instant look-ups in this process),
            commit the trials in batches of up to this many (and at most
            :data:`BATCH_S` seconds of look-ups) instead of one transaction each. A
            crash then loses at most the open batch, and on SQLite a driver that
            batches keeps the write lock most of the time, so other drivers of the
            same file wait: batch a search that has the database to itself. Default
            1 (commit each trial).
        space_options, searcher_options, evaluator_options, scheduler_options:
            keyword options for components given by name (e.g. ``{"channels": 16}``
            for ``nb201``; ``{"min_epochs": 1, "eta": 3}`` for a scheduler).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        space: str | SearchSpace = "nb201",
        task: Any = None,
        searcher: str | Searcher = "evolution",
        budget: int = 30,
        epochs: int | None = None,
        seed: int = 0,
        storage: str | Store | None = None,
        executor: Executor | None = None,
        space_options: Mapping[str, Any] | None = None,
        searcher_options: Mapping[str, Any] | None = None,
        evaluator_options: Mapping[str, Any] | None = None,
        scheduler: str | Scheduler | None = None,
        scheduler_options: Mapping[str, Any] | None = None,
        objectives: str | Sequence[str | Objective] | None = None,
        batch_trials: int = 1,
    ) -> None:
        self.budget = _check_int("budget", budget, 1)
        self.batch_trials = _check_int("batch_trials", batch_trials, 1)
        self.seed = _check_int("seed", seed, 0)
        self.space, self.evaluator = resolve(
            space, task, space_options=space_options, evaluator_options=evaluator_options
        )
        if epochs is None:
            epochs = getattr(self.evaluator, "default_fidelity", None) or DEFAULT_EPOCHS
        self.epochs = _check_int("epochs", epochs, 1)
        self.objectives = self._resolve_objectives(objectives)
        options = dict(searcher_options or {})
        if len(self.objectives) > 1 and not isinstance(searcher, Searcher):
            options.setdefault("objectives", [str(o) for o in self.objectives])
        self.searcher = resolve_searcher(searcher, self.space, self.seed, options)
        if isinstance(searcher, Searcher) and searcher.objectives != self.objectives:
            raise ConfigError(
                f"the searcher optimises {', '.join(map(str, searcher.objectives))} but the "
                f"study asks for {', '.join(map(str, self.objectives))}; give the same "
                "objectives to both"
            )
        self.searcher_options = {k: v for k, v in options.items() if k != "objectives"}
        task_label = task_name(self.evaluator)
        self.name = name or default_study_name(
            self.space.name, task_label, self.searcher.name, self.seed
        )
        if not self.name.strip():
            raise ConfigError("study name must not be empty")
        self._owns_store = not isinstance(storage, Store)
        self.store = storage if isinstance(storage, Store) else Store(storage)
        self.executor = executor or InProcessExecutor()
        self.scheduler = self._resolve_scheduler(scheduler, scheduler_options)

    def _resolve_objectives(
        self, objectives: str | Sequence[str | Objective] | None
    ) -> tuple[Objective, ...]:
        main = Objective(self.evaluator.objective, "max")
        if objectives is None:
            return (main,)
        parsed = parse_objectives(objectives)
        if len(parsed) == 1 and parsed[0] != main:
            raise ConfigError(
                f"a single-objective study maximises {main.name}; got {parsed[0]}. Give two "
                f"or more objectives for a multi-objective search (e.g. "
                f"'{main.name}:max,latency_ms:min')"
            )
        return parsed

    @property
    def multi_objective(self) -> bool:
        """Whether the study optimises several objectives (a Pareto front)."""
        return len(self.objectives) > 1

    def _resolve_scheduler(
        self, scheduler: str | Scheduler | None, options: Mapping[str, Any] | None
    ) -> Scheduler | None:
        if scheduler is None:
            if options:
                raise ConfigError("scheduler options were given without a scheduler")
            return None
        if not getattr(self.evaluator, "reports_epochs", True):
            raise ConfigError(
                f"a multi-fidelity scheduler needs per-epoch reports, and the "
                f"{type(self.evaluator).__name__} of space {self.space.name!r} only "
                "has final values; drop the scheduler or train the networks"
            )
        if isinstance(scheduler, Scheduler):
            if options:
                raise ConfigError("scheduler options apply to a scheduler given by name")
            if scheduler.max_epochs != self.epochs:
                raise ConfigError(
                    f"the scheduler was made for {scheduler.max_epochs} epochs but the "
                    f"study trains for {self.epochs}"
                )
            return scheduler
        if not isinstance(scheduler, str):
            raise ConfigError(
                f"scheduler must be a name or a Scheduler, got {type(scheduler).__name__}"
            )
        return get_scheduler(scheduler, self.epochs, **dict(options or {}))

    def close(self) -> None:
        """Close the store if the study opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Study:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _model_io(self) -> dict[str, Any] | None:
        task = getattr(self.evaluator, "task", None)
        if task is None:
            return None
        return {"name": task.name, "input_shape": list(task.input_shape),
                "num_classes": int(task.num_classes)}

    def prepare(self) -> StudyInfo:
        """Create the study in the store, or load it and check that its settings match.

        Raises :class:`~naslab.core.errors.StudyConflictError` when a study of this name was
        stored with another space, task, fidelity, searcher or seed. :meth:`run` calls
        it; call it first to refuse a conflict before doing anything else.
        """
        info = self.store.create_or_load_study(
            self.name,
            space=self.space.name,
            space_key=self.space.key,
            space_config=self.space.config(),
            task_key=self.evaluator.key,
            searcher=self.searcher.name,
            objective=self.evaluator.objective,
            direction="maximize",
            budget=self.budget,
            fidelity=self.epochs,
            seed=self.seed,
            config={"searcher_options": self.searcher_options,
                    "table_benchmark": self.space.name in TABLE_SPACES,
                    "model_io": self._model_io(),
                    "scheduler": self._scheduler_config(),
                    "objectives": self._objectives_config()},
        )
        for key, wanted in (("scheduler", self._scheduler_config()),
                            ("objectives", self._objectives_config())):
            stored = info.config.get(key)
            if stored != wanted:
                raise StudyConflictError(
                    f"study {self.name!r} already exists with different settings ({key}: "
                    f"stored {stored!r}, requested {wanted!r}). Resume it with its stored "
                    "settings, or choose a new study name."
                )
        return info

    def update_pareto_front(self) -> list[TrialRecord]:
        """Recompute the study's Pareto front from its stored trials, store it (table
        ``naslab_pareto_fronts``) and return its trials. :meth:`run` calls it at the
        end of a multi-objective run."""
        front = pareto_trials(self.store.trials(self.name, ["complete"]), self.objectives)
        self.store.set_pareto_front(self.name, [t.id for t in front],
                                    [str(o) for o in self.objectives])
        return front

    def _objectives_config(self) -> list[str] | None:
        return [str(o) for o in self.objectives] if self.multi_objective else None

    def _scheduler_config(self) -> dict[str, Any] | None:
        return None if self.scheduler is None else self.scheduler.config()

    def _instant(self) -> bool:
        """Whether evaluations answer at once in this process (a benchmark table with
        the in-process executor): then each trial is looked up and stored in one
        transaction."""
        return (isinstance(self.executor, InProcessExecutor) and self.scheduler is None
                and getattr(self.evaluator, "instant", False))

    def run(self, callback: Callable[[TrialEvent], None] | None = None) -> StudyReport:
        """Run (or resume) the study until its budget of trials has finished.

        Several drivers (processes, machines) may run the same study on one database
        at once: each claims its trials in the store (one evaluation per
        architecture, see :meth:`Store.claim_trial
        <naslab.db.store.Store.claim_trial>`), the budget counts every driver's
        trials, and each driver's searcher is told the others' results as they
        finish. A driver stops claiming once finished and running trials reach the
        budget, and returns when its own trials are done.
        """
        start = time.perf_counter()
        objective = self.evaluator.objective
        info = self.prepare()
        self.searcher.bind(self.name, self.store.connect_url)
        driver = driver_id()
        interrupted = self.store.interrupt_abandoned(info.id)
        done_states = ["complete", "stopped", "failed"]
        history = self.store.trials(info.id, states=done_states)
        # A searcher that already ran in this object was told the first trials itself.
        self.searcher.replay(
            [(t.architecture(), t.objective_value if t.state != "failed" else None,
              trial_metrics(t))
             for t in history[len(self.searcher.history):]]
        )
        scheduler = self.scheduler
        if scheduler is not None:
            scheduler.replay(self.store.study_curves(info.id, objective, done_states))
        finished = len(history)
        values = [t.objective_value for t in history
                  if t.state == "complete" and t.objective_value is not None]
        best = max(values) if values else None
        trained = reused = 0
        in_flight: dict[int, EvaluationJob] = {}
        stopped: set[int] = set()  # trial ids the scheduler stopped
        instant = self._instant()
        here = worker_name()
        # following the other drivers: trials seen so far, and theirs still running
        seen = {t.id for t in history}
        seen_number = max((t.number for t in history), default=-1)
        watched: set[int] = set()
        last_sync = time.monotonic()
        busy_streak = 0

        def emit(number: int, state: str, value: float | None, was_reused: bool,
                 error: str | None = None) -> None:
            if callback is not None:
                callback(TrialEvent(self.name, number, state, value, was_reused, finished,
                                    self.budget, best, time.perf_counter() - start,
                                    trained, error))

        def not_alone() -> None:
            """Another driver works on this study: draw from this driver's own stream."""
            if not self.searcher.stream:
                self.searcher.stream = zlib.crc32(driver.encode()) or 1

        def sync() -> None:
            """Tell the searcher the results other drivers stored since the last look."""
            nonlocal seen_number, finished, best, last_sync
            last_sync = time.monotonic()
            # this driver's own trials are not read back: they are told as they finish
            for t in self.store.trials_since(info.id, seen_number, watched,
                                             exclude_driver=driver):
                seen_number = max(seen_number, t.number)
                if t.id in seen:
                    continue
                if t.driver is not None and t.driver != driver:
                    not_alone()
                if t.state == "running":
                    watched.add(t.id)
                    continue
                watched.discard(t.id)
                if t.state not in done_states:
                    continue  # interrupted: another driver (or this one) retries it
                seen.add(t.id)
                finished += 1
                ok = t.state != "failed" and t.objective_value is not None
                self.searcher.observe(t.architecture(), t.objective_value if ok else None,
                                      trial_metrics(t))
                if t.state == "complete" and t.objective_value is not None:
                    best = t.objective_value if best is None else max(best, t.objective_value)

        def on_report(trial_id: int, step: int, metrics: Mapping[str, float]) -> bool:
            self.store.report(trial_id, step, metrics)
            job = in_flight.get(trial_id)
            if scheduler is None or job is None or step not in job.decision_steps:
                return True
            go = scheduler.on_report(self.store.trial_number(trial_id), step,
                                     metrics.get(objective))
            if not go:
                stopped.add(trial_id)
            return go

        def evaluate_now(arch: Architecture) -> tuple[Result | None, str | None, list[Any]]:
            reporter = _ListReporter()
            try:
                result = self.evaluator.evaluate(self.space, arch, self.epochs, self.seed,
                                                 reporter)
            except Exception as exc:  # stored with the trial; the search goes on
                return None, describe_error(exc), []
            error = objective_error(result, objective)
            return (None, error, []) if error else (result, None, reporter.reports)

        def claim(arch: Architecture, reuse_own: bool) -> RecordedTrial:
            if instant:
                return self.store.record_finished(
                    info.id, arch, self.space.key, self.evaluator.key, self.epochs,
                    self.seed, here, objective, lambda: evaluate_now(arch),
                    driver=driver, budget=self.budget, reuse_own=reuse_own)
            return self.store.claim_trial(
                info.id, arch, self.space.key, self.evaluator.key, self.epochs, self.seed,
                driver=driver, worker=here, budget=self.budget, reuse_own=reuse_own)

        batching = (instant and self.batch_trials > 1
                    and not self.searcher.writes_to_storage)
        batch = ExitStack()
        batch_n, batch_t0 = 0, 0.0

        def flush() -> None:
            """Commit the open batch of trials, if any."""
            nonlocal batch_n
            batch.close()
            batch_n = 0

        heartbeat = None if instant else Heartbeat(
            lambda: self.store.heartbeat(info.id, driver)).start()
        self.executor.start(self.evaluator, on_report)
        full = False
        try:
            while True:
                while not full and len(in_flight) < self.executor.capacity:
                    if time.monotonic() - last_sync > SYNC_EVERY_S:
                        sync()
                    if finished + len(in_flight) >= self.budget:
                        full = True  # by this driver's count; the store counts them all
                        break
                    arch = self.searcher.ask(1)[0]
                    if batching and batch_n == 0:
                        batch.enter_context(self.store.batch())
                        batch_t0 = time.monotonic()
                    rec = claim(arch, reuse_own=False)
                    if batching:
                        batch_n += 1
                        if (batch_n >= self.batch_trials
                                or time.monotonic() - batch_t0 >= BATCH_S):
                            flush()
                    if rec.state == "known":
                        if rec.trial_id in seen:  # re-proposed: record it as reused
                            rec = claim(arch, reuse_own=True)
                        else:  # another driver's result, not synced yet: learn it
                            assert rec.trial_id is not None
                            not_alone()
                            seen.add(rec.trial_id)
                            finished += 1
                            self.searcher.observe(arch, rec.value, rec.metrics)
                            if rec.value is not None:
                                best = rec.value if best is None else max(best, rec.value)
                            continue
                    if rec.state == "full":
                        self.searcher.forget(arch)
                        full = True
                        break
                    if rec.state == "busy":
                        # another driver trains it now; its result arrives by sync()
                        not_alone()
                        busy_streak += 1
                        if busy_streak % 10 == 0:
                            time.sleep(min(0.05 * busy_streak, 1.0))
                            sync()
                        continue
                    busy_streak = 0
                    assert rec.trial_id is not None and rec.number is not None
                    seen.add(rec.trial_id)
                    if rec.state == "running":
                        rungs = (frozenset() if scheduler is None
                                 else scheduler.rungs(rec.number))
                        job = EvaluationJob(rec.trial_id, self.space, arch, self.epochs,
                                            self.seed, rungs)
                        in_flight[rec.trial_id] = job
                        self.executor.submit(job)
                        continue
                    ok = rec.state == "complete" and rec.value is not None
                    self.searcher.tell(arch, rec.value if ok else None, rec.metrics)
                    finished += 1
                    if rec.reused:
                        reused += 1
                    else:
                        trained += 1
                    if ok:
                        best = rec.value if best is None else max(best, rec.value)
                    emit(rec.number, rec.state, rec.value if ok else None, rec.reused,
                         None if ok else rec.error)
                if not in_flight:
                    flush()
                    if full and self.store.interrupt_abandoned(info.id):
                        full = False  # a dead driver's trials were freed: claim again
                        continue
                    if full:
                        break
                    continue
                outcome = self.executor.wait_any()
                job = in_flight.pop(outcome.job.trial_id)
                error = outcome.error
                value = None
                if error is None and outcome.result is not None:
                    value = outcome.result.metrics.get(objective)
                    error = objective_error(outcome.result, objective)
                elif error is None:
                    error = "the evaluator returned no result"
                if error is None and outcome.result is not None:
                    # an evaluator that ignored the stop trained to the end: complete
                    was_stopped = (job.trial_id in stopped
                                   and outcome.result.epochs < job.fidelity)
                    self.store.complete_trial(job.trial_id, outcome.result, objective,
                                              worker=outcome.worker, stopped=was_stopped)
                    self.searcher.tell(job.arch, value, trial_metrics(outcome.result))
                    if was_stopped:
                        state = "stopped"
                    else:
                        best = value if best is None else max(best, value)
                        state = "complete"
                else:
                    self.store.fail_trial(job.trial_id, error or "unknown error",
                                         worker=outcome.worker)
                    self.searcher.tell(job.arch, None)
                    value, state = None, "failed"
                    full = False  # a failed trial counts; the budget may still allow more
                stopped.discard(job.trial_id)
                finished += 1
                trained += 1
                emit(self.store.trial_number(job.trial_id), state, value, False, error)
        except BaseException:
            batch.__exit__(*sys.exc_info())  # roll the open batch back
            raise
        finally:
            if heartbeat is not None:
                heartbeat.stop()
            self.executor.shutdown()
            if in_flight:  # interrupted (Ctrl-C): the next run retries these
                self.store.interrupt_running(info.id, driver=driver)
            if self.multi_objective:
                self.update_pareto_front()
        best_trials = self.store.best_trials(self.name, 1)
        return StudyReport(
            name=self.name,
            budget=self.budget,
            complete=self.store.count_trials(info.id, ["complete"]),
            failed=self.store.count_trials(info.id, ["failed"]),
            stopped=self.store.count_trials(info.id, ["stopped"]),
            reused_this_run=reused,
            trained_this_run=trained,
            interrupted_found=interrupted,
            elapsed_s=time.perf_counter() - start,
            best=best_trials[0] if best_trials else None,
        )
