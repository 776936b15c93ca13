"""What the store keeps besides trials, derived from them: training data and saved
versions of performance predictors, zero-cost proxies, and Pareto fronts.

``store.predictors`` (:class:`PredictorData`) and ``store.fronts``
(:class:`ParetoFronts`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, defer

from naslab.core.errors import ConfigError, StorageError, UnknownNameError
from naslab.core.paths import check_name
from naslab.core.validation import check_str
from naslab.db.engine import Database
from naslab.db.models import (
    ArchitectureRow,
    MetricRow,
    ParetoRow,
    PredictorRow,
    ProxyRow,
    StudyRow,
    TrialRow,
    utcnow,
)
from naslab.db.queries import records_of, with_architectures
from naslab.db.records import (
    PredictorRecord,
    StoredResult,
    TrialRecord,
    arch_json,
    dumps,
    from_db_float,
    loads,
    predictor_record,
    to_db_float,
)
from naslab.db.studies import study_row
from naslab.search_spaces.architecture import Architecture

__all__ = ["NewPredictor", "ParetoFronts", "PredictorData", "ProxyKey"]


@dataclass(frozen=True)
class ProxyKey:
    """What a stored zero-cost proxy value depends on besides the architecture."""

    space_key: str
    task_key: str
    batch_size: int
    seed: int


@dataclass(frozen=True)
class NewPredictor:
    """A fitted predictor to save (:meth:`PredictorData.save`): its safetensors
    ``data``, what it is and what it was fitted on."""

    name: str
    data: bytes = field(repr=False)
    kind: str
    n_train: int
    params: Mapping[str, Any] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)
    space: str | None = None
    space_key: str | None = None
    task_key: str | None = None
    target: str | None = None


def _architecture_id(conn: Any, arch: Architecture, space_key: str) -> int:
    """The id of the architecture's row, inserting it if new (inside a write
    transaction that holds the write lock on SQLite)."""
    arch_hash, decisions, graph = arch_json(arch)
    found = conn.execute(select(ArchitectureRow.id).where(
        ArchitectureRow.space_key == space_key, ArchitectureRow.hash == arch_hash)).scalar()
    if found is not None:
        return int(found)
    return int(conn.execute(insert(ArchitectureRow).values(
        space=arch.space, space_key=space_key, hash=arch_hash, graph=graph,
        decisions=decisions, created_at=utcnow())).inserted_primary_key[0])


class PredictorData:
    """Training data, zero-cost proxies and saved predictors (``store.predictors``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def training_results(self, space_key: str, task_key: str, metric: str,
                         finished_before: datetime | None = None) -> list[StoredResult]:
        """Every complete, self-evaluated (not reused) result of ``space_key`` on
        ``task_key`` with a final ``metric``, from every study, oldest first (only
        trials finished before ``finished_before`` when it is given)."""
        query = (
            select(TrialRow, ArchitectureRow, StudyRow.name, MetricRow.value)
            .join(ArchitectureRow, ArchitectureRow.id == TrialRow.architecture_id)
            .join(StudyRow, StudyRow.id == TrialRow.study_id)
            .join(MetricRow, MetricRow.trial_id == TrialRow.id)
            .where(ArchitectureRow.space_key == space_key, StudyRow.task_key == task_key,
                   TrialRow.state == "complete", TrialRow.reused_from.is_(None),
                   MetricRow.name == metric, MetricRow.step.is_(None))
            .order_by(TrialRow.id))
        if finished_before is not None:
            query = query.where(TrialRow.finished_at < finished_before)
        with self._db.reading("read results for a predictor") as session:
            rows = session.execute(query).all()
        return [StoredResult(trial_id=t.id, study=study, arch_hash=a.hash, space=a.space,
                             graph=json.loads(a.graph), decisions=json.loads(a.decisions),
                             fidelity=t.fidelity, value=from_db_float(value), params=t.params,
                             flops=t.flops)
                for t, a, study, value in rows]

    def task_keys(self, space_key: str) -> list[tuple[str, int]]:
        """The task keys that studies of ``space_key`` used, with their complete trials."""
        query = (select(StudyRow.task_key, func.count(TrialRow.id))
                 .join(TrialRow, TrialRow.study_id == StudyRow.id)
                 .where(StudyRow.space_key == space_key, TrialRow.state == "complete")
                 .group_by(StudyRow.task_key)
                 .order_by(func.count(TrialRow.id).desc()))
        with self._db.reading("list task keys") as session:
            return [(str(k), int(n)) for k, n in session.execute(query).all()]

    def proxies(self, key: ProxyKey, hashes: Sequence[str]) -> dict[str, dict[str, float]]:
        """Stored zero-cost proxies: ``{arch hash: {proxy name: value}}`` (NaN for NULL)."""
        out: dict[str, dict[str, float]] = {}
        unique = list(dict.fromkeys(hashes))
        with self._db.reading("read zero-cost proxies") as session:
            for start in range(0, len(unique), 500):
                rows = session.execute(
                    select(ArchitectureRow.hash, ProxyRow.name, ProxyRow.value)
                    .join(ProxyRow, ProxyRow.architecture_id == ArchitectureRow.id)
                    .where(ArchitectureRow.space_key == key.space_key,
                           ArchitectureRow.hash.in_(unique[start:start + 500]),
                           ProxyRow.task_key == key.task_key,
                           ProxyRow.batch_size == key.batch_size, ProxyRow.seed == key.seed)
                ).all()
                for arch_hash, name, value in rows:
                    out.setdefault(arch_hash, {})[name] = from_db_float(value)
        return out

    def put_proxies(self, key: ProxyKey, arch: Architecture, values: Mapping[str, float]
                    ) -> None:
        """Store zero-cost proxy values of ``arch`` (values already stored are kept)."""
        with self._db.writing("store zero-cost proxies") as conn:
            arch_id = _architecture_id(conn, arch, key.space_key)
            have = set(conn.execute(select(ProxyRow.name).where(
                ProxyRow.architecture_id == arch_id, ProxyRow.task_key == key.task_key,
                ProxyRow.batch_size == key.batch_size, ProxyRow.seed == key.seed)).scalars())
            rows = [{"architecture_id": arch_id, "task_key": key.task_key, "name": str(name),
                     "batch_size": int(key.batch_size), "seed": int(key.seed),
                     "value": to_db_float(value), "created_at": utcnow()}
                    for name, value in values.items() if name not in have]
            if rows:
                conn.execute(insert(ProxyRow), rows)

    def save(self, new: NewPredictor) -> int:
        """Store a fitted predictor as the next version of its name; returns the
        version (1 for a new name)."""
        check_name("a predictor's name", new.name)
        values = {"name": new.name, "kind": new.kind, "space": new.space,
                  "space_key": new.space_key, "task_key": new.task_key, "target": new.target,
                  "n_train": int(new.n_train), "data": bytes(new.data),
                  "params": dumps("the predictor's settings", dict(new.params)),
                  "summary": dumps("the predictor's summary", dict(new.summary))}
        for attempt in range(3):  # two savers of one name may race for a version
            try:
                with self._db.writing(f"save predictor {new.name!r}") as conn:
                    latest = conn.execute(select(func.max(PredictorRow.version))
                                          .where(PredictorRow.name == new.name)).scalar()
                    version = int(latest or 0) + 1
                    conn.execute(insert(PredictorRow).values(**values, version=version,
                                                             created_at=utcnow()))
                return version
            except StorageError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def list(self, name: str | None = None) -> list[PredictorRecord]:
        """Saved predictors (every version; ``data`` left out), by name and version."""
        query = select(PredictorRow).order_by(PredictorRow.name, PredictorRow.version)
        if name is not None:
            query = query.where(PredictorRow.name == name)
        with self._db.reading("list predictors") as session:
            rows = session.scalars(query.options(defer(PredictorRow.data))).all()
            return [predictor_record(row, with_data=False) for row in rows]

    def load(self, name: str, version: int | None = None) -> PredictorRecord:
        """A saved predictor with its data: ``version``, or the latest one.

        Raises:
            UnknownNameError: no predictor of that name is stored.
            ConfigError: it has no such version (the message lists its versions).
        """
        query = select(PredictorRow).where(PredictorRow.name == name)
        if version is None:
            query = query.order_by(PredictorRow.version.desc()).limit(1)
        else:
            query = query.where(PredictorRow.version == int(version))
        with self._db.reading(f"load predictor {name!r}") as session:
            row = session.scalars(query).first()
            if row is None:
                _refuse_missing(session, name, version)
            return predictor_record(row, with_data=True)


def _refuse_missing(session: Session, name: str, version: int | None) -> None:
    known = session.scalars(select(PredictorRow.name).distinct()
                            .order_by(PredictorRow.name)).all()
    if version is not None and name in known:
        versions = session.scalars(select(PredictorRow.version)
                                   .where(PredictorRow.name == name)
                                   .order_by(PredictorRow.version)).all()
        raise ConfigError(f"predictor {name!r} has no version {version}; versions: "
                          + ", ".join(str(v) for v in versions))
    raise UnknownNameError("predictor", name, known)


class ParetoFronts:
    """The stored Pareto front of each multi-objective study (``store.fronts``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def set(self, study: str | int, trial_ids: Iterable[int], objectives: Sequence[str]
            ) -> None:
        """Replace the front of ``study`` by ``trial_ids`` (trials of it), computed for
        ``objectives`` (e.g. ``["val_accuracy:max", "latency_ms:min"]``)."""
        ids = sorted({int(i) for i in trial_ids})
        objectives_json = dumps("objectives", [check_str("an objective", o) for o in objectives])
        with self._db.reading(f"find study {study!r}") as session:
            row = study_row(session, study)
            sid, name = row.id, row.name
        with self._db.writing(f"store the Pareto front of study {name!r}") as conn:
            if ids:
                found = set(conn.execute(select(TrialRow.id).where(
                    TrialRow.id.in_(ids), TrialRow.study_id == sid)).scalars())
                missing = sorted(set(ids) - found)
                if missing:
                    raise StorageError(f"trials {missing} do not belong to study {name!r}")
            conn.execute(delete(ParetoRow).where(ParetoRow.study_id == sid))
            now = utcnow()
            if ids:
                conn.execute(insert(ParetoRow), [
                    {"study_id": sid, "trial_id": i, "objectives": objectives_json,
                     "updated_at": now} for i in ids])

    def get(self, study: str | int) -> tuple[list[str], list[TrialRecord]]:
        """The stored front of ``study``: its objectives and its trials (by number);
        ``([], [])`` when none was stored (a single-objective study)."""
        with self._db.reading(f"read the Pareto front of study {study!r}") as session:
            sid = study_row(session, study).id
            rows = session.execute(
                with_architectures().add_columns(ParetoRow.objectives)
                .join(ParetoRow, ParetoRow.trial_id == TrialRow.id)
                .where(ParetoRow.study_id == sid).order_by(TrialRow.number)).all()
            if not rows:
                return [], []
            return list(loads(rows[0][2])), records_of(session, [(t, a) for t, a, _ in rows])
