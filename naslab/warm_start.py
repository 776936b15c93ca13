"""Warm starts: reading other tasks' results from the store for a searcher that asks.

A searcher given ``transfer_from`` (e.g. ``guided-evolution[transfer_from=auto]``)
returns a :class:`~naslab.searchers.prior.PriorRequest` from
:meth:`~naslab.searchers.base.Searcher.prior_request`. Before the study's first
proposal, :func:`prime` reads what it asks for and hands it over with
:meth:`~naslab.searchers.base.Searcher.use_prior`:

- the tasks: the named ones, or (``auto``) every task that studies of the same space
  (same space key) have complete results for, except the study's own task, which
  is never used (naming it is an error);
- per task, the results at the fidelity with the most architectures, one per
  architecture (repeats averaged), optionally only from studies whose name matches
  ``transfer_studies``; at most ``transfer_size`` of them, a random subset drawn with
  a generator seeded by the task key (so every study reading the same store gets the
  same subset);
- each task's values z-scored and turned so that larger is better.
"""

from __future__ import annotations

import logging
import zlib
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


def source_tasks(store: Store, space: SearchSpace, own_task: str,
                 request: PriorRequest) -> list[str]:
    """The task keys to read: the named ones or every other stored one."""
    if request.tasks is None:
        keys = [k for k, _ in store.predictors.task_keys(space.key) if k != own_task]
        if not keys:
            raise ConfigError(
                f"transfer_from=auto: the store holds no complete result of space "
                f"{space.key} on a task other than {own_task}; run searches on other "
                "tasks first, or start cold (no transfer_from)")
        return sorted(keys)
    keys = []
    for name in request.tasks:
        key = task_key_of(space, name)
        if key == own_task:
            raise ConfigError(
                f"transfer_from names {name!r}, the study's own task ({own_task}); a "
                "warm start learns from other tasks only")
        keys.append(key)
    return list(dict.fromkeys(keys))


def load_prior(store: Store, space: SearchSpace, own_task: str,
               request: PriorRequest) -> PriorResults:
    """Other tasks' results as :class:`~naslab.searchers.prior.PriorResults`
    (see the module docstring)."""
    archs: list[Any] = []
    targets: list[np.ndarray] = []
    tasks: list[str] = []
    for key in source_tasks(store, space, own_task, request):
        try:
            data = training_set(store, space, key, request.metric, studies=request.studies)
        except ConfigError:
            if request.tasks is not None:
                raise  # a task named and not there
            continue  # auto: a task without results in the matching studies
        y = request.sign * np.asarray(data.targets, dtype=float)
        keep = np.arange(len(y))
        if len(keep) > request.per_task:
            rng = np.random.default_rng(zlib.crc32(key.encode()))
            keep = np.sort(rng.choice(len(y), size=request.per_task, replace=False))
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


def prime(searcher: Searcher, store: Store, space: SearchSpace, own_task: str) -> bool:
    """Give ``searcher`` the other tasks' results it asks for, if it asks; returns
    whether it did."""
    request = searcher.prior_request()
    if request is None:
        return False
    searcher.use_prior(load_prior(store, space, own_task, request))
    return True
