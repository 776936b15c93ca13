"""GNN ensemble layouts: a member dimension against ``torch.func.vmap``, step by step.

:class:`naslab.predictors.gnn_network.EnsembleNetwork` runs the members of a deep
ensemble as one network whose weights carry a leading member dimension, through
PyTorch Geometric's dense layers (``DenseGINConv`` with a member-stacked MLP,
``DenseGCNConv`` with a member-stacked linear map, and a directed GIN layer). The
alternative keeps PyG's layers entirely unchanged (``torch.nn.Linear`` inside,
one module per member) and vectorises the members with
``torch.func.stack_module_state`` + ``functional_call`` + ``vmap``. This script
times both, per family, on NAS-Bench-Graph cora graphs:

* a training step (forward, pairwise loss, backward, ``torch.optim.Adam`` with
  ``fused=True``) at minibatches of 16 and 125 (the defaults' sizes for 100 and
  1,000 training architectures);
* a forward pass over chunks of 512 graphs (as ``predict`` does), per 100,000
  graphs.

Each figure is the best (and the median) of ``--rounds`` rounds; the variants run
in turn within a round, so a load that drifts touches both alike. Default: 5
members, hidden 32, 2 layers, one torch thread (``--threads``).

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

from naslab.predictors.featurize import NODE_FEATURES, Featurizer, GraphBatch
from naslab.predictors.gnn_network import FAMILIES, EnsembleNetwork, dense_graphs
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, 8 steps per block")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=15, help="training steps per block")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps = 2, 8
    torch.set_num_threads(args.threads)
    batch = Featurizer()(all_architectures("cora")[:2048])
    y = torch.randn(batch.num_graphs)
    rng = np.random.default_rng(0)
    d_graph = batch.graph_x.shape[1]
    layouts = {"member-dim": EnsembleNetwork, "vmap": VmapEnsemble}
    runs = {}
    for family in args.families.split(","):
        for name, cls in layouts.items():
            net = (cls(family, d_graph, 32, 2, 5, 0.0, 0) if cls is EnsembleNetwork
                   else cls(family, d_graph, 32, 2, 5, 0))
            optimiser = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4,
                                         fused=True)
            _train_block(net, optimiser, batch, y, 16, rng, 3)  # warm-up
            runs[(family, name)] = (net, optimiser, {"step16": [], "step125": [], "fwd": []})
    for _ in range(args.rounds):
        for net, optimiser, times in runs.values():
            times["step16"].append(_train_block(net, optimiser, batch, y, 16, rng, args.steps))
            times["step125"].append(_train_block(net, optimiser, batch, y, 125, rng,
                                                 args.steps))
            times["fwd"].append(_forward_block(net, batch, batch.num_graphs))
    print(f"torch {torch.__version__}, {args.threads} thread(s), 5 members, hidden 32, "
          f"2 layers; best (median) of {args.rounds} rounds")
    print(f"{'family':<6} {'layout':<11} {'step bs16 ms':>16} {'step bs125 ms':>17} "
          f"{'forward s/100k':>17}")
    for (family, name), (_, _, times) in runs.items():
        cells = [f"{min(v):.2f} ({statistics.median(v):.2f})" for v in times.values()]
        print(f"{family:<6} {name:<11} {cells[0]:>16} {cells[1]:>17} {cells[2]:>17}")


if __name__ == "__main__":
    main()
