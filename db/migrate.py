"""Schema versions of the store, managed with Alembic migrations.

The migrations live in ``naslab/db/migrations/versions`` (``0001`` is the first
released schema). Alembic records the revision of a database in the table
``naslab_alembic_version`` (not ``alembic_version``, which Optuna uses in a
shared database).

:class:`~naslab.db.store.Store` applies pending migrations when it opens a
database (:func:`upgrade_in_transaction`); ``naslab db upgrade`` does the same
explicitly and says what it did. A new, empty database gets the current tables and
views at once and is stamped with the newest revision; a database that a naslab
from before migrations created (naslab tables, no version table) is completed to
revision ``0001`` and stamped before the later migrations run. A database stamped
with a revision this naslab does not know (made by a newer naslab) is refused
unchanged.

Upgrades run inside the caller's transaction, under a lock (``BEGIN IMMEDIATE`` on
SQLite, an advisory transaction lock on PostgreSQL), so that several processes
opening the same database at once upgrade it exactly once; on both databases DDL
is transactional, so a failed upgrade leaves the database as it was.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

from naslab.core.errors import StorageError
from naslab.db.engine import Database
from naslab.db.ownership import check_ownership

#: The Alembic version table of the naslab schema.
VERSION_TABLE = "naslab_alembic_version"
#: The revision of the first released schema (databases from before migrations).
BASE_REVISION = "0001"
#: The newest revision (checked against the migration scripts by the tests; kept
#: here so that opening a current database does not import Alembic).
HEAD_REVISION = "0003"
#: The key of the PostgreSQL advisory lock held while the schema is checked or upgraded.
PG_LOCK_KEY = 0x6E61736C6162  # "naslab"
_SCRIPTS = Path(__file__).resolve().parent / "migrations"


@functools.lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this naslab knows."""
    return HEAD_REVISION


def revisions() -> list[str]:
    """Every known revision, oldest first."""
    return [r.revision for r in reversed(list(_scripts().walk_revisions()))]


def current_revision(conn: Connection) -> str | None:
    """The revision a database is stamped with (None: not stamped)."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def lock(conn: Connection) -> None:
    """Take the schema lock inside ``conn``'s transaction (PostgreSQL: an advisory
    transaction lock; SQLite: the caller began the transaction IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")


def upgrade_in_transaction(
    conn: Connection, revision: str = "head", *, check_old: Any = None
) -> tuple[str | None, str]:
    """Bring the schema to ``revision`` inside ``conn``'s open transaction (the caller
    holds the lock and commits). Returns ``(revision before, revision after)``;
    ``None`` before means a new database; a database from before migrations
    counts as revision ``0001``.

    ``check_old(inspector)`` is called on an unstamped database that already has
    naslab tables, and may refuse it by raising.
    """
    from alembic.runtime.migration import MigrationContext

    from naslab.db.models import VIEW_SQL, Base

    found = current_revision(conn)
    known = revisions()
    if found is not None and found not in known:
        raise StorageError(
            f"the database's naslab schema is at revision {found!r}, which this naslab does "
            f"not know (it knows {', '.join(known)}): a newer naslab made it; upgrade naslab"
        )
    target = head_revision() if revision == "head" else revision
    if target not in known:
        raise StorageError(f"unknown schema revision {revision!r}; known: {', '.join(known)}")
    if found is not None and known.index(found) > known.index(target):
        raise StorageError(
            f"the database is at revision {found}, newer than {target}; naslab does not "
            "downgrade automatically"
        )
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    if found is None:
        tables = [t for t in inspect(conn).get_table_names() if t.startswith("naslab_")
                  and t != VERSION_TABLE]
        if not tables and target == head_revision():
            # a new database: today's tables and views at once, stamped as the head
            Base.metadata.create_all(conn)
            for name, sql in VIEW_SQL.items():
                conn.exec_driver_sql(f"CREATE VIEW {name} AS {sql}")
            context.stamp(_scripts(), target)
            return None, target
        if tables:
            # made before migrations existed: complete it to the first revision
            if check_old is not None:
                check_old(inspect(conn))
            base = _scripts().get_revision(BASE_REVISION).module
            base.schema().create_all(conn, checkfirst=True)
            views = set(inspect(conn).get_view_names())
            for name, sql in base.VIEWS.items():
                if name not in views:
                    conn.exec_driver_sql(f"CREATE VIEW {name} AS {sql}")
            context.stamp(_scripts(), BASE_REVISION)
            found = found_now = BASE_REVISION
        else:  # empty, upgraded step by step to an older revision
            found_now = None
    else:
        found_now = found
    if found_now == target:
        return found, target
    from alembic import command

    command.upgrade(_config(conn), target)
    return found, target


def _check_schema_current(inspector: Any) -> None:
    """Refuse a database whose tables a naslab from before the first released schema
    created without the ``stopped`` trial state (no migration leads from there)."""
    if "naslab_trials" not in inspector.get_table_names():
        return
    checks = inspector.get_check_constraints("naslab_trials")
    texts = " ".join(str(c.get("sqltext", "")) for c in checks)
    if checks and "stopped" not in texts:
        raise StorageError(
            "this database was created by an older naslab whose naslab_trials table "
            "does not accept the 'stopped' state of early-stopped trials; use a new "
            "database file (or copy the old one's rows into one made by this version)"
        )


def _base_columns() -> dict[str, set[str]]:
    """``{table: columns}`` of the naslab tables as revision 0001 made them."""
    base = _scripts().get_revision(BASE_REVISION).module.schema()
    return {name: {c.name for c in table.columns} for name, table in base.tables.items()}


def open_schema(db: Database, *, upgrade: bool = True, init: bool = False
                ) -> tuple[str, str | None]:
    """Check the schema revision of the store's database and apply pending migrations
    (in one transaction, under the schema lock). Returns ``(revision, upgraded
    from)``, the latter None when the database was new or already current.

    A database that holds tables but no naslab schema is refused unchanged unless
    ``init`` (see :mod:`naslab.db.ownership`).

    Raises:
        StorageError: the database is behind and ``upgrade`` is False, or it is from
            a newer naslab, or it holds tables naslab did not create, or it cannot be
            read or changed.
    """
    check_ownership(db, init=init, version_table=VERSION_TABLE, base_columns=_base_columns)
    deadline = time.monotonic() + db.busy_ms / 1000
    while True:
        try:
            return _open_once(db, upgrade=upgrade)
        except SQLAlchemyError as exc:
            # another process may have created the same objects meanwhile, or holds
            # the write lock (then it is usually creating the schema: read again)
            retry = "already exists" in str(exc) or _locked(exc)
            if not retry or time.monotonic() >= deadline:
                raise db.error("open the store", exc) from exc
            time.sleep(0.05)


#: How long one try at the schema lock waits on SQLite before the revision is read
#: again: a busy search in another process takes the write lock again and again, and
#: SQLite's busy handler, which sleeps between its tries, could starve behind it
#: until the busy timeout, although that process created the schema long before.
SCHEMA_LOCK_SLICE_MS = 500


def _locked(exc: SQLAlchemyError) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (busy)."""
    message = str(getattr(exc, "orig", exc)).lower()
    return "locked" in message or "busy" in message


def _busy_timeout(conn: Connection, ms: int) -> None:
    """Set an SQLite connection's busy timeout through the driver, outside any
    transaction (a statement through SQLAlchemy would begin one)."""
    conn.connection.driver_connection.execute(f"PRAGMA busy_timeout = {int(ms)}")


def _open_once(db: Database, *, upgrade: bool) -> tuple[str, str | None]:
    """One try of :func:`open_schema` after the ownership check: read the revision,
    and if it is not the newest, upgrade under the schema lock."""
    head = head_revision()
    with db.connect() as conn:
        found = current_revision(conn)
        conn.rollback()
        if found == head:
            return head, None
        if not upgrade:
            raise StorageError(
                f"the naslab schema of {db.url} is at revision {found or 'none'}, "
                f"not {head}; run `naslab db upgrade` (or open the store with "
                "upgrade=True)")
        if db.is_sqlite:
            _busy_timeout(conn, min(db.busy_ms, SCHEMA_LOCK_SLICE_MS))
            conn.execution_options(naslab_begin="IMMEDIATE")
        try:
            with conn.begin():
                lock(conn)
                before, after = upgrade_in_transaction(conn, check_old=_check_schema_current)
        finally:
            if db.is_sqlite:
                _busy_timeout(conn, db.busy_ms)
    return after, (before if before != after else None)


__all__ = [
    "BASE_REVISION",
    "PG_LOCK_KEY",
    "VERSION_TABLE",
    "current_revision",
    "head_revision",
    "lock",
    "open_schema",
    "revisions",
    "upgrade_in_transaction",
]
