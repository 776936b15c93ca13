"""The SQLAlchemy models of the naslab store, and the SQL views over them.

Every table and view is prefixed ``naslab_``, and so is every index and constraint
name, so the store can share a database with Optuna (whose tables are ``studies``,
``trials``, ``version_info``, ``alembic_version``, ...) or anything else.

Tables:

``naslab_studies``
    One row per study: ``id``, ``name`` (unique), ``space`` (the search space's
    name), ``space_key`` (identity of the space and its configuration),
    ``space_config`` (JSON text), ``task_key`` (identity of the task and its
    evaluation settings), ``searcher``, ``objective`` (e.g. ``val_accuracy``),
    ``direction`` (``maximize`` or ``minimize``), ``budget`` (number of trials),
    ``fidelity`` (training epochs), ``seed``, ``config`` (JSON text of all other
    settings), ``created_at``, ``updated_at``.
``naslab_architectures``
    One row per distinct architecture of a space: ``id``, ``space``, ``space_key``,
    ``hash`` (64 hex digits, canonical: equal for isomorphic graphs), ``graph`` and
    ``decisions`` (JSON text, as first seen), ``params``, ``flops``
    (filled by the first completed evaluation), ``created_at``. Unique on
    ``(space_key, hash)``.
``naslab_trials``
    One row per evaluation in a study: ``id``, ``study_id``, ``number`` (0-based
    order within the study, unique per study), ``architecture_id``, ``decisions``
    (JSON text: the decisions this trial proposed; an isomorphic architecture
    proposed through other decisions shares the architecture row),
    ``fidelity``, ``state`` (``running``, ``complete``, ``stopped`` (stopped
    early by a multi-fidelity scheduler: its metrics are those of the epochs it
    reached, ``epochs_done``), ``failed`` or ``interrupted``), ``seed``,
    ``worker`` (host/pid), ``objective_value`` (the
    study's objective, copied from the final metrics), ``params``, ``flops``,
    ``latency_ms``, ``train_seconds``, ``epochs_done``, ``extra`` (JSON text),
    ``started_at``, ``finished_at``, ``error`` (text, for failed or interrupted
    trials), ``reused_from`` (id of the trial whose result was copied instead of
    training again, else NULL), ``driver`` (``host/pid/start`` of the search
    process that owns a running trial) and ``heartbeat_at`` (when that driver
    last said it is alive). A partial unique index allows at most one running
    or complete trial (trained or reused) of an architecture per study and
    fidelity: the claim that keeps concurrent drivers from training, or copying,
    the same architecture twice.
``naslab_metrics``
    Metric values: ``id``, ``trial_id``, ``name``, ``step``, ``value``. **Final
    metrics have ``step`` NULL**; per-epoch reports have ``step`` >= 1 (the
    epoch). A ``value`` of NULL stands for NaN (SQLite cannot store NaN).
``naslab_weights``
    Trained weights: ``trial_id`` (primary key), ``format`` (``safetensors``),
    ``data`` (the serialised state dict), ``sha256`` (64 hex digits of ``data``,
    checked whenever the weights are loaded or imported).
``naslab_proxies``
    Zero-cost proxies of an architecture on a task, computed once: ``id``,
    ``architecture_id``, ``task_key``, ``name`` (``synflow``, ``snip``, ...),
    ``batch_size`` and ``seed`` (of the minibatch and initialisation), ``value``
    (NULL for NaN), ``created_at``. Unique on ``(architecture_id, task_key, name,
    batch_size, seed)``.
``naslab_predictors``
    Fitted performance predictors, versioned by name: ``id``, ``name``,
    ``version`` (1, 2, ... per name), ``kind`` (``gnn``, ``tree``, ``proxy``),
    ``space``, ``space_key``, ``task_key``, ``target`` (the metric predicted),
    ``n_train``, ``params`` and ``summary`` (JSON text: settings, fit figures),
    ``data`` (the predictor as a safetensors file: arrays and a JSON header,
    loaded without running code), ``created_at``. Unique on ``(name, version)``.

``naslab_pareto_fronts``
    The Pareto front of each multi-objective study, refreshed after each run:
    ``study_id``, ``trial_id`` (primary key together), ``objectives`` (JSON text:
    the study's objectives, e.g. ``["val_accuracy:max", "latency_ms:min"]``),
    ``updated_at``.

Views (also described in :data:`VIEWS`; created if missing, in portable SQL):

``naslab_results``
    One row per trial, for analysis: ``study``, ``space``, ``space_key``,
    ``task_key``, ``searcher``, ``objective``, ``trial_id``, ``trial_number``,
    ``state``, ``arch_hash``, ``decisions`` (JSON), ``fidelity``, ``seed``,
    ``objective_value``, ``val_accuracy`` and ``test_accuracy`` (the final
    metrics, pivoted into columns), ``params``, ``flops``, ``latency_ms``,
    ``train_seconds``, ``epochs_done``, ``reused_from``, ``worker``, ``error``,
    ``started_at``, ``finished_at``.
``naslab_learning_curves``
    One row per per-epoch report: ``study``, ``trial_id``, ``trial_number``,
    ``arch_hash``, ``state``, ``metric``, ``step``, ``value``.
``naslab_final_metrics``
    One row per final metric of each trial (all metrics, not only the two that
    ``naslab_results`` pivots): ``study``, ``trial_id``, ``trial_number``,
    ``arch_hash``, ``state``, ``metric``, ``value``.
``naslab_best``
    The best architecture of each study: the ``naslab_results`` row of its best
    complete trial by the study's objective (direction-aware; ties go to the
    oldest trial), plus ``direction``. For a multi-objective study this
    is the best by its first objective; ``naslab_pareto`` holds its front.
``naslab_pareto``
    The rows of ``naslab_results`` on each study's stored Pareto front, with the
    front's ``objectives``.
``naslab_study_summary``
    One row per study: ``study``, ``space``, ``task_key``, ``searcher``,
    ``objective``, ``direction``, ``budget``, ``fidelity``, ``seed``,
    ``n_trials``, ``n_complete``, ``n_stopped``, ``n_failed``, ``n_running``,
    ``n_interrupted``, ``best_objective`` (over complete trials,
    direction-aware), ``created_at``, ``updated_at``.

Example: ``SELECT trial_number, val_accuracy, params FROM naslab_results WHERE
study = 'demo' AND state = 'complete' ORDER BY val_accuracy DESC LIMIT 5``.

Timestamps are UTC (SQLite stores them as ``YYYY-MM-DD HH:MM:SS.ffffff`` text).

The schema is versioned with Alembic migrations (:mod:`naslab.db.migrate`), whose
version table is ``naslab_alembic_version`` (Optuna's is ``alembic_version``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

#: Trial states, in the order a trial may pass through them.
TRIAL_STATES = ("running", "complete", "stopped", "failed", "interrupted")
#: Optimisation directions.
DIRECTIONS = ("maximize", "minimize")

_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (UTC).

    SQLite has no time zones: values are stored as naive UTC there.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    """Declarative base of the naslab tables."""

    metadata = MetaData(naming_convention=_NAMING)


#: Name and condition of the partial unique index that makes a trial's claim on
#: (study, architecture, fidelity) exclusive.
ONE_EVALUATION_INDEX = "uq_naslab_trials_one_evaluation"
ONE_EVALUATION_WHERE = "state IN ('running', 'complete')"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class StudyRow(Base):
    """A row of ``naslab_studies``."""

    __tablename__ = "naslab_studies"
    __table_args__ = (CheckConstraint(_in("direction", DIRECTIONS), name="direction"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    space: Mapped[str] = mapped_column(String(255))
    space_key: Mapped[str] = mapped_column(String(255))
    space_config: Mapped[str] = mapped_column(Text)
    task_key: Mapped[str] = mapped_column(Text)
    searcher: Mapped[str] = mapped_column(String(255))
    objective: Mapped[str] = mapped_column(String(100))
    direction: Mapped[str] = mapped_column(String(8))
    budget: Mapped[int] = mapped_column(Integer)
    fidelity: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    config: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ArchitectureRow(Base):
    """A row of ``naslab_architectures``."""

    __tablename__ = "naslab_architectures"
    __table_args__ = (UniqueConstraint("space_key", "hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space: Mapped[str] = mapped_column(String(255))
    space_key: Mapped[str] = mapped_column(String(255))
    hash: Mapped[str] = mapped_column(String(64))
    graph: Mapped[str] = mapped_column(Text)
    decisions: Mapped[str] = mapped_column(Text)
    params: Mapped[int | None] = mapped_column(BigInteger)
    flops: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TrialRow(Base):
    """A row of ``naslab_trials``."""

    __tablename__ = "naslab_trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number"),
        CheckConstraint(_in("state", TRIAL_STATES), name="state"),
        # top-k queries of a study (ORDER BY objective_value) read the index only
        Index(None, "study_id", "state", "objective_value"),
        Index(None, "architecture_id"),
        # The claim: at most one running or complete trial of an architecture per
        # study and fidelity, trained or reused. Concurrent drivers that propose the
        # same architecture can neither both train it nor both copy a result.
        Index(
            ONE_EVALUATION_INDEX,
            "study_id",
            "architecture_id",
            "fidelity",
            unique=True,
            sqlite_where=text(ONE_EVALUATION_WHERE),
            postgresql_where=text(ONE_EVALUATION_WHERE),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("naslab_studies.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    architecture_id: Mapped[int] = mapped_column(ForeignKey("naslab_architectures.id"))
    decisions: Mapped[str] = mapped_column(Text)
    fidelity: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    seed: Mapped[int] = mapped_column(BigInteger)
    worker: Mapped[str | None] = mapped_column(String(255))
    objective_value: Mapped[float | None] = mapped_column(Float)
    params: Mapped[int | None] = mapped_column(BigInteger)
    flops: Mapped[int | None] = mapped_column(BigInteger)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    train_seconds: Mapped[float | None] = mapped_column(Float)
    epochs_done: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    reused_from: Mapped[int | None] = mapped_column(
        ForeignKey("naslab_trials.id", ondelete="SET NULL")
    )
    driver: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MetricRow(Base):
    """A row of ``naslab_metrics`` (``step`` NULL: a final metric)."""

    __tablename__ = "naslab_metrics"
    __table_args__ = (Index(None, "trial_id", "name", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("naslab_trials.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    step: Mapped[int | None] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Float)


class WeightsRow(Base):
    """A row of ``naslab_weights``."""

    __tablename__ = "naslab_weights"

    trial_id: Mapped[int] = mapped_column(
        ForeignKey("naslab_trials.id", ondelete="CASCADE"), primary_key=True
    )
    format: Mapped[str] = mapped_column(String(32))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))


class ProxyRow(Base):
    """A row of ``naslab_proxies``: one zero-cost proxy value."""

    __tablename__ = "naslab_proxies"
    __table_args__ = (
        UniqueConstraint("architecture_id", "task_key", "name", "batch_size", "seed"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    architecture_id: Mapped[int] = mapped_column(
        ForeignKey("naslab_architectures.id", ondelete="CASCADE")
    )
    task_key: Mapped[str] = mapped_column(String(1000))
    name: Mapped[str] = mapped_column(String(64))
    batch_size: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PredictorRow(Base):
    """A row of ``naslab_predictors``: one saved version of a fitted predictor."""

    __tablename__ = "naslab_predictors"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    space: Mapped[str | None] = mapped_column(String(255))
    space_key: Mapped[str | None] = mapped_column(String(255))
    task_key: Mapped[str | None] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(String(100))
    n_train: Mapped[int] = mapped_column(Integer)
    params: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ParetoRow(Base):
    """A row of ``naslab_pareto_fronts``: one trial on a study's Pareto front."""

    __tablename__ = "naslab_pareto_fronts"

    study_id: Mapped[int] = mapped_column(
        ForeignKey("naslab_studies.id", ondelete="CASCADE"), primary_key=True
    )
    trial_id: Mapped[int] = mapped_column(
        ForeignKey("naslab_trials.id", ondelete="CASCADE"), primary_key=True
    )
    objectives: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


def _final_metric(name: str) -> str:
    return (
        "(SELECT MAX(m.value) FROM naslab_metrics m"
        f" WHERE m.trial_id = t.id AND m.step IS NULL AND m.name = '{name}')"
    )


#: SQL of each view (the part after ``CREATE VIEW name AS``), in portable SQL.
VIEW_SQL: dict[str, str] = {
    "naslab_results": f"""
SELECT s.name AS study, s.space AS space, s.space_key AS space_key,
       s.task_key AS task_key, s.searcher AS searcher, s.objective AS objective,
       t.id AS trial_id, t.number AS trial_number, t.state AS state,
       a.hash AS arch_hash, t.decisions AS decisions, t.fidelity AS fidelity,
       t.seed AS seed, t.objective_value AS objective_value,
       {_final_metric("val_accuracy")} AS val_accuracy,
       {_final_metric("test_accuracy")} AS test_accuracy,
       t.params AS params, t.flops AS flops, t.latency_ms AS latency_ms,
       t.train_seconds AS train_seconds, t.epochs_done AS epochs_done,
       t.reused_from AS reused_from, t.worker AS worker, t.error AS error,
       t.started_at AS started_at, t.finished_at AS finished_at
FROM naslab_trials t
JOIN naslab_studies s ON s.id = t.study_id
JOIN naslab_architectures a ON a.id = t.architecture_id
""",
    "naslab_learning_curves": """
SELECT s.name AS study, t.id AS trial_id, t.number AS trial_number,
       a.hash AS arch_hash, t.state AS state, m.name AS metric, m.step AS step,
       m.value AS value
FROM naslab_metrics m
JOIN naslab_trials t ON t.id = m.trial_id
JOIN naslab_studies s ON s.id = t.study_id
JOIN naslab_architectures a ON a.id = t.architecture_id
WHERE m.step IS NOT NULL
""",
    "naslab_final_metrics": """
SELECT s.name AS study, t.id AS trial_id, t.number AS trial_number,
       a.hash AS arch_hash, t.state AS state, m.name AS metric, m.value AS value
FROM naslab_metrics m
JOIN naslab_trials t ON t.id = m.trial_id
JOIN naslab_studies s ON s.id = t.study_id
JOIN naslab_architectures a ON a.id = t.architecture_id
WHERE m.step IS NULL
""",
    "naslab_best": """
SELECT r.*, b.direction AS direction
FROM (
    SELECT s.direction AS direction,
           CASE WHEN s.direction = 'minimize'
                THEN (SELECT t.id FROM naslab_trials t
                      WHERE t.study_id = s.id AND t.state = 'complete'
                            AND t.objective_value IS NOT NULL
                      ORDER BY t.objective_value ASC, t.id LIMIT 1)
                ELSE (SELECT t.id FROM naslab_trials t
                      WHERE t.study_id = s.id AND t.state = 'complete'
                            AND t.objective_value IS NOT NULL
                      ORDER BY t.objective_value DESC, t.id LIMIT 1)
           END AS best_id
    FROM naslab_studies s
) b
JOIN naslab_results r ON r.trial_id = b.best_id
""",
    "naslab_pareto": """
SELECT r.*, p.objectives AS objectives
FROM naslab_results r
JOIN naslab_pareto_fronts p ON p.trial_id = r.trial_id
""",
    "naslab_study_summary": """
SELECT s.name AS study, s.space AS space, s.task_key AS task_key,
       s.searcher AS searcher, s.objective AS objective, s.direction AS direction,
       s.budget AS budget, s.fidelity AS fidelity, s.seed AS seed,
       COUNT(t.id) AS n_trials,
       COALESCE(SUM(CASE WHEN t.state = 'complete' THEN 1 ELSE 0 END), 0) AS n_complete,
       COALESCE(SUM(CASE WHEN t.state = 'stopped' THEN 1 ELSE 0 END), 0) AS n_stopped,
       COALESCE(SUM(CASE WHEN t.state = 'failed' THEN 1 ELSE 0 END), 0) AS n_failed,
       COALESCE(SUM(CASE WHEN t.state = 'running' THEN 1 ELSE 0 END), 0) AS n_running,
       COALESCE(SUM(CASE WHEN t.state = 'interrupted' THEN 1 ELSE 0 END), 0)
           AS n_interrupted,
       CASE WHEN s.direction = 'minimize'
            THEN MIN(CASE WHEN t.state = 'complete' THEN t.objective_value END)
            ELSE MAX(CASE WHEN t.state = 'complete' THEN t.objective_value END)
       END AS best_objective,
       s.created_at AS created_at, s.updated_at AS updated_at
FROM naslab_studies s
LEFT JOIN naslab_trials t ON t.study_id = s.id
GROUP BY s.id, s.name, s.space, s.task_key, s.searcher, s.objective, s.direction,
         s.budget, s.fidelity, s.seed, s.created_at, s.updated_at
""",
}

#: The views, by name, with what each holds.
VIEWS: dict[str, str] = {
    "naslab_results": (
        "one row per trial: study, space, space_key, task_key, searcher, objective, "
        "trial_id, trial_number, state, arch_hash, decisions (JSON), fidelity, seed, "
        "objective_value, val_accuracy and test_accuracy (final metrics, pivoted), "
        "params, flops, latency_ms, train_seconds, epochs_done, reused_from, worker, "
        "error, started_at, finished_at"
    ),
    "naslab_learning_curves": (
        "one row per per-epoch metric report: study, trial_id, trial_number, "
        "arch_hash, state, metric, step (epoch, from 1), value"
    ),
    "naslab_final_metrics": (
        "one row per final metric of a trial (every metric, not only the pivoted "
        "ones): study, trial_id, trial_number, arch_hash, state, metric, value"
    ),
    "naslab_best": (
        "one row per study with a complete trial: the naslab_results row of its best "
        "trial by the study's objective (direction-aware; ties to the oldest "
        "trial), plus direction"
    ),
    "naslab_pareto": (
        "the naslab_results rows on each multi-objective study's stored Pareto front, "
        "plus objectives (JSON list of 'metric:max|min')"
    ),
    "naslab_study_summary": (
        "one row per study: study, space, task_key, searcher, objective, direction, "
        "budget, fidelity, seed, n_trials, n_complete, n_stopped, n_failed, n_running, "
        "n_interrupted, best_objective (best complete trial, direction-aware), "
        "created_at, updated_at"
    ),
}

#: The tables, by name, with what each holds (the module docstring has every column).
TABLES: dict[str, str] = {
    "naslab_studies": (
        "one row per study: its space, task, searcher, objective and direction, budget, "
        "fidelity (epochs), seed and settings"
    ),
    "naslab_architectures": (
        "one row per distinct architecture of a space (canonical hash, graph and "
        "decisions as JSON, params, flops); unique on (space_key, hash)"
    ),
    "naslab_trials": (
        "one row per evaluation in a study: number, architecture, state (running, "
        "complete, stopped, failed, interrupted), objective_value, params, flops, "
        "latency_ms, reused_from, the driver that owns it and its heartbeat"
    ),
    "naslab_metrics": (
        "metric values of trials: final metrics have step NULL, per-epoch reports "
        "step >= 1; value NULL stands for NaN"
    ),
    "naslab_weights": "trained weights of a trial (safetensors bytes and their SHA-256)",
    "naslab_proxies": "zero-cost proxy values of an architecture on a task, computed once",
    "naslab_predictors": "fitted performance predictors, versioned by name",
    "naslab_pareto_fronts": "the trials on each multi-objective study's Pareto front",
}
