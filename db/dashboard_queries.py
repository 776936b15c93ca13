"""The dashboard's read queries (``naslab dashboard``): bounded reads that scale with
what a page shows, not with a study's history.

A page of trials is one ``LIMIT``/``OFFSET`` query whose sort column and state
filter come from whitelists (:data:`SORT_COLUMNS`, ``TRIAL_STATES``), never from
text put into SQL; curves and scatters read a few columns of complete trials, and
at most ``limit`` of them where a page draws points.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, select

from naslab.core.errors import ConfigError
from naslab.db.engine import Database
from naslab.db.models import TRIAL_STATES, MetricRow, StudyRow, TrialRow
from naslab.db.queries import records_of, with_architectures
from naslab.db.records import StudyInfo, TrialRecord, from_db_float, loads, study_info

__all__ = [
    "SORT_COLUMNS",
    "DashboardQueries",
    "StudyOverview",
    "TrialLine",
    "TrialPage",
    "TrialPoint",
]

#: Sort keys of the trials table -> their columns (nothing else reaches ORDER BY).
SORT_COLUMNS: dict[str, Any] = {
    "number": TrialRow.number,
    "state": TrialRow.state,
    "objective": TrialRow.objective_value,
    "params": TrialRow.params,
    "flops": TrialRow.flops,
    "latency": TrialRow.latency_ms,
    "seconds": TrialRow.train_seconds,
    "worker": TrialRow.worker,
    "started": TrialRow.started_at,
}


@dataclass(frozen=True)
class StudyOverview:
    """A study on the studies page: settings, counts per state, best, running time."""

    name: str
    space: str
    task_key: str
    searcher: str
    objective: str
    direction: str
    budget: int
    counts: dict[str, int] = field(hash=False)
    best: float | None
    created_at: datetime
    first_start: datetime | None
    last_finish: datetime | None

    @property
    def done(self) -> int:
        """Trials that count against the budget (complete, stopped or failed)."""
        return sum(self.counts.get(s, 0) for s in ("complete", "stopped", "failed"))

    @property
    def running_s(self) -> float | None:
        """Seconds from the first trial's start to the last one's finish."""
        if self.first_start is None or self.last_finish is None:
            return None
        return max(0.0, (self.last_finish - self.first_start).total_seconds())


@dataclass(frozen=True)
class TrialLine:
    """One row of the trials table."""

    id: int
    number: int
    state: str
    objective_value: float | None
    params: int | None
    flops: int | None
    latency_ms: float | None
    train_seconds: float | None
    worker: str | None
    reused_from: int | None
    error: str | None
    decisions: dict[str, Any] = field(hash=False)
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class TrialPage:
    """One page of a study's trials table."""

    rows: list[TrialLine]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages the filtered trials fill (at least 1)."""
        return max(1, math.ceil(self.total / self.per_page))


@dataclass(frozen=True)
class TrialPoint:
    """A complete trial as a point of a figure: what :func:`naslab.fronts.trial_metrics`
    reads (``state``, final ``metrics``, ``params``, ``flops``, ``latency_ms``)."""

    id: int
    number: int
    state: str
    objective_value: float | None
    metrics: dict[str, float] = field(hash=False)
    params: int | None
    flops: int | None
    latency_ms: float | None


def _state_filter(query: Select[Any], study_id: int, state: str | None) -> Select[Any]:
    query = query.where(TrialRow.study_id == study_id)
    if state is not None:
        if state not in TRIAL_STATES:
            raise ConfigError(f"unknown trial state {state!r}; use one of "
                              + ", ".join(TRIAL_STATES))
        query = query.where(TrialRow.state == state)
    return query


class DashboardQueries:
    """Bounded reads for the dashboard's pages (use over a read-only store)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def studies(self) -> list[StudyOverview]:
        """Every study with its counts, best value and running time, newest first."""
        counts = [func.coalesce(func.sum(case((TrialRow.state == s, 1), else_=0)), 0)
                  for s in TRIAL_STATES]
        done = case((TrialRow.state == "complete", TrialRow.objective_value))
        query = (select(StudyRow, func.max(done), func.min(done), func.min(TrialRow.started_at),
                        func.max(TrialRow.finished_at), *counts)
                 .outerjoin(TrialRow, TrialRow.study_id == StudyRow.id)
                 .group_by(StudyRow.id).order_by(StudyRow.created_at.desc(), StudyRow.id.desc()))
        with self._db.reading("list studies") as session:
            rows = session.execute(query).all()
        return [StudyOverview(
            name=s.name, space=s.space, task_key=s.task_key, searcher=s.searcher,
            objective=s.objective, direction=s.direction, budget=s.budget,
            counts={st: int(n) for st, n in zip(TRIAL_STATES, rest)},
            best=lo if s.direction == "minimize" else hi, created_at=s.created_at,
            first_start=first, last_finish=last,
        ) for s, hi, lo, first, last, *rest in rows]

    def study(self, name: str) -> StudyInfo | None:
        """The study called ``name``, or None."""
        with self._db.reading(f"read study {name!r}") as session:
            row = session.scalar(select(StudyRow).where(StudyRow.name == name))
            return None if row is None else study_info(row)

    def overview(self, name: str) -> StudyOverview | None:
        """One study's overview (counts, best, running time), or None."""
        return next((s for s in self.studies() if s.name == name), None)

    def trial_page(self, study_id: int, *, page: int = 1, per_page: int = 50,
                   sort: str = "number", descending: bool = False,
                   state: str | None = None) -> TrialPage:
        """Trials ``(page - 1) * per_page`` onwards in ``sort`` order (a key of
        :data:`SORT_COLUMNS`; ties by number), only those in ``state`` if given."""
        if sort not in SORT_COLUMNS:
            raise ConfigError(f"unknown sort key {sort!r}; use one of "
                              + ", ".join(SORT_COLUMNS))
        column = SORT_COLUMNS[sort]
        order = [column.desc() if descending else column.asc()]
        if sort != "number":
            order = [column.is_(None), *order]  # empty values last either way
        query = _state_filter(select(TrialRow), study_id, state).order_by(
            *order, TrialRow.number).limit(per_page).offset((max(1, page) - 1) * per_page)
        count = _state_filter(select(func.count(TrialRow.id)), study_id, state)
        with self._db.reading("read a page of trials") as session:
            total = int(session.scalar(count) or 0)
            rows = session.scalars(query).all()
        return TrialPage([TrialLine(
            id=t.id, number=t.number, state=t.state, objective_value=t.objective_value,
            params=t.params, flops=t.flops, latency_ms=t.latency_ms,
            train_seconds=t.train_seconds, worker=t.worker, reused_from=t.reused_from,
            error=t.error, decisions=loads(t.decisions), started_at=t.started_at,
            finished_at=t.finished_at) for t in rows], total, max(1, page), per_page)

    def progress(self, study_id: int) -> list[tuple[int, float]]:
        """``(number, objective value)`` of the complete trials with a value, by
        number: the anytime curve's input (two columns, no timestamps)."""
        query = (select(TrialRow.number, TrialRow.objective_value)
                 .where(TrialRow.study_id == study_id, TrialRow.state == "complete",
                        TrialRow.objective_value.is_not(None))
                 .order_by(TrialRow.number))
        with self._db.reading("read a study's progress") as session:
            return [(int(n), float(v)) for n, v in session.execute(query).all()]

    def finish_times(self, study_id: int, numbers: Sequence[int]
                     ) -> tuple[datetime | None, dict[int, datetime]]:
        """When the study's first trial finished, and when trials ``numbers`` did."""
        with self._db.reading("read finish times") as session:
            first = session.scalar(select(func.min(TrialRow.finished_at))
                                   .where(TrialRow.study_id == study_id))
            times: dict[int, datetime] = {}
            wanted = list(numbers)
            for start in range(0, len(wanted), 5000):
                rows = session.execute(
                    select(TrialRow.number, TrialRow.finished_at)
                    .where(TrialRow.study_id == study_id,
                           TrialRow.number.in_(wanted[start:start + 5000]))).all()
                times.update({int(n): f for n, f in rows if f is not None})
        return first, times

    def points(self, study_id: int, metrics: Iterable[str] = (),
               limit: int | None = None) -> tuple[list[TrialPoint], int]:
        """Complete trials as points with the final ``metrics`` named, by number, and
        how many complete trials there are; with ``limit``, an evenly spaced subset of
        at most ``limit`` (every k-th trial number)."""
        complete = and_(TrialRow.study_id == study_id, TrialRow.state == "complete")
        with self._db.reading("read a study's points") as session:
            n = int(session.scalar(select(func.count(TrialRow.id)).where(complete)) or 0)
            query = (select(TrialRow.id, TrialRow.number, TrialRow.objective_value,
                            TrialRow.params, TrialRow.flops, TrialRow.latency_ms)
                     .where(complete).order_by(TrialRow.number))
            if limit is not None and n > limit:
                query = query.where(TrialRow.number % math.ceil(n / limit) == 0)
            rows = session.execute(query).all()
            values = self._final_metrics(session, [t.id for t in rows], list(metrics))
        return [TrialPoint(
            id=t.id, number=t.number, state="complete", objective_value=t.objective_value,
            metrics=values.get(t.id, {}), params=t.params, flops=t.flops,
            latency_ms=t.latency_ms) for t in rows], n

    @staticmethod
    def _final_metrics(session: Any, ids: Sequence[int], names: Sequence[str]
                       ) -> dict[int, dict[str, float]]:
        out: dict[int, dict[str, float]] = {}
        if not names or not ids:
            return out
        for start in range(0, len(ids), 5000):  # bounded IN lists
            rows = session.execute(
                select(MetricRow.trial_id, MetricRow.name, MetricRow.value)
                .where(MetricRow.trial_id.in_(ids[start:start + 5000]),
                       MetricRow.name.in_(names), MetricRow.step.is_(None))).all()
            for trial_id, name, value in rows:
                out.setdefault(trial_id, {})[name] = from_db_float(value)
        return out

    def trial(self, study_id: int, number: int) -> TrialRecord | None:
        """Trial ``number`` of the study, with its architecture, or None."""
        query = with_architectures().where(TrialRow.study_id == study_id,
                                           TrialRow.number == number)
        with self._db.reading(f"read trial {number}") as session:
            rows = session.execute(query).all()
            records = records_of(session, rows)
        return records[0] if records else None

    def locate(self, trial_id: int) -> tuple[str, int] | None:
        """``(study name, trial number)`` of the trial with id ``trial_id``, or None."""
        query = (select(StudyRow.name, TrialRow.number)
                 .join(StudyRow, StudyRow.id == TrialRow.study_id)
                 .where(TrialRow.id == trial_id))
        with self._db.reading(f"find trial {trial_id}") as session:
            row = session.execute(query).first()
        return None if row is None else (str(row[0]), int(row[1]))

    def best_numbers(self, study_id: int, direction: str, k: int) -> list[int]:
        """Numbers of the ``k`` best complete trials."""
        column = TrialRow.objective_value
        query = (select(TrialRow.number)
                 .where(TrialRow.study_id == study_id, TrialRow.state == "complete",
                        column.is_not(None))
                 .order_by(column.asc() if direction == "minimize" else column.desc(),
                           TrialRow.number).limit(k))
        with self._db.reading("read the best trials") as session:
            return [int(n) for n in session.scalars(query).all()]

    def curves(self, study_id: int, numbers: Sequence[int]
               ) -> dict[int, dict[str, list[tuple[int, float]]]]:
        """Per-epoch metrics of the study's trials ``numbers``: number -> name ->
        [(step, value), ...] by step."""
        if not numbers:
            return {}
        query = (select(TrialRow.number, MetricRow.name, MetricRow.step, MetricRow.value)
                 .join(TrialRow, TrialRow.id == MetricRow.trial_id)
                 .where(TrialRow.study_id == study_id, TrialRow.number.in_(list(numbers)),
                        MetricRow.step.is_not(None))
                 .order_by(TrialRow.number, MetricRow.name, MetricRow.step))
        out: dict[int, dict[str, list[tuple[int, float]]]] = {}
        with self._db.reading("read learning curves") as session:
            for number, name, step, value in session.execute(query).all():
                out.setdefault(int(number), {}).setdefault(name, []).append(
                    (int(step), from_db_float(value)))
        return out

    def results_for_scoring(self, study_id: int, limit: int
                            ) -> tuple[list[TrialRecord], int]:
        """At most ``limit`` complete trials with a value (evenly spaced by number),
        with architectures, and how many there are: what predictors are scored on."""
        scored = and_(TrialRow.study_id == study_id, TrialRow.state == "complete",
                      TrialRow.objective_value.is_not(None))
        with self._db.reading("read results to score predictors on") as session:
            n = int(session.scalar(select(func.count(TrialRow.id)).where(scored)) or 0)
            query = with_architectures().where(scored).order_by(TrialRow.number)
            if n > limit:
                query = query.where(TrialRow.number % math.ceil(n / limit) == 0)
            rows = session.execute(query.limit(limit)).all()
            return records_of(session, rows), n

