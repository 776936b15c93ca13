"""The ensemble network of :class:`~naslab.predictors.gnn.GNNPredictor`.

``members`` graph networks with independent weights run as one network: every
weight carries a leading member dimension, and node states are ``(members, graphs,
nodes, hidden)`` tensors. The families' layers:

* ``gin``: PyTorch Geometric's :class:`~torch_geometric.nn.DenseGINConv` with a
  member-stacked two-layer MLP as its ``nn`` (:class:`EnsembleMLP`; PyG's dense
  layers broadcast over leading dimensions), over the edges in both directions. The
  self-loop is folded into the adjacency once per forward (``add_loop=False``), so a
  layer is one product, as fast as the hand-rolled layer it replaces;
* ``dgin``: :class:`DenseDirectedGINConv`, a directed GIN for DAGs with
  ``DenseGINConv``'s interface (PyG has no dense directed layer): predecessors and
  successors are summed apart and concatenated with the node's own state;
* ``gcn``: :class:`EnsembleGCNConv`, the propagation of PyG's
  :class:`~torch_geometric.nn.DenseGCNConv` (self-loops, symmetric normalisation;
  the tests check it against PyG's layer) with the normalised adjacency computed
  once per forward, not once per layer as ``DenseGCNConv`` does.

Measured and kept out, as slower (``python benchmarks/predictor_layers.py``, which
prints these comparisons; 2-core development machine, torch 2.13 CPU, one thread,
shared with other work, best of 10 rounds):

* PyG's ``to_dense_batch`` + ``to_dense_adj`` for the padding: 3.3 times as long
  for 16 graphs (190 against 57 µs), 2.0 times for 512 (570 against 291 µs);
  :func:`dense_graphs` (index arithmetic on the batch's node offsets) gives the same
  tensors;
* ``DenseGCNConv`` with a member-stacked linear map: a training step 6 % longer at
  minibatches of 16 and 125 (1.88 against 1.77 ms, 4.30 against 4.06 ms), the
  forward 12 % longer;
* ``torch.func.vmap`` over ``stack_module_state`` of PyG's layers unchanged (one
  ``torch.nn.Linear`` per member): training steps 1.2 to 1.6 times as long
  (``dgin``: 3.44 against 2.33 ms at 16, 8.20 against 6.63 ms at 125; ``gin``: 3.24
  against 2.06 and 6.68 against 4.94 ms).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import DenseGINConv

from naslab.predictors.featurize import NODE_FEATURES, GraphBatch

__all__ = [
    "FAMILIES",
    "DenseDirectedGINConv",
    "EnsembleGCNConv",
    "EnsembleLinear",
    "EnsembleMLP",
    "EnsembleNetwork",
    "dense_graphs",
    "gcn_norm_dense",
]

#: The layer families of :class:`EnsembleNetwork`.
FAMILIES: tuple[str, ...] = ("gin", "gcn", "dgin")


class EnsembleLinear(nn.Module):
    """``members`` independent linear maps: ``(members, ..., d_in) -> (members, ..., d_out)``.

    An input whose leading dimension is 1 (``(1, ..., d_in)``) is shared by every
    member. Weights and biases are drawn uniformly from
    ``±1/sqrt(d_in)`` (``torch.nn.Linear``'s bias rule) with ``generator``.
    """

    def __init__(
        self, members: int, d_in: int, d_out: int, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, d_in, d_out))
        self.bias = nn.Parameter(torch.empty(members, 1, d_out))
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw new weights and biases (uniform in ``±1/sqrt(d_in)``)."""
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        with torch.no_grad():
            for p in (self.weight, self.bias):
                p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        members = self.weight.shape[0]
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        if x.shape[0] == members:
            out = torch.baddbmm(self.bias, flat, self.weight)
        else:  # one input shared by every member
            out = torch.matmul(flat, self.weight) + self.bias
        return out.view(members, *x.shape[1:-1], out.shape[-1])


class EnsembleMLP(nn.Module):
    """Two member-stacked linear maps with a ReLU between them."""

    def __init__(
        self, members: int, d_in: int, d_hidden: int, d_out: int,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.a = EnsembleLinear(members, d_in, d_hidden, generator)
        self.b = EnsembleLinear(members, d_hidden, d_out, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(F.relu(self.a(x)))


def gcn_norm_dense(adj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``D^-1/2 (adj + I) D^-1/2`` with self-loops on the real nodes only.

    ``adj`` is ``(graphs, nodes, nodes)`` and symmetric, ``mask`` ``(graphs, nodes)``;
    degrees are clamped at 1, so padding nodes (no edges, no loop) get zero rows.
    This is the propagation matrix of PyG's ``DenseGCNConv`` on the real nodes.
    """
    adj = adj + torch.diag_embed(mask)
    norm = adj.sum(2).clamp(min=1.0).rsqrt()
    return norm.unsqueeze(2) * adj * norm.unsqueeze(1)


class EnsembleGCNConv(nn.Module):
    """A dense GCN layer with a member-stacked linear map: ``norm_adj @ (x W_m + b_m)``.

    ``x`` is ``(members, graphs, nodes, channels)`` and ``norm_adj`` the normalised
    adjacency of :func:`gcn_norm_dense` (shared by the members and the layers). The
    bias is added before the propagation.
    """

    def __init__(self, members: int, channels: int) -> None:
        super().__init__()
        self.lin = EnsembleLinear(members, channels, channels)

    def forward(self, x: torch.Tensor, norm_adj: torch.Tensor) -> torch.Tensor:
        return norm_adj @ self.lin(x)


class DenseDirectedGINConv(nn.Module):
    """A dense directed GIN layer for DAGs: ``nn([x, A^T x, A x])``.

    With ``adj[g, u, v]`` the number of edges ``u -> v`` (as
    :func:`torch_geometric.utils.to_dense_adj` gives it), ``A^T x`` sums each node's
    predecessors and ``A x`` its successors, so the order of operations along a path
    is visible. The interface is :class:`~torch_geometric.nn.DenseGINConv`'s: ``x``
    is ``(..., graphs, nodes, channels)``, ``adj`` ``(graphs, nodes, nodes)``
    (broadcast over leading dimensions) and ``mask`` ``(graphs, nodes)`` zeroes the
    padding nodes' output.
    """

    def __init__(self, nn_module: nn.Module) -> None:
        super().__init__()
        self.nn = nn_module

    def forward(
        self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        out = self.nn(torch.cat([x, adj.transpose(-1, -2) @ x, adj @ x], dim=-1))
        if mask is not None:
            out = out * mask.unsqueeze(-1).to(out.dtype)
        return out


def dense_graphs(batch: GraphBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch padded to dense tensors, as PyG's ``to_dense_batch`` and
    ``to_dense_adj`` pad it (the tests check that), from the batch's node offsets.

    Returns node features ``(graphs, nodes, NODE_FEATURES)``, the adjacency
    ``(graphs, nodes, nodes)`` with ``adj[g, u, v]`` = number of edges ``u -> v``, and
    the float node mask ``(graphs, nodes)``.
    """
    graphs = batch.num_graphs
    counts = batch.node_ptr[1:] - batch.node_ptr[:-1]
    n_max = int(counts.max()) if graphs else 0
    slot = torch.arange(batch.x.shape[0]) - batch.node_ptr[batch.batch]
    x = torch.zeros(graphs, n_max, batch.x.shape[1])
    x[batch.batch, slot] = batch.x
    adj = torch.zeros(graphs, n_max, n_max)
    src, dst = batch.edge_index[0], batch.edge_index[1]
    adj.index_put_((batch.batch[src], slot[src], slot[dst]), torch.ones(src.shape[0]),
                   accumulate=True)
    mask = (torch.arange(n_max).unsqueeze(0) < counts.unsqueeze(1)).to(x.dtype)
    return x, adj, mask


class EnsembleNetwork(nn.Module):
    """The ensemble network: ``(graph batch, graph features) -> (members, graphs)``.

    A member-stacked embedding of the node features, ``layers`` residual
    message-passing layers of ``family`` (ReLU, then dropout while training), and a
    two-layer head on the mean and the sum (over 8) of the node states concatenated
    with the graph-level features. The weights are drawn from a generator seeded
    with ``seed`` (:meth:`reset_parameters`); torch's global RNG is left as it was.
    """

    def __init__(
        self,
        family: str,
        d_graph: int,
        hidden: int,
        layers: int,
        members: int,
        dropout: float,
        seed: int,
    ) -> None:
        super().__init__()
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
        self.family = family
        self.members = members
        self.dropout = dropout
        with torch.random.fork_rng(devices=[]):  # PyG's layers draw initial weights
            self.embed = EnsembleLinear(members, NODE_FEATURES, hidden)
            convs: list[nn.Module] = []
            for _ in range(layers):
                if family == "gin":
                    convs.append(DenseGINConv(EnsembleMLP(members, hidden, hidden, hidden)))
                elif family == "dgin":
                    convs.append(DenseDirectedGINConv(EnsembleMLP(members, 3 * hidden, hidden,
                                                                  hidden)))
                else:
                    convs.append(EnsembleGCNConv(members, hidden))
            self.convs = nn.ModuleList(convs)
            self.head = EnsembleMLP(members, 2 * hidden + d_graph, hidden, 1)
        self.reset_parameters(seed)

    def reset_parameters(self, seed: int) -> None:
        """Draw every weight from a generator seeded with ``seed``, layer by layer."""
        generator = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if isinstance(module, EnsembleLinear):
                module.reset_parameters(generator)

    def forward(self, batch: GraphBatch, graph_x: torch.Tensor) -> torch.Tensor:
        x, adj, mask = dense_graphs(batch)
        if self.family == "gin":  # both directions, and the self-loop of GIN's (1 + eps) x
            adj = adj + adj.transpose(1, 2) + torch.eye(adj.shape[1])
        elif self.family == "gcn":
            adj = gcn_norm_dense(adj + adj.transpose(1, 2), mask)
        h = F.relu(self.embed(x.unsqueeze(0)))  # (members, graphs, nodes, hidden)
        for conv in self.convs:
            # padding nodes have no edges and are left out of the readout: no mask here
            out = conv(h, adj, add_loop=False) if self.family == "gin" else conv(h, adj)
            out = F.relu(out)
            if self.dropout and self.training:
                out = F.dropout(out, self.dropout)
            h = out + h  # residual: keeps early layers' signal and eases optimisation
        node_mask = mask.unsqueeze(-1)
        summed = (h * node_mask).sum(2)  # (members, graphs, hidden)
        mean = summed / node_mask.sum(1).clamp(min=1.0)
        shared = graph_x.unsqueeze(0).expand(self.members, -1, -1)
        return self.head(torch.cat([mean, summed / 8.0, shared], dim=2)).squeeze(2)
