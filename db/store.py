"""The :class:`Store`: the only code in naslab that talks SQL.

It keeps studies, trials, architectures, metrics and trained weights in any
database SQLAlchemy supports (SQLite by default, PostgreSQL for several machines),
in tables and views prefixed ``naslab_`` (described in :mod:`naslab.db.models`),
so it can share a database with Optuna.

Every public method is one short transaction: it commits before returning, and on
any error it rolls back and raises :class:`~naslab.core.errors.StorageError` (or a more
specific :class:`~naslab.core.errors.NaslabError`), leaving what is stored unchanged.

On SQLite the store turns on write-ahead logging (readers never block the writer),
foreign keys and a busy timeout, and starts its write transactions with
``BEGIN IMMEDIATE`` so that concurrent writers (several drivers or processes on
one file) queue on the lock instead of failing with "database is locked".
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Integer,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, defer, sessionmaker
from sqlalchemy.pool import QueuePool, StaticPool

from naslab.core import drivers
from naslab.core.errors import (
    ClaimError,
    ConfigError,
    QueryError,
    StorageError,
    StudyConflictError,
    UnknownNameError,
)
from naslab.db import migrate
from naslab.db.models import (
    DIRECTIONS,
    TABLES,
    TRIAL_STATES,
    VIEWS,
    ArchitectureRow,
    MetricRow,
    ParetoRow,
    PredictorRow,
    ProxyRow,
    StudyRow,
    TrialRow,
    WeightsRow,
    utcnow,
)
from naslab.search_spaces.architecture import Architecture, graph_to_json

if TYPE_CHECKING:
    import torch

    from naslab.workers.evaluator import Result

#: Environment variable that names the default storage URL.
STORAGE_ENV = "NASLAB_STORAGE"
#: The storage URL used when neither an argument nor the environment names one.
DEFAULT_URL = "sqlite:///naslab.db"
_ACCEPTED_URLS = "an SQLAlchemy URL such as sqlite:///path.db or postgresql+psycopg://user@host/db"
_WEIGHTS_FORMAT = "safetensors"
#: PRAGMAs that a read-only query may call with an argument (all read-only).
_INTROSPECTION_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "function_list",
        "pragma_list",
        "table_list",
    }
)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class StudyInfo:
    """A study's stored settings (one row of ``naslab_studies``)."""

    id: int
    name: str
    space: str
    space_key: str
    space_config: dict[str, Any] = field(hash=False)
    task_key: str
    searcher: str
    objective: str
    direction: str
    budget: int
    fidelity: int
    seed: int
    config: dict[str, Any] = field(hash=False)
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RecordedTrial:
    """What :meth:`Store.record_finished` or :meth:`Store.claim_trial` did.

    ``state`` is the stored trial's state (``complete``, ``failed``, or ``running``
    for a claim whose evaluation is to start), or one of two outcomes that store
    nothing: ``full`` (the study's budget is taken by finished and running trials;
    ``trial_id`` and ``number`` are None), ``busy`` (another driver is evaluating
    this architecture in this study now: ``trial_id`` and ``number`` are that
    running trial's) and ``known`` (the study already has a complete evaluation of
    it: that trial's id, number, value and metrics). ``reused`` says that an
    earlier evaluation was copied (then ``value`` and ``metrics`` are the earlier
    result's).
    """

    trial_id: int | None
    number: int | None
    state: str
    value: float | None
    metrics: dict[str, float] = field(hash=False)
    reused: bool
    error: str | None = None


@dataclass(frozen=True)
class SchemaObject:
    """A documented table or view of the store (:meth:`Store.describe_schema`)."""

    name: str
    kind: str  # "table" or "view"
    description: str
    columns: list[tuple[str, str]] = field(hash=False)  # (name, SQL type)


@dataclass(frozen=True)
class StoredResult:
    """One complete, self-evaluated result of an architecture (for fitting predictors)."""

    trial_id: int
    study: str
    arch_hash: str
    space: str
    graph: dict[str, Any] = field(hash=False)
    decisions: dict[str, Any] = field(hash=False)
    fidelity: int
    value: float
    params: int | None
    flops: int | None

    def architecture(self) -> Architecture:
        """Rebuild the :class:`Architecture` (the stored hash is checked)."""
        return Architecture.from_json(
            {
                "space": self.space,
                "decisions": self.decisions,
                "graph": self.graph,
                "hash": self.arch_hash,
            }
        )


@dataclass(frozen=True)
class PredictorRecord:
    """One saved version of a predictor; ``data`` is empty in listings."""

    id: int
    name: str
    version: int
    kind: str
    space: str | None
    space_key: str | None
    task_key: str | None
    target: str | None
    n_train: int
    params: dict[str, Any] = field(hash=False)
    summary: dict[str, Any] = field(hash=False)
    created_at: datetime
    data: bytes = field(default=b"", repr=False, hash=False)


@dataclass(frozen=True)
class StudySummary:
    """A study with counts of its trials and its best objective value so far."""

    name: str
    space: str
    task_key: str
    searcher: str
    objective: str
    direction: str
    budget: int
    n_complete: int
    n_stopped: int
    n_failed: int
    n_running: int
    n_interrupted: int
    best_objective: float | None
    created_at: datetime


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial, with its architecture and final metrics.

    ``decisions`` are the trial's own decisions; ``graph`` is the stored graph of
    its architecture (isomorphic to the one these decisions derive, possibly with
    other node names). ``metrics`` holds the final metrics (NaN where the value
    was not a number). ``reused_from`` is the id of the trial whose result this
    one copied, or None if it was evaluated itself.
    """

    id: int
    study_id: int
    number: int
    arch_hash: str
    space: str
    space_key: str
    decisions: dict[str, Any] = field(hash=False)
    graph: dict[str, Any] = field(hash=False)
    fidelity: int
    state: str
    seed: int
    worker: str | None
    objective_value: float | None
    metrics: dict[str, float] = field(hash=False)
    params: int | None
    flops: int | None
    latency_ms: float | None
    train_seconds: float | None
    epochs_done: int | None
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    reused_from: int | None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)
    #: ``host/pid/start`` of the search driver that claimed the trial (None for
    #: trials stored through the API without one, or before drivers were recorded).
    driver: str | None = None

    def architecture(self) -> Architecture:
        """Rebuild the :class:`Architecture` (the stored hash is checked)."""
        return Architecture.from_json(
            {
                "space": self.space,
                "decisions": self.decisions,
                "graph": self.graph,
                "hash": self.arch_hash,
            }
        )


# --------------------------------------------------------------------------- helpers


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays, tensors
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, (Path, datetime)):
        return str(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _dumps(what: str, obj: Any) -> str:
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as exc:
        raise StorageError(f"cannot store {what} as JSON: {exc}") from exc


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else {}


def _to_db_float(value: Any) -> float | None:
    """A float for the database: NaN becomes NULL (SQLite cannot hold NaN)."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _from_db_float(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _check_int(name: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    try:
        number = int(value)
        if number != value:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {number}")
    return number


def _check_str(name: str, value: Any, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > max_len:
        raise ConfigError(f"{name} must be at most {max_len} characters, got {len(value)}")
    return value


def _check_metrics(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    if not isinstance(metrics, Mapping):
        raise ConfigError(f"metrics must be a mapping of name to number, got {metrics!r}")
    out: dict[str, float | None] = {}
    for name, value in metrics.items():
        _check_str("a metric name", name, 100)
        try:
            out[name] = _to_db_float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"metric {name!r} must be a number, got {value!r}") from None
    return out


_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def _is_word(char: str) -> bool:
    return char.isalnum() or char in "_$"


def _single_statement(sql: str, dialect: str) -> str:
    """``sql`` without a trailing ``;``; QueryError if it holds several statements.

    Quotes, comments and (on PostgreSQL) dollar-quoted strings are skipped, so a
    ``;`` inside them does not count.
    """
    if not isinstance(sql, str) or not sql.strip():
        raise QueryError("the query is empty; give one SQL statement such as SELECT ...")
    i, n = 0, len(sql)
    end: int | None = None
    while i < n:
        c = sql[i]
        if c in "'\"`" or (c == "[" and dialect == "sqlite"):
            close = "]" if c == "[" else c
            j = sql.find(close, i + 1)
            while j != -1 and close != "]" and sql.startswith(close * 2, j):
                j = sql.find(close, j + 2)  # doubled quote: an escaped quote
            i = n if j == -1 else j + 1
            continue
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j == -1 else j + 1
            continue
        if sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j == -1 else j + 2
            continue
        if c == "$" and dialect == "postgresql" and (i == 0 or not _is_word(sql[i - 1])):
            match = _DOLLAR_TAG.match(sql, i)
            if match:
                k = sql.find(match.group(), match.end())
                i = n if k == -1 else k + len(match.group())
                continue
        if c == ";":
            if end is None:
                end = i
            i += 1
            continue
        if end is not None and not c.isspace():
            raise QueryError(
                "only one SQL statement is allowed per query; remove what follows the ';'"
            )
        i += 1
    return (sql if end is None else sql[:end]).strip()


def _readonly_authorizer(action: int, arg1: Any, arg2: Any, dbname: Any, source: Any) -> int:
    """SQLite authorizer of read-only queries.

    Writes to the database files are refused by SQLite itself (read-only
    connection, ``query_only``); this refuses what those let through: ATTACH
    (which, like VACUUM INTO, creates files), transaction control, temporary
    objects, and PRAGMAs that set something.
    """
    if action in _DENIED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if (
        action == sqlite3.SQLITE_PRAGMA
        and arg2 is not None
        and str(arg1).lower() not in _INTROSPECTION_PRAGMAS
    ):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


_DENIED_ACTIONS = frozenset(
    getattr(sqlite3, name)
    for name in (
        "SQLITE_ATTACH",
        "SQLITE_DETACH",
        "SQLITE_TRANSACTION",
        "SQLITE_SAVEPOINT",
        "SQLITE_CREATE_TEMP_INDEX",
        "SQLITE_CREATE_TEMP_TABLE",
        "SQLITE_CREATE_TEMP_TRIGGER",
        "SQLITE_CREATE_TEMP_VIEW",
        "SQLITE_DROP_TEMP_INDEX",
        "SQLITE_DROP_TEMP_TABLE",
        "SQLITE_DROP_TEMP_TRIGGER",
        "SQLITE_DROP_TEMP_VIEW",
    )
    if hasattr(sqlite3, name)
)


def _weights_to_bytes(weights: Mapping[str, Any]) -> bytes:
    import torch
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    for key, value in weights.items():
        if not isinstance(value, torch.Tensor):
            raise StorageError(
                f"cannot store weights: entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        # clone: safetensors refuses tensors that share memory (tied weights)
        tensors[str(key)] = value.detach().to("cpu").contiguous().clone()
    return save(tensors)


def _bytes_to_weights(data: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    return load(bytes(data))


# --------------------------------------------------------------------------- store


class _HotStatements:
    """Statements of the per-trial hot path, built once (bound parameters only)."""

    def __init__(self) -> None:
        trials, archs = TrialRow.__table__, ArchitectureRow.__table__
        studies, metric_t = StudyRow.__table__, MetricRow.__table__
        self.study = select(studies.c.name, studies.c.space_key).where(
            studies.c.id == bindparam("sid"))
        # claims on a study are serialised by this row lock (PostgreSQL; SQLite's
        # IMMEDIATE transaction already excludes other writers)
        self.study_lock = self.study.with_for_update()
        # read after the lock is held (a subquery of the locking statement would see
        # the snapshot from before the wait on PostgreSQL)
        self.last_number = select(func.max(trials.c.number)).where(
            trials.c.study_id == bindparam("sid"))
        self.arch_row = select(archs.c.id, archs.c.params, archs.c.flops).where(
            archs.c.space_key == bindparam("sk"), archs.c.hash == bindparam("h"))
        self.trial_values = select(
            trials.c.objective_value, trials.c.params, trials.c.flops, trials.c.latency_ms
        ).where(trials.c.id == bindparam("tid"))
        self.holder = select(trials.c.id, trials.c.number, trials.c.state).where(
            trials.c.study_id == bindparam("sid"),
            trials.c.architecture_id == bindparam("aid"),
            trials.c.fidelity == bindparam("fid"),
            trials.c.reused_from.is_(None),
            trials.c.state.in_(["running", "complete"]),
        )
        self.live_count = select(func.count()).where(
            trials.c.study_id == bindparam("sid"),
            trials.c.state.in_(["complete", "stopped", "failed", "running"]),
        )
        self.arch_id = select(archs.c.id).where(
            archs.c.space_key == bindparam("sk"), archs.c.hash == bindparam("h"))
        value = trials.c.objective_value
        self.source = (
            select(trials)
            .join(studies, studies.c.id == trials.c.study_id)
            .where(
                trials.c.architecture_id == bindparam("aid"),
                studies.c.task_key == bindparam("tk"),
                trials.c.fidelity == bindparam("fid"),
                trials.c.state == "complete",
                trials.c.reused_from.is_(None),
            )
            .order_by(value.is_(None), value.desc(), trials.c.id)
            .limit(1)
        )
        self.insert_trial = insert(trials)
        self.insert_arch = insert(archs)
        self.insert_arch_pg = (
            pg_insert(archs).on_conflict_do_nothing(index_elements=["space_key", "hash"])
            .returning(archs.c.id))
        self.insert_metric = insert(metric_t)
        self.copy_metrics = insert(metric_t).from_select(
            ["trial_id", "name", "step", "value"],
            select(bindparam("new", type_=Integer), metric_t.c.name, metric_t.c.step,
                   metric_t.c.value)
            .where(metric_t.c.trial_id == bindparam("src"))
            .order_by(metric_t.c.id),
        )
        self.final_metrics = (
            select(metric_t.c.name, metric_t.c.value)
            .where(metric_t.c.trial_id == bindparam("tid"), metric_t.c.step.is_(None))
            .order_by(metric_t.c.id)
        )
        self.fill_arch = (
            update(archs)
            .where(archs.c.id == bindparam("aid"))
            .values(params=func.coalesce(archs.c.params, bindparam("params", type_=BigInteger)),
                    flops=func.coalesce(archs.c.flops, bindparam("flops", type_=BigInteger)))
        )


_HOT = _HotStatements()


class Store:
    """Studies, trials, architectures, metrics and weights in an SQL database.

    Args:
        url: an SQLAlchemy URL such as ``sqlite:///path.db`` or
            ``postgresql+psycopg://user@host/db``. Default: the environment
            variable ``NASLAB_STORAGE``, else ``sqlite:///naslab.db`` in the
            current directory. Relative SQLite paths are resolved now, against
            the current directory; ``sqlite://`` is an in-memory database.
        busy_timeout_s: how long an SQLite writer waits for another's lock.
        upgrade: apply pending schema migrations when opening (the default); if
            False, a database that is not at the newest revision is refused.

    Raises:
        ConfigError: the URL is malformed, names an unknown backend or a driver
            that is not installed, or an SQLite directory that does not exist.
        StorageError: the database cannot be opened or its tables created.

    A new database gets the tables and views; an older one is upgraded by the
    schema migrations (:mod:`naslab.db.migrate`), in one transaction. Use as a
    context manager, or call :meth:`close`.
    """

    def __init__(
        self, url: str | None = None, *, busy_timeout_s: float = 30.0, upgrade: bool = True
    ) -> None:
        raw = url if url is not None else (os.environ.get(STORAGE_ENV) or DEFAULT_URL)
        self._busy_ms = int(busy_timeout_s * 1000)
        self._url, self._sqlite_path = _parse_url(raw)
        self._dialect = self._url.get_backend_name()
        self._is_sqlite = self._dialect == "sqlite"
        self._memory = self._is_sqlite and self._sqlite_path is None
        self._closed = False
        self._ro_engine: Engine | None = None
        self._ro_lock = threading.Lock()
        self._numbers: dict[int, int] = {}  # trial id -> number, of trials added here
        self._batch: Connection | None = None  # the open batch(), if any
        self._engine = self._create_engine()
        self._sessions = sessionmaker(self._engine, expire_on_commit=False, autoflush=False)
        #: The schema revision of the database (:mod:`naslab.db.migrate`).
        self.schema_revision: str | None = None
        #: The revision this store upgraded the database from when it opened it
        #: (None: it was new or already current).
        self.upgraded_from: str | None = None
        self._init_schema(upgrade)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The storage URL, with any password hidden."""
        return self._url.render_as_string(hide_password=True)

    @property
    def connect_url(self) -> str:
        """The storage URL with its password, for opening the same database elsewhere
        (Optuna's storage, another process). Do not print it."""
        return self._url.render_as_string(hide_password=False)

    @property
    def dialect(self) -> str:
        """The database backend's name (``sqlite``, ``postgresql``, ...)."""
        return self._dialect

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # A store sent to another process reopens the same database there.
        return (Store, (self._url.render_as_string(hide_password=False),))

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection; the store cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        self._engine.dispose()
        if self._ro_engine is not None:
            self._ro_engine.dispose()

    def _create_engine(self) -> Engine:
        kwargs: dict[str, Any] = {}
        if self._memory:
            # one shared connection, else every connection has its own database
            kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        try:
            engine = create_engine(self._url, **kwargs)
        except NoSuchModuleError as exc:
            raise ConfigError(
                f"unknown database backend in {self.url!r}; use {_ACCEPTED_URLS}"
            ) from exc
        except ImportError as exc:
            example = " (for PostgreSQL: pip install 'psycopg[binary]')"
            raise ConfigError(
                f"the database driver for {self.url!r} is not installed ({exc}); install "
                f"it{example if self._dialect == 'postgresql' else ''} or use sqlite:///path.db"
            ) from exc
        except ArgumentError as exc:
            raise ConfigError(
                f"invalid storage URL {self.url!r} ({exc}); use {_ACCEPTED_URLS}"
            ) from exc
        if self._is_sqlite:
            busy_ms, memory = self._busy_ms, self._memory

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                # SQLAlchemy, not sqlite3, emits BEGIN (see _on_begin)
                dbapi_conn.isolation_level = None
                cursor = dbapi_conn.cursor()
                cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
                if not memory:
                    cursor.execute("PRAGMA journal_mode = WAL")
                    cursor.execute("PRAGMA synchronous = NORMAL")
                cursor.execute("PRAGMA foreign_keys = ON")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                mode = conn.get_execution_options().get("naslab_begin", "DEFERRED")
                conn.exec_driver_sql(f"BEGIN {mode}")

        return engine

    def _init_schema(self, upgrade: bool) -> None:
        """Check the schema revision; apply pending migrations (:mod:`naslab.db.migrate`)."""
        head = migrate.head_revision()
        for attempt in range(3):
            try:
                with self._engine.connect() as conn:
                    found = migrate.current_revision(conn)
                    conn.rollback()
                    if found == head:
                        self.schema_revision = head
                        return
                    if not upgrade:
                        raise StorageError(
                            f"the naslab schema of {self.url} is at revision "
                            f"{found or 'none'}, not {head}; run `naslab db upgrade` (or "
                            "open the store with upgrade=True)"
                        )
                    if self._is_sqlite:
                        conn.execution_options(naslab_begin="IMMEDIATE")
                    with conn.begin():
                        migrate.lock(conn)
                        before, after = migrate.upgrade_in_transaction(
                            conn, check_old=_check_schema_current)
                self.upgraded_from = before if before != after else None
                self.schema_revision = after
                return
            except SQLAlchemyError as exc:
                # another process may have created the same objects meanwhile
                if attempt == 2 or "already exists" not in str(exc):
                    raise self._error("open the store", exc) from exc

    # ------------------------------------------------------------------ transactions

    def _error(self, action: str, exc: SQLAlchemyError) -> StorageError:
        orig = getattr(exc, "orig", None)
        message = str(orig) if orig is not None else str(exc).split("\n")[0]
        hint = ""
        lowered = message.lower()
        if "locked" in lowered or "busy" in lowered:
            hint = (
                f"; another process held the database for longer than the busy timeout "
                f"({self._busy_ms / 1000:g} s)"
            )
        elif "unable to open" in lowered or "readonly" in lowered:
            hint = "; check that the database file and its directory exist and are writable"
        return StorageError(f"could not {action} in {self.url}: {message}{hint}")

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"the store for {self.url} is closed")

    @contextmanager
    def _write(self, action: str) -> Iterator[Session]:
        """A session in one write transaction: committed on success, else rolled back."""
        self._check_open()
        try:
            with self._sessions() as session, session.begin():
                if self._is_sqlite:
                    session.connection(execution_options={"naslab_begin": "IMMEDIATE"})
                yield session
        except SQLAlchemyError as exc:
            raise self._error(action, exc) from exc

    @contextmanager
    def _read(self, action: str) -> Iterator[Session]:
        """A session in one read transaction."""
        self._check_open()
        try:
            with self._sessions() as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise self._error(action, exc) from exc

    # ------------------------------------------------------------------ studies

    def create_or_load_study(
        self,
        name: str,
        *,
        space: str,
        space_key: str,
        space_config: Mapping[str, Any],
        task_key: str,
        searcher: str,
        objective: str,
        direction: str = "maximize",
        budget: int,
        fidelity: int,
        seed: int,
        config: Mapping[str, Any],
    ) -> StudyInfo:
        """Create the study ``name``, or load it if it exists.

        An existing study must have been created with the same space_key,
        task_key, fidelity, objective, direction, searcher and seed; otherwise
        :class:`StudyConflictError` names each differing field. Its budget is
        updated to ``budget``; its other settings (space_config, config) stay as
        first stored.
        """
        _check_str("study name", name, 200)
        _check_str("space", space, 255)
        _check_str("space_key", space_key, 255)
        _check_str("task_key", task_key, 100_000)
        _check_str("searcher", searcher, 255)
        _check_str("objective", objective, 100)
        if direction not in DIRECTIONS:
            raise ConfigError(
                f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}"
            )
        budget = _check_int("budget", budget, 1)
        fidelity = _check_int("fidelity", fidelity, 0)
        seed = _check_int("seed", seed)
        requested = {
            "space_key": space_key,
            "task_key": task_key,
            "fidelity": fidelity,
            "objective": objective,
            "direction": direction,
            "searcher": searcher,
            "seed": seed,
        }
        space_config_json = _dumps("space_config", dict(space_config))
        config_json = _dumps("config", dict(config))
        for attempt in range(2):
            try:
                with self._write(f"create or load study {name!r}") as session:
                    row = session.scalar(select(StudyRow).where(StudyRow.name == name))
                    now = utcnow()
                    if row is None:
                        row = StudyRow(
                            name=name,
                            space=space,
                            space_config=space_config_json,
                            budget=budget,
                            config=config_json,
                            created_at=now,
                            updated_at=now,
                            **requested,
                        )
                        session.add(row)
                        session.flush()
                    else:
                        _check_same_study(row, requested)
                        if row.budget != budget:
                            row.budget = budget
                            row.updated_at = now
                    return _study_info(row)
            except StorageError as exc:
                # a concurrent creator (other process) won the race: load its study
                if attempt == 1 or not isinstance(exc.__cause__, IntegrityError):
                    raise
        raise AssertionError("unreachable")

    def get_study(self, name: str) -> StudyInfo | None:
        """The study called ``name``, or None."""
        with self._read(f"read study {name!r}") as session:
            row = session.scalar(select(StudyRow).where(StudyRow.name == name))
            return None if row is None else _study_info(row)

    def list_studies(self) -> list[StudySummary]:
        """Every study with its trial counts and best objective, oldest first."""

        def count(state: str) -> Any:
            return func.coalesce(func.sum(case((TrialRow.state == state, 1), else_=0)), 0)

        done = case((TrialRow.state == "complete", TrialRow.objective_value))
        query = (
            select(
                StudyRow,
                count("complete"),
                count("stopped"),
                count("failed"),
                count("running"),
                count("interrupted"),
                func.max(done),
                func.min(done),
            )
            .outerjoin(TrialRow, TrialRow.study_id == StudyRow.id)
            .group_by(StudyRow.id)
            .order_by(StudyRow.created_at, StudyRow.id)
        )
        with self._read("list studies") as session:
            rows = session.execute(query).all()
        return [
            StudySummary(
                name=s.name,
                space=s.space,
                task_key=s.task_key,
                searcher=s.searcher,
                objective=s.objective,
                direction=s.direction,
                budget=s.budget,
                n_complete=int(nc),
                n_stopped=int(ns),
                n_failed=int(nf),
                n_running=int(nr),
                n_interrupted=int(ni),
                best_objective=best_min if s.direction == "minimize" else best_max,
                created_at=s.created_at,
            )
            for s, nc, ns, nf, nr, ni, best_max, best_min in rows
        ]

    def _study_row(self, session: Session, study: str | int) -> StudyRow:
        if isinstance(study, int) and not isinstance(study, bool):
            row = session.get(StudyRow, study)
        else:
            row = session.scalar(select(StudyRow).where(StudyRow.name == study))
        if row is None:
            names = session.scalars(select(StudyRow.name)).all()
            raise UnknownNameError("study", str(study), names)
        return row

    # ------------------------------------------------------------------ trials: writing

    def start_trial(
        self,
        study_id: int,
        arch: Architecture,
        space_key: str,
        fidelity: int,
        seed: int,
        worker: str | None,
        *,
        driver: str | None = None,
    ) -> int:
        """Record a new running trial of ``arch``; returns its id.

        The trial gets the next number of the study; the architecture's row is
        created if it is new. Raises :class:`~naslab.core.errors.ClaimError` if the
        architecture is already running or complete (not as a reused copy) in the
        study at this fidelity: one evaluation per study (see :meth:`claim_trial`,
        which reuses or waits instead).
        """
        fidelity = _check_int("fidelity", fidelity, 0)
        seed = _check_int("seed", seed)
        arch_json = _arch_json(arch)
        try:
            with self._write("start a trial") as session:
                study = self._study_row(session, study_id)
                _check_space_key(study, space_key)
                holder = session.execute(
                    select(TrialRow.id, TrialRow.number, TrialRow.state)
                    .join(ArchitectureRow, ArchitectureRow.id == TrialRow.architecture_id)
                    .where(TrialRow.study_id == study.id, TrialRow.fidelity == fidelity,
                           ArchitectureRow.space_key == space_key,
                           ArchitectureRow.hash == arch_json[0],
                           TrialRow.reused_from.is_(None),
                           TrialRow.state.in_(["running", "complete"]))
                ).first()
                if holder is not None:
                    raise ClaimError(
                        f"architecture {arch_json[0][:12]} is already {holder.state} in study "
                        f"{study.name!r} at fidelity {fidelity} (trial {holder.number}); a "
                        "study evaluates an architecture once: reuse that result",
                        holder.id,
                    )
                now = utcnow()
                trial = _add_trial(
                    session,
                    study.id,
                    arch,
                    space_key,
                    arch_json,
                    fidelity,
                    seed,
                    worker,
                    state="running",
                    started_at=now,
                    driver=driver,
                    heartbeat_at=now,
                )
                tid, number = trial.id, trial.number
        except StorageError as exc:
            if isinstance(exc.__cause__, IntegrityError) and "one_evaluation" in str(exc):
                raise ClaimError(
                    f"another driver claimed architecture {arch_json[0][:12]} in study "
                    f"{study_id} at fidelity {fidelity} first", -1) from exc
            raise
        self._numbers[tid] = number
        return tid

    def report(self, trial_id: int, step: int, metrics: Mapping[str, float]) -> None:
        """Record per-epoch ``metrics`` of a trial at ``step`` (an epoch, from 1).

        A metric reported again at the same step replaces the earlier value.
        """
        step = _check_int("step", step, 1)
        values = _check_metrics(metrics)
        if not values:
            return
        with self._write(f"report metrics of trial {trial_id}") as session:
            _trial_row(session, trial_id)
            _put_metrics(session, trial_id, step, values)

    def complete_trial(
        self,
        trial_id: int,
        result: Result,
        objective: str,
        worker: str | None = None,
        *,
        stopped: bool = False,
    ) -> None:
        """Record the result of a running trial and mark it complete (or ``stopped``:
        stopped early by a scheduler, ``result`` holding the epochs it reached).

        Stores the final metrics, the objective value ``result.metrics[objective]``,
        params, flops, latency, training time, epochs, ``result.extra`` and, if
        present, the weights (as safetensors); fills the architecture's params and
        flops if unknown. All in one transaction.

        A trial that was ``interrupted`` (its driver was taken for dead) is completed
        too, unless another trial of the study has claimed the architecture since:
        then the result is stored with it, but it stays ``interrupted`` (the other
        trial is the study's evaluation) and ``error`` names that trial.
        """
        if objective not in result.metrics:
            raise StorageError(
                f"cannot complete trial {trial_id}: the result has no {objective!r} metric "
                f"(it has: {', '.join(sorted(result.metrics)) or 'none'})"
            )
        values = _check_metrics(result.metrics)
        extra = _dumps("result.extra", result.extra) if result.extra else None
        blob = _weights_to_bytes(result.weights) if result.weights is not None else None
        with self._write(f"complete trial {trial_id}") as session:
            trial = _trial_row(session, trial_id)
            if trial.state not in ("running", "interrupted"):
                raise StorageError(f"cannot complete trial {trial_id}: it is already {trial.state}")
            successor = None
            if trial.state == "interrupted" and not stopped and trial.reused_from is None:
                successor = session.execute(
                    select(TrialRow.number).where(
                        TrialRow.study_id == trial.study_id,
                        TrialRow.architecture_id == trial.architecture_id,
                        TrialRow.fidelity == trial.fidelity, TrialRow.id != trial.id,
                        TrialRow.reused_from.is_(None),
                        TrialRow.state.in_(["running", "complete"]))
                ).scalar()
            trial.state = "stopped" if stopped else "complete"
            if worker is not None:  # the process that actually evaluated it
                trial.worker = worker
            trial.objective_value = values[objective]
            trial.params = _opt_int(result.params)
            trial.flops = _opt_int(result.flops)
            trial.latency_ms = _to_db_float(result.latency_ms)
            trial.train_seconds = _to_db_float(result.train_seconds)
            trial.epochs_done = _opt_int(result.epochs)
            trial.extra = extra
            trial.finished_at = utcnow()
            trial.error = None
            if successor is not None:
                trial.state = "interrupted"
                trial.error = (
                    "finished after its driver was taken for dead; trial "
                    f"{successor} of the study evaluates this architecture now (this "
                    "trial's result is kept here)")
            _put_metrics(session, trial_id, None, values)
            arch = session.get(ArchitectureRow, trial.architecture_id)
            if arch is not None:
                if arch.params is None and trial.params is not None:
                    arch.params = trial.params
                if arch.flops is None and trial.flops is not None:
                    arch.flops = trial.flops
            if blob is not None:
                session.merge(WeightsRow(trial_id=trial_id, format=_WEIGHTS_FORMAT, data=blob))

    def fail_trial(self, trial_id: int, error: str, worker: str | None = None) -> None:
        """Mark a running (or interrupted) trial failed, with ``error`` saying why."""
        with self._write(f"fail trial {trial_id}") as session:
            trial = _trial_row(session, trial_id)
            if trial.state in ("complete", "stopped"):
                raise StorageError(f"cannot fail trial {trial_id}: it is already {trial.state}")
            trial.state = "failed"
            if worker is not None:
                trial.worker = worker
            trial.error = str(error)
            trial.finished_at = utcnow()

    def record_reused(
        self,
        study_id: int,
        arch: Architecture,
        space_key: str,
        fidelity: int,
        seed: int,
        source: TrialRecord,
        worker: str | None = None,
    ) -> int:
        """Record a complete trial whose result is copied from ``source``; returns its id.

        The new trial copies the source's objective value, final and per-epoch
        metrics, params, flops, latency, training time (the time the original
        evaluation took) and epochs; ``reused_from`` names the original trial
        (following the chain if ``source`` was itself reused). Weights are not
        copied: :meth:`load_weights` follows ``reused_from``.
        """
        fidelity = _check_int("fidelity", fidelity, 0)
        seed = _check_int("seed", seed)
        arch_json = _arch_json(arch)
        with self._write("record a reused result") as session:
            study = self._study_row(session, study_id)
            _check_space_key(study, space_key)
            src = _trial_row(session, source.id)
            if src.state != "complete":
                raise StorageError(f"cannot reuse trial {src.id}: it is {src.state}, not complete")
            origin = src.reused_from if src.reused_from is not None else src.id
            now = utcnow()
            trial = _add_trial(
                session,
                study.id,
                arch,
                space_key,
                arch_json,
                fidelity,
                seed,
                worker,
                state="complete",
                objective_value=src.objective_value,
                params=src.params,
                flops=src.flops,
                latency_ms=src.latency_ms,
                train_seconds=src.train_seconds,
                epochs_done=src.epochs_done,
                extra=src.extra,
                started_at=now,
                finished_at=now,
                reused_from=origin,
            )
            session.execute(
                insert(MetricRow).from_select(
                    ["trial_id", "name", "step", "value"],
                    select(literal(trial.id), MetricRow.name, MetricRow.step, MetricRow.value)
                    .where(MetricRow.trial_id == src.id)
                    .order_by(MetricRow.id),
                )
            )
            tid, number = trial.id, trial.number
        self._numbers[tid] = number
        return tid

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the trials that :meth:`record_finished` and :meth:`claim_trial` store
        inside the block into one transaction, committed when the block ends (rolled
        back if it raises). Each call still runs in its own savepoint, so a refused
        one leaves the others in.

        For table searches, where a commit costs more than a trial: a crash loses the
        uncommitted batch (never a committed result), and other connections see the
        batch only after the commit. While a batch is open on SQLite this store
        holds the database's write lock: write through the batch only, not through
        other methods or other connections to the same file. Nested calls join the
        open batch.
        """
        if self._batch is not None:
            yield
            return
        self._check_open()
        try:
            with self._engine.connect() as conn:
                if self._is_sqlite:
                    conn.execution_options(naslab_begin="IMMEDIATE")
                with conn.begin():
                    self._batch = conn
                    try:
                        yield
                    finally:
                        self._batch = None
        except SQLAlchemyError as exc:
            raise self._error("commit a batch of trials", exc) from exc

    @contextmanager
    def _core_write(self, action: str) -> Iterator[Connection]:
        """A plain connection in one write transaction (no ORM session): for the hot
        path of table searches. Committed on success, else rolled back. Inside
        :meth:`batch`, a savepoint of the batch's transaction."""
        self._check_open()
        if self._batch is not None:
            try:
                with self._batch.begin_nested():
                    yield self._batch
            except SQLAlchemyError as exc:
                raise self._error(action, exc) from exc
            return
        try:
            with self._engine.connect() as conn:
                if self._is_sqlite:
                    conn.execution_options(naslab_begin="IMMEDIATE")
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise self._error(action, exc) from exc

    def _claim_checks(
        self,
        conn: Connection,
        study_id: int,
        space_key: str,
        task_key: str,
        arch_hash: str,
        fidelity: int,
        budget: int | None,
        reuse: bool,
        reuse_own: bool = True,
    ) -> tuple[str, Any, int, Any, Any]:
        """The common start of a claim, inside its write transaction: lock the study,
        check its space, its budget and the architecture's claim in it, and find an
        earlier evaluation to reuse. Returns ``(outcome, arch, number, source,
        holder)`` where outcome is ``full``, ``busy``, ``known`` or ``go``, and
        ``arch`` is the architecture's stored ``(id, params, flops)`` (for ``go``;
        None if it is new)."""
        study_row = conn.execute(_HOT.study_lock, {"sid": study_id}).first()
        if study_row is None:
            raise StorageError(f"there is no study with id {study_id}")
        if study_row.space_key != space_key:
            raise StorageError(
                f"space_key {space_key!r} differs from study {study_row.name!r}'s "
                f"{study_row.space_key!r}"
            )
        last = conn.execute(_HOT.last_number, {"sid": study_id}).scalar()
        number = 0 if last is None else int(last) + 1
        # fewer trials than the budget ever made: no need to count (the common case)
        if budget is not None and number >= budget:
            if int(conn.execute(_HOT.live_count, {"sid": study_id}).scalar() or 0) >= budget:
                return "full", None, number, None, None
        arch_row = conn.execute(_HOT.arch_row, {"sk": space_key, "h": arch_hash}).first()
        arch_id = None if arch_row is None else arch_row.id
        source = holder = None
        if arch_row is not None:
            holder = conn.execute(
                _HOT.holder, {"sid": study_id, "aid": arch_id, "fid": fidelity}).first()
            if holder is not None and holder.state == "running":
                return "busy", arch_id, number, None, holder
            if holder is not None and not reuse_own:
                return "known", arch_id, number, None, holder
            if reuse or holder is not None:  # never a second evaluation in one study
                source = conn.execute(
                    _HOT.source, {"aid": arch_id, "tk": task_key, "fid": fidelity}).first()
        return "go", arch_row, number, source, holder

    def _nothing_stored(self, conn: Connection, outcome: str, holder: Any) -> RecordedTrial:
        """The claim outcomes that store nothing: ``full``, ``busy`` (another driver's
        running trial) and ``known`` (the study's own complete evaluation, read back)."""
        if outcome == "full":
            return RecordedTrial(None, None, "full", None, {}, False)
        if outcome == "busy":
            return RecordedTrial(holder.id, holder.number, "busy", None, {}, False)
        row = conn.execute(_HOT.trial_values, {"tid": holder.id}).first()
        got = conn.execute(_HOT.final_metrics, {"tid": holder.id}).all()
        metrics = {n: _from_db_float(v) for n, v in got}
        for key in ("params", "flops", "latency_ms"):
            if getattr(row, key) is not None:
                metrics.setdefault(key, float(getattr(row, key)))
        return RecordedTrial(holder.id, holder.number, "known", row.objective_value, metrics,
                             True)

    def _insert_reused(
        self, conn: Connection, row: dict[str, Any], source: Any
    ) -> tuple[int, dict[str, float]]:
        """Insert ``row`` as a complete copy of ``source`` (a trial row), metrics too."""
        row.update(
            state="complete", objective_value=source.objective_value,
            params=source.params, flops=source.flops, latency_ms=source.latency_ms,
            train_seconds=source.train_seconds, epochs_done=source.epochs_done,
            extra=source.extra, reused_from=source.id,
        )
        trial_id = int(conn.execute(_HOT.insert_trial, row).inserted_primary_key[0])
        conn.execute(_HOT.copy_metrics, {"new": trial_id, "src": source.id})
        got = conn.execute(_HOT.final_metrics, {"tid": source.id}).all()
        return trial_id, {n: _from_db_float(v) for n, v in got}

    def record_finished(
        self,
        study_id: int,
        arch: Architecture,
        space_key: str,
        task_key: str,
        fidelity: int,
        seed: int,
        worker: str | None,
        objective: str,
        evaluate: Callable[[], tuple[Result | None, str | None,
                                     Sequence[tuple[int, Mapping[str, float]]]]],
        *,
        reuse: bool = True,
        driver: str | None = None,
        budget: int | None = None,
        reuse_own: bool = True,
    ) -> RecordedTrial:
        """Look up or evaluate an architecture and record the trial, in one transaction.

        For evaluators that answer at once (benchmark tables), so that a search costs
        one commit per trial. With ``reuse``, an earlier complete evaluation of the
        architecture (same space key, task key and fidelity, any study; as
        :meth:`find_result`) is recorded instead, as a reused trial; an architecture
        already evaluated in this study is always reused, never evaluated twice.
        Otherwise ``evaluate()`` is called (inside the transaction, while the write
        lock is held: only for look-ups that take microseconds) and returns
        ``(result, error, reports)``: the trial is stored ``complete`` with ``result``
        (its final metrics, the per-step ``reports``, params, flops, latency), or
        ``failed`` with ``error`` when ``result`` is None. A crash before the commit
        loses only this evaluation.

        With ``budget``, nothing is stored once the study's finished and running
        trials (of every driver) reach it: the outcome is ``full``. If another
        driver is evaluating the architecture in this study right now, the outcome
        is ``busy``; with ``reuse_own=False``, an architecture this study already
        evaluated is not recorded again but answered ``known`` (see
        :class:`RecordedTrial`).
        """
        fidelity = _check_int("fidelity", fidelity, 0)
        seed = _check_int("seed", seed)
        arch_hash, decisions_json, graph_json = _arch_json(arch)
        with self._core_write("record a finished trial") as conn:
            outcome, arch_row, number, source, holder = self._claim_checks(
                conn, study_id, space_key, task_key, arch_hash, fidelity, budget, reuse,
                reuse_own)
            if outcome != "go":
                return self._nothing_stored(conn, outcome, holder)
            result, error, reports = (None, None, ()) if source is not None else evaluate()
            if source is None and result is not None and objective not in result.metrics:
                raise StorageError(
                    f"cannot record the result: it has no {objective!r} metric "
                    f"(it has: {', '.join(sorted(result.metrics)) or 'none'})"
                )
            params = _opt_int(result.params) if result is not None else None
            flops = _opt_int(result.flops) if result is not None else None
            if arch_row is None:
                arch_id = self._insert_architecture(conn, arch, space_key, arch_hash,
                                                    decisions_json, graph_json, params, flops)
            else:
                arch_id = arch_row.id
                if ((arch_row.params is None and params is not None)
                        or (arch_row.flops is None and flops is not None)):
                    conn.execute(_HOT.fill_arch, {"aid": arch_id, "params": params,
                                                  "flops": flops})
            now = utcnow()
            row: dict[str, Any] = {
                "study_id": study_id, "number": number, "architecture_id": arch_id,
                "decisions": decisions_json, "fidelity": fidelity, "seed": seed,
                "worker": worker, "started_at": now, "finished_at": now, "driver": driver,
            }
            metrics: dict[str, float] = {}
            if source is not None:
                trial_id, metrics = self._insert_reused(conn, row, source)
            elif result is not None:
                final = _check_metrics(result.metrics)
                row.update(
                    state="complete", objective_value=final[objective],
                    params=params, flops=flops,
                    latency_ms=_to_db_float(result.latency_ms),
                    train_seconds=_to_db_float(result.train_seconds),
                    epochs_done=_opt_int(result.epochs),
                    extra=_dumps("result.extra", result.extra) if result.extra else None,
                )
                trial_id = int(conn.execute(_HOT.insert_trial, row).inserted_primary_key[0])
                rows = [{"trial_id": trial_id, "name": k, "step": _check_int("step", st, 1),
                         "value": v}
                        for st, m in reports for k, v in _check_metrics(m).items()]
                rows += [{"trial_id": trial_id, "name": k, "step": None, "value": v}
                         for k, v in final.items()]
                if rows:
                    conn.execute(_HOT.insert_metric, rows)
                metrics = {k: v for k, v in final.items() if v is not None}
            else:
                row.update(state="failed", error=str(error or "unknown error"))
                trial_id = int(conn.execute(_HOT.insert_trial, row).inserted_primary_key[0])
            for key in ("params", "flops", "latency_ms"):
                if row.get(key) is not None:
                    metrics.setdefault(key, float(row[key]))
        self._numbers[trial_id] = number
        ok = row["state"] == "complete"
        value = row.get("objective_value") if ok else None
        return RecordedTrial(trial_id, number, row["state"], value, metrics, source is not None,
                             row.get("error"))

    def claim_trial(
        self,
        study_id: int,
        arch: Architecture,
        space_key: str,
        task_key: str,
        fidelity: int,
        seed: int,
        *,
        driver: str | None,
        worker: str | None = None,
        budget: int | None = None,
        reuse: bool = True,
        reuse_own: bool = True,
    ) -> RecordedTrial:
        """Claim the evaluation of ``arch`` in a study, in one transaction.

        The outcome (:class:`RecordedTrial`) is one of:

        * ``running``: a new trial owned by ``driver`` was stored; evaluate it, then
          :meth:`complete_trial` or :meth:`fail_trial` it;
        * ``complete`` with ``reused``: an earlier complete evaluation (this study's
          own, or with ``reuse`` any study's on the same space, task and fidelity)
          was copied into a new complete trial;
        * ``busy``: another driver is evaluating the architecture in this study;
          nothing was stored;
        * ``full``: the study's finished and running trials already reach
          ``budget``; nothing was stored;
        * ``known`` (only with ``reuse_own=False``): the study itself has a
          complete evaluation of it (perhaps by another driver); nothing was stored,
          and ``trial_id``, ``value`` and ``metrics`` are that trial's.

        The database enforces the claim: a partial unique index allows one running
        or complete evaluation per architecture, study and fidelity, and claims on
        one study are serialised (a row lock on PostgreSQL, ``BEGIN IMMEDIATE`` on
        SQLite), so that drivers in several processes or machines never train the
        same architecture twice in a study, nor exceed its budget.
        """
        fidelity = _check_int("fidelity", fidelity, 0)
        seed = _check_int("seed", seed)
        arch_hash, decisions_json, graph_json = _arch_json(arch)
        with self._core_write("claim a trial") as conn:
            outcome, arch_row, number, source, holder = self._claim_checks(
                conn, study_id, space_key, task_key, arch_hash, fidelity, budget, reuse,
                reuse_own)
            if outcome != "go":
                return self._nothing_stored(conn, outcome, holder)
            if arch_row is None:
                arch_id = self._insert_architecture(conn, arch, space_key, arch_hash,
                                                    decisions_json, graph_json)
            else:
                arch_id = arch_row.id
            now = utcnow()
            row: dict[str, Any] = {
                "study_id": study_id, "number": number, "architecture_id": arch_id,
                "decisions": decisions_json, "fidelity": fidelity, "seed": seed,
                "worker": worker, "started_at": now, "driver": driver,
            }
            if source is not None:
                row["finished_at"] = now
                trial_id, metrics = self._insert_reused(conn, row, source)
                for key in ("params", "flops", "latency_ms"):
                    if row.get(key) is not None:
                        metrics.setdefault(key, float(row[key]))
                value = row["objective_value"]
                recorded = RecordedTrial(trial_id, number, "complete", value, metrics, True)
            else:
                row.update(state="running", heartbeat_at=now)
                trial_id = int(conn.execute(_HOT.insert_trial, row).inserted_primary_key[0])
                recorded = RecordedTrial(trial_id, number, "running", None, {}, False)
        self._numbers[trial_id] = number
        return recorded

    def _insert_architecture(
        self, conn: Connection, arch: Architecture, space_key: str, arch_hash: str,
        decisions: str, graph: str, params: int | None = None, flops: int | None = None,
    ) -> int:
        values = {"space": arch.space, "space_key": space_key, "hash": arch_hash,
                  "graph": graph, "decisions": decisions, "params": params, "flops": flops,
                  "created_at": utcnow()}
        if self._is_sqlite:  # the IMMEDIATE transaction keeps other writers out
            return int(conn.execute(_HOT.insert_arch, values).inserted_primary_key[0])
        if self._dialect == "postgresql":  # a concurrent writer may insert it first
            found = conn.execute(_HOT.insert_arch_pg, values).scalar()
            if found is None:
                found = conn.execute(_HOT.arch_id, {"sk": space_key, "h": arch_hash}).scalar()
            return int(found)
        try:
            with conn.begin_nested():  # a concurrent writer may insert it first
                return int(conn.execute(_HOT.insert_arch, values).inserted_primary_key[0])
        except IntegrityError:
            found = conn.execute(_HOT.arch_id, {"sk": space_key, "h": arch_hash}).scalar()
            if found is None:
                raise
            return int(found)

    def set_pareto_front(
        self, study: str | int, trial_ids: Iterable[int], objectives: Sequence[str]
    ) -> None:
        """Replace the stored Pareto front of ``study`` by ``trial_ids`` (trials of it),
        computed for ``objectives`` (e.g. ``["val_accuracy:max", "latency_ms:min"]``)."""
        ids = sorted({int(i) for i in trial_ids})
        objectives_json = _dumps("objectives", list(objectives))
        with self._write(f"store the Pareto front of study {study!r}") as session:
            study_row = self._study_row(session, study)
            if ids:
                found = set(session.scalars(select(TrialRow.id).where(
                    TrialRow.id.in_(ids), TrialRow.study_id == study_row.id)).all())
                missing = sorted(set(ids) - found)
                if missing:
                    raise StorageError(
                        f"trials {missing} do not belong to study {study_row.name!r}"
                    )
            session.execute(delete(ParetoRow).where(ParetoRow.study_id == study_row.id))
            now = utcnow()
            if ids:
                session.execute(insert(ParetoRow), [
                    {"study_id": study_row.id, "trial_id": i, "objectives": objectives_json,
                     "updated_at": now} for i in ids])

    def pareto_front(self, study: str | int) -> tuple[list[str], list[TrialRecord]]:
        """The stored Pareto front of ``study``: its objectives and its trials (by
        number); ``([], [])`` when none was stored (a single-objective study)."""
        with self._read(f"read the Pareto front of study {study!r}") as session:
            study_row = self._study_row(session, study)
            rows = session.execute(
                select(TrialRow, ArchitectureRow, ParetoRow.objectives)
                .join(ParetoRow, ParetoRow.trial_id == TrialRow.id)
                .join(ArchitectureRow, ArchitectureRow.id == TrialRow.architecture_id)
                .where(ParetoRow.study_id == study_row.id)
                .order_by(TrialRow.number)
            ).all()
            if not rows:
                return [], []
            objectives = list(_loads(rows[0][2]))
            return objectives, self._records(session, [(t, a) for t, a, _ in rows])

    def interrupt_running(self, study_id: int, driver: str | None = None) -> int:
        """Mark the study's trials still ``running`` as ``interrupted`` (only those of
        ``driver``, if given); returns how many.

        Interrupted trials release their claim and do not count towards the budget;
        the next run evaluates those architectures again.
        """
        with self._write(f"interrupt running trials of study {study_id}") as session:
            query = update(TrialRow).where(
                TrialRow.study_id == study_id, TrialRow.state == "running")
            if driver is not None:
                query = query.where(TrialRow.driver == driver)
            result = session.execute(
                query.values(
                    state="interrupted",
                    finished_at=utcnow(),
                    error="interrupted: the driver stopped before the trial finished",
                )
            )
            return int(result.rowcount or 0)

    def interrupt_abandoned(self, study_id: int, *, lease_s: float = drivers.LEASE_S) -> int:
        """Interrupt the study's running trials whose driver is dead (see
        :func:`naslab.core.drivers.driver_alive`); returns how many. Trials of live
        drivers, on this machine or others, are left running."""
        with self._write(f"interrupt abandoned trials of study {study_id}") as session:
            rows = session.execute(
                select(TrialRow.id, TrialRow.driver, TrialRow.heartbeat_at).where(
                    TrialRow.study_id == study_id, TrialRow.state == "running")
            ).all()
            now = utcnow()
            dead = [r.id for r in rows
                    if not drivers.driver_alive(r.driver, r.heartbeat_at, now=now,
                                                lease_s=lease_s)]
            if dead:
                session.execute(
                    update(TrialRow)
                    .where(TrialRow.id.in_(dead), TrialRow.state == "running")
                    .values(state="interrupted", finished_at=now,
                            error="interrupted: its driver stopped before the trial finished")
                )
            return len(dead)

    def heartbeat(self, study_id: int, driver: str) -> int:
        """Say that ``driver`` is alive: refresh ``heartbeat_at`` of its running trials
        in the study; returns how many."""
        with self._write("refresh a heartbeat") as session:
            result = session.execute(
                update(TrialRow)
                .where(TrialRow.study_id == study_id, TrialRow.state == "running",
                       TrialRow.driver == driver)
                .values(heartbeat_at=utcnow())
            )
            return int(result.rowcount or 0)

    def trials_since(
        self,
        study: str | int,
        after_number: int,
        ids: Iterable[int] = (),
        *,
        exclude_driver: str | None = None,
    ) -> list[TrialRecord]:
        """The study's trials numbered above ``after_number`` (but none of
        ``exclude_driver``'s), plus those with the given ``ids``, ordered by number:
        what a driver needs to follow the trials that other drivers of the same study
        start and finish."""
        wanted = sorted({int(i) for i in ids})
        with self._read(f"read new trials of study {study!r}") as session:
            study_row = self._study_row(session, study)
            cond = TrialRow.number > after_number
            if exclude_driver is not None:
                cond = cond & (TrialRow.driver.is_(None) | (TrialRow.driver != exclude_driver))
            if wanted:
                cond = cond | TrialRow.id.in_(wanted)
            rows = session.execute(
                select(TrialRow, ArchitectureRow)
                .join(ArchitectureRow, ArchitectureRow.id == TrialRow.architecture_id)
                .where(TrialRow.study_id == study_row.id, cond)
                .order_by(TrialRow.number)
            ).all()
            return self._records(session, [tuple(r) for r in rows])

    # ------------------------------------------------------------------ trials: reading

    def trials(self, study: str | int, states: Iterable[str] | None = None) -> list[TrialRecord]:
        """The trials of a study (by name or id), ordered by number.

        Args:
            study: the study's name or id.
            states: keep only trials in these states (default: all).

        Raises:
            UnknownNameError: no such study, or an unknown state.
        """
        wanted = _check_states(states)
        with self._read(f"read trials of study {study!r}") as session:
            study_row = self._study_row(session, study)
            query = (
                select(TrialRow, ArchitectureRow)
                .join(ArchitectureRow, ArchitectureRow.id == TrialRow.architecture_id)
                .where(TrialRow.study_id == study_row.id)
                .order_by(TrialRow.number)
            )
            metric_query = (
                select(MetricRow.trial_id, MetricRow.name, MetricRow.value)
                .join(TrialRow, TrialRow.id == MetricRow.trial_id)
                .where(TrialRow.study_id == study_row.id, MetricRow.step.is_(None))
                .order_by(MetricRow.id)
            )
            if wanted is not None:
                query = query.where(TrialRow.state.in_(wanted))
                metric_query = metric_query.where(TrialRow.state.in_(wanted))
            rows = session.execute(query).all()
            metrics = _group_metrics(session.execute(metric_query).all())
        return [_trial_record(t, a, metrics.get(t.id, {})) for t, a in rows]

    def count_trials(self, study: str | int, states: Iterable[str] | None = None) -> int:
        """How many trials the study has (in ``states``, if given)."""
        wanted = _check_states(states)
        with self._read(f"count trials of study {study!r}") as session:
            study_row = self._study_row(session, study)
            query = select(func.count(TrialRow.id)).where(TrialRow.study_id == study_row.id)
            if wanted is not None:
                query = query.where(TrialRow.state.in_(wanted))
            return int(session.scalar(query) or 0)

    def trial_number(self, trial_id: int) -> int:
        """The number (order within its study) of trial ``trial_id``.

        Raises:
            StorageError: no such trial.
        """
        if trial_id not in self._numbers:
            with self._read(f"read trial {trial_id}") as session:
                self._numbers[trial_id] = _trial_row(session, trial_id).number
        return self._numbers[trial_id]

    def trial(self, trial_id: int) -> TrialRecord | None:
        """One trial by id, or None."""
        with self._read(f"read trial {trial_id}") as session:
            row = session.execute(
                select(TrialRow, ArchitectureRow)
                .join(ArchitectureRow, ArchitectureRow.id == TrialRow.architecture_id)
                .where(TrialRow.id == trial_id)
            ).first()
            if row is None:
                return None
            return self._records(session, [tuple(row)])[0]

    def best_trials(self, study: str | int, k: int = 1) -> list[TrialRecord]:
        """The ``k`` complete trials with the best objective (direction-aware).

        Ties go to the earlier trial; trials whose objective is NaN are left out.
        """
        k = _check_int("k", k, 1)
        with self._read(f"read best trials of study {study!r}") as session:
            study_row = self._study_row(session, study)
            objective = TrialRow.objective_value
            order = objective.asc() if study_row.direction == "minimize" else objective.desc()
            rows = session.execute(
                select(TrialRow, ArchitectureRow)
                .join(ArchitectureRow, ArchitectureRow.id == TrialRow.architecture_id)
                .where(
                    TrialRow.study_id == study_row.id,
                    TrialRow.state == "complete",
                    objective.is_not(None),
                )
                .order_by(order, TrialRow.number)
                .limit(k)
            ).all()
            return self._records(session, [tuple(r) for r in rows])

    def find_result(
        self,
        space_key: str,
        task_key: str,
        fidelity: int,
        arch_hash: str,
        *,
        objective: str | None = None,
        direction: str = "maximize",
    ) -> TrialRecord | None:
        """The best complete evaluation of an architecture, from any study, or None.

        Only trials that were evaluated themselves (not reused) of studies with the
        same ``task_key``, at the same ``space_key`` and ``fidelity``, count; if
        ``objective`` is given, only studies with that objective. "Best" is by
        objective value in ``direction``; ties go to the oldest trial.
        """
        if direction not in DIRECTIONS:
            raise ConfigError(
                f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}"
            )
        value = TrialRow.objective_value
        query = (
            select(TrialRow, ArchitectureRow)
            .join(ArchitectureRow, ArchitectureRow.id == TrialRow.architecture_id)
            .join(StudyRow, StudyRow.id == TrialRow.study_id)
            .where(
                ArchitectureRow.space_key == space_key,
                ArchitectureRow.hash == arch_hash,
                StudyRow.task_key == task_key,
                TrialRow.fidelity == fidelity,
                TrialRow.state == "complete",
                TrialRow.reused_from.is_(None),
            )
            .order_by(
                value.is_(None),
                value.asc() if direction == "minimize" else value.desc(),
                TrialRow.id,
            )
            .limit(1)
        )
        if objective is not None:
            query = query.where(StudyRow.objective == objective)
        with self._read("look up an earlier result") as session:
            row = session.execute(query).first()
            if row is None:
                return None
            return self._records(session, [tuple(row)])[0]

    def _records(
        self, session: Session, rows: Sequence[tuple[TrialRow, ArchitectureRow]]
    ) -> list[TrialRecord]:
        if not rows:
            return []
        ids = [t.id for t, _ in rows]
        metric_rows = session.execute(
            select(MetricRow.trial_id, MetricRow.name, MetricRow.value)
            .where(MetricRow.trial_id.in_(ids), MetricRow.step.is_(None))
            .order_by(MetricRow.id)
        ).all()
        metrics = _group_metrics(metric_rows)
        return [_trial_record(t, a, metrics.get(t.id, {})) for t, a in rows]

    def load_weights(self, trial_id: int) -> dict[str, torch.Tensor] | None:
        """The trained weights of a trial (a state dict of CPU tensors), or None.

        For a reused trial, the weights of the trial it reused.
        """
        with self._read(f"load weights of trial {trial_id}") as session:
            row = session.get(WeightsRow, trial_id)
            if row is None:
                source = session.scalar(select(TrialRow.reused_from).where(TrialRow.id == trial_id))
                if source is not None:
                    row = session.get(WeightsRow, source)
            if row is None:
                return None
            fmt, data = row.format, row.data
        if fmt != _WEIGHTS_FORMAT:
            raise StorageError(f"weights of trial {trial_id} are in unknown format {fmt!r}")
        try:
            return _bytes_to_weights(data)
        except Exception as exc:  # safetensors raises its own error types
            raise StorageError(f"weights of trial {trial_id} are corrupted: {exc}") from exc

    def learning_curve(self, trial_id: int) -> dict[str, list[tuple[int, float]]]:
        """Per-epoch metrics of a trial: name -> [(step, value), ...] by step."""
        with self._read(f"read the learning curve of trial {trial_id}") as session:
            rows = session.execute(
                select(MetricRow.name, MetricRow.step, MetricRow.value)
                .where(MetricRow.trial_id == trial_id, MetricRow.step.is_not(None))
                .order_by(MetricRow.name, MetricRow.step)
            ).all()
        curves: dict[str, list[tuple[int, float]]] = {}
        for name, step, value in rows:
            curves.setdefault(name, []).append((int(step), _from_db_float(value)))
        return curves

    def study_curves(
        self, study: str | int, metric: str, states: Iterable[str] | None = None
    ) -> list[tuple[int, dict[int, float]]]:
        """Per-epoch values of ``metric`` for every trial of a study (in ``states``, if
        given): ``[(trial number, {step: value}), ...]`` ordered by trial number."""
        wanted = _check_states(states)
        with self._read(f"read learning curves of study {study!r}") as session:
            study_row = self._study_row(session, study)
            query = (
                select(TrialRow.number, MetricRow.step, MetricRow.value)
                .join(TrialRow, TrialRow.id == MetricRow.trial_id)
                .where(
                    TrialRow.study_id == study_row.id,
                    MetricRow.name == metric,
                    MetricRow.step.is_not(None),
                )
                .order_by(TrialRow.number, MetricRow.step)
            )
            if wanted is not None:
                query = query.where(TrialRow.state.in_(wanted))
            rows = session.execute(query).all()
        curves: dict[int, dict[int, float]] = {}
        for number, step, value in rows:
            curves.setdefault(int(number), {})[int(step)] = _from_db_float(value)
        return list(curves.items())

    # ------------------------------------------------------------------ predictors

    def results_for_prediction(
        self, space_key: str, task_key: str, metric: str
    ) -> list[StoredResult]:
        """Every complete, self-evaluated (not reused) result of ``space_key`` on
        ``task_key`` with a final ``metric``, from every study, oldest first."""
        query = (
            select(TrialRow, ArchitectureRow, StudyRow.name, MetricRow.value)
            .join(ArchitectureRow, ArchitectureRow.id == TrialRow.architecture_id)
            .join(StudyRow, StudyRow.id == TrialRow.study_id)
            .join(MetricRow, MetricRow.trial_id == TrialRow.id)
            .where(
                ArchitectureRow.space_key == space_key,
                StudyRow.task_key == task_key,
                TrialRow.state == "complete",
                TrialRow.reused_from.is_(None),
                MetricRow.name == metric,
                MetricRow.step.is_(None),
            )
            .order_by(TrialRow.id)
        )
        with self._read("read results for a predictor") as session:
            rows = session.execute(query).all()
        out = []
        for trial, arch, study, value in rows:
            out.append(
                StoredResult(
                    trial_id=trial.id,
                    study=study,
                    arch_hash=arch.hash,
                    space=arch.space,
                    graph=json.loads(arch.graph),
                    decisions=json.loads(arch.decisions),
                    fidelity=trial.fidelity,
                    value=_from_db_float(value),
                    params=trial.params,
                    flops=trial.flops,
                )
            )
        return out

    def task_keys(self, space_key: str) -> list[tuple[str, int]]:
        """The task keys that studies of ``space_key`` used, with their complete trials."""
        query = (
            select(StudyRow.task_key, func.count(TrialRow.id))
            .join(TrialRow, TrialRow.study_id == StudyRow.id)
            .where(StudyRow.space_key == space_key, TrialRow.state == "complete")
            .group_by(StudyRow.task_key)
            .order_by(func.count(TrialRow.id).desc())
        )
        with self._read("list task keys") as session:
            return [(str(k), int(n)) for k, n in session.execute(query).all()]

    def get_proxies(
        self,
        space_key: str,
        hashes: Sequence[str],
        task_key: str,
        batch_size: int,
        seed: int,
    ) -> dict[str, dict[str, float]]:
        """Stored zero-cost proxies: ``{arch hash: {proxy name: value}}`` (NaN for NULL)."""
        out: dict[str, dict[str, float]] = {}
        unique = list(dict.fromkeys(hashes))
        with self._read("read zero-cost proxies") as session:
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                rows = session.execute(
                    select(ArchitectureRow.hash, ProxyRow.name, ProxyRow.value)
                    .join(ProxyRow, ProxyRow.architecture_id == ArchitectureRow.id)
                    .where(
                        ArchitectureRow.space_key == space_key,
                        ArchitectureRow.hash.in_(chunk),
                        ProxyRow.task_key == task_key,
                        ProxyRow.batch_size == batch_size,
                        ProxyRow.seed == seed,
                    )
                ).all()
                for arch_hash, name, value in rows:
                    out.setdefault(arch_hash, {})[name] = _from_db_float(value)
        return out

    def put_proxies(
        self,
        space_key: str,
        arch: Architecture,
        task_key: str,
        batch_size: int,
        seed: int,
        values: Mapping[str, float],
    ) -> None:
        """Store zero-cost proxy values of ``arch`` (values already stored are kept)."""
        arch_json = _arch_json(arch)
        with self._write("store zero-cost proxies") as session:
            arch_id = _upsert_architecture(session, arch, space_key, *arch_json)
            have = set(
                session.scalars(
                    select(ProxyRow.name).where(
                        ProxyRow.architecture_id == arch_id,
                        ProxyRow.task_key == task_key,
                        ProxyRow.batch_size == batch_size,
                        ProxyRow.seed == seed,
                    )
                )
            )
            for name, value in values.items():
                if name in have:
                    continue
                session.add(
                    ProxyRow(
                        architecture_id=arch_id,
                        task_key=task_key,
                        name=str(name),
                        batch_size=int(batch_size),
                        seed=int(seed),
                        value=_to_db_float(value),
                        created_at=utcnow(),
                    )
                )

    def save_predictor(
        self,
        name: str,
        data: bytes,
        *,
        kind: str,
        n_train: int,
        params: Mapping[str, Any],
        summary: Mapping[str, Any],
        space: str | None = None,
        space_key: str | None = None,
        task_key: str | None = None,
        target: str | None = None,
    ) -> int:
        """Store a fitted predictor (safetensors bytes) as the next version of ``name``.

        Returns the new version number (1 for a new name).
        """
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ConfigError(f"a predictor's name must be 1-200 characters, got {name!r}")
        params_json = _dumps("the predictor's settings", dict(params))
        summary_json = _dumps("the predictor's summary", dict(summary))
        for attempt in range(3):
            try:
                with self._write(f"save predictor {name!r}") as session:
                    latest = session.scalar(
                        select(func.max(PredictorRow.version)).where(PredictorRow.name == name)
                    )
                    version = int(latest or 0) + 1
                    session.add(
                        PredictorRow(
                            name=name,
                            version=version,
                            kind=kind,
                            space=space,
                            space_key=space_key,
                            task_key=task_key,
                            target=target,
                            n_train=int(n_train),
                            params=params_json,
                            summary=summary_json,
                            data=bytes(data),
                            created_at=utcnow(),
                        )
                    )
                return version
            except StorageError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def list_predictors(self, name: str | None = None) -> list[PredictorRecord]:
        """Saved predictors (every version; ``data`` left out), by name and version."""
        query = select(PredictorRow).order_by(PredictorRow.name, PredictorRow.version)
        if name is not None:
            query = query.where(PredictorRow.name == name)
        with self._read("list predictors") as session:
            rows = session.scalars(query.options(defer(PredictorRow.data))).all()
            return [_predictor_record(row, with_data=False) for row in rows]

    def load_predictor_record(self, name: str, version: int | None = None) -> PredictorRecord:
        """A saved predictor with its data: ``version``, or the latest one.

        Raises:
            UnknownNameError: no predictor of that name (or version) is stored.
        """
        query = select(PredictorRow).where(PredictorRow.name == name)
        if version is None:
            query = query.order_by(PredictorRow.version.desc()).limit(1)
        else:
            query = query.where(PredictorRow.version == int(version))
        with self._read(f"load predictor {name!r}") as session:
            row = session.scalars(query).first()
            if row is None:
                known = session.scalars(
                    select(PredictorRow.name).distinct().order_by(PredictorRow.name)
                ).all()
                if version is not None and name in known:
                    versions = session.scalars(
                        select(PredictorRow.version)
                        .where(PredictorRow.name == name)
                        .order_by(PredictorRow.version)
                    ).all()
                    raise ConfigError(
                        f"predictor {name!r} has no version {version}; versions: "
                        + ", ".join(str(v) for v in versions)
                    )
                raise UnknownNameError("predictor", name, known)
            return _predictor_record(row, with_data=True)

    # ------------------------------------------------------------------ schema

    def describe_schema(self) -> list[SchemaObject]:
        """The documented tables and views (:data:`~naslab.db.models.TABLES`,
        :data:`~naslab.db.models.VIEWS`) with the columns and types the database
        really has, tables first."""
        self._check_open()
        try:
            with self._engine.connect() as conn:
                have = inspect(conn)
                out = []
                for kind, docs in (("table", TABLES), ("view", VIEWS)):
                    for name, text in docs.items():
                        columns = [(str(c["name"]), str(c["type"]))
                                   for c in have.get_columns(name)]
                        out.append(SchemaObject(name, kind, text, columns))
                conn.rollback()
                return out
        except SQLAlchemyError as exc:
            raise self._error("read the schema", exc) from exc

    # ------------------------------------------------------------------ read-only SQL

    def query_readonly(
        self,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        max_rows: int | None = None,
        timeout_s: float | None = 60.0,
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run ONE read-only SQL statement; returns (column names, rows).

        The database itself refuses writes: on SQLite the query runs on a
        separate connection opened read-only (``mode=ro``, plus ``query_only``),
        with an authorizer that also refuses ATTACH, transaction control and
        temporary objects; on other databases it runs in a ``READ ONLY``
        transaction that is rolled back afterwards.

        Args:
            sql: one statement (a trailing ``;`` is fine).
            params: parameters in the driver's style (``?`` or ``:name`` for
                SQLite, ``%(name)s`` for psycopg).
            max_rows: return at most this many rows.
            timeout_s: stop the query after this long (SQLite and PostgreSQL).

        Raises:
            QueryError: several statements, or any database error; the message
                is the database's.
        """
        self._check_open()
        statement = _single_statement(sql, self._dialect)
        if max_rows is not None:
            max_rows = _check_int("max_rows", max_rows, 0)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            if self._is_sqlite:
                return self._query_sqlite(statement, params, max_rows, deadline, timeout_s)
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
        dbapi = getattr(self._engine.dialect, "loaded_dbapi", None)
        if dbapi is not None and isinstance(getattr(dbapi, "Error", None), type):
            errors.append(dbapi.Error)
        return tuple(errors)

    def _query_sqlite(
        self,
        statement: str,
        params: Any,
        max_rows: int | None,
        deadline: float | None,
        timeout_s: float | None,
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        shared = self._memory or self._sqlite_path is None
        engine = self._engine if shared else self._readonly_engine()
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

    def _readonly_engine(self) -> Engine:
        with self._ro_lock:
            return self._ro_engine or self._make_readonly_engine()

    def _make_readonly_engine(self) -> Engine:
        if self._ro_engine is None:
            uri = f"file:{quote(str(self._sqlite_path))}?mode=ro"
            busy_ms = self._busy_ms

            def connect() -> sqlite3.Connection:
                conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
                conn.isolation_level = None  # never an implicit BEGIN
                conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
                conn.execute("PRAGMA query_only = ON")
                return conn

            self._ro_engine = create_engine("sqlite://", creator=connect, poolclass=QueuePool)
        return self._ro_engine

    def _query_generic(
        self, statement: str, params: Any, max_rows: int | None, timeout_s: float | None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        engine = self._engine
        if self._dialect == "postgresql" and self._url.get_driver_name() in ("psycopg", "psycopg2"):
            engine = self._pg_readonly_engine()
        with engine.connect() as conn:
            try:
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                if timeout_s is not None and self._dialect == "postgresql":
                    ms = max(1, int(timeout_s * 1000))
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
                return _fetch(conn, statement, params, max_rows)
            finally:
                conn.rollback()

    def _pg_readonly_engine(self) -> Engine:
        """Connections on which every transaction is read-only by default, so that
        even a statement that ends the READ ONLY transaction cannot write."""
        with self._ro_lock:
            return self._ro_engine or self._make_pg_readonly_engine()

    def _make_pg_readonly_engine(self) -> Engine:
        if self._ro_engine is None:
            self._ro_engine = create_engine(
                self._url,
                pool_size=1,
                connect_args={"options": "-c default_transaction_read_only=on"},
            )
        return self._ro_engine


# --------------------------------------------------------------------------- internals


def _parse_url(raw: Any) -> tuple[URL, Path | None]:
    """The URL (SQLite paths made absolute) and the SQLite file, if any."""
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"the storage URL must be {_ACCEPTED_URLS}; got {raw!r}")
    try:
        url = make_url(raw.strip())
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"malformed storage URL {raw!r}; use {_ACCEPTED_URLS}") from exc
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


def _fetch(
    conn: Connection, statement: str, params: Any, max_rows: int | None
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


def _db_message(exc: BaseException, timeout_s: float | None) -> str:
    message = str(exc).strip()
    if message == "interrupted" and timeout_s is not None:
        message = f"the query was stopped after the time limit of {timeout_s:g} s"
    return message


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


def _check_same_study(row: StudyRow, requested: Mapping[str, Any]) -> None:
    diffs = [
        f"{name}: stored {getattr(row, name)!r}, requested {value!r}"
        for name, value in requested.items()
        if getattr(row, name) != value
    ]
    if diffs:
        raise StudyConflictError(
            f"study {row.name!r} already exists with different settings ("
            + "; ".join(diffs)
            + "). Resume it with its stored settings, or choose a new study name."
        )


def _check_space_key(study: StudyRow, space_key: str) -> None:
    if space_key != study.space_key:
        raise StorageError(
            f"space_key {space_key!r} differs from study {study.name!r}'s {study.space_key!r}"
        )


def _check_states(states: Iterable[str] | None) -> list[str] | None:
    if states is None:
        return None
    if isinstance(states, str):
        states = [states]
    wanted = list(states)
    for state in wanted:
        if state not in TRIAL_STATES:
            raise UnknownNameError("trial state", state, TRIAL_STATES)
    return wanted


def _study_info(row: StudyRow) -> StudyInfo:
    return StudyInfo(
        id=row.id,
        name=row.name,
        space=row.space,
        space_key=row.space_key,
        space_config=_loads(row.space_config),
        task_key=row.task_key,
        searcher=row.searcher,
        objective=row.objective,
        direction=row.direction,
        budget=row.budget,
        fidelity=row.fidelity,
        seed=row.seed,
        config=_loads(row.config),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _trial_row(session: Session, trial_id: int) -> TrialRow:
    row = session.get(TrialRow, trial_id)
    if row is None:
        raise StorageError(f"there is no trial with id {trial_id}")
    return row


def _trial_record(t: TrialRow, a: ArchitectureRow, metrics: dict[str, float]) -> TrialRecord:
    return TrialRecord(
        id=t.id,
        study_id=t.study_id,
        number=t.number,
        arch_hash=a.hash,
        space=a.space,
        space_key=a.space_key,
        decisions=_loads(t.decisions),
        graph=_loads(a.graph),
        fidelity=t.fidelity,
        state=t.state,
        seed=t.seed,
        worker=t.worker,
        objective_value=t.objective_value,
        metrics=metrics,
        params=t.params,
        flops=t.flops,
        latency_ms=t.latency_ms,
        train_seconds=t.train_seconds,
        epochs_done=t.epochs_done,
        started_at=t.started_at,
        finished_at=t.finished_at,
        error=t.error,
        reused_from=t.reused_from,
        extra=_loads(t.extra),
        driver=t.driver,
    )


def _group_metrics(rows: Iterable[Any]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for trial_id, name, value in rows:
        out.setdefault(trial_id, {})[name] = _from_db_float(value)
    return out


def _predictor_record(row: PredictorRow, with_data: bool) -> PredictorRecord:
    return PredictorRecord(
        id=row.id,
        name=row.name,
        version=row.version,
        kind=row.kind,
        space=row.space,
        space_key=row.space_key,
        task_key=row.task_key,
        target=row.target,
        n_train=row.n_train,
        params=json.loads(row.params),
        summary=json.loads(row.summary),
        created_at=row.created_at,
        data=bytes(row.data) if with_data else b"",
    )


def _arch_json(arch: Architecture) -> tuple[str, str, str]:
    """(hash, decisions JSON, graph JSON) of an architecture, computed outside a transaction."""
    if not isinstance(arch, Architecture):
        raise ConfigError(f"expected an Architecture, got {type(arch).__name__}")
    return (
        arch.hash,
        _dumps("the architecture's decisions", dict(arch.decisions)),
        _dumps("the architecture's graph", graph_to_json(arch.graph)),
    )


def _upsert_architecture(
    session: Session,
    arch: Architecture,
    space_key: str,
    arch_hash: str,
    decisions: str,
    graph: str,
) -> int:
    """The id of the architecture's row, inserting it if new."""

    def lookup() -> int | None:
        return session.scalar(
            select(ArchitectureRow.id).where(
                ArchitectureRow.space_key == space_key, ArchitectureRow.hash == arch_hash
            )
        )

    found = lookup()
    if found is not None:
        return found
    row = ArchitectureRow(
        space=arch.space,
        space_key=space_key,
        hash=arch_hash,
        graph=graph,
        decisions=decisions,
        created_at=utcnow(),
    )
    try:
        with session.begin_nested():  # a concurrent writer may insert it first
            session.add(row)
    except IntegrityError:
        found = lookup()
        if found is None:
            raise
        return found
    return row.id


def _add_trial(
    session: Session,
    study_id: int,
    arch: Architecture,
    space_key: str,
    arch_json: tuple[str, str, str],
    fidelity: int,
    seed: int,
    worker: str | None,
    **fields: Any,
) -> TrialRow:
    """Insert a trial (next number of the study) of ``arch``, creating its row if new."""
    arch_id = _upsert_architecture(session, arch, space_key, *arch_json)
    trial = TrialRow(
        study_id=study_id,
        number=_next_number(session, study_id),
        architecture_id=arch_id,
        decisions=arch_json[1],
        fidelity=fidelity,
        seed=seed,
        worker=worker,
        **fields,
    )
    session.add(trial)
    session.flush()
    return trial


def _next_number(session: Session, study_id: int) -> int:
    last = session.scalar(select(func.max(TrialRow.number)).where(TrialRow.study_id == study_id))
    return 0 if last is None else int(last) + 1


def _put_metrics(
    session: Session, trial_id: int, step: int | None, values: Mapping[str, float | None]
) -> None:
    """Insert or replace the trial's metrics at ``step`` (None: final metrics)."""
    step_clause = MetricRow.step.is_(None) if step is None else MetricRow.step == step
    session.execute(
        delete(MetricRow).where(
            MetricRow.trial_id == trial_id, step_clause, MetricRow.name.in_(list(values))
        )
    )
    session.execute(
        insert(MetricRow),
        [{"trial_id": trial_id, "name": k, "step": step, "value": v} for k, v in values.items()],
    )


__all__ = [
    "DEFAULT_URL",
    "RecordedTrial",
    "SchemaObject",
    "STORAGE_ENV",
    "PredictorRecord",
    "Store",
    "StoredResult",
    "StudyInfo",
    "StudySummary",
    "TrialRecord",
]
