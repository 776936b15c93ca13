"""Candidate architectures to score: the whole space when it is small enough to
enumerate, else a random sample.

A space is enumerated when its :meth:`~naslab.search_spaces.base.SearchSpace.size`
is known and at most the limit, and its declared decisions have at most that many
combinations too (a space whose ``size()`` counts unique cells may have many more
combinations to walk). Enumeration walks every combination of the declared
decisions (a conditional decision only where its condition holds), builds each with
``from_decisions``, skips those the space refuses (e.g. NAS-Bench-Graph's all-skip
network) and keeps each architecture once (by canonical hash).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from naslab.core.errors import InvalidArchitectureError

__all__ = ["CandidatePool", "candidate_pool", "enumerable", "walk_decisions"]


@dataclass(frozen=True)
class CandidatePool:
    """The candidates, and how they were drawn."""

    archs: list[Any]
    enumerated: bool  # True: every architecture of the space, once each
    drawn: int  # samples drawn, or decision combinations walked


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


def enumerable(space: Any, limit: int) -> int | None:
    """The number of decision combinations to walk to enumerate ``space``, or None if
    its size is unknown or above ``limit``."""
    from naslab.search_spaces.base import count_combinations

    size = space.size()
    if size is None or size > limit:
        return None
    combinations = count_combinations(space.decisions())
    if combinations is None or combinations > limit:
        return None
    return combinations


def candidate_pool(space: Any, wanted: int | None, seed: int, cap: int,
                   start: Callable[[str, int], Callable[[int], None]] | None = None,
                   ) -> CandidatePool:
    """The whole space if it has at most ``wanted`` architectures (``None``: at most
    ``cap``), else ``wanted`` (``None``: 10,000 or ``cap``, the smaller) random
    samples drawn with ``numpy.random.default_rng(seed)``.

    ``start(what, total)`` is called once, before the loop, and returns the function
    that the loop calls with each step's count (to show progress).
    """
    begin = start or _no_progress
    combinations = enumerable(space, cap if wanted is None else min(wanted, cap))
    if combinations is not None:
        step = begin("enumerating the space", combinations)
        return CandidatePool(_enumerate(space, combinations, step), True, combinations)
    count = min(10_000, cap) if wanted is None else wanted
    step = begin("sampling candidates", count)
    rng = np.random.default_rng(seed)
    archs = []
    for _ in range(count):
        archs.append(space.sample(rng))
        step(1)
    return CandidatePool(archs, False, count)


def _no_progress(what: str, total: int) -> Callable[[int], None]:
    return lambda steps: None


def _enumerate(space: Any, combinations: int, step: Callable[[int], None]) -> list[Any]:
    seen: set[str] = set()
    archs = []
    for decisions in walk_decisions(list(space.decisions())):
        step(1)
        try:
            arch = space.from_decisions(decisions)
        except InvalidArchitectureError:
            continue  # a combination the space leaves out
        if arch.hash not in seen:
            seen.add(arch.hash)
            archs.append(arch)
    return archs
