"""The NAS-Bench-101 cell space (``nb101``).

NAS-Bench-101 (Ying et al., ICML 2019; the ``google-research/nasbench`` code) trained
every cell of this space on CIFAR-10. A cell is a DAG of up to 7 vertices: the input
(vertex 0), up to 5 intermediate vertices, each one of ``conv3x3-bn-relu``,
``conv1x1-bn-relu`` or ``maxpool3x3``, and the output (vertex 6), wired by an
upper-triangular adjacency matrix with at most 9 edges.

Decisions: 21 edge bits ``e{i}_{j}`` (``0 <= i < j <= 6``, values ``0``/``1``) and the
operations ``op1`` .. ``op5`` of the intermediate vertices. As in NAS-Bench-101's
``ModelSpec._prune``, vertices that are not on a path from the input to the output
are dropped; a cell whose output is not reached, or whose pruned matrix has more than
9 edges, is refused (:class:`~naslab.core.errors.InvalidArchitectureError`).

The graph (:meth:`NB101Space.to_graph`) is the pruned cell: nodes ``input``,
``output`` and ``v1`` .. ``vk`` (the live intermediate vertices in their order), each
labelled with its operation. Isomorphic cells (the same cell numbered differently,
or with extra dead vertices) get the same canonical hash; the space holds 423,624 of
them (:data:`~naslab.search_spaces.nb101_count.UNIQUE_CELLS`).

Sampling, mutation, crossover and neighbourhoods check the edge bits against a
table of the valid matrices before building anything, so they never produce an
invalid cell. (Optuna samples the declared bits directly: about 26.7% of uniform
draws are invalid, see :func:`~naslab.search_spaces.nb101_count.invalid_fraction`.)

:func:`to_spec`, :func:`from_spec` and :func:`nb101_hash` speak NAS-Bench-101's own
format (``matrix``, ``ops`` lists) and its MD5 graph hash, the key of its table.
"""

from __future__ import annotations

import hashlib
import json
import reprlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from naslab.core.errors import ConfigError, InvalidArchitectureError
from naslab.core.validation import check_int
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace, image_shape
from naslab.search_spaces.canonical import canonical_form
from naslab.search_spaces.decisions import Categorical, Decision, Value
from naslab.search_spaces.nb101_count import (
    MAX_EDGES,
    NUM_VERTICES,
    UNIQUE_CELLS,
    edge_list,
    valid_masks,
    valid_table,
)

if TYPE_CHECKING:
    from torch import nn

__all__ = ["EDGE_NAMES", "OPS", "OP_NAMES", "NB101Space", "from_spec", "nb101_hash", "to_spec"]

#: The operations, in NAS-Bench-101's canonical order (its ``available_ops``).
OPS: tuple[str, ...] = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
INPUT, OUTPUT = "input", "output"
EDGES = edge_list(NUM_VERTICES)
#: The edge decisions, in bit order: ``e0_1, e0_2, ..., e5_6``.
EDGE_NAMES: tuple[str, ...] = tuple(f"e{i}_{j}" for i, j in EDGES)
#: The operation decisions of the intermediate vertices 1..5.
OP_NAMES: tuple[str, ...] = tuple(f"op{v}" for v in range(1, NUM_VERTICES - 1))
_OUT = NUM_VERTICES - 1


def _mask(decisions: Mapping[str, Any]) -> int:
    mask = 0
    for k, name in enumerate(EDGE_NAMES):
        if decisions[name]:
            mask |= 1 << k
    return mask


def _reach(mask: int) -> tuple[set[int], set[int]]:
    """Vertices reached from the input, and vertices that reach the output."""
    fwd, bwd = {0}, {_OUT}
    for k, (i, j) in enumerate(EDGES):  # row-major: i ascending, so sources come first
        if mask >> k & 1 and i in fwd:
            fwd.add(j)
    for k in range(len(EDGES) - 1, -1, -1):
        i, j = EDGES[k]
        if mask >> k & 1 and j in bwd:
            bwd.add(i)
    return fwd, bwd


def _pruned(decisions: Mapping[str, Any]) -> tuple[list[list[int]], list[str]]:
    """The pruned matrix and ops (NAS-Bench-101's ``ModelSpec.matrix/ops``), or an
    :class:`InvalidArchitectureError` naming the problem."""
    mask = _mask(decisions)
    fwd, bwd = _reach(mask)
    if _OUT not in fwd:
        raise InvalidArchitectureError(
            "nb101: no path from the input to the output; a cell needs one (NAS-Bench-101 "
            "refuses such a spec)")
    live = sorted(fwd & bwd)
    pos = {v: n for n, v in enumerate(live)}
    matrix = [[0] * len(live) for _ in live]
    for k, (i, j) in enumerate(EDGES):
        if mask >> k & 1 and i in pos and j in pos:
            matrix[pos[i]][pos[j]] = 1
    edges = sum(map(sum, matrix))
    if edges > MAX_EDGES:
        raise InvalidArchitectureError(
            f"nb101: the pruned cell has {edges} edges; NAS-Bench-101 allows at most "
            f"{MAX_EDGES}")
    ops = [INPUT] + [str(decisions[f"op{v}"]) for v in live[1:-1]] + [OUTPUT]
    return matrix, ops


def _spec_graph(matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> nx.DiGraph:
    n = len(ops)
    names = [INPUT] + [f"v{v}" for v in range(1, n - 1)] + [OUTPUT]
    g = nx.DiGraph()
    for name, op in zip(names, ops):
        g.add_node(name, op=op)
    for i in range(n):
        for j in range(i + 1, n):
            if matrix[i][j]:
                g.add_edge(names[i], names[j])
    return g


def _graph_spec(graph: nx.DiGraph) -> tuple[list[list[int]], list[str]]:
    """The (matrix, ops) of a cell graph, numbered by its canonical form: a
    topological order that breaks ties by canonical position, so isomorphic graphs
    give the same spec (and hence the same network)."""
    labels, edges = json.loads(canonical_form(graph))
    ops = [json.loads(label)["op"] for label in labels]
    n = len(ops)
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for u, w in edges:
        succ[u].append(w)
        indeg[w] += 1
    order: list[int] = []
    ready = sorted(v for v in range(n) if indeg[v] == 0)
    while ready:
        v = ready.pop(0)
        order.append(v)
        for w in succ[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
        ready.sort()
    pos = {v: k for k, v in enumerate(order)}
    matrix = [[0] * n for _ in range(n)]
    for u, w in edges:
        matrix[pos[u]][pos[w]] = 1
    return matrix, [ops[v] for v in order]


class NB101Space(SearchSpace):
    """The NAS-Bench-101 cell space: 423,624 unique cells.

    Args:
        channels: width of the stem and of the first stack (NAS-Bench-101 uses 128);
            5 to 1024 (the output vertex splits its width among up to 5 vertices).
        cells_per_stack: cells in each of the 3 stacks (NAS-Bench-101 uses 3); 1 to 32.

    Raises:
        ConfigError: an option of the wrong type (``1.5``, ``True``) or out of range.
    """

    name = "nb101"
    operations = OPS
    stable_key = True  # a built-in space: its key is its name plus its config

    def __init__(self, channels: int = 16, cells_per_stack: int = 1) -> None:
        self.channels = check_int("nb101's channels", channels, minimum=5, maximum=1024)
        self.cells_per_stack = check_int("nb101's cells_per_stack", cells_per_stack,
                                         minimum=1, maximum=32)

    def config(self) -> dict[str, Any]:
        """Width and depth of the stacked network."""
        return {"channels": self.channels, "cells_per_stack": self.cells_per_stack}

    def decisions(self) -> Sequence[Decision]:
        """21 edge bits ``e{i}_{j}`` (0 or 1), then ``op1`` .. ``op5``."""
        return ([Categorical(name, (0, 1)) for name in EDGE_NAMES]
                + [Categorical(name, OPS) for name in OP_NAMES])

    def to_graph(self, decisions: Mapping[str, Value]) -> nx.DiGraph:
        """The pruned cell as a labelled DAG (refuses an invalid cell, naming why)."""
        return _spec_graph(*_pruned(decisions))

    def build(self, arch: Architecture, task: Any) -> nn.Module:
        """NAS-Bench-101's network for an image task (``input_shape`` = (C, H, W))."""
        from naslab.search_spaces.nb101_network import NB101Network

        shape = image_shape(self.name, task)
        matrix, ops = _graph_spec(arch.graph)
        return NB101Network(matrix, ops, shape[0], int(task.num_classes), self.channels,
                            self.cells_per_stack)

    def size(self) -> int:
        """The number of unique cells, 423,624 (checked by
        :func:`~naslab.search_spaces.nb101_count.count_unique_cells` in the tests)."""
        return UNIQUE_CELLS

    # -- definition checks on valid cells -------------------------------------------

    def probe_set(self) -> list[dict[str, Value]]:
        """Valid probe cells for the definition checks and the fingerprint:
        NAS-Bench-101's README cell (edges 0->1, 0->2, 0->3, 0->5, 3->4 and 1, 2, 4, 5
        -> 6) and three seeded samples (the base class's first values have no edges,
        which is not a valid cell)."""
        readme: dict[str, Value] = dict.fromkeys(EDGE_NAMES, 0)
        readme.update(dict.fromkeys(("e0_1", "e0_2", "e0_3", "e0_5", "e3_4", "e1_6", "e2_6",
                                     "e4_6", "e5_6"), 1))
        readme.update(zip(OP_NAMES, (OPS[1], OPS[0], OPS[0], OPS[0], OPS[2]), strict=True))
        rng = np.random.default_rng(0)
        return [readme] + [dict(self.sample(rng).decisions) for _ in range(3)]

    # -- the generic operators, kept on valid cells -------------------------------

    def _make(self, mask: int, ops: Sequence[str]) -> Architecture:
        decisions: dict[str, Value] = {n: (mask >> k) & 1 for k, n in enumerate(EDGE_NAMES)}
        decisions.update(zip(OP_NAMES, ops))
        return self.from_decisions(decisions)

    def sample(self, rng: np.random.Generator) -> Architecture:
        """A uniformly random valid decision set, as NAS-Bench-101's random search
        (uniform edge bits and operations, invalid cells rejected), drawn directly from
        the table of valid edge masks. Like NAS-Bench-101's, it favours small cells:
        about 10% of draws prune to the bare input->output cell."""
        masks = valid_masks()
        mask = int(masks[int(rng.integers(len(masks)))])
        return self._make(mask, [OPS[int(i)] for i in rng.integers(len(OPS), size=len(OP_NAMES))])

    def _moves(self, arch: Architecture) -> list[dict[str, Value]]:
        """Every single-decision change that keeps the cell valid and changes it (as
        decisions to update), or, where there is none, :meth:`_grow`'s moves.

        An operation change matters only on a live vertex. Flipping an edge ``i->j``
        matters only when ``i`` is reached from the input and ``j`` reaches the output
        (otherwise the edge is pruned before and after); when it matters the pruned
        cell gains or loses that edge, so it is a different cell.
        """
        d = arch.decisions
        mask = _mask(d)
        fwd, bwd = _reach(mask)
        table = valid_table()
        moves: list[tuple[str, Value]] = []
        for k, ((i, j), name) in enumerate(zip(EDGES, EDGE_NAMES)):
            if i in fwd and j in bwd and table[mask ^ (1 << k)]:
                moves.append((name, 1 - int(d[name])))
        for v, name in enumerate(OP_NAMES, start=1):
            if v in fwd and v in bwd:
                moves.extend((name, op) for op in OPS if op != d[name])
        return [{name: value} for name, value in moves] or self._grow(mask)

    @staticmethod
    def _grow(mask: int) -> list[dict[str, Value]]:
        """The moves of a cell with no live intermediate vertex and no edge that
        matters (the bare input->output cell): wire vertex ``v`` between the input
        and the output, with each operation. Never empty: wiring in vertex 5 adds
        only its two edges (nothing it reaches but the output becomes live)."""
        table = valid_table()
        moves: list[dict[str, Value]] = []
        for v, name in enumerate(OP_NAMES, start=1):
            a, b = EDGE_NAMES.index(f"e0_{v}"), EDGE_NAMES.index(f"e{v}_{_OUT}")
            if table[mask | 1 << a | 1 << b]:
                moves.extend({EDGE_NAMES[a]: 1, EDGE_NAMES[b]: 1, name: op} for op in OPS)
        return moves

    def mutate(
        self, arch: Architecture, rng: np.random.Generator, max_tries: int = 50
    ) -> Architecture:
        """Flip one edge or change one operation (NAS-Bench-101's mutation), chosen
        uniformly among the changes that keep the cell valid and change it; the bare
        input->output cell, which has none, gains a vertex (see :meth:`_grow`).
        ``max_tries`` is unused: no draw is wasted."""
        moves = self._moves(arch)
        return self.from_decisions({**arch.decisions, **moves[int(rng.integers(len(moves)))]})

    def neighbours(self, arch: Architecture) -> list[Architecture]:
        """Every distinct cell one edge flip or one operation change away (for the
        bare input->output cell: one vertex added, see :meth:`_grow`)."""
        seen = {arch.hash}
        out: list[Architecture] = []
        for move in self._moves(arch):
            cand = self.from_decisions({**arch.decisions, **move})
            if cand.hash not in seen:
                seen.add(cand.hash)
                out.append(cand)
        return out

    def crossover(self, a: Architecture, b: Architecture, rng: np.random.Generator) -> Architecture:
        """Uniform crossover: each decision from ``a`` or ``b``. The edge bits are
        redrawn (a cheap table look-up) while they make an invalid cell; after 64
        invalid draws the edges of one parent are taken whole."""
        ma, mb = _mask(a.decisions), _mask(b.decisions)
        table = valid_table()
        width = len(EDGE_NAMES)
        mask = ma if rng.integers(2) else mb
        for _ in range(64):
            pick = int(rng.integers(1 << width))
            mixed = (ma & pick) | (mb & ~pick)
            if table[mixed]:
                mask = mixed
                break
        ops = [(a, b)[int(rng.integers(2))].decisions[n] for n in OP_NAMES]
        return self._make(mask, [str(op) for op in ops])


# -- NAS-Bench-101's format ------------------------------------------------------


def to_spec(arch: Architecture) -> tuple[list[list[int]], list[str]]:
    """The pruned cell in NAS-Bench-101's format: ``(matrix, ops)`` as lists, as its
    ``ModelSpec(matrix, ops)`` holds them after pruning (``ops`` starts with
    ``'input'`` and ends with ``'output'``)."""
    _check_arch(arch)
    return _pruned(arch.decisions)


def from_spec(matrix: Any, ops: Any, space: NB101Space | None = None) -> Architecture:
    """An architecture of ``space`` (default ``NB101Space()``) from a NAS-Bench-101
    spec: an ``n x n`` upper-triangular 0/1 matrix (``2 <= n <= 7``, lists or a NumPy
    array) and ``n`` ops, ``'input'`` first and ``'output'`` last. Vertex ``n - 1``
    becomes vertex 6; the unused vertices get no edges."""
    space = NB101Space() if space is None else space
    if not isinstance(space, NB101Space):
        raise ConfigError(f"from_spec: space must be an NB101Space, got {type(space).__name__}")
    rows = _check_matrix(matrix)
    n = len(rows)
    if isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence) or len(ops) != n:
        raise InvalidArchitectureError(
            f"nb101 spec: ops must be a list of {n} operations (one per matrix row), got "
            f"{reprlib.repr(ops)}")
    inner = list(ops[1:-1])
    if ops[0] != INPUT or ops[-1] != OUTPUT or any(op not in OPS for op in inner):
        raise InvalidArchitectureError(
            f"nb101 spec: ops must be 'input', then operations among {list(OPS)}, then "
            f"'output'; got {reprlib.repr(list(ops))}")
    where = list(range(n - 1)) + [_OUT]
    decisions: dict[str, Value] = dict.fromkeys(EDGE_NAMES, 0)
    for i in range(n):
        for j in range(i + 1, n):
            if rows[i][j]:
                decisions[f"e{where[i]}_{where[j]}"] = 1
    decisions.update((f"op{v}", inner[v - 1] if v <= n - 2 else OPS[0])
                     for v in range(1, NUM_VERTICES - 1))
    return space.from_decisions(decisions)


def _check_matrix(matrix: Any) -> list[list[int]]:
    """``matrix`` as a list of 0/1 rows, square, 2..7 vertices, strictly upper-triangular."""
    try:
        if len(matrix) > NUM_VERTICES:  # refused before anything is copied
            raise TypeError
        rows = [list(r) for r in (matrix.tolist() if isinstance(matrix, np.ndarray) else matrix)]
    except TypeError:
        rows = []
    n = len(rows)
    if not 2 <= n <= NUM_VERTICES or any(len(r) != n for r in rows):
        raise InvalidArchitectureError(
            f"nb101 spec: the matrix must be square with 2 to {NUM_VERTICES} rows, got "
            f"{reprlib.repr(matrix)}")
    for i, row in enumerate(rows):
        for j, x in enumerate(row):
            if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x not in (0, 1):
                raise InvalidArchitectureError(
                    f"nb101 spec: matrix[{i}][{j}] = {reprlib.repr(x)}; entries must be the "
                    "integers 0 or 1")
            if x and j <= i:
                raise InvalidArchitectureError(
                    f"nb101 spec: matrix[{i}][{j}] = 1 is on or below the diagonal; the "
                    "matrix must be strictly upper-triangular")
    return [[int(x) for x in r] for r in rows]


def _check_arch(arch: Any) -> None:
    if not isinstance(arch, Architecture) or arch.space != NB101Space.name:
        raise InvalidArchitectureError(
            "expected an nb101 Architecture, got "
            f"{reprlib.repr(getattr(arch, 'space', type(arch).__name__))}")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def nb101_hash(arch: Architecture) -> str:
    """NAS-Bench-101's own MD5 graph hash of ``arch`` (``ModelSpec.hash_spec``), the
    key of its table (``NASBench.get_metrics_from_hash``).

    Each vertex starts from ``(out-degree, in-degree, label)`` (label -1 for the input,
    -2 for the output, the index in :data:`OPS` otherwise); ``n`` rounds of
    refinement hash the sorted in-neighbour hashes, the sorted out-neighbour hashes
    and the vertex's own; the result hashes the sorted vertex hashes.
    """
    matrix, ops = to_spec(arch)
    n = len(ops)
    labels = [-1] + [OPS.index(op) for op in ops[1:-1]] + [-2]
    ins = [sum(matrix[i][v] for i in range(n)) for v in range(n)]
    outs = [sum(row) for row in matrix]
    hashes = [_md5(str((outs[v], ins[v], labels[v]))) for v in range(n)]
    for _ in range(n):
        hashes = [
            _md5("".join(sorted(hashes[u] for u in range(n) if matrix[u][v])) + "|"
                 + "".join(sorted(hashes[w] for w in range(n) if matrix[v][w])) + "|"
                 + hashes[v])
            for v in range(n)
        ]
    return _md5(str(sorted(hashes)))
