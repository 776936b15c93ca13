"""NSGA-II (Deb et al. 2002) as a steady-state, ask/tell searcher.

NSGA-II keeps a population ranked by Pareto dominance: the non-dominated points form
front 0, those non-dominated once front 0 is removed form front 1, and so on; within
a front, points in sparse regions (a large crowding distance) are preferred, which
spreads the population along the front. Here it runs one child at a time (the
steady-state variant): after every result the population is rebuilt from the whole
history by NSGA-II's environmental selection, and each proposal is the child of two
parents picked by binary tournaments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from naslab.core.validation import check_float, check_int
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.searchers.base import Observation, Searcher
from naslab.searchers.objectives import Objective, as_minimised
from naslab.searchers.pareto import crowding_distance, non_dominated_sort

__all__ = ["NSGA2", "environmental_selection"]


def _front_crowding(points: NDArray[np.float64], ranks: NDArray[np.int64]) -> NDArray[np.float64]:
    """Crowding distance of every point within its own front."""
    crowding = np.zeros(len(points))
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        crowding[members] = crowding_distance(points[members])
    return crowding


def environmental_selection(
    points: ArrayLike, size: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """NSGA-II's survivors among ``points`` (``(n, d)``, minimisation).

    Whole fronts are taken in rank order while they fit; the front that does not fit
    is cut by decreasing crowding distance, ties going to the earlier point (lower
    index). Fewer than ``size`` points all survive.

    Returns:
        The survivors' indices (ascending), their front ranks and their crowding
        distances within their fronts among the survivors.
    """
    pts = np.asarray(points, dtype=float)
    ranks = non_dominated_sort(pts)
    chosen: list[int] = []
    for rank in range(int(ranks.max()) + 1 if len(ranks) else 0):
        front = np.flatnonzero(ranks == rank)
        room = size - len(chosen)
        if len(front) <= room:
            chosen.extend(front.tolist())
        else:
            crowding = crowding_distance(pts[front])
            order = np.lexsort((front, -crowding))
            chosen.extend(front[order[:room]].tolist())
        if len(chosen) >= size:
            break
    index = np.array(sorted(chosen), dtype=np.int64)
    kept_ranks = ranks[index]
    return index, kept_ranks, _front_crowding(pts[index], kept_ranks)


@dataclass(frozen=True)
class _Population:
    """The survivors (in history order) with their ranks and crowding distances."""

    members: list[Observation]
    ranks: NDArray[np.int64]
    crowding: NDArray[np.float64]


class NSGA2(Searcher):
    """Steady-state NSGA-II (Deb et al. 2002) over one or more objectives.

    The first ``population_size`` proposals are random samples. After that the
    population is the ``population_size`` best successful results of the whole
    history by NSGA-II's environmental selection on their objective vectors (front
    rank, then crowding distance, then history order); each proposal draws two
    parents by binary tournament (lower rank wins, then larger crowding distance)
    and is, with probability ``crossover_prob``, their crossover then mutated,
    otherwise a mutation of the first parent. Failed trials (no value, or a missing
    objective metric) are ignored; while no result has succeeded, proposals stay
    random.

    With one objective the ranks are the values' order, so it is a (mu + 1) genetic
    algorithm: the ``population_size`` best results survive and tournaments pick the
    better of two.

    State: the successful results' objective vectors and, for each, how many others
    dominate it (updated as results arrive), and a cached population rebuilt only
    when the history has grown. A result dominated by ``population_size`` others can
    never survive again, so selection only sorts the rest. All of it is a function
    of the history, and all randomness comes from the base class's per-proposal
    generator, so :meth:`replay` rebuilds the exact state.

    Args:
        space: the search space.
        seed: seed of the searcher's random draws.
        objectives: what to optimise (default ``val_accuracy`` maximised), e.g.
            ``"val_accuracy:max,params:min"``.
        population_size: survivors kept (at least 2).
        crossover_prob: probability that a child is a crossover of two parents
            (between 0 and 1).
        max_retries: draws before :meth:`ask` accepts a repeated architecture.
    """

    name = "nsga2"
    multi_objective = True

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        objectives: str | Sequence[str | Objective] | None = None,
        population_size: int = 20,
        crossover_prob: float = 0.5,
        max_retries: int = 100,
    ) -> None:
        population_size = check_int("nsga2's population_size", population_size, minimum=2)
        crossover_prob = check_float("nsga2's crossover_prob", crossover_prob, minimum=0,
                                     maximum=1)
        super().__init__(space, seed, max_retries=max_retries, objectives=objectives)
        self.population_size = population_size
        self.crossover_prob = crossover_prob
        self._reset_state()

    # -- state, a function of the history ---------------------------------------------

    def _reset_state(self) -> None:
        self._scanned = 0  # history entries folded into the state
        self._results: list[Observation] = []  # successful results, history order
        self._points = np.empty((0, len(self.objectives)))  # their minimised objectives
        self._dominators = np.empty(0, dtype=np.int64)  # how many results dominate each
        self._cached: _Population | None = None
        self._cached_at = -1  # len(history) when _cached was computed

    def _update(self) -> None:
        """Fold the results told since the last call into the state."""
        if len(self.history) < self._scanned:  # the history was replaced: start over
            self._reset_state()
        for obs in self.history[self._scanned :]:
            if obs.value is None or obs.values is None:
                continue
            x = np.array(as_minimised(self.objectives, obs.values), dtype=float)
            pts = self._points
            beats = np.all(x <= pts, axis=1) & np.any(x < pts, axis=1)
            beaten_by = np.all(pts <= x, axis=1) & np.any(pts < x, axis=1)
            self._dominators[beats] += 1
            self._dominators = np.append(self._dominators, np.count_nonzero(beaten_by))
            self._points = np.vstack([pts, x])
            self._results.append(obs)
        self._scanned = len(self.history)

    def _population(self) -> _Population:
        """The survivors, recomputed only when the history has changed."""
        if self._cached is None or self._cached_at != len(self.history):
            self._update()
            candidates = np.flatnonzero(self._dominators < self.population_size)
            index, ranks, crowding = environmental_selection(
                self._points[candidates], self.population_size
            )
            self._cached = _Population(
                [self._results[i] for i in candidates[index]], ranks, crowding
            )
            self._cached_at = len(self.history)
        return self._cached

    @property
    def population(self) -> list[Observation]:
        """The current survivors, in the order they were told."""
        return list(self._population().members)

    @property
    def pareto_front(self) -> list[Observation]:
        """The successful results that no other result dominates (every copy of a
        non-dominated objective vector), in the order they were told."""
        self._update()
        return [self._results[i] for i in np.flatnonzero(self._dominators == 0)]

    # -- proposals --------------------------------------------------------------------

    def _tournament(self, population: _Population, rng: np.random.Generator) -> Architecture:
        """Binary tournament: lower rank wins, then larger crowding distance."""
        n = len(population.members)
        if n == 1:
            return population.members[0].arch
        i, j = (int(k) for k in rng.choice(n, size=2, replace=False))
        ri, rj = population.ranks[i], population.ranks[j]
        if rj < ri or (rj == ri and population.crowding[j] > population.crowding[i]):
            i = j
        return population.members[i].arch

    def _propose(self, rng: np.random.Generator) -> Architecture:
        if self._asked <= self.population_size:
            return self.space.sample(rng)
        population = self._population()
        if not population.members:
            return self.space.sample(rng)
        first = self._tournament(population, rng)
        second = self._tournament(population, rng)
        if rng.random() < self.crossover_prob:
            return self.space.mutate(self.space.crossover(first, second, rng), rng)
        return self.space.mutate(first, rng)


