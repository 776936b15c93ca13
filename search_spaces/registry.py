"""Built-in search spaces by name (:data:`SPACES`).

Entries name the module and class, imported on first use. ``info`` says which
task a space uses when none is given (``default_task``). Add a space of your own
with ``SPACES.register("mine", MySpace)``.
"""

from __future__ import annotations

from typing import Any

from naslab.core.registry import Registry
from naslab.search_spaces.base import SearchSpace

__all__ = ["SPACES", "get_space"]

#: The search spaces, by name.
SPACES = Registry("search space", base=SearchSpace)
SPACES.register("nb201", "naslab.search_spaces.nb201:NB201Space",
                info={"default_task": "digits"})
SPACES.register("chain", "naslab.search_spaces.chain:ChainSpace",
                info={"default_task": "digits"})
SPACES.register("nasbench_graph", "naslab.search_spaces.nasbench_graph:NasBenchGraphSpace",
                info={"default_task": "cora"})


def get_space(name: str, **kwargs: Any) -> SearchSpace:
    """The space ``name`` built with ``kwargs``; unknown names list the choices."""
    return SPACES.create(name, **kwargs)
