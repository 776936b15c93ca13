"""The first released schema (naslab 0.1): studies, architectures, trials, metrics,
weights, proxies, predictors, Pareto fronts, and four views.

A database that an earlier naslab created without migrations has exactly this
schema; :func:`naslab.db.migrate.upgrade` stamps it with this revision first.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
_TS = sa.DateTime(timezone=True)


def _studies_table(md: sa.MetaData) -> sa.Table:
    """One row per study: its space, task, searcher, objective, budget and seed."""
    return sa.Table(
        "naslab_studies", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("space", sa.String(255), nullable=False),
        sa.Column("space_key", sa.String(255), nullable=False),
        sa.Column("space_config", sa.Text, nullable=False),
        sa.Column("task_key", sa.Text, nullable=False),
        sa.Column("searcher", sa.String(255), nullable=False),
        sa.Column("objective", sa.String(100), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("budget", sa.Integer, nullable=False),
        sa.Column("fidelity", sa.Integer, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.CheckConstraint("direction IN ('maximize', 'minimize')", name="direction"),
    )


def _architectures_table(md: sa.MetaData) -> sa.Table:
    """Every architecture ever evaluated, unique by (space_key, hash)."""
    return sa.Table(
        "naslab_architectures", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("space", sa.String(255), nullable=False),
        sa.Column("space_key", sa.String(255), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("graph", sa.Text, nullable=False),
        sa.Column("decisions", sa.Text, nullable=False),
        sa.Column("params", sa.BigInteger),
        sa.Column("flops", sa.BigInteger),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("space_key", "hash"),
    )


def _trials_table(md: sa.MetaData) -> sa.Table:
    """One evaluation of an architecture in a study, and its outcome."""
    return sa.Table(
        "naslab_trials", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("study_id", sa.Integer,
                  sa.ForeignKey("naslab_studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("architecture_id", sa.Integer, sa.ForeignKey("naslab_architectures.id"),
                  nullable=False),
        sa.Column("decisions", sa.Text, nullable=False),
        sa.Column("fidelity", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("worker", sa.String(255)),
        sa.Column("objective_value", sa.Float),
        sa.Column("params", sa.BigInteger),
        sa.Column("flops", sa.BigInteger),
        sa.Column("latency_ms", sa.Float),
        sa.Column("train_seconds", sa.Float),
        sa.Column("epochs_done", sa.Integer),
        sa.Column("extra", sa.Text),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS),
        sa.Column("error", sa.Text),
        sa.Column("reused_from", sa.Integer,
                  sa.ForeignKey("naslab_trials.id", ondelete="SET NULL")),
        sa.UniqueConstraint("study_id", "number"),
        sa.CheckConstraint(
            "state IN ('running', 'complete', 'stopped', 'failed', 'interrupted')",
            name="state"),
        sa.Index(None, "study_id", "state"),
        sa.Index(None, "architecture_id"),
    )


def _metrics_table(md: sa.MetaData) -> sa.Table:
    """Per-epoch (step) and final (step NULL) metric values of trials."""
    return sa.Table(
        "naslab_metrics", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("trial_id", sa.Integer,
                  sa.ForeignKey("naslab_trials.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("step", sa.Integer),
        sa.Column("value", sa.Float),
        sa.Index(None, "trial_id", "name", "step"),
    )


def _weights_table(md: sa.MetaData) -> sa.Table:
    """The trained weights of a trial."""
    return sa.Table(
        "naslab_weights", md,
        sa.Column("trial_id", sa.Integer,
                  sa.ForeignKey("naslab_trials.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def _proxies_table(md: sa.MetaData) -> sa.Table:
    """Zero-cost proxy scores of architectures on a task."""
    return sa.Table(
        "naslab_proxies", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("architecture_id", sa.Integer,
                  sa.ForeignKey("naslab_architectures.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("task_key", sa.String(1000), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("batch_size", sa.Integer, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("architecture_id", "task_key", "name", "batch_size", "seed"),
    )


def _predictors_table(md: sa.MetaData) -> sa.Table:
    """Fitted predictors, by name and version."""
    return sa.Table(
        "naslab_predictors", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("space", sa.String(255)),
        sa.Column("space_key", sa.String(255)),
        sa.Column("task_key", sa.Text),
        sa.Column("target", sa.String(100)),
        sa.Column("n_train", sa.Integer, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("name", "version"),
    )


def _pareto_fronts_table(md: sa.MetaData) -> sa.Table:
    """The trials on each study's Pareto front."""
    return sa.Table(
        "naslab_pareto_fronts", md,
        sa.Column("study_id", sa.Integer,
                  sa.ForeignKey("naslab_studies.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("trial_id", sa.Integer,
                  sa.ForeignKey("naslab_trials.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("objectives", sa.Text, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )


_TABLES = (
    _studies_table,
    _architectures_table,
    _trials_table,
    _metrics_table,
    _weights_table,
    _proxies_table,
    _predictors_table,
    _pareto_fronts_table,
)


def schema() -> sa.MetaData:
    """The tables as this revision made them (a frozen copy, not the live models)."""
    md = sa.MetaData(naming_convention=_NAMING)
    for add_table in _TABLES:
        add_table(md)
    return md


def _final_metric(name: str) -> str:
    return (
        "(SELECT MAX(m.value) FROM naslab_metrics m"
        f" WHERE m.trial_id = t.id AND m.step IS NULL AND m.name = '{name}')"
    )


VIEWS: dict[str, str] = {
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


def _create_views() -> None:
    """The views, in the order of :data:`VIEWS` (``naslab_pareto`` reads ``naslab_results``)."""
    for name, sql in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")


def _drop_views() -> None:
    """The views, dependants first."""
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")


def upgrade() -> None:
    schema().create_all(op.get_bind())
    _create_views()


def downgrade() -> None:
    _drop_views()
    schema().drop_all(op.get_bind())
