"""``naslab spaces``: every registered search space with its size, parameters and
tasks, then the searchers."""

from __future__ import annotations

import inspect
from typing import Any

from rich.table import Table

from naslab.cli_common import console, fmt

__all__ = ["space_rows", "spaces"]


def _parameters(factory: Any) -> str:
    """``name=default`` for each keyword parameter of a space's constructor."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return "?"
    return ", ".join(
        p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
        for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def _size(name: str) -> str:
    """The default instance's :meth:`~naslab.search_spaces.base.SearchSpace.size`
    (``-`` where unknown), or why the space could not be built."""
    from naslab.search_spaces.registry import SPACES

    try:
        size = SPACES.create(name).size()
    except Exception as exc:  # noqa: BLE001 - a user's registered space may fail
        return f"(unavailable: {type(exc).__name__})"
    return "-" if size is None else f"{size:,}"


def space_rows() -> list[dict[str, str]]:
    """One row per registered space: name, size (decision combinations of the
    default instance), parameters, default task, tasks and what it follows."""
    from naslab.components import default_task, task_choices
    from naslab.search_spaces.registry import SPACES

    rows = []
    for name in SPACES:
        entry = SPACES.entry(name)
        try:
            params = _parameters(entry.load())
        except ImportError as exc:
            params = f"(cannot import: {exc})"
        rows.append({"space": name, "size": _size(name), "parameters": params,
                     "default task": default_task(name),
                     "tasks": ", ".join(task_choices(name)),
                     "follows": str(entry.info.get("follows", ""))})
    return rows


def spaces() -> None:
    """List the search spaces (size, parameters, tasks) and the searchers. Your own
    space runs with --space path/to/file.py:Class (options: --space-opt KEY=VALUE)."""
    from naslab.searchers.registry import SEARCHERS

    rows = space_rows()
    table = Table(*rows[0].keys(), title="search spaces (size: decision combinations of "
                  "the default parameters)")
    for row in rows:
        table.add_row(*(fmt(v) for v in row.values()))
    console.print(table)
    console.print("searchers: " + ", ".join(SEARCHERS))
    console.print("your own: --space path/to/file.py:Class or package.module:Class "
                  "(--space-opt KEY=VALUE), --task module:function (--task-opt KEY=VALUE)")
