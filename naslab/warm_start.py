"""Warm starts: reading other tasks' results from the store for a searcher that asks.

A searcher given ``transfer_from`` (e.g. ``guided-evolution[transfer_from=auto]``)
returns a :class:`~naslab.searchers.prior.PriorRequest` from
:meth:`~naslab.searchers.base.Searcher.prior_request`. Before the study's first
proposal, :func:`prime` reads what it asks for and hands it over with
:meth:`~naslab.searchers.base.Searcher.use_prior`:

- the tasks: the named ones, or (``auto``) every task that studies of the same space
  (same space key) have complete results for, except the study's own data: a task
  whose key is the study's, or whose data part is (``digits(seed=0)`` in
  ``train-v1(digits(seed=0);sgd,lr=0.1;...)``: the same data set trained with other
  settings), is never used, and naming one is an error;
- only results of trials that finished before the study was created, so that a
  resumed study reads what its first run read and proposes what an uninterrupted
  one would;
- per task, the results at the fidelity with the most architectures, one per
  architecture (repeats averaged), optionally only from studies whose name matches
  ``transfer_studies``; at most ``transfer_size`` of them, a random subset drawn with
  a generator seeded by the task key (so every study reading the same store gets the
  same subset);
- each task's values z-scored and turned so that larger is better.
"""

from __future__ import annotations

import logging
import re
import zlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from naslab.core.errors import ConfigError
from naslab.predictor_store import task_key_of, training_set
from naslab.searchers.prior import PriorRequest, PriorResults

if TYPE_CHECKING:
    from naslab.db.store import Store
    from naslab.search_spaces.base import SearchSpace
    from naslab.searchers.base import Searcher

__all__ = ["load_prior", "prime"]

logger = logging.getLogger(__name__)


#: The most tasks a warm start reads, and the most results in all.
MAX_SOURCE_TASKS = 64
MAX_PRIOR_RESULTS = 200_000
_TRAINED_KEY = re.compile(r"^[A-Za-z0-9_\-]+-v\d+\(([^;]*);")


def data_of(task_key: str) -> str:
    """The data part of a task key: ``digits(seed=0)`` for
    ``train-v1(digits(seed=0);sgd,...)``; the key itself for a table key such as
    ``nasbench_graph:cora`` or any other form."""
    match = _TRAINED_KEY.match(task_key)
    return match.group(1) if match else task_key


def is_own(key: str, own_task: str) -> bool:
    """Whether ``key`` is the study's own task or the same data trained otherwise."""
    return key == own_task or data_of(key) == data_of(own_task)


def source_tasks(store: Store, space: SearchSpace, own_task: str,
                 request: PriorRequest) -> list[str]:
    """The task keys to read: the named ones or every other stored one."""
    if request.tasks is not None and len(request.tasks) > MAX_SOURCE_TASKS:
        raise ConfigError(f"transfer_from names {len(request.tasks)} tasks; at most "
                          f"{MAX_SOURCE_TASKS}")
    if request.tasks is None:
        keys = [k for k, _ in store.predictors.task_keys(space.key)
                if not is_own(k, own_task)][:MAX_SOURCE_TASKS]
        if not keys:
            raise ConfigError(
                f"transfer_from=auto: the store holds no complete result of space "
                f"{space.key} on a task other than {own_task}; run searches on other "
                "tasks first, or start cold (no transfer_from)")
        return sorted(keys)
    keys = []
    for name in request.tasks:
        key = task_key_of(space, name)
        if is_own(key, own_task):
            raise ConfigError(
                f"transfer_from names {name!r}, the study's own task ({own_task}); a "
                "warm start learns from other tasks only")
        keys.append(key)
    return list(dict.fromkeys(keys))


def load_prior(store: Store, space: SearchSpace, own_task: str,
               request: PriorRequest, finished_before: datetime | None = None
               ) -> PriorResults:
    """Other tasks' results as :class:`~naslab.searchers.prior.PriorResults`
    (see the module docstring), from trials finished before ``finished_before``."""
    archs: list[Any] = []
    targets: list[np.ndarray] = []
    tasks: list[str] = []
    for key in source_tasks(store, space, own_task, request):
        try:
            data = training_set(store, space, key, request.metric, studies=request.studies,
                                finished_before=finished_before)
        except ConfigError:
            if request.tasks is not None:
                raise  # a task named and not there
            continue  # auto: a task without results in the matching studies
        y = request.sign * np.asarray(data.targets, dtype=float)
        keep = np.arange(len(y))
        if len(keep) > request.per_task:
            rng = np.random.default_rng(zlib.crc32(key.encode()))
            keep = np.sort(rng.choice(len(y), size=request.per_task, replace=False))
        keep = keep[: max(0, MAX_PRIOR_RESULTS - len(archs))]
        if not len(keep):
            break
        y = y[keep]
        sd = float(y.std())
        archs += [data.archs[i] for i in keep]
        targets.append((y - y.mean()) / (sd if sd > 0 else 1.0))
        tasks += [key] * len(keep)
        logger.info("warm start: %d architectures of task %s", len(keep), key)
    if not targets:
        raise ConfigError(
            f"transfer_from=auto: no study matching {request.studies!r} has complete "
            f"{request.metric} results of space {space.key} on a task other than {own_task}")
    return PriorResults(tuple(archs), np.concatenate(targets), tuple(tasks))


def prime(searcher: Searcher, store: Store, space: SearchSpace, own_task: str,
          created_at: datetime | None = None) -> bool:
    """Give ``searcher`` the other tasks' results it asks for, if it asks (results of
    trials finished before ``created_at``, the study's creation); returns whether it
    did."""
    request = searcher.prior_request()
    if request is None:
        return False
    searcher.use_prior(load_prior(store, space, own_task, request, created_at))
    return True
