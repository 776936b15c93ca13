"""Random search: every candidate sampled uniformly from the space."""

from __future__ import annotations

import numpy as np

from naslab.search_spaces.architecture import Architecture
from naslab.searchers.base import Searcher


class RandomSearch(Searcher):
    """Samples each candidate independently and uniformly (no repeats)."""

    name = "random"

    def _propose(self, rng: np.random.Generator) -> Architecture:
        return self.space.sample(rng)
