"""What the store hands out: immutable records, and the conversions between rows,
Python values and the JSON text and bytes kept in the database."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from naslab.core.errors import ConfigError, StorageError, UnknownNameError
from naslab.core.paths import check_name
from naslab.core.validation import check_int, check_str
from naslab.db.models import TRIAL_STATES, PredictorRow, StudyRow, TrialRow
from naslab.search_spaces.architecture import Architecture, graph_to_json

if TYPE_CHECKING:
    import torch

    from naslab.db.models import ArchitectureRow

#: The format of stored weights.
WEIGHTS_FORMAT = "safetensors"


@dataclass(frozen=True)
class StudySpec:
    """The settings a study is created with (see :meth:`StudyCatalog.create_or_load
    <naslab.db.studies.StudyCatalog.create_or_load>`). ``name`` must follow
    :data:`naslab.core.paths.NAME_RULE` (ConfigError otherwise)."""

    name: str
    space: str
    space_key: str
    task_key: str
    searcher: str
    objective: str
    budget: int
    fidelity: int
    seed: int
    direction: str = "maximize"
    space_config: Mapping[str, Any] = field(default_factory=dict, hash=False)
    config: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # the name becomes a file name (naslab export): refuse /, .., control characters
        check_name("study name", self.name)


@dataclass(frozen=True)
class StudyInfo:
    """A study's stored settings (one row of ``naslab_studies``)."""

    id: int
    name: str
    space: str
    space_key: str
    space_config: dict[str, Any] = field(hash=False)
    task_key: str
    searcher: str
    objective: str
    direction: str
    budget: int
    fidelity: int
    seed: int
    config: dict[str, Any] = field(hash=False)
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StudySummary:
    """A study with counts of its trials and its best objective value so far."""

    name: str
    space: str
    task_key: str
    searcher: str
    objective: str
    direction: str
    budget: int
    n_complete: int
    n_stopped: int
    n_failed: int
    n_running: int
    n_interrupted: int
    best_objective: float | None
    created_at: datetime


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial, with its architecture and final metrics.

    ``decisions`` are the trial's own decisions; ``graph`` is the stored graph of
    its architecture (isomorphic to the one these decisions derive, possibly with
    other node names). ``metrics`` holds the final metrics (NaN where the value
    was not a number). ``reused_from`` is the id of the trial whose result this
    one copied, or None if it was evaluated itself. ``driver`` is the
    ``host/pid/start`` of the search driver that claimed it (None for trials
    stored without one).
    """

    id: int
    study_id: int
    number: int
    arch_hash: str
    space: str
    space_key: str
    decisions: dict[str, Any] = field(hash=False)
    graph: dict[str, Any] = field(hash=False)
    fidelity: int
    state: str
    seed: int
    worker: str | None
    objective_value: float | None
    metrics: dict[str, float] = field(hash=False)
    params: int | None
    flops: int | None
    latency_ms: float | None
    train_seconds: float | None
    epochs_done: int | None
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    reused_from: int | None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)
    driver: str | None = None

    def architecture(self) -> Architecture:
        """Rebuild the :class:`Architecture` (the stored hash is checked)."""
        return Architecture.from_json({"space": self.space, "decisions": self.decisions,
                                       "graph": self.graph, "hash": self.arch_hash})


@dataclass(frozen=True)
class StoredResult:
    """One complete, self-evaluated result of an architecture (for fitting predictors)."""

    trial_id: int
    study: str
    arch_hash: str
    space: str
    graph: dict[str, Any] = field(hash=False)
    decisions: dict[str, Any] = field(hash=False)
    fidelity: int
    value: float
    params: int | None
    flops: int | None

    def architecture(self) -> Architecture:
        """Rebuild the :class:`Architecture` (the stored hash is checked)."""
        return Architecture.from_json({"space": self.space, "decisions": self.decisions,
                                       "graph": self.graph, "hash": self.arch_hash})


@dataclass(frozen=True)
class PredictorRecord:
    """One saved version of a predictor; ``data`` is empty in listings."""

    id: int
    name: str
    version: int
    kind: str
    space: str | None
    space_key: str | None
    task_key: str | None
    target: str | None
    n_train: int
    params: dict[str, Any] = field(hash=False)
    summary: dict[str, Any] = field(hash=False)
    created_at: datetime
    data: bytes = field(default=b"", repr=False, hash=False)


@dataclass(frozen=True)
class SchemaObject:
    """A documented table or view of the store."""

    name: str
    kind: str  # "table" or "view"
    description: str
    columns: list[tuple[str, str]] = field(hash=False)  # (name, SQL type)


# --------------------------------------------------------------------------- values


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays, tensors
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, (Path, datetime)):
        return str(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def dumps(what: str, obj: Any) -> str:
    """``obj`` as compact, key-sorted JSON text; StorageError naming ``what`` if it
    cannot be."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as exc:
        raise StorageError(f"cannot store {what} as JSON: {exc}") from exc


def loads(text: str | None) -> Any:
    """Stored JSON text as Python (``{}`` for NULL or empty)."""
    return json.loads(text) if text else {}


def to_db_float(value: Any) -> float | None:
    """A float for the database: NaN becomes NULL (SQLite cannot hold NaN)."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def from_db_float(value: float | None) -> float:
    """A stored float (NULL read back as NaN)."""
    return math.nan if value is None else float(value)


def opt_int(value: Any) -> int | None:
    """``int(value)``, or None for None."""
    return None if value is None else int(value)


def check_metrics(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """Metric values for the database (NaN as None); ConfigError for a bad name or
    a value that is not a number."""
    if not isinstance(metrics, Mapping):
        raise ConfigError(f"metrics must be a mapping of name to number, got {metrics!r}")
    out: dict[str, float | None] = {}
    for name, value in metrics.items():
        check_str("a metric name", name, max_length=100)
        try:
            out[name] = to_db_float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"metric {name!r} must be a number, got {value!r}") from None
    return out


def check_step(step: Any) -> int:
    """A reported step (an epoch, from 1) as an int; an integral float (``2.0``, as
    some evaluators count epochs) is accepted, anything else refused."""
    if isinstance(step, float) and step.is_integer():
        step = int(step)
    return check_int("step", step, minimum=1)


def check_states(states: Iterable[str] | str | None) -> list[str] | None:
    """The trial states asked for (None: all); UnknownNameError for a state that is
    not one of :data:`~naslab.db.models.TRIAL_STATES`."""
    if states is None:
        return None
    wanted = [states] if isinstance(states, str) else list(states)
    for state in wanted:
        if state not in TRIAL_STATES:
            raise UnknownNameError("trial state", state, TRIAL_STATES)
    return wanted


def arch_json(arch: Architecture) -> tuple[str, str, str]:
    """(hash, decisions JSON, graph JSON) of an architecture."""
    if not isinstance(arch, Architecture):
        raise ConfigError(f"expected an Architecture, got {type(arch).__name__}")
    return (arch.hash, dumps("the architecture's decisions", dict(arch.decisions)),
            dumps("the architecture's graph", graph_to_json(arch.graph)))


def weights_to_bytes(weights: Mapping[str, Any]) -> bytes:
    """A state dict as safetensors bytes (StorageError for an entry that is no tensor)."""
    import torch
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    for key, value in weights.items():
        if not isinstance(value, torch.Tensor):
            raise StorageError(
                f"cannot store weights: entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        # clone: safetensors refuses tensors that share memory (tied weights)
        tensors[str(key)] = value.detach().to("cpu").contiguous().clone()
    return save(tensors)


def bytes_to_weights(data: bytes) -> dict[str, torch.Tensor]:
    """Safetensors bytes as a state dict of CPU tensors."""
    from safetensors.torch import load

    return load(bytes(data))


# --------------------------------------------------------------------------- rows


def study_info(row: StudyRow | Any) -> StudyInfo:
    """The record of a ``naslab_studies`` row (ORM object or Core row)."""
    return StudyInfo(
        id=row.id, name=row.name, space=row.space, space_key=row.space_key,
        space_config=loads(row.space_config), task_key=row.task_key, searcher=row.searcher,
        objective=row.objective, direction=row.direction, budget=row.budget,
        fidelity=row.fidelity, seed=row.seed, config=loads(row.config),
        created_at=row.created_at, updated_at=row.updated_at,
    )


def trial_record(t: TrialRow, a: ArchitectureRow, metrics: dict[str, float]) -> TrialRecord:
    """The record of a trial row, its architecture row and its final metrics."""
    return TrialRecord(
        id=t.id, study_id=t.study_id, number=t.number, arch_hash=a.hash, space=a.space,
        space_key=a.space_key, decisions=loads(t.decisions), graph=loads(a.graph),
        fidelity=t.fidelity, state=t.state, seed=t.seed, worker=t.worker,
        objective_value=t.objective_value, metrics=metrics, params=t.params, flops=t.flops,
        latency_ms=t.latency_ms, train_seconds=t.train_seconds, epochs_done=t.epochs_done,
        started_at=t.started_at, finished_at=t.finished_at, error=t.error,
        reused_from=t.reused_from, extra=loads(t.extra), driver=t.driver,
    )


def group_metrics(rows: Iterable[Any]) -> dict[int, dict[str, float]]:
    """``(trial_id, name, value)`` rows as ``{trial_id: {name: value}}``."""
    out: dict[int, dict[str, float]] = {}
    for trial_id, name, value in rows:
        out.setdefault(trial_id, {})[name] = from_db_float(value)
    return out


def predictor_record(row: PredictorRow, with_data: bool) -> PredictorRecord:
    """The record of a ``naslab_predictors`` row (``data`` only ``with_data``)."""
    return PredictorRecord(
        id=row.id, name=row.name, version=row.version, kind=row.kind, space=row.space,
        space_key=row.space_key, task_key=row.task_key, target=row.target,
        n_train=row.n_train, params=json.loads(row.params), summary=json.loads(row.summary),
        created_at=row.created_at, data=bytes(row.data) if with_data else b"",
    )
