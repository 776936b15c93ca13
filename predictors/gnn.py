"""GNN performance predictors: deep ensembles of graph networks over architecture DAGs.

:class:`GNNPredictor` learns an architecture's target (e.g. validation accuracy)
from its graph (featurized by :mod:`naslab.predictors.featurize`) and optional
per-architecture numbers (zero-cost proxies, parameters, FLOPs). Three families:

* ``dgin`` (default): a directed GIN for DAGs: each layer aggregates predecessors
  and successors separately (as in GATES / D-VAE style encoders, data flows
  forward and gradients backward), so the order of operations along a path is
  visible. It ranked best in ``benchmarks/predictor_quality.py`` (mean Kendall tau
  over the nine NAS-Bench-Graph data sets at 100 training architectures: 0.510,
  against 0.494 for ``gin`` and 0.426 for the best tree baseline);
* ``gin``: Graph Isomorphism Network layers (Xu et al., 2019), sum aggregation
  over the DAG's edges taken in both directions;
* ``gcn``: graph convolutions (Kipf & Welling, 2017) with the symmetric
  normalisation and self-loops, edges in both directions;

Each layer is residual. Readout: mean and sum of the last layer's node states,
concatenated with the graph-level features, then a two-layer head. Graphs of a
minibatch are padded to dense ``(graphs, nodes, nodes)`` adjacency tensors:
architecture graphs are small, and batched dense products are several times
faster than sparse scatters at this size.

**Uncertainty: a deep ensemble** (Lakshminarayanan et al., 2017). ``members``
networks with independent initialisations train together, vectorised as one
network whose weights carry a leading member dimension, so an ensemble of five
costs little more than one network. Each member holds out its own random
``val_fraction`` of the training set for early stopping (so the ensemble as a whole
learns from every architecture). The prediction is the members' mean; its std is
the members' spread, scaled by one factor fitted on the held-out residuals (each
member's error on the architectures it did not train on, against the ensemble's
spread there), so that the std is in the target's units and roughly calibrated.

Losses: ``pairwise`` (the default: a RankNet logistic loss over the pairs of a
minibatch, which learns the order; it ranked better than ``mse`` on every
NAS-Bench-Graph data set tried), ``mse``, and ``mse+pairwise`` (their sum). Targets
are standardised; after training, each member's output is mapped onto the targets
by least squares on its training architectures, so the mean is in the target's
units whatever the loss. Early stopping watches each member's held-out loss (for
``pairwise``, over up to 4,096 sampled held-out pairs). Training is deterministic
for a fixed ``seed`` on the CPU.

Transfer: :meth:`GNNPredictor.fine_tune` continues training a fitted predictor on
a few samples of another task or space (the operation vocabulary is shared by all
spaces, so the input layout is the same).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from naslab.core.errors import ConfigError
from naslab.core.validation import check_choice
from naslab.predictors.base import (
    FeaturesLike,
    FeatureTable,
    Prediction,
    Predictor,
    check_archs,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_targets,
    register,
    standardiser,
)
from naslab.predictors.featurize import (
    FEATURE_VERSION,
    N_GLOBAL_FEATURES,
    NODE_FEATURES,
    Featurizer,
    GraphBatch,
)
from naslab.search_spaces.architecture import Architecture

__all__ = ["FAMILIES", "LOSSES", "GNNPredictor"]

FAMILIES: tuple[str, ...] = ("gin", "gcn", "dgin")
LOSSES: tuple[str, ...] = ("mse", "pairwise", "mse+pairwise")
_PREDICT_CHUNK = 512


# ----------------------------------------------------------------- ensemble layers


class _EnsembleLinear(nn.Module):
    """``members`` independent linear maps applied to ``(members, n, in)`` inputs."""

    def __init__(self, members: int, d_in: int, d_out: int, generator: torch.Generator) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(d_in)
        self.weight = nn.Parameter(
            (torch.rand(members, d_in, d_out, generator=generator) * 2 - 1) * bound
        )
        self.bias = nn.Parameter(
            (torch.rand(members, 1, d_out, generator=generator) * 2 - 1) * bound
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # shared input (n, in)
            return torch.matmul(x.unsqueeze(0), self.weight) + self.bias
        return torch.baddbmm(self.bias, x, self.weight)


class _MLP(nn.Module):
    def __init__(self, members: int, d_in: int, d_hidden: int, d_out: int, g: torch.Generator):
        super().__init__()
        self.a = _EnsembleLinear(members, d_in, d_hidden, g)
        self.b = _EnsembleLinear(members, d_hidden, d_out, g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(F.relu(self.a(x)))


def _dense(gb: GraphBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch as padded dense tensors: node features ``(G, n, F)``, adjacency
    ``(G, n, n)`` with ``A[g, v, u]`` = number of edges u -> v, and a node mask ``(G, n)``.

    Architecture graphs are small, so batched dense products beat sparse scatters.
    """
    graphs = gb.num_graphs
    counts = gb.node_ptr[1:] - gb.node_ptr[:-1]
    n_max = int(counts.max()) if graphs else 0
    slot = torch.arange(gb.x.shape[0]) - gb.node_ptr[gb.batch]
    x = torch.zeros(graphs, n_max, gb.x.shape[1])
    x[gb.batch, slot] = gb.x
    adj = torch.zeros(graphs, n_max, n_max)
    src, dst = gb.edge_index[0], gb.edge_index[1]
    adj.index_put_((gb.batch[dst], slot[dst], slot[src]), torch.ones(src.shape[0]), accumulate=True)
    mask = (torch.arange(n_max).unsqueeze(0) < counts.unsqueeze(1)).to(x.dtype)
    return x, adj, mask


class _Network(nn.Module):
    """The ensemble network: ``(graph batch, graph features) -> (members, graphs)``."""

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
        g = torch.Generator().manual_seed(seed)
        self.family = family
        self.dropout = dropout
        self.embed = _EnsembleLinear(members, NODE_FEATURES, hidden, g)
        blocks: list[nn.Module] = []
        for _ in range(layers):
            if family == "gin":
                blocks.append(_MLP(members, hidden, hidden, hidden, g))
            elif family == "dgin":
                blocks.append(_MLP(members, 3 * hidden, hidden, hidden, g))
            else:  # gcn
                blocks.append(_EnsembleLinear(members, hidden, hidden, g))
        self.blocks = nn.ModuleList(blocks)
        self.head = _MLP(members, 2 * hidden + d_graph, hidden, 1, g)

    def forward(self, gb: GraphBatch, graph_x: torch.Tensor) -> torch.Tensor:
        x, adj, mask = _dense(gb)
        graphs, n = mask.shape
        members = self.embed.weight.shape[0]
        h = F.relu(self.embed(x.view(graphs * n, -1)))  # (E, G*n, H)
        hidden = h.shape[2]
        h = h.view(members, graphs, n, hidden)
        if self.family in ("gin", "gcn"):
            both = adj + adj.transpose(1, 2)  # messages along and against the edges
        if self.family == "gcn":
            both = both + torch.diag_embed(mask)
            norm = both.sum(2).clamp(min=1.0).rsqrt()
            both = norm.unsqueeze(2) * both * norm.unsqueeze(1)
        back = adj.transpose(1, 2) if self.family == "dgin" else None
        for block in self.blocks:
            if self.family == "gin":
                inp = h + torch.matmul(both, h)
            elif self.family == "dgin":
                inp = torch.cat([h, torch.matmul(adj, h), torch.matmul(back, h)], dim=3)
            else:
                inp = h
            out = block(inp.reshape(members, graphs * n, -1)).view(members, graphs, n, hidden)
            if self.family == "gcn":
                out = torch.matmul(both, out)
            out = F.relu(out)
            if self.dropout and self.training:
                out = F.dropout(out, self.dropout)
            h = out + h  # residual: keeps early layers' signal and eases optimisation
        counts = mask.sum(1).clamp(min=1.0)
        summed = (h * mask.view(1, graphs, n, 1)).sum(2)  # (E, G, H)
        mean = summed / counts.view(1, -1, 1)
        readout = torch.cat(
            [mean, summed / 8.0, graph_x.unsqueeze(0).expand(members, -1, -1)], dim=2
        )
        return self.head(readout).squeeze(2)


class _Adam:
    """Adam (Kingma & Ba, 2015) with L2 weight decay, as ``torch.optim.Adam`` computes it.

    A few lines of its own because the first ``torch.optim`` step in a process
    imports TorchDynamo (about 1.5 s), which a predictor refitted in a fresh worker
    process would pay every time.
    """

    def __init__(
        self,
        params: list[nn.Parameter],
        lr: float,
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = params
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1 = 1 - b1**self.t
        c2 = 1 - b2**self.t
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            grad = p.grad
            if self.weight_decay:
                grad = grad.add(p, alpha=self.weight_decay)
            m.mul_(b1).add_(grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            denom = (v / c2).sqrt_().add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lr / c1)


# -------------------------------------------------------------------------- losses


def _masked_mse(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-member mean squared error over the entries where ``mask`` is 1."""
    err = (pred - y.unsqueeze(0)) ** 2 * mask
    return err.sum(1) / mask.sum(1).clamp(min=1.0)


def _masked_pairwise(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-member RankNet loss over the ordered pairs (i better than j) where both count."""
    diff = pred.unsqueeze(2) - pred.unsqueeze(1)  # (E, B, B): pred_i - pred_j
    better = (y.unsqueeze(1) > y.unsqueeze(0)).to(pred.dtype)  # (B, B): y_i > y_j
    pairs = mask.unsqueeze(2) * mask.unsqueeze(1) * better.unsqueeze(0)
    loss = F.softplus(-diff) * pairs
    return loss.sum((1, 2)) / pairs.sum((1, 2)).clamp(min=1.0)


_MAX_VAL_PAIRS = 4096


def _sample_pairs(
    val_mask: torch.Tensor, y: np.ndarray, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Up to ``_MAX_VAL_PAIRS`` ordered pairs (better, worse) of each member's held-out set.

    Returns member, better and worse index tensors of equal length.
    """
    members, better, worse = [], [], []
    for m in range(val_mask.shape[0]):
        held = np.flatnonzero(val_mask[m].numpy() > 0)
        i, j = np.triu_indices(len(held), k=1)
        if len(i) > _MAX_VAL_PAIRS:
            pick = rng.choice(len(i), _MAX_VAL_PAIRS, replace=False)
            i, j = i[pick], j[pick]
        a, b = held[i], held[j]
        keep = y[a] != y[b]
        a, b = a[keep], b[keep]
        swap = y[a] < y[b]
        a, b = np.where(swap, b, a), np.where(swap, a, b)
        members.append(np.full(len(a), m))
        better.append(a)
        worse.append(b)
    return (
        torch.as_tensor(np.concatenate(members), dtype=torch.long),
        torch.as_tensor(np.concatenate(better), dtype=torch.long),
        torch.as_tensor(np.concatenate(worse), dtype=torch.long),
    )


def _pair_loss(pred: torch.Tensor, pairs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Per-member mean RankNet loss over the given (member, better, worse) pairs."""
    member, better, worse = pairs
    loss = F.softplus(pred[member, worse] - pred[member, better])
    members = pred.shape[0]
    total = torch.zeros(members).index_add_(0, member, loss)
    count = torch.zeros(members).index_add_(0, member, torch.ones_like(loss))
    return total / count.clamp(min=1.0)


# ---------------------------------------------------------------------- predictor


@register
class GNNPredictor(Predictor):
    """A deep ensemble of graph neural networks that predicts a target from a DAG.

    Args:
        model: the layer family, ``"dgin"`` (default), ``"gin"`` or ``"gcn"``.
        hidden: width of the node states.
        layers: number of message-passing layers.
        members: ensemble size (1 gives no uncertainty: std 0).
        loss: ``"pairwise"`` (default), ``"mse"`` or ``"mse+pairwise"``.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        batch_size: architectures per gradient step (default: an eighth of the
            training set, between 16 and 128).
        max_epochs: upper bound on passes over the training set.
        max_steps: upper bound on gradient steps. It bounds the fit time on large
            training sets (about 5 s for 1,000 architectures on 2 CPU cores) at
            some cost in quality there: on 500 NAS-Bench-Graph cora architectures,
            ``max_steps=3000`` raised Kendall tau from 0.494 to 0.520 and the fit
            time from 3.7 s to 6.8 s. Raise it when fit time matters less.
        patience: epochs without improvement on a member's held-out split before it
            stops (each member keeps its best weights).
        val_fraction: share of the training set each member holds out (at least 2
            architectures; with fewer than 8 architectures nothing is held out and
            members train for ``max_epochs``).
        dropout: dropout on node states during training.
        seed: seeds initialisation, splits and minibatch order.
        calibrate: scale the ensemble's spread to the held-out residuals.

    Attributes (after :meth:`fit`):
        n_train_: number of architectures fitted on.
        epochs_: epochs each member trained (to its best epoch).
        fit_seconds_: wall time of the last fit.
        std_scale_: the calibration factor applied to the members' spread.
    """

    kind = "gnn"

    def __init__(
        self,
        model: str = "dgin",
        hidden: int = 32,
        layers: int = 2,
        members: int = 5,
        loss: str = "pairwise",
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        batch_size: int | None = None,
        max_epochs: int = 200,
        max_steps: int = 800,
        patience: int = 20,
        val_fraction: float = 0.2,
        dropout: float = 0.0,
        seed: int = 0,
        calibrate: bool = True,
    ) -> None:
        self.model = check_choice("GNN family", str(model), FAMILIES)
        self.loss = check_choice("predictor loss", str(loss), LOSSES)
        self.hidden = check_positive_int("hidden", hidden)
        self.layers = check_positive_int("layers", layers)
        self.members = check_positive_int("members", members)
        self.batch_size = (
            None if batch_size is None else check_positive_int("batch_size", batch_size)
        )
        self.max_epochs = check_positive_int("max_epochs", max_epochs)
        self.max_steps = check_positive_int("max_steps", max_steps)
        self.patience = check_positive_int("patience", patience)
        self.lr = check_positive_float("lr", lr)
        self.weight_decay = check_nonnegative_float("weight_decay", weight_decay)
        self.val_fraction = float(val_fraction)
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        self.dropout = float(dropout)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.calibrate = bool(calibrate)
        self.n_train_: int | None = None

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments."""
        return {
            "model": self.model,
            "hidden": self.hidden,
            "layers": self.layers,
            "members": self.members,
            "loss": self.loss,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "max_epochs": self.max_epochs,
            "max_steps": self.max_steps,
            "patience": self.patience,
            "val_fraction": self.val_fraction,
            "dropout": self.dropout,
            "seed": self.seed,
            "calibrate": self.calibrate,
        }

    # -- fitting ------------------------------------------------------------------

    def fit(
        self, archs: Sequence[Architecture], targets: Any, features: FeaturesLike = None
    ) -> GNNPredictor:
        """Train the ensemble on ``archs`` and their ``targets`` (higher or lower: any)."""
        started = time.perf_counter()
        archs = check_archs(archs)
        y = check_targets(targets, len(archs))
        table = FeatureTable.coerce(features, len(archs))
        self.feature_names_ = list(table.names)
        self.feature_mean_ = table.values.mean(0) if table.values.shape[1] else np.zeros(0)
        sd = table.values.std(0) if table.values.shape[1] else np.zeros(0)
        self.feature_scale_ = np.where(sd > 1e-12, sd, 1.0)
        self._new_network()
        self._train(archs, y, table.values, self.lr, self.max_epochs, self.seed)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _new_network(self) -> None:
        """A fresh featurizer and an untrained network for the current feature names."""
        self._featurizer = Featurizer()
        self.network_ = _Network(
            self.model,
            N_GLOBAL_FEATURES + len(self.feature_names_),
            self.hidden,
            self.layers,
            self.members,
            self.dropout,
            self.seed,
        )

    def fine_tune(
        self,
        archs: Sequence[Architecture],
        targets: Any,
        features: FeaturesLike = None,
        lr: float | None = None,
        max_epochs: int | None = None,
        seed: int | None = None,
    ) -> GNNPredictor:
        """Continue training this fitted predictor on new data (transfer learning).

        The target standardisation is refitted on ``targets``, the weights start from
        the current ones, and training uses ``lr`` (default a third of the fit's) and
        early stopping as in :meth:`fit`. ``features`` must have the names this
        predictor was fitted with. Returns ``self``.
        """
        self._check_fitted()
        started = time.perf_counter()
        archs = check_archs(archs)
        y = check_targets(targets, len(archs))
        table = FeatureTable.coerce(features, len(archs))
        values = table.aligned(self.feature_names_)
        self._train(
            archs,
            y,
            values,
            check_positive_float("lr", lr) if lr is not None else self.lr / 3.0,
            check_positive_int("max_epochs", max_epochs)
            if max_epochs is not None
            else self.max_epochs,
            self.seed + 1 if seed is None else int(seed),
        )
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _graph_inputs(self, batch: GraphBatch, values: np.ndarray) -> torch.Tensor:
        extra = (values - self.feature_mean_) / self.feature_scale_
        return torch.cat([batch.graph_x, torch.as_tensor(extra, dtype=torch.float32)], dim=1)

    def _train(
        self,
        archs: list[Architecture],
        y: np.ndarray,
        values: np.ndarray,
        lr: float,
        max_epochs: int,
        seed: int,
    ) -> None:
        n, members = len(archs), self.members
        self.y_mean_, self.y_scale_ = standardiser(y)
        target = torch.as_tensor((y - self.y_mean_) / self.y_scale_, dtype=torch.float32)
        batch = self._featurizer(archs)
        graph_x = self._graph_inputs(batch, values)
        rng = np.random.default_rng(seed)
        n_val = int(round(self.val_fraction * n)) if n >= 8 else 0
        n_val = max(2, n_val) if n_val else 0
        train_mask = torch.ones(members, n)
        for m in range(members):
            held = rng.permutation(n)[:n_val]
            train_mask[m, held] = 0.0
        val_mask = 1.0 - train_mask
        val_pairs = _sample_pairs(val_mask, y, rng) if n_val else None
        val_idx = torch.nonzero(val_mask.sum(0) > 0).flatten()
        val_batch = batch.select(val_idx) if n_val else batch
        net = self.network_
        optimiser = _Adam(list(net.parameters()), lr=lr, weight_decay=self.weight_decay)
        gen = torch.Generator().manual_seed(seed)
        best = [math.inf] * members
        best_state = copy.deepcopy(net.state_dict())
        best_epoch = [0] * members
        waited = [0] * members
        use_mse = self.loss in ("mse", "mse+pairwise")
        use_pairs = self.loss in ("pairwise", "mse+pairwise")
        bs = self.batch_size or min(max(16, n // 8), 128)
        bs = min(bs, n)
        epochs_run = 0
        steps = 0
        for epoch in range(max_epochs):
            net.train()
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, bs):
                idx = order[start : start + bs]
                if len(idx) < 2:
                    continue
                pred = net(batch.select(idx), graph_x[idx])
                mask = train_mask[:, idx]
                loss = torch.zeros(members)
                if use_mse:
                    loss = loss + _masked_mse(pred, target[idx], mask)
                if use_pairs:
                    loss = loss + _masked_pairwise(pred, target[idx], mask)
                optimiser.zero_grad()
                loss.sum().backward()
                optimiser.step()
                steps += 1
            epochs_run = epoch + 1
            if not n_val:
                if steps >= self.max_steps:
                    break
                continue
            pred_all = torch.zeros(members, n)
            pred_all[:, val_idx] = self._forward_all(val_batch, graph_x[val_idx])
            if use_mse:
                val_loss = _masked_mse(pred_all, target, val_mask)
            else:
                val_loss = _pair_loss(pred_all, val_pairs)
            state = None
            for m in range(members):
                value = float(val_loss[m])
                if value < best[m] - 1e-6:
                    best[m], best_epoch[m], waited[m] = value, epoch + 1, 0
                    if state is None:
                        state = net.state_dict()
                    for key, tensor in state.items():
                        best_state[key][m] = tensor[m]
                else:
                    waited[m] += 1
            if all(w >= self.patience for w in waited) or steps >= self.max_steps:
                break
        if n_val:
            net.load_state_dict(best_state)
            self.epochs_ = best_epoch
        else:
            self.epochs_ = [epochs_run] * members
        net.eval()
        # Each member's output is mapped onto the standardised target by least squares
        # on its own training architectures: a pairwise loss fixes only the order.
        pred_all = self._forward_all(batch, graph_x, mapped=False)
        scale = torch.ones(members)
        shift = torch.zeros(members)
        for m in range(members):
            used = train_mask[m].bool()
            out, tgt = pred_all[m, used].double(), target[used].double()
            var = float(out.var(unbiased=False))
            if var > 1e-12:
                cov = float(((out - out.mean()) * (tgt - tgt.mean())).mean())
                scale[m] = cov / var
            shift[m] = float(tgt.mean() - scale[m] * out.mean())
        self.member_scale_ = scale
        self.member_shift_ = shift
        self.std_scale_ = 1.0
        if self.calibrate and n_val and members > 1:
            mapped = pred_all * scale.unsqueeze(1) + shift.unsqueeze(1)
            spread = mapped.std(0, unbiased=False).clamp(min=1e-6)
            resid = (mapped - target.unsqueeze(0)) ** 2
            held = val_mask.bool()
            spread2 = (spread.unsqueeze(0).expand_as(resid)[held] ** 2).mean()
            ratio = float(resid[held].mean() / spread2)
            self.std_scale_ = float(math.sqrt(max(ratio, 1e-12)))
        self.n_train_ = n

    @torch.no_grad()
    def _forward_all(
        self, batch: GraphBatch, graph_x: torch.Tensor, mapped: bool = False
    ) -> torch.Tensor:
        was_training = self.network_.training
        self.network_.eval()
        outs = []
        for start in range(0, batch.num_graphs, _PREDICT_CHUNK):
            idx = torch.arange(start, min(start + _PREDICT_CHUNK, batch.num_graphs))
            sub = batch if len(idx) == batch.num_graphs else batch.select(idx)
            outs.append(self.network_(sub, graph_x[idx]))
        self.network_.train(was_training)
        out = torch.cat(outs, dim=1)
        if mapped:
            out = out * self.member_scale_.unsqueeze(1) + self.member_shift_.unsqueeze(1)
        return out

    # -- predicting -----------------------------------------------------------------

    def predict(self, archs: Sequence[Architecture], features: FeaturesLike = None) -> Prediction:
        """Ensemble mean and calibrated spread of each architecture's target."""
        self._check_fitted()
        archs = check_archs(archs)
        values = FeatureTable.coerce(features, len(archs)).aligned(self.feature_names_)
        was_training = self.network_.training
        self.network_.eval()
        outs = []
        with torch.no_grad():
            for start in range(0, len(archs), _PREDICT_CHUNK):
                batch = self._featurizer(archs[start : start + _PREDICT_CHUNK])
                graph_x = self._graph_inputs(batch, values[start : start + _PREDICT_CHUNK])
                outs.append(self.network_(batch, graph_x))
        self.network_.train(was_training)
        out = torch.cat(outs, dim=1)
        out = out * self.member_scale_.unsqueeze(1) + self.member_shift_.unsqueeze(1)
        out = out.double().numpy()
        mean = out.mean(0) * self.y_scale_ + self.y_mean_
        if self.members > 1:
            std = out.std(0) * self.y_scale_ * self.std_scale_
        else:
            std = np.zeros_like(mean)
        return Prediction(mean, std)

    # -- saving -----------------------------------------------------------------------

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"net.{k}": v.detach().numpy() for k, v in self.network_.state_dict().items()}
        arrays["member_scale"] = self.member_scale_.numpy()
        arrays["member_shift"] = self.member_shift_.numpy()
        arrays["feature_mean"] = np.asarray(self.feature_mean_, dtype=np.float64)
        arrays["feature_scale"] = np.asarray(self.feature_scale_, dtype=np.float64)
        meta = {
            "feature_version": FEATURE_VERSION,
            "feature_names": self.feature_names_,
            "y_mean": self.y_mean_,
            "y_scale": self.y_scale_,
            "std_scale": self.std_scale_,
            "n_train": self.n_train_,
            "epochs": list(self.epochs_),
        }
        return arrays, meta

    def _load_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        if int(meta.get("feature_version", -1)) != FEATURE_VERSION:
            raise ConfigError(
                f"the saved GNN predictor uses feature layout {meta.get('feature_version')}; "
                f"this naslab uses {FEATURE_VERSION}: refit it"
            )
        self.feature_names_ = list(meta["feature_names"])
        self.feature_mean_ = np.asarray(arrays["feature_mean"], dtype=np.float64)
        self.feature_scale_ = np.asarray(arrays["feature_scale"], dtype=np.float64)
        self._new_network()
        state = {
            k[len("net.") :]: torch.from_numpy(np.array(v))
            for k, v in arrays.items()
            if k.startswith("net.")
        }
        try:
            self.network_.load_state_dict(state)
        except RuntimeError as exc:
            raise ConfigError(
                f"the saved GNN predictor's weights do not fit its settings: {exc}"
            ) from None
        self.network_.eval()
        self.member_scale_ = torch.from_numpy(np.array(arrays["member_scale"], dtype=np.float32))
        self.member_shift_ = torch.from_numpy(np.array(arrays["member_shift"], dtype=np.float32))
        self.y_mean_ = float(meta["y_mean"])
        self.y_scale_ = float(meta["y_scale"])
        self.std_scale_ = float(meta["std_scale"])
        self.epochs_ = list(meta.get("epochs", []))
        self.n_train_ = int(meta["n_train"])
