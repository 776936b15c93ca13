"""The SQL console on PostgreSQL is not an open door (issue 14, item 2).

Against the real server (skipped without ``NASLAB_TEST_POSTGRES_URL``): connected as
a superuser the console refuses, with a message that says how to set up and use a
reader role; ``naslab db grant-reader`` makes that role; connected as it, the
statements that escaped a READ ONLY transaction (run a program, write and read
server files, end another session, undo the read-only setting) fail or change
nothing, ordinary SELECTs on naslab's tables and views work, and nothing can be
written. Both through the Python API (``store.sql``) and the CLI.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from naslab.core.errors import ConfigError, QueryError
from naslab.db import Store
from naslab.db.models import TABLES, VIEWS
from naslab.db.reader_role import grant_reader
from naslab.testing.stores import new_study, run_trial, toy_arch
from tests.cli_helpers import one_line_error, run_main
from tests.databases import other_postgres, require_postgres

ROLE = "naslab_reader_adv"
WRITES = [
    "INSERT INTO naslab_studies (name) VALUES ('evil')",
    "UPDATE naslab_trials SET state = 'failed'",
    "DELETE FROM naslab_trials",
    "CREATE TABLE evil (x INT)",
]


def sql_engine(url: str, **kw) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool, **kw)


def run_admin(url: str, *statements: str) -> None:
    engine = sql_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


def drop_role(admin: str) -> None:
    run_admin(admin, f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') "
              f"THEN EXECUTE 'DROP OWNED BY {ROLE}'; EXECUTE 'DROP ROLE {ROLE}'; END IF; END $$")


@pytest.fixture
def admin():
    """A superuser's URL to a private database holding one study with one trial."""
    url = other_postgres(require_postgres(), "adv_sql")
    run_admin(url, "DROP SCHEMA IF EXISTS admin_only CASCADE", "DROP EXTENSION IF EXISTS dblink")
    drop_role(url)
    with Store(url) as store:
        run_trial(store, new_study(store), toy_arch(), 0.5)
    yield url
    run_admin(url, "DROP SCHEMA IF EXISTS admin_only CASCADE", "DROP EXTENSION IF EXISTS dblink")
    drop_role(url)


@pytest.fixture
def reader(admin) -> str:
    """The reader role's URL (made by the Python API)."""
    with Store(admin) as store:
        return grant_reader(store.database, ROLE, "s3cret'pw").url


@pytest.fixture
def victim(admin):
    """Another session (the store owner's): (its pid, a check that it is alive)."""
    engine = sql_engine(admin)
    conn = engine.connect()
    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    conn.rollback()

    def alive() -> bool:
        try:
            ok = conn.exec_driver_sql("SELECT 1").scalar_one() == 1
            conn.rollback()
            return ok
        except sa.exc.DBAPIError:
            return False

    yield pid, alive
    conn.close()
    engine.dispose()


def escapes(pid: int) -> tuple[dict[str, str], list[Path]]:
    """The five statements that escaped a READ ONLY transaction, and the files they
    would make."""
    tag = uuid.uuid4().hex
    pwned, written = Path(f"/tmp/naslab-pwned-{tag}"), Path(f"/tmp/naslab-written-{tag}")
    return {
        "program": f"COPY (SELECT 1) TO PROGRAM 'touch {pwned}'",
        "write file": f"COPY (SELECT 1) TO '{written}'",
        "read file": "SELECT pg_read_file('/etc/passwd')",
        "end session": f"SELECT pg_terminate_backend({pid})",
        "settings": "SELECT set_config('default_transaction_read_only', 'off', false)",
    }, [pwned, written]


def data(url: str) -> list:
    engine = sql_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for t in ("naslab_studies", "naslab_trials")
                for r in conn.exec_driver_sql(f"SELECT * FROM {t} ORDER BY id")]
    engine.dispose()
    return rows


def test_postgresql_console_refuses_a_superuser(admin, victim, monkeypatch, capsys):
    pid, alive = victim
    statements, files = escapes(pid)
    with Store(admin) as store:
        for statement in [*statements.values(), "SELECT 1"]:
            with pytest.raises(QueryError) as err:
                store.sql.query(statement)
            message = str(err.value)
            assert "'naslab'" in message and "superuser" in message
            assert "naslab db grant-reader" in message and "NASLAB_SQL_URL" in message
    for statement in statements.values():
        code, out, err = run_main(monkeypatch, capsys, "sql", statement, "--storage", admin)
        assert code == 2 and out == ""
        assert "naslab db grant-reader" in one_line_error(err)
    assert not any(f.exists() for f in files)
    assert alive()


def test_postgresql_console_refuses_privileged_roles(admin, reader):
    grants = ["GRANT pg_signal_backend TO {r}", "GRANT pg_read_server_files TO {r}",
              "GRANT pg_execute_server_program TO {r}", "GRANT pg_write_server_files TO {r}",
              "GRANT pg_read_all_data TO {r}", "GRANT pg_write_all_data TO {r}",
              "ALTER ROLE {r} CREATEROLE", "ALTER ROLE {r} BYPASSRLS"]
    for grant in grants:
        run_admin(admin, grant.format(r=ROLE))
        with Store(reader) as store, pytest.raises(QueryError, match="grant-reader"):
            store.sql.query("SELECT 1")
        # grant-reader takes it back (direct memberships, attributes), idempotently
        with Store(admin) as store:
            grant_reader(store.database, ROLE)
        with Store(reader) as store:
            assert store.sql.query("SELECT 1") == (["?column?"], [(1,)])
    # a membership through another role is not quietly undone: refused, nothing changed
    run_admin(admin, "DROP ROLE IF EXISTS naslab_adv_middle",
              "CREATE ROLE naslab_adv_middle IN ROLE pg_signal_backend",
              f"GRANT naslab_adv_middle TO {ROLE}")
    try:
        with Store(admin) as store, pytest.raises(ConfigError, match="pg_signal_backend"):
            grant_reader(store.database, ROLE)
        with Store(reader) as store, pytest.raises(QueryError, match="pg_signal_backend"):
            store.sql.query("SELECT 1")
    finally:
        run_admin(admin, "DROP ROLE naslab_adv_middle")


def test_postgresql_reader_cannot_escape_through_the_api(admin, reader, victim):
    pid, alive = victim
    statements, files = escapes(pid)
    before = data(admin)
    with Store(reader) as store:
        for what, statement in statements.items():
            if what == "settings":  # any role may set its session's setting: no effect
                store.sql.query(statement)
                assert store.sql.query("SHOW default_transaction_read_only")[1] == [("on",)]
                continue
            with pytest.raises(QueryError) as err:
                store.sql.query(statement)
            assert "\n" not in str(err.value)
        for statement in WRITES:
            with pytest.raises(QueryError, match="read-only|permission denied"):
                store.sql.query(statement)
        with pytest.raises(QueryError, match="permission denied"):  # not SET ROLE back
            store.sql.query("SELECT set_config('role', 'naslab', false)")
    assert not any(f.exists() for f in files)
    assert alive()
    assert data(admin) == before


def test_postgresql_reader_reads_naslab_tables_and_views_only(admin, reader):
    run_admin(admin, "CREATE TABLE studies (secret TEXT)",  # as Optuna's, or another app's
              "INSERT INTO studies VALUES ('hidden')")
    with Store(reader) as store:
        for name in [*TABLES, *VIEWS]:
            store.sql.query(f"SELECT * FROM {name}")
        _, rows = store.sql.query("SELECT study, state FROM naslab_results")
        assert rows == [("s1", "complete")]
        with pytest.raises(QueryError, match="permission denied for table studies"):
            store.sql.query("SELECT * FROM studies")
        assert store.sql.describe_schema()  # naslab schema works as the reader too


def test_postgresql_reader_role_cannot_write_even_outside_the_console(admin, reader):
    """The role itself, not only the READ ONLY transaction, refuses writes."""
    engine = sql_engine(reader, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("SET default_transaction_read_only = off")
        for statement in WRITES:
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                conn.exec_driver_sql(statement)
    engine.dispose()


def test_postgresql_reader_through_the_cli(admin, victim, monkeypatch, capsys):
    pid, alive = victim
    code, out, err = run_main(monkeypatch, capsys, "db", "grant-reader", "--role", ROLE,
                              "--password", "pw", "--storage", admin)
    assert code == 0 and err == "" and out.startswith(f"created role {ROLE}: ")
    url = next(line.removeprefix("console URL: ") for line in out.splitlines()
               if line.startswith("console URL: "))
    assert f"{ROLE}:pw@" in url
    statements, files = escapes(pid)
    before = data(admin)
    for what, statement in [*statements.items(), *(("write", w) for w in WRITES)]:
        code, out, err = run_main(monkeypatch, capsys, "sql", statement, "--storage", url)
        if what == "settings":
            assert code == 0
            continue
        assert code == 2 and out == "", (statement, err)
        one_line_error(err)
    assert not any(f.exists() for f in files) and alive() and data(admin) == before
    # NASLAB_SQL_URL comes before NASLAB_STORAGE (the owner's, refused by the console)
    monkeypatch.setenv("NASLAB_STORAGE", admin)
    monkeypatch.setenv("NASLAB_SQL_URL", url)
    code, out, err = run_main(monkeypatch, capsys, "sql", "SELECT study FROM naslab_results",
                              "--format", "json")
    assert (code, err) == (0, "") and '"study": "s1"' in out
    code, out, _ = run_main(monkeypatch, capsys, "schema")
    assert code == 0 and "table naslab_trials" in out


def test_postgresql_statement_timeout(admin, reader, monkeypatch, capsys):
    with Store(reader) as store:
        for statement in ("SELECT pg_sleep(1e9)",
                          "SELECT set_config('statement_timeout', '0', true), pg_sleep(1e9)"):
            start = time.monotonic()
            with pytest.raises(QueryError, match="time limit of 0.5 s"):
                store.sql.query(statement, timeout_s=0.5)
            assert time.monotonic() - start < 5
        for bad in (float("nan"), float("inf"), 0, -1, "1"):
            with pytest.raises(QueryError, match="time limit"):
                store.sql.query("SELECT 1", timeout_s=bad)
    start = time.monotonic()
    code, _, err = run_main(monkeypatch, capsys, "sql", "SELECT pg_sleep(1e9)",
                            "--timeout", "0.5", "--storage", reader)
    assert code == 2 and "time limit" in one_line_error(err) and time.monotonic() - start < 5
    for bad in ("nan", "inf", "0", "-3"):
        code, _, err = run_main(monkeypatch, capsys, "sql", "SELECT 1", "--timeout", bad,
                                "--storage", reader)
        assert code == 2 and "--timeout" in one_line_error(err)


def test_postgresql_dblink_reachable_by_the_reader_is_refused(admin, reader):
    run_admin(admin, "CREATE EXTENSION dblink")
    with Store(reader) as store, pytest.raises(QueryError, match="dblink"):
        store.sql.query("SELECT 1")
    with Store(admin) as store:
        assert any("dblink" in w for w in grant_reader(store.database, ROLE).warnings)
    # moved to a schema the reader may not use: fine
    run_admin(admin, "CREATE SCHEMA admin_only", "ALTER EXTENSION dblink SET SCHEMA admin_only")
    with Store(reader) as store:
        assert store.sql.query("SELECT 1")[1] == [(1,)]


def test_postgresql_grant_reader_is_idempotent_and_takes_back_extra_rights(admin, reader,
                                                               monkeypatch, capsys):
    run_admin(admin, f"GRANT INSERT, DELETE ON naslab_studies TO {ROLE}",
              f"GRANT CREATE ON SCHEMA public TO {ROLE}", f"ALTER ROLE {ROLE} CREATEDB")
    for _ in range(2):
        code, out, err = run_main(monkeypatch, capsys, "db", "grant-reader", "--role", ROLE,
                                  "--storage", admin)
        assert code == 0 and out.startswith(f"updated role {ROLE}: ")
        assert "password is unchanged" in out
    with Store(reader) as store:  # the password given first still works
        assert store.sql.query("SELECT count(*) FROM naslab_studies")[1] == [(1,)]
    test_postgresql_reader_role_cannot_write_even_outside_the_console(admin, reader)
    engine = sql_engine(admin)
    with engine.connect() as conn:
        assert not conn.exec_driver_sql(
            f"SELECT rolcreatedb FROM pg_roles WHERE rolname = '{ROLE}'").scalar_one()
    engine.dispose()


@pytest.mark.parametrize("role, message", [
    ("naslab", "the role connected"),
    ("Bad-Name", "lowercase"),
    ("x; DROP TABLE naslab_trials", "lowercase"),
    ("pg_signal_backend", "pg_"),
    ("", "lowercase"),
])
def test_postgresql_grant_reader_refuses_bad_roles(admin, monkeypatch, capsys, role, message):
    before = data(admin)
    code, out, err = run_main(monkeypatch, capsys, "db", "grant-reader", "--role", role,
                              "--storage", admin)
    assert code == 2 and out == "" and message in one_line_error(err)
    assert data(admin) == before


def test_postgresql_grant_reader_refuses_a_role_that_owns_tables(admin):
    run_admin(admin, "DROP ROLE IF EXISTS naslab_adv_owner", "CREATE ROLE naslab_adv_owner",
              "CREATE TABLE owned (x INT)", "ALTER TABLE owned OWNER TO naslab_adv_owner")
    try:
        with Store(admin) as store, pytest.raises(ConfigError, match="owns 1 table"):
            grant_reader(store.database, "naslab_adv_owner")
    finally:
        run_admin(admin, "DROP TABLE owned", "DROP ROLE naslab_adv_owner")


def test_grant_reader_refuses_sqlite(tmp_path, monkeypatch, capsys):
    path = tmp_path / "store.db"
    code, out, err = run_main(monkeypatch, capsys, "db", "grant-reader",
                              "--storage", f"sqlite:///{path}")
    assert code == 2 and "PostgreSQL" in one_line_error(err) and not path.exists()
    with Store(f"sqlite:///{path}") as store:
        with pytest.raises(ConfigError, match="already cannot write"):
            grant_reader(store.database)
        # and SQLite's console is read-only through the file opened read-only
        with pytest.raises(QueryError, match="readonly"):
            store.sql.query("INSERT INTO naslab_studies (name) VALUES ('x')")


def test_sqlite_console_opens_the_file_read_only(tmp_path):
    path = tmp_path / "store.db"
    with Store(f"sqlite:///{path}") as store:
        store.sql.query("SELECT 1")
        engine = store.sql._ro_engine  # noqa: SLF001 - the console's own connections
        assert engine is not None
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw.execute("PRAGMA query_only").fetchone() == (1,)
            with pytest.raises(Exception, match="readonly"):
                raw.execute("CREATE TABLE t (x INT)")
    assert os.path.exists(path)
