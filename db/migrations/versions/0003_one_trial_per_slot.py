"""One trial per architecture, study and fidelity, trained or reused; a SHA-256 of
every weights blob.

The claim index ``uq_naslab_trials_one_evaluation`` now covers reused copies too:
at most one running or complete trial of an architecture per study and fidelity.
Earlier databases may hold several (two drivers that copied the same result, or a
driver that copied its own study's result again). Of each such group the trial
that stays is the evaluation (``reused_from`` NULL) if the group has one, else the
oldest complete copy, else the oldest running trial; every other one becomes
``interrupted``, with ``error`` saying which trial it duplicates. Their rows,
metrics and ``reused_from`` stay (nothing is deleted), and, being interrupted,
they no longer count towards the study's budget.

``naslab_weights`` gets ``sha256`` (the hex digest of ``data``), filled for every
stored row, and NOT NULL from here on.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_INDEX = "uq_naslab_trials_one_evaluation"
_OLD_WHERE = "reused_from IS NULL AND state IN ('running', 'complete')"
_NEW_WHERE = "state IN ('running', 'complete')"
#: Weights rows read at a time while their digests are computed.
_CHUNK = 64


def _rank(row: sa.Row) -> tuple[int, int, int]:
    """Which trial of a duplicated slot stays: the evaluation, then complete copies,
    then running ones, oldest first."""
    return (0 if row.reused_from is None else 1, 0 if row.state == "complete" else 1, row.id)


def _duplicates(conn: sa.Connection) -> list[dict[str, object]]:
    """``{"tid": ..., "error": ...}`` of each trial that duplicates another's slot."""
    rows = conn.execute(sa.text(
        "SELECT id, study_id, architecture_id, fidelity, state, reused_from "
        "FROM naslab_trials WHERE state IN ('running', 'complete') "
        "ORDER BY study_id, architecture_id, fidelity, id")).all()
    groups: dict[tuple[int, int, int], list[sa.Row]] = {}
    for row in rows:
        groups.setdefault((row.study_id, row.architecture_id, row.fidelity), []).append(row)
    out: list[dict[str, object]] = []
    for group in groups.values():
        if len(group) < 2:
            continue
        keep, *others = sorted(group, key=_rank)
        for row in others:
            out.append({"tid": row.id, "error": (
                f"interrupted: a duplicate of trial id {keep.id} (the same architecture "
                "and fidelity in this study; schema upgrade 0003)")})
    return out


def _fill_digests(conn: sa.Connection) -> None:
    ids = [r[0] for r in conn.execute(sa.text(
        "SELECT trial_id FROM naslab_weights ORDER BY trial_id"))]
    select = sa.text("SELECT trial_id, data FROM naslab_weights "
                     "WHERE trial_id IN :ids").bindparams(sa.bindparam("ids", expanding=True))
    update = sa.text("UPDATE naslab_weights SET sha256 = :digest WHERE trial_id = :tid")
    for start in range(0, len(ids), _CHUNK):
        got = conn.execute(select, {"ids": ids[start:start + _CHUNK]}).all()
        conn.execute(update, [{"tid": tid, "digest": hashlib.sha256(bytes(data)).hexdigest()}
                              for tid, data in got])


def upgrade() -> None:
    conn = op.get_bind()
    fixes = _duplicates(conn)
    if fixes:
        conn.execute(sa.text(
            "UPDATE naslab_trials SET state = 'interrupted', error = :error, "
            "finished_at = COALESCE(finished_at, started_at) WHERE id = :tid"), fixes)
    op.drop_index(_INDEX, table_name="naslab_trials")
    op.create_index(_INDEX, "naslab_trials", ["study_id", "architecture_id", "fidelity"],
                    unique=True, sqlite_where=sa.text(_NEW_WHERE),
                    postgresql_where=sa.text(_NEW_WHERE))
    with op.batch_alter_table("naslab_weights") as batch:
        batch.add_column(sa.Column("sha256", sa.String(64), nullable=True))
    _fill_digests(conn)
    with op.batch_alter_table("naslab_weights") as batch:
        batch.alter_column("sha256", existing_type=sa.String(64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("naslab_weights") as batch:
        batch.drop_column("sha256")
    op.drop_index(_INDEX, table_name="naslab_trials")
    op.create_index(_INDEX, "naslab_trials", ["study_id", "architecture_id", "fidelity"],
                    unique=True, sqlite_where=sa.text(_OLD_WHERE),
                    postgresql_where=sa.text(_OLD_WHERE))
