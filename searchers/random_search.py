"""Random search: every candidate sampled uniformly from the space."""

from __future__ import annotations

import numpy as np

from naslab.search_spaces.architecture import Architecture
from naslab.searchers.base import Searcher


class RandomSearch(Searcher):
    """Samples each candidate independently and uniformly (no repeats)."""

    name = "random"
    #: Uniform sampling ignores the objectives, so it serves as the multi-objective
    #: baseline too.
    multi_objective = True

    def _propose(self, rng: np.random.Generator) -> Architecture:
        return self.space.sample(rng)
