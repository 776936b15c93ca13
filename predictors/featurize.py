"""Architecture graphs as GNN inputs: node features over a vocabulary shared by all spaces.

Every node of an architecture's DAG becomes a feature vector made of:

* **its operation**, one-hot over :data:`OP_VOCABULARY`, a fixed list of the
  operations of the built-in spaces and of the usual NAS spaces (NAS-Bench-101,
  NAS-Bench-201, DARTS, NAS-Bench-Graph). Synonyms share a slot (``skip``,
  ``skip_connect`` and ``identity`` are all ``identity``; ``nor_conv_3x3`` and
  ``conv3x3-bn-relu`` are both ``conv3x3``), so a predictor trained on one space
  can be applied to another. An operation outside the vocabulary (a user's own
  label) goes to one of :data:`N_OP_BUCKETS` extra slots chosen by a stable hash of
  its name, so user-defined spaces need no registration;
* **its other attributes** (a chain layer's ``width``, ``kernel``, ``activation``):
  a number goes to one of :data:`N_NUMERIC_SLOTS` slots chosen by a hash of the
  attribute's name, as ``sign(v) * log2(1 + |v|)``; any other value sets one of
  :data:`N_ATTRIBUTE_BUCKETS` slots chosen by a hash of ``"name=value"``;
* **its place in the graph**: ``log1p`` of its in-degree, its out-degree, its depth
  (longest path from the input) and its height (longest path to the output).

Each graph also gets graph-level features: ``log1p`` of its node count, edge count
and longest input-output path; callers may append their own per-architecture
numbers (zero-cost proxies, parameters, FLOPs) to these.

:func:`featurize` turns one architecture into a PyTorch Geometric ``Data`` object;
:class:`Featurizer` turns many at once into a :class:`GraphBatch` (the same
content, concatenated, with caches so that scoring 100,000 candidates is quick).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from naslab.search_spaces.architecture import Architecture

if TYPE_CHECKING:
    from torch_geometric.data import Batch, Data

__all__ = [
    "FEATURE_VERSION",
    "N_GLOBAL_FEATURES",
    "NODE_FEATURES",
    "OP_ALIASES",
    "OP_VOCABULARY",
    "Featurizer",
    "GraphBatch",
    "featurize",
    "op_slot",
]

#: Bumped whenever the feature layout changes; saved predictors record it.
FEATURE_VERSION = 1

#: The shared operation vocabulary (canonical names).
OP_VOCABULARY: tuple[str, ...] = (
    # graph plumbing
    "input",
    "output",
    "add",
    "concat",
    "identity",
    "zero",
    # convolutions and pooling (NAS-Bench-101/201, DARTS, chains)
    "conv",
    "conv1x1",
    "conv3x3",
    "conv5x5",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "avg_pool_3x3",
    "max_pool_3x3",
    "proj",
    "linear",
    # graph neural network layers (NAS-Bench-Graph)
    "gat",
    "gcn",
    "gin",
    "cheb",
    "sage",
    "arma",
    "graph",
)

#: Synonyms mapped onto a canonical vocabulary entry.
OP_ALIASES: Mapping[str, str] = {
    "skip": "identity",
    "skip_connect": "identity",
    "none": "zero",
    "nor_conv_1x1": "conv1x1",
    "conv1x1-bn-relu": "conv1x1",
    "conv_1x1": "conv1x1",
    "nor_conv_3x3": "conv3x3",
    "conv3x3-bn-relu": "conv3x3",
    "conv_3x3": "conv3x3",
    "conv_5x5": "conv5x5",
    "maxpool3x3": "max_pool_3x3",
    "avgpool3x3": "avg_pool_3x3",
    "fc": "linear",
    "dense": "linear",
    "graphconv": "graph",
}

N_OP_BUCKETS = 16
N_NUMERIC_SLOTS = 8
N_ATTRIBUTE_BUCKETS = 16
N_STRUCTURE = 4
#: Width of a node's feature vector.
NODE_FEATURES = (
    len(OP_VOCABULARY) + N_OP_BUCKETS + N_NUMERIC_SLOTS + N_ATTRIBUTE_BUCKETS + N_STRUCTURE
)
#: Number of graph-level features computed from the graph itself.
N_GLOBAL_FEATURES = 3

_OP_INDEX = {name: i for i, name in enumerate(OP_VOCABULARY)}
_NUMERIC_OFFSET = len(OP_VOCABULARY) + N_OP_BUCKETS
_ATTRIBUTE_OFFSET = _NUMERIC_OFFSET + N_NUMERIC_SLOTS
_STRUCTURE_OFFSET = _ATTRIBUTE_OFFSET + N_ATTRIBUTE_BUCKETS


def _stable_hash(text: str, buckets: int) -> int:
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % buckets


def op_slot(op: Any) -> int:
    """The one-hot position of an operation label (vocabulary entry or hash bucket)."""
    name = str(op).lower()
    name = OP_ALIASES.get(name, name)
    index = _OP_INDEX.get(name)
    if index is not None:
        return index
    return len(OP_VOCABULARY) + _stable_hash(name, N_OP_BUCKETS)


def _signed_log2(value: float) -> float:
    return math.copysign(math.log2(1.0 + abs(value)), value)


def _token_row(attrs: Mapping[str, Any]) -> np.ndarray:
    """Feature vector of a node's labels (operation and other attributes)."""
    row = np.zeros(_STRUCTURE_OFFSET, dtype=np.float32)
    row[op_slot(attrs.get("op"))] = 1.0
    for key in sorted(attrs):
        if key == "op":
            continue
        value = attrs[key]
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            if math.isfinite(float(value)):
                slot = _NUMERIC_OFFSET + _stable_hash(str(key), N_NUMERIC_SLOTS)
                row[slot] += _signed_log2(float(value))
        else:
            slot = _ATTRIBUTE_OFFSET + _stable_hash(f"{key}={value}", N_ATTRIBUTE_BUCKETS)
            row[slot] += 1.0
    return row


def _structure(n: int, edges: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per-node structure features and graph-level features of a DAG given by index."""
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    outdeg = [0] * n
    for u, v in edges:
        succ[u].append(v)
        indeg[v] += 1
        outdeg[u] += 1
    # topological order (Kahn); the graphs are DAGs (checked by their spaces)
    pending = list(indeg)
    order = [v for v in range(n) if pending[v] == 0]
    for u in order:
        for v in succ[u]:
            pending[v] -= 1
            if pending[v] == 0:
                order.append(v)
    depth = [0] * n
    for u in order:
        for v in succ[u]:
            depth[v] = max(depth[v], depth[u] + 1)
    height = [0] * n
    for u in reversed(order):
        for v in succ[u]:
            height[u] = max(height[u], height[v] + 1)
    feats = np.log1p(np.array([indeg, outdeg, depth, height], dtype=np.float32).T)
    longest = max(depth) if n else 0
    globals_ = np.log1p(np.array([n, len(edges), longest], dtype=np.float32))
    return feats.reshape(n, N_STRUCTURE), globals_


@dataclass
class GraphBatch:
    """Many featurized graphs, concatenated (the layout of a PyG ``Batch``).

    Attributes:
        x: node features, ``(n_nodes, NODE_FEATURES)`` float32.
        edge_index: ``(2, n_edges)`` int64, node indices into ``x``.
        batch: ``(n_nodes,)`` int64, the graph each node belongs to.
        node_ptr: ``(n_graphs + 1,)`` int64, graph ``g``'s nodes are
            ``node_ptr[g]:node_ptr[g+1]``.
        edge_ptr: ``(n_graphs + 1,)`` int64, the same for edges.
        graph_x: ``(n_graphs, N_GLOBAL_FEATURES)`` float32 graph-level features.
    """

    x: torch.Tensor
    edge_index: torch.Tensor
    batch: torch.Tensor
    node_ptr: torch.Tensor
    edge_ptr: torch.Tensor
    graph_x: torch.Tensor

    @property
    def num_graphs(self) -> int:
        """Number of graphs."""
        return int(self.node_ptr.shape[0] - 1)

    def select(self, index: torch.Tensor | np.ndarray | Sequence[int]) -> GraphBatch:
        """The graphs at ``index`` (in that order) as a new batch, without Python loops."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        n_nodes = self.node_ptr[idx + 1] - self.node_ptr[idx]
        n_edges = self.edge_ptr[idx + 1] - self.edge_ptr[idx]
        new_node_ptr = torch.zeros(len(idx) + 1, dtype=torch.long)
        new_node_ptr[1:] = torch.cumsum(n_nodes, 0)
        new_edge_ptr = torch.zeros(len(idx) + 1, dtype=torch.long)
        new_edge_ptr[1:] = torch.cumsum(n_edges, 0)
        graph_of_node = torch.repeat_interleave(torch.arange(len(idx)), n_nodes)
        node_src = (
            torch.arange(int(new_node_ptr[-1]))
            - new_node_ptr[graph_of_node]
            + self.node_ptr[idx][graph_of_node]
        )
        graph_of_edge = torch.repeat_interleave(torch.arange(len(idx)), n_edges)
        edge_src = (
            torch.arange(int(new_edge_ptr[-1]))
            - new_edge_ptr[graph_of_edge]
            + self.edge_ptr[idx][graph_of_edge]
        )
        shift = (new_node_ptr[graph_of_edge] - self.node_ptr[idx][graph_of_edge]).unsqueeze(0)
        return GraphBatch(
            x=self.x[node_src],
            edge_index=self.edge_index[:, edge_src] + shift,
            batch=graph_of_node,
            node_ptr=new_node_ptr,
            edge_ptr=new_edge_ptr,
            graph_x=self.graph_x[idx],
        )

    def to_pyg(self) -> Batch:
        """The same graphs as a PyTorch Geometric ``Batch``."""
        from torch_geometric.data import Batch, Data

        graphs = []
        for g in range(self.num_graphs):
            a, b = int(self.node_ptr[g]), int(self.node_ptr[g + 1])
            c, d = int(self.edge_ptr[g]), int(self.edge_ptr[g + 1])
            graphs.append(
                Data(
                    x=self.x[a:b],
                    edge_index=self.edge_index[:, c:d] - a,
                    graph_x=self.graph_x[g : g + 1],
                )
            )
        return Batch.from_data_list(graphs)


class Featurizer:
    """Turns architectures into a :class:`GraphBatch`, caching what repeats.

    Label vectors are cached per distinct node label set, and a graph's structure
    (edge list and structure features) per distinct wiring, so featurizing many
    architectures of one space costs a few microseconds each. Apart from those
    caches it keeps no state: two featurizers give identical output.
    """

    def __init__(self) -> None:
        self._tokens: dict[Any, int] = {}
        self._token_rows: list[np.ndarray] = []
        self._table = np.zeros((0, _STRUCTURE_OFFSET), dtype=np.float32)
        self._labels: dict[tuple, np.ndarray] = {}
        # wiring key -> (structure features, graph features, edge array)
        self._structures: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _token(self, attrs: Mapping[str, Any]) -> int:
        key = _label_key(attrs)
        token = self._tokens.get(key)
        if token is None:
            token = len(self._token_rows)
            self._token_rows.append(_token_row(attrs))
            self._tokens[key] = token
        return token

    def _structure(self, succ: Mapping[Any, Mapping[Any, Any]], key: tuple) -> tuple:
        index = {v: i for i, v in enumerate(succ)}
        edges = tuple((index[u], index[v]) for u, nbrs in succ.items() for v in nbrs)
        feats, glob = _structure(len(index), edges)
        edge_array = np.array(edges, dtype=np.int64).reshape(-1, 2).T.copy()
        cached = (feats, glob, edge_array)
        self._structures[key] = cached
        return cached

    def __call__(self, archs: Sequence[Architecture]) -> GraphBatch:
        """Featurize ``archs`` (in order) into one batch."""
        token_parts: list[np.ndarray] = []
        struct_parts: list[np.ndarray] = []
        edge_parts: list[np.ndarray] = []
        globals_: list[np.ndarray] = []
        labels_cache, structures = self._labels, self._structures
        for arch in archs:
            graph = arch.graph
            nodes = graph._node  # node -> attributes (networkx's own dict)
            succ = graph._succ  # node -> successors, in the same node order
            lkey = tuple(
                a["op"] if len(a) == 1 and "op" in a else _label_key(a) for a in nodes.values()
            )
            tokens = labels_cache.get(lkey)
            if tokens is None:
                tokens = np.array([self._token(a) for a in nodes.values()], dtype=np.int64)
                labels_cache[lkey] = tokens
            skey = tuple((u, *nbrs) for u, nbrs in succ.items())
            cached = structures.get(skey)
            if cached is None:
                cached = self._structure(succ, skey)
            token_parts.append(tokens)
            struct_parts.append(cached[0])
            globals_.append(cached[1])
            edge_parts.append(cached[2])
        n = len(archs)
        n_nodes = np.fromiter((len(t) for t in token_parts), dtype=np.int64, count=n)
        n_edges = np.fromiter((e.shape[1] for e in edge_parts), dtype=np.int64, count=n)
        node_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(n_nodes, out=node_ptr[1:])
        edge_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(n_edges, out=edge_ptr[1:])
        if len(self._table) != len(self._token_rows):
            self._table = np.stack(self._token_rows).astype(np.float32)
        x = np.empty((int(node_ptr[-1]), NODE_FEATURES), dtype=np.float32)
        if n:
            x[:, :_STRUCTURE_OFFSET] = self._table[np.concatenate(token_parts)]
            x[:, _STRUCTURE_OFFSET:] = np.concatenate(struct_parts)
            edge_index = np.concatenate(edge_parts, axis=1) + np.repeat(node_ptr[:-1], n_edges)
            graph_x = np.stack(globals_)
        else:
            edge_index = np.zeros((2, 0), dtype=np.int64)
            graph_x = np.zeros((0, N_GLOBAL_FEATURES), dtype=np.float32)
        batch = np.repeat(np.arange(n, dtype=np.int64), n_nodes)
        return GraphBatch(
            x=torch.from_numpy(x),
            edge_index=torch.from_numpy(edge_index),
            batch=torch.from_numpy(batch),
            node_ptr=torch.from_numpy(node_ptr),
            edge_ptr=torch.from_numpy(edge_ptr),
            graph_x=torch.from_numpy(graph_x),
        )


def _label_key(attrs: Mapping[str, Any]) -> Any:
    """A hashable key of a node's labels (its ``op`` alone when it has no others)."""
    if len(attrs) == 1 and "op" in attrs:
        return attrs["op"]
    return tuple(sorted((str(k), repr(v)) for k, v in attrs.items()))


def featurize(arch: Architecture, features: Sequence[float] | None = None) -> Data:
    """One architecture as a PyTorch Geometric ``Data`` object.

    ``x`` holds the node features (see the module docstring), ``edge_index`` the
    DAG's edges, ``graph_x`` (shape ``(1, k)``) the graph-level features followed
    by ``features``, if given (e.g. zero-cost proxies of this architecture).
    """
    from torch_geometric.data import Data

    batch = Featurizer()([arch])
    graph_x = batch.graph_x
    if features is not None:
        extra = torch.as_tensor(np.asarray(features, dtype=np.float32)).reshape(1, -1)
        graph_x = torch.cat([graph_x, extra], dim=1)
    return Data(x=batch.x, edge_index=batch.edge_index, graph_x=graph_x)
