"""The read-only SQL console (``store.sql``): one statement of the user's SQL at a
time, on connections where the database itself refuses writes, and the documented
schema to write it against.

Read-only is enforced by the database, not by inspecting the SQL: on SQLite the
statement runs on a separate connection opened read-only (``mode=ro``, plus
``query_only``), with an authorizer that also refuses ATTACH, transaction control,
temporary objects and PRAGMAs that set something. On PostgreSQL a read-only
transaction is not enough (a superuser's query may run programs, read and write server
files, end other sessions), so the console first checks the session user of its
connection and refuses any that can do more than read
(:func:`~naslab.db.reader_role.console_refusal`; ``naslab db grant-reader`` makes one
that cannot); the statement then runs in a ``READ ONLY`` transaction with a statement
timeout, on a fresh session (closed afterwards, so nothing a query sets or locks
outlives it) whose transactions are read-only by default. On other databases it runs
in a ``READ ONLY`` transaction, rolled back afterwards.
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, inspect
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool, QueuePool

from naslab.core.errors import QueryError
from naslab.core.validation import check_int
from naslab.db.engine import Database
from naslab.db.models import TABLES, VIEWS
from naslab.db.reader_role import console_refusal
from naslab.db.records import SchemaObject

__all__ = ["SqlConsole", "single_statement"]

#: PRAGMAs that a read-only query may call with an argument (all read-only).
_INTROSPECTION_PRAGMAS = frozenset({
    "table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "function_list", "pragma_list", "table_list"})
_DENIED_ACTIONS = frozenset(
    getattr(sqlite3, name)
    for name in ("SQLITE_ATTACH", "SQLITE_DETACH", "SQLITE_TRANSACTION", "SQLITE_SAVEPOINT",
                 "SQLITE_CREATE_TEMP_INDEX", "SQLITE_CREATE_TEMP_TABLE",
                 "SQLITE_CREATE_TEMP_TRIGGER", "SQLITE_CREATE_TEMP_VIEW",
                 "SQLITE_DROP_TEMP_INDEX", "SQLITE_DROP_TEMP_TABLE",
                 "SQLITE_DROP_TEMP_TRIGGER", "SQLITE_DROP_TEMP_VIEW")
    if hasattr(sqlite3, name))
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def _is_word(char: str) -> bool:
    return char.isalnum() or char in "_$"


def _skip_quoted(sql: str, i: int, dialect: str) -> int | None:
    """The index after the quoted string, comment or dollar-quoted string starting at
    ``i``, or None if none starts there."""
    c, n = sql[i], len(sql)
    if c in "'\"`" or (c == "[" and dialect == "sqlite"):
        close = "]" if c == "[" else c
        j = sql.find(close, i + 1)
        while j != -1 and close != "]" and sql.startswith(close * 2, j):
            j = sql.find(close, j + 2)  # doubled quote: an escaped quote
        return n if j == -1 else j + 1
    if sql.startswith("--", i):
        j = sql.find("\n", i)
        return n if j == -1 else j + 1
    if sql.startswith("/*", i):
        j = sql.find("*/", i + 2)
        return n if j == -1 else j + 2
    if c == "$" and dialect == "postgresql" and (i == 0 or not _is_word(sql[i - 1])):
        match = _DOLLAR_TAG.match(sql, i)
        if match:
            k = sql.find(match.group(), match.end())
            return n if k == -1 else k + len(match.group())
    return None


def single_statement(sql: str, dialect: str) -> str:
    """``sql`` without a trailing ``;``; QueryError if it holds several statements.

    Quotes, comments and (on PostgreSQL) dollar-quoted strings are skipped, so a
    ``;`` inside them does not count.
    """
    if not isinstance(sql, str) or not sql.strip():
        raise QueryError("the query is empty; give one SQL statement such as SELECT ...")
    i, end = 0, None
    while i < len(sql):
        after = _skip_quoted(sql, i, dialect)
        if after is not None:
            i = after
            continue
        if sql[i] == ";":
            end = i if end is None else end
        elif end is not None and not sql[i].isspace():
            raise QueryError(
                "only one SQL statement is allowed per query; remove what follows the ';'")
        i += 1
    return (sql if end is None else sql[:end]).strip()


def _readonly_authorizer(action: int, arg1: Any, arg2: Any, dbname: Any, source: Any) -> int:
    """SQLite authorizer of read-only queries: refuses what a read-only connection lets
    through (ATTACH, which like VACUUM INTO creates files; transaction control;
    temporary objects; PRAGMAs that set something)."""
    if action in _DENIED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if (action == sqlite3.SQLITE_PRAGMA and arg2 is not None
            and str(arg1).lower() not in _INTROSPECTION_PRAGMAS):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _fetch(conn: Connection, statement: str, params: Any, max_rows: int | None
           ) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``statement`` on the DBAPI cursor itself, so that the driver (not
    SQLAlchemy) parses it: no bind-parameter rewriting, ``%`` and ``::`` kept."""
    if params is not None and not isinstance(params, (Mapping, list, tuple)):
        raise QueryError(f"query parameters must be a sequence or a mapping, got {params!r}")
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    cursor = dbapi_conn.cursor()
    try:
        if params is None:
            cursor.execute(statement)
        else:
            cursor.execute(statement, params if isinstance(params, Mapping) else tuple(params))
        if cursor.description is None:
            return [], []
        columns = [str(d[0]) for d in cursor.description]
        rows = cursor.fetchall() if max_rows is None else cursor.fetchmany(max_rows)
        return columns, [tuple(row) for row in rows]
    finally:
        cursor.close()


def _one_line(message: str) -> str:
    """The database's message on one line: its first line, and any HINT or DETAIL
    (PostgreSQL's ``LINE 1: ...`` pointer lines are left out)."""
    first, *rest = message.splitlines() or [""]
    extra = [line.strip() for line in rest if line.startswith(("HINT:", "DETAIL:"))]
    return " ".join([first.strip(), *extra])


def _db_message(exc: BaseException, timeout_s: float | None) -> str:
    message = _one_line(str(exc).strip())
    if timeout_s is not None and (message == "interrupted"
                                  or message.startswith("canceling statement due to "
                                                        "statement timeout")):
        message = f"the query was stopped after the time limit of {timeout_s:g} s"
    elif message.startswith(("permission denied for table naslab_",
                             "permission denied for view naslab_")):
        message = (message + "; if a schema upgrade added it, run "
                   "`naslab db grant-reader` again")
    return message


def _check_timeout(timeout_s: Any) -> float | None:
    if timeout_s is None:
        return None
    if (isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float))
            or not math.isfinite(timeout_s) or not 0 < timeout_s <= 86_400):
        raise QueryError(f"the query time limit must be a number of seconds in (0, 86400] "
                         f"(or None), got {timeout_s!r}")
    return float(timeout_s)


class SqlConsole:
    """Read-only SQL on the store's database (``store.sql``)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._ro_engine: Engine | None = None
        self._ro_lock = threading.Lock()

    def close(self) -> None:
        """Close the console's own connections."""
        if self._ro_engine is not None:
            self._ro_engine.dispose()

    def describe_schema(self) -> list[SchemaObject]:
        """The documented tables and views (:data:`~naslab.db.models.TABLES`,
        :data:`~naslab.db.models.VIEWS`) with the columns and types the database
        really has, tables first."""
        self._db.check_open()
        try:
            with self._db.engine.connect() as conn:
                have = inspect(conn)
                out = [SchemaObject(name, kind, text,
                                    [(str(c["name"]), str(c["type"]))
                                     for c in have.get_columns(name)])
                       for kind, docs in (("table", TABLES), ("view", VIEWS))
                       for name, text in docs.items()]
                conn.rollback()
                return out
        except SQLAlchemyError as exc:
            raise self._db.error("read the schema", exc) from exc

    def query(
        self,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        max_rows: int | None = None,
        timeout_s: float | None = 60.0,
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run ONE read-only SQL statement; returns (column names, rows).

        Args:
            sql: one statement (a trailing ``;`` is fine).
            params: parameters in the driver's style (``?`` or ``:name`` for
                SQLite, ``%(name)s`` for psycopg).
            max_rows: return at most this many rows.
            timeout_s: stop the query after this long (SQLite and PostgreSQL;
                None: no limit).

        Raises:
            QueryError: several statements, a bad time limit, or any database error
                (the message is the database's); on PostgreSQL, a connected session
                user that can do more than read (a superuser, ...: see
                :mod:`naslab.db.reader_role`); the message says how to set up
                and use a reader role.
        """
        self._db.check_open()
        statement = single_statement(sql, self._db.dialect)
        timeout_s = _check_timeout(timeout_s)
        if max_rows is not None:
            max_rows = check_int("max_rows", max_rows, minimum=0)
        try:
            if self._db.is_sqlite:
                return self._query_sqlite(statement, params, max_rows, timeout_s)
            return self._query_generic(statement, params, max_rows, timeout_s)
        except DBAPIError as exc:
            raise QueryError(_db_message(exc.orig, timeout_s)) from None
        except SQLAlchemyError as exc:
            raise QueryError(str(exc).split("\n")[0]) from None
        except Exception as exc:
            if not isinstance(exc, self._dbapi_errors()):
                raise
            raise QueryError(_db_message(exc, timeout_s)) from None

    def _dbapi_errors(self) -> tuple[type[BaseException], ...]:
        """The DBAPI's own error classes (raised by a bare cursor)."""
        errors: list[type[BaseException]] = [sqlite3.Error]
        dbapi = getattr(self._db.engine.dialect, "loaded_dbapi", None)
        if dbapi is not None and isinstance(getattr(dbapi, "Error", None), type):
            errors.append(dbapi.Error)
        return tuple(errors)

    def _query_sqlite(self, statement: str, params: Any, max_rows: int | None,
                      timeout_s: float | None) -> tuple[list[str], list[tuple[Any, ...]]]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        shared = self._db.sqlite_path is None  # in memory: the store's one connection
        engine = self._db.engine if shared else self._readonly_engine()
        with engine.connect() as conn:
            if shared:
                conn.exec_driver_sql("PRAGMA query_only = ON")
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.set_authorizer(_readonly_authorizer)
            if deadline is not None:
                raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            try:
                return _fetch(conn, statement, params, max_rows)
            finally:
                raw.set_progress_handler(None, 0)
                raw.set_authorizer(None)
                if shared:
                    conn.exec_driver_sql("PRAGMA query_only = OFF")
                conn.rollback()

    def _query_generic(self, statement: str, params: Any, max_rows: int | None,
                       timeout_s: float | None) -> tuple[list[str], list[tuple[Any, ...]]]:
        engine = self._db.engine
        postgres = self._db.dialect == "postgresql"
        if postgres:
            engine = self._readonly_engine()
        with engine.connect() as conn:
            try:
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                if postgres:
                    refusal = console_refusal(conn)
                    if refusal is not None:
                        raise QueryError(refusal)
                if timeout_s is not None and postgres:
                    ms = max(1, int(timeout_s * 1000))
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
                return _fetch(conn, statement, params, max_rows)
            finally:
                conn.rollback()

    def _readonly_engine(self) -> Engine:
        """Connections that cannot write: an SQLite file opened ``mode=ro``, or
        PostgreSQL sessions whose transactions are read-only by default (so that even
        a statement that ends the READ ONLY transaction cannot write), one per query
        (no pool: what a query sets or locks in its session ends with it)."""
        with self._ro_lock:
            if self._ro_engine is None:
                self._ro_engine = (self._sqlite_readonly_engine() if self._db.is_sqlite
                                   else self._postgres_console_engine())
            return self._ro_engine

    def _postgres_console_engine(self) -> Engine:
        args: dict[str, Any] = {}
        if self._db.sa_url.get_driver_name() in ("psycopg", "psycopg2"):
            args["options"] = "-c default_transaction_read_only=on"
        return create_engine(self._db.sa_url, poolclass=NullPool, connect_args=args)

    def _sqlite_readonly_engine(self) -> Engine:
        uri = f"file:{quote(str(self._db.sqlite_path))}?mode=ro"
        busy_ms = self._db.busy_ms

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            conn.isolation_level = None  # never an implicit BEGIN
            conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
            conn.execute("PRAGMA query_only = ON")
            return conn

        return create_engine("sqlite://", creator=connect, poolclass=QueuePool)
