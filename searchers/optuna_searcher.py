"""Optuna's samplers as naslab searchers (``optuna-tpe``, ``optuna-nsga2``, ...).

:class:`OptunaSearcher` runs any of Optuna's samplers over a space's *declared
decisions*, with Optuna's ask-and-tell interface (``study.ask()`` /
``study.tell()``), for one objective or several.

Mapping
    Every proposal is one Optuna trial, sampled define-by-run: the space's decisions
    are walked in declared order (parents first); a :class:`Categorical` decision
    becomes ``trial.suggest_categorical(name, choices)``, an :class:`Integer` one
    ``trial.suggest_int(name, low, high, step=step)``. A conditional decision is
    suggested only when its condition holds for the values drawn so far, so an Optuna
    trial's params are exactly the architecture's active decisions. The decisions
    then go through ``space.from_decisions``:

    * an invalid combination (``InvalidArchitectureError``, e.g. NAS-Bench-Graph's
      all-``skip`` network) is told ``FAIL`` and another trial is asked;
    * an architecture already told in this search (same canonical hash: isomorphic
      cells count as one) is told the values it got then (free information for the
      sampler; ``FAIL`` if it failed) and another trial is asked;
    * one that is asked but not yet told (in flight) is told ``FAIL``, and another
      trial is asked.

    After ``max_retries`` such trials, the candidate is drawn uniformly
    (``space.sample``) and fixed on the next trial with ``study.enqueue_trial``.
    Trials that stand for a naslab result carry the user attribute
    ``naslab_arch_hash``; skipped ones carry ``naslab_skipped`` (why) or
    ``naslab_repeat_of`` (the repeated architecture's hash). A trial enqueued by
    hand (``searcher.study.enqueue_trial({...})``) is proposed first, as in Optuna.

Objectives
    The study's directions are the searcher's objectives (``"max"`` ->
    ``"maximize"``, ``"min"`` -> ``"minimize"``). A multi-objective trial gets its
    values from the metrics passed to :meth:`OptunaSearcher.tell`; a trial whose value
    (or any objective metric) is missing is told ``FAIL``.

Storage
    By default the Optuna study lives in the naslab store's own database (the URL the
    naslab study passes to :meth:`OptunaSearcher.bind`), under the name
    ``naslab:<study name>``. Optuna's tables (``studies``, ``trials``, ...) and
    naslab's (``naslab_*``) coexist in one file, so ``optuna-dashboard
    sqlite:///naslab.db`` shows the search. ``storage="memory"`` keeps it in memory;
    any other string is an SQLAlchemy URL of its own database. On SQLite, Optuna's
    connections wait for locks (busy timeout) and take the write lock at the start of
    each transaction (``BEGIN IMMEDIATE``), as naslab's writers do, so both can use
    the file at once. A searcher used without a naslab study (never bound) keeps its
    Optuna study in memory (with an explicit URL: there, named ``naslab:standalone``).

Resuming
    The naslab store is the truth. :meth:`OptunaSearcher.replay` tells ``FAIL`` to the
    Optuna trials a crashed driver left ``RUNNING``, and adds (``study.add_trial``)
    every stored result that the Optuna study does not already hold a finished trial
    for (matched by ``naslab_arch_hash``, counting repeats). A search resumed with its
    Optuna study in the same database therefore duplicates nothing, and one whose
    Optuna study was lost (or kept in memory) gets the whole history back. The
    samplers' random state is not rebuilt, so a resumed search does not propose
    exactly what an uninterrupted one would (:attr:`~Searcher.exact_replay` is False).

Samplers and their limits (Optuna 5)
    * ``tpe``: ``TPESampler(multivariate=True, group=True)``: multivariate TPE on
      each group of decisions that occur together, which suits conditional spaces.
      For several objectives it is MOTPE.
    * ``random``: ``RandomSampler``. ``nsga2`` / ``nsga3``: ``NSGAIISampler`` /
      ``NSGAIIISampler`` (genetic; the first generation, ``population_size`` trials
      (50), is random). They handle categorical decisions natively.
    * ``cmaes``: ``CmaEsSampler`` models only numerical (here: integer) decisions
      that every trial has; categorical and conditional decisions are sampled by its
      independent sampler (random). On an all-categorical space (NB201,
      NAS-Bench-Graph) it is random search. One objective only.
    * ``gp``: ``GPSampler``: a Gaussian process with a Hamming-distance kernel for
      categorical decisions, over the decisions that every trial has; conditional
      decisions are sampled at random. The slowest per proposal.
    * ``qmc``: ``QMCSampler`` (Sobol, scrambled with the seed here, so that seeds
      differ; scrambling costs ~20 ms per proposal, ``sampler_options={"scramble":
      False}`` avoids it): a low-discrepancy design over the first trial's
      decisions; in Optuna 5 a categorical decision takes one coordinate, split into
      equal bins; decisions missing from the first trial (conditional ones) are
      sampled at random.

    ``cmaes``, ``gp`` and ``qmc`` would log a warning each time they fall back to
    independent sampling; they are built with ``warn_independent_sampling=False``
    (pass ``sampler_options={"warn_independent_sampling": True}`` to see them).
    Optuna's ``ExperimentalWarning`` for the options naslab picks is silenced;
    ``sampler_options`` go to the sampler's constructor as they are.
"""

from __future__ import annotations

import inspect
import math
import socket
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import timezone
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, Trial, TrialState
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from naslab.core.drivers import driver_alive, driver_id, parse_driver
from naslab.core.errors import (
    ConfigError,
    InvalidArchitectureError,
    StorageError,
    StudyConflictError,
    UnknownNameError,
)
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.search_spaces.decisions import Categorical, Decision, Integer, check_decisions
from naslab.searchers.base import Observation, Searcher
from naslab.searchers.objectives import Objective

__all__ = ["HASH_ATTR", "SAMPLERS", "OptunaSearcher", "optuna_study_name"]

#: Optuna sampler classes by naslab name.
SAMPLERS: dict[str, type[optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "nsga2": optuna.samplers.NSGAIISampler,
    "nsga3": optuna.samplers.NSGAIIISampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "gp": optuna.samplers.GPSampler,
    "qmc": optuna.samplers.QMCSampler,
}
#: Options naslab passes unless ``sampler_options`` overrides them.
_DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "tpe": {"multivariate": True, "group": True},
    "cmaes": {"warn_independent_sampling": False},
    "gp": {"warn_independent_sampling": False},
    "qmc": {"scramble": True, "warn_independent_sampling": False},
}
#: Samplers that optimise one objective only.
_SINGLE_OBJECTIVE = frozenset({"cmaes"})
#: User attribute that names the naslab architecture an Optuna trial stands for.
HASH_ATTR = "naslab_arch_hash"
#: User attribute of an Optuna trial in a database: the naslab driver
#: (``host/pid/start``, :mod:`naslab.core.drivers`) that asked it. Drivers sharing
#: the study leave each other's running trials alone.
DRIVER_ATTR = "naslab_driver"
#: Seconds an SQLite connection of Optuna's waits for another's lock.
_SQLITE_BUSY_S = 30.0
_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def optuna_study_name(study_name: str) -> str:
    """The Optuna study name of naslab study ``study_name``: ``naslab:<name>``."""
    return f"naslab:{study_name}"


def _direction(o: Objective) -> str:
    return "maximize" if o.direction == "max" else "minimize"


def _is_memory_sqlite(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def _owner_alive(trial: FrozenTrial) -> bool:
    """Whether the driver that asked a running Optuna trial may still be working on
    it: its process lives (same host), or it started less than a lease ago (another
    host, or a trial asked before its driver was recorded)."""
    started = trial.datetime_start
    if started is not None:
        started = started.astimezone(timezone.utc)  # Optuna's times are local
    owner = trial.user_attrs.get(DRIVER_ATTR)
    if isinstance(owner, str) and (parsed := parse_driver(owner)) is not None:
        if parsed[0] == socket.gethostname():
            return driver_alive(owner, None)
    return driver_alive("unknown-host/0/0", started)


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage for ``url``; on SQLite, one that waits for locks and
    takes the write lock when a transaction starts (as naslab's writers do), so that
    it shares the file with naslab's store (WAL) without "database is locked"."""
    sqlite = make_url(url).get_backend_name() == "sqlite"
    kwargs: dict[str, Any] = {}
    if sqlite:
        # isolation_level None: sqlite3 issues no BEGIN itself; the listener does.
        kwargs = {"connect_args": {"timeout": _SQLITE_BUSY_S, "isolation_level": None}}
    for attempt in range(5):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
            break
        except SQLAlchemyError as exc:
            # several drivers creating Optuna's tables (and stamping its alembic
            # version) at once: one wins, the others find them on the next try
            racing = ("already exists", "UNIQUE constraint", "duplicate key")
            if attempt == 4 or not any(r in str(exc) for r in racing):
                raise
            time.sleep(0.1 * (attempt + 1))
    if sqlite:
        engine = storage.engine

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            # In WAL mode (naslab's), NORMAL syncs at checkpoints rather than at
            # every commit: Optuna commits each suggested parameter on its own.
            cursor = dbapi_conn.cursor()
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        engine.dispose()  # the connections opened so far lack the settings

    return storage


class OptunaSearcher(Searcher):
    """An Optuna sampler over a space's declared decisions (see the module docstring).

    Args:
        space: the search space.
        seed: the sampler's seed (and that of the uniform fallback draws).
        sampler: one of ``tpe``, ``random``, ``nsga2``, ``nsga3``, ``cmaes``, ``gp``,
            ``qmc``.
        objectives: what to optimise, e.g. ``"val_accuracy:max,params:min"``;
            default ``val_accuracy`` maximised.
        storage: where the Optuna study lives: None (default) the naslab store's
            database given to :meth:`bind` (in memory when never bound or when
            that database is in memory), ``"memory"`` in memory, or an SQLAlchemy
            URL of another database.
        sampler_options: keyword arguments of the Optuna sampler's constructor
            (e.g. ``{"n_startup_trials": 20}`` for ``tpe``); ``seed`` is the
            searcher's own.
        max_retries: Optuna trials asked per proposal (skipping invalid, repeated and
            in-flight architectures) before a uniform draw is used instead (0: every
            proposal is a uniform draw, fixed on its Optuna trial). Samplers that
            converge (``cmaes``, ``gp``) may spend all of them once the region they
            favour is exhausted; each costs a sampler step (``gp``: ~0.2 s for one
            objective, seconds for several).

    Raises:
        UnknownNameError: ``sampler`` is not one of the above.
        ConfigError: a bad sampler option or storage URL, or several objectives for a
            single-objective sampler (``cmaes``).

    Attributes:
        study: the :class:`optuna.Study` (created on first use).
    """

    multi_objective = True
    exact_replay = False

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        sampler: str = "tpe",
        objectives: str | Sequence[str | Objective] | None = None,
        storage: str | None = None,
        sampler_options: Mapping[str, Any] | None = None,
        max_retries: int = 100,
    ) -> None:
        if sampler not in SAMPLERS:
            raise UnknownNameError("Optuna sampler", sampler, SAMPLERS)
        self.name = f"optuna-{sampler}"
        super().__init__(space, seed=seed, max_retries=max_retries, objectives=objectives)
        if max_retries < 0:
            raise ConfigError(f"{self.name} needs max_retries >= 0, got {max_retries}")
        self.sampler_name = sampler
        if sampler in _SINGLE_OBJECTIVE and len(self.objectives) > 1:
            raise ConfigError(
                f"{self.name} optimises one objective, but {len(self.objectives)} were given "
                f"({', '.join(map(str, self.objectives))}); use optuna-tpe, optuna-nsga2, "
                "optuna-nsga3, optuna-gp, optuna-qmc or optuna-random"
            )
        if sampler_options is not None and not isinstance(sampler_options, Mapping):
            raise ConfigError(
                f"{self.name}: sampler_options must be a mapping of the sampler's keyword "
                f"arguments, got {type(sampler_options).__name__}"
            )
        self.sampler_options: dict[str, Any] = dict(sampler_options or {})
        if storage is not None:
            if not isinstance(storage, str) or not storage:
                raise ConfigError(
                    f"{self.name}: storage must be None, 'memory' or an SQLAlchemy URL, "
                    f"got {storage!r}"
                )
            if storage != "memory":
                try:
                    make_url(storage)
                except ArgumentError as exc:
                    raise ConfigError(
                        f"{self.name}: invalid storage URL {storage!r} ({exc}); use 'memory' "
                        "or an SQLAlchemy URL such as sqlite:///optuna.db"
                    ) from exc
        self.storage = storage
        self.directions: list[str] = [_direction(o) for o in self.objectives]
        self._declared: list[Decision] = list(space.decisions())
        self._distributions: dict[str, BaseDistribution] = {}
        for d in self._declared:
            if isinstance(d, Integer):
                # the grid's last value: Optuna warns when high is off the step grid
                self._distributions[d.name] = IntDistribution(d.low, d.values[-1], step=d.step)
            else:
                self._distributions[d.name] = CategoricalDistribution(list(d.choices))
        self._sampler: optuna.samplers.BaseSampler | None = self._make_sampler()
        self._study_name = optuna_study_name("standalone")
        self._storage_url: str | None = None  # None: in memory
        self._study: optuna.Study | None = None
        self._pending: dict[str, list[Trial]] = defaultdict(list)  # hash -> in-flight trials
        self._results: dict[str, Observation] = {}  # hash -> latest told observation
        if storage not in (None, "memory"):
            self._storage_url = storage

    # ------------------------------------------------------------------ the sampler

    def _make_sampler(self) -> optuna.samplers.BaseSampler:
        cls = SAMPLERS[self.sampler_name]
        if "seed" in self.sampler_options:
            raise ConfigError(
                f"{self.name}: give the seed as the searcher's seed, not in sampler_options"
            )
        params = inspect.signature(cls.__init__).parameters
        accepted = sorted(n for n in params if n not in ("self", "seed"))
        unknown = sorted(set(self.sampler_options) - set(accepted))
        if unknown:
            raise ConfigError(
                f"{self.name}: unknown sampler option(s) {', '.join(map(repr, unknown))}; "
                f"{cls.__name__} accepts: {', '.join(accepted)}"
            )
        # naslab's defaults, less any that this Optuna version's sampler lacks
        defaults = {
            k: v for k, v in _DEFAULT_OPTIONS.get(self.sampler_name, {}).items() if k in params
        }
        options = {**defaults, **self.sampler_options}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return cls(seed=self.seed, **options)
        except (TypeError, ValueError) as exc:
            given = ", ".join(f"{k}={v!r}" for k, v in self.sampler_options.items())
            raise ConfigError(
                f"{self.name}: {cls.__name__} refused its options ({given or 'defaults'}): {exc}"
            ) from exc

    # ------------------------------------------------------------------ the study

    @property
    def writes_to_storage(self) -> bool:
        """True when the Optuna study is kept in a database (not in memory)."""
        return self._storage_url is not None

    def bind(self, study_name: str, storage_url: str | None) -> None:
        """Place the Optuna study: named ``naslab:<study_name>``, in the naslab store's
        database ``storage_url`` unless ``storage`` says otherwise (see the class
        docstring). Called by the naslab study before :meth:`replay`."""
        name = optuna_study_name(study_name)
        if self.storage is None:
            try:
                memory = storage_url is None or _is_memory_sqlite(storage_url)
            except ArgumentError as exc:
                raise ConfigError(f"{self.name}: invalid storage URL ({exc})") from exc
            url = None if memory else storage_url
        elif self.storage == "memory":
            url = None
        else:
            url = self.storage
        if self._study is not None and (name, url) == (self._study_name, self._storage_url):
            return
        self._study_name, self._storage_url = name, url
        if self._study is not None:
            # Moved to another study: the told history is added there on first use,
            # trials in flight are added when told.
            self._study = None
            self._pending.clear()
            self._sampler = None

    @property
    def study(self) -> optuna.Study:
        """The Optuna study (created, or loaded and brought up to date, on first use)."""
        if self._study is None:
            self._study = self._create_study()
            self._sync(self._study)
        return self._study

    def _create_study(self) -> optuna.Study:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = self._sampler or self._make_sampler()
        self._sampler = None  # a sampler serves one study
        where = "memory"
        try:
            if self._storage_url is None:
                storage: optuna.storages.BaseStorage = optuna.storages.InMemoryStorage()
            else:
                where = make_url(self._storage_url).render_as_string(hide_password=True)
                storage = _rdb_storage(self._storage_url)
            study = optuna.create_study(
                study_name=self._study_name,
                storage=storage,
                sampler=sampler,
                directions=self.directions,
                load_if_exists=True,
            )
        except (ArgumentError, ImportError) as exc:
            raise ConfigError(f"{self.name}: cannot use storage {where!r}: {exc}") from exc
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            raise StorageError(
                f"{self.name}: cannot open Optuna study {self._study_name!r} in {where}: {exc}"
            ) from exc
        have = [d.name.lower() for d in study.directions]
        if have != self.directions:
            raise StudyConflictError(
                f"Optuna study {self._study_name!r} in {where} exists with directions "
                f"{have}, but this search's objectives "
                f"({', '.join(map(str, self.objectives))}) need {self.directions}; resume "
                "with the stored objectives, or choose another study name or storage"
            )
        return study

    def _sync(self, study: optuna.Study) -> None:
        """Fail the trials a crashed driver left running (those of live drivers, which
        share the study, are left alone: see :data:`DRIVER_ATTR`); add every told
        result the study lacks (matched by :data:`HASH_ATTR`, counting repeats)."""
        ours = {t.number for ts in self._pending.values() for t in ts}
        have: Counter[str] = Counter()
        zombies = []
        for t in study.get_trials(deepcopy=False):
            if (t.state == TrialState.RUNNING and t.number not in ours
                    and not _owner_alive(t)):
                zombies.append(t.number)
            elif t.state in _FINISHED and HASH_ATTR in t.user_attrs:
                have[t.user_attrs[HASH_ATTR]] += 1
        for number in zombies:
            study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
        missing = []
        for obs in self.history:
            h = obs.arch.hash
            if have[h] > 0:
                have[h] -= 1
            else:
                missing.append(self._frozen(obs))
        if missing:
            study.add_trials(missing)

    # ------------------------------------------------------------------ conversions

    def _suggest(self, trial: Trial) -> dict[str, Any]:
        """Sample the active decisions, define-by-run, in declared order."""
        out: dict[str, Any] = {}
        for d in self._declared:
            if d.condition is not None and not d.condition.holds(out):
                continue
            if isinstance(d, Categorical):
                out[d.name] = trial.suggest_categorical(d.name, d.choices)
            else:
                dist = self._distributions[d.name]
                assert isinstance(dist, IntDistribution)
                out[d.name] = trial.suggest_int(d.name, dist.low, dist.high, step=dist.step)
        return out

    def _params(self, arch: Architecture) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
        """An architecture's decisions as Optuna params and distributions (validated)."""
        if arch.space != self.space.name:
            raise InvalidArchitectureError(
                f"{self.name}: architecture of space {arch.space!r} told to a search of "
                f"space {self.space.name!r}"
            )
        params = check_decisions(self.space.name, self._declared, arch.decisions)
        return params, {n: self._distributions[n] for n in params}

    def _result(self, obs: Observation) -> tuple[float | list[float] | None, TrialState]:
        """What Optuna is told for ``obs``: its value(s), or FAIL."""
        if len(self.objectives) > 1:
            if obs.values is None:
                return None, TrialState.FAIL
            return [float(v) for v in obs.values], TrialState.COMPLETE
        if obs.value is None or math.isnan(obs.value):
            return None, TrialState.FAIL
        return float(obs.value), TrialState.COMPLETE

    def _frozen(self, obs: Observation) -> FrozenTrial:
        params, distributions = self._params(obs.arch)
        values, state = self._result(obs)
        return optuna.trial.create_trial(
            state=state,
            values=None if values is None else (values if isinstance(values, list) else [values]),
            params=params,
            distributions=distributions,
            user_attrs={HASH_ATTR: obs.arch.hash},
        )

    # ------------------------------------------------------------------ ask / tell

    def ask(self, n: int = 1) -> list[Architecture]:
        """``n`` new candidates, each from one Optuna trial kept open until told."""
        out = []
        for _ in range(n):
            rng = self._rng()
            self._asked += 1
            arch = self._propose(rng)
            self._seen.add(arch.hash)
            out.append(arch)
        return out

    def _propose(self, rng: np.random.Generator) -> Architecture:
        study = self.study
        for _ in range(self.max_retries):
            arch = self._consider(study, study.ask())
            if arch is not None:
                return arch
        # The sampler keeps proposing what is known or invalid: draw uniformly.
        fixed = self._fallback(rng)
        if fixed.hash in self._seen:
            return fixed  # a repeat (space exhausted); tell adds it to the study
        study.enqueue_trial(dict(fixed.decisions))
        arch = self._consider(study, study.ask())
        return fixed if arch is None else arch

    def _fallback(self, rng: np.random.Generator) -> Architecture:
        """A uniform draw, unseen if ``max(max_retries, 100)`` draws find one (draws
        are cheap next to Optuna trials)."""
        cand: Architecture | None = None
        for _ in range(max(100, self.max_retries)):
            try:
                cand = self.space.sample(rng)
            except InvalidArchitectureError:
                continue
            if cand.hash not in self._seen:
                break
        if cand is None:
            raise InvalidArchitectureError(
                f"{self.name}: {self.space.name}.sample produced no valid architecture"
            )
        return cand

    def _consider(self, study: optuna.Study, trial: Trial) -> Architecture | None:
        """The trial's architecture if it is new (then kept in flight); otherwise the
        trial is finished (FAIL, or the known values of a repeat) and None returned."""
        if self._storage_url is not None:  # a shared study: say whose trial it is
            trial.set_user_attr(DRIVER_ATTR, driver_id())
        try:
            arch = self.space.from_decisions(self._suggest(trial))
        except InvalidArchitectureError as exc:
            trial.set_user_attr("naslab_skipped", f"invalid: {str(exc)[:200]}")
            study.tell(trial, state=TrialState.FAIL)
            return None
        h = arch.hash
        known = self._results.get(h)
        if known is not None:
            values, state = self._result(known)
            trial.set_user_attr("naslab_repeat_of", h)
            study.tell(trial, values, state=state)
            return None
        if self._pending.get(h):
            trial.set_user_attr("naslab_skipped", f"in flight: {h}")
            study.tell(trial, state=TrialState.FAIL)
            return None
        self._pending[h].append(trial)
        return arch

    def tell(
        self, arch: Architecture, value: float | None, metrics: Mapping[str, Any] | None = None
    ) -> None:
        """Record the result and finish its Optuna trial; a result that this searcher
        did not ask (e.g. one the study reused) is added to the Optuna study."""
        study = self.study
        queue = self._pending.get(arch.hash)
        trial = queue.pop(0) if queue else None
        if queue is not None and not queue:
            del self._pending[arch.hash]
        if trial is None:
            self._params(arch)  # refuse a foreign architecture before recording it
        super().tell(arch, value, metrics)
        obs = self.history[-1]
        self._results[arch.hash] = obs
        if trial is not None:
            values, state = self._result(obs)
            try:
                trial.set_user_attr(HASH_ATTR, arch.hash)
                study.tell(trial, values, state=state)
                return
            except (RuntimeError, ValueError):
                # finished meanwhile (e.g. failed as a crashed driver's trial)
                pass
        study.add_trial(self._frozen(obs))

    def observe(
        self, arch: Architecture, value: float | None, metrics: Mapping[str, Any] | None = None
    ) -> None:
        """Another driver's result. With the Optuna study in the shared database that
        driver's searcher already added it there, so only naslab's history records
        it (unless this searcher asked the same architecture and waits for it)."""
        if self.writes_to_storage and not self._pending.get(arch.hash):
            Searcher.tell(self, arch, value, metrics)
            self._results[arch.hash] = self.history[-1]
            return
        self.tell(arch, value, metrics)

    def forget(self, arch: Architecture) -> None:
        """Fail the Optuna trial of an asked architecture that will not be evaluated."""
        queue = self._pending.get(arch.hash)
        if not queue:
            return
        trial = queue.pop()
        if not queue:
            del self._pending[arch.hash]
        self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)

    def replay(self, history: Iterable[Sequence[Any]]) -> None:
        """Record a stored history (``(arch, value)`` or ``(arch, value, metrics)``
        items) and bring the Optuna study up to date with it: fail trials left
        running, add the results it lacks (see the module docstring)."""
        for item in history:
            arch, value = item[0], item[1]
            metrics = item[2] if len(item) > 2 else None
            self._asked += 1
            Searcher.tell(self, arch, value, metrics)
            self._results[arch.hash] = self.history[-1]
        if self._study is None:
            _ = self.study  # creating it syncs it
        else:
            self._sync(self._study)
