"""A named, resumable search: :class:`Study` (configuration and preparation).

A study is a space, a task, a searcher, a fidelity (epochs) and a budget of
evaluations, kept in the store under its name. :class:`Study` resolves its parts
from names or objects, checks that they fit together, and creates (or loads) the
study in the store; :meth:`Study.run` hands one run to the search loop
(:class:`~naslab.loop.TrialLoop`):

1. trials left ``running`` by a driver that died are marked ``interrupted``
   (those of live drivers, working on the same study, are left alone);
2. the searcher's state is rebuilt by replaying the stored history;
3. until ``budget`` trials have finished (completed, stopped early or failed), the
   searcher is asked for a candidate and the store claims it: if that
   architecture was already evaluated on the same space, task and fidelity (in any
   study), its result is reused; if another driver is training it in this study,
   it is skipped (its result arrives later); otherwise the executor evaluates it,
   per-epoch metrics are stored as they arrive, and the final result is committed
   before the searcher is told.

With a multi-fidelity scheduler (:mod:`naslab.searchers.schedulers`), the reports a
trial makes at the scheduler's rungs decide whether it trains on; a trial stopped
there is stored as ``stopped`` with the metrics of the epochs it reached, and the
searcher is told that (lower-fidelity) objective value.

A crash therefore loses at most the evaluations in flight, and re-running the same
study resumes where it stopped.

Besides: :meth:`Study.enqueue` (architectures to evaluate first),
:meth:`Study.evaluate` (one now), ``run(timeout=...)``, ``run(callbacks=[...])`` and
:meth:`Study.stop` (see :mod:`naslab.run_control`), a progress bar
(:mod:`naslab.progress`), and log lines on the ``naslab`` logger, which prints
nothing until the application configures :mod:`logging`.
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from naslab.components import (
    keeps_optuna_study,
    resolve,
    resolve_searcher,
    warn_if_space_changed,
)
from naslab.core.errors import ConfigError, StorageError
from naslab.core.paths import check_name, safe_name_from
from naslab.core.validation import check_int
from naslab.db.records import StudyInfo, StudySpec, TrialRecord, dumps
from naslab.db.store import Store
from naslab.events import TrialEvent
from naslab.fronts import pareto_trials
from naslab.launch import launch_record
from naslab.loop import TrialLoop
from naslab.run_control import RunControl, StudyCallback
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.searchers.base import Searcher
from naslab.searchers.objectives import Objective, parse_objectives
from naslab.searchers.registry import check_objectives, check_searcher
from naslab.searchers.schedulers import Scheduler, get_scheduler
from naslab.study_queue import as_architecture, evaluate_now
from naslab.workers.executor import Executor, InProcessExecutor

__all__ = ["RESULT_SETTINGS", "Study", "StudyReport", "TrialEvent", "default_study_name"]

logger = logging.getLogger(__name__)
logging.getLogger("naslab").addHandler(logging.NullHandler())

#: The settings kept in a study's config that change its results: a resume that
#: asks for other values is refused (with space, task, fidelity, searcher and seed,
#: which the store checks itself). Everything else may change between runs: the
#: budget, the executor (workers, Ray address, timeouts, retries), the storage, and
#: the training options that are not part of the task key (``device``,
#: ``keep_weights``, ``eval_batch_size``, ``latency_repeats``).
RESULT_SETTINGS = ("searcher_options", "scheduler", "objectives")


@dataclass(frozen=True)
class StudyReport:
    """The state of a study after :meth:`Study.run`. ``best`` is None when no trial
    of the study is complete (all failed, or none ran): test it before reading it.

    ``stopped_by``: why the run ended: ``budget`` (reached), ``exhausted`` (the space
    is used up, see ``exhausted``), ``timeout`` (``run(timeout=...)``) or ``stopped``
    (:meth:`Study.stop`). ``queued``: enqueued architectures left for a later run.

    ``interrupted_found``: running trials of dead drivers that this run marked
    interrupted. ``retried``: interrupted architectures (of this or earlier runs)
    that this run claimed again before anything new (evaluated, or reused from
    another study); ``not_retried``: those left alone, interrupted
    :data:`~naslab.loop.MAX_INTERRUPTIONS` times. ``exhausted``: why the run stopped
    before the budget because the search space is used up, or None.
    ``space_size``: :meth:`SearchSpace.size
    <naslab.search_spaces.base.SearchSpace.size>`, None where unknown.
    """

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
    retried: int = 0
    not_retried: int = 0
    exhausted: str | None = None
    space_size: int | None = None
    stopped_by: str = "budget"
    queued: int = 0


def default_study_name(space: str, task: str, searcher: str, seed: int) -> str:
    """The name a study gets when none is given: re-running the same command resumes it.
    Characters a study name may not hold (:data:`naslab.core.paths.NAME_RULE`) become ``_``."""
    return safe_name_from(f"{space}-{task}-{searcher}-s{seed}")


class Study:
    """A named, resumable search.

    Args:
        name: study name; re-running a study of that name resumes it. Default: made
            from space, task, searcher and seed.
        space: a registered space name (``nb201``, ``chain``, ... : ``naslab spaces``),
            a reference to a space class (``path/to/file.py:Class`` or
            ``package.module:Class``, built with ``space_options``; see
            :mod:`naslab.core.references`), or a
            :class:`~naslab.search_spaces.base.SearchSpace`.
        task: a task name (``digits``; a data set name for ``nasbench_graph``), a
            reference to a function or class making a task (``module:make_task``,
            called with ``task_options``), a :class:`~naslab.workers.task.Task`, an
            :class:`~naslab.workers.evaluator.Evaluator`, or None for the default.
        searcher: ``evolution``, ``random``, or a
            :class:`~naslab.searchers.base.Searcher`.
        budget: number of trials to finish (completed or failed), resumed runs included;
            fewer when the space holds fewer architectures (a study evaluates each
            once: see :attr:`StudyReport.exhausted`).
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
        space_options, task_options, searcher_options, evaluator_options,
        scheduler_options: keyword options for components given by name or reference
            (e.g. ``{"channels": 16}`` for ``nb201``; ``{"root": "data/"}`` for the
            ``cifar10`` task; ``{"min_epochs": 1, "eta": 3}`` for a scheduler).

    The study stores how it was made (:attr:`launch`: names, references and options
    of its parts) so that ``naslab search --study NAME`` alone resumes it.
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
        task_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.budget = check_int("budget", budget, minimum=1)
        self.batch_trials = check_int("batch_trials", batch_trials, minimum=1)
        self.seed = check_int("seed", seed, minimum=0)
        self.space, self.evaluator = resolve(
            space, task, space_options=space_options, evaluator_options=evaluator_options,
            task_options=task_options)
        #: How the study was made, stored with it (see :func:`naslab.launch.launch_record`).
        self.launch = launch_record(space, space_options, task, task_options,
                                    evaluator_options)
        self.epochs = check_int("epochs", self.evaluator.default_fidelity if epochs is None
                                else epochs, minimum=1)
        searcher_options = dict(searcher_options or {})
        objectives = _merge_objectives(objectives, searcher_options.pop("objectives", None))
        self.objectives = self._resolve_objectives(objectives)
        self.searcher_options = searcher_options
        searcher_name = searcher if isinstance(searcher, str) else searcher.name
        self._searcher_by_name = isinstance(searcher, str)
        self.name = name if name is not None else default_study_name(
            self.space.name, self.evaluator.task_name, searcher_name, self.seed)
        check_name("study name", self.name)  # it becomes a file name (naslab export)
        #: Whether the searcher keeps state in the store's own database (an Optuna
        #: study there): then trials are committed one at a time.
        self.searcher_shares_store = False
        optuna_based = keeps_optuna_study(searcher)
        if optuna_based:  # refuse a bad name, objectives or options before opening anything
            check_objectives(searcher, [str(o) for o in self.objectives])
            trial_options = dict(searcher_options)
            if self.multi_objective:
                trial_options.setdefault("objectives", [str(o) for o in self.objectives])
            check_searcher(searcher, self.space, self.seed, trial_options)
        else:
            self.searcher = self._resolve_searcher(searcher, searcher_options)
        self.executor = executor or InProcessExecutor()
        self.scheduler = self._resolve_scheduler(scheduler, scheduler_options)
        self._owns_store = not isinstance(storage, Store)
        self._queue: list[Architecture] = []  # enqueued, not yet claimed (in memory)
        self._control: RunControl | None = None  # of the run in progress
        self.store = storage if isinstance(storage, Store) else Store(storage)
        if optuna_based:  # its Optuna storage goes in the store's database
            try:
                self.searcher = self._resolve_searcher(searcher, searcher_options)
            except BaseException:
                self.close()
                raise

    def _resolve_searcher(self, searcher: str | Searcher,
                          options: Mapping[str, Any] | None) -> Searcher:
        """The searcher; one given by name that keeps an Optuna study gets an Optuna
        storage (:mod:`naslab.optuna_storage`), by default on the store's database."""
        if isinstance(searcher, Searcher):
            if searcher.objectives != self.objectives:
                raise ConfigError(
                    f"the searcher optimises {', '.join(map(str, searcher.objectives))} but "
                    f"the study asks for {', '.join(map(str, self.objectives))}; give the "
                    "same objectives to both")
            self.searcher_shares_store = _keeps_a_shared_optuna_study(searcher)
            return searcher
        options = dict(options or {})
        if self.multi_objective:
            options.setdefault("objectives", [str(o) for o in self.objectives])
        if keeps_optuna_study(searcher):
            from naslab.optuna_storage import searcher_storage_options

            options = searcher_storage_options(options, self.store, self.name)
            self.searcher_shares_store = not _in_memory(options["storage"])
        return resolve_searcher(searcher, self.space, self.seed, options)

    def _resolve_objectives(
        self, objectives: str | Sequence[str | Objective] | None
    ) -> tuple[Objective, ...]:
        main = Objective(self.evaluator.objective, "max")
        known = (*self.evaluator.metrics, *self.evaluator.costs)
        if main.name not in self.evaluator.metrics:
            raise ConfigError(
                f"the {type(self.evaluator).__name__} of this study maximises "
                f"{main.name!r} but does not declare it among its metrics "
                f"({', '.join(self.evaluator.metrics) or 'none'}); declare it in the "
                "evaluator's metrics")
        if objectives is None:
            return (main,)
        parsed = parse_objectives(objectives)
        unknown = [o.name for o in parsed if o.name not in known]
        if unknown:
            raise ConfigError(
                f"objective {', '.join(unknown)} is not measured by the "
                f"{type(self.evaluator).__name__} of this study; it measures: "
                f"{', '.join(known)}")
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
        if not self.evaluator.reports_epochs:
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

    def prepare(self) -> StudyInfo:
        """Create the study in the store, or load it and check that its settings match.

        Raises :class:`~naslab.core.errors.StudyConflictError`, and changes nothing
        stored, when a study of this name was stored with settings that change
        results: another space, task (with its training options), fidelity,
        searcher, seed, searcher options (see :data:`RESULT_SETTINGS`), scheduler
        or objectives. The budget, the executor (workers, Ray, timeouts), the
        storage and ``batch_trials`` may differ. :meth:`run` calls it; call it first
        to refuse a conflict before doing anything else.
        """
        config = {"searcher_options": self.searcher_options,
                  "table_benchmark": self.evaluator.is_table,
                  "model_io": self.evaluator.model_io(),
                  "scheduler": self._scheduler_config(),
                  "objectives": self._objectives_config()}
        self.launch.update(searcher=self.searcher.name, searcher_options=self.searcher_options,
                           epochs=self.epochs, seed=self.seed,
                           objectives=[str(o) for o in self.objectives],
                           scheduler=self._scheduler_config())
        config["launch"] = self.launch
        warn_if_space_changed(self.store, self.space)
        return self.store.studies.create_or_load(StudySpec(
            name=self.name, space=self.space.name, space_key=self.space.key,
            space_config=self.space.config(), task_key=self.evaluator.key,
            searcher=self.searcher.name, objective=self.evaluator.objective,
            budget=self.budget, fidelity=self.epochs, seed=self.seed,
            config=config), check_config=self._config_check(config), refresh=("launch",))

    def _config_check(self, config: Mapping[str, Any]) -> Callable[[Mapping[str, Any]],
                                                                     list[str]]:
        """What :meth:`prepare` compares with a stored study's config: each of
        :data:`RESULT_SETTINGS` that the stored config records (an older study may
        not), searcher options with the searcher's defaults filled in."""
        wanted = _as_json(config)
        defaults = _searcher_defaults(self.searcher) if self._searcher_by_name else None

        def differences(stored: Mapping[str, Any]) -> list[str]:
            diffs = []
            for key in RESULT_SETTINGS:
                if key not in stored:
                    continue
                old, new = stored[key], wanted[key]
                if key == "searcher_options":
                    if defaults is None or not isinstance(old, dict):
                        continue  # a ready searcher: its options are the caller's
                    diffs += _option_differences(old, new, defaults)
                elif old != new:
                    diffs.append(f"{key}: stored {old!r}, requested {new!r}")
            return diffs

        return differences

    def update_pareto_front(self) -> list[TrialRecord]:
        """Recompute the study's Pareto front from its stored trials, store it (table
        ``naslab_pareto_fronts``) and return its trials. :meth:`run` calls it at the
        end of a multi-objective run."""
        front = pareto_trials(self.store.trials.list(self.name, ["complete"]), self.objectives)
        self.store.fronts.set(self.name, [t.id for t in front], [str(o) for o in self.objectives])
        return front

    def _objectives_config(self) -> list[str] | None:
        return [str(o) for o in self.objectives] if self.multi_objective else None

    def _scheduler_config(self) -> dict[str, Any] | None:
        return None if self.scheduler is None else self.scheduler.config()

    def run(self, callback: Callable[[TrialEvent], None] | None = None, *,
            callbacks: Sequence[StudyCallback] = (), progress: bool | None = None,
            timeout: float | None = None) -> StudyReport:
        """Run (or resume) the study until its budget of trials has finished, its
        search space is exhausted (:attr:`StudyReport.exhausted`), ``timeout`` has
        passed, or :meth:`stop` is called.

        A resumed run first claims again the architectures of interrupted trials
        (:attr:`StudyReport.retried`), then the enqueued ones (:meth:`enqueue`), then
        asks the searcher for new ones.

        Several drivers (processes, machines) may run the same study on one database
        at once: each claims its trials in the store (one evaluation per
        architecture, see :mod:`naslab.db.protocol`), the budget counts every
        driver's trials, and each driver's searcher is told the others' results as
        they finish. A driver stops claiming once finished and running trials reach
        the budget, and returns when its own trials are done.

        Args:
            callback: called as ``callback(event)`` with a :class:`TrialEvent` after
                each finished trial.
            callbacks: functions called as ``fn(study, event)`` after each finished
                trial, in order; one may call :meth:`stop`. An exception raised by
                a callback ends the run and propagates: the trials finished are
                stored, those in flight are marked interrupted (the next run
                retries them).
            progress: draw a progress bar on stderr (trials, best so far, elapsed,
                time left); None: when stderr is a terminal or in a Jupyter notebook.
            timeout: seconds of wall clock (a positive finite number) after which no
                new trial is started; trials in flight finish and are stored, so a
                run may end later than this (a Ray trial's own limit is the
                executor's ``trial_timeout``). Re-running resumes.

        Returns a :class:`StudyReport`; its ``best`` is None if no trial is complete
        (a :class:`~naslab.run_control.FailingTrialsWarning` says so when trials failed),
        and its ``stopped_by`` says why the run ended.
        """
        self._not_running("run()")
        control = RunControl(self, callback=callback, callbacks=callbacks, progress=progress,
                             timeout=timeout)
        loop = TrialLoop(self, self.prepare(), control, queued=self._queue,
                         stop_reason=control.stop_reason)
        self._control = control
        try:
            with control:
                loop.run()
                report = self._report(loop)
                control.finish(report)
        finally:
            self._control = None
        control.warn_if_nothing_complete(report)
        return report

    def _report(self, loop: TrialLoop) -> StudyReport:
        trials = self.store.trials
        counts = {state: trials.count(loop.info.id, [state])
                  for state in ("complete", "failed", "stopped")}
        best = trials.best(loop.info.id, 1)
        return StudyReport(
            name=self.name, budget=self.budget, complete=counts["complete"],
            failed=counts["failed"], stopped=counts["stopped"],
            reused_this_run=loop.counts.reused, trained_this_run=loop.counts.trained,
            interrupted_found=loop.interrupted_found, retried=loop.retried,
            not_retried=len(loop.given_up), exhausted=loop.exhausted,
            space_size=loop.space_size, stopped_by=loop.stopped_by, queued=len(self._queue),
            elapsed_s=time.perf_counter() - loop.started, best=best[0] if best else None)

    def stop(self) -> None:
        """End the run in progress gracefully: no new trial is started, those in flight
        finish and are stored, and :meth:`run` returns with ``stopped_by ==
        "stopped"``. Call it from a callback, or from another thread; without a run
        in progress it does nothing (the next run is not affected)."""
        control = self._control
        if control is not None:
            control.stop()

    def enqueue(self, arch: Architecture | Mapping[str, Any]) -> Architecture:
        """Evaluate ``arch`` (an architecture of the study's space, or a mapping of its
        decisions) before the searcher's candidates, in the order enqueued (after
        the retries of interrupted trials), as Optuna's ``enqueue_trial``.

        It is checked now: an invalid one raises
        :class:`~naslab.core.errors.InvalidArchitectureError` and nothing is queued.
        It counts towards the budget like any trial, and the searcher is told its
        result. One the study already holds (or that is queued) is skipped, with a
        log line. The queue lives in this object: what a run did not reach (its
        budget was used) stays for the next :meth:`run`, and is lost when the process
        ends (:attr:`queued` lists it). During a run (from a callback) it is claimed
        before the searcher is asked again. Returns the architecture.
        """
        candidate = as_architecture(self.space, arch)
        if any(a.hash == candidate.hash for a in self._queue):
            logger.info("study %s: architecture %s is already enqueued", self.name,
                        candidate.hash[:12])
        else:
            self._queue.append(candidate)
        return candidate

    @property
    def queued(self) -> tuple[Architecture, ...]:
        """The enqueued architectures no run has claimed yet, in order."""
        return tuple(self._queue)

    def evaluate(self, arch: Architecture | Mapping[str, Any]) -> TrialRecord:
        """Evaluate one architecture (or mapping of decisions) now, store it as a trial
        of this study, tell the searcher, and return the stored record.

        The trial counts towards the budget: with the budget taken this raises
        :class:`~naslab.core.errors.ConfigError` and stores nothing (raise
        :attr:`budget` first). An architecture the study already holds is not
        evaluated again: its stored trial is returned. One evaluated by another study
        on the same space, task and fidelity is reused. A failed evaluation is
        returned as a ``failed`` record (it does not raise). Runs in this thread
        through the study's executor; interrupted trials are not retried here.
        """
        self._not_running("evaluate()")
        return evaluate_now(self, as_architecture(self.space, arch))

    def _not_running(self, what: str) -> None:
        if self._control is not None:
            raise ConfigError(f"{what} was called while study {self.name!r} runs (from a "
                              "callback?); use enqueue() to add an architecture to the run")


def _in_memory(storage: Any) -> bool:
    import optuna

    return isinstance(storage, optuna.storages.InMemoryStorage)


def _keeps_a_shared_optuna_study(searcher: Searcher) -> bool:
    """Whether a ready searcher keeps its Optuna study in a database (perhaps the
    store's): then the loop never holds a transaction open while it calls it."""
    module = sys.modules.get("naslab.searchers.optuna_searcher")
    return module is not None and isinstance(searcher, module.OptunaSearcher) and searcher.shared


def _merge_objectives(given: Any, from_options: Any) -> Any:
    """The study's objectives, given as ``objectives`` or as the searcher option
    ``objectives`` (both only if they agree)."""
    if from_options is None:
        return given
    if given is not None and parse_objectives(given) != parse_objectives(from_options):
        raise ConfigError(
            f"objectives were given twice and differ: {given!r}, and {from_options!r} as a "
            "searcher option; give them once (--objectives)")
    return from_options if given is None else given


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from the store (JSON: tuples become lists, ...)."""
    return json.loads(dumps("study settings", value))


def _searcher_defaults(searcher: Searcher) -> dict[str, Any]:
    """The default options of ``searcher``'s class (its keyword arguments), as JSON."""
    skip = {"self", "space", "seed", "objectives", "storage", "study_name"}
    params = inspect.signature(type(searcher).__init__).parameters.values()
    out = {}
    for p in params:
        if (p.name not in skip and p.default is not inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)):
            try:
                out[p.name] = _as_json(p.default)
            except StorageError:
                continue  # not JSON (an object): compared as "not set"
    return out


def _option_differences(stored: Mapping[str, Any], given: Mapping[str, Any],
                        defaults: Mapping[str, Any]) -> list[str]:
    """``searcher option NAME: stored X, requested Y`` for each option whose value
    (or default) differs."""
    unset = "(not set)"
    out = []
    for key in sorted(set(stored) | set(given)):
        old = stored.get(key, defaults.get(key, unset))
        new = given.get(key, defaults.get(key, unset))
        if old != new:
            out.append(f"searcher option {key}: stored {old!r}, requested {new!r}")
    return out
