"""The schema revision of a database, read without writing anything
(``naslab db version``): an SQLite file is opened read-only (``mode=ro``, and
``immutable=1`` when even that needs a write, e.g. a WAL database on a read-only
mount); PostgreSQL sessions are read-only."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from naslab.core.errors import ConfigError, StorageError
from naslab.db import migrate
from naslab.db.engine import parse_url, storage_url

__all__ = ["read_revision"]


def _sqlite_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to the SQLite file ``path``."""
    base = f"file:{quote(str(path))}?mode=ro"
    if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        # a read-only file or place: nothing can change it, and even a read-only
        # connection would try to create the WAL index next to it
        return sqlite3.connect(base + "&immutable=1", uri=True)
    conn = sqlite3.connect(base, uri=True)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        return conn
    except sqlite3.OperationalError:  # a read-only place where the WAL index cannot be made
        conn.close()
    return sqlite3.connect(base + "&immutable=1", uri=True)


def _engine(storage: str | None) -> tuple[Engine, str]:
    url, path = parse_url(storage_url(storage))
    shown = url.render_as_string(hide_password=True)
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"there is no SQLite database at {str(path)!r}")
        return create_engine("sqlite://", creator=lambda: _sqlite_readonly(path),
                             poolclass=NullPool), shown
    if url.get_backend_name() == "postgresql":
        return create_engine(url, poolclass=NullPool, connect_args={
            "options": "-c default_transaction_read_only=on"}), shown
    return create_engine(url, poolclass=NullPool), shown


def read_revision(storage: str | None = None) -> str | None:
    """The revision the database at ``storage`` (a URL; default as for the store) is
    stamped with, None if it is not stamped. Writes nothing, creates no file.

    Raises:
        ConfigError: a malformed URL, or no SQLite file at the path.
        StorageError: the database could not be read.
    """
    try:
        engine, shown = _engine(storage)
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot open {storage_url(storage)!r}: {exc}") from exc
    try:
        with engine.connect() as conn:
            return migrate.current_revision(conn)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise StorageError(f"cannot read the schema revision of {shown}: {cause}") from exc
    finally:
        engine.dispose()
