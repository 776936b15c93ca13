"""The :class:`SearchSpace` base class.

A space declares its decisions (:mod:`naslab.search_spaces.decisions`), turns a set
of decisions into a labelled DAG (:meth:`SearchSpace.to_graph`) and a DAG into a
``torch.nn.Module`` (:meth:`SearchSpace.build`). Everything else (sampling,
mutation, crossover, neighbourhoods, validation) works from the declarations, so a
user-defined space implements only ``decisions``, ``to_graph`` and ``build``.

Graph conventions: every node has an ``op`` attribute. A graph has exactly one node
whose op is ``"input"`` (no predecessors) and one whose op is ``"output"`` (no
successors); every other node lies on a path from the input to the output.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from naslab.core.errors import InvalidArchitectureError
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.decisions import (
    Decision,
    Value,
    check_decisions,
    complete_decisions,
    sample_decisions,
)

if TYPE_CHECKING:
    import torch

INPUT, OUTPUT = "input", "output"


def check_graph(space: str, graph: nx.DiGraph, operations: Sequence[str] | None) -> None:
    """Refuse a graph that is not a valid architecture DAG, naming the problem.

    Checks: a DiGraph, every node labelled with a known ``op``, acyclic, exactly one
    input and one output node, and no dangling node (one that is not on a path from
    the input to the output).
    """
    if not isinstance(graph, nx.DiGraph):
        raise InvalidArchitectureError(
            f"{space}: to_graph must return a networkx.DiGraph, got {type(graph).__name__}"
        )
    unlabelled = [v for v in graph.nodes if "op" not in graph.nodes[v]]
    if unlabelled:
        raise InvalidArchitectureError(f"{space}: node(s) {unlabelled} have no 'op' label")
    if operations is not None:
        known = set(operations) | {INPUT, OUTPUT}
        unknown = sorted({str(graph.nodes[v]["op"]) for v in graph.nodes} - known)
        if unknown:
            raise InvalidArchitectureError(
                f"{space}: unknown operation(s) {unknown}; known: {sorted(known)}"
            )
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        raise InvalidArchitectureError(f"{space}: graph has a cycle: {cycle}")
    inputs = [v for v in graph.nodes if graph.nodes[v]["op"] == INPUT]
    outputs = [v for v in graph.nodes if graph.nodes[v]["op"] == OUTPUT]
    if len(inputs) != 1 or len(outputs) != 1:
        raise InvalidArchitectureError(
            f"{space}: graph needs exactly one 'input' and one 'output' node, "
            f"found {len(inputs)} and {len(outputs)}"
        )
    (src,), (dst,) = inputs, outputs
    if graph.in_degree(src) or graph.out_degree(dst):
        raise InvalidArchitectureError(f"{space}: edges into the input or out of the output")
    live = (nx.descendants(graph, src) | {src}) & (nx.ancestors(graph, dst) | {dst})
    dangling = [v for v in graph.nodes if v not in live and v not in (src, dst)]
    if dangling:
        raise InvalidArchitectureError(
            f"{space}: dangling node(s) {dangling} are not on a path from input to output"
        )


def image_shape(space: str, task: Any) -> tuple[int, int, int]:
    """``task.input_shape`` as (channels, height, width), or an error naming the task."""
    shape = tuple(task.input_shape)
    if len(shape) != 3:
        raise InvalidArchitectureError(
            f"{space} builds convolutional networks for image tasks with input_shape "
            f"(channels, height, width); task {getattr(task, 'name', '?')!r} has {shape}"
        )
    return shape  # type: ignore[return-value]


def prune_dead(graph: nx.DiGraph) -> nx.DiGraph:
    """Remove every node that is not on a path from the input to the output.

    The input and output nodes always stay (an output that nothing reaches stands
    for a network that outputs zeros).
    """
    src = next(v for v in graph.nodes if graph.nodes[v]["op"] == INPUT)
    dst = next(v for v in graph.nodes if graph.nodes[v]["op"] == OUTPUT)
    live = (nx.descendants(graph, src) | {src}) & (nx.ancestors(graph, dst) | {dst})
    live |= {src, dst}
    return graph.subgraph(live).copy()


#: Architectures each space instance keeps, by decisions, for reuse by from_decisions.
_BUILT_CACHE = 4096


class SearchSpace(ABC):
    """Base class of every search space.

    Subclasses set :attr:`name`, implement :meth:`decisions`, :meth:`to_graph` and
    :meth:`build`, and may override :attr:`operations` (the op vocabulary used for
    validation) and :meth:`config` (the parameters that make two instances of the
    same space differ, e.g. a network's width).
    """

    #: Short name of the space (``nb201``, ``chain``, ...).
    name: str = "custom"
    #: Node ``op`` labels the space may produce besides ``input`` and ``output``;
    #: ``None`` accepts any label.
    operations: Sequence[str] | None = None

    # -- what a subclass provides ------------------------------------------------

    @abstractmethod
    def decisions(self) -> Sequence[Decision]:
        """The declared decisions, parents before the decisions conditioned on them."""

    @abstractmethod
    def to_graph(self, decisions: Mapping[str, Value]) -> nx.DiGraph:
        """The labelled DAG for (already validated) ``decisions``."""

    @abstractmethod
    def build(self, arch: Architecture, task: Any) -> torch.nn.Module:
        """A fresh, untrained ``torch.nn.Module`` for ``arch`` on ``task``.

        ``task`` exposes ``input_shape`` (without the batch dimension) and
        ``num_classes``.
        """

    def config(self) -> dict[str, Any]:
        """The parameters of this instance (JSON-ready); part of :attr:`key`."""
        return {}

    # -- identity ---------------------------------------------------------------

    @property
    def key(self) -> str:
        """Identity of the space *and* its parameters, used by the store.

        Results are reused only between architectures of the same key.
        """
        cfg = self.config()
        if not cfg:
            return self.name
        digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.name}-{digest}"

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({cfg})"

    def __getstate__(self) -> dict[str, Any]:
        # the cache of architectures built here is not sent along (weak references)
        state = dict(self.__dict__)
        state.pop("_made", None)
        state.pop("_built", None)
        return state

    # -- construction and validation --------------------------------------------

    def from_decisions(
        self, decisions: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Architecture:
        """Build an architecture explicitly from its decisions.

        ``space.from_decisions({"depth": 2, ...})`` or ``space.from_decisions(depth=2,
        ...)``. Raises :class:`~naslab.core.errors.InvalidArchitectureError` naming every
        problem (missing, unknown or out-of-domain values, invalid graph).
        """
        merged = {**(decisions or {}), **kwargs}
        try:
            key = tuple(sorted((k, type(v).__name__, v) for k, v in merged.items()))
            cache = self.__dict__.get("_built")
            if cache is not None and key in cache:
                cache.move_to_end(key)
                return cache[key]
        except TypeError:  # unhashable or unorderable values: checked below
            key = None
        clean = check_decisions(self.name, self.decisions(), merged)
        graph = self.to_graph(clean)
        check_graph(self.name, graph, self.operations)
        arch = Architecture(self.name, clean, graph)
        made = self.__dict__.get("_made")
        if made is None:
            made = self.__dict__["_made"] = weakref.WeakValueDictionary()
        made[id(arch)] = arch  # validate() trusts what it built itself
        if key is not None:
            # Architectures are immutable, so the same decisions can share one: search
            # operators (mutation, neighbourhoods) revisit the same decisions often.
            cache = self.__dict__.get("_built")
            if cache is None:
                cache = self.__dict__["_built"] = OrderedDict()
            cache[key] = arch
            if len(cache) > _BUILT_CACHE:
                cache.popitem(last=False)
        return arch

    def validate(self, arch: Architecture) -> None:
        """Raise :class:`~naslab.core.errors.InvalidArchitectureError` if ``arch`` is invalid.

        Checks that it belongs to this space, that its decisions are in their
        domains, that its graph is a valid DAG and that the graph is the one its
        decisions derive.
        """
        if not isinstance(arch, Architecture):
            raise InvalidArchitectureError(f"expected an Architecture, got {type(arch).__name__}")
        made = self.__dict__.get("_made")
        if made is not None and made.get(id(arch)) is arch:
            return  # built by from_decisions of this very instance: valid by construction
        if arch.space != self.name:
            raise InvalidArchitectureError(
                f"architecture belongs to space {arch.space!r}, not {self.name!r}"
            )
        check_graph(self.name, arch.graph, self.operations)
        expected = self.from_decisions(arch.decisions)
        if expected.hash != arch.hash:
            raise InvalidArchitectureError(
                f"{self.name}: the architecture's graph is not the one its decisions derive"
            )

    # -- generic operators ------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> Architecture:
        """A uniformly random architecture (each active decision sampled uniformly)."""
        return self.from_decisions(sample_decisions(self.decisions(), rng))

    def mutate(
        self, arch: Architecture, rng: np.random.Generator, max_tries: int = 50
    ) -> Architecture:
        """A copy of ``arch`` with one active decision changed to another value.

        Decisions that the change activates are sampled; those it deactivates are
        dropped. The result differs from ``arch`` (a different canonical hash)
        whenever the space allows it within ``max_tries`` draws.
        """
        declared = {d.name: d for d in self.decisions()}
        names = [n for n in arch.decisions if len(declared[n].values) > 1]
        if not names:
            return arch
        candidate = arch
        for _ in range(max_tries):
            name = names[int(rng.integers(len(names)))]
            d = declared[name]
            others = [v for v in d.values if v != arch.decisions[name]]
            new = dict(arch.decisions)
            new[name] = others[int(rng.integers(len(others)))]
            candidate = self.from_decisions(complete_decisions(self.decisions(), new, rng))
            if candidate != arch:
                return candidate
        return candidate

    def crossover(
        self, a: Architecture, b: Architecture, rng: np.random.Generator
    ) -> Architecture:
        """Uniform crossover: each decision taken from ``a`` or ``b`` at random.

        Decisions active in only one parent are taken from it when they are active in
        the child; any still missing are sampled.
        """
        mixed: dict[str, Any] = {}
        for d in self.decisions():
            options = [p.decisions[d.name] for p in (a, b) if d.name in p.decisions]
            if options:
                mixed[d.name] = options[int(rng.integers(len(options)))]
        return self.from_decisions(complete_decisions(self.decisions(), mixed, rng))

    def neighbours(self, arch: Architecture) -> list[Architecture]:
        """Every distinct architecture one decision away from ``arch``.

        Categorical decisions move to every other choice, integer ones to the
        adjacent grid values. Decisions that a change activates take their first
        value, so the neighbourhood is deterministic.
        """
        declared = self.decisions()
        by_name = {d.name: d for d in declared}
        seen = {arch.hash}
        out: list[Architecture] = []
        for name, value in arch.decisions.items():
            for other in by_name[name].neighbour_values(value):
                new = dict(arch.decisions)
                new[name] = other
                filled: dict[str, Any] = {}
                for d in declared:
                    if d.condition is None or d.condition.holds(filled):
                        filled[d.name] = new.get(d.name, d.values[0])
                cand = self.from_decisions(filled)
                if cand.hash not in seen:
                    seen.add(cand.hash)
                    out.append(cand)
        return out

    def size(self) -> int | None:
        """Number of decision combinations (before isomorphism), if cheap to count."""
        declared = self.decisions()
        if any(d.condition is not None for d in declared):
            return None
        total = 1
        for d in declared:
            total *= len(d.values)
        return total
