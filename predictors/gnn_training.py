"""Training the ensemble network of :class:`~naslab.predictors.gnn.GNNPredictor`.

One function per step of a fit: :func:`holdout` draws each member's held-out
split, :func:`run_epoch` makes one pass of minibatch steps (``torch.optim.Adam``),
:class:`EarlyStopping` keeps each member's best weights by its held-out loss,
:func:`member_maps` maps each member's output onto the standardised targets, and
:func:`calibration` scales the members' spread to the held-out residuals.

Losses are per member (a ``(members,)`` vector, summed for the backward pass, so
the members' gradients stay independent): :func:`masked_mse`,
:func:`masked_pairwise` (RankNet over the pairs of a minibatch) and
:func:`pair_loss` (RankNet over sampled held-out pairs, for early stopping).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from naslab.predictors.featurize import GraphBatch

__all__ = [
    "LOSSES",
    "MAX_VAL_PAIRS",
    "EarlyStopping",
    "Holdout",
    "batch_loss",
    "calibration",
    "holdout",
    "masked_mse",
    "masked_pairwise",
    "member_maps",
    "pair_loss",
    "run_epoch",
    "sample_pairs",
]

#: The training losses.
LOSSES: tuple[str, ...] = ("mse", "pairwise", "mse+pairwise")
#: Bound on the held-out pairs per member that early stopping scores.
MAX_VAL_PAIRS = 4096

Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


# -------------------------------------------------------------------------- losses


def masked_mse(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-member mean squared error over the entries where ``mask`` is 1.

    ``pred`` and ``mask`` are ``(members, n)``, ``y`` is ``(n,)``.
    """
    err = (pred - y.unsqueeze(0)) ** 2 * mask
    return err.sum(1) / mask.sum(1).clamp(min=1.0)


def masked_pairwise(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-member RankNet loss over the ordered pairs (i better than j) where both count."""
    diff = pred.unsqueeze(2) - pred.unsqueeze(1)  # (E, B, B): pred_i - pred_j
    better = (y.unsqueeze(1) > y.unsqueeze(0)).to(pred.dtype)  # (B, B): y_i > y_j
    pairs = mask.unsqueeze(2) * mask.unsqueeze(1) * better.unsqueeze(0)
    loss = F.softplus(-diff) * pairs
    return loss.sum((1, 2)) / pairs.sum((1, 2)).clamp(min=1.0)


def sample_pairs(val_mask: torch.Tensor, y: np.ndarray, rng: np.random.Generator) -> Pairs:
    """Up to :data:`MAX_VAL_PAIRS` ordered pairs (better, worse) of each member's held-out set.

    Returns member, better and worse index tensors of equal length.
    """
    members, better, worse = [], [], []
    for m in range(val_mask.shape[0]):
        held = np.flatnonzero(val_mask[m].numpy() > 0)
        i, j = np.triu_indices(len(held), k=1)
        if len(i) > MAX_VAL_PAIRS:
            pick = rng.choice(len(i), MAX_VAL_PAIRS, replace=False)
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


def pair_loss(pred: torch.Tensor, pairs: Pairs) -> torch.Tensor:
    """Per-member mean RankNet loss over the given (member, better, worse) pairs."""
    member, better, worse = pairs
    loss = F.softplus(pred[member, worse] - pred[member, better])
    members = pred.shape[0]
    total = torch.zeros(members).index_add_(0, member, loss)
    count = torch.zeros(members).index_add_(0, member, torch.ones_like(loss))
    return total / count.clamp(min=1.0)


def batch_loss(kind: str, pred: torch.Tensor, y: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
    """The training loss ``kind`` (one of :data:`LOSSES`) per member of a minibatch."""
    loss = torch.zeros(pred.shape[0])
    if kind in ("mse", "mse+pairwise"):
        loss = loss + masked_mse(pred, y, mask)
    if kind in ("pairwise", "mse+pairwise"):
        loss = loss + masked_pairwise(pred, y, mask)
    return loss


# ------------------------------------------------------------------- the steps


@dataclass
class Holdout:
    """Each member's split of the training set.

    Attributes:
        train_mask: ``(members, n)``, 1 where a member trains on an architecture.
        val_mask: ``1 - train_mask``.
        n_val: architectures each member holds out (0: none, no early stopping).
        val_idx: the architectures held out by at least one member.
        pairs: the held-out pairs early stopping scores (``None`` when ``n_val`` is 0).
    """

    train_mask: torch.Tensor
    val_mask: torch.Tensor
    n_val: int
    val_idx: torch.Tensor
    pairs: Pairs | None


def holdout(n: int, members: int, val_fraction: float, y: np.ndarray,
            rng: np.random.Generator) -> Holdout:
    """Each member holds out its own random ``val_fraction`` of the ``n`` architectures.

    At least 2 are held out; with fewer than 8 architectures none are.
    """
    n_val = int(round(val_fraction * n)) if n >= 8 else 0
    n_val = max(2, n_val) if n_val else 0
    train_mask = torch.ones(members, n)
    for m in range(members):
        train_mask[m, rng.permutation(n)[:n_val]] = 0.0
    val_mask = 1.0 - train_mask
    return Holdout(
        train_mask=train_mask,
        val_mask=val_mask,
        n_val=n_val,
        val_idx=torch.nonzero(val_mask.sum(0) > 0).flatten(),
        pairs=sample_pairs(val_mask, y, rng) if n_val else None,
    )


def run_epoch(
    net: nn.Module,
    optimiser: torch.optim.Optimizer,
    inputs: tuple[GraphBatch, torch.Tensor],
    target: torch.Tensor,
    train_mask: torch.Tensor,
    order: torch.Tensor,
    batch_size: int,
    loss: str,
) -> int:
    """One pass over ``order`` in minibatches of ``batch_size``; returns the steps taken.

    ``inputs`` is the graph batch and its graph-level features. A minibatch of fewer
    than 2 architectures is skipped (a pairwise loss needs a pair).
    """
    batch, graph_x = inputs
    net.train()
    steps = 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        if len(idx) < 2:
            continue
        pred = net(batch.select(idx), graph_x[idx])
        optimiser.zero_grad()
        batch_loss(loss, pred, target[idx], train_mask[:, idx]).sum().backward()
        optimiser.step()
        steps += 1
    return steps


class EarlyStopping:
    """Each member's best held-out loss, the epoch it came at, and its weights then.

    The network's parameters carry a leading member dimension, so a member's best
    weights are its slice of every tensor of the state dict.
    """

    def __init__(self, net: nn.Module, members: int, patience: int) -> None:
        self.net = net
        self.patience = patience
        self.best = [math.inf] * members
        self.best_epoch = [0] * members
        self.waited = [0] * members
        self.best_state = copy.deepcopy(net.state_dict())

    def update(self, val_loss: torch.Tensor, epoch: int) -> None:
        """Record the held-out losses after ``epoch`` (1-based); keep improved members."""
        state = None
        for m, value in enumerate(val_loss.tolist()):
            if value < self.best[m] - 1e-6:
                self.best[m], self.best_epoch[m], self.waited[m] = value, epoch, 0
                state = self.net.state_dict() if state is None else state
                for key, tensor in state.items():
                    if tensor.dim() and tensor.shape[0] == len(self.best):
                        self.best_state[key][m] = tensor[m]
                    # else a buffer shared by the members (the fixed eps of PyG's GIN)
            else:
                self.waited[m] += 1

    @property
    def stopped(self) -> bool:
        """Whether every member has waited ``patience`` epochs without improving."""
        return all(w >= self.patience for w in self.waited)

    def restore(self) -> None:
        """Load every member's best weights into the network."""
        self.net.load_state_dict(self.best_state)


def member_maps(pred: torch.Tensor, target: torch.Tensor,
                train_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each member's least-squares map (scale, shift) of its output onto the target.

    Fitted on the member's own training architectures, in float64; a member whose
    output is constant there gets scale 1. A pairwise loss fixes only the order, so
    this puts the mean in the target's units whatever the loss.
    """
    members = pred.shape[0]
    scale = torch.ones(members)
    shift = torch.zeros(members)
    for m in range(members):
        used = train_mask[m].bool()
        out, tgt = pred[m, used].double(), target[used].double()
        var = float(out.var(unbiased=False))
        if var > 1e-12:
            scale[m] = float(((out - out.mean()) * (tgt - tgt.mean())).mean()) / var
        shift[m] = float(tgt.mean() - scale[m] * out.mean())
    return scale, shift


def calibration(mapped: torch.Tensor, target: torch.Tensor, val_mask: torch.Tensor) -> float:
    """The factor that scales the members' spread to their held-out residuals.

    ``mapped`` is ``(members, n)`` in the standardised target's units; the factor is
    ``sqrt(mean held-out squared residual / mean squared spread there)``.
    """
    spread = mapped.std(0, unbiased=False).clamp(min=1e-6)
    resid = (mapped - target.unsqueeze(0)) ** 2
    held = val_mask.bool()
    spread2 = (spread.unsqueeze(0).expand_as(resid)[held] ** 2).mean()
    ratio = float(resid[held].mean() / spread2)
    return float(math.sqrt(max(ratio, 1e-12)))
