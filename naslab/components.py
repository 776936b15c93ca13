"""Turning names (from the CLI, a config or the Python API) into components.

Every function here accepts either a ready object or a name plus options, and refuses
an unknown name with a message that lists the choices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from naslab.core.errors import ConfigError, UnknownNameError
from naslab.search_spaces.base import SearchSpace
from naslab.search_spaces.registry import SPACES, get_space
from naslab.searchers.base import Searcher
from naslab.searchers.registry import SEARCHERS, get_searcher
from naslab.workers.evaluator import Evaluator

#: Spaces whose tasks are the data sets of a benchmark table, not trained tasks.
TABLE_SPACES = ("nasbench_graph",)

#: The task each built-in space uses when none is named.
DEFAULT_TASKS = {"nb201": "digits", "chain": "digits", "nasbench_graph": "cora"}

#: Epochs used when none is given: trained tasks train this long; table benchmarks
#: answer at the benchmark's full fidelity.
DEFAULT_EPOCHS = 10


def table_datasets() -> list[str]:
    """The data sets of the NAS-Bench-Graph tables."""
    from naslab.search_spaces.nasbench_graph import DATASETS

    return list(DATASETS)


def task_choices(space_name: str) -> list[str]:
    """The task names accepted with a built-in space."""
    if space_name in TABLE_SPACES:
        return table_datasets()
    from naslab.workers.task import TASKS

    return list(TASKS)


def task_name(evaluator: Evaluator) -> str:
    """A short name of the evaluator's task (``digits``, ``cora``, ...)."""
    task = getattr(evaluator, "task", None)
    if task is not None and getattr(task, "name", None):
        return str(task.name)
    return str(getattr(evaluator, "dataset", None) or evaluator.key.split(":")[-1])


def _call(kind: str, name: str, factory: Any, options: Mapping[str, Any]) -> Any:
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"bad options for {kind} {name!r}: {exc}") from exc
    except ValueError as exc:
        if isinstance(exc, ConfigError | UnknownNameError):
            raise
        raise ConfigError(f"bad options for {kind} {name!r}: {exc}") from exc


def resolve(
    space: str | SearchSpace,
    task: Any = None,
    *,
    space_options: Mapping[str, Any] | None = None,
    evaluator_options: Mapping[str, Any] | None = None,
) -> tuple[SearchSpace, Evaluator]:
    """The search space and the evaluator for ``space`` and ``task``.

    ``task`` may be a name (``digits``; for ``nasbench_graph`` one of its data sets),
    a :class:`~naslab.workers.task.Task` (trained with
    :class:`~naslab.workers.training.TrainingEvaluator`), an
    :class:`~naslab.workers.evaluator.Evaluator`, or None for the space's default.
    """
    space_options = dict(space_options or {})
    evaluator_options = dict(evaluator_options or {})
    space_name = space.name if isinstance(space, SearchSpace) else space
    if not isinstance(space, SearchSpace) and space not in SPACES:
        raise UnknownNameError("search space", str(space), SPACES)
    if task is None:
        task = DEFAULT_TASKS.get(space_name, "digits")

    if space_name in TABLE_SPACES and isinstance(task, str):
        from naslab.workers.benchmark_table import NasBenchGraphEvaluator

        if task not in table_datasets():
            raise UnknownNameError(f"task for space {space_name}", task, table_datasets())
        if not isinstance(space, SearchSpace):
            space_options.setdefault("dataset", task)
            space = _call("search space", space_name, lambda **kw: get_space(space_name, **kw),
                          space_options)
        evaluator = _call("evaluator", task, NasBenchGraphEvaluator,
                          {"dataset": task, **evaluator_options})
        return space, evaluator

    if not isinstance(space, SearchSpace):
        space = _call("search space", space_name, lambda **kw: get_space(space_name, **kw),
                      space_options)
    if isinstance(task, Evaluator):
        return space, task
    from naslab.workers.task import Task, get_task
    from naslab.workers.training import TrainingEvaluator

    if isinstance(task, str):
        task = get_task(task)
    if not isinstance(task, Task):
        raise ConfigError(
            f"task must be a task name, a naslab Task or an Evaluator, got {type(task).__name__}"
        )
    evaluator = _call("evaluator", task.name, lambda **kw: TrainingEvaluator(task, **kw),
                      evaluator_options)
    return space, evaluator


def resolve_searcher(
    searcher: str | Searcher,
    space: SearchSpace,
    seed: int,
    options: Mapping[str, Any] | None = None,
) -> Searcher:
    """A searcher by name (with ``options``) or the given instance."""
    if isinstance(searcher, Searcher):
        return searcher
    if searcher not in SEARCHERS:
        raise UnknownNameError("searcher", str(searcher), SEARCHERS)
    return _call("searcher", searcher,
                 lambda **kw: get_searcher(searcher, space, seed=seed, **kw), options or {})
