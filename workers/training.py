"""Real training: :class:`TrainingEvaluator` trains each architecture with PyTorch.

An evaluation builds the network with ``space.build(arch, task)``, trains it for
``fidelity`` epochs with mini-batch SGD (Nesterov momentum) or Adam and a cosine
learning-rate schedule fitted to those epochs, reports training loss and validation
loss and accuracy after every epoch, and returns the final validation and test
accuracy together with the network's size, FLOPs, latency and trained weights.

Everything random is seeded from the evaluation seed: ``torch.manual_seed(seed)``
(weights' initialisation, dropout) and a local ``torch.Generator`` for the data
order, so on one machine the same architecture, fidelity and seed give the same
metrics and weights. Nothing else global (numpy, ``random``, thread counts) is
touched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from naslab.core.errors import ConfigError, EvaluationError, NaslabError
from naslab.core.validation import check_bool, check_choice, check_float, check_int
from naslab.workers.evaluator import Evaluator, Reporter, Result
from naslab.workers.measure import count_flops, count_params, measure_latency_ms
from naslab.workers.task import Task, TensorTask, get_task

if TYPE_CHECKING:
    from naslab.search_spaces.architecture import Architecture
    from naslab.search_spaces.base import SearchSpace

__all__ = ["OPTIMIZERS", "SCHEDULES", "TrainingEvaluator"]

#: Bumped whenever a change to the training procedure changes its results, so that
#: results of an older procedure are not reused (it is part of :attr:`key`).
TRAINING_VERSION = 1

#: Optimizers and their default learning rates.
OPTIMIZERS: dict[str, float] = {"sgd": 0.1, "adam": 3e-3, "adamw": 3e-3}
#: Learning-rate schedules: cosine decay to zero over the run, or constant.
SCHEDULES = ("cosine", "constant")

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def check_device(device: str | torch.device) -> str | torch.device:
    """``device`` if it is ``"auto"`` or names a torch device that this process has.

    A CUDA device is refused where CUDA is not available (or its index is beyond
    the GPUs seen): every trial would fail. ``"auto"`` picks a GPU wherever one is
    seen (a Ray worker on a GPU node included).
    """
    if device == "auto":
        return "auto"
    accepted = "accepted: 'auto', 'cpu', 'cuda', 'cuda:N', ..."
    if not isinstance(device, (str, torch.device)):
        raise ConfigError(f"invalid device {device!r} ({accepted})")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(f"invalid device {str(device)!r} ({accepted}): {exc}") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {str(device)!r}: CUDA is not available on this machine; "
                              "use device=auto (a GPU where a worker has one) or device=cpu")
        if parsed.index is not None and parsed.index >= count:
            raise ConfigError(f"device {str(device)!r}: this machine has {count} CUDA "
                              f"device(s) (cuda:0 to cuda:{count - 1})")
    elif parsed.type not in ("cpu", "mps", "xpu"):
        raise ConfigError(f"device {str(device)!r} is not supported ({accepted})")
    return str(device) if isinstance(device, str) else device


def resolve_device(spec: str | torch.device) -> torch.device:
    """The device a checked spec (:func:`check_device`) means in this process:
    ``"auto"`` is a GPU where this process sees one, else the CPU."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(spec)


def build_seeded(space: SearchSpace, arch: Architecture, task: Any, seed: int,
                 device: torch.device) -> nn.Module:
    """The network of ``arch`` for ``task``, initialised from ``seed``, on ``device``,
    in train mode; a build that fails (or returns no module) is an EvaluationError."""
    space.validate(arch)
    torch.manual_seed(seed)
    try:
        model = space.build(arch, task)
    except NaslabError:
        raise
    except Exception as exc:
        raise EvaluationError(f"could not build {arch!r}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise EvaluationError(f"{type(space).__name__}.build returned {type(model).__name__}, "
                              "not a torch.nn.Module")
    return model.to(device).train()


@dataclass
class _Run:
    """What the steps of one evaluation share: the network, its optimizer, the
    training batches and the progress so far."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epochs: Iterator[Batches]  # endless: one iterable of training batches per epoch
    steps_per_epoch: int  # 0 when unknown (the schedule then decays per epoch)
    fidelity: int
    step: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def epochs_done(self) -> int:
        """Epochs trained (and validated) so far."""
        return len(self.history)


class TrainingEvaluator(Evaluator):
    """Evaluates an architecture by training it on a task.

    Args:
        task: a :class:`~naslab.workers.task.Task`, or the name of a registered one
            (built with its defaults, e.g. ``"digits"``).
        batch_size: training batch size.
        optimizer: ``"sgd"`` (momentum, Nesterov), ``"adam"`` (L2 weight decay) or
            ``"adamw"`` (decoupled weight decay).
        lr: peak learning rate; defaults to 0.1 for SGD and 3e-3 for Adam(W).
        momentum: SGD momentum (ignored by Adam).
        weight_decay: weight decay.
        schedule: ``"cosine"`` (per-step cosine decay to zero over the ``fidelity``
            epochs of the run) or ``"constant"``.
        keep_weights: return the trained weights in :attr:`Result.weights`.
        latency_batch: batch size of the latency measurement.
        latency_repeats: timed forward passes; their median is the latency.
        eval_batch_size: batch size for validation and test passes (no effect on
            the metrics beyond rounding, so not part of :attr:`key`).
        device: where to train: ``"auto"`` (a GPU where the process sees one, as a
            Ray worker given ``gpus_per_trial`` does, else the CPU), ``"cpu"``,
            ``"cuda"``, ``"cuda:1"``, ... Not part of :attr:`key`: results from
            different devices are treated as equal.

    Raises:
        ConfigError: a setting is out of range.
        UnknownNameError: unknown optimizer, schedule or task name.
    """

    metrics = ("val_accuracy", "test_accuracy", "val_loss", "train_loss")

    def __init__(
        self,
        task: Task | str,
        *,
        batch_size: int = 32,
        optimizer: str = "sgd",
        lr: float | None = None,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        schedule: str = "cosine",
        keep_weights: bool = True,
        latency_batch: int = 1,
        latency_repeats: int = 20,
        eval_batch_size: int = 1024,
        device: str | torch.device = "auto",
    ) -> None:
        if isinstance(task, str):
            task = get_task(task)
        if not isinstance(task, Task):
            raise ConfigError(f"task must be a Task or a task name, got {type(task).__name__}")
        self.task = task
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.optimizer = check_choice("optimizer", optimizer, OPTIMIZERS)
        self.lr = check_float("lr", OPTIMIZERS[self.optimizer] if lr is None else lr,
                              minimum=0.0, strict_minimum=True)
        self.momentum = check_float("momentum", momentum, minimum=0.0, maximum=1.0,
                                    strict_maximum=True)
        self.weight_decay = check_float("weight_decay", weight_decay, minimum=0.0)
        self.schedule = check_choice("schedule", schedule, SCHEDULES)
        self.keep_weights = check_bool("keep_weights", keep_weights)
        self.latency_batch = check_int("latency_batch", latency_batch, minimum=1)
        self.latency_repeats = check_int("latency_repeats", latency_repeats, minimum=1)
        self.eval_batch_size = check_int("eval_batch_size", eval_batch_size, minimum=1)
        self.device_spec = check_device(device)
        self._device: torch.device | None = None
        self._on_device: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def device(self) -> torch.device:
        """The device this process trains on (``"auto"`` resolved on first use)."""
        if self._device is None:
            self._device = resolve_device(self.device_spec)
        return self._device

    # -- identity -----------------------------------------------------------------

    @property
    def key(self) -> str:
        """Task key plus every setting that changes the results."""
        opt = f"{self.optimizer},lr={self.lr!r},wd={self.weight_decay!r}"
        if self.optimizer == "sgd":
            opt += f",momentum={self.momentum!r}" + (",nesterov" if self.momentum > 0 else "")
        return (
            f"train-v{TRAINING_VERSION}({self.task.key};{opt};bs={self.batch_size};"
            f"schedule={self.schedule};latency_bs={self.latency_batch})"
        )

    def __repr__(self) -> str:
        return f"TrainingEvaluator({self.key})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_on_device"] = {}  # device copies of the data are rebuilt where needed
        state["_device"] = None  # "auto" is resolved again in the receiving process
        return state

    # -- data ---------------------------------------------------------------------

    def _tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        assert isinstance(self.task, TensorTask)
        if split not in self._on_device:
            x, y = self.task.tensors(split)
            self._on_device[split] = (x.to(self.device), y.to(self.device))
        return self._on_device[split]

    def _loaders(self, seed: int) -> tuple[Any, Any, Any]:
        """The task's train, validation and test loaders (None for a tensor task,
        whose tensors are batched on the device instead)."""
        if isinstance(self.task, TensorTask):
            return None, None, None
        return self.task.loaders(self.batch_size, seed)

    def _train_batches(self, gen: torch.Generator, loader: Any) -> tuple[int, Iterator[Batches]]:
        """Steps per epoch and an endless iterator of epochs of training batches."""
        if isinstance(self.task, TensorTask):
            return self._tensor_epochs(gen)
        return self._loader_epochs(loader)

    def _tensor_epochs(self, gen: torch.Generator) -> tuple[int, Iterator[Batches]]:
        """Epochs of the training tensors in an order drawn from ``gen``; a trailing
        batch of a single sample is dropped."""
        x, y = self._tensors("train")
        n, bs = len(y), self.batch_size
        steps = n // bs + (n % bs > 1 or (n % bs == 1 and n == 1))

        def epochs() -> Iterator[Batches]:
            while True:
                perm = torch.randperm(n, generator=gen).to(self.device)
                chunks = perm.split(bs)
                if len(chunks) > steps:  # a trailing batch of one sample
                    chunks = chunks[:steps]
                yield ((x[i], y[i]) for i in chunks)

        return steps, epochs()

    def _loader_epochs(self, loader: Any) -> tuple[int, Iterator[Batches]]:
        """Epochs of the training loader's batches, moved to the device."""
        try:
            steps = len(loader)
        except TypeError:
            steps = 0  # unknown: the schedule then decays per epoch instead

        def epochs() -> Iterator[Batches]:
            while True:
                yield (
                    (xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True))
                    for xb, yb, *_ in loader
                )

        return steps, epochs()

    def _eval_batches(self, split: str, loader: Any) -> Batches:
        if isinstance(self.task, TensorTask):
            x, y = self._tensors(split)
            bs = self.eval_batch_size
            return [(x[i : i + bs], y[i : i + bs]) for i in range(0, len(y), bs)]
        return ((xb.to(self.device), yb.to(self.device)) for xb, yb, *_ in loader)

    def _score(self, model: nn.Module, batches: Batches) -> tuple[float, float]:
        """Mean loss and accuracy of ``model`` over ``batches`` (eval mode)."""
        model.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        n = 0
        with torch.inference_mode():
            for xb, yb in batches:
                out = model(xb)
                self._check_output(out, xb)
                loss_sum += self.task.loss(out, yb).double() * len(yb)
                correct += (out.argmax(dim=1) == yb).sum()
                n += len(yb)
        model.train()
        if n == 0:
            raise EvaluationError(f"task {self.task.name!r}: an evaluation split is empty")
        return float(loss_sum) / n, int(correct) / n

    def _check_output(self, out: Any, xb: torch.Tensor) -> None:
        expected = (len(xb), self.task.num_classes)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise EvaluationError(
                f"the network's output is {got} for a batch of {len(xb)} inputs; "
                f"expected a tensor of shape {expected} (batch, num_classes)"
            )

    def _make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise EvaluationError("the network has no trainable parameters")
        if self.optimizer == "sgd":
            return torch.optim.SGD(
                params,
                lr=self.lr,
                momentum=self.momentum,
                nesterov=self.momentum > 0,
                weight_decay=self.weight_decay,
            )
        cls = torch.optim.Adam if self.optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=self.lr, weight_decay=self.weight_decay)

    # -- evaluation ----------------------------------------------------------------

    def evaluate(
        self,
        space: SearchSpace,
        arch: Architecture,
        fidelity: int,
        seed: int,
        reporter: Reporter,
    ) -> Result:
        """Train ``arch`` for ``fidelity`` epochs with ``seed``; report after each epoch.

        Reports ``train_loss`` (mean over the epoch's batches), ``val_loss`` and
        ``val_accuracy`` at steps 1..``fidelity``; when the reporter answers False
        (a scheduler stopped the trial) training ends after that epoch, and the
        result describes the network as trained so far (``epochs`` = that epoch;
        the learning-rate schedule stays the one fitted to ``fidelity``).
        Returns a :class:`Result` with
        metrics ``val_accuracy``, ``val_loss``, ``train_loss`` (of the last epoch)
        and ``test_accuracy``; ``params`` (trainable), ``flops`` (one sample),
        ``latency_ms`` (a batch of ``latency_batch``), ``train_seconds`` (training
        and per-epoch validation, without the reporter's time), ``epochs`` and, if
        ``keep_weights``, the trained ``state_dict`` as detached CPU tensors.
        ``extra`` holds the per-epoch ``history`` and the measurement settings.

        Raises:
            ConfigError: ``fidelity`` < 1 or ``seed`` not an integer >= 0.
            InvalidArchitectureError: ``arch`` is not a valid architecture of ``space``.
            EvaluationError: the network cannot be built or run on the task, its
                output has the wrong shape, or training diverged (NaN/inf loss).
        """
        fidelity = check_int("fidelity (epochs)", fidelity, minimum=1)
        seed = check_int("seed", seed, minimum=0)
        model = build_seeded(space, arch, self.task, seed, self.device)
        params = count_params(model)
        optimizer = self._make_optimizer(model)
        gen = torch.Generator().manual_seed(seed)
        train_loader, val_loader, test_loader = self._loaders(seed)
        steps, epochs = self._train_batches(gen, train_loader)
        run = _Run(model, optimizer, epochs, steps, fidelity)
        for epoch in range(1, fidelity + 1):
            metrics = self._train_and_validate(run, epoch, val_loader)
            if reporter.report(epoch, metrics) is False:  # stopped early by a scheduler
                break
        test_acc, flops, latency = self._test_and_measure(model, test_loader)
        return self._result(run, params, test_acc, flops, latency, seed)

    # -- the steps of an evaluation ------------------------------------------------

    def _train_and_validate(self, run: _Run, epoch: int, val_loader: Any) -> dict[str, float]:
        """Train one epoch, then score the validation split; the epoch's metrics
        (also appended to the run's history). Only this counts as training time."""
        start = time.perf_counter()
        try:
            train_loss = self._train_epoch(run, epoch)
            val_loss, val_acc = self._score(run.model, self._eval_batches("val", val_loader))
        except NaslabError:
            raise
        except RuntimeError as exc:
            raise EvaluationError(f"training failed at epoch {epoch}: {exc}") from exc
        if not math.isfinite(val_loss):
            raise EvaluationError(
                f"training diverged: validation loss is {val_loss} at epoch {epoch}"
            )
        run.train_seconds += time.perf_counter() - start
        metrics = {"train_loss": train_loss, "val_accuracy": val_acc, "val_loss": val_loss}
        run.history.append({"epoch": epoch, **metrics})
        return metrics

    def _train_epoch(self, run: _Run, epoch: int) -> float:
        """One pass over the training batches; the mean training loss."""
        loss_sum, seen = 0.0, 0
        for xb, yb in next(run.epochs):
            self._set_learning_rate(run, epoch)
            value = self._train_step(run, xb, yb, epoch)
            loss_sum += value * len(yb)
            seen += len(yb)
        if seen == 0:
            raise EvaluationError(f"task {self.task.name!r}: the training split is empty")
        return loss_sum / seen

    def _set_learning_rate(self, run: _Run, epoch: int) -> None:
        """The cosine schedule: decay per step over the run (per epoch when the number
        of steps is unknown). A constant schedule leaves the rate as it is."""
        if self.schedule != "cosine":
            return
        total_steps = run.steps_per_epoch * run.fidelity
        frac = run.step / total_steps if total_steps else (epoch - 1) / run.fidelity
        for group in run.optimizer.param_groups:
            group["lr"] = self.lr * 0.5 * (1.0 + math.cos(math.pi * frac))

    def _train_step(self, run: _Run, xb: torch.Tensor, yb: torch.Tensor, epoch: int) -> float:
        """One optimizer step on a batch; the batch's loss."""
        out = run.model(xb)
        if run.step == 0:
            self._check_output(out, xb)
        loss = self.task.loss(out, yb)
        value = loss.item()
        if not math.isfinite(value):
            raise EvaluationError(f"training diverged: loss is {value} at epoch {epoch}")
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.step += 1
        return value

    def _test_and_measure(self, model: nn.Module, test_loader: Any) -> tuple[float, int, float]:
        """Test accuracy, FLOPs (one sample) and latency (ms) of the trained network."""
        try:
            _, test_acc = self._score(model, self._eval_batches("test", test_loader))
            sample = self.task.sample_batch(self.latency_batch)
            flops = count_flops(model, sample)
            latency = measure_latency_ms(model, sample, repeats=self.latency_repeats)
        except NaslabError:
            raise
        except RuntimeError as exc:
            raise EvaluationError(
                f"testing or measuring the trained network failed: {exc}"
            ) from exc
        return test_acc, flops, latency

    def _result(
        self, run: _Run, params: int, test_acc: float, flops: int, latency: float, seed: int
    ) -> Result:
        """The :class:`Result` of a finished run (metrics of its last epoch)."""
        last = run.history[-1]
        weights = None
        if self.keep_weights:
            weights = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
        return Result(
            metrics={
                "val_accuracy": last["val_accuracy"],
                "test_accuracy": test_acc,
                "val_loss": last["val_loss"],
                "train_loss": last["train_loss"],
            },
            params=params,
            flops=flops,
            latency_ms=latency,
            train_seconds=run.train_seconds,
            epochs=run.epochs_done,
            weights=weights,
            extra={
                "history": run.history,
                "latency_batch": self.latency_batch,
                "device": str(self.device),
                "seed": seed,
            },
        )
