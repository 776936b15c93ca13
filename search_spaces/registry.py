"""Built-in search spaces by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from naslab.core.errors import UnknownNameError
from naslab.search_spaces.base import SearchSpace


def _nb201(**kwargs: Any) -> SearchSpace:
    from naslab.search_spaces.nb201 import NB201Space

    return NB201Space(**kwargs)


def _chain(**kwargs: Any) -> SearchSpace:
    from naslab.search_spaces.chain import ChainSpace

    return ChainSpace(**kwargs)


def _nasbench_graph(**kwargs: Any) -> SearchSpace:
    from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace

    return NasBenchGraphSpace(**kwargs)


#: Constructors of the built-in spaces, by name.
SPACES: dict[str, Callable[..., SearchSpace]] = {
    "nb201": _nb201,
    "chain": _chain,
    "nasbench_graph": _nasbench_graph,
}


def get_space(name: str, **kwargs: Any) -> SearchSpace:
    """The built-in space ``name`` built with ``kwargs``; unknown names list the choices."""
    if name not in SPACES:
        raise UnknownNameError("search space", name, SPACES)
    return SPACES[name](**kwargs)
