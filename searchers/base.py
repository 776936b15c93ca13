"""The ask/tell searcher interface.

A searcher proposes architectures (:meth:`Searcher.ask`) and learns from their
results (:meth:`Searcher.tell`). Its state is a function of its seed and the
sequence of told results, so a resumed search rebuilds it by replaying the store's
history: no pickles. Randomness is drawn from a generator seeded with
``(seed, number of proposals so far)``, so a resumed search proposes what an
uninterrupted one would have.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace


class Searcher(ABC):
    """Base class of ask/tell searchers (objective maximised).

    Subclasses implement :meth:`_propose`; :meth:`ask` adds bookkeeping and steers
    away from architectures already proposed in this study.
    """

    #: Name used by the CLI and stored with the study.
    name: str = "searcher"

    def __init__(self, space: SearchSpace, seed: int = 0, max_retries: int = 100) -> None:
        self.space = space
        self.seed = int(seed)
        self.max_retries = int(max_retries)
        self.history: list[tuple[Architecture, float | None]] = []
        self._seen: set[str] = set()
        self._asked = 0

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self._asked])

    @abstractmethod
    def _propose(self, rng: np.random.Generator) -> Architecture:
        """One candidate (may repeat a seen one; :meth:`ask` retries then)."""

    def ask(self, n: int = 1) -> list[Architecture]:
        """``n`` new candidates, distinct from every architecture seen so far when the
        space allows it (after ``max_retries`` draws a repeat is returned)."""
        out = []
        for _ in range(n):
            rng = self._rng()
            self._asked += 1
            cand = self._propose(rng)
            for _ in range(self.max_retries):
                if cand.hash not in self._seen:
                    break
                cand = self._propose(rng)
            self._seen.add(cand.hash)
            out.append(cand)
        return out

    def tell(self, arch: Architecture, value: float | None) -> None:
        """Record the objective ``value`` of ``arch`` (``None`` for a failed trial)."""
        self._seen.add(arch.hash)
        self.history.append((arch, None if value is None else float(value)))

    def replay(self, history: list[tuple[Architecture, float | None]]) -> None:
        """Rebuild the state from a stored history, as if each had been asked and told."""
        for arch, value in history:
            self._asked += 1
            self.tell(arch, value)

    @property
    def best(self) -> tuple[Architecture, float] | None:
        """The best architecture told so far and its value."""
        done = [(a, v) for a, v in self.history if v is not None]
        return max(done, key=lambda av: av[1]) if done else None
