"""Integrity of stored weights: the SHA-256 kept with every blob, and the checks made
whenever weights are loaded from the store or imported from a file.

A blob is accepted only when its format is one naslab writes (``safetensors``), its
digest matches the one stored with it, it parses as safetensors, and every
floating-point tensor in it is finite (no NaN, no infinity).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from naslab.core.errors import StorageError
from naslab.db.records import WEIGHTS_FORMAT, bytes_to_weights

if TYPE_CHECKING:
    import torch

__all__ = ["SHA256_PATTERN", "WEIGHTS_FORMATS", "check_weights", "weights_digest"]

#: The weights formats naslab writes (and so the only ones it reads).
WEIGHTS_FORMATS = (WEIGHTS_FORMAT,)
#: What a digest looks like: 64 lowercase hex digits.
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


def weights_digest(data: bytes) -> str:
    """The SHA-256 of a weights blob, as 64 lowercase hex digits."""
    return hashlib.sha256(bytes(data)).hexdigest()


def check_weights(data: bytes, fmt: str, sha256: str | None, what: str
                  ) -> dict[str, torch.Tensor]:
    """The state dict of a weights blob, checked (see the module docstring).

    ``what`` names the blob in errors (e.g. ``"weights of trial 7"``); ``sha256``
    None skips the digest check (a file of export format 1 carries none).

    Raises:
        StorageError: the format is unknown, the digest differs, the data is not
            safetensors, or a tensor holds NaN or infinite values.
    """
    import torch

    if fmt not in WEIGHTS_FORMATS:
        raise StorageError(f"{what} are in format {fmt!r}; naslab reads only "
                           f"{', '.join(WEIGHTS_FORMATS)}")
    if sha256 is not None:
        found = weights_digest(data)
        if found != sha256:
            raise StorageError(
                f"{what} are corrupted: their SHA-256 is {found}, not the {sha256} stored "
                "with them (the data was changed after it was written)")
    try:
        tensors = bytes_to_weights(data)
    except Exception as exc:  # safetensors raises its own error types
        raise StorageError(f"{what} are corrupted (not safetensors data): {exc}") from exc
    for name, tensor in tensors.items():
        if tensor.is_floating_point() or tensor.is_complex():
            if not bool(torch.isfinite(tensor).all()):
                raise StorageError(f"{what} are refused: tensor {name!r} holds NaN or "
                                   "infinite values")
    return tensors
