"""Tasks: the data sets that architectures are trained and scored on.

A :class:`Task` is a classification problem with a train, a validation and a test
split. It knows the shape of one input (without the batch dimension), the number of
classes, its loss (cross-entropy unless told otherwise) and its metric (accuracy),
and hands out :class:`~torch.utils.data.DataLoader` objects whose training order is
fixed by a seed.

Three ways to get one:

* :class:`TensorTask`: tensors (or numpy arrays) held in memory;
* :class:`LoaderTask`: ``DataLoader`` objects of your own;
* a registered task by name (:func:`get_task`, the :data:`TASKS` registry):
  ``"digits"`` (scikit-learn's bundled 8x8 hand-written digits, needs no network)
  and ``"cifar10"`` (read from the standard CIFAR-10 python batches in a local
  folder); their data are loaded by :mod:`naslab.workers.datasets`.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)

from naslab.core.errors import ConfigError
from naslab.core.registry import Registry
from naslab.core.validation import check_choice, check_int
from naslab.workers.datasets import cifar10_tensors, digits_split, digits_tensors

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = [
    "TASKS",
    "LoaderTask",
    "Task",
    "TensorTask",
    "cifar10_task",
    "digits_split",
    "digits_task",
    "get_task",
]


def data_key(name: str, tensors: Sequence[tuple[str, torch.Tensor]], num_classes: int) -> str:
    """``name(sha256=...)``: a digest of labelled CPU tensors (label, dtype, shape and
    bytes of each) and the number of classes, so that different data never share a
    task key."""
    h = hashlib.sha256()
    for label, t in tensors:
        h.update(f"{label}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    h.update(f"classes={num_classes}".encode())
    return f"{name}(sha256={h.hexdigest()[:12]})"


def _seeded_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(check_int("seed", seed, minimum=0))


class Task(ABC):
    """A classification task with train, validation and test splits.

    Attributes:
        name: short name of the task.
        input_shape: shape of one input, without the batch dimension.
        num_classes: number of classes; targets are integers in ``[0, num_classes)``
            and a model's output has shape ``(batch, num_classes)``.
        metric: name of the metric reported (always ``"accuracy"``).
    """

    metric: str = "accuracy"

    def __init__(
        self,
        name: str,
        input_shape: Sequence[int],
        num_classes: int,
        loss: LossFn | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a task's name must be a non-empty string, got {name!r}")
        if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence):
            raise ConfigError(
                f"input_shape must be a sequence of positive integers, got {input_shape!r}")
        shape = tuple(check_int("each size of input_shape", s, minimum=1, maximum=2**31 - 1)
                      for s in input_shape)
        if not shape:
            raise ConfigError(
                f"input_shape must be a non-empty sequence of positive integers "
                f"(without the batch dimension), got {input_shape!r}"
            )
        self.name = name
        self.input_shape: tuple[int, ...] = shape
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        if loss is not None and not callable(loss):
            raise ConfigError(
                f"loss must be a callable (output, target) -> scalar tensor, got {loss!r}"
            )
        self._loss: LossFn = loss if loss is not None else F.cross_entropy

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The mean loss of ``output`` (logits) against ``target`` (class indices).

        Cross-entropy unless the task was given another loss.
        """
        return self._loss(output, target)

    @property
    def key(self) -> str:
        """Identity of the task and its data split, e.g. ``"digits(seed=0)"``.

        Results are reused only between evaluations on tasks with equal keys.
        """
        return self.name

    @abstractmethod
    def loaders(self, batch_size: int, seed: int) -> tuple[DataLoader, DataLoader, DataLoader]:
        """Train, validation and test loaders yielding ``(inputs, targets)`` batches.

        The training loader shuffles with a ``torch.Generator`` seeded from ``seed``,
        so two calls with the same seed give the same order; validation and test
        loaders do not shuffle.
        """

    def sample_batch(self, n: int) -> torch.Tensor:
        """``n`` inputs (shape ``(n, *input_shape)``) for latency and FLOPs measurements.

        Taken from the validation split, repeated when it has fewer than ``n``.
        """
        n = check_int("n", n, minimum=1)
        _, val, _ = self.loaders(n, 0)
        parts: list[torch.Tensor] = []
        have = 0
        for batch in val:
            parts.append(batch[0])
            have += len(batch[0])
            if have >= n:
                break
        if have == 0:
            raise ConfigError(f"task {self.name!r}: the validation loader yields no data")
        out = torch.cat(parts)
        if len(out) < n:
            out = out.repeat((n + len(out) - 1) // len(out), *([1] * (out.dim() - 1)))
        return out[:n]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(key={self.key!r}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes})"
        )


# -- tensors in memory ------------------------------------------------------------

_SPLITS = ("train", "val", "test")


def _as_tensor(split: str, what: str, value: Any) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise ConfigError(f"{split} {what}: numpy arrays of dtype object are not accepted")
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise ConfigError(
            f"{split} {what} must be a torch.Tensor or numpy array, got {type(value).__name__}"
        )
    return value


def _check_split(split: str, pair: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ConfigError(
            f"{split} must be a pair (X, y) of inputs and integer class labels, "
            f"got {type(pair).__name__}"
            + (f" of length {len(pair)}" if isinstance(pair, (tuple, list)) else "")
        )
    x = _as_tensor(split, "inputs X", pair[0])
    y = _as_tensor(split, "labels y", pair[1])
    if not x.is_floating_point():
        raise ConfigError(
            f"{split} inputs X must have a floating dtype (float32 is used), got {x.dtype}; "
            "convert and scale them first, e.g. X.float() / 255"
        )
    if x.dim() < 2:
        raise ConfigError(
            f"{split} inputs X must have shape (n_samples, *input_shape), got shape "
            f"{tuple(x.shape)}; for 1-D features use shape (n_samples, n_features)"
        )
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise ConfigError(
            f"{split} labels y must be integer class indices (e.g. int64), got {y.dtype}"
        )
    if y.dim() != 1:
        raise ConfigError(
            f"{split} labels y must be 1-D class indices of shape (n_samples,), "
            f"got shape {tuple(y.shape)} (one-hot labels are not accepted)"
        )
    if len(x) != len(y):
        raise ConfigError(f"{split} has {len(x)} inputs but {len(y)} labels; they must match")
    if len(x) == 0:
        raise ConfigError(f"{split} split is empty; every split needs at least one sample")
    if int(y.min()) < 0:
        raise ConfigError(f"{split} labels y must be >= 0, found {int(y.min())}")
    x = x.detach().to("cpu", torch.float32).contiguous()
    if not torch.isfinite(x).all():
        raise ConfigError(f"{split} inputs X contain NaN or infinite values")
    return x, y.detach().to("cpu", torch.int64).contiguous()


class TensorTask(Task):
    """A task whose splits are tensors (or numpy arrays) held in memory.

    Args:
        name: short name of the task.
        train, val, test: pairs ``(X, y)``: ``X`` a floating array of shape
            ``(n_samples, *input_shape)`` (converted to float32), ``y`` integer
            class indices of shape ``(n_samples,)``.
        num_classes: number of classes; inferred as the largest label plus one
            when omitted.
        loss: loss ``(output, target) -> scalar``; cross-entropy when omitted.
        key: identity of the data (see :attr:`Task.key`); when omitted it is the
            name plus a digest of the tensors, so different data never share a key.

    Raises:
        ConfigError: a split is not a pair, has a wrong dtype or shape, the splits'
            input shapes differ, or a label is outside ``[0, num_classes)``.
    """

    def __init__(
        self,
        name: str,
        train: tuple[Any, Any],
        val: tuple[Any, Any],
        test: tuple[Any, Any],
        num_classes: int | None = None,
        *,
        loss: LossFn | None = None,
        key: str | None = None,
    ) -> None:
        splits = {s: _check_split(s, p) for s, p in zip(_SPLITS, (train, val, test), strict=True)}
        shapes = {s: tuple(x.shape[1:]) for s, (x, _) in splits.items()}
        if len(set(shapes.values())) != 1:
            raise ConfigError(
                "the splits' inputs must share one per-sample shape, got "
                + ", ".join(f"{s} {shape}" for s, shape in shapes.items())
            )
        top = max(int(y.max()) for _, y in splits.values())
        if num_classes is None:
            num_classes = max(top + 1, 2)
        else:
            num_classes = check_int("num_classes", num_classes, minimum=2)
            if top >= num_classes:
                raise ConfigError(
                    f"labels must lie in [0, num_classes={num_classes}), found label {top}"
                )
        super().__init__(name, shapes["train"], num_classes, loss)
        self._tensors = splits
        if key is not None and (not isinstance(key, str) or not key):
            raise ConfigError(f"key must be a non-empty string, got {key!r}")
        self._key = key

    @property
    def key(self) -> str:
        """The given key, or the name plus a digest of the data (computed once)."""
        if self._key is None:
            self._key = data_key(self.name, [(split, t) for split in _SPLITS
                                             for t in self._tensors[split]], self.num_classes)
        return self._key

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``(X, y)`` tensors of ``split`` (``"train"``, ``"val"`` or ``"test"``).

        The tensors are the task's own (not copies); do not modify them.
        """
        check_choice("split", split, _SPLITS)
        return self._tensors[split]

    def __len__(self) -> int:
        return sum(len(y) for _, y in self._tensors.values())

    def loaders(self, batch_size: int, seed: int) -> tuple[DataLoader, DataLoader, DataLoader]:
        """Batched loaders over the tensors (see :meth:`Task.loaders`).

        Batches are gathered by indexing the tensors with whole index batches, which
        is much faster than collating samples one by one. The training loader drops a
        trailing batch of a single sample (BatchNorm cannot train on one).
        """
        batch_size = check_int("batch_size", batch_size, minimum=1)
        gen = _seeded_generator(seed)
        out = []
        for split in _SPLITS:
            ds = TensorDataset(*self._tensors[split])
            if split == "train":
                sampler: Any = RandomSampler(ds, generator=gen)
                drop_last = len(ds) % batch_size == 1 and len(ds) > 1
            else:
                sampler, drop_last = SequentialSampler(ds), False
            batches = BatchSampler(sampler, batch_size, drop_last)
            out.append(DataLoader(ds, sampler=batches, batch_size=None))
        return out[0], out[1], out[2]

    def sample_batch(self, n: int) -> torch.Tensor:
        """``n`` validation inputs, repeated when the split has fewer than ``n``."""
        n = check_int("n", n, minimum=1)
        x = self._tensors["val"][0]
        idx = torch.arange(n) % len(x)
        return x[idx].clone()


# -- user data loaders --------------------------------------------------------------


class LoaderTask(Task):
    """A task whose splits come from ``DataLoader`` objects of your own.

    Each loader must yield ``(inputs, targets)`` batches: float inputs of shape
    ``(batch, *input_shape)`` and integer class indices of shape ``(batch,)``.

    For reproducibility the training loader is rebuilt on its dataset with the
    evaluator's batch size and a shuffle seeded by the evaluation seed (keeping its
    ``collate_fn``, ``num_workers``, ``pin_memory``, ``drop_last`` and worker settings).
    A training loader with a custom sampler or batch sampler, or over an
    ``IterableDataset``, is used as given: its own order and batch size then apply.
    Validation and test loaders are always used as given.

    Args:
        name: short name of the task.
        train_loader, val_loader, test_loader: the three loaders.
        input_shape: shape of one input, without the batch dimension.
        num_classes: number of classes.
        loss: loss ``(output, target) -> scalar``; cross-entropy when omitted.
        key: identity of the data (see :attr:`Task.key`); defaults to ``name``, so
            give different data different names (or keys).
    """

    def __init__(
        self,
        name: str,
        train_loader: DataLoader,
        val_loader: DataLoader,
        test_loader: DataLoader,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        loss: LossFn | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(name, input_shape, num_classes, loss)
        for split, loader in zip(_SPLITS, (train_loader, val_loader, test_loader), strict=True):
            if not isinstance(loader, DataLoader):
                raise ConfigError(
                    f"{split}_loader must be a torch.utils.data.DataLoader, "
                    f"got {type(loader).__name__}"
                )
        if key is not None and (not isinstance(key, str) or not key):
            raise ConfigError(f"key must be a non-empty string, got {key!r}")
        self._loaders = (train_loader, val_loader, test_loader)
        self._key = key

    @property
    def key(self) -> str:
        """The given key, else the name."""
        return self._key if self._key is not None else self.name

    def _reseedable(self) -> bool:
        train = self._loaders[0]
        return (
            not isinstance(train.dataset, IterableDataset)
            and train.batch_size is not None
            and isinstance(train.sampler, (RandomSampler, SequentialSampler))
            and type(train.batch_sampler) is BatchSampler
        )

    def loaders(self, batch_size: int, seed: int) -> tuple[DataLoader, DataLoader, DataLoader]:
        """The loaders, the training one rebuilt with ``batch_size`` and a seeded shuffle."""
        batch_size = check_int("batch_size", batch_size, minimum=1)
        train, val, test = self._loaders
        if self._reseedable():
            train = DataLoader(
                train.dataset,
                batch_size=batch_size,
                shuffle=True,
                generator=_seeded_generator(seed),
                num_workers=train.num_workers,
                collate_fn=train.collate_fn,
                pin_memory=train.pin_memory,
                drop_last=train.drop_last,
                timeout=train.timeout,
                worker_init_fn=train.worker_init_fn,
                multiprocessing_context=train.multiprocessing_context,
                persistent_workers=train.persistent_workers,
            )
        return train, val, test


# -- built-in tasks -----------------------------------------------------------------


def digits_task(split_seed: int = 0) -> TensorTask:
    """scikit-learn's bundled hand-written digits (1,797 images of 8x8, 10 classes).

    Inputs have shape ``(1, 8, 8)``: pixels scaled to ``[0, 1]``, then standardised
    with the training split's mean and standard deviation. The split is a stratified
    60/20/20 train/validation/test split fixed by ``split_seed`` (see
    :func:`digits_split`). Needs no network.
    """
    tensors = digits_tensors(split_seed)
    return TensorTask(
        "digits",
        tensors["train"],
        tensors["val"],
        tensors["test"],
        num_classes=10,
        key=f"digits(seed={split_seed})",
    )


def cifar10_task(root: str | Path, split_seed: int = 0, val_size: int | float = 5000) -> TensorTask:
    """CIFAR-10 read from the standard python batches in a local folder.

    ``root`` is the ``cifar-10-batches-py`` folder of the official archive (or a
    folder containing it), holding ``data_batch_1`` ... ``data_batch_5`` and
    ``test_batch``. Nothing is downloaded. The validation split (``val_size``
    images, or that fraction of the training images) is drawn stratified from the
    training batches by ``split_seed``; the test split is ``test_batch``. Inputs
    have shape ``(3, 32, 32)``, scaled to ``[0, 1]`` and standardised per channel
    with the training split's statistics (see
    :func:`naslab.workers.datasets.cifar10_tensors`).

    The batches are Python pickles: only read files you trust.

    Raises:
        ConfigError: the folder or a batch file is missing or malformed.
    """
    tensors = cifar10_tensors(root, split_seed, val_size)
    return TensorTask(
        "cifar10",
        tensors["train"],
        tensors["val"],
        tensors["test"],
        num_classes=10,
        key=f"cifar10(seed={split_seed},val={val_size})",
    )


# -- registry -----------------------------------------------------------------------

#: Built-in tasks by name: factories returning a :class:`Task`. Add your own with
#: ``TASKS.register("name", factory)``.
TASKS = Registry("task", base=Task)
TASKS.register("digits", digits_task, info={"inputs": "images"})
TASKS.register("cifar10", cifar10_task, info={"inputs": "images"})
TASKS.register("sbm", "naslab.workers.graph_task:sbm_task", info={"inputs": "graphs"})
TASKS.register("karate", "naslab.workers.graph_task:karate_task", info={"inputs": "graphs"})
TASKS.register("cora", "naslab.workers.graph_task:cora_task", info={"inputs": "graphs"})
TASKS.register("citeseer", "naslab.workers.graph_task:citeseer_task", info={"inputs": "graphs"})
TASKS.register("pubmed", "naslab.workers.graph_task:pubmed_task", info={"inputs": "graphs"})


def get_task(name: str, **kwargs: Any) -> Task:
    """The registered task ``name`` built with ``kwargs`` (``TASKS.create``).

    ``get_task("digits", split_seed=1)``, ``get_task("cifar10", root="data/")``.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the choices).
        ConfigError: ``kwargs`` do not fit the task's factory (the message lists
            those it accepts).
    """
    task: Task = TASKS.create(name, **kwargs)
    return task
