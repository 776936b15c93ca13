"""Whose database it is: the check made before naslab changes anything in one.

A store opens a database that is new (no tables), or naslab's (its version table
``naslab_alembic_version`` is there, or, from before migrations, naslab's tables with
the columns naslab gave them), possibly shared with Optuna (Optuna's own tables, as
naslab's ``optuna-*`` searchers create them beside naslab's). Any other database
that holds tables is refused, unchanged (no table added, and on SQLite its journal
mode left as it is: the check reads the file through a plain connection, before the
store's first connection switches it to WAL), unless the caller opts in with
``init`` (``naslab db upgrade --init``, ``Store(url, init=True)``): then naslab's
tables are added beside the others. A table named like one of naslab's that naslab
did not make is refused even then, naming it: naslab never stamps a revision over
tables it did not create.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from naslab.core.errors import StorageError
from naslab.db.engine import Database

__all__ = ["OPTUNA_TABLES", "check_ownership", "database_tables"]

#: The tables of Optuna's RDB storage (its version tables included).
OPTUNA_TABLES = frozenset({
    "studies", "study_directions", "study_user_attributes", "study_system_attributes",
    "trials", "trial_params", "trial_values", "trial_intermediate_values",
    "trial_user_attributes", "trial_system_attributes", "trial_heartbeats",
    "version_info", "alembic_version",
})


def database_tables(db: Database) -> dict[str, set[str]] | None:
    """``{table: column names}`` of every table of ``db`` (views left out), read
    without changing anything; None for a database that does not exist yet (an
    SQLite file not there, or empty, or in memory)."""
    if db.is_sqlite:
        path = db.sqlite_path
        if path is None or not path.exists() or path.stat().st_size == 0:
            return None
        try:
            conn = sqlite3.connect(str(path), isolation_level=None, timeout=db.busy_ms / 1000)
            try:
                names = [r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'")]
                return {n: {r[1] for r in conn.execute(
                    "SELECT * FROM pragma_table_info(?)", (n,))} for n in names}
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot use {db.url} as a store: {exc} (is it an SQLite "
                               "database?)") from exc
    try:
        with db.connect() as conn:
            inspector = inspect(conn)
            out = {n: {c["name"] for c in inspector.get_columns(n)}
                   for n in inspector.get_table_names()}
            conn.rollback()
            return out
    except SQLAlchemyError as exc:
        raise db.error("open the store", exc) from exc


def check_ownership(db: Database, *, init: bool, version_table: str,
                    base_columns: Callable[[], Mapping[str, set[str]]]) -> None:
    """Refuse ``db`` unless it is new, naslab's or shared with Optuna only (see the
    module docstring); with ``init``, one that holds other tables too.

    ``base_columns()`` gives ``{naslab table: its columns}`` as naslab made them
    before migrations (revision 0001), to recognise such a database.

    Raises:
        StorageError: naming the tables naslab did not create, and how to opt in.
    """
    tables = database_tables(db)
    if not tables or version_table in tables:
        return
    ours = {t for t in tables if t.startswith("naslab_")}
    if ours:
        base = base_columns()
        conflicts = sorted(t for t in ours if t in base and tables[t] != base[t])
        if conflicts:
            raise StorageError(
                f"{db.url} has table{'s' if len(conflicts) > 1 else ''} "
                f"{', '.join(conflicts)} that naslab did not create (other columns than "
                "naslab's) and no naslab schema version; naslab will not take it over: use "
                "another database, or rename or drop those tables")
        if ours <= set(base):  # naslab's, from before migrations: upgraded as before
            return
    foreign = sorted(set(tables) - OPTUNA_TABLES)
    if foreign and not init:
        shown = ", ".join(foreign[:10]) + (f" and {len(foreign) - 10} more"
                                           if len(foreign) > 10 else "")
        raise StorageError(
            f"{db.url} is not a naslab store: it holds tables naslab did not create "
            f"({shown}) and no naslab schema version ({version_table}); nothing was "
            "changed. To add naslab's tables beside them, run `naslab db upgrade --init "
            "--storage URL` once (in Python: Store(url, init=True)), or use another database")
