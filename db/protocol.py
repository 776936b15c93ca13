"""The trial protocol: how a search driver claims, evaluates and finishes a trial.

One step, one method of :class:`TrialProtocol` (``store.protocol``), one transaction:

1. :meth:`~TrialProtocol.claim` an architecture for a study. The outcome
   (:class:`ClaimOutcome`) is a new ``running`` trial to evaluate (``NEW``), a
   complete copy of an earlier evaluation (``REUSED``), or one of three outcomes
   that store nothing: ``BUSY`` (another driver is evaluating it in this study),
   ``KNOWN`` (the study already holds a result of it, trained or reused) and
   ``FULL`` (the budget is taken).
2. While it is evaluated, :meth:`~TrialProtocol.report` stores per-epoch metrics and
   :meth:`~TrialProtocol.heartbeat` says its driver is alive.
3. :meth:`~TrialProtocol.finish` stores its result (``complete``, or ``stopped``
   early by a scheduler), or :meth:`~TrialProtocol.fail` says why it failed.
4. A driver that stops with trials in flight :meth:`~TrialProtocol.interrupt_running`
   them; one that resumes :meth:`~TrialProtocol.interrupt_abandoned` those of dead
   drivers. Interrupted trials release their claim and do not count to the budget.

The database enforces the claim: a partial unique index allows one running or
complete trial (trained or reused) per architecture, study and fidelity, and claims on one study
are serialised (a row lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so that
drivers in several processes or machines never train the same architecture twice in
a study, nor exceed its budget. The store never evaluates anything: a table search
that wants one commit for many trials wraps its claims, evaluations and finishes in
:meth:`Database.batch <naslab.db.engine.Database.batch>`.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from naslab.core import drivers
from naslab.core.errors import StorageError
from naslab.core.validation import check_int
from naslab.db.engine import Database
from naslab.db.integrity import weights_digest
from naslab.db.models import (
    ArchitectureRow,
    MetricRow,
    StudyRow,
    TrialRow,
    WeightsRow,
    utcnow,
)
from naslab.db.records import (
    WEIGHTS_FORMAT,
    StudyInfo,
    arch_json,
    check_metrics,
    check_step,
    dumps,
    from_db_float,
    opt_int,
    to_db_float,
    weights_to_bytes,
)

if TYPE_CHECKING:
    from naslab.search_spaces.architecture import Architecture
    from naslab.workers.evaluator import Result

__all__ = ["Claim", "ClaimContext", "ClaimOutcome", "TrialProtocol"]

#: Whether this SQLite has ``INSERT ... RETURNING`` (3.35 and newer).
_SQLITE_RETURNING = sqlite3.sqlite_version_info >= (3, 35)
#: The states whose trials hold a claim or count towards a study's budget.
LIVE_STATES = ("complete", "stopped", "failed", "running")


class ClaimOutcome(enum.Enum):
    """What :meth:`TrialProtocol.claim` did."""

    #: A new ``running`` trial was stored: evaluate it, then finish or fail it.
    NEW = "new"
    #: An earlier complete evaluation was copied into a new complete trial.
    REUSED = "reused"
    #: Another driver is evaluating the architecture in this study; nothing stored.
    BUSY = "busy"
    #: The study already holds a complete trial of it (trained or reused); nothing
    #: stored.
    KNOWN = "known"
    #: The study's finished and running trials reach its budget; nothing stored.
    FULL = "full"


@dataclass(frozen=True)
class ClaimContext:
    """What every claim of one driver on one study shares.

    Attributes:
        study_id, space_key, task_key, fidelity, seed: the study's.
        budget: claim nothing once the study's live trials (every driver's) reach it.
        driver: ``host/pid/start`` of the claiming driver (:mod:`naslab.core.drivers`).
        worker: ``host:pid`` recorded with the trial until its evaluator says otherwise.
        reuse: copy an evaluation of another study (same space, task and fidelity)
            instead of evaluating again; the study's own is always reused.
    """

    study_id: int
    space_key: str
    task_key: str
    fidelity: int
    seed: int
    budget: int | None = None
    driver: str | None = None
    worker: str | None = None
    reuse: bool = True

    def __post_init__(self) -> None:
        check_int("fidelity", self.fidelity, minimum=0)
        check_int("seed", self.seed)

    @classmethod
    def of(cls, study: StudyInfo, *, driver: str | None = None, worker: str | None = None,
           reuse: bool = True, budget: int | None = -1) -> ClaimContext:
        """The context of ``study`` (its budget unless ``budget`` is given)."""
        return cls(study.id, study.space_key, study.task_key, study.fidelity, study.seed,
                   study.budget if budget == -1 else budget, driver, worker, reuse)


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim, with the trial it concerns.

    ``trial_id`` and ``number``: the new trial (``NEW``, ``REUSED``), the running
    trial of another driver (``BUSY``) or the study's own evaluation (``KNOWN``);
    None for ``FULL``. ``value`` and ``metrics`` are the copied (``REUSED``) or
    known (``KNOWN``) result: objective value, final metrics and params, flops and
    latency where stored.
    """

    outcome: ClaimOutcome
    trial_id: int | None = None
    number: int | None = None
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict, hash=False)


class _Statements:
    """The statements of the per-trial path, built once (bound parameters only)."""

    def __init__(self) -> None:
        self._claims()
        self._results()
        self._inserts()

    def _claims(self) -> None:
        """What a claim reads: the study (locked), the architecture, its holder in the
        study, an earlier evaluation to reuse."""
        trials, archs = TrialRow.__table__, ArchitectureRow.__table__
        studies = StudyRow.__table__
        # claims on a study are serialised by this row lock (PostgreSQL; SQLite's
        # IMMEDIATE transaction already excludes other writers)
        self.study_lock = select(studies.c.name, studies.c.space_key).where(
            studies.c.id == bindparam("sid")).with_for_update()
        # read after the lock is held (a subquery of the locking statement would see
        # the snapshot from before the wait on PostgreSQL)
        self.last_number = select(func.max(trials.c.number)).where(
            trials.c.study_id == bindparam("sid"))
        # SQLite: the IMMEDIATE transaction holds the lock already, so one statement
        self.study_and_last = select(
            studies.c.name, studies.c.space_key,
            select(func.max(trials.c.number)).where(trials.c.study_id == studies.c.id)
            .scalar_subquery().label("last"),
        ).where(studies.c.id == bindparam("sid"))
        self.live_count = select(func.count()).where(
            trials.c.study_id == bindparam("sid"), trials.c.state.in_(LIVE_STATES))
        self.arch_id = select(archs.c.id).where(
            archs.c.space_key == bindparam("sk"), archs.c.hash == bindparam("h"))
        # the trial holding the study's slot of an architecture: trained or reused
        self.holder = select(trials.c.id, trials.c.number, trials.c.state).where(
            trials.c.study_id == bindparam("sid"), trials.c.architecture_id == bindparam("aid"),
            trials.c.fidelity == bindparam("fid"), trials.c.state.in_(["running", "complete"]))
        value = trials.c.objective_value
        self.source = (
            select(trials).join(studies, studies.c.id == trials.c.study_id)
            .where(trials.c.architecture_id == bindparam("aid"),
                   studies.c.task_key == bindparam("tk"), trials.c.fidelity == bindparam("fid"),
                   trials.c.state == "complete", trials.c.reused_from.is_(None))
            .order_by(value.is_(None), value.desc(), trials.c.id).limit(1))
        self.trial_values = select(value, trials.c.params, trials.c.flops,
                                   trials.c.latency_ms).where(trials.c.id == bindparam("tid"))

    def _results(self) -> None:
        """What finishing, failing and reporting a trial change."""
        trials, archs = TrialRow.__table__, ArchitectureRow.__table__
        metric_t = MetricRow.__table__
        self.finishing = select(
            trials.c.study_id, trials.c.architecture_id, trials.c.fidelity, trials.c.state,
            trials.c.reused_from).where(trials.c.id == bindparam("tid"))
        self.successor = select(trials.c.number).where(
            trials.c.study_id == bindparam("sid"), trials.c.architecture_id == bindparam("aid"),
            trials.c.fidelity == bindparam("fid"), trials.c.id != bindparam("tid"),
            trials.c.state.in_(["running", "complete"]))
        self.trial_state = select(trials.c.state).where(trials.c.id == bindparam("tid"))
        finished = {name: bindparam(name) for name in (
            "state", "objective_value", "params", "flops", "latency_ms", "train_seconds",
            "epochs_done", "finished_at", "error", "extra")}
        self.finish = update(trials).where(
            trials.c.id == bindparam("tid"), trials.c.state == bindparam("from_state"),
        ).values(**finished, worker=func.coalesce(bindparam("worker"), trials.c.worker))
        self.fail = update(trials).where(trials.c.id == bindparam("tid")).values(
            state="failed", error=bindparam("error"), finished_at=bindparam("finished_at"),
            worker=func.coalesce(bindparam("worker"), trials.c.worker))
        self.drop_reported = delete(metric_t).where(
            metric_t.c.trial_id == bindparam("tid"), metric_t.c.step == bindparam("step"),
            metric_t.c.name.in_(bindparam("names", expanding=True)))
        self.drop_final = delete(metric_t).where(
            metric_t.c.trial_id == bindparam("tid"), metric_t.c.step.is_(None),
            metric_t.c.name.in_(bindparam("names", expanding=True)))
        self.drop_weights = delete(WeightsRow.__table__).where(
            WeightsRow.__table__.c.trial_id == bindparam("tid"))
        # the first evaluation of an architecture gives it its params and flops
        self.fill_arch = update(archs).where(
            archs.c.id == select(trials.c.architecture_id).where(
                trials.c.id == bindparam("tid")).scalar_subquery(),
            archs.c.params.is_(None) | archs.c.flops.is_(None),
        ).values(params=func.coalesce(archs.c.params, bindparam("p", type_=BigInteger)),
                 flops=func.coalesce(archs.c.flops, bindparam("f", type_=BigInteger)))



    def _inserts(self) -> None:
        """New rows: trials, architectures, metrics, weights."""
        trials, archs = TrialRow.__table__, ArchitectureRow.__table__
        metric_t = MetricRow.__table__
        self.insert_weights = insert(WeightsRow.__table__)
        self.insert_trial = insert(trials)
        self.insert_arch = insert(archs)
        # the architecture's row if it is new, its id returned; nothing if it exists
        self.insert_arch_new = {
            dialect: insert_of(archs).on_conflict_do_nothing(
                index_elements=["space_key", "hash"]).returning(archs.c.id)
            for dialect, insert_of in (("postgresql", pg_insert), ("sqlite", sqlite_insert))}
        self.insert_metric = insert(metric_t)
        self.copy_metrics = insert(metric_t).from_select(
            ["trial_id", "name", "step", "value"],
            select(bindparam("new", type_=Integer), metric_t.c.name, metric_t.c.step,
                   metric_t.c.value)
            .where(metric_t.c.trial_id == bindparam("src")).order_by(metric_t.c.id))
        self.final_metrics = (select(metric_t.c.name, metric_t.c.value)
                              .where(metric_t.c.trial_id == bindparam("tid"),
                                     metric_t.c.step.is_(None))
                              .order_by(metric_t.c.id))


_SQL = _Statements()


def _with_costs(metrics: dict[str, float], row: Any) -> dict[str, float]:
    """``metrics`` plus the row's params, flops and latency where they are stored."""
    for key in ("params", "flops", "latency_ms"):
        if getattr(row, key, None) is not None:
            metrics.setdefault(key, float(getattr(row, key)))
    return metrics


class TrialProtocol:
    """The write side of trials (``store.protocol``); see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # ------------------------------------------------------------------ claim

    def claim(self, ctx: ClaimContext, arch: Architecture) -> Claim:
        """Claim the evaluation of ``arch`` in the study of ``ctx`` (one transaction).

        A study holds each architecture at most once per fidelity, trained or
        reused: one it already holds is answered ``BUSY`` (running) or ``KNOWN``
        (complete, its result read back), and nothing is stored.
        """
        arch_hash, decisions, graph = arch_json(arch)
        with self._db.writing("claim a trial") as conn:
            number = self._lock_study(conn, ctx)
            if ctx.budget is not None and number >= ctx.budget and self._full(conn, ctx):
                return Claim(ClaimOutcome.FULL)
            arch_id, new = self._architecture(conn, arch, ctx.space_key, arch_hash,
                                              decisions, graph)
            source = None
            if not new:  # evaluated before, perhaps in this study
                holder = conn.execute(_SQL.holder, {"sid": ctx.study_id, "aid": arch_id,
                                                    "fid": ctx.fidelity}).first()
                if holder is not None:  # the study holds it: never a second trial of it
                    return self._unstored(conn, holder)
                if ctx.reuse:
                    source = conn.execute(_SQL.source, {"aid": arch_id, "tk": ctx.task_key,
                                                        "fid": ctx.fidelity}).first()
            now = utcnow()
            row = {"study_id": ctx.study_id, "number": number, "architecture_id": arch_id,
                   "decisions": decisions, "fidelity": ctx.fidelity, "seed": ctx.seed,
                   "worker": ctx.worker, "started_at": now, "driver": ctx.driver}
            if source is not None:
                return self._insert_reused(conn, row, source, now)
            row.update(state="running", heartbeat_at=now)
            trial_id = int(conn.execute(_SQL.insert_trial, row).inserted_primary_key[0])
            return Claim(ClaimOutcome.NEW, trial_id, number)

    def _lock_study(self, conn: Connection, ctx: ClaimContext) -> int:
        """Lock the study (checking its space); the number of its next trial."""
        locking = _SQL.study_and_last if self._db.is_sqlite else _SQL.study_lock
        study = conn.execute(locking, {"sid": ctx.study_id}).first()
        if study is None:
            raise StorageError(f"there is no study with id {ctx.study_id}")
        if study.space_key != ctx.space_key:
            raise StorageError(f"space_key {ctx.space_key!r} differs from study "
                               f"{study.name!r}'s {study.space_key!r}")
        if self._db.is_sqlite:
            last = study.last
        else:
            last = conn.execute(_SQL.last_number, {"sid": ctx.study_id}).scalar()
        return 0 if last is None else int(last) + 1

    @staticmethod
    def _full(conn: Connection, ctx: ClaimContext) -> bool:
        live = conn.execute(_SQL.live_count, {"sid": ctx.study_id}).scalar()
        return int(live or 0) >= int(ctx.budget or 0)

    @staticmethod
    def _unstored(conn: Connection, holder: Any) -> Claim:
        """``BUSY`` (another driver's running trial) or ``KNOWN`` (the study's own
        complete evaluation, read back)."""
        if holder.state == "running":
            return Claim(ClaimOutcome.BUSY, holder.id, holder.number)
        row = conn.execute(_SQL.trial_values, {"tid": holder.id}).first()
        got = conn.execute(_SQL.final_metrics, {"tid": holder.id}).all()
        metrics = _with_costs({n: from_db_float(v) for n, v in got}, row)
        return Claim(ClaimOutcome.KNOWN, holder.id, holder.number, row.objective_value, metrics)

    @staticmethod
    def _insert_reused(conn: Connection, row: dict[str, Any], source: Any, now: Any) -> Claim:
        """Insert ``row`` as a complete copy of ``source`` (a trial row), metrics too."""
        row.update(state="complete", finished_at=now, objective_value=source.objective_value,
                   params=source.params, flops=source.flops, latency_ms=source.latency_ms,
                   train_seconds=source.train_seconds, epochs_done=source.epochs_done,
                   extra=source.extra, reused_from=source.id)
        trial_id = int(conn.execute(_SQL.insert_trial, row).inserted_primary_key[0])
        conn.execute(_SQL.copy_metrics, {"new": trial_id, "src": source.id})
        got = conn.execute(_SQL.final_metrics, {"tid": source.id}).all()
        metrics = _with_costs({n: from_db_float(v) for n, v in got}, source)
        return Claim(ClaimOutcome.REUSED, trial_id, row["number"], source.objective_value,
                     metrics)

    def _architecture(self, conn: Connection, arch: Architecture, space_key: str,
                      arch_hash: str, decisions: str, graph: str) -> tuple[int, bool]:
        """The id of the architecture's row, and whether this claim inserted it."""
        values = {"space": arch.space, "space_key": space_key, "hash": arch_hash,
                  "graph": graph, "decisions": decisions, "created_at": utcnow()}
        upsert = _SQL.insert_arch_new.get(self._db.dialect)
        if upsert is not None and (self._db.dialect != "sqlite" or _SQLITE_RETURNING):
            # one statement for a new architecture; a concurrent writer's row is kept
            inserted = conn.execute(upsert, values).scalar()
            if inserted is not None:
                return int(inserted), True
        found = conn.execute(_SQL.arch_id, {"sk": space_key, "h": arch_hash}).scalar()
        if found is not None:
            return int(found), False
        try:
            with conn.begin_nested():  # a concurrent writer may insert it first
                return int(conn.execute(_SQL.insert_arch, values).inserted_primary_key[0]), True
        except IntegrityError:
            found = conn.execute(_SQL.arch_id, {"sk": space_key, "h": arch_hash}).scalar()
            if found is None:
                raise
            return int(found), False

    # ------------------------------------------------------------------ evaluation

    def report(self, trial_id: int, step: int, metrics: Mapping[str, float]) -> None:
        """Store per-epoch ``metrics`` of a trial at ``step`` (an epoch, from 1); a metric
        reported again at the same step replaces the earlier value."""
        step = check_step(step)
        values = check_metrics(metrics)
        if not values:
            return
        with self._db.writing(f"report metrics of trial {trial_id}") as conn:
            if conn.execute(_SQL.trial_state, {"tid": trial_id}).first() is None:
                raise StorageError(f"there is no trial with id {trial_id}")
            conn.execute(_SQL.drop_reported, {"tid": trial_id, "step": step,
                                              "names": list(values)})
            conn.execute(_SQL.insert_metric, [
                {"trial_id": trial_id, "name": k, "step": step, "value": v}
                for k, v in values.items()])

    def finish(self, trial_id: int, result: Result, *, objective: str,
               worker: str | None = None, stopped: bool = False,
               reports: Sequence[tuple[int, Mapping[str, float]]] = ()) -> str:
        """Store the result of a running trial; returns the state it got.

        ``reports`` are per-epoch ``(step, metrics)`` not stored yet by
        :meth:`report` (an inline evaluation's, kept for this one transaction).

        ``complete`` (or ``stopped``: stopped early by a scheduler, ``result`` holding
        the epochs it reached), with the final metrics, the objective value
        ``result.metrics[objective]``, params, flops, latency, training time, epochs,
        ``result.extra`` and the weights, if any (safetensors); the architecture's
        params and flops are filled if unknown. A trial that was ``interrupted`` (its
        driver was taken for dead) is completed too, unless another trial of the
        study has claimed the architecture since: then the result is stored with it
        but it stays ``interrupted`` and ``error`` names that trial.
        """
        if objective not in result.metrics:
            raise StorageError(
                f"cannot complete trial {trial_id}: the result has no {objective!r} metric "
                f"(it has: {', '.join(sorted(result.metrics)) or 'none'})")
        final = check_metrics(result.metrics)
        values: dict[str, Any] = {
            "objective_value": final[objective], "params": opt_int(result.params),
            "flops": opt_int(result.flops), "latency_ms": to_db_float(result.latency_ms),
            "train_seconds": to_db_float(result.train_seconds),
            "epochs_done": opt_int(result.epochs), "finished_at": utcnow(), "error": None,
            "extra": dumps("result.extra", result.extra) if result.extra else None,
            "state": "stopped" if stopped else "complete",
            "worker": worker,  # the process that actually evaluated it (None: keep)
            "tid": trial_id}
        rows = [{"trial_id": trial_id, "name": k, "step": check_step(step), "value": v}
                for step, metrics in reports for k, v in check_metrics(metrics).items()]
        rows += [{"trial_id": trial_id, "name": k, "step": None, "value": v}
                 for k, v in final.items()]
        blob = weights_to_bytes(result.weights) if result.weights is not None else None
        digest = None if blob is None else weights_digest(blob)
        with self._db.writing(f"complete trial {trial_id}") as conn:
            state = values["state"]
            if conn.execute(_SQL.finish, {**values, "from_state": "running"}).rowcount != 1:
                state = self._finish_interrupted(conn, trial_id, values, stopped)
                # a late result may come twice: it replaces what the first one stored
                conn.execute(_SQL.drop_final, {"tid": trial_id, "names": list(final)})
                conn.execute(_SQL.drop_weights, {"tid": trial_id})
            conn.execute(_SQL.insert_metric, rows)
            if values["params"] is not None or values["flops"] is not None:
                conn.execute(_SQL.fill_arch, {"tid": trial_id, "p": values["params"],
                                              "f": values["flops"]})
            if blob is not None:
                conn.execute(_SQL.insert_weights, {"trial_id": trial_id, "sha256": digest,
                                                   "format": WEIGHTS_FORMAT, "data": blob})
        return state

    @staticmethod
    def _finish_interrupted(conn: Connection, trial_id: int, values: dict[str, Any],
                            stopped: bool) -> str:
        """Store the result of a trial that is not running: an interrupted one (its
        driver was taken for dead) is completed, but stays interrupted if another trial
        of the study has claimed the architecture since; any other state is refused."""
        trial = conn.execute(_SQL.finishing, {"tid": trial_id}).first()
        if trial is None:
            raise StorageError(f"there is no trial with id {trial_id}")
        if trial.state != "interrupted":
            raise StorageError(f"cannot complete trial {trial_id}: it is already "
                               f"{trial.state}")
        successor = None
        if not stopped and trial.reused_from is None:
            successor = conn.execute(_SQL.successor, {
                "sid": trial.study_id, "aid": trial.architecture_id, "fid": trial.fidelity,
                "tid": trial_id}).scalar()
        if successor is not None:
            values = {**values, "state": "interrupted", "error": (
                "finished after its driver was taken for dead; trial "
                f"{successor} of the study evaluates this architecture now (this "
                "trial's result is kept here)")}
        conn.execute(_SQL.finish, {**values, "from_state": "interrupted"})
        return str(values["state"])

    def fail(self, trial_id: int, error: str, *, worker: str | None = None) -> None:
        """Mark a running (or interrupted) trial failed, with ``error`` saying why."""
        values = {"error": str(error), "finished_at": utcnow(), "worker": worker,
                  "tid": trial_id}
        with self._db.writing(f"fail trial {trial_id}") as conn:
            state = conn.execute(_SQL.trial_state, {"tid": trial_id}).scalar()
            if state is None:
                raise StorageError(f"there is no trial with id {trial_id}")
            if state in ("complete", "stopped"):
                raise StorageError(f"cannot fail trial {trial_id}: it is already {state}")
            conn.execute(_SQL.fail, values)

    # ------------------------------------------------------------------ drivers

    def heartbeat(self, study_id: int, driver: str) -> int:
        """Say that ``driver`` is alive: refresh ``heartbeat_at`` of its running trials
        in the study; returns how many."""
        with self._db.writing("refresh a heartbeat") as conn:
            done = conn.execute(
                update(TrialRow)
                .where(TrialRow.study_id == study_id, TrialRow.state == "running",
                       TrialRow.driver == driver)
                .values(heartbeat_at=utcnow()))
            return int(done.rowcount or 0)

    def interrupt_running(self, study_id: int, driver: str | None = None) -> int:
        """Mark the study's ``running`` trials (only ``driver``'s, if given)
        ``interrupted``; returns how many. The next run evaluates them again."""
        query = update(TrialRow).where(TrialRow.study_id == study_id,
                                       TrialRow.state == "running")
        if driver is not None:
            query = query.where(TrialRow.driver == driver)
        with self._db.writing(f"interrupt running trials of study {study_id}") as conn:
            done = conn.execute(query.values(
                state="interrupted", finished_at=utcnow(),
                error="interrupted: the driver stopped before the trial finished"))
            return int(done.rowcount or 0)

    def interrupt_abandoned(self, study_id: int, *, lease_s: float = drivers.LEASE_S) -> int:
        """Interrupt the study's running trials whose driver is dead (see
        :func:`naslab.core.drivers.driver_alive`); returns how many. Trials of live
        drivers, on this machine or others, are left running."""
        with self._db.writing(f"interrupt abandoned trials of study {study_id}") as conn:
            rows = conn.execute(
                select(TrialRow.id, TrialRow.driver, TrialRow.heartbeat_at).where(
                    TrialRow.study_id == study_id, TrialRow.state == "running")).all()
            now = utcnow()
            dead = [r.id for r in rows
                    if not drivers.driver_alive(r.driver, r.heartbeat_at, now=now,
                                                lease_s=lease_s)]
            if dead:
                conn.execute(
                    update(TrialRow).where(TrialRow.id.in_(dead), TrialRow.state == "running")
                    .values(state="interrupted", finished_at=now,
                            error="interrupted: its driver stopped before the trial finished"))
            return len(dead)
