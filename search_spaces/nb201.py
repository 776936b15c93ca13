"""The NAS-Bench-201 cell space (``nb201``).

A cell is a DAG of 4 nodes; each of its 6 edges ``i -> j`` (``i < j``) carries one of
five operations: ``none``, ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3``,
``avg_pool_3x3``. The network stacks the cell as NAS-Bench-201 does: a 3x3 stem,
three stages of ``cells_per_stage`` cells at widths C, 2C, 4C separated by residual
reduction blocks, then global pooling and a linear classifier. ``channels`` and
``cells_per_stage`` are parameters, small by default so that a network trains in
seconds on a CPU.

Decisions are named ``e{i}_{j}`` (the edge from node i to node j). The graph turns
each edge into an operation node between ``add`` nodes, drops ``none`` edges and
prunes nodes that no longer lie on a path from the cell's input to its output, so
cells that compute the same function get the same canonical hash: the 15,625 cells
fall into 8,765 classes.

``equivalence="nb201"`` uses NAS-Bench-201's own equivalence instead
(``CellStructure.to_unique_str(consider_zero=True)`` of its API), which also treats
``skip_connect`` as an identity (``x + skip(y)`` is ``x + y``) and counts 6,466 unique
cells. Every cell of a class then gets the graph (and so the hash and the network) of
the class's first member in the order of :func:`itertools.product` over the edges.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import networkx as nx
from torch import nn

from naslab.core.errors import InvalidArchitectureError
from naslab.core.validation import check_choice, check_int
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace, image_shape, prune_dead
from naslab.search_spaces.decisions import Categorical, Decision, Value
from naslab.search_spaces.graph_module import GraphModule

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = tuple((i, j) for j in range(1, 4) for i in range(j))  # (0,1),(0,2),(1,2),(0,3),...
#: How cells are judged equal: ``graph`` (isomorphic pruned graphs, 8,765 classes) or
#: ``nb201`` (NAS-Bench-201's unique strings, skip_connect as identity, 6,466 classes).
EQUIVALENCES = ("graph", "nb201")


def _edge_name(i: int, j: int) -> str:
    return f"e{i}_{j}"


def unique_string(decisions: Mapping[str, Value]) -> str:
    """NAS-Bench-201's ``to_unique_str(consider_zero=True)`` of a cell: the cell's
    output as an expression in which ``none`` (and anything computed from a zero
    node) is ``#``, ``skip_connect`` passes its input on unchanged, and the terms of
    each sum are sorted. Equal strings are NAS-Bench-201's "isomorphic" cells."""
    nodes = {0: "0"}
    for j in range(1, 4):
        terms = []
        for i in range(j):
            op = decisions[_edge_name(i, j)]
            if op == "none" or nodes[i] == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(nodes[i])
            else:
                terms.append(f"({nodes[i]})@{op}")
        nodes[j] = "+".join(sorted(terms))
    return nodes[3]


def _nb201_class_graph(text: str) -> nx.DiGraph:
    """The graph of NAS-Bench-201 class ``text``: its first cell's graph. Where that
    graph is isomorphic to another class's (NAS-Bench-201 keeps zero terms that
    pruning drops: ``#+#+0+0`` and ``#+0+0`` are two classes of one graph), the output
    node also carries the class's unique string as attribute ``nb201_class``, so that
    the two hash apart."""
    graph = _cell_graph(_representatives()[text])
    if text in _ambiguous_classes():
        graph.nodes["out"]["nb201_class"] = text
    return graph


@lru_cache(maxsize=1)
def _ambiguous_classes() -> frozenset[str]:
    """The NAS-Bench-201 classes whose first cell's graph is isomorphic to the first
    cell's graph of another class (computed once, about 2 s)."""
    from naslab.search_spaces.canonical import graph_hash

    by_hash: dict[str, list[str]] = {}
    for text, decisions in _representatives().items():
        by_hash.setdefault(graph_hash(_cell_graph(decisions)), []).append(text)
    return frozenset(t for texts in by_hash.values() if len(texts) > 1 for t in texts)


@lru_cache(maxsize=1)
def _representatives() -> dict[str, dict[str, str]]:
    """For each NAS-Bench-201 unique string, the decisions of its first cell."""
    out: dict[str, dict[str, str]] = {}
    for ops in itertools.product(OPS, repeat=len(EDGES)):
        decisions = {_edge_name(i, j): op for (i, j), op in zip(EDGES, ops, strict=True)}
        out.setdefault(unique_string(decisions), decisions)
    return out


def _cell_graph(decisions: Mapping[str, Value]) -> nx.DiGraph:
    """Cell DAG with operations as nodes; ``none`` edges and dead nodes removed."""
    g = nx.DiGraph()
    names = {0: "in", 1: "n1", 2: "n2", 3: "out"}
    g.add_node("in", op="input")
    g.add_node("n1", op="add")
    g.add_node("n2", op="add")
    g.add_node("out", op="output")
    for i, j in EDGES:
        op = decisions[_edge_name(i, j)]
        if op == "none":
            continue
        node = f"{op}:{i}->{j}"
        g.add_node(node, op=op)
        g.add_edge(names[i], node)
        g.add_edge(node, names[j])
    return prune_dead(g)


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution, batch normalisation (NAS-Bench-201's ``nor_conv``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class ResidualReduction(nn.Module):
    """NAS-Bench-201's residual block that halves resolution and changes width."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, 2, ceil_mode=True), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x):  # noqa: D102 - standard forward
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def _make_op(attrs: dict[str, Any], c: int) -> tuple[nn.Module, int]:
    op = attrs["op"]
    if op == "skip_connect":
        return nn.Identity(), c
    if op == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1), c
    if op == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3), c
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), c
    raise InvalidArchitectureError(f"nb201: no module for operation {op!r}")


class NB201Network(nn.Module):
    """Stem, three stages of cells with two residual reductions, and a classifier."""

    def __init__(
        self, graph: nx.DiGraph, in_channels: int, num_classes: int, channels: int, cells: int
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        layers: list[nn.Module] = []
        width = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(width, width * 2))
                width *= 2
            layers.extend(GraphModule(graph, _make_op, width) for _ in range(cells))
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.BatchNorm2d(width), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):  # noqa: D102 - standard forward
        return self.classifier(self.head(self.cells(self.stem(x))))


class NB201Space(SearchSpace):
    """The NAS-Bench-201 cell space: 5^6 = 15,625 cells.

    Args:
        channels: width C of the first stage (NAS-Bench-201 uses 16); 1 to 1024.
        cells_per_stage: cells per stage N (NAS-Bench-201 uses 5); 1 to 64.
        equivalence: when two cells count as one (one is trained, the other reuses
            its result): ``"graph"`` (default) for isomorphic pruned graphs, 8,765
            classes; ``"nb201"`` for NAS-Bench-201's unique cells (``skip_connect``
            also an identity), 6,466 classes, as the benchmark counts them.

    Raises:
        ConfigError: an option of the wrong type (``1.5``, ``true``) or out of range.
    """

    name = "nb201"
    operations = ("add",) + OPS[1:]
    stable_key = True  # a built-in space: its key is its name plus its config
    #: An all-``none`` cell (or one with no path) outputs zeros, as in NAS-Bench-201.
    allows_unreachable_output = True

    def __init__(self, channels: int = 8, cells_per_stage: int = 1,
                 equivalence: str = "graph") -> None:
        self.channels = check_int("nb201's channels", channels, minimum=1, maximum=1024)
        self.cells_per_stage = check_int("nb201's cells_per_stage", cells_per_stage,
                                         minimum=1, maximum=64)
        self.equivalence = check_choice("nb201's equivalence", equivalence, EQUIVALENCES)

    def config(self) -> dict[str, Any]:
        """Width and depth of the stacked network, and a non-default equivalence (so
        the default keeps the keys, and the stored results, of earlier versions)."""
        cfg: dict[str, Any] = {"channels": self.channels,
                               "cells_per_stage": self.cells_per_stage}
        if self.equivalence != "graph":
            cfg["equivalence"] = self.equivalence
        return cfg

    def size(self) -> int:
        """5^6 = 15,625 decision combinations (before equivalence)."""
        return len(OPS) ** len(EDGES)

    def classes(self) -> int:
        """The number of distinct cells under :attr:`equivalence`: 8,765 or 6,466."""
        if self.equivalence == "nb201":
            return len(_representatives())
        return _graph_classes()

    def decisions(self) -> Sequence[Decision]:
        """One categorical decision per cell edge, over the five operations."""
        return [Categorical(_edge_name(i, j), OPS) for i, j in EDGES]

    def to_graph(self, decisions: Mapping[str, Value]) -> nx.DiGraph:
        """Cell DAG with operations as nodes; ``none`` edges and dead nodes removed.

        Under ``equivalence="nb201"``, the graph of the first cell with the same
        NAS-Bench-201 unique string (:func:`unique_string`)."""
        if self.equivalence == "nb201":
            return _nb201_class_graph(unique_string(decisions))
        return _cell_graph(decisions)

    def build(self, arch: Architecture, task: Any) -> nn.Module:
        """The stacked network for an image task (``input_shape`` = (C, H, W))."""
        shape = image_shape(self.name, task)
        return NB201Network(
            arch.graph, shape[0], int(task.num_classes), self.channels, self.cells_per_stage
        )

    # -- NAS-Bench-201 string format -------------------------------------------

    def to_string(self, arch: Architecture) -> str:
        """The NAS-Bench-201 string, e.g. ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``."""
        groups = []
        for j in range(1, 4):
            groups.append(
                "|" + "|".join(f"{arch.decisions[_edge_name(i, j)]}~{i}" for i in range(j)) + "|"
            )
        return "+".join(groups)

    def from_string(self, text: str) -> Architecture:
        """Parse a NAS-Bench-201 string (the inverse of :meth:`to_string`)."""
        groups = text.strip().split("+")
        decisions: dict[str, str] = {}
        if len(groups) != 3:
            raise InvalidArchitectureError(
                f"nb201 string needs 3 '+'-separated node groups, got {len(groups)}: {text!r}"
            )
        for j, group in enumerate(groups, start=1):
            for token in filter(None, group.split("|")):
                m = re.fullmatch(r"(\w+)~(\d+)", token)
                if not m or int(m.group(2)) >= j:
                    raise InvalidArchitectureError(
                        f"bad nb201 edge {token!r} for node {j}: expected OP~i with i < {j}"
                    )
                decisions[_edge_name(int(m.group(2)), j)] = m.group(1)
        return self.from_decisions(decisions)


@lru_cache(maxsize=1)
def _graph_classes() -> int:
    """Distinct canonical hashes of the 15,625 cells' graphs (computed once)."""
    from naslab.search_spaces.canonical import graph_hash

    return len({graph_hash(_cell_graph(dict(zip(
        (_edge_name(i, j) for i, j in EDGES), ops, strict=True))))
        for ops in itertools.product(OPS, repeat=len(EDGES))})
