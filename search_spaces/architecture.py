"""The immutable architecture type.

An :class:`Architecture` holds the decisions that define it (a mapping of named
choices) and the labelled DAG derived from them by its search space. Two
architectures are equal when they come from the same space and their graphs are
isomorphic with matching labels (see :mod:`naslab.search_spaces.canonical`): such
architectures compute the same function, so the store trains only one of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cached_property
from types import MappingProxyType
from typing import Any

import networkx as nx

from naslab.core.errors import InvalidArchitectureError
from naslab.search_spaces.canonical import graph_hash

_JSON_VERSION = 1


def graph_to_json(graph: nx.DiGraph) -> dict[str, Any]:
    """A JSON-ready dict of a graph: nodes with attributes, and edges."""
    return {
        "nodes": [{"id": str(v), **dict(graph.nodes[v])} for v in graph.nodes],
        "edges": [[str(u), str(w)] for u, w in graph.edges],
    }


def graph_from_json(data: Mapping[str, Any]) -> nx.DiGraph:
    """Inverse of :func:`graph_to_json` (node ids become strings)."""
    try:
        graph = nx.DiGraph()
        for node in data["nodes"]:
            attrs = dict(node)
            graph.add_node(str(attrs.pop("id")), **attrs)
        for u, w in data["edges"]:
            if str(u) not in graph or str(w) not in graph:
                raise InvalidArchitectureError(f"edge {u}->{w} names a node that is not listed")
            graph.add_edge(str(u), str(w))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidArchitectureError(
            f"malformed graph JSON ({exc!r}); expected {{'nodes': [{{'id': ..., 'op': ...}}], "
            "'edges': [[u, v], ...]}"
        ) from exc
    return graph


class Architecture:
    """An immutable candidate network: its decisions and its labelled DAG.

    Build one through its space (``space.from_decisions({...})`` or
    ``space.sample(rng)``), which validates the decisions and derives the graph.

    Attributes:
        space: the name of the search space it belongs to.
        decisions: read-only mapping of the active decisions.
        graph: frozen ``networkx.DiGraph``; every node has an ``op`` attribute.
        hash: canonical hash of the graph, equal for isomorphic graphs.
    """

    __slots__ = ("_space", "_decisions", "_graph", "__dict__", "__weakref__")

    def __init__(self, space: str, decisions: Mapping[str, Any], graph: nx.DiGraph) -> None:
        if not isinstance(graph, nx.DiGraph):
            raise InvalidArchitectureError(
                f"an architecture's graph must be a networkx.DiGraph, got {type(graph).__name__}"
            )
        self._space = str(space)
        self._decisions = MappingProxyType(dict(decisions))
        frozen = graph.copy()
        self._graph = nx.freeze(frozen)

    @property
    def space(self) -> str:
        """Name of the search space."""
        return self._space

    @property
    def decisions(self) -> Mapping[str, Any]:
        """The active decisions (read-only)."""
        return self._decisions

    @property
    def graph(self) -> nx.DiGraph:
        """The labelled DAG (frozen: mutating it raises)."""
        return self._graph

    @cached_property
    def hash(self) -> str:
        """Canonical SHA-256 hash of the graph (hex)."""
        return graph_hash(self._graph)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Architecture):
            return NotImplemented
        return self._space == other._space and self.hash == other.hash

    def __hash__(self) -> int:
        return hash((self._space, self.hash))

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self._decisions.items())
        return f"Architecture({self._space}: {items})"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: space, decisions, graph and hash."""
        return {
            "version": _JSON_VERSION,
            "space": self._space,
            "decisions": dict(self._decisions),
            "graph": graph_to_json(self._graph),
            "hash": self.hash,
        }

    def dumps(self) -> str:
        """:meth:`to_json` as a string."""
        return json.dumps(self.to_json(), sort_keys=True)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> Architecture:
        """Rebuild an architecture from :meth:`to_json` output (dict or string).

        The graph is taken as stored; if a hash is stored it must match, so a
        corrupted record is refused rather than silently accepted. To re-derive
        and re-validate the graph, use ``space.from_decisions(arch.decisions)``.
        """
        if isinstance(data, str):
            data = json.loads(data)
        try:
            arch = cls(data["space"], data["decisions"], graph_from_json(data["graph"]))
        except KeyError as exc:
            raise InvalidArchitectureError(
                f"architecture JSON lacks {exc}; expected keys space, decisions, graph"
            ) from exc
        if "hash" in data and data["hash"] != arch.hash:
            raise InvalidArchitectureError(
                "architecture JSON's hash does not match its graph (corrupted record?)"
            )
        return arch
