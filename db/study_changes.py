"""Deleting and renaming a stored study (``store.studies.delete`` / ``.rename``).

Each change is one write transaction: all of it is done, or nothing.

Deleting a study removes its row, its trials, their metrics (final and per epoch),
their trained weights and its Pareto front. What is not the study's alone stays:
architectures (shared by every study of their space), zero-cost proxies (stored
per architecture and task) and saved predictors (fitted on a space and task, not
on a study). A delete is refused, with nothing changed, when:

- trials of *other* studies reuse this study's results (``reused_from`` points at
  its trials): deleting would leave them claiming results whose source, weights
  and learning curves are gone. The message names those studies; delete them
  first, or keep this one;
- the study has running trials whose driver is alive (see
  :func:`naslab.core.drivers.driver_alive`): stop that search first. Running trials
  of dead drivers do not block.

Renaming changes the study's name only (its trials, results and reuse links keep
their ids); the new name must follow :data:`naslab.core.paths.NAME_RULE` and be
free, and the study must have no live driver (a running search finds its study by
name).

The Optuna study that an ``optuna-*`` searcher keeps in the same database (in
Optuna's own tables, beside naslab's) is deleted or renamed in the same
transaction when the caller names it (the application knows its name; this layer
does not know searchers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, inspect, select, update
from sqlalchemy.sql import column, table

from naslab.core import drivers
from naslab.core.errors import ConfigError, StudyConflictError, UnknownNameError
from naslab.core.paths import check_name
from naslab.db.models import MetricRow, ParetoRow, StudyRow, TrialRow, WeightsRow, utcnow

__all__ = ["StudyDeletion", "delete_study", "deletion_plan", "rename_study"]


@dataclass(frozen=True)
class StudyDeletion:
    """What deleting a study removes (or removed): counts of rows, and whether an
    Optuna study of the given name was found (and deleted) with it."""

    name: str
    trials: int
    metrics: int
    weights: int
    front: int
    optuna_study: str | None

    def describe(self) -> str:
        """One line: what goes."""
        optuna = f", and the Optuna study {self.optuna_study!r}" if self.optuna_study else ""
        return (f"study {self.name!r}: {self.trials} trial(s), {self.metrics} metric value(s), "
                f"{self.weights} set(s) of weights, {self.front} Pareto-front row(s){optuna}")


def _locked_study(conn: Connection, name: str) -> Any:
    """The study's row, locked against concurrent claims (PostgreSQL: FOR UPDATE;
    SQLite: the write transaction already holds the lock)."""
    row = conn.execute(select(StudyRow).where(StudyRow.name == name).with_for_update()).first()
    if row is None:
        names = conn.execute(select(StudyRow.name).order_by(StudyRow.id)).scalars().all()
        raise UnknownNameError("study", name, names)
    return row


def _live_drivers(conn: Connection, study_id: int) -> list[str]:
    rows = conn.execute(select(TrialRow.driver, TrialRow.heartbeat_at).where(
        TrialRow.study_id == study_id, TrialRow.state == "running")).all()
    now = utcnow()
    return sorted({str(r.driver) for r in rows
                   if drivers.driver_alive(r.driver, r.heartbeat_at, now=now)})


def _refuse_live(conn: Connection, study_id: int, name: str, action: str) -> None:
    live = _live_drivers(conn, study_id)
    if live:
        shown = ", ".join(live[:5]) + (f" and {len(live) - 5} more" if len(live) > 5 else "")
        raise StudyConflictError(
            f"cannot {action} study {name!r}: it has running trials of live search drivers "
            f"({shown}); stop those searches first (or wait until they finish)")


def _reusers(conn: Connection, study_id: int) -> list[tuple[str, int]]:
    """(study name, trial count) of other studies whose trials reuse this study's."""
    own = select(TrialRow.id).where(TrialRow.study_id == study_id)
    conn.execute(own.with_for_update())  # PostgreSQL: no new reuse of them until commit
    rows = conn.execute(
        select(StudyRow.name, func.count(TrialRow.id))
        .join(TrialRow, TrialRow.study_id == StudyRow.id)
        .where(TrialRow.reused_from.in_(own), TrialRow.study_id != study_id)
        .group_by(StudyRow.name).order_by(StudyRow.name)).all()
    return [(str(n), int(c)) for n, c in rows]


def _refuse_reused(conn: Connection, study_id: int, name: str) -> None:
    reusers = _reusers(conn, study_id)
    if reusers:
        shown = ", ".join(f"{n!r} ({c} trial(s))" for n, c in reusers[:10])
        more = f" and {len(reusers) - 10} more" if len(reusers) > 10 else ""
        raise StudyConflictError(
            f"cannot delete study {name!r}: trials of other studies reuse its results "
            f"({shown}{more}); deleting it would leave them without their source. Delete "
            "those studies first, or keep this one")


# --------------------------------------------------------------------------- Optuna


def _optuna_tables(conn: Connection) -> dict[str, list[tuple[str, str]]] | None:
    """Optuna's tables in this database, if it holds them: for ``studies`` and
    ``trials``, the ``(table, column)`` pairs whose foreign keys point at them."""
    names = set(inspect(conn).get_table_names())
    if not {"studies", "trials", "version_info"} <= names:
        return None
    if "study_name" not in {c["name"] for c in inspect(conn).get_columns("studies")}:
        return None
    refs: dict[str, list[tuple[str, str]]] = {"studies": [], "trials": []}
    for name in sorted(names):
        for fk in inspect(conn).get_foreign_keys(name):
            target = fk.get("referred_table")
            if target in refs and name not in ("studies", "trials") \
                    and len(fk["constrained_columns"]) == 1:
                refs[target].append((name, fk["constrained_columns"][0]))
    return refs


def _optuna_study_id(conn: Connection, study_name: str | None) -> int | None:
    if not study_name or _optuna_tables(conn) is None:
        return None
    studies = table("studies", column("study_id"), column("study_name"))
    found = conn.execute(select(studies.c.study_id)
                         .where(studies.c.study_name == study_name)).scalar()
    return None if found is None else int(found)


def _delete_optuna_study(conn: Connection, study_id: int) -> None:
    """Delete an Optuna study and every row that depends on it (Optuna's own foreign
    keys do not cascade: rows of the tables pointing at its trials go first)."""
    refs = _optuna_tables(conn) or {"studies": [], "trials": []}
    trials = table("trials", column("trial_id"), column("study_id"))
    own_trials = select(trials.c.trial_id).where(trials.c.study_id == study_id)
    for name, col in refs["trials"]:
        child = table(name, column(col))
        conn.execute(delete(child).where(child.c[col].in_(own_trials)))
    conn.execute(delete(trials).where(trials.c.study_id == study_id))
    for name, col in refs["studies"]:
        child = table(name, column(col))
        conn.execute(delete(child).where(child.c[col] == study_id))
    studies = table("studies", column("study_id"))
    conn.execute(delete(studies).where(studies.c.study_id == study_id))


# --------------------------------------------------------------------------- changes


def _count(conn: Connection, query: Any) -> int:
    return int(conn.execute(query).scalar() or 0)


def deletion_plan(conn: Connection, name: str, optuna_study: str | None = None
                  ) -> tuple[int, StudyDeletion]:
    """The study's id and what deleting it removes; StudyConflictError if it may not
    be deleted (see the module's docstring), UnknownNameError if there is none."""
    row = _locked_study(conn, name)
    _refuse_live(conn, row.id, name, "delete")
    _refuse_reused(conn, row.id, name)
    own = select(TrialRow.id).where(TrialRow.study_id == row.id)
    plan = StudyDeletion(
        name=name,
        trials=_count(conn, select(func.count()).select_from(TrialRow)
                      .where(TrialRow.study_id == row.id)),
        metrics=_count(conn, select(func.count()).select_from(MetricRow)
                       .where(MetricRow.trial_id.in_(own))),
        weights=_count(conn, select(func.count()).select_from(WeightsRow)
                       .where(WeightsRow.trial_id.in_(own))),
        front=_count(conn, select(func.count()).select_from(ParetoRow)
                     .where(ParetoRow.study_id == row.id)),
        optuna_study=optuna_study if _optuna_study_id(conn, optuna_study) is not None else None,
    )
    return int(row.id), plan


def delete_study(conn: Connection, name: str, optuna_study: str | None = None
                 ) -> StudyDeletion:
    """Delete the study ``name`` (checked first, see :func:`deletion_plan`) and, if
    it is in this database, the Optuna study ``optuna_study``; inside the caller's
    write transaction."""
    study_id, plan = deletion_plan(conn, name, optuna_study)
    own = select(TrialRow.id).where(TrialRow.study_id == study_id)
    conn.execute(delete(ParetoRow).where(ParetoRow.study_id == study_id))
    conn.execute(delete(MetricRow).where(MetricRow.trial_id.in_(own)))
    conn.execute(delete(WeightsRow).where(WeightsRow.trial_id.in_(own)))
    # trials reusing trials of the same study: unlink before the rows go (no order issue)
    conn.execute(update(TrialRow).where(TrialRow.study_id == study_id,
                                        TrialRow.reused_from.is_not(None))
                 .values(reused_from=None))
    conn.execute(delete(TrialRow).where(TrialRow.study_id == study_id))
    conn.execute(delete(StudyRow).where(StudyRow.id == study_id))
    optuna_id = _optuna_study_id(conn, optuna_study)
    if optuna_id is not None:
        _delete_optuna_study(conn, optuna_id)
    return plan


def rename_study(conn: Connection, old: str, new: str, *,
                 optuna_names: tuple[str, str] | None = None) -> bool:
    """Rename the study ``old`` to ``new`` inside the caller's write transaction,
    and the Optuna study ``optuna_names[0]`` to ``optuna_names[1]`` if this
    database holds it; returns whether it did.

    Raises:
        ConfigError: ``new`` is not an accepted name.
        UnknownNameError: there is no study ``old``.
        StudyConflictError: ``new`` is taken (by a naslab study, or by an Optuna study
            in this database), or the study has live drivers.
    """
    check_name("the new study name", new)
    row = _locked_study(conn, old)
    if new == old:
        raise ConfigError(f"study {old!r} already has that name")
    if conn.execute(select(StudyRow.id).where(StudyRow.name == new)).first() is not None:
        raise StudyConflictError(f"cannot rename study {old!r} to {new!r}: a study named "
                                 f"{new!r} exists; choose another name")
    _refuse_live(conn, row.id, old, "rename")
    conn.execute(update(StudyRow).where(StudyRow.id == row.id)
                 .values(name=new, updated_at=utcnow()))
    if optuna_names is None:
        return False
    optuna_id = _optuna_study_id(conn, optuna_names[0])
    if optuna_id is None:
        return False
    if _optuna_study_id(conn, optuna_names[1]) is not None:
        raise StudyConflictError(
            f"cannot rename study {old!r} to {new!r}: this database already holds an Optuna "
            f"study named {optuna_names[1]!r} (left by a deleted naslab study?); remove it "
            "with optuna.delete_study first")
    studies = table("studies", column("study_id"), column("study_name"))
    conn.execute(update(studies).where(studies.c.study_id == optuna_id)
                 .values(study_name=optuna_names[1]))
    return True
