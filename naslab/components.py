"""Turning names (from the CLI, a config or the Python API) into a study's parts.

Every function accepts a ready object or a name plus options; names are looked up
in the registries of :mod:`naslab.core.registry` (spaces, table benchmarks, tasks,
searchers), whose errors list the choices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from naslab.core.errors import ConfigError
from naslab.search_spaces.base import SearchSpace
from naslab.search_spaces.registry import SPACES
from naslab.searchers.base import Searcher
from naslab.searchers.registry import SEARCHERS, check_searcher_options, get_searcher
from naslab.workers.evaluator import TABLE_BENCHMARKS, Evaluator, TableEvaluator

__all__ = ["SpaceChangedWarning", "default_task", "resolve", "resolve_searcher", "task_choices",
           "warn_if_space_changed"]


def default_task(space_name: str) -> str:
    """The task a built-in space uses when none is named (``digits`` otherwise)."""
    if space_name in SPACES:
        return str(SPACES.entry(space_name).info.get("default_task", "digits"))
    return "digits"


def task_choices(space_name: str) -> list[str]:
    """The task names accepted with space ``space_name``: its table's data sets for a
    table benchmark, else the registered training tasks."""
    if space_name in TABLE_BENCHMARKS:
        return TABLE_BENCHMARKS.load(space_name).tasks()  # type: ignore[attr-defined]
    from naslab.workers.task import TASKS

    return list(TASKS)


def _table(space: str | SearchSpace, space_name: str, task: str,
           space_options: dict[str, Any], evaluator_options: dict[str, Any]
           ) -> tuple[SearchSpace, Evaluator]:
    """The space and the table evaluator of a table benchmark's ``task``."""
    cls: type[TableEvaluator] = TABLE_BENCHMARKS.load(space_name)  # type: ignore[assignment]
    if task not in cls.tasks():
        from naslab.core.errors import UnknownNameError

        raise UnknownNameError(f"task for space {space_name}", task, cls.tasks())
    if not isinstance(space, SearchSpace):
        space = SPACES.create(space_name, **{**cls.space_options(task), **space_options})
    space.check_definition()
    try:
        evaluator = cls.for_task(task, **evaluator_options)
    except TypeError as exc:
        raise ConfigError(f"bad options for the {space_name} table of {task!r}: {exc}") from exc
    return space, evaluator


def resolve(
    space: str | SearchSpace,
    task: Any = None,
    *,
    space_options: Mapping[str, Any] | None = None,
    evaluator_options: Mapping[str, Any] | None = None,
) -> tuple[SearchSpace, Evaluator]:
    """The search space and the evaluator for ``space`` and ``task``.

    ``task`` may be a name (a training task such as ``digits``; for a table
    benchmark's space, one of its data sets), a :class:`~naslab.workers.task.Task`
    (trained with :class:`~naslab.workers.training.TrainingEvaluator`), an
    :class:`~naslab.workers.evaluator.Evaluator`, or None for the space's default.
    """
    space_options = dict(space_options or {})
    evaluator_options = dict(evaluator_options or {})
    space_name = space.name if isinstance(space, SearchSpace) else space
    if not isinstance(space, SearchSpace):
        SPACES.entry(space)  # an unknown name lists the choices
    if task is None:
        task = default_task(space_name)
    if space_name in TABLE_BENCHMARKS and isinstance(task, str):
        return _table(space, space_name, task, space_options, evaluator_options)
    if not isinstance(space, SearchSpace):
        space = SPACES.create(space_name, **space_options)
    space.check_definition()  # a broken space is refused before any study is stored
    if isinstance(task, Evaluator):
        return space, task
    from naslab.workers.task import Task, get_task
    from naslab.workers.training import TrainingEvaluator

    if isinstance(task, str):
        task = get_task(task)
    if not isinstance(task, Task):
        raise ConfigError(f"task must be a task name, a naslab Task or an Evaluator, got "
                          f"{type(task).__name__}")
    try:
        return space, TrainingEvaluator(task, **evaluator_options)
    except TypeError as exc:
        raise ConfigError(f"bad options for evaluator {task.name!r}: {exc}") from exc


def resolve_searcher(
    searcher: str | Searcher,
    space: SearchSpace,
    seed: int,
    options: Mapping[str, Any] | None = None,
) -> Searcher:
    """A searcher by name (with ``options``) or the given instance."""
    if isinstance(searcher, Searcher):
        return searcher
    SEARCHERS.entry(searcher)  # an unknown name lists the choices
    return get_searcher(searcher, space, seed=seed, **check_searcher_options(options))


def keeps_optuna_study(searcher: str | Searcher) -> bool:
    """Whether a searcher given by name keeps an Optuna study (then the application
    gives it an Optuna storage)."""
    return isinstance(searcher, str) and bool(
        SEARCHERS.entry(searcher).info.get("optuna_study"))


class SpaceChangedWarning(UserWarning):
    """A space's definition changed (a new fingerprint) but its version did not."""


def warn_if_space_changed(store: Any, space: SearchSpace) -> None:
    """Warn (:class:`SpaceChangedWarning`) when ``store`` holds studies of a space with
    ``space``'s name, version and config but another fingerprint: the definition was
    edited without bumping :attr:`~naslab.search_spaces.base.SearchSpace.version`.
    Its results are not reused (the keys differ); the warning says so."""
    key = space.key
    prefix, sep, _ = key.rpartition("-fp")
    if not sep:
        return  # a built-in space: no fingerprint
    others = sorted({info.space_key for info in (
        store.studies.get(s.name) for s in store.studies.summaries() if s.space == space.name)
        if info is not None and info.space_key != key
        and info.space_key.rpartition("-fp")[0] == prefix})
    if others:
        import warnings

        version = "no version" if space.version is None else f"version {space.version!r}"
        warnings.warn(
            f"space {space.name!r} ({version}) now declares or builds something else than "
            f"in the stored studies of key {', '.join(others)}; their results are not reused. "
            "Set or bump the space's `version` attribute when you edit it.",
            SpaceChangedWarning, stacklevel=3)
