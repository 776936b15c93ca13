"""The :class:`Store`: the only code in naslab that talks SQL.

It keeps studies, trials, architectures, metrics and trained weights in any
database SQLAlchemy supports (SQLite by default, PostgreSQL for several machines),
in tables and views prefixed ``naslab_`` (:mod:`naslab.db.models`), so it can share
a database with Optuna.

The store is a small facade over its parts, one concern each:

============================  ==========================================================
``store.database``            engine, URL, dialect settings, transactions
                              (:mod:`naslab.db.engine`)
``store.studies``             create or resume, look up, list (:mod:`naslab.db.studies`)
``store.protocol``            claim, report, finish, fail, heartbeats, interruption
                              (:mod:`naslab.db.protocol`)
``store.trials``              reading trials, results, weights, learning curves
                              (:mod:`naslab.db.queries`)
``store.predictors``,         predictor data and versions, zero-cost proxies; Pareto
``store.fronts``              fronts (:mod:`naslab.db.derived`)
``store.sql``                 read-only SQL and the documented schema
                              (:mod:`naslab.db.console`)
============================  ==========================================================

Every method of a part is one short transaction: it commits before returning, and
on any error it rolls back and raises :class:`~naslab.core.errors.StorageError` (or
a more specific :class:`~naslab.core.errors.NaslabError`), leaving what is stored
unchanged. The records it returns are in :mod:`naslab.db.records`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from naslab.db.console import SqlConsole
from naslab.db.derived import ParetoFronts, PredictorData
from naslab.db.engine import DEFAULT_URL, STORAGE_ENV, Database
from naslab.db.migrate import open_schema
from naslab.db.protocol import TrialProtocol
from naslab.db.queries import TrialQueries
from naslab.db.readonly import check_at_head
from naslab.db.studies import StudyCatalog

__all__ = ["DEFAULT_URL", "STORAGE_ENV", "Store"]


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
        init: add naslab's tables to a database that holds other tables and no
            naslab schema (refused otherwise, unchanged: see :mod:`naslab.db.ownership`).
        read_only: open connections that cannot write (see
            :class:`~naslab.db.engine.Database`): the SQLite file must exist, the schema
            is never created or migrated (a database not at the newest revision is
            refused: run ``naslab db upgrade``), and every write raises StorageError.

    Raises:
        ConfigError: the URL is malformed, names an unknown backend or a driver
            that is not installed, or an SQLite directory that does not exist.
        StorageError: the database cannot be opened or its tables created, or it
            holds tables naslab did not create (and ``init`` is False).

    A new database gets the tables and views; an older one is upgraded by the
    schema migrations (:mod:`naslab.db.migrate`), in one transaction. Use as a
    context manager, or call :meth:`close`.
    """

    def __init__(
        self, url: str | None = None, *, busy_timeout_s: float = 30.0, upgrade: bool = True,
        init: bool = False, read_only: bool = False,
    ) -> None:
        #: The engine and its transactions.
        self.database = Database(url, busy_timeout_s=busy_timeout_s, read_only=read_only)
        try:
            if read_only:
                revision, upgraded_from = check_at_head(self.database), None
            else:
                revision, upgraded_from = open_schema(self.database, upgrade=upgrade,
                                                      init=init)
        except BaseException:
            self.database.close()
            raise
        #: The schema revision of the database (:mod:`naslab.db.migrate`).
        self.schema_revision: str = revision
        #: The revision this store upgraded the database from when it opened it
        #: (None: it was new or already current).
        self.upgraded_from: str | None = upgraded_from
        self.studies = StudyCatalog(self.database)
        self.protocol = TrialProtocol(self.database)
        self.trials = TrialQueries(self.database)
        self.predictors = PredictorData(self.database)
        self.fronts = ParetoFronts(self.database)
        self.sql = SqlConsole(self.database)

    @property
    def url(self) -> str:
        """The storage URL, with any password hidden."""
        return self.database.url

    @property
    def connect_url(self) -> str:
        """The storage URL with its password, for opening the same database elsewhere
        (another process). Do not print it."""
        return self.database.connect_url

    @property
    def dialect(self) -> str:
        """The database backend's name (``sqlite``, ``postgresql``, ...)."""
        return self.database.dialect

    @contextmanager
    def batch(self, *, savepoints: bool = True) -> Iterator[None]:
        """Group every write of this thread inside the block into one transaction,
        committed when the block ends (rolled back if it raises). With
        ``savepoints`` each write runs in its own savepoint, so a refused one leaves
        the others in; without (the trial loop's choice: it rolls a batch back on any
        error), writes cost two statements fewer.

        For table searches, where a commit costs more than a trial: a crash loses the
        uncommitted batch (never a committed result), and other connections see it
        only after the commit. On SQLite the batch holds the database's write lock,
        so other connections to the file wait. Nested calls join the open batch.
        """
        with self.database.batch(savepoints=savepoints):
            yield

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @property
    def read_only(self) -> bool:
        """Whether the store was opened read-only."""
        return self.database.read_only

    def __reduce__(self) -> tuple[Any, ...]:
        # A store sent to another process reopens the same database there.
        return (_reopen, (self.connect_url, self.read_only))

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection; the store cannot be used afterwards."""
        self.sql.close()
        self.database.close()


def _reopen(url: str, read_only: bool) -> Store:
    """The store at ``url`` opened again (in another process)."""
    return Store(url, read_only=read_only)
