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


#: The role the store tests connect to PostgreSQL as: the owner of the test
#: database's ``public`` schema, not a superuser (as an application should connect;
#: the SQL console refuses a superuser). The superuser of ``NASLAB_TEST_POSTGRES_URL``
#: only empties databases and creates this role.
OWNER_ROLE = "naslab_test_owner"


def as_owner(url: str) -> str:
    """``url`` (a superuser's), connected as :data:`OWNER_ROLE` instead, which is
    created if missing and given the database's ``public`` schema."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(  # another test process may create it at the same time
            f"DO $$ BEGIN CREATE ROLE {OWNER_ROLE} LOGIN NOSUPERUSER; EXCEPTION WHEN "
            "duplicate_object OR unique_violation THEN NULL; END $$")
        conn.exec_driver_sql(f"ALTER SCHEMA public OWNER TO {OWNER_ROLE}")
    engine.dispose()
    owner = sa.engine.make_url(url).set(username=OWNER_ROLE, password=None)
    return owner.render_as_string(hide_password=False)


def database_url(backend: str, tmp_path) -> str:
    """A fresh, empty database of ``backend`` for one test (PostgreSQL: connected as
    :data:`OWNER_ROLE`)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'naslab.db'}"
    url = require_postgres()
    empty_postgres(url)
    return as_owner(url)
