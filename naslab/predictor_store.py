"""Predictors and the store (the application joins the two, which know nothing of
each other): training sets from past results, cached proxies, saved versions.

* :func:`training_set` collects every complete result of a space on a task from the
  store, across studies, one entry per architecture (repeated evaluations, e.g.
  with other seeds, are averaged), at one fidelity (training epochs).
* :func:`fit_from_store` fits a predictor on that training set.
* :func:`proxies_for` returns zero-cost proxies of architectures on a task,
  computing only those the store does not hold yet and storing them
  (``naslab_proxies``), so each is computed once per architecture and task.
* :func:`save_to_store` / :func:`load_from_store` keep fitted predictors in
  ``naslab_predictors``, versioned by name, as safetensors bytes (arrays plus a JSON
  header) that load without running code from the database.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import numpy as np

from naslab.core.errors import ConfigError
from naslab.db.derived import NewPredictor, ProxyKey
from naslab.predictors.base import Predictor, check_archs, predictor_from_bytes
from naslab.search_spaces.architecture import Architecture

if TYPE_CHECKING:
    from naslab.db.records import PredictorRecord
    from naslab.db.store import Store
    from naslab.search_spaces.base import SearchSpace
    from naslab.workers.task import Task

__all__ = [
    "TrainingSet",
    "fit_from_store",
    "load_from_store",
    "proxies_for",
    "save_to_store",
    "task_key_of",
    "training_set",
]


@dataclass
class TrainingSet:
    """Architectures and their targets, as collected from the store.

    Attributes:
        archs: one architecture per distinct canonical hash.
        targets: the mean stored value of the metric for each.
        fidelity: the training epochs the results were taken at.
        metric: the metric (``val_accuracy`` by default).
        studies: the studies the results came from.
        n_results: stored results used (before averaging repeats).
        params: parameter counts (NaN where unknown).
        flops: FLOPs (NaN where unknown).
        fidelities: every stored fidelity with its number of architectures.
    """

    archs: list[Architecture]
    targets: np.ndarray
    fidelity: int
    metric: str
    studies: list[str]
    n_results: int
    params: np.ndarray
    flops: np.ndarray
    fidelities: dict[int, int] = field(default_factory=dict)


def task_key_of(
    space: SearchSpace, task: Any, evaluator_options: Mapping[str, Any] | None = None
) -> str:
    """The task key under which results of ``space`` on ``task`` are stored.

    ``task`` is a task key (``train-v1(...)``, or ``<table>:<data set>`` such as
    ``nasbench_graph:cora``: returned as is), or a task name,
    :class:`~naslab.workers.task.Task` or evaluator, resolved as ``naslab search``
    does (with ``evaluator_options`` such as ``lr``).
    """
    if isinstance(task, str) and (task.startswith("train-") or ":" in task):
        return task
    from naslab.components import resolve

    return resolve(space, task, evaluator_options=evaluator_options)[1].key


def training_set(
    store: Store,
    space: SearchSpace,
    task_key: Any,
    metric: str = "val_accuracy",
    fidelity: int | None = None,
    studies: str | None = None,
    finished_before: datetime | None = None,
) -> TrainingSet:
    """Every complete result of ``space`` on a task in the store, one per architecture.

    ``task_key`` is a stored task key or anything :func:`task_key_of` resolves
    (``"digits"``, a Task, an evaluator) with default training settings.

    ``fidelity`` picks the training epochs; by default the fidelity with the most
    architectures (the highest among equals). Results reused from another trial
    are not counted twice; NaN values are left out. ``studies`` (a glob such as
    ``"bench-*"``) keeps only the results of studies whose name matches it, and
    ``finished_before`` only those of trials finished before that time.

    Raises:
        ConfigError: the store holds no such result (the message lists the task keys
            it does hold for this space), or none at ``fidelity``.
    """
    task_key = task_key_of(space, task_key)
    rows = [
        r for r in store.predictors.training_results(space.key, task_key, metric,
                                                     finished_before)
        if np.isfinite(r.value) and (studies is None or fnmatchcase(r.study, studies))
    ]
    if not rows:
        known = store.predictors.task_keys(space.key)
        hint = (
            "; tasks with complete results for this space: "
            + ", ".join(f"{k} ({n} trials)" for k, n in known)
            if known
            else "; the store has no complete trial of this space yet (run a search first)"
        )
        where = "" if studies is None else f" in studies matching {studies!r}"
        raise ConfigError(
            f"no complete {metric} results of space {space.key} on task {task_key}{where}"
            f"{hint}"
        )
    per_fidelity: dict[int, set[str]] = defaultdict(set)
    for r in rows:
        per_fidelity[r.fidelity].add(r.arch_hash)
    fidelities = {f: len(h) for f, h in sorted(per_fidelity.items())}
    if fidelity is None:
        fidelity = max(fidelities, key=lambda f: (fidelities[f], f))
    elif fidelity not in fidelities:
        raise ConfigError(
            f"no results at fidelity {fidelity}; stored fidelities (epochs: architectures): "
            + ", ".join(f"{f}: {n}" for f, n in fidelities.items())
        )
    chosen = [r for r in rows if r.fidelity == fidelity]
    values: dict[str, list[float]] = defaultdict(list)
    first: dict[str, Any] = {}
    for r in chosen:
        values[r.arch_hash].append(r.value)
        first.setdefault(r.arch_hash, r)
    archs = [first[h].architecture() for h in values]
    targets = np.array([float(np.mean(v)) for v in values.values()])
    params = np.array(
        [np.nan if first[h].params is None else float(first[h].params) for h in values]
    )
    flops = np.array([np.nan if first[h].flops is None else float(first[h].flops) for h in values])
    studies = sorted(Counter(r.study for r in chosen))
    return TrainingSet(
        archs=archs,
        targets=targets,
        fidelity=int(fidelity),
        metric=metric,
        studies=studies,
        n_results=len(chosen),
        params=params,
        flops=flops,
        fidelities=fidelities,
    )


def proxies_for(
    store: Store,
    space: SearchSpace,
    archs: Sequence[Architecture],
    task: Task,
    names: Sequence[str] | None = None,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Zero-cost proxies of ``archs`` on ``task``: ``{name: values}``.

    Values the store holds (same space, architecture, task key, batch size and
    seed) are read; the others are computed on the real networks
    (:func:`naslab.predictors.proxies.architecture_proxies`) and stored first.
    """
    from naslab.predictors.proxies import PROXIES, architecture_proxies

    archs = check_archs(archs)
    wanted = list(PROXIES if names is None else names)
    key = ProxyKey(space.key, task.key, batch_size, seed)
    stored = store.predictors.proxies(key, [a.hash for a in archs])
    out = {name: np.empty(len(archs)) for name in wanted}
    for i, arch in enumerate(archs):
        have = stored.get(arch.hash, {})
        missing = [n for n in wanted if n not in have]
        if missing:
            computed = architecture_proxies(space, arch, task, missing, batch_size, seed)
            store.predictors.put_proxies(key, arch, computed)
            have = {**have, **computed}
            stored[arch.hash] = have
        for name in wanted:
            out[name][i] = have[name]
    return out


def fit_from_store(
    predictor: Predictor,
    store: Store,
    space: SearchSpace,
    task_key: Any,
    metric: str = "val_accuracy",
    fidelity: int | None = None,
    features: Mapping[str, Sequence[float]] | None = None,
) -> TrainingSet:
    """Fit ``predictor`` on :func:`training_set` (``features`` aligned with its archs).

    Returns the training set used; the predictor is fitted in place.
    """
    data = training_set(store, space, task_key, metric, fidelity)
    if len(data.archs) < 2:
        raise ConfigError(
            f"only {len(data.archs)} architecture has results at fidelity {data.fidelity}; "
            "a predictor needs at least 2"
        )
    predictor.fit(data.archs, data.targets, features)
    return data


def save_to_store(
    store: Store,
    name: str,
    predictor: Predictor,
    *,
    space: SearchSpace | None = None,
    task_key: str | None = None,
    target: str | None = None,
    summary: Mapping[str, Any] | None = None,
) -> int:
    """Save a fitted predictor as the next version of ``name``; returns the version."""
    return store.predictors.save(NewPredictor(
        name=name, data=predictor.to_bytes(), kind=predictor.kind,
        n_train=int(predictor.n_train_),  # type: ignore[attr-defined]
        params=predictor.get_params(), summary=dict(summary or {}),
        space=None if space is None else space.name,
        space_key=None if space is None else space.key, task_key=task_key, target=target))


def load_from_store(
    store: Store, name: str, version: int | None = None
) -> tuple[Predictor, PredictorRecord]:
    """A saved predictor (``version``, or the latest) and its record."""
    record = store.predictors.load(name, version)
    return predictor_from_bytes(record.data), record
