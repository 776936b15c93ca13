"""Every architecture of a small search space: walking its decisions.

A space is *enumerable* under a limit when its :meth:`~naslab.search_spaces.base.SearchSpace.size`
is known and at most the limit, and its declared decisions have at most that many
combinations too (a space whose ``size()`` counts unique cells may have many more
combinations to walk). Enumeration walks every combination of the declared decisions
(a conditional decision only where its condition holds), builds each with
``from_decisions``, skips those the space refuses (e.g. NAS-Bench-Graph's all-skip
network) and keeps each architecture once (by canonical hash).

:func:`space_architectures` keeps the last few enumerations per process (by space
key), so that searchers that score a whole space (a guided searcher with
``pool="space"``) and many studies in one process walk a space once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from naslab.core.errors import InvalidArchitectureError
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace, count_combinations

__all__ = ["enumerable", "enumerate_space", "space_architectures", "walk_decisions"]

#: Spaces whose enumeration :func:`space_architectures` keeps per process.
_CACHE_SPACES = 4
_cache: OrderedDict[tuple[str, int], tuple[Architecture, ...]] = OrderedDict()
_lock = threading.Lock()


def walk_decisions(declared: Sequence[Any]) -> Iterator[dict[str, Any]]:
    """Every valid combination of the declared decisions' values, in declaration
    order (a decision whose condition does not hold is left out)."""

    def walk(index: int, chosen: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if index == len(declared):
            yield dict(chosen)
            return
        d = declared[index]
        if d.condition is not None and not d.condition.holds(chosen):
            yield from walk(index + 1, chosen)
            return
        for value in d.values:
            chosen[d.name] = value
            yield from walk(index + 1, chosen)
        del chosen[d.name]

    yield from walk(0, {})


def enumerable(space: SearchSpace, limit: int) -> int | None:
    """The number of decision combinations to walk to enumerate ``space``, or None if
    its size is unknown or above ``limit``."""
    size = space.size()
    if size is None or size > limit:
        return None
    combinations = count_combinations(space.decisions())
    if combinations is None or combinations > limit:
        return None
    return combinations


def enumerate_space(space: SearchSpace, step: Callable[[int], None] | None = None
                    ) -> list[Architecture]:
    """Every architecture of ``space`` once, in decision-walk order (check
    :func:`enumerable` first: this walks every combination). ``step(1)`` is called
    per combination walked."""
    seen: set[str] = set()
    archs = []
    for decisions in walk_decisions(list(space.decisions())):
        if step is not None:
            step(1)
        try:
            arch = space.from_decisions(decisions)
        except InvalidArchitectureError:
            continue  # a combination the space leaves out
        if arch.hash not in seen:
            seen.add(arch.hash)
            archs.append(arch)
    return archs


def space_architectures(space: SearchSpace, limit: int) -> tuple[Architecture, ...] | None:
    """Every architecture of ``space`` (see :func:`enumerate_space`), or None when it
    is not enumerable under ``limit``; remembered per process by the space's key."""
    if enumerable(space, limit) is None:
        return None
    key = (space.key, limit)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    archs = tuple(enumerate_space(space))
    with _lock:
        _cache[key] = archs
        while len(_cache) > _CACHE_SPACES:
            _cache.popitem(last=False)
    return archs
