"""Warm starts: results of *other* tasks that a searcher learns from before its first
proposal.

A searcher that can use them says what it wants with
:meth:`~naslab.searchers.base.Searcher.prior_request` (a :class:`PriorRequest`:
which tasks, how many architectures of each, which metric); the application reads
them from the store (:func:`naslab.warm_start.load_prior`) and hands them over with
:meth:`~naslab.searchers.base.Searcher.use_prior` as :class:`PriorResults`. The
searcher never reads the store itself. The study's own task is never among them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from naslab.core.errors import ConfigError
from naslab.search_spaces.architecture import Architecture

__all__ = ["MAX_TASK_NAMES", "PriorRequest", "PriorResults", "parse_transfer_from"]

#: The most task names ``transfer_from`` may give.
MAX_TASK_NAMES = 64


@dataclass(frozen=True)
class PriorRequest:
    """What a searcher wants to learn from before its first proposal.

    Attributes:
        tasks: task names or keys to read; None: every task of the space in the store
            except the study's own.
        per_task: at most this many architectures of each task (a seeded random
            subset of those stored).
        studies: a glob (``fnmatch``) on study names whose results count; None: all.
        metric: the metric to read (the searcher's objective).
        sign: +1 when larger values are better, -1 when smaller are.
    """

    tasks: tuple[str, ...] | None
    per_task: int
    studies: str | None
    metric: str
    sign: float


@dataclass(frozen=True)
class PriorResults:
    """Results of other tasks: one entry per (task, architecture).

    Attributes:
        archs: the architectures.
        targets: their metric, z-scored within each task and turned so that larger
            is better (tasks' scales do not mix).
        tasks: the task key of each entry.
    """

    archs: tuple[Architecture, ...]
    targets: np.ndarray
    tasks: tuple[str, ...]

    def __post_init__(self) -> None:
        targets = np.asarray(self.targets, dtype=np.float64).reshape(-1)
        if not (len(self.archs) == targets.shape[0] == len(self.tasks)):
            raise ConfigError(
                f"prior results need one target and task per architecture; got "
                f"{len(self.archs)} architectures, {targets.shape[0]} targets and "
                f"{len(self.tasks)} tasks")
        if len(self.archs) < 2:
            raise ConfigError(
                f"a warm start needs results of at least 2 architectures on other tasks; "
                f"got {len(self.archs)}")
        if not np.all(np.isfinite(targets)):
            raise ConfigError("prior results must be finite numbers")
        object.__setattr__(self, "targets", targets)

    def digest(self) -> str:
        """A SHA-256 of the entries (architectures, targets, tasks), to cache on."""
        h = hashlib.sha256()
        for arch, task in zip(self.archs, self.tasks):
            h.update(arch.hash.encode())
            h.update(b"\0" + task.encode() + b"\0")
        h.update(np.ascontiguousarray(self.targets).tobytes())
        return h.hexdigest()

    def best(self, k: int) -> list[Architecture]:
        """The ``k`` architectures with the highest mean target over the tasks that
        measured them (each once)."""
        sums: dict[str, list[float]] = {}
        first: dict[str, Architecture] = {}
        for arch, y in zip(self.archs, self.targets):
            sums.setdefault(arch.hash, []).append(float(y))
            first.setdefault(arch.hash, arch)
        order = sorted(sums, key=lambda h: (-float(np.mean(sums[h])), h))
        return [first[h] for h in order[:k]]


def parse_transfer_from(who: str, value: object) -> tuple[str, ...] | None | bool:
    """``transfer_from`` as given to a searcher: None (no warm start), ``"auto"``
    (every other task in the store), or task names (a comma-separated string or a
    list of strings). Returns False, True or the names."""
    if value is None:
        return False
    if value == "auto":
        return True
    if isinstance(value, str):
        names: Sequence[object] = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)):
        names = list(value)
    else:
        raise ConfigError(
            f"{who}: transfer_from must be 'auto' or task names (e.g. 'citeseer,pubmed'); "
            f"got {type(value).__name__}")
    if len(names) > MAX_TASK_NAMES:
        raise ConfigError(f"{who}: transfer_from names {len(names)} tasks; at most "
                          f"{MAX_TASK_NAMES}")
    out = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{who}: transfer_from names tasks; {name!r} is not a task name")
        if len(name) > 200 or any(not c.isprintable() for c in name):
            raise ConfigError(f"{who}: transfer_from: {name[:40]!r} is not a task name "
                              "(printable, at most 200 characters)")
        out.append(name.strip())
    if not out:
        raise ConfigError(f"{who}: transfer_from names no task")
    return tuple(dict.fromkeys(out))
