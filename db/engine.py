"""The database under the store: URLs, engines, dialect settings and transactions.

:class:`Database` owns the SQLAlchemy engine of one store and hands out
transactions: :meth:`Database.writing` (a Core connection in one write transaction),
:meth:`Database.reading` (an ORM session in one read transaction) and
:meth:`Database.batch` (one write transaction that the writes of this thread join,
for table searches that commit many trials at once). Every database error leaves
as a :class:`~naslab.core.errors.StorageError` that names the action, the URL and,
where it helps, the cause.

SQLite settings (:func:`configure_sqlite`): write-ahead logging (readers never block
the writer), ``synchronous = NORMAL``, foreign keys, a busy timeout, and write
transactions begun ``IMMEDIATE`` so that concurrent writers (several drivers or
processes on one file) queue on the lock instead of failing with "database is
locked". The application applies the same settings to the engine of Optuna's
storage when it keeps an Optuna study in the store's file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, StaticPool

from naslab.core.errors import ConfigError, StorageError

__all__ = [
    "ACCEPTED_URLS",
    "DEFAULT_URL",
    "STORAGE_ENV",
    "Database",
    "configure_sqlite",
    "parse_url",
    "sqlite_readonly",
    "storage_url",
]

#: Environment variable that names the default storage URL.
STORAGE_ENV = "NASLAB_STORAGE"
#: The storage URL used when neither an argument nor the environment names one.
DEFAULT_URL = "sqlite:///naslab.db"
#: What a storage URL may be, for error messages.
ACCEPTED_URLS = "an SQLAlchemy URL such as sqlite:///path.db or postgresql+psycopg://user@host/db"


def storage_url(url: str | None = None) -> str:
    """``url``, else ``$NASLAB_STORAGE``, else :data:`DEFAULT_URL`."""
    return url if url is not None else (os.environ.get(STORAGE_ENV) or DEFAULT_URL)


def parse_url(raw: Any) -> tuple[URL, Path | None]:
    """The parsed URL (a relative SQLite path made absolute, against the current
    directory) and the SQLite file, if it is one.

    Raises:
        ConfigError: not a URL, or an SQLite path whose directory does not exist or
            that is a directory.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"the storage URL must be {ACCEPTED_URLS}; got {raw!r}")
    try:
        url = make_url(raw.strip())
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"malformed storage URL {raw!r}; use {ACCEPTED_URLS}") from exc
    if url.get_backend_name() != "sqlite":
        return url, None
    database = url.database
    if not database or database == ":memory:":
        return url, None
    if database.startswith("file:") or url.query.get("uri"):
        return url, None  # an SQLite URI filename: used as given
    path = Path(database).expanduser().resolve()
    if not path.parent.is_dir():
        raise ConfigError(
            f"the directory of the SQLite database {str(path)!r} does not exist; create it "
            "first or choose another path"
        )
    if path.is_dir():
        raise ConfigError(f"the SQLite database path {str(path)!r} is a directory, not a file")
    return url.set(database=str(path)), path


def configure_sqlite(engine: Engine, *, busy_ms: int, wal: bool = True,
                     begin: str = "DEFERRED") -> None:
    """Give every connection of an SQLite ``engine`` naslab's settings: a busy timeout,
    WAL with ``synchronous = NORMAL`` (unless ``wal`` is False, e.g. in memory),
    foreign keys, and transactions begun by SQLAlchemy in mode ``begin``, or in the
    mode of the connection's ``naslab_begin`` execution option (``IMMEDIATE`` takes
    the write lock at once)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy, not sqlite3, emits BEGIN
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        if wal:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("naslab_begin", begin)
        conn.exec_driver_sql(f"BEGIN {mode}")


def sqlite_readonly(path: Path, *, busy_ms: int = 0) -> sqlite3.Connection:
    """A read-only connection to the SQLite file ``path`` (``mode=ro``; ``immutable=1``
    where even that needs a write, e.g. a WAL database in a read-only place), usable
    from any thread, that begins no transaction by itself and refuses writes
    (``query_only``)."""
    base = f"file:{quote(str(path))}?mode=ro"

    def connect(uri: str) -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        conn.isolation_level = None  # SQLAlchemy, not sqlite3, emits BEGIN
        conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        conn.execute("PRAGMA query_only = ON")
        return conn

    if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        # a read-only file or place: nothing can change it, and even a read-only
        # connection would try to create the WAL index next to it
        return connect(base + "&immutable=1")
    conn = connect(base)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        return conn
    except sqlite3.OperationalError:  # a read-only place where the WAL index cannot be made
        conn.close()
    return connect(base + "&immutable=1")


def _readonly_engine(url: URL, path: Path | None, shown: str, busy_ms: int) -> Engine:
    """An engine whose connections cannot write: the SQLite file opened read-only
    (it must exist), or PostgreSQL sessions read-only by default."""
    if url.get_backend_name() == "sqlite":
        if path is None:
            raise ConfigError(f"a read-only store needs an SQLite file, not {shown!r}")
        if not path.is_file():
            raise ConfigError(f"there is no SQLite database at {str(path)!r}")
        engine = create_engine("sqlite://", creator=lambda: sqlite_readonly(
            path, busy_ms=busy_ms), poolclass=NullPool)

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    if url.get_backend_name() != "postgresql" or url.get_driver_name() not in (
            "psycopg", "psycopg2"):
        raise ConfigError(f"a read-only store is SQLite or PostgreSQL (psycopg), not {shown!r}")
    try:
        return create_engine(url, pool_pre_ping=True, connect_args={
            "options": "-c default_transaction_read_only=on"})
    except ImportError as exc:
        raise ConfigError(f"the database driver for {shown!r} is not installed ({exc}); "
                          "pip install 'psycopg[binary]'") from exc


def _new_engine(url: URL, shown: str, memory: bool) -> Engine:
    kwargs: dict[str, Any] = {}
    if memory:  # one shared connection, else every connection has its own database
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    try:
        return create_engine(url, **kwargs)
    except NoSuchModuleError as exc:
        raise ConfigError(f"unknown database backend in {shown!r}; use {ACCEPTED_URLS}") from exc
    except ImportError as exc:
        hint = (" (for PostgreSQL: pip install 'psycopg[binary]')"
                if url.get_backend_name() == "postgresql" else "")
        raise ConfigError(
            f"the database driver for {shown!r} is not installed ({exc}); install "
            f"it{hint} or use sqlite:///path.db"
        ) from exc
    except ArgumentError as exc:
        raise ConfigError(f"invalid storage URL {shown!r} ({exc}); use {ACCEPTED_URLS}") from exc


class _Batches(threading.local):
    """The open batch of the current thread: its connection and savepoint setting."""

    conn: Connection | None = None
    savepoints: bool = True


@contextmanager
def _savepoint(conn: Connection) -> Iterator[None]:
    """A savepoint of ``conn``'s open transaction around the block: released at the
    end, rolled back to if the block raises. Plain SQL with one name (nested ones
    shadow it), so that no statement is compiled per use, as SQLAlchemy's numbered
    savepoints are; both SQLite and PostgreSQL accept it."""
    conn.exec_driver_sql("SAVEPOINT naslab_write")
    try:
        yield
    except BaseException:
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT naslab_write")
        conn.exec_driver_sql("RELEASE SAVEPOINT naslab_write")
        raise
    conn.exec_driver_sql("RELEASE SAVEPOINT naslab_write")


class Database:
    """One store's engine and its transactions.

    Args:
        url: an SQLAlchemy URL; None for ``$NASLAB_STORAGE`` or :data:`DEFAULT_URL`.
        busy_timeout_s: how long an SQLite writer waits for another's lock.
        read_only: connections that cannot write (an existing SQLite file opened
            ``mode=ro``; PostgreSQL sessions with ``default_transaction_read_only``);
            :meth:`writing` and :meth:`batch` raise StorageError.
    """

    def __init__(self, url: str | None = None, *, busy_timeout_s: float = 30.0,
                 read_only: bool = False) -> None:
        self.busy_ms = int(busy_timeout_s * 1000)
        self.sa_url, self.sqlite_path = parse_url(storage_url(url))
        self.dialect = self.sa_url.get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        #: Whether the connections cannot write.
        self.read_only = read_only
        #: An SQLite database in memory (or given as a URI filename): one connection.
        self.memory = self.is_sqlite and self.sqlite_path is None
        if read_only:
            self.engine = _readonly_engine(self.sa_url, self.sqlite_path, self.url, self.busy_ms)
        else:
            self.engine = _new_engine(self.sa_url, self.url, self.memory)
        if self.is_sqlite and not read_only:
            configure_sqlite(self.engine, busy_ms=self.busy_ms, wal=not self.memory)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._local = _Batches()  # each thread's open batch, if any
        self._closed = False

    @property
    def url(self) -> str:
        """The URL with any password hidden."""
        return self.sa_url.render_as_string(hide_password=True)

    @property
    def connect_url(self) -> str:
        """The URL with its password, for opening the same database elsewhere."""
        return self.sa_url.render_as_string(hide_password=False)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Close every connection; later transactions raise StorageError."""
        if not self._closed:
            self._closed = True
            self.engine.dispose()

    def check_open(self) -> None:
        """Raise StorageError if the database was closed."""
        if self._closed:
            raise StorageError(f"the store for {self.url} is closed")

    def check_writable(self, action: str) -> None:
        """Raise StorageError if the database is open read-only."""
        if self.read_only:
            raise StorageError(f"cannot {action} in {self.url}: the store is open read-only")

    def error(self, action: str, exc: SQLAlchemyError) -> StorageError:
        """A StorageError for ``exc``, naming ``action``, the URL and a likely cause."""
        orig = getattr(exc, "orig", None)
        message = str(orig) if orig is not None else str(exc).split("\n")[0]
        lowered, hint = message.lower(), ""
        if "locked" in lowered or "busy" in lowered:
            hint = (f"; another process held the database for longer than the busy timeout "
                    f"({self.busy_ms / 1000:g} s)")
        elif "unable to open" in lowered or "readonly" in lowered:
            hint = "; check that the database file and its directory exist and are writable"
        return StorageError(f"could not {action} in {self.url}: {message}{hint}")

    def connect(self, *, write: bool = False) -> Connection:
        """A new connection (the caller closes it); ``write``: its transactions take
        SQLite's write lock when they begin."""
        conn = self.engine.connect()
        if write and self.is_sqlite:
            conn.execution_options(naslab_begin="IMMEDIATE")
        return conn

    @contextmanager
    def writing(self, action: str) -> Iterator[Connection]:
        """A connection in one write transaction, committed when the block ends and
        rolled back if it raises. Inside this thread's open :meth:`batch`, a savepoint
        of the batch's transaction instead."""
        self.check_open()
        self.check_writable(action)
        batch = self._local.conn
        try:
            if batch is not None:
                if not self._local.savepoints:
                    yield batch
                    return
                with _savepoint(batch):
                    yield batch
                return
            with self.connect(write=True) as conn, conn.begin():
                yield conn
        except SQLAlchemyError as exc:
            raise self.error(action, exc) from exc

    @contextmanager
    def reading(self, action: str) -> Iterator[Session]:
        """An ORM session in one read transaction (rolled back at the end)."""
        self.check_open()
        try:
            with self._sessions() as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise self.error(action, exc) from exc

    @contextmanager
    def batch(self, *, savepoints: bool = True) -> Iterator[None]:
        """One write transaction that every :meth:`writing` of this thread joins until
        the block ends (committed then; rolled back if it raises). Nested calls join
        the open batch (with its savepoint setting); other threads have batches of
        their own. On SQLite the batch holds the database's write lock.

        With ``savepoints`` each write runs in a savepoint, so a refused one leaves
        the others in; without, writes join the transaction directly (two statements
        fewer each), for a caller that rolls the whole batch back on any error."""
        if self._local.conn is not None:
            yield
            return
        self.check_open()
        self.check_writable("commit a batch of trials")
        try:
            with self.connect(write=True) as conn, conn.begin():
                self._local.conn, self._local.savepoints = conn, savepoints
                try:
                    yield
                finally:
                    self._local.conn = None
        except SQLAlchemyError as exc:
            raise self.error("commit a batch of trials", exc) from exc
