"""Candidate architectures to score: the whole space when it is small enough to
enumerate (:mod:`naslab.search_spaces.enumeration`), else a random sample."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from naslab.search_spaces.enumeration import enumerable, enumerate_space, walk_decisions

__all__ = ["CandidatePool", "candidate_pool", "enumerable", "walk_decisions"]


@dataclass(frozen=True)
class CandidatePool:
    """The candidates, and how they were drawn."""

    archs: list[Any]
    enumerated: bool  # True: every architecture of the space, once each
    drawn: int  # samples drawn, or decision combinations walked


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
        return CandidatePool(enumerate_space(space, step), True, combinations)
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
