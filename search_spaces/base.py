"""The :class:`SearchSpace` base class.

A space declares its decisions (:mod:`naslab.search_spaces.decisions`), turns a set
of decisions into a labelled DAG (:meth:`SearchSpace.to_graph`) and a DAG into a
``torch.nn.Module`` (:meth:`SearchSpace.build`). Everything else (sampling,
mutation, crossover, neighbourhoods, validation) works from the declarations, so a
user-defined space implements only ``decisions``, ``to_graph`` and ``build``.

Graph conventions: every node has an ``op`` attribute. A graph (a
``networkx.DiGraph``, not a multigraph) has exactly one node whose op is ``"input"``
(no predecessors) and one whose op is ``"output"`` (no successors); every other node
lies on a path from the input to the output, and the output is reached from the input
(unless the space sets :attr:`SearchSpace.allows_unreachable_output`).

Identity: a space's :attr:`~SearchSpace.key` decides which stored results are
reused. For the built-in spaces it is their name plus a digest of
:meth:`~SearchSpace.config`; for any other space (a subclass of a built-in one
included) it also holds its :attr:`~SearchSpace.version` and a fingerprint of what it
declares and builds (:meth:`~SearchSpace.fingerprint`), so that editing a space's
``decisions``, ``to_graph`` or ``build`` never reuses results of the old one.
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
    Categorical,
    Decision,
    Integer,
    SpaceDefinitionError,
    Value,
    check_decisions,
    complete_decisions,
    sample_decisions,
)
from naslab.search_spaces.fingerprint import space_fingerprint

if TYPE_CHECKING:
    import torch

INPUT, OUTPUT = "input", "output"


def check_graph(space: str, graph: nx.DiGraph, operations: Sequence[str] | None,
                unreachable_output: bool = False) -> None:
    """Refuse a graph that is not a valid architecture DAG, naming the problem.

    Checks: a DiGraph (not a multigraph), every node labelled with a known ``op``,
    acyclic, exactly one input and one output node, no dangling node (one that is not
    on a path from the input to the output) and, unless ``unreachable_output``, a
    path from the input to the output.
    """
    if not isinstance(graph, nx.DiGraph) or graph.is_multigraph():
        raise InvalidArchitectureError(
            f"{space}: to_graph must return a networkx.DiGraph (not a multigraph), got "
            f"{type(graph).__name__}"
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
    if not unreachable_output and not nx.has_path(graph, src, dst):
        raise InvalidArchitectureError(f"{space}: no path from the input to the output")
    live = (nx.descendants(graph, src) | {src}) & (nx.ancestors(graph, dst) | {dst})
    dangling = [v for v in graph.nodes if v not in live and v not in (src, dst)]
    if dangling:
        raise InvalidArchitectureError(
            f"{space}: dangling node(s) {dangling} are not on a path from input to output"
        )


def check_declarations(space: str, declared: Any) -> list[Decision]:
    """``declared`` as a list, or :class:`SpaceDefinitionError` naming the problem.

    Every item is a :class:`Categorical` or :class:`Integer` decision, names are
    unique, and a condition refers to a decision declared *before* it, with values
    that decision can take.
    """
    if isinstance(declared, (str, bytes, Mapping)) or not isinstance(declared, Sequence):
        raise SpaceDefinitionError(
            f"{space}: decisions() must return a list of decisions, got {type(declared).__name__}")
    seen: dict[str, Decision] = {}
    for d in declared:
        if not isinstance(d, (Categorical, Integer)):
            raise SpaceDefinitionError(
                f"{space}: decisions() holds {d!r}; expected Categorical or Integer decisions")
        if d.name in seen:
            raise SpaceDefinitionError(f"{space}: decision {d.name!r} is declared twice")
        cond = d.condition
        if cond is not None:
            parent = seen.get(cond.parent)
            if parent is None:
                where = ("declared after it" if any(o.name == cond.parent for o in declared)
                         else "not declared")
                raise SpaceDefinitionError(
                    f"{space}: decision {d.name!r} is conditioned on {cond.parent!r}, which "
                    f"is {where}; declare a condition's parent before the decision")
            outside = [v for v in cond.values if not parent.contains(v)]
            if outside:
                raise SpaceDefinitionError(
                    f"{space}: the condition of {d.name!r} names value(s) {outside} that "
                    f"{cond.parent!r} cannot take ({parent.describe()})")
        seen[d.name] = d
    return list(declared)


def probe_decisions(declared: Sequence[Decision], rng: np.random.Generator,
                    samples: int = 3) -> list[dict[str, Value]]:
    """A fixed probe set: every active decision at its first value, then ``samples``
    random draws from ``rng``."""
    first: dict[str, Value] = {}
    for d in declared:
        if d.condition is None or d.condition.holds(first):
            first[d.name] = d.values[0]
    return [first] + [sample_decisions(declared, rng) for _ in range(samples)]


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
    #: Whether a graph whose output is not reached from its input is valid (a network
    #: that outputs zeros, as NAS-Bench-201's all-``none`` cells); refused by default.
    allows_unreachable_output: bool = False
    #: The version of a space's definition, part of :attr:`key` (not for the built-in
    #: spaces). Bump it whenever you edit ``decisions``, ``to_graph`` or ``build`` so
    #: that results of the old definition are not reused; the key also holds a
    #: :meth:`fingerprint`, and a study warns when the fingerprint changed under a
    #: version that stayed the same.
    version: str | int | None = None
    #: True only in the class body of naslab's built-in spaces (not inherited: a
    #: subclass is fingerprinted): their keys stay ``name[-config digest]`` so that
    #: existing stores keep reusing their results.
    stable_key: bool = False

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

        Results are reused only between architectures of the same key. Built-in
        spaces: ``name`` or ``name-<config digest>``. Other spaces:
        ``name[-v<version>][-<config digest>]-fp<fingerprint>`` (see
        :meth:`fingerprint`).
        """
        cfg = self.config()
        parts = [self.name]
        fingerprinted = not type(self).__dict__.get("stable_key", False)
        if fingerprinted and self.version is not None:
            parts.append(f"v{self.version}")
        if cfg:
            parts.append(hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10])
        if fingerprinted:
            parts.append("fp" + self.fingerprint())
        return "-".join(parts)

    def fingerprint(self) -> str:
        """A short digest of what this space declares and builds (computed once).

        It hashes the decision declarations, the graphs of a fixed, seeded probe set
        of architectures and, for each, the module types and parameter shapes that
        :meth:`build` makes for a small image task (no training). Raises
        :class:`~naslab.search_spaces.decisions.SpaceDefinitionError` if the space's
        definition is not valid (see :meth:`check_definition`).
        """
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            self.check_definition()
            cached = self.__dict__["_fingerprint"] = space_fingerprint(self)
        return str(cached)

    def check_definition(self) -> None:
        """Refuse a space whose definition is not valid, with
        :class:`~naslab.search_spaces.decisions.SpaceDefinitionError`.

        Checks the declarations (:func:`check_declarations`) and that a fixed, seeded
        probe set of architectures has valid graphs (a DiGraph, acyclic, a path from
        input to output, ...). Studies call it before storing anything.
        """
        check_declarations(self.name, self.decisions())
        self.__dict__["_declarations_checked"] = True
        filled: dict[str, Value] | None = None
        try:
            for filled in self.probe_set():
                self.from_decisions(filled)
        except InvalidArchitectureError as exc:
            raise SpaceDefinitionError(f"space {self.name!r} is not valid: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - user code in probe_set / to_graph
            step = "probing it raised" if filled is None else f"to_graph failed on {filled} with"
            raise SpaceDefinitionError(
                f"space {self.name!r} is not valid: {step} {type(exc).__name__}: {exc}"
            ) from None

    def probe_set(self) -> list[dict[str, Value]]:
        """The decisions of the fixed probe architectures that :meth:`check_definition`
        and :meth:`fingerprint` build: by default every decision at its first value,
        then three seeded random draws. A space whose first values do not make a valid
        architecture (NAS-Bench-101: no edges) returns valid ones of its own."""
        return probe_decisions(self.decisions(), np.random.default_rng(0))

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
        if not self.__dict__.get("_declarations_checked"):
            check_declarations(self.name, self.decisions())
            self.__dict__["_declarations_checked"] = True
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
        check_graph(self.name, graph, self.operations, self.allows_unreachable_output)
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
        check_graph(self.name, arch.graph, self.operations, self.allows_unreachable_output)
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
            new = dict(arch.decisions)
            new[name] = declared[name].other_value(arch.decisions[name], rng)
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
        """Number of decision combinations (before isomorphism): the product of the
        domains, summed over the branches that conditions open; None when the
        conditions' parents have more than 100,000 value combinations."""
        return count_combinations(self.decisions())


#: Branches (combinations of condition parents' values) that size() walks at most.
_MAX_BRANCHES = 100_000


def count_combinations(declared: Sequence[Decision]) -> int | None:
    """The number of valid decision combinations of ``declared`` (each active decision
    takes any value of its domain); None if more than ``_MAX_BRANCHES`` combinations
    of the values of condition parents would have to be walked."""
    parents = {d.condition.parent for d in declared if d.condition is not None}
    walked = [0]

    def count(index: int, chosen: dict[str, Value]) -> int | None:
        total = 1
        for pos in range(index, len(declared)):
            d = declared[pos]
            if d.condition is not None and not d.condition.holds(chosen):
                continue
            if d.name not in parents:
                total *= len(d.values)
                continue
            branches = 0
            for value in d.values:
                walked[0] += 1
                if walked[0] > _MAX_BRANCHES:
                    return None
                sub = count(pos + 1, {**chosen, d.name: value})
                if sub is None:
                    return None
                branches += sub
            return total * branches
        return total

    return count(0, {})
