"""Full-batch training of graph networks: :class:`GraphTrainingEvaluator`.

The node-classification counterpart of
:class:`~naslab.workers.training.TrainingEvaluator`: an evaluation builds the network
with ``space.build(arch, task)`` for a :class:`~naslab.workers.graph_task.GraphTask`
(a module mapping ``(x, edge_index)`` to per-node logits), trains it with Adam on the
whole graph (one step per epoch, the loss over the training nodes), reports
``train_loss``, ``val_loss`` and ``val_accuracy`` after every epoch, and returns the
final validation and test accuracy with the network's size, FLOPs, latency and
trained weights.

Seeding: ``torch.manual_seed(seed)`` before the network is built (initial weights,
dropout masks); nothing else random is drawn. On the CPU PyTorch's scatter
operations are deterministic, so the same architecture, fidelity and seed give the
same metrics and weights; on CUDA, PyTorch's deterministic algorithms are switched on
(warn-only) for the duration of each evaluation and restored afterwards.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from naslab.core.errors import ConfigError, EvaluationError, NaslabError
from naslab.core.validation import check_bool, check_float, check_int
from naslab.workers.evaluator import Evaluator, Reporter, Result
from naslab.workers.graph_task import GraphTask
from naslab.workers.measure import count_params, measure_latency_ms
from naslab.workers.task import get_task
from naslab.workers.training import build_seeded, check_device, resolve_device

if TYPE_CHECKING:
    from naslab.search_spaces.architecture import Architecture
    from naslab.search_spaces.base import SearchSpace

__all__ = ["GRAPH_TRAINING_VERSION", "GraphTrainingEvaluator", "count_graph_flops"]

#: Bumped whenever a change to the training procedure changes its results (part of
#: :attr:`GraphTrainingEvaluator.key`).
GRAPH_TRAINING_VERSION = 1

#: Aggregations of message passing, counted as one FLOP per aggregated element
#: (torch's FLOP counter has no formula for them).
_AGGREGATIONS = ("scatter_add", "scatter_add_", "scatter_reduce", "scatter_reduce_",
                 "index_add", "index_add_")


def _aggregation_flops(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    src = args[3] if len(args) > 3 else kwargs.get("src", kwargs.get("source"))
    return int(math.prod(src)) if src is not None else 0


def count_graph_flops(model: nn.Module, x: torch.Tensor, edge_index: torch.Tensor) -> int:
    """Floating-point operations of one forward pass over the whole graph (eval mode).

    Torch's :class:`~torch.utils.flop_counter.FlopCounterMode` counts the matrix
    products (a multiply-add is two FLOPs), and message passing's aggregations
    (``scatter_add``, ``scatter_reduce``, ``index_add``) count one FLOP per
    aggregated element; activations, normalisation, softmax and biases add nothing,
    as in :func:`~naslab.workers.measure.count_flops`.
    """
    mapping = {getattr(torch.ops.aten, name): _aggregation_flops for name in _AGGREGATIONS
               if hasattr(torch.ops.aten, name)}  # keyed by op packet, as torch's own
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(x, edge_index)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


class _WholeGraph(nn.Module):
    """``model`` with the graph's edges bound, so that ``forward(x)`` runs it (for
    :func:`~naslab.workers.measure.measure_latency_ms`)."""

    def __init__(self, model: nn.Module, edge_index: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.edge_index = edge_index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.edge_index)  # type: ignore[no-any-return]


@contextlib.contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """PyTorch's deterministic algorithms (warn-only) on CUDA, restored afterwards."""
    if device.type != "cuda":
        yield
        return
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


@dataclass
class _Run:
    """What the steps of one evaluation share."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    data: Any  # the task's Data on the device
    train_seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


class GraphTrainingEvaluator(Evaluator):
    """Evaluates an architecture by training it full-batch on a graph task.

    Args:
        task: a :class:`~naslab.workers.graph_task.GraphTask`, or the name of a
            registered one (built with its defaults, e.g. ``"sbm"``).
        lr: Adam's learning rate (constant over the run).
        weight_decay: Adam's (L2) weight decay.
        keep_weights: return the trained weights in :attr:`Result.weights`.
        latency_repeats: timed full-graph forward passes; their median is the latency.
        device: where to train: ``"auto"`` (a GPU where the process sees one, else the
            CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... Not part of :attr:`key`.

    Raises:
        ConfigError: a setting is out of range, or the task is not a graph task.
        UnknownNameError: unknown task name.
    """

    metrics = ("val_accuracy", "test_accuracy", "val_loss", "train_loss")
    #: Epochs of a study that names none: full-batch epochs are single steps.
    default_fidelity = 100

    def __init__(self, task: GraphTask | str, *, lr: float = 0.01, weight_decay: float = 5e-4,
                 keep_weights: bool = True, latency_repeats: int = 20,
                 device: str | torch.device = "auto") -> None:
        if isinstance(task, str):
            task = get_task(task)
        if not isinstance(task, GraphTask):
            raise ConfigError(f"task must be a GraphTask or the name of a graph task, got "
                              f"{type(task).__name__}"
                              + (f" {task.name!r}" if hasattr(task, "name") else ""))
        self.task: GraphTask = task
        self.lr = check_float("lr", lr, minimum=0.0, maximum=10.0, strict_minimum=True)
        self.weight_decay = check_float("weight_decay", weight_decay, minimum=0.0, maximum=10.0)
        self.keep_weights = check_bool("keep_weights", keep_weights)
        self.latency_repeats = check_int("latency_repeats", latency_repeats, minimum=1,
                                         maximum=10_000)
        self.device_spec = check_device(device)
        self._device: torch.device | None = None
        self._data: Any = None

    @property
    def device(self) -> torch.device:
        """The device this process trains on (``"auto"`` resolved on first use)."""
        if self._device is None:
            self._device = resolve_device(self.device_spec)
        return self._device

    @property
    def key(self) -> str:
        """Task key plus every setting that changes the results."""
        return (f"graph-train-v{GRAPH_TRAINING_VERSION}({self.task.key};full-batch;"
                f"adam,lr={self.lr!r},wd={self.weight_decay!r})")

    def __repr__(self) -> str:
        return f"GraphTrainingEvaluator({self.key})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_data"] = None  # the device copy of the graph is rebuilt where needed
        state["_device"] = None  # "auto" is resolved again in the receiving process
        return state

    def _graph(self) -> Any:
        if self._data is None:
            self._data = self.task.data.to(self.device)
        return self._data

    # -- evaluation ----------------------------------------------------------------

    def evaluate(self, space: SearchSpace, arch: Architecture, fidelity: int, seed: int,
                 reporter: Reporter) -> Result:
        """Train ``arch`` for ``fidelity`` full-batch epochs with ``seed``; report after
        each epoch.

        Reports ``train_loss`` (of the epoch's step, before it), ``val_loss`` and
        ``val_accuracy`` at steps 1..``fidelity``; when the reporter answers False
        training ends after that epoch. Returns a :class:`Result` with metrics
        ``val_accuracy``, ``val_loss``, ``train_loss`` (of the last epoch) and
        ``test_accuracy``; ``params`` (trainable), ``flops`` (one forward pass over the
        whole graph, see :func:`count_graph_flops`), ``latency_ms`` (one full-graph
        forward), ``train_seconds``, ``epochs`` and, if ``keep_weights``, the trained
        ``state_dict`` as CPU tensors; ``extra`` holds the per-epoch ``history``.

        Raises:
            ConfigError: ``fidelity`` < 1 or ``seed`` not an integer >= 0.
            InvalidArchitectureError: ``arch`` is not a valid architecture of ``space``.
            EvaluationError: the network cannot be built or run on the graph, its
                output has the wrong shape, or training diverged (NaN/inf loss).
        """
        fidelity = check_int("fidelity (epochs)", fidelity, minimum=1)
        seed = check_int("seed", seed, minimum=0)
        with _deterministic(self.device):
            model = build_seeded(space, arch, self.task, seed, self.device)
            params = count_params(model)
            trainable = [p for p in model.parameters() if p.requires_grad]
            if not trainable:
                raise EvaluationError("the network has no trainable parameters")
            optimizer = torch.optim.Adam(trainable, lr=self.lr, weight_decay=self.weight_decay)
            run = _Run(model, optimizer, self._graph())
            for epoch in range(1, fidelity + 1):
                metrics = self._train_and_validate(run, epoch)
                if reporter.report(epoch, metrics) is False:  # stopped by a scheduler
                    break
            test_acc, flops, latency = self._test_and_measure(run)
        return self._result(run, params, test_acc, flops, latency, seed)

    def _forward(self, model: nn.Module, data: Any) -> torch.Tensor:
        out = model(data.x, data.edge_index)
        expected = (int(data.x.shape[0]), self.task.num_classes)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise EvaluationError(f"the network's output is {got} for a graph of {expected[0]} "
                                  f"nodes; expected a tensor of shape {expected} "
                                  "(num_nodes, num_classes)")
        return out

    def _score(self, model: nn.Module, data: Any, mask: str) -> tuple[float, float]:
        """Loss and accuracy over the nodes of ``mask`` (eval mode)."""
        model.eval()
        with torch.inference_mode():
            out = self._forward(model, data)
            sel = getattr(data, mask)
            loss = float(self.task.loss(out[sel], data.y[sel]))
            acc = float((out[sel].argmax(dim=1) == data.y[sel]).double().mean())
        model.train()
        return loss, acc

    def _train_and_validate(self, run: _Run, epoch: int) -> dict[str, float]:
        """One optimizer step on the training nodes, then the validation scores."""
        start = time.perf_counter()
        data = run.data
        try:
            out = self._forward(run.model, data)
            loss = self.task.loss(out[data.train_mask], data.y[data.train_mask])
            train_loss = loss.item()
            if not math.isfinite(train_loss):
                raise EvaluationError(f"training diverged: loss is {train_loss} at epoch {epoch}")
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.optimizer.step()
            val_loss, val_acc = self._score(run.model, data, "val_mask")
        except NaslabError:
            raise
        except RuntimeError as exc:
            raise EvaluationError(f"training failed at epoch {epoch}: {exc}") from exc
        if not math.isfinite(val_loss):
            raise EvaluationError(f"training diverged: validation loss is {val_loss} at "
                                  f"epoch {epoch}")
        run.train_seconds += time.perf_counter() - start
        metrics = {"train_loss": train_loss, "val_accuracy": val_acc, "val_loss": val_loss}
        run.history.append({"epoch": epoch, **metrics})
        return metrics

    def _test_and_measure(self, run: _Run) -> tuple[float, int, float]:
        """Test accuracy, FLOPs and latency (ms) of the trained network."""
        data = run.data
        try:
            _, test_acc = self._score(run.model, data, "test_mask")
            flops = count_graph_flops(run.model, data.x, data.edge_index)
            latency = measure_latency_ms(_WholeGraph(run.model, data.edge_index), data.x,
                                         repeats=self.latency_repeats)
        except NaslabError:
            raise
        except RuntimeError as exc:
            raise EvaluationError(f"testing or measuring the trained network failed: {exc}"
                                  ) from exc
        return test_acc, flops, latency

    def _result(self, run: _Run, params: int, test_acc: float, flops: int, latency: float,
                seed: int) -> Result:
        last = run.history[-1]
        weights = None
        if self.keep_weights:
            weights = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
        return Result(
            metrics={"val_accuracy": last["val_accuracy"], "test_accuracy": test_acc,
                     "val_loss": last["val_loss"], "train_loss": last["train_loss"]},
            params=params, flops=flops, latency_ms=latency, train_seconds=run.train_seconds,
            epochs=len(run.history), weights=weights,
            extra={"history": run.history, "device": str(self.device), "seed": seed,
                   "nodes": self.task.num_nodes, "edges": self.task.num_edges},
        )
