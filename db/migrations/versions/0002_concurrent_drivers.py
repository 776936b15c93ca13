"""Concurrent drivers and faster queries: the driver that owns a running trial and
its heartbeat, a partial unique index that lets one evaluation per architecture,
study and fidelity be running or complete, an index for top-k queries, and the
views ``naslab_final_metrics`` and ``naslab_best``.

Earlier databases may hold duplicate evaluations (two drivers on one study before
claims existed): the later copies become reused results of the first (their rows
and metrics stay), and duplicate running trials are marked interrupted.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_WHERE = "reused_from IS NULL AND state IN ('running', 'complete')"
_LIVE = "'running', 'complete'"
_DONE = "'complete'"

VIEWS: dict[str, str] = {
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
}


def _first(states: str) -> str:
    return (
        "(SELECT MIN(o.id) FROM naslab_trials o WHERE o.study_id = naslab_trials.study_id "
        "AND o.architecture_id = naslab_trials.architecture_id "
        "AND o.fidelity = naslab_trials.fidelity AND o.reused_from IS NULL "
        f"AND o.state IN ({states}))"
    )


def upgrade() -> None:
    with op.batch_alter_table("naslab_trials") as batch:
        batch.add_column(sa.Column("driver", sa.String(255), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    # duplicates from before claims: a running copy of a complete or earlier running
    # evaluation is interrupted; a later complete copy points at the first one
    op.execute(
        "UPDATE naslab_trials SET state = 'interrupted', error = 'interrupted: a duplicate "
        "of an evaluation already running or complete (schema upgrade 0002)' "
        f"WHERE state = 'running' AND reused_from IS NULL AND id > {_first(_LIVE)}"
    )
    op.execute(
        f"UPDATE naslab_trials SET reused_from = {_first(_DONE)} "
        f"WHERE state = 'complete' AND reused_from IS NULL AND id > {_first(_DONE)}"
    )
    op.execute(
        "UPDATE naslab_trials SET state = 'interrupted', error = 'interrupted: a duplicate "
        "of a complete evaluation (schema upgrade 0002)' "
        f"WHERE state = 'running' AND reused_from IS NULL AND {_first(_DONE)} IS NOT NULL"
    )
    op.drop_index("ix_naslab_trials_study_id_state", table_name="naslab_trials")
    op.create_index("ix_naslab_trials_study_id_state_objective_value", "naslab_trials",
                    ["study_id", "state", "objective_value"])
    op.create_index("uq_naslab_trials_one_evaluation", "naslab_trials",
                    ["study_id", "architecture_id", "fidelity"], unique=True,
                    sqlite_where=sa.text(_WHERE), postgresql_where=sa.text(_WHERE))
    for name, sql in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_index("uq_naslab_trials_one_evaluation", table_name="naslab_trials")
    op.drop_index("ix_naslab_trials_study_id_state_objective_value", table_name="naslab_trials")
    op.create_index("ix_naslab_trials_study_id_state", "naslab_trials", ["study_id", "state"])
    with op.batch_alter_table("naslab_trials") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("driver")
