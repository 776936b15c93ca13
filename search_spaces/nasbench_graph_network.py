"""The PyTorch Geometric network that executes a NAS-Bench-Graph architecture
(:class:`~naslab.search_spaces.nasbench_graph.NasBenchGraphSpace`); kept apart so
that table searches never import torch."""

from __future__ import annotations

from typing import Any

import networkx as nx
import torch
import torch.nn.functional as F
from torch import nn

from naslab.core.errors import InvalidArchitectureError
from naslab.search_spaces.nasbench_graph import SKIP


class NasBenchGraphNetwork(nn.Module):
    """A GNN that executes a :class:`NasBenchGraphSpace` graph.

    Every layer node applies its operation to its one predecessor, then ReLU;
    dropout is applied to each layer's input. ``skip`` nodes pass their input on.
    The output node sums its predecessors (zeros if it has none) and a linear
    classifier maps the sum to logits.

    ``forward(x, edge_index)`` takes node features ``(num_nodes, in_features)`` and
    a ``(2, num_edges)`` edge index (or a PyG ``Data`` with ``x`` and
    ``edge_index``) and returns logits ``(num_nodes, num_classes)``.
    """

    def __init__(
        self,
        graph: nx.DiGraph,
        in_features: int,
        num_classes: int,
        hidden: int = 64,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.hidden = int(hidden)
        self.dropout = float(dropout)
        self._order = [str(v) for v in nx.lexicographical_topological_sort(graph, key=str)]
        self._op = {str(v): str(graph.nodes[v]["op"]) for v in graph.nodes}
        self._preds = {str(v): sorted(str(u) for u in graph.predecessors(v)) for v in graph.nodes}
        self.layers = nn.ModuleDict()
        for v in self._order:
            op = self._op[v]
            if op in ("input", "output", SKIP):
                continue
            (src,) = self._preds[v]
            width = in_features if self._op[src] == "input" else self.hidden
            self.layers[v] = _make_layer(op, width, self.hidden)
        self.classifier = nn.Linear(self.hidden, int(num_classes))

    def forward(self, x: Any, edge_index: torch.Tensor | None = None) -> torch.Tensor:
        """Logits for every node of the graph given by ``x`` and ``edge_index``."""
        if edge_index is None and hasattr(x, "edge_index"):
            x, edge_index = x.x, x.edge_index
        if edge_index is None:
            raise ValueError("NasBenchGraphNetwork needs an edge_index")
        values: dict[str, torch.Tensor] = {}
        out = None
        for v in self._order:
            op = self._op[v]
            if op == "input":
                values[v] = x
            elif op == SKIP:
                values[v] = values[self._preds[v][0]]
            elif op == "output":
                preds = self._preds[v]
                if preds:
                    out = values[preds[0]]
                    for u in preds[1:]:
                        out = out + values[u]
                else:
                    out = x.new_zeros(x.shape[0], self.hidden)
            else:
                h = F.dropout(values[self._preds[v][0]], self.dropout, self.training)
                layer = self.layers[v]
                h = layer(h) if isinstance(layer, nn.Linear) else layer(h, edge_index)
                values[v] = F.relu(h)
        assert out is not None
        return self.classifier(F.dropout(out, self.dropout, self.training))


def _make_layer(op: str, c_in: int, c_out: int) -> nn.Module:
    """The PyG layer of an operation (NAS-Bench-Graph's nine, less ``skip``)."""
    from torch_geometric import nn as gnn

    if op == "gat":  # GAT with 2 heads (averaged, so the width stays c_out)
        return gnn.GATConv(c_in, c_out, heads=2, concat=False)
    if op == "gcn":
        return gnn.GCNConv(c_in, c_out)
    if op == "gin":
        mlp = nn.Sequential(nn.Linear(c_in, c_out), nn.ReLU(), nn.Linear(c_out, c_out))
        return gnn.GINConv(mlp)
    if op == "cheb":
        return gnn.ChebConv(c_in, c_out, K=2)
    if op == "sage":
        return gnn.SAGEConv(c_in, c_out)
    if op == "arma":
        return gnn.ARMAConv(c_in, c_out)
    if op == "graph":  # k-GNN (Morris et al.)
        return gnn.GraphConv(c_in, c_out)
    if op == "fc":
        return nn.Linear(c_in, c_out)
    raise InvalidArchitectureError(f"nasbench_graph: no layer for operation {op!r}")


__all__ = ["NasBenchGraphNetwork"]
