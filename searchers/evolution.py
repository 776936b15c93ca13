"""Regularized (aging) evolution, Real et al. 2019.

The first ``population_size`` candidates are sampled at random. After that, each
candidate is a mutation of the best of ``sample_size`` members drawn from the
population, and the population is the ``population_size`` most recent results: the
oldest member dies whatever its fitness, which keeps the search from clinging to
early lucky results.
"""

from __future__ import annotations

import numpy as np

from naslab.core.errors import ConfigError
from naslab.core.validation import check_int
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.searchers.base import Searcher


class RegularizedEvolution(Searcher):
    """Aging evolution with tournament selection and single-decision mutation.

    Args:
        space: the search space.
        seed: seed of the searcher's random draws.
        population_size: members kept (the most recent results; an integer >= 2).
        sample_size: tournament size (members compared to choose a parent; an integer
            from 1 to ``population_size``).
        max_retries: draws before :meth:`ask` accepts a repeated architecture.
    """

    name = "evolution"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        population_size: int = 10,
        sample_size: int = 3,
        max_retries: int = 100,
    ) -> None:
        super().__init__(space, seed, max_retries=max_retries)
        self.population_size = check_int("evolution: population_size", population_size,
                                         minimum=2)
        self.sample_size = check_int("evolution: sample_size", sample_size, minimum=1)
        if self.sample_size > self.population_size:
            raise ConfigError(
                "evolution needs 1 <= sample_size <= population_size; got population_size="
                f"{self.population_size}, sample_size={self.sample_size}")

    @property
    def population(self) -> list[tuple[Architecture, float]]:
        """The living members: the most recent successful results."""
        done = [(o.arch, o.value) for o in self.history if o.value is not None]
        return done[-self.population_size :]

    def _propose(self, rng: np.random.Generator) -> Architecture:
        population = self.population
        if self._asked <= self.population_size or len(population) < 2:
            return self.space.sample(rng)
        picks = rng.choice(len(population), size=min(self.sample_size, len(population)),
                           replace=False)
        parent = max((population[i] for i in picks), key=lambda av: av[1])[0]
        return self.space.mutate(parent, rng)
