"""Optuna's samplers as naslab searchers (``optuna-tpe``, ``optuna-nsga2``, ...).

:class:`OptunaSearcher` runs any of Optuna's samplers over a space's *declared
decisions* (mapped as :mod:`naslab.searchers.optuna_space` says), with Optuna's
ask-and-tell interface (``study.ask()`` / ``study.tell()``), for one objective or
several. Each proposal's decisions go through ``space.from_decisions``:

* an invalid combination (``InvalidArchitectureError``, e.g. NAS-Bench-Graph's
  all-``skip`` network) is told ``FAIL`` and another trial is asked;
* an architecture already told in this search (same canonical hash: isomorphic
  cells count as one) is told the values it got then (free information for the
  sampler; ``FAIL`` if it failed) and another trial is asked;
* one that is asked but not yet told (in flight) is told ``FAIL``, and another
  trial is asked.

After ``max_retries`` such trials, the candidate is drawn uniformly
(``space.sample``) and fixed on the next trial with ``study.enqueue_trial``. Trials
that stand for a naslab result carry the user attribute ``naslab_arch_hash``;
skipped ones carry ``naslab_skipped`` (why) or ``naslab_repeat_of`` (the repeated
architecture's hash). A trial enqueued by hand (``searcher.study.enqueue_trial({...})``)
is proposed first, as in Optuna.

Objectives
    The study's directions are the searcher's objectives (``"max"`` ->
    ``"maximize"``, ``"min"`` -> ``"minimize"``). A multi-objective trial gets its
    values from the metrics passed to :meth:`OptunaSearcher.tell`; a trial whose value
    (or any objective metric) is missing is told ``FAIL``.

Storage
    The searcher is given its Optuna storage; it never opens a database itself. By
    default (``storage=None``) the Optuna study lives in memory. A naslab
    :class:`~naslab.Study` that runs an ``optuna-*`` searcher given by name builds an
    ``RDBStorage`` on the naslab store's own database (with the store's SQLite
    settings, see :func:`naslab.optuna_storage`) and names the Optuna study
    ``naslab:<study name>``: Optuna's tables (``studies``, ``trials``, ...) and
    naslab's (``naslab_*``) coexist in one file, so ``optuna-dashboard
    sqlite:///naslab.db`` shows the search. In a shared storage each running
    Optuna trial records the naslab driver that asked it (:data:`DRIVER_ATTR`), and
    drivers sharing the study leave each other's running trials alone.

Resuming
    The naslab store is the truth. :meth:`OptunaSearcher.replay` tells ``FAIL`` to the
    Optuna trials a crashed driver left ``RUNNING``, and adds (``study.add_trial``)
    every stored result that the Optuna study does not already hold a finished trial
    for (matched by ``naslab_arch_hash``, counting repeats). A search resumed with its
    Optuna study in the same database therefore duplicates nothing, and one whose
    Optuna study was lost (or kept in memory) gets the whole history back. The
    samplers' random state is not rebuilt, so a resumed search does not propose
    exactly what an uninterrupted one would (:attr:`~Searcher.exact_replay` is False).
"""

from __future__ import annotations

import math
import socket
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import timezone
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from naslab.core.drivers import driver_alive, driver_id, parse_driver
from naslab.core.errors import (
    ConfigError,
    InvalidArchitectureError,
    StorageError,
    StudyConflictError,
)
from naslab.core.validation import check_choice, check_mapping, check_str
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.searchers.base import Observation, Searcher
from naslab.searchers.objectives import Objective
from naslab.searchers.optuna_space import (
    HASH_ATTR,
    SAMPLERS,
    SINGLE_OBJECTIVE,
    OptunaSpace,
    make_sampler,
)

__all__ = ["DRIVER_ATTR", "HASH_ATTR", "OptunaSearcher", "optuna_study_name"]

#: User attribute of an Optuna trial in a shared storage: the naslab driver
#: (``host/pid/start``, :mod:`naslab.core.drivers`) that asked it.
DRIVER_ATTR = "naslab_driver"
_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def optuna_study_name(study_name: str) -> str:
    """The Optuna study name of naslab study ``study_name``: ``naslab:<name>``."""
    return f"naslab:{study_name}"


def _direction(o: Objective) -> str:
    return "maximize" if o.direction == "max" else "minimize"


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


class OptunaSearcher(Searcher):
    """An Optuna sampler over a space's declared decisions (see the module docstring).

    Args:
        space: the search space.
        seed: the sampler's seed (and that of the uniform fallback draws).
        sampler: one of ``tpe``, ``random``, ``nsga2``, ``nsga3``, ``cmaes``, ``gp``,
            ``qmc`` (:data:`~naslab.searchers.optuna_space.SAMPLERS`).
        objectives: what to optimise, e.g. ``"val_accuracy:max,params:min"``;
            default ``val_accuracy`` maximised.
        storage: the Optuna storage of its study: None for a new in-memory one, or
            any :class:`optuna.storages.BaseStorage` (:func:`naslab.optuna_storage`
            builds one on a naslab store's database).
        study_name: the Optuna study's name in ``storage`` (default
            ``naslab:standalone``); loaded if it exists there.
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
        ConfigError: a bad sampler option or storage, or several objectives for a
            single-objective sampler (``cmaes``).

    Attributes:
        study: the :class:`optuna.Study` (created or loaded on first use).
    """

    multi_objective = True
    exact_replay = False

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        sampler: str = "tpe",
        objectives: str | Sequence[str | Objective] | None = None,
        storage: optuna.storages.BaseStorage | None = None,
        study_name: str | None = None,
        sampler_options: Mapping[str, Any] | None = None,
        max_retries: int = 100,
    ) -> None:
        check_choice("Optuna sampler", sampler, SAMPLERS)
        self.name = f"optuna-{sampler}"
        super().__init__(space, seed=seed, max_retries=max_retries, objectives=objectives)
        self.sampler_name = sampler
        if sampler in SINGLE_OBJECTIVE and len(self.objectives) > 1:
            raise ConfigError(
                f"{self.name} optimises one objective, but {len(self.objectives)} were given "
                f"({', '.join(map(str, self.objectives))}); use optuna-tpe, optuna-nsga2, "
                "optuna-nsga3, optuna-gp, optuna-qmc or optuna-random")
        self.sampler_options = check_mapping(f"{self.name}: sampler_options", sampler_options)
        if storage is not None and not isinstance(storage, optuna.storages.BaseStorage):
            raise ConfigError(
                f"{self.name}: storage must be an Optuna storage (e.g. from "
                f"naslab.optuna_storage(store)) or None for memory, got {storage!r}; a "
                "naslab Study turns 'memory' or a URL given in searcher options into one")
        self.storage = storage if storage is not None else optuna.storages.InMemoryStorage()
        self.study_name = (optuna_study_name("standalone") if study_name is None
                           else check_str(f"{self.name}: study_name", study_name))
        self.directions: list[str] = [_direction(o) for o in self.objectives]
        self.optuna_space = OptunaSpace(space, self.name)
        self._sampler: optuna.samplers.BaseSampler | None = self.make_sampler()
        self._study: optuna.Study | None = None
        self._pending: dict[str, list[Trial]] = defaultdict(list)  # hash -> in-flight trials
        self._results: dict[str, Observation] = {}  # hash -> latest told observation

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        """A new sampler of this searcher's kind, seed and options."""
        return make_sampler(self.sampler_name, self.seed, self.sampler_options, self.name)

    @property
    def shared(self) -> bool:
        """Whether the Optuna study is kept in a database that other drivers may share
        (not in memory)."""
        return not isinstance(self.storage, optuna.storages.InMemoryStorage)

    @property
    def study(self) -> optuna.Study:
        """The Optuna study (created, or loaded and brought up to date, on first use)."""
        if self._study is None:
            self._study = self._create_study()
            self._sync(self._study)
        return self._study

    def _create_study(self) -> optuna.Study:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = self._sampler or self.make_sampler()
        self._sampler = None  # a sampler serves one study
        try:
            study = optuna.create_study(study_name=self.study_name, storage=self.storage,
                                        sampler=sampler, directions=self.directions,
                                        load_if_exists=True)
        except optuna.exceptions.StorageInternalError as exc:
            raise StorageError(f"{self.name}: cannot open Optuna study {self.study_name!r} "
                               f"in its storage: {exc}") from exc
        have = [d.name.lower() for d in study.directions]
        if have != self.directions:
            raise StudyConflictError(
                f"Optuna study {self.study_name!r} exists with directions {have}, but this "
                f"search's objectives ({', '.join(map(str, self.objectives))}) need "
                f"{self.directions}; resume with the stored objectives, or choose another "
                "study name or storage")
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

    def _result(self, obs: Observation) -> tuple[list[float] | None, TrialState]:
        """What Optuna is told for ``obs``: its value(s), or FAIL."""
        if len(self.objectives) > 1:
            if obs.values is None:
                return None, TrialState.FAIL
            return [float(v) for v in obs.values], TrialState.COMPLETE
        if obs.value is None or math.isnan(obs.value):
            return None, TrialState.FAIL
        return [float(obs.value)], TrialState.COMPLETE

    def _frozen(self, obs: Observation) -> FrozenTrial:
        values, state = self._result(obs)
        return self.optuna_space.frozen(obs.arch, values, state)

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
        if self.shared:  # a shared study: say whose trial it is
            trial.set_user_attr(DRIVER_ATTR, driver_id())
        try:
            arch = self.space.from_decisions(self.optuna_space.suggest(trial))
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
            self.optuna_space.params(arch)  # refuse a foreign architecture before recording it
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
        if self.shared and not self._pending.get(arch.hash):
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
