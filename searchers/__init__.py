"""Ask/tell searchers: random search and regularized evolution."""

from naslab.searchers.base import Searcher
from naslab.searchers.evolution import RegularizedEvolution
from naslab.searchers.random_search import RandomSearch
from naslab.searchers.registry import SEARCHERS, get_searcher

__all__ = ["SEARCHERS", "RandomSearch", "RegularizedEvolution", "Searcher", "get_searcher"]
