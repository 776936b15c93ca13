"""The space ``toy`` of :func:`naslab.testing.stores.toy_arch`, for tests that import
toy studies (an import recomputes every architecture with its space)."""

from __future__ import annotations

from typing import Any

import networkx as nx

from naslab.core.errors import InvalidArchitectureError
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.testing.stores import toy_arch

__all__ = ["ToySpace"]


class ToySpace(SearchSpace):
    """The space ``toy`` of :func:`toy_arch` (key ``toy:v1``), for tests that import
    toy studies: an import recomputes every architecture with its space. Register it
    with ``SPACES.register("toy", ToySpace)``."""

    name = "toy"

    def __init__(self, depth: int = 2) -> None:
        self.depth = depth

    def decisions(self) -> list[Any]:
        return []

    def to_graph(self, decisions: Any) -> nx.DiGraph:
        return toy_arch(tuple(decisions["ops"])).graph

    def build(self, arch: Architecture, task: Any) -> Any:
        raise NotImplementedError("the toy space builds no networks")

    def config(self) -> dict[str, Any]:
        return {"depth": self.depth}

    @property
    def key(self) -> str:
        return "toy:v1"

    def from_decisions(self, decisions: Any = None, **kwargs: Any) -> Architecture:
        merged = {**(decisions or {}), **kwargs}
        ops = merged.get("ops")
        if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
            raise InvalidArchitectureError(f"toy decisions need ops (a list of names), got "
                                           f"{merged!r}")
        return toy_arch(tuple(ops), decisions=merged)
