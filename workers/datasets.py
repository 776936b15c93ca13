"""The built-in data sets, as standardised tensors: digits and CIFAR-10.

* digits: scikit-learn's bundled 8x8 hand-written digits (needs no network), split
  60/20/20 (stratified) by a seed;
* CIFAR-10: read from the standard python batches in a local folder (nothing is
  downloaded); the validation split is drawn (stratified) from the training batches
  by a seed, the test split is ``test_batch``.

Each loader returns ``{"train": (X, y), "val": (X, y), "test": (X, y)}``: float32
inputs standardised per channel with the training split's mean and standard
deviation, and int64 labels. :mod:`naslab.workers.task` wraps them in
:class:`~naslab.workers.task.TensorTask` objects (``digits_task``, ``cifar10_task``).
"""

from __future__ import annotations

import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from naslab.core.errors import ConfigError
from naslab.core.validation import check_int

__all__ = ["CIFAR_DIR", "Splits", "cifar10_tensors", "digits_split", "digits_tensors"]

#: Train, validation and test ``(X, y)`` tensors by split name.
Splits = dict[str, tuple[torch.Tensor, torch.Tensor]]

#: The folder that the official CIFAR-10 python archive extracts to.
CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


def _standardise(splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Splits:
    """Per-channel standardisation with the training split's mean and std."""
    xtr = splits["train"][0]
    axes = (0, *range(2, xtr.ndim))
    mean = xtr.mean(axis=axes, dtype=np.float64, keepdims=True)
    std = xtr.std(axis=axes, dtype=np.float64, keepdims=True)
    std = np.where(std > 0, std, 1.0)
    out = {}
    for split, (x, y) in splits.items():
        xs = ((x - mean) / std).astype(np.float32)
        out[split] = (torch.from_numpy(xs), torch.from_numpy(np.asarray(y, dtype=np.int64)))
    return out


# -- digits -------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 digits as read-only arrays: inputs ``(n, 1, 8, 8)`` in ``[0, 1]``."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = np.asarray(data.data, dtype=np.float32).reshape(-1, 1, 8, 8) / 16.0
    y = np.asarray(data.target, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _stratified_three_way(
    y: np.ndarray, val: float | int, test: float | int, seed: int
) -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    rest, test_idx = train_test_split(idx, test_size=test, stratify=y, random_state=seed)
    if isinstance(val, float):  # a fraction of the whole, not of the rest
        val = int(round(val * len(y)))
    train_idx, val_idx = train_test_split(rest, test_size=val, stratify=y[rest], random_state=seed)
    return {"train": np.sort(train_idx), "val": np.sort(val_idx), "test": np.sort(test_idx)}


def digits_split(split_seed: int = 0) -> dict[str, np.ndarray]:
    """Sample indices (into ``sklearn.datasets.load_digits()``) of the digits splits.

    A stratified 60/20/20 train/validation/test split, fixed by ``split_seed``.
    """
    split_seed = check_int("split_seed", split_seed, minimum=0)
    _, y = _load_digits()
    return _stratified_three_way(y, 0.2, 0.2, split_seed)


def digits_tensors(split_seed: int = 0) -> Splits:
    """The digits splits of :func:`digits_split`, inputs ``(n, 1, 8, 8)`` standardised."""
    idx = digits_split(split_seed)
    x, y = _load_digits()
    return _standardise({s: (x[i], y[i]) for s, i in idx.items()})


# -- CIFAR-10 -----------------------------------------------------------------------


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 3, 32, 32)`` (uint8) and labels of one pickled CIFAR-10 batch."""
    try:
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
    except Exception as exc:
        raise ConfigError(f"could not read CIFAR-10 batch {path}: {exc}") from exc
    if not isinstance(batch, dict):
        raise ConfigError(f"{path} is not a CIFAR-10 batch (expected a pickled dict)")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ConfigError(f"{path} is not a CIFAR-10 batch: it lacks the 'data' or 'labels' key")
    data = np.asarray(data, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ConfigError(
            f"{path} is not a CIFAR-10 batch: data has shape {data.shape} and "
            f"{len(labels)} labels; expected (n, 3072) and n labels"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ConfigError(f"{path}: CIFAR-10 labels must lie in 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_folder(root: str | Path) -> Path:
    """The folder holding the batches: ``root`` or its ``cifar-10-batches-py``."""
    base = Path(root).expanduser()
    if (base / CIFAR_DIR).is_dir():
        base = base / CIFAR_DIR
    missing = [f for f in (*_CIFAR_TRAIN, _CIFAR_TEST) if not (base / f).is_file()]
    if missing:
        raise ConfigError(
            f"CIFAR-10 batch file(s) {', '.join(missing)} not found in {base}. Download "
            f"{_CIFAR_URL} on a machine with network access, extract it (tar xzf) and "
            f"pass the extracted '{CIFAR_DIR}' folder (or its parent) as root"
        )
    return base


def _check_val_size(val_size: int | float, n_train: int) -> None:
    """``val_size``: a count in ``[1, n_train)`` or a fraction in ``(0, 1)``."""
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float)):
        raise ConfigError(f"val_size must be an int or a fraction, got {val_size!r}")
    if isinstance(val_size, float) and not 0.0 < val_size < 1.0:
        raise ConfigError(f"val_size as a fraction must lie in (0, 1), got {val_size}")
    if isinstance(val_size, int) and not 1 <= val_size < n_train:
        raise ConfigError(
            f"val_size must lie in [1, {n_train}) (the training images), got {val_size}"
        )


def _train_val_indices(
    y: np.ndarray, val_size: int | float, split_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted training and validation indices, the validation ones drawn stratified."""
    from sklearn.model_selection import train_test_split

    try:
        train_idx, val_idx = train_test_split(
            np.arange(len(y)), test_size=val_size, stratify=y, random_state=split_seed
        )
    except ValueError as exc:
        raise ConfigError(f"cannot draw a stratified validation split: {exc}") from exc
    return np.sort(train_idx), np.sort(val_idx)


def cifar10_tensors(root: str | Path, split_seed: int = 0, val_size: int | float = 5000) -> Splits:
    """The CIFAR-10 splits read from the python batches in ``root``.

    ``root`` is the ``cifar-10-batches-py`` folder of the official archive (or a
    folder containing it). The validation split (``val_size`` images, or that
    fraction of the training images) is drawn stratified from the training batches
    by ``split_seed``; the test split is ``test_batch``. Inputs ``(n, 3, 32, 32)``
    are scaled to ``[0, 1]`` and standardised per channel with the training split's
    statistics. The batches are Python pickles: only read files you trust.

    Raises:
        ConfigError: the folder or a batch file is missing or malformed, or a
            setting is out of range.
    """
    split_seed = check_int("split_seed", split_seed, minimum=0)
    base = _cifar_folder(root)
    parts = [_read_cifar_batch(base / f) for f in _CIFAR_TRAIN]
    x_all = np.concatenate([p[0] for p in parts])
    y_all = np.concatenate([p[1] for p in parts])
    x_test, y_test = _read_cifar_batch(base / _CIFAR_TEST)
    _check_val_size(val_size, len(y_all))
    if len(y_test) == 0:
        raise ConfigError(f"{base / _CIFAR_TEST} holds no images")
    train_idx, val_idx = _train_val_indices(y_all, val_size, split_seed)
    return _standardise({
        "train": (x_all[train_idx].astype(np.float32) / 255.0, y_all[train_idx]),
        "val": (x_all[val_idx].astype(np.float32) / 255.0, y_all[val_idx]),
        "test": (x_test.astype(np.float32) / 255.0, y_test),
    })
