"""The databases the store tests run on: a fresh SQLite file always, and a real
PostgreSQL server when ``NASLAB_TEST_POSTGRES_URL`` names a database that the tests
may empty (``.ci/run`` starts a server and sets it). Without it, the PostgreSQL
cases are skipped with a visible reason, except under CI (``CI`` set), where a
missing server is an error.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("NASLAB_TEST_POSTGRES_URL")
#: Every backend a contract test runs on.
BACKENDS = ("sqlite", "postgresql")
PG_SKIP_REASON = (
    "PostgreSQL store tests need NASLAB_TEST_POSTGRES_URL, a database the tests may "
    "empty (e.g. postgresql+psycopg://user@localhost/naslab_test); .ci/run starts a "
    "server and sets it"
)


def require_postgres() -> str:
    """The PostgreSQL test URL; skips the test (fails it under CI) without one."""
    if PG_URL:
        return PG_URL
    if os.environ.get("CI"):
        pytest.fail("CI must run the PostgreSQL tests, but NASLAB_TEST_POSTGRES_URL is not set")
    pytest.skip(PG_SKIP_REASON)


def empty_postgres(url: str) -> None:
    """Drop everything in the database's public schema (naslab's and Optuna's tables)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


def other_postgres(url: str, suffix: str) -> str:
    """A second, empty database on the same server (``<name>_<suffix>``), created if
    missing; for tests that copy between two databases."""
    base = sa.engine.make_url(url)
    name = f"{base.database}_{suffix}"
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        exists = conn.exec_driver_sql(
            "SELECT 1 FROM pg_database WHERE datname = %(n)s", {"n": name}).first()
        if exists is None:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    other = base.set(database=name).render_as_string(hide_password=False)
    empty_postgres(other)
    return other


def database_url(backend: str, tmp_path) -> str:
    """A fresh, empty database of ``backend`` for one test."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'naslab.db'}"
    url = require_postgres()
    empty_postgres(url)
    return url
