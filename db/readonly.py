"""Opening a store read-only (``Store(url, read_only=True)``, the dashboard's access):
the schema is never created or migrated, only checked to be at the newest revision."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from naslab.core.errors import StorageError
from naslab.db import migrate
from naslab.db.engine import Database

__all__ = ["check_at_head"]


def check_at_head(db: Database) -> str:
    """The schema revision of ``db``, which must be the newest this naslab knows.

    Raises:
        StorageError: the database holds no naslab schema, or one at another revision
            (``naslab db upgrade`` brings an older one to the newest), or it cannot be read.
    """
    try:
        with db.engine.connect() as conn:
            revision = migrate.current_revision(conn)
            conn.rollback()
    except SQLAlchemyError as exc:
        raise db.error("read the schema revision", exc) from exc
    head = migrate.head_revision()
    if revision is None:
        raise StorageError(f"{db.url} holds no naslab store (no schema revision); a "
                           "read-only store is never created: run a search or "
                           "naslab db upgrade first")
    if revision != head:
        raise StorageError(
            f"the store {db.url} is at schema revision {revision}, not {head}, the newest "
            "this naslab knows; a read-only store is never migrated: run naslab db upgrade "
            "(or use the naslab that wrote it)")
    return revision
