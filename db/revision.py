"""The schema revision of a database, read without writing anything
(``naslab db version``): an SQLite file is opened read-only (``mode=ro``, and
``immutable=1`` when even that needs a write, e.g. a WAL database on a read-only
mount); PostgreSQL sessions are read-only."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from naslab.core.errors import ConfigError, StorageError
from naslab.db import migrate
from naslab.db.engine import parse_url, sqlite_readonly, storage_url

__all__ = ["read_revision"]


def _engine(storage: str | None) -> tuple[Engine, str]:
    url, path = parse_url(storage_url(storage))
    shown = url.render_as_string(hide_password=True)
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"there is no SQLite database at {str(path)!r}")
        return create_engine("sqlite://", creator=lambda: sqlite_readonly(path),
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
