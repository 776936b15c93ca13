"""Reading trials back (``store.trials``): by study and state, the best ones, one by
id, the new ones since a number, an earlier result to reuse, weights and learning
curves."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from naslab.core.validation import check_choice, check_int
from naslab.db.engine import Database
from naslab.db.integrity import check_weights
from naslab.db.models import (
    DIRECTIONS,
    ArchitectureRow,
    MetricRow,
    StudyRow,
    TrialRow,
    WeightsRow,
)
from naslab.db.records import (
    TrialRecord,
    check_states,
    from_db_float,
    group_metrics,
    trial_record,
)
from naslab.db.studies import study_row

if TYPE_CHECKING:
    import torch

__all__ = ["TrialQueries", "records_of", "with_architectures"]


def with_architectures() -> Select[Any]:
    """``SELECT trial, architecture`` joined: the start of every trial query."""
    return select(TrialRow, ArchitectureRow).join(
        ArchitectureRow, ArchitectureRow.id == TrialRow.architecture_id)


def records_of(session: Session, rows: Sequence[Any]) -> list[TrialRecord]:
    """Records of ``(trial, architecture)`` rows, with their final metrics."""
    if not rows:
        return []
    ids = [t.id for t, _ in rows]
    metrics = group_metrics(session.execute(
        select(MetricRow.trial_id, MetricRow.name, MetricRow.value)
        .where(MetricRow.trial_id.in_(ids), MetricRow.step.is_(None))
        .order_by(MetricRow.id)).all())
    return [trial_record(t, a, metrics.get(t.id, {})) for t, a in rows]


class TrialQueries:
    """The read side of trials (``store.trials``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def list(self, study: str | int, states: Iterable[str] | str | None = None
             ) -> list[TrialRecord]:
        """The trials of a study (by name or id), ordered by number; only those in
        ``states`` if given. UnknownNameError: no such study, or an unknown state."""
        wanted = check_states(states)
        with self._db.reading(f"read trials of study {study!r}") as session:
            sid = study_row(session, study).id
            query = with_architectures().where(TrialRow.study_id == sid).order_by(TrialRow.number)
            metric_query = (select(MetricRow.trial_id, MetricRow.name, MetricRow.value)
                            .join(TrialRow, TrialRow.id == MetricRow.trial_id)
                            .where(TrialRow.study_id == sid, MetricRow.step.is_(None))
                            .order_by(MetricRow.id))
            if wanted is not None:
                query = query.where(TrialRow.state.in_(wanted))
                metric_query = metric_query.where(TrialRow.state.in_(wanted))
            rows = session.execute(query).all()
            metrics = group_metrics(session.execute(metric_query).all())
        return [trial_record(t, a, metrics.get(t.id, {})) for t, a in rows]

    def count(self, study: str | int, states: Iterable[str] | str | None = None) -> int:
        """How many trials the study has (in ``states``, if given)."""
        wanted = check_states(states)
        with self._db.reading(f"count trials of study {study!r}") as session:
            query = select(func.count(TrialRow.id)).where(
                TrialRow.study_id == study_row(session, study).id)
            if wanted is not None:
                query = query.where(TrialRow.state.in_(wanted))
            return int(session.scalar(query) or 0)

    def get(self, trial_id: int) -> TrialRecord | None:
        """One trial by id, or None."""
        with self._db.reading(f"read trial {trial_id}") as session:
            row = session.execute(with_architectures().where(TrialRow.id == trial_id)).first()
            return None if row is None else records_of(session, [tuple(row)])[0]

    def best(self, study: str | int, k: int = 1) -> list[TrialRecord]:
        """The ``k`` complete trials with the best objective (direction-aware); ties go
        to the earlier trial; trials whose objective is NaN are left out."""
        k = check_int("k", k, minimum=1)
        with self._db.reading(f"read best trials of study {study!r}") as session:
            row = study_row(session, study)
            value = TrialRow.objective_value
            order = value.asc() if row.direction == "minimize" else value.desc()
            rows = session.execute(
                with_architectures()
                .where(TrialRow.study_id == row.id, TrialRow.state == "complete",
                       value.is_not(None))
                .order_by(order, TrialRow.number).limit(k)).all()
            return records_of(session, [tuple(r) for r in rows])

    def since(self, study: str | int, after_number: int, ids: Iterable[int] = (), *,
              exclude_driver: str | None = None) -> list[TrialRecord]:
        """The study's trials numbered above ``after_number`` (but none of
        ``exclude_driver``'s), plus those with the given ``ids``, ordered by number:
        what a driver needs to follow the trials other drivers start and finish."""
        wanted = sorted({int(i) for i in ids})
        with self._db.reading(f"read new trials of study {study!r}") as session:
            cond = TrialRow.number > after_number
            if exclude_driver is not None:
                cond = cond & (TrialRow.driver.is_(None) | (TrialRow.driver != exclude_driver))
            if wanted:
                cond = cond | TrialRow.id.in_(wanted)
            rows = session.execute(
                with_architectures().where(TrialRow.study_id == study_row(session, study).id, cond)
                .order_by(TrialRow.number)).all()
            return records_of(session, [tuple(r) for r in rows])

    def find_result(self, space_key: str, task_key: str, fidelity: int, arch_hash: str, *,
                    objective: str | None = None, direction: str = "maximize"
                    ) -> TrialRecord | None:
        """The best complete evaluation of an architecture, from any study, or None.

        Only trials evaluated themselves (not reused), of studies with the same
        ``task_key``, at the same ``space_key`` and ``fidelity`` count; with
        ``objective``, only studies with that objective. Best by objective value in
        ``direction``; ties go to the oldest trial.
        """
        check_choice("direction", direction, DIRECTIONS)
        value = TrialRow.objective_value
        query = (
            with_architectures().join(StudyRow, StudyRow.id == TrialRow.study_id)
            .where(ArchitectureRow.space_key == space_key, ArchitectureRow.hash == arch_hash,
                   StudyRow.task_key == task_key, TrialRow.fidelity == fidelity,
                   TrialRow.state == "complete", TrialRow.reused_from.is_(None))
            .order_by(value.is_(None), value.asc() if direction == "minimize" else value.desc(),
                      TrialRow.id)
            .limit(1))
        if objective is not None:
            query = query.where(StudyRow.objective == objective)
        with self._db.reading("look up an earlier result") as session:
            row = session.execute(query).first()
            return None if row is None else records_of(session, [tuple(row)])[0]

    def weights(self, trial_id: int) -> dict[str, torch.Tensor] | None:
        """The trained weights of a trial (a state dict of CPU tensors), or None; for a
        reused trial, those of the trial it reused."""
        with self._db.reading(f"load weights of trial {trial_id}") as session:
            row = session.get(WeightsRow, trial_id)
            if row is None:
                source = session.scalar(select(TrialRow.reused_from)
                                        .where(TrialRow.id == trial_id))
                if source is not None:
                    row = session.get(WeightsRow, source)
            if row is None:
                return None
            fmt, data, digest, owner = row.format, row.data, row.sha256, row.trial_id
        what = f"the weights of trial {trial_id}" + (
            f" (stored with trial {owner}, which it reused)" if owner != trial_id else "")
        return check_weights(data, fmt, digest, what)

    def learning_curve(self, trial_id: int) -> dict[str, list[tuple[int, float]]]:
        """Per-epoch metrics of a trial: name -> [(step, value), ...] by step."""
        with self._db.reading(f"read the learning curve of trial {trial_id}") as session:
            rows = session.execute(
                select(MetricRow.name, MetricRow.step, MetricRow.value)
                .where(MetricRow.trial_id == trial_id, MetricRow.step.is_not(None))
                .order_by(MetricRow.name, MetricRow.step)).all()
        curves: dict[str, list[tuple[int, float]]] = {}
        for name, step, value in rows:
            curves.setdefault(name, []).append((int(step), from_db_float(value)))
        return curves

    def study_curves(self, study: str | int, metric: str,
                     states: Iterable[str] | str | None = None
                     ) -> list[tuple[int, dict[int, float]]]:
        """Per-epoch values of ``metric`` for every trial of a study (in ``states``, if
        given): ``[(trial number, {step: value}), ...]`` by trial number."""
        wanted = check_states(states)
        with self._db.reading(f"read learning curves of study {study!r}") as session:
            query = (
                select(TrialRow.number, MetricRow.step, MetricRow.value)
                .join(TrialRow, TrialRow.id == MetricRow.trial_id)
                .where(TrialRow.study_id == study_row(session, study).id,
                       MetricRow.name == metric, MetricRow.step.is_not(None))
                .order_by(TrialRow.number, MetricRow.step))
            if wanted is not None:
                query = query.where(TrialRow.state.in_(wanted))
            rows = session.execute(query).all()
        curves: dict[int, dict[int, float]] = {}
        for number, step, value in rows:
            curves.setdefault(int(number), {})[int(step)] = from_db_float(value)
        return list(curves.items())
