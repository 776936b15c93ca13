"""Built-in searchers by name."""

from __future__ import annotations

from typing import Any

from naslab.errors import UnknownNameError
from naslab.search_spaces.base import SearchSpace
from naslab.searchers.base import Searcher
from naslab.searchers.evolution import RegularizedEvolution
from naslab.searchers.random_search import RandomSearch

#: Searcher classes by their CLI name.
SEARCHERS: dict[str, type[Searcher]] = {
    RandomSearch.name: RandomSearch,
    RegularizedEvolution.name: RegularizedEvolution,
}


def get_searcher(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Searcher:
    """The searcher ``name`` over ``space``; unknown names list the choices."""
    if name not in SEARCHERS:
        raise UnknownNameError("searcher", name, SEARCHERS)
    return SEARCHERS[name](space, seed=seed, **options)
