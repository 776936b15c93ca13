"""Alembic environment of the naslab schema.

naslab runs it from :func:`naslab.db.migrate.upgrade` with an open connection in
``config.attributes["connection"]`` (inside the caller's transaction). Run by the
``alembic`` command instead, it connects to ``sqlalchemy.url`` (or
``$NASLAB_STORAGE``) itself.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from naslab.db.migrate import VERSION_TABLE
from naslab.db.models import Base

config = context.config


def _run(connection) -> None:  # noqa: ANN001 - an SQLAlchemy Connection
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("NASLAB_STORAGE")
    if not url:
        raise SystemExit("set sqlalchemy.url or NASLAB_STORAGE to the database to migrate")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    engine.dispose()
