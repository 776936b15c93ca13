"""The ask/tell searcher interface.

A searcher proposes architectures (:meth:`Searcher.ask`) and learns from their
results (:meth:`Searcher.tell`). Its state is a function of its seed and the
sequence of told results, so a resumed search rebuilds it by replaying the store's
history: no pickles. Randomness is drawn from a generator seeded with
``(seed, number of proposals so far)``, so a resumed search proposes what an
uninterrupted one would have (searchers that keep state outside naslab, such as
Optuna's samplers, say so with :attr:`Searcher.exact_replay` = False).

Every told result is an :class:`Observation`: the architecture, its objective
value (None for a failed trial) and all its final metrics, so that multi-objective
searchers can read the metrics they optimise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from naslab.core.errors import ConfigError
from naslab.core.validation import check_int
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.searchers.objectives import Objective, objective_values, parse_objectives
from naslab.searchers.prior import PriorRequest, PriorResults

#: The most draws :meth:`Searcher.ask` makes for one proposal (``max_retries``).
MAX_RETRIES = 100_000


@dataclass(frozen=True)
class Observation:
    """One told result.

    Attributes:
        arch: the architecture.
        value: the (first) objective's value, None when the trial failed.
        metrics: every final metric known (objective included), e.g.
            ``val_accuracy``, ``test_accuracy``, ``params``, ``latency_ms``.
        values: the searcher's objectives read from ``metrics`` (None when the trial
            failed or a metric is missing).
    """

    arch: Architecture
    value: float | None
    metrics: Mapping[str, float] = field(default_factory=dict, hash=False)
    values: tuple[float, ...] | None = None


class Searcher(ABC):
    """Base class of ask/tell searchers.

    Subclasses implement :meth:`_propose`; :meth:`ask` adds bookkeeping and steers
    away from architectures already proposed in this study.

    Args:
        space: the search space.
        seed: seed of the searcher's random draws (an integer >= 0).
        max_retries: draws before :meth:`ask` accepts a repeated architecture (0 to
            :data:`MAX_RETRIES`).
        objectives: what to optimise (see :mod:`naslab.searchers.objectives`);
            default ``val_accuracy`` maximised. Two or more objectives need a
            searcher with :attr:`multi_objective` set.
    """

    #: Name used by the CLI and stored with the study.
    name: str = "searcher"
    #: Whether it optimises several objectives at once (a Pareto front).
    multi_objective: bool = False
    #: Whether :meth:`replay` rebuilds the exact state (same future proposals).
    exact_replay: bool = True

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        max_retries: int = 100,
        objectives: str | Sequence[str | Objective] | None = None,
    ) -> None:
        self.space = space
        self.seed = check_int(f"{self.name}: seed", seed, minimum=0)
        self.max_retries = check_int(f"{self.name}: max_retries", max_retries, minimum=0,
                                     maximum=MAX_RETRIES)
        self.objectives: tuple[Objective, ...] = parse_objectives(objectives)
        if len(self.objectives) > 1 and not self.multi_objective:
            raise ConfigError(
                f"searcher {self.name!r} optimises one objective, but "
                f"{len(self.objectives)} were given ({', '.join(map(str, self.objectives))}); "
                "use a multi-objective searcher (nsga2, guided-evolution, optuna-*)"
            )
        self.history: list[Observation] = []
        self._seen: set[str] = set()
        self._asked = 0
        self._stream = 0

    def _rng(self) -> np.random.Generator:
        if self._stream:
            return np.random.default_rng([self.seed, self._stream, self._asked])
        return np.random.default_rng([self.seed, self._asked])

    @abstractmethod
    def _propose(self, rng: np.random.Generator) -> Architecture:
        """One candidate (may repeat a seen one; :meth:`ask` retries then)."""

    def use_own_stream(self, key: int) -> None:
        """Draw the next proposals from random stream ``key`` (an int > 0).

        A study run by one driver draws from the study's own stream, so a resumed
        search proposes exactly what an uninterrupted one would. When the search
        loop sees that other drivers work on the same study, it gives this searcher
        a stream of its own, so that drivers started with the study's seed do not
        all propose the same candidates.
        """
        self._stream = check_int("a random stream key", key, minimum=1)

    def prior_request(self) -> PriorRequest | None:
        """What this searcher wants to learn from *other* tasks' stored results before
        its first proposal (a warm start), or None (the default: it starts cold).
        The study reads them and calls :meth:`use_prior`."""
        return None

    def use_prior(self, prior: PriorResults) -> None:
        """Learn from other tasks' results (see :mod:`naslab.searchers.prior`)."""
        raise ConfigError(f"searcher {self.name!r} does not learn from other tasks' results")

    @property
    def stream(self) -> int:
        """The random stream proposals are drawn from (0: the study's own)."""
        return self._stream

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

    def observation(
        self, arch: Architecture, value: float | None, metrics: Mapping[str, Any] | None = None
    ) -> Observation:
        """The :class:`Observation` that :meth:`tell` records."""
        value = None if value is None else float(value)
        clean = {str(k): float(v) for k, v in (metrics or {}).items() if v is not None}
        if value is not None:
            clean.setdefault(self.objectives[0].name, value)
        values = None if value is None else objective_values(self.objectives, clean)
        return Observation(arch, value, clean, values)

    def tell(
        self, arch: Architecture, value: float | None, metrics: Mapping[str, Any] | None = None
    ) -> None:
        """Record the objective ``value`` of ``arch`` (``None`` for a failed trial) and
        its other final ``metrics`` (``params``, ``latency_ms``, ...)."""
        self._seen.add(arch.hash)
        self.history.append(self.observation(arch, value, metrics))

    def observe(
        self, arch: Architecture, value: float | None, metrics: Mapping[str, Any] | None = None
    ) -> None:
        """Learn a result that another driver of the same study stored (several
        drivers on one study); by default the same as :meth:`tell`."""
        self.tell(arch, value, metrics)

    def forget(self, arch: Architecture) -> None:
        """``arch`` was asked but will not be evaluated by this driver (the study's
        budget was used up meanwhile); by default nothing to undo."""

    def replay(self, history: Iterable[Sequence[Any]]) -> None:
        """Rebuild the state from a stored history of ``(arch, value)`` or
        ``(arch, value, metrics)`` items, as if each had been asked and told."""
        for item in history:
            arch, value = item[0], item[1]
            metrics = item[2] if len(item) > 2 else None
            self._asked += 1
            self.tell(arch, value, metrics)

    @property
    def done(self) -> list[Observation]:
        """The successful observations, in the order told."""
        return [o for o in self.history if o.value is not None]

    @property
    def best(self) -> tuple[Architecture, float] | None:
        """The best architecture told so far and its (first) objective value."""
        done = self.done
        if not done:
            return None
        sign = self.objectives[0].sign
        o = max(done, key=lambda o: sign * o.value)  # type: ignore[operator]
        return o.arch, o.value  # type: ignore[return-value]
