"""GNN ensemble layers: the network as shipped against the PyG paths kept out.

:class:`naslab.predictors.gnn_network.EnsembleNetwork` runs the members of a deep
ensemble as one network whose weights carry a leading member dimension. It uses
PyTorch Geometric's ``DenseGINConv`` (with a member-stacked MLP) and
``torch.optim.Adam``; three PyG paths were measured slower and kept out, and this
script measures them again, per family, on NAS-Bench-Graph cora graphs:

* ``vmap``: PyG's layers entirely unchanged (``DenseGINConv``, ``DenseGCNConv``
  and ``torch.nn.Linear``, one module per member), vectorised with
  ``torch.func.stack_module_state`` + ``functional_call`` + ``vmap``;
* ``DenseGCNConv``: the ``gcn`` family through PyG's ``DenseGCNConv`` with a
  member-stacked linear map (it normalises the adjacency in every layer; the
  shipped layer normalises once per forward);
* ``to_dense_batch`` + ``to_dense_adj``: PyG's padding of a batch, against
  :func:`~naslab.predictors.gnn_network.dense_graphs` (same tensors).

Figures: a training step (forward, pairwise loss, backward, ``torch.optim.Adam``
with ``fused=True``) at minibatches of 16 and 125 (the defaults' sizes for 100 and
1,000 training architectures), in ms; a forward pass over chunks of 512 graphs (as
``predict`` does), in s per 100,000 graphs; the padding of 16, 125 and 512 graphs,
in µs. Each is the best (and the median) of ``--rounds`` rounds, the variants taking
turns within a round, so a load that drifts touches them alike. Networks: 5
members, hidden 32, 2 layers; one torch thread (``--threads``).

Run: ``python benchmarks/predictor_layers.py`` (about a minute) or ``--quick``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch_geometric.nn import DenseGCNConv, DenseGINConv
from torch_geometric.utils import to_dense_adj, to_dense_batch

from naslab.predictors.featurize import NODE_FEATURES, Featurizer, GraphBatch
from naslab.predictors.gnn_network import (
    FAMILIES,
    EnsembleLinear,
    EnsembleNetwork,
    dense_graphs,
)
from naslab.predictors.gnn_training import masked_pairwise
from naslab.workers.benchmark_table import all_architectures


class _MLP(nn.Sequential):
    def __init__(self, d_in: int, d_hidden: int, d_out: int) -> None:
        super().__init__(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out))


class _DirectedGIN(nn.Module):
    def __init__(self, mlp: nn.Module) -> None:
        super().__init__()
        self.nn = mlp

    def forward(self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.nn(torch.cat([x, adj.transpose(-1, -2) @ x, adj @ x], dim=-1))
        return out * mask.unsqueeze(-1)


class _Member(nn.Module):
    """One member with PyG's layers unchanged (the same architecture as a member of
    :class:`EnsembleNetwork`)."""

    def __init__(self, family: str, d_graph: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.family = family
        self.embed = nn.Linear(NODE_FEATURES, hidden)
        make: dict[str, Callable[[], nn.Module]] = {
            "gin": lambda: DenseGINConv(_MLP(hidden, hidden, hidden)),
            "gcn": lambda: DenseGCNConv(hidden, hidden),
            "dgin": lambda: _DirectedGIN(_MLP(3 * hidden, hidden, hidden)),
        }
        self.convs = nn.ModuleList(make[family]() for _ in range(layers))
        self.head = _MLP(2 * hidden + d_graph, hidden, 1)

    def forward(self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor,
                graph_x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.embed(x))
        for conv in self.convs:
            h = F.relu(conv(h, adj, mask)) + h
        node_mask = mask.unsqueeze(-1)
        summed = (h * node_mask).sum(1)
        mean = summed / node_mask.sum(1).clamp(min=1.0)
        return self.head(torch.cat([mean, summed / 8.0, graph_x], dim=-1)).squeeze(-1)


class VmapEnsemble(nn.Module):
    """``members`` :class:`_Member` networks stacked with ``torch.func`` and run by vmap."""

    def __init__(self, family: str, d_graph: int, hidden: int, layers: int, members: int,
                 seed: int) -> None:
        super().__init__()
        self.family = family
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            nets = [_Member(family, d_graph, hidden, layers) for _ in range(members)]
        params, buffers = stack_module_state(nets)  # type: ignore[arg-type]
        self.names = list(params)
        self.stacked = nn.ParameterList(nn.Parameter(params[k].detach()) for k in self.names)
        self.buffers_ = buffers
        template = _Member(family, d_graph, hidden, layers).to("meta")

        def one(p: dict, b: dict, *inputs: torch.Tensor) -> torch.Tensor:
            return functional_call(template, (p, b), inputs)

        self.call = vmap(one, in_dims=(0, 0, None, None, None, None))

    def forward(self, batch: GraphBatch, graph_x: torch.Tensor) -> torch.Tensor:
        x, adj, mask = dense_graphs(batch)
        if self.family != "dgin":
            adj = adj + adj.transpose(1, 2)
        params = dict(zip(self.names, self.stacked))
        return self.call(params, self.buffers_, x, adj, mask, graph_x)


class _DenseGCNConvEnsemble(DenseGCNConv):
    """PyG's ``DenseGCNConv`` with a member-stacked linear map (bias before propagation)."""

    def __init__(self, members: int, channels: int) -> None:
        super().__init__(channels, channels, bias=False)
        self.lin = EnsembleLinear(members, channels, channels)  # type: ignore[assignment]


class DenseGCNConvNetwork(EnsembleNetwork):
    """The ``gcn`` family through PyG's ``DenseGCNConv`` (normalised in every layer)."""

    def __init__(self, d_graph: int, hidden: int, layers: int, members: int, seed: int) -> None:
        super().__init__("gcn", d_graph, hidden, layers, members, 0.0, seed)
        with torch.random.fork_rng(devices=[]):
            self.convs = nn.ModuleList(_DenseGCNConvEnsemble(members, hidden)
                                       for _ in range(layers))
        self.reset_parameters(seed)

    def forward(self, batch: GraphBatch, graph_x: torch.Tensor) -> torch.Tensor:
        x, adj, mask = dense_graphs(batch)
        adj = adj + adj.transpose(1, 2)
        h = F.relu(self.embed(x.unsqueeze(0)))
        for conv in self.convs:
            h = F.relu(conv(h, adj, mask)) + h
        node_mask = mask.unsqueeze(-1)
        summed = (h * node_mask).sum(2)
        mean = summed / node_mask.sum(1).clamp(min=1.0)
        shared = graph_x.unsqueeze(0).expand(self.members, -1, -1)
        return self.head(torch.cat([mean, summed / 8.0, shared], dim=2)).squeeze(2)


def pyg_dense_graphs(batch: GraphBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`dense_graphs` through PyG's ``to_dense_batch`` and ``to_dense_adj``."""
    x, mask = to_dense_batch(batch.x, batch.batch, batch_size=batch.num_graphs)
    adj = to_dense_adj(batch.edge_index, batch.batch, batch_size=batch.num_graphs,
                       max_num_nodes=x.shape[1])
    return x, adj, mask.to(x.dtype)


def _train_block(net: nn.Module, optimiser: torch.optim.Optimizer, batch: GraphBatch,
                 y: torch.Tensor, size: int, rng: np.random.Generator, steps: int) -> float:
    """Milliseconds per training step over ``steps`` random minibatches of ``size``."""
    picks = [torch.as_tensor(rng.choice(1000, size, replace=False)) for _ in range(steps)]
    started = time.perf_counter()
    for idx in picks:
        pred = net(batch.select(idx), batch.graph_x[idx])
        loss = masked_pairwise(pred, y[idx], torch.ones(pred.shape[0], size)).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return (time.perf_counter() - started) / steps * 1e3


@torch.no_grad()
def _forward_block(net: nn.Module, batch: GraphBatch, graphs: int) -> float:
    """Seconds per 100,000 graphs of forward passes over chunks of 512."""
    net.eval()
    started = time.perf_counter()
    for start in range(0, graphs, 512):
        idx = torch.arange(start, min(start + 512, graphs))
        net(batch.select(idx), batch.graph_x[idx])
    net.train()
    return (time.perf_counter() - started) / graphs * 1e5


def _padding_block(pad: Callable[[GraphBatch], tuple], batch: GraphBatch) -> float:
    """Microseconds per padding of ``batch`` (the best of 30 calls' mean)."""
    started = time.perf_counter()
    for _ in range(30):
        pad(batch)
    return (time.perf_counter() - started) / 30 * 1e6


def _networks(families: list[str], d_graph: int) -> dict[tuple[str, str], nn.Module]:
    """Every (family, variant) network to time, freshly initialised."""
    nets: dict[tuple[str, str], nn.Module] = {}
    for family in families:
        nets[(family, "naslab")] = EnsembleNetwork(family, d_graph, 32, 2, 5, 0.0, 0)
        nets[(family, "vmap")] = VmapEnsemble(family, d_graph, 32, 2, 5, 0)
        if family == "gcn":
            nets[(family, "DenseGCNConv")] = DenseGCNConvNetwork(d_graph, 32, 2, 5, 0)
    return nets


def _best(values: list[float], digits: int = 2) -> str:
    return f"{min(values):.{digits}f} ({statistics.median(values):.{digits}f})"


def time_networks(args: argparse.Namespace, batch: GraphBatch) -> None:
    """Print the training-step and forward times of every network variant."""
    y = torch.randn(batch.num_graphs)
    rng = np.random.default_rng(0)
    runs = {}
    for key, net in _networks(args.families.split(","), batch.graph_x.shape[1]).items():
        optimiser = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4, fused=True)
        _train_block(net, optimiser, batch, y, 16, rng, 3)  # warm-up
        runs[key] = (net, optimiser, {"step16": [], "step125": [], "fwd": []})
    for _ in range(args.rounds):
        for net, optimiser, times in runs.values():
            times["step16"].append(_train_block(net, optimiser, batch, y, 16, rng, args.steps))
            times["step125"].append(_train_block(net, optimiser, batch, y, 125, rng,
                                                 args.steps))
            times["fwd"].append(_forward_block(net, batch, batch.num_graphs))
    print(f"{'family':<6} {'variant':<13} {'step bs16 ms':>16} {'step bs125 ms':>17} "
          f"{'forward s/100k':>17}")
    for (family, name), (_, _, times) in runs.items():
        cells = [_best(v) for v in times.values()]
        print(f"{family:<6} {name:<13} {cells[0]:>16} {cells[1]:>17} {cells[2]:>17}")


def time_padding(args: argparse.Namespace, batch: GraphBatch) -> None:
    """Print the padding times of :func:`dense_graphs` and of PyG's utilities."""
    subs = {n: batch.select(torch.arange(n)) for n in (16, 125, 512)}
    pads = {"naslab dense_graphs": dense_graphs, "PyG to_dense_*": pyg_dense_graphs}
    times: dict[tuple[str, int], list[float]] = {(p, n): [] for p in pads for n in subs}
    for _ in range(args.rounds):
        for n, sub in subs.items():
            for name, pad in pads.items():
                times[(name, n)].append(_padding_block(pad, sub))
    print(f"{'padding':<20} " + " ".join(f"{f'{n} graphs us':>16}" for n in subs))
    for name in pads:
        print(f"{name:<20} " + " ".join(f"{_best(times[(name, n)], 1):>16}" for n in subs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, 8 steps per block")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=15, help="training steps per block")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps = 2, 8
    torch.set_num_threads(args.threads)
    batch = Featurizer()(all_architectures("cora")[:2048])
    print(f"torch {torch.__version__}, {args.threads} thread(s); 5 members, hidden 32, "
          f"2 layers; best (median) of {args.rounds} rounds")
    time_networks(args, batch)
    print()
    time_padding(args, batch)


if __name__ == "__main__":
    main()
