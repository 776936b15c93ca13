"""NAS-Bench-101 cells as bits: validity tables and the exact count of unique cells.

A cell of ``n`` vertices (input ``0``, output ``n - 1``) is an upper-triangular
adjacency matrix, stored as an integer whose bit ``k`` is the edge
:func:`edge_list`\\ ``(n)[k]`` (row-major: ``0->1, 0->2, ..., 0->n-1, 1->2, ...``).
Everything here works on NumPy arrays of such masks, so that the 2^21 matrices of
the 7-vertex cell are checked at once.

Pruning follows NAS-Bench-101's ``ModelSpec._prune``: a vertex is *live* when it is
reached from the input and reaches the output; the others are dropped. A matrix is
valid when the output is reached and its pruned form has at most 9 edges.

:func:`count_unique_cells` counts the cells up to isomorphism (NAS-Bench-101's
``generate_graphs.py`` found 423,624 for 7 vertices, 9 edges and 3 operations)
without building a graph: for each vertex count it keeps the *full* matrices (every
vertex live, so each equals its pruned form), puts each in a canonical form (the
smallest bit pattern over all permutations of the intermediate vertices), and counts
the labellings of each structure up to its automorphisms with Burnside's lemma
(``num_ops ** cycles`` fixed labellings per automorphism).
"""

from __future__ import annotations

import itertools
from functools import cache, lru_cache

import numpy as np

from naslab.core.validation import check_int

__all__ = [
    "MAX_EDGES",
    "NUM_VERTICES",
    "UNIQUE_CELLS",
    "count_unique_cells",
    "edge_list",
    "invalid_fraction",
    "live_vertices",
    "valid_masks",
    "valid_table",
]

#: Vertices of a NAS-Bench-101 cell (input, 5 intermediate, output).
NUM_VERTICES = 7
#: Most edges a (pruned) NAS-Bench-101 cell may have.
MAX_EDGES = 9
#: The number of unique cells NAS-Bench-101 reports (and :func:`count_unique_cells`
#: computes) for 7 vertices, 9 edges and 3 operations.
UNIQUE_CELLS = 423_624


@cache
def edge_list(n: int = NUM_VERTICES) -> tuple[tuple[int, int], ...]:
    """The upper-triangular positions ``(i, j)``, ``i < j``, in bit order."""
    return tuple((i, j) for i in range(n) for j in range(i + 1, n))


def live_vertices(masks: np.ndarray, n: int = NUM_VERTICES) -> tuple[np.ndarray, np.ndarray]:
    """``(live, pruned_edges)`` for an array of edge masks of ``n``-vertex cells.

    ``live`` has shape ``masks.shape + (n,)``: vertex ``v`` is live when it lies on a
    path from the input to the output (the output is live iff it is reached).
    ``pruned_edges`` counts the edges between live vertices.
    """
    masks = np.asarray(masks, dtype=np.int64)
    index = {e: k for k, e in enumerate(edge_list(n))}

    def bit(i: int, j: int) -> np.ndarray:
        return ((masks >> index[(i, j)]) & 1).astype(bool)

    fwd = [np.ones(masks.shape, dtype=bool)] + [np.zeros(masks.shape, dtype=bool)] * (n - 1)
    for j in range(1, n):
        fwd[j] = np.logical_or.reduce([fwd[i] & bit(i, j) for i in range(j)])
    bwd = [np.zeros(masks.shape, dtype=bool)] * (n - 1) + [np.ones(masks.shape, dtype=bool)]
    for i in range(n - 2, -1, -1):
        bwd[i] = np.logical_or.reduce([bwd[j] & bit(i, j) for j in range(i + 1, n)])
    live = np.stack([f & b for f, b in zip(fwd, bwd)], axis=-1)
    edges = np.zeros(masks.shape, dtype=np.int64)
    for i, j in index:
        edges += bit(i, j) & live[..., i] & live[..., j]
    return live, edges


@lru_cache(maxsize=1)
def valid_table() -> np.ndarray:
    """A read-only boolean array over all 2^21 edge masks of the 7-vertex cell:
    True where the output is reached and the pruned cell has at most 9 edges.
    Computed once per process (a fraction of a second, 2 MiB)."""
    masks = np.arange(1 << len(edge_list()), dtype=np.int64)
    live, edges = live_vertices(masks)
    table = live[:, NUM_VERTICES - 1] & (edges <= MAX_EDGES)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=1)
def valid_masks() -> np.ndarray:
    """The valid 7-vertex edge masks, ascending (read-only)."""
    out = np.flatnonzero(valid_table()).astype(np.int64)
    out.setflags(write=False)
    return out


def invalid_fraction() -> float:
    """The share of uniformly drawn edge decisions (each of the 21 bits a fair coin)
    that make no valid cell: no input-output path, or more than 9 pruned edges.
    The operations never make a cell invalid."""
    table = valid_table()
    return float(1.0 - table.sum() / table.size)


def _full_masks(n: int, max_edges: int) -> np.ndarray:
    """The ``n``-vertex masks whose every vertex is live, with <= ``max_edges`` edges."""
    masks = np.arange(1 << len(edge_list(n)), dtype=np.int64)
    live, edges = live_vertices(masks, n)
    return masks[live.all(axis=-1) & (edges <= max_edges)]


def _orbits(masks: np.ndarray, n: int, num_ops: int) -> int:
    """Labelled cells (each intermediate vertex one of ``num_ops`` operations) up to
    isomorphism, for the full ``n``-vertex structures ``masks``."""
    if masks.size == 0:
        return 0
    edges = edge_list(n)
    bits = [((masks >> k) & 1) for k in range(len(edges))]
    identity = np.zeros_like(masks)
    for (i, j), b in zip(edges, bits):
        identity |= b << (i * n + j)
    canon = identity.copy()
    fixed_sum = np.zeros_like(masks)  # sum over automorphisms of num_ops ** cycles
    auts = np.zeros_like(masks)
    inner = list(range(1, n - 1))
    for perm in itertools.permutations(inner):
        p = [0, *perm, n - 1]
        moved = np.zeros_like(masks)
        for (i, j), b in zip(edges, bits):
            moved |= b << (p[i] * n + p[j])
        np.minimum(canon, moved, out=canon)
        same = moved == identity
        auts += same
        fixed_sum += same * num_ops ** _cycles(p[1:-1], inner)
    _, first = np.unique(canon, return_index=True)
    assert np.all(fixed_sum[first] % auts[first] == 0)
    return int((fixed_sum[first] // auts[first]).sum())


def _cycles(image: list[int], domain: list[int]) -> int:
    """Cycles of the permutation mapping ``domain[k]`` to ``image[k]``."""
    where = dict(zip(domain, image))
    seen: set[int] = set()
    count = 0
    for start in domain:
        if start in seen:
            continue
        count += 1
        v = start
        while v not in seen:
            seen.add(v)
            v = where[v]
    return count


def count_unique_cells(max_vertices: int = NUM_VERTICES, max_edges: int = MAX_EDGES,
                       num_ops: int = 3) -> int:
    """The number of cells up to isomorphism (NAS-Bench-101's 423,624 by default).

    A cell has 2 to ``max_vertices`` vertices, every vertex on an input-output path,
    at most ``max_edges`` edges and one of ``num_ops`` operations on each
    intermediate vertex. Bounds: ``max_vertices`` 2..7, ``max_edges`` 0..21,
    ``num_ops`` 1..16. Takes a few seconds for the defaults.
    """
    max_vertices = check_int("max_vertices", max_vertices, minimum=2, maximum=NUM_VERTICES)
    max_edges = check_int("max_edges", max_edges, minimum=0, maximum=len(edge_list()))
    num_ops = check_int("num_ops", num_ops, minimum=1, maximum=16)
    return sum(_orbits(_full_masks(n, max_edges), n, num_ops)
               for n in range(2, max_vertices + 1))
