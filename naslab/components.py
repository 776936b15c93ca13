"""Turning names (from the CLI, a config or the Python API) into a study's parts.

Every function accepts a ready object or a name plus options; names are looked up
in the registries of :mod:`naslab.core.registry` (spaces, table benchmarks, tasks,
searchers), whose errors list the choices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from naslab.core.errors import ConfigError
from naslab.core.registry import build
from naslab.search_spaces.base import SearchSpace
from naslab.search_spaces.registry import SPACES
from naslab.searchers.base import Searcher
from naslab.searchers.registry import SEARCHERS, check_searcher_options, get_searcher
from naslab.workers.evaluator import TABLE_BENCHMARKS, Evaluator, TableEvaluator

__all__ = ["SpaceChangedWarning", "default_task", "resolve", "resolve_searcher", "task_choices",
           "warn_if_space_changed"]


def space_from_reference(ref: str, options: Mapping[str, Any]) -> SearchSpace:
    """The space that reference ``ref`` (``file.py:Class`` or ``module:Class``) names,
    built with ``options``: a SearchSpace subclass (or a ready instance). Anything
    else is refused before it is called."""
    from naslab.core.references import load_reference

    factory = load_reference("space", ref)
    if isinstance(factory, SearchSpace):
        if options:
            raise ConfigError(f"space {ref!r} is an instance; --space-opt needs a class")
        return factory
    if not (isinstance(factory, type) and issubclass(factory, SearchSpace)):
        raise ConfigError(f"space {ref!r} is {type(factory).__name__} "
                          f"{getattr(factory, '__qualname__', '')!r}, not a SearchSpace class "
                          "(subclass naslab.SearchSpace)")
    return build("space", ref, factory, options)  # type: ignore[no-any-return]


def task_from_reference(ref: str, options: Mapping[str, Any]) -> Any:
    """The task (or evaluator) that ``ref`` names: a naslab Task or Evaluator (then no
    options), a subclass of one, or a Python function returning one, called with
    ``options``. Anything else (a built-in function such as ``os.abort``, a value) is
    refused before it is called."""
    import inspect

    from naslab.core.references import load_reference
    from naslab.workers.task import Task

    kinds = (Task, Evaluator)
    factory = load_reference("task", ref)
    if isinstance(factory, kinds):
        if options:
            raise ConfigError(f"task {ref!r} is a ready {type(factory).__name__}; --task-opt "
                              "needs a class or a function")
        return factory
    if not ((isinstance(factory, type) and issubclass(factory, kinds))
            or inspect.isfunction(factory)):
        raise ConfigError(f"task {ref!r} is {type(factory).__name__} "
                          f"{getattr(factory, '__qualname__', '')!r}; a task reference names a "
                          "naslab Task or Evaluator, a subclass of one, or a Python function "
                          "returning one")
    made = build("task", ref, factory, options)
    if not isinstance(made, kinds):
        raise ConfigError(f"task {ref!r} gave a {type(made).__name__}, not a naslab Task or "
                          "Evaluator")
    return made


def default_task(space_name: str) -> str:
    """The task a built-in space uses when none is named (``digits`` otherwise)."""
    if space_name in SPACES:
        return str(SPACES.entry(space_name).info.get("default_task", "digits"))
    return "digits"


def task_choices(space_name: str) -> list[str]:
    """The task names accepted with space ``space_name``: its table's data sets for a
    table benchmark, else the registered training tasks of the kind of input its
    networks take (``inputs`` in the registries' info: ``images`` or ``graphs``)."""
    if space_name in TABLE_BENCHMARKS:
        return TABLE_BENCHMARKS.load(space_name).tasks()  # type: ignore[attr-defined]
    from naslab.workers.task import TASKS

    if space_name not in SPACES:
        return list(TASKS)
    inputs = SPACES.entry(space_name).info.get("inputs", "images")
    return [t for t in TASKS if TASKS.entry(t).info.get("inputs", "images") == inputs]


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
    task_options: Mapping[str, Any] | None = None,
) -> tuple[SearchSpace, Evaluator]:
    """The search space and the evaluator for ``space`` and ``task``.

    ``space`` is a registered name, a reference (``file.py:Class`` or
    ``module:Class``, see :mod:`naslab.core.references`) built with
    ``space_options``, or a :class:`~naslab.search_spaces.base.SearchSpace`.
    ``task`` may be a name (a training task such as ``digits``, built with
    ``task_options``; for a table benchmark's space, one of its data sets), a
    reference (``module:function`` returning a task or evaluator, called with
    ``task_options``), a :class:`~naslab.workers.task.Task` (trained by its
    ``make_evaluator`` if it has one, else by
    :class:`~naslab.workers.training.TrainingEvaluator`), an
    :class:`~naslab.workers.evaluator.Evaluator`, or None for the space's default.
    """
    from naslab.core.references import is_reference

    space_options = dict(space_options or {})
    evaluator_options = dict(evaluator_options or {})
    task_options = dict(task_options or {})
    if is_reference(space):
        space = space_from_reference(space, space_options)  # type: ignore[arg-type]
    space_name = space.name if isinstance(space, SearchSpace) else space
    if not isinstance(space, SearchSpace):
        SPACES.entry(space)  # an unknown name lists the choices
    if task is None:
        task = default_task(space_name)
    if space_name in TABLE_BENCHMARKS and isinstance(task, str) and not is_reference(task):
        if task_options:
            raise ConfigError(f"the {space_name} table takes no task options")
        return _table(space, space_name, task, space_options, evaluator_options)
    if not isinstance(space, SearchSpace):
        space = SPACES.create(space_name, **space_options)
    space.check_definition()  # a broken space is refused before any study is stored
    _check_task_name(space_name, task)
    evaluator = _evaluator(task, task_options, evaluator_options)
    check_fits(space, evaluator)
    return space, evaluator


def _check_task_name(space_name: str, task: Any) -> None:
    """Refuse an unknown task name, listing the tasks that suit the space."""
    from naslab.core.references import is_reference
    from naslab.workers.task import TASKS

    if isinstance(task, str) and not is_reference(task) and task not in TASKS:
        from naslab.core.errors import UnknownNameError

        raise UnknownNameError(f"task for space {space_name}", task,
                               task_choices(space_name) or list(TASKS))


def check_fits(space: SearchSpace, evaluator: Evaluator) -> None:
    """Refuse a space whose networks cannot take the evaluator's task (an image space
    on a graph task, a GNN space on images), before any study is stored: one probe
    architecture is built for the task (no training)."""
    import numpy as np

    from naslab.core.errors import InvalidArchitectureError

    task = getattr(evaluator, "task", None)
    if task is None or not hasattr(task, "input_shape"):
        return  # a table, or an evaluator of the user's own: nothing to build for
    try:
        space.build(space.sample(np.random.default_rng(0)), task)
    except (InvalidArchitectureError, ConfigError) as exc:
        raise ConfigError(f"space {space.name!r} cannot build networks for task "
                          f"{getattr(task, 'name', '?')!r}: {exc}") from exc


def _evaluator(task: Any, task_options: dict[str, Any],
               evaluator_options: dict[str, Any]) -> Evaluator:
    """The evaluator of ``task`` (a name, a reference, a Task or an Evaluator)."""
    from naslab.core.references import is_reference
    from naslab.workers.task import Task, get_task

    if isinstance(task, str):
        task = (task_from_reference(task, task_options) if is_reference(task)
                else get_task(task, **task_options))
    elif task_options:
        raise ConfigError("task options apply to a task given by name or reference")
    if isinstance(task, Evaluator):
        if evaluator_options:
            raise ConfigError("training options (--train-opt) apply to a task, not to a "
                              f"ready evaluator ({type(task).__name__})")
        return task
    if not isinstance(task, Task):
        raise ConfigError(f"task must be a task name, a naslab Task or an Evaluator, got "
                          f"{type(task).__name__}")
    make = getattr(task, "make_evaluator", None)
    try:
        if callable(make):
            return make(**evaluator_options)  # type: ignore[no-any-return]
        from naslab.workers.training import TrainingEvaluator

        return TrainingEvaluator(task, **evaluator_options)
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
