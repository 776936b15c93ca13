"""The predictor interface, its input checks and its safe file format.

Every predictor is scikit-learn-like: ``__init__`` only stores its options,
:meth:`Predictor.fit` learns from architectures and their targets and returns the
predictor, :meth:`Predictor.predict` returns a :class:`Prediction` (mean and
standard deviation per architecture), and learned state lives in attributes ending
in ``_``. Architectures may come from any space, user-defined ones included.

Optional per-architecture numeric *features* (zero-cost proxies, parameter counts,
FLOPs, anything) are given as a mapping ``name -> sequence of floats`` or as a 2-D
array of shape ``(n_archs, n_features)`` (its columns are then named ``f0``,
``f1``, ...). A predictor fitted with features needs the same features, by name, to
predict.

A fitted predictor saves to a single safetensors file (:meth:`Predictor.to_bytes`,
:func:`save_predictor`): tensors plus a JSON header. Loading it
(:func:`load_predictor`) runs no code from the file, unlike a pickle, so a saved
predictor can be kept in a shared database and loaded safely.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from naslab.core.errors import ConfigError, NaslabError
from naslab.search_spaces.architecture import Architecture

__all__ = [
    "FORMAT_VERSION",
    "FeatureTable",
    "NotFittedError",
    "Prediction",
    "Predictor",
    "check_archs",
    "check_targets",
    "load_predictor",
    "predictor_from_bytes",
    "register",
    "save_predictor",
    "standardiser",
]

#: Version of the saved-predictor format; a file of a newer version is refused.
FORMAT_VERSION = 1
_HEADER_KEY = "naslab_predictor"

FeaturesLike = Mapping[str, Sequence[float]] | np.ndarray | Sequence[Sequence[float]] | None

P = TypeVar("P", bound="Predictor")


class NotFittedError(NaslabError, RuntimeError):
    """A predictor was asked to predict (or save) before it was fitted."""


@dataclass(frozen=True)
class Prediction:
    """Predicted mean and standard deviation, one entry per architecture.

    ``std`` is the predictor's uncertainty in the target's units (0 where a
    predictor has no notion of uncertainty).
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        std = np.asarray(self.std, dtype=np.float64).reshape(-1)
        if mean.shape != std.shape:
            raise ValueError(f"mean has {mean.shape[0]} entries but std has {std.shape[0]}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def __len__(self) -> int:
        return int(self.mean.shape[0])


# ---------------------------------------------------------------------- input checks


def check_archs(archs: Any, what: str = "archs") -> list[Architecture]:
    """``archs`` as a non-empty list of :class:`Architecture`, or a clear error."""
    if isinstance(archs, Architecture):
        raise ConfigError(f"{what} must be a sequence of Architecture objects, not a single one")
    try:
        out = list(archs)
    except TypeError:
        raise ConfigError(
            f"{what} must be a sequence of Architecture objects, got {type(archs).__name__}"
        ) from None
    if not out:
        raise ConfigError(f"{what} is empty; give at least one architecture")
    bad = [i for i, a in enumerate(out) if not isinstance(a, Architecture)]
    if bad:
        raise ConfigError(
            f"{what}[{bad[0]}] is a {type(out[bad[0]]).__name__}, not an Architecture "
            "(build architectures with space.from_decisions(...) or space.sample(rng))"
        )
    return out


def check_targets(targets: Any, n: int, minimum: int = 2) -> np.ndarray:
    """``targets`` as a finite float64 vector of length ``n`` (at least ``minimum``)."""
    try:
        y = np.asarray(targets, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(
            f"targets must be a sequence of numbers, got {type(targets).__name__}"
        ) from None
    if y.ndim != 1:
        raise ConfigError(f"targets must be one number per architecture (1-D), got shape {y.shape}")
    if y.shape[0] != n:
        raise ConfigError(
            f"got {n} architectures but {y.shape[0]} targets; give one per architecture"
        )
    if n < minimum:
        raise ConfigError(f"a predictor needs at least {minimum} architectures to fit, got {n}")
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise ConfigError(
            f"targets must be finite; target {int(bad[0])} is {y[bad[0]]} "
            f"({bad.size} non-finite in all). Drop failed trials before fitting."
        )
    return y


class FeatureTable:
    """Per-architecture numeric features: a float64 matrix with named columns.

    Build one with :meth:`coerce` from ``None``, a mapping ``name -> values`` or a
    2-D array.
    """

    def __init__(self, names: Sequence[str], values: np.ndarray) -> None:
        self.names: tuple[str, ...] = tuple(names)
        self.values = values

    @classmethod
    def coerce(cls, features: FeaturesLike, n: int) -> FeatureTable:
        """Check ``features`` for ``n`` architectures; errors say what is accepted."""
        if features is None:
            return cls((), np.zeros((n, 0)))
        if isinstance(features, FeatureTable):
            names, values = list(features.names), features.values
        elif isinstance(features, Mapping):
            names = [str(k) for k in features]
            cols = []
            for name in features:
                try:
                    col = np.asarray(features[name], dtype=np.float64)
                except (TypeError, ValueError):
                    raise ConfigError(f"feature {name!r} must be a sequence of numbers") from None
                if col.ndim != 1 or col.shape[0] != n:
                    raise ConfigError(
                        f"feature {name!r} has shape {col.shape}; expected one number per "
                        f"architecture ({n},)"
                    )
                cols.append(col)
            values = np.stack(cols, axis=1) if cols else np.zeros((n, 0))
        else:
            try:
                values = np.asarray(features, dtype=np.float64)
            except (TypeError, ValueError):
                raise ConfigError(
                    "features must be None, a mapping name -> sequence of numbers, or a 2-D "
                    f"array (n_archs, n_features); got {type(features).__name__}"
                ) from None
            if values.ndim != 2:
                raise ConfigError(
                    f"features as an array must be 2-D (n_archs, n_features), got shape "
                    f"{values.shape}"
                )
            names = [f"f{i}" for i in range(values.shape[1])]
        if values.shape[0] != n:
            raise ConfigError(f"features have {values.shape[0]} rows for {n} architectures")
        bad = np.argwhere(~np.isfinite(values))
        if bad.size:
            i, j = (int(v) for v in bad[0])
            raise ConfigError(
                f"feature {names[j]!r} of architecture {i} is {values[i, j]}; features must be "
                "finite numbers"
            )
        return cls(names, values)

    def aligned(self, names: Sequence[str]) -> np.ndarray:
        """The columns in the order of ``names`` (the ones seen at fit time).

        Raises:
            ConfigError: the names differ from the ones the predictor was fitted with.
        """
        if tuple(names) == self.names:
            return self.values
        missing = [n for n in names if n not in self.names]
        extra = [n for n in self.names if n not in names]
        if missing or extra:
            raise ConfigError(
                f"the predictor was fitted with features {list(names)}; got {list(self.names)}"
                + (f" (missing {missing})" if missing else "")
                + (f" (unexpected {extra})" if extra else "")
            )
        order = [self.names.index(n) for n in names]
        return self.values[:, order]


# -------------------------------------------------------------------- the interface

_REGISTRY: dict[str, type[Predictor]] = {}


def register(cls: type[P]) -> type[P]:
    """Class decorator: makes a predictor class loadable by its :attr:`kind`."""
    _REGISTRY[cls.kind] = cls
    return cls


class Predictor(ABC):
    """Base class of every performance predictor.

    Subclasses set :attr:`kind`, implement :meth:`fit`, :meth:`predict`,
    :meth:`get_params`, :meth:`_state` and :meth:`_load_state`.
    """

    #: Identifier of the implementation, written into saved files.
    kind: ClassVar[str] = "predictor"

    @abstractmethod
    def fit(
        self: P, archs: Sequence[Architecture], targets: Any, features: FeaturesLike = None
    ) -> P:
        """Learn from ``archs`` and their ``targets``; returns ``self``."""

    @abstractmethod
    def predict(self, archs: Sequence[Architecture], features: FeaturesLike = None) -> Prediction:
        """Predicted mean and standard deviation of each architecture's target."""

    @abstractmethod
    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (JSON-ready), as in scikit-learn."""

    @abstractmethod
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The fitted state: arrays and JSON-ready metadata."""

    @abstractmethod
    def _load_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Restore the state returned by :meth:`_state`."""

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has run."""
        return getattr(self, "n_train_", None) is not None

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(archs, targets) first"
            )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- saving ------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The fitted predictor as safetensors bytes (tensors plus a JSON header)."""
        from safetensors.numpy import save

        self._check_fitted()
        arrays, meta = self._state()
        header = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "params": self.get_params(),
            "meta": meta,
        }
        contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        return save(contiguous, metadata={_HEADER_KEY: json.dumps(header, default=_json_default)})

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_bytes` to ``path``; returns the path."""
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} into a predictor header")


def _registry() -> dict[str, type[Predictor]]:
    # importing the implementations registers them
    import naslab.predictors.baselines  # noqa: F401
    import naslab.predictors.gnn  # noqa: F401

    return _REGISTRY


def predictor_from_bytes(data: bytes) -> Predictor:
    """Rebuild a predictor saved by :meth:`Predictor.to_bytes` (no code is run).

    Raises:
        ConfigError: the data is not a saved naslab predictor, or was written by a
            newer format version, or names an unknown predictor kind.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        arrays = load(bytes(data))
        header_text = _read_metadata(bytes(data)).get(_HEADER_KEY)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise ConfigError(f"not a saved naslab predictor (safetensors error: {exc})") from None
    if header_text is None:
        raise ConfigError("not a saved naslab predictor: the safetensors header has no predictor")
    try:
        header = json.loads(header_text)
        version, kind = int(header["format_version"]), str(header["kind"])
        params, meta = dict(header["params"]), dict(header["meta"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"a saved predictor's header is malformed ({exc!r})") from None
    if version > FORMAT_VERSION:
        raise ConfigError(
            f"the predictor was saved in format {version}; this naslab reads up to "
            f"{FORMAT_VERSION}: upgrade naslab"
        )
    registry = _registry()
    if kind not in registry:
        raise ConfigError(f"unknown predictor kind {kind!r}; known: {sorted(registry)}")
    try:
        predictor = registry[kind](**params)
    except TypeError as exc:
        raise ConfigError(f"a saved {kind} predictor's settings do not fit it ({exc})") from None
    predictor._load_state(arrays, meta)
    return predictor


def _read_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors buffer (its JSON header)."""
    if len(data) < 8:
        raise ValueError("too short for a safetensors file")
    size = int.from_bytes(data[:8], "little")
    if size <= 0 or 8 + size > len(data):
        raise ValueError("bad header length")
    header = json.loads(data[8 : 8 + size])
    return dict(header.get("__metadata__") or {})


def save_predictor(predictor: Predictor, path: str | Path) -> Path:
    """Save a fitted predictor to a safetensors file (see :meth:`Predictor.save`)."""
    return predictor.save(path)


def load_predictor(path: str | Path) -> Predictor:
    """Load a predictor saved with :func:`save_predictor` (runs no code from the file)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read predictor file {path}: {exc.strerror or exc}") from None
    return predictor_from_bytes(data)


def standardiser(y: np.ndarray) -> tuple[float, float]:
    """Mean and scale used to standardise targets (scale 1 for constant targets)."""
    mu = float(np.mean(y))
    sd = float(np.std(y))
    if not math.isfinite(sd) or sd < 1e-12:
        sd = 1.0
    return mu, sd
