"""Canonical form and hash of a labelled directed graph.

Method: *individualisation-refinement*, the scheme behind nauty and bliss, written
out for the small graphs of NAS (tens of nodes).

1. Every node starts with the colour of its label: the canonical JSON of all its
   attributes (``op`` and any others, such as a width).
2. Colour refinement (directed 1-Weisfeiler-Lehman): a node's new colour is its old
   colour plus the multisets of its in- and out-neighbours' colours, repeated until
   the partition stops splitting. Colours are ordered by their content, never by
   node ids, so the result does not depend on how nodes are named.
3. If a colour class still holds several nodes, each of them is in turn singled out
   and the refinement repeated, recursively, until every node has its own colour.
   Each such leaf orders the nodes; the graph written in that order (labels, then
   the sorted edge list) is a certificate, and the smallest certificate over all
   leaves is the canonical form.

Why this and not a plain Weisfeiler-Lehman hash (as NAS-Bench-101 uses): WL gives
equal hashes to isomorphic graphs, but it can also give equal hashes to some
non-isomorphic ones (regular graphs being the classic case), so two different
architectures could be merged in the store and one of them never trained. The
canonical form here is exact: two graphs get the same certificate if and only if
they are isomorphic with matching labels. Its cost grows with the number of
automorphisms (k identical parallel branches give k! leaves); NAS cells have few,
and ``max_leaves`` guards against pathological inputs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import networkx as nx

from naslab.core.errors import InvalidArchitectureError

_MAX_LEAVES = 200_000


def node_label(attrs: dict[str, Any]) -> str:
    """The canonical label of a node: the sorted JSON of all its attributes."""
    return json.dumps(attrs, sort_keys=True, separators=(",", ":"), default=str)


def _refine(
    colours: dict[Any, int], preds: dict[Any, list[Any]], succs: dict[Any, list[Any]]
) -> dict[Any, int]:
    """Refine a colouring until stable; new colours are ranks of sorted signatures."""
    n_classes = len(set(colours.values()))
    while True:
        sigs = {
            v: (
                colours[v],
                tuple(sorted(colours[u] for u in preds[v])),
                tuple(sorted(colours[w] for w in succs[v])),
            )
            for v in colours
        }
        ranks = {s: i for i, s in enumerate(sorted(set(sigs.values())))}
        new = {v: ranks[sigs[v]] for v in colours}
        new_classes = len(ranks)
        if new_classes == n_classes:
            return new
        colours, n_classes = new, new_classes


def canonical_form(graph: nx.DiGraph, max_leaves: int = _MAX_LEAVES) -> str:
    """A string that is equal for two graphs iff they are label-isomorphic.

    Node attributes form the labels; edge attributes are ignored (spaces that put
    operations on edges turn them into nodes first). Raises
    :class:`InvalidArchitectureError` if the search would exceed ``max_leaves``.
    """
    nodes = list(graph.nodes)
    labels = {v: node_label(dict(graph.nodes[v])) for v in nodes}
    label_rank = {lab: i for i, lab in enumerate(sorted(set(labels.values())))}
    preds = {v: list(graph.predecessors(v)) for v in nodes}
    succs = {v: list(graph.successors(v)) for v in nodes}
    start = _refine({v: label_rank[labels[v]] for v in nodes}, preds, succs)

    best: list[str | None] = [None]
    leaves = [0]

    def certificate(colours: dict[Any, int]) -> str:
        order = sorted(nodes, key=colours.__getitem__)
        index = {v: i for i, v in enumerate(order)}
        edges = sorted((index[u], index[w]) for u, w in graph.edges)
        return json.dumps([[labels[v] for v in order], edges], separators=(",", ":"))

    def search(colours: dict[Any, int]) -> None:
        classes: dict[int, list[Any]] = {}
        for v, c in colours.items():
            classes.setdefault(c, []).append(v)
        tied = [c for c, members in classes.items() if len(members) > 1]
        if not tied:
            leaves[0] += 1
            if leaves[0] > max_leaves:
                raise InvalidArchitectureError(
                    f"graph has too many symmetries to canonicalise (> {max_leaves} "
                    "orderings); reduce its identical parallel branches"
                )
            cert = certificate(colours)
            if best[0] is None or cert < best[0]:
                best[0] = cert
            return
        target = min(tied)
        for v in classes[target]:
            # Single out v: it keeps the class's colour, the others move up by a
            # half step (doubling keeps colours integral and order-preserving).
            split = {u: 2 * c + (1 if c == target and u != v else 0) for u, c in colours.items()}
            search(_refine(split, preds, succs))

    search(start)
    assert best[0] is not None or not nodes
    return best[0] or "[[],[]]"


def graph_hash(graph: nx.DiGraph) -> str:
    """SHA-256 (hex) of :func:`canonical_form`: equal iff the graphs are isomorphic."""
    return hashlib.sha256(canonical_form(graph).encode()).hexdigest()
