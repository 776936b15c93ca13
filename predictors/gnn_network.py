"""The ensemble network of :class:`~naslab.predictors.gnn.GNNPredictor`.

``members`` graph networks with independent weights run as one network: every
weight carries a leading member dimension, and node states are ``(members, graphs,
nodes, hidden)`` tensors. PyTorch Geometric's dense layers broadcast over leading
dimensions (their adjacency is broadcastable in the batch dimension), so they run
the members together as they are:

* ``gin``: :class:`torch_geometric.nn.DenseGINConv` whose ``nn`` is a member-stacked
  two-layer MLP (:class:`EnsembleMLP`), over the edges taken in both directions;
* ``gcn``: :class:`EnsembleDenseGCNConv`, PyG's :class:`~torch_geometric.nn.DenseGCNConv`
  (self-loops, symmetric normalisation) with a member-stacked linear map;
* ``dgin``: :class:`DenseDirectedGINConv`, a directed GIN for DAGs that PyG has no
  dense layer for: it aggregates predecessors and successors separately and
  concatenates them with the node's own state before the MLP.

The graphs of a minibatch are padded with :func:`torch_geometric.utils.to_dense_batch`
and :func:`torch_geometric.utils.to_dense_adj`: architecture graphs are small, and
batched dense products are several times faster than sparse scatters at this size.

Why a member dimension rather than ``torch.func.vmap`` over
``stack_module_state``: vmap runs PyG's layers unchanged, but a training step of
the default ``dgin`` ensemble (5 members, hidden 32, 2 layers, one torch thread) took
about twice as long at a minibatch of 16 (18.9 against 9.5 ms, the best of 6 rounds)
and 1.3 times as long at 125 (42.7 against 33.1 ms), measured with
``/tmp/bench/proto.py`` on the 2-core development machine (shared, loaded); see
the report of issue 13.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import DenseGCNConv, DenseGINConv
from torch_geometric.utils import to_dense_adj, to_dense_batch

from naslab.predictors.featurize import NODE_FEATURES, GraphBatch

__all__ = [
    "FAMILIES",
    "DenseDirectedGINConv",
    "EnsembleDenseGCNConv",
    "EnsembleLinear",
    "EnsembleMLP",
    "EnsembleNetwork",
    "dense_graphs",
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


class EnsembleDenseGCNConv(DenseGCNConv):
    """PyG's :class:`~torch_geometric.nn.DenseGCNConv` with a member-stacked linear map.

    The propagation (self-loops, symmetric normalisation, masking) is PyG's; the
    linear map before it is an :class:`EnsembleLinear` with its bias, so node states
    ``(members, graphs, nodes, channels)`` go through every member's own weights.
    """

    def __init__(
        self, members: int, channels: int, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(channels, channels, bias=False)
        self.lin = EnsembleLinear(members, channels, channels, generator)  # type: ignore[assignment]


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
    """The batch padded to dense tensors with PyG's utilities.

    Returns node features ``(graphs, nodes, NODE_FEATURES)``, the adjacency
    ``(graphs, nodes, nodes)`` with ``adj[g, u, v]`` = number of edges ``u -> v``, and
    the float node mask ``(graphs, nodes)``.
    """
    graphs = batch.num_graphs
    x, mask = to_dense_batch(batch.x, batch.batch, batch_size=graphs)
    adj = to_dense_adj(batch.edge_index, batch.batch, batch_size=graphs,
                       max_num_nodes=x.shape[1])
    return x, adj, mask.to(x.dtype)


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
                    convs.append(EnsembleDenseGCNConv(members, hidden))
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
        if self.family != "dgin":
            adj = adj + adj.transpose(1, 2)  # messages along and against the edges
        h = F.relu(self.embed(x.unsqueeze(0)))  # (members, graphs, nodes, hidden)
        for conv in self.convs:
            out = F.relu(conv(h, adj, mask))
            if self.dropout and self.training:
                out = F.dropout(out, self.dropout)
            h = out + h  # residual: keeps early layers' signal and eases optimisation
        node_mask = mask.unsqueeze(-1)
        summed = (h * node_mask).sum(2)  # (members, graphs, hidden)
        mean = summed / node_mask.sum(1).clamp(min=1.0)
        shared = graph_x.unsqueeze(0).expand(self.members, -1, -1)
        return self.head(torch.cat([mean, summed / 8.0, shared], dim=2)).squeeze(2)
