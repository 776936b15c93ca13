"""GNN performance predictors: deep ensembles of graph networks over architecture DAGs.

:class:`GNNPredictor` learns an architecture's target (e.g. validation accuracy)
from its graph (featurized by :mod:`naslab.predictors.featurize`) and optional
per-architecture numbers (zero-cost proxies, parameters, FLOPs). Three families:

* ``dgin`` (default): a directed GIN for DAGs: each layer aggregates predecessors
  and successors separately (as in GATES / D-VAE style encoders, data flows
  forward and gradients backward), so the order of operations along a path is
  visible. It ranked best in ``benchmarks/predictor_quality.py`` (mean Kendall tau
  over the nine NAS-Bench-Graph data sets at 100 training architectures: 0.511,
  against 0.495 for ``gin``, 0.489 for ``gcn`` and 0.426 for the best tree
  baseline);
* ``gin``: Graph Isomorphism Network layers (Xu et al., 2019), sum aggregation
  over the DAG's edges taken in both directions;
* ``gcn``: graph convolutions (Kipf & Welling, 2017) with the symmetric
  normalisation and self-loops, edges in both directions;

Each layer is residual. Readout: mean and sum of the last layer's node states,
concatenated with the graph-level features, then a two-layer head. The network is
:class:`~naslab.predictors.gnn_network.EnsembleNetwork` (``gin`` layers are PyTorch
Geometric's ``DenseGINConv``; the PyG paths measured slower and kept out, with their
figures, are listed there). Minibatches are padded to dense ``(graphs, nodes,
nodes)`` adjacency tensors: architecture graphs are small, and batched dense
products are several times faster than sparse scatters at this size.

**Uncertainty: a deep ensemble** (Lakshminarayanan et al., 2017). ``members``
networks with independent initialisations train together, vectorised as one network
whose weights carry a leading member dimension, so an ensemble of five costs little
more than one network. They train with ``torch.optim.Adam`` (``fused=True``; the
steps are in :mod:`naslab.predictors.gnn_training`; a process's first optimiser,
like its first import of PyG, imports TorchDynamo, about 2 s once). Each member
holds out its own random ``val_fraction`` of the training set for early stopping (so
the ensemble as a whole learns from every architecture). The prediction is the
members' mean; its std is the members' spread, scaled by one factor fitted on the
held-out residuals (each member's error on the architectures it did not train on,
against the ensemble's spread there), so that the std is in the target's units and
roughly calibrated.

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

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from naslab.core.errors import ConfigError
from naslab.core.validation import check_bool, check_choice, check_float, check_int
from naslab.predictors.base import (
    FeaturesLike,
    FeatureTable,
    Prediction,
    Predictor,
    check_archs,
    check_targets,
    register,
    standardiser,
)
from naslab.predictors.featurize import (
    FEATURE_VERSION,
    N_GLOBAL_FEATURES,
    Featurizer,
    GraphBatch,
)
from naslab.predictors.gnn_network import FAMILIES, EnsembleNetwork
from naslab.predictors.gnn_training import (
    LOSSES,
    EarlyStopping,
    Holdout,
    calibration,
    holdout,
    masked_mse,
    member_maps,
    pair_loss,
    run_epoch,
)
from naslab.search_spaces.architecture import Architecture

__all__ = ["FAMILIES", "LOSSES", "GNNPredictor"]

_PREDICT_CHUNK = 512


#: Upper bounds of the hyper-parameters, checked when a predictor is made and when
#: one is loaded (a tampered file cannot ask for ten million members or layers).
LIMITS = {"hidden": 1024, "layers": 16, "members": 64, "batch_size": 1_000_000,
          "max_epochs": 100_000, "max_steps": 10_000_000}


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
        self.hidden = check_int("hidden", hidden, minimum=1, maximum=LIMITS["hidden"])
        self.layers = check_int("layers", layers, minimum=1, maximum=LIMITS["layers"])
        self.members = check_int("members", members, minimum=1, maximum=LIMITS["members"])
        self.batch_size = (
            None if batch_size is None
            else check_int("batch_size", batch_size, minimum=1, maximum=LIMITS["batch_size"])
        )
        self.max_epochs = check_int("max_epochs", max_epochs, minimum=1,
                                    maximum=LIMITS["max_epochs"])
        self.max_steps = check_int("max_steps", max_steps, minimum=1,
                                   maximum=LIMITS["max_steps"])
        self.patience = check_int("patience", patience, minimum=1, maximum=LIMITS["max_epochs"])
        self.lr = check_float("lr", lr, minimum=0.0, strict_minimum=True)
        self.weight_decay = check_float("weight_decay", weight_decay, minimum=0.0)
        self.val_fraction = check_float("val_fraction", val_fraction, minimum=0.0, maximum=1.0,
                                        strict_minimum=True, strict_maximum=True)
        self.dropout = check_float("dropout", dropout, minimum=0.0, maximum=1.0,
                                   strict_maximum=True)
        self.seed = check_int("seed", seed, minimum=0)
        self.calibrate = check_bool("calibrate", calibrate)
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
        self.network_ = EnsembleNetwork(
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
            self.lr / 3.0 if lr is None else check_float("lr", lr, minimum=0.0,
                                                         strict_minimum=True),
            self.max_epochs if max_epochs is None else check_int("max_epochs", max_epochs,
                                                                 minimum=1),
            self.seed + 1 if seed is None else check_int("seed", seed, minimum=0),
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
        """Train the network on standardised targets, then map and calibrate its members."""
        self.y_mean_, self.y_scale_ = standardiser(y)
        target = torch.as_tensor((y - self.y_mean_) / self.y_scale_, dtype=torch.float32)
        batch = self._featurizer(archs)
        inputs = (batch, self._graph_inputs(batch, values))
        split = holdout(len(archs), self.members, self.val_fraction, y,
                        np.random.default_rng(seed))
        self.epochs_ = self._run_epochs(inputs, target, split, lr, max_epochs, seed)
        # Each member's output is mapped onto the standardised target by least squares
        # on its own training architectures: a pairwise loss fixes only the order.
        pred = self._forward_all(*inputs)
        self.member_scale_, self.member_shift_ = member_maps(pred, target, split.train_mask)
        self.std_scale_ = 1.0
        if self.calibrate and split.n_val and self.members > 1:
            self.std_scale_ = calibration(self._mapped(pred), target, split.val_mask)
        self.n_train_ = len(archs)

    def _run_epochs(
        self,
        inputs: tuple[GraphBatch, torch.Tensor],
        target: torch.Tensor,
        split: Holdout,
        lr: float,
        max_epochs: int,
        seed: int,
    ) -> list[int]:
        """Epochs of minibatch steps until every member stops early, ``max_epochs`` or
        ``max_steps``; leaves each member's best weights in the network and returns
        the epoch each came from (every epoch run, without a held-out split)."""
        net, n = self.network_, target.shape[0]
        optimiser = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=self.weight_decay,
                                     fused=True)
        generator = torch.Generator().manual_seed(seed)
        size = min(self.batch_size or min(max(16, n // 8), 128), n)
        stopping = EarlyStopping(net, self.members, self.patience) if split.n_val else None
        held_out = (inputs[0].select(split.val_idx), inputs[1][split.val_idx])
        steps, epoch = 0, 0
        while epoch < max_epochs and steps < self.max_steps:
            order = torch.randperm(n, generator=generator)
            steps += run_epoch(net, optimiser, inputs, target, split.train_mask, order, size,
                               self.loss)
            epoch += 1
            if stopping is not None:
                stopping.update(self._held_out_loss(held_out, target, split), epoch)
                if stopping.stopped:
                    break
        if stopping is None:
            return [epoch] * self.members
        stopping.restore()
        return stopping.best_epoch

    def _held_out_loss(self, held_out: tuple[GraphBatch, torch.Tensor], target: torch.Tensor,
                       split: Holdout) -> torch.Tensor:
        """Each member's loss on its held-out architectures (sampled pairs if pairwise).

        ``held_out`` is the graph batch and graph-level features of ``split.val_idx``.
        """
        pred = torch.zeros(self.members, target.shape[0])
        pred[:, split.val_idx] = self._forward_all(*held_out)
        if self.loss in ("mse", "mse+pairwise") or split.pairs is None:
            return masked_mse(pred, target, split.val_mask)
        return pair_loss(pred, split.pairs)

    @torch.no_grad()
    def _forward_all(self, batch: GraphBatch, graph_x: torch.Tensor) -> torch.Tensor:
        """The members' raw outputs ``(members, graphs)``, in eval mode, by chunks."""
        was_training = self.network_.training
        self.network_.eval()
        outs = []
        for start in range(0, batch.num_graphs, _PREDICT_CHUNK):
            idx = torch.arange(start, min(start + _PREDICT_CHUNK, batch.num_graphs))
            sub = batch if len(idx) == batch.num_graphs else batch.select(idx)
            outs.append(self.network_(sub, graph_x[idx]))
        self.network_.train(was_training)
        return torch.cat(outs, dim=1)

    def _mapped(self, out: torch.Tensor) -> torch.Tensor:
        """Raw member outputs mapped onto the standardised target."""
        return out * self.member_scale_.unsqueeze(1) + self.member_shift_.unsqueeze(1)

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
        out = self._mapped(torch.cat(outs, dim=1)).double().numpy()
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
        state = _upgrade_state(
            {k[len("net.") :]: torch.from_numpy(np.array(v))
             for k, v in arrays.items() if k.startswith("net.")},
            self.network_,
        )
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


def _upgrade_state(state: dict[str, torch.Tensor], network: EnsembleNetwork) -> dict[str, Any]:
    """A saved network's weights under the names of the current network.

    Predictors saved before the layers were PyG's name a layer's weights
    ``blocks.<i>.a/b.*`` (GIN, directed GIN) or ``blocks.<i>.*`` (GCN); they are now
    ``convs.<i>.nn.a/b.*`` and ``convs.<i>.lin.*``, with the same shapes and meaning.
    PyG's GIN layers also hold a fixed ``eps`` (0), which old files lack.
    """
    if not any(k.startswith("blocks.") for k in state):
        return state
    inner = "lin." if network.family == "gcn" else "nn."
    renamed: dict[str, Any] = {}
    for key, value in state.items():
        if key.startswith("blocks."):
            _, index, rest = key.split(".", 2)
            key = f"convs.{index}.{inner}{rest}"
        renamed[key] = value
    for key, value in network.state_dict().items():
        if key.endswith(".eps"):
            renamed.setdefault(key, value)
    return renamed
