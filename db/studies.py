"""Studies in the store: create or resume one, look one up (and its trials by
number), list them with counts, delete or rename one (:mod:`naslab.db.study_changes`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from naslab.core.errors import ConfigError, StorageError, StudyConflictError, UnknownNameError
from naslab.core.validation import check_choice, check_int, check_str
from naslab.db.engine import Database
from naslab.db.models import DIRECTIONS, StudyRow, TrialRow, utcnow
from naslab.db.records import StudyInfo, StudySpec, StudySummary, dumps, loads, study_info
from naslab.db.study_changes import StudyDeletion, delete_study, deletion_plan, rename_study

__all__ = ["ConfigCheck", "StudyCatalog", "StudyDeletion", "study_row"]

#: Compares a stored study's ``config`` with the one requested: returns one
#: ``"name: stored X, requested Y"`` text per difference (none: the same).
ConfigCheck = Callable[[Mapping[str, Any]], list[str]]

#: The settings a resumed study must share with its stored row.
IDENTITY = ("space_key", "task_key", "fidelity", "objective", "direction", "searcher", "seed")


def study_row(session: Session, study: str | int) -> StudyRow:
    """The row of a study given by name or id; UnknownNameError lists the names."""
    if isinstance(study, int) and not isinstance(study, bool):
        row = session.get(StudyRow, study)
    else:
        row = session.scalar(select(StudyRow).where(StudyRow.name == study))
    if row is None:
        names = session.scalars(select(StudyRow.name)).all()
        raise UnknownNameError("study", str(study), names)
    return row


def _checked(spec: StudySpec) -> StudySpec:
    check_str("study name", spec.name, max_length=200)
    for name, limit in (("space", 255), ("space_key", 255), ("task_key", 100_000),
                        ("searcher", 255), ("objective", 100)):
        check_str(name, getattr(spec, name), max_length=limit)
    check_choice("direction", spec.direction, DIRECTIONS)
    check_int("budget", spec.budget, minimum=1)
    check_int("fidelity", spec.fidelity, minimum=0)
    check_int("seed", spec.seed)
    return spec


def _refreshed(stored: dict[str, Any], given: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """The ``keys`` of ``stored`` (mappings) updated with the non-None values given,
    those that change."""
    out = {}
    for key in keys:
        old, new = stored.get(key), given.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            merged = {**old, **{k: v for k, v in new.items() if v is not None}}
            if merged != old:
                out[key] = merged
    return out


def _conflicts(row: Any, spec: StudySpec) -> list[str]:
    return [f"{name}: stored {getattr(row, name)!r}, requested {getattr(spec, name)!r}"
            for name in IDENTITY if getattr(row, name) != getattr(spec, name)]


class StudyCatalog:
    """The studies of one store (``store.studies``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create_or_load(self, spec: StudySpec, *,
                       check_config: ConfigCheck | None = None,
                       refresh: tuple[str, ...] = ()) -> StudyInfo:
        """Create the study ``spec.name``, or load it if it exists.

        An existing study must have the same space key, task key, fidelity,
        objective, direction, searcher and seed, and ``check_config`` (given the
        stored ``config``) must find no difference; otherwise
        :class:`~naslab.core.errors.StudyConflictError` names each difference, and
        nothing stored changes. Its budget is updated to ``spec.budget``; ``config``
        entries that it lacks (a study stored by an older naslab) are added from
        ``spec.config``; the ``config`` entries named in ``refresh`` (mappings) are
        updated with ``spec.config``'s non-None values; its other settings stay as
        first stored.
        """
        _checked(spec)
        values = {name: getattr(spec, name) for name in (*IDENTITY, "budget")}
        values.update(name=spec.name, space=spec.space,
                      space_config=dumps("space_config", dict(spec.space_config)),
                      config=dumps("config", dict(spec.config)))
        for attempt in range(2):
            try:
                return self._create_or_load(spec, values, check_config, refresh)
            except StorageError as exc:
                # a concurrent creator (another process) won the race: load its study
                if attempt == 1 or not isinstance(exc.__cause__, IntegrityError):
                    raise
        raise AssertionError("unreachable")

    def _create_or_load(self, spec: StudySpec, values: dict[str, Any],
                        check_config: ConfigCheck | None,
                        refresh: tuple[str, ...] = ()) -> StudyInfo:
        with self._db.writing(f"create or load study {spec.name!r}") as conn:
            row = conn.execute(select(StudyRow).where(StudyRow.name == spec.name)).first()
            now = utcnow()
            if row is None:
                conn.execute(insert(StudyRow).values(**values, created_at=now, updated_at=now))
            else:
                stored = loads(row.config)
                diffs = _conflicts(row, spec) + (check_config(stored) if check_config else [])
                if diffs:
                    raise StudyConflictError(
                        f"study {spec.name!r} already exists with different settings ("
                        + "; ".join(diffs)
                        + "). Resume it with its stored settings, or choose a new study name "
                        "to search with other settings."
                    )
                changes: dict[str, Any] = {}
                if row.budget != spec.budget:
                    changes["budget"] = spec.budget
                missing = {k: v for k, v in spec.config.items() if k not in stored}
                refreshed = _refreshed(stored, spec.config, refresh)
                if missing or refreshed:  # recorded from now on, checked on the next resume
                    changes["config"] = dumps("config", {**stored, **refreshed, **missing})
                if changes:
                    conn.execute(update(StudyRow).where(StudyRow.id == row.id)
                                 .values(**changes, updated_at=now))
            return study_info(conn.execute(
                select(StudyRow).where(StudyRow.name == spec.name)).one())

    def get(self, name: str) -> StudyInfo | None:
        """The study called ``name``, or None."""
        with self._db.reading(f"read study {name!r}") as session:
            row = session.scalar(select(StudyRow).where(StudyRow.name == name))
            return None if row is None else study_info(row)

    def require(self, name: str) -> StudyInfo:
        """The study called ``name``; ConfigError lists the stored studies if none is."""
        info = self.get(name)
        if info is None:
            names = [s.name for s in self.summaries()]
            raise ConfigError(
                f"no study named {name!r}; stored studies: {', '.join(names) or 'none'}")
        return info

    def summaries(self) -> list[StudySummary]:
        """Every study with its trial counts and best objective, oldest first."""

        def count(state: str) -> Any:
            return func.coalesce(func.sum(case((TrialRow.state == state, 1), else_=0)), 0)

        done = case((TrialRow.state == "complete", TrialRow.objective_value))
        states = ("complete", "stopped", "failed", "running", "interrupted")
        query = (
            select(StudyRow, *(count(s) for s in states), func.max(done), func.min(done))
            .outerjoin(TrialRow, TrialRow.study_id == StudyRow.id)
            .group_by(StudyRow.id)
            .order_by(StudyRow.created_at, StudyRow.id)
        )
        with self._db.reading("list studies") as session:
            rows = session.execute(query).all()
        return [
            StudySummary(
                name=s.name, space=s.space, task_key=s.task_key, searcher=s.searcher,
                objective=s.objective, direction=s.direction, budget=s.budget,
                n_complete=int(nc), n_stopped=int(ns), n_failed=int(nf), n_running=int(nr),
                n_interrupted=int(ni),
                best_objective=best_min if s.direction == "minimize" else best_max,
                created_at=s.created_at,
            )
            for s, nc, ns, nf, nr, ni, best_max, best_min in rows
        ]

    def trial_id(self, study: str, number: int) -> int:
        """The id of trial ``number`` of ``study``; ConfigError (saying which numbers
        exist) if it has none, UnknownNameError if there is no such study."""
        check_int("a trial number", number, minimum=0, maximum=2**31 - 1)
        with self._db.reading(f"find trial {number} of study {study!r}") as session:
            sid = study_row(session, study).id
            found = session.scalar(select(TrialRow.id).where(
                TrialRow.study_id == sid, TrialRow.number == number))
            if found is not None:
                return int(found)
            last = session.scalar(select(func.max(TrialRow.number))
                                  .where(TrialRow.study_id == sid))
        held = "it has no trials" if last is None else f"its trials are numbered 0 to {last}"
        raise ConfigError(f"study {study!r} has no trial {number}; {held}")

    def trial_origin(self, trial_id: int) -> tuple[str, int] | None:
        """(study name, trial number) of the trial with id ``trial_id``, or None."""
        with self._db.reading(f"find trial {trial_id}") as session:
            row = session.execute(
                select(StudyRow.name, TrialRow.number)
                .join(TrialRow, TrialRow.study_id == StudyRow.id)
                .where(TrialRow.id == trial_id)).first()
        return None if row is None else (str(row[0]), int(row[1]))

    def deletion_plan(self, name: str, *, optuna_study: str | None = None) -> StudyDeletion:
        """What :meth:`delete` would remove (nothing changes); the same refusals."""
        with self._db.writing(f"plan deleting study {name!r}") as conn:
            return deletion_plan(conn, name, optuna_study)[1]

    def delete(self, name: str, *, optuna_study: str | None = None) -> StudyDeletion:
        """Delete the study ``name`` with its trials, metrics, weights and Pareto front
        (and the Optuna study ``optuna_study`` if this database holds it), in one
        transaction; what it removed.

        Raises:
            UnknownNameError: no such study.
            StudyConflictError: other studies reuse its results, or it has live drivers
                (see :mod:`naslab.db.study_changes`); nothing is changed.
        """
        with self._db.writing(f"delete study {name!r}") as conn:
            return delete_study(conn, name, optuna_study)

    def rename(self, old: str, new: str, *,
               optuna_names: tuple[str, str] | None = None) -> bool:
        """Rename the study ``old`` to ``new`` (and the Optuna study
        ``optuna_names[0]`` to ``optuna_names[1]`` if this database holds it: returns
        whether it did), in one transaction. See
        :func:`naslab.db.study_changes.rename_study` for the refusals."""
        with self._db.writing(f"rename study {old!r}") as conn:
            return rename_study(conn, old, new, optuna_names=optuna_names)
