"""Optuna storages for the Optuna-based searchers, built by the application.

Searchers never open a database: a naslab study that runs an ``optuna-*`` (or
``guided-optuna``) searcher builds its Optuna storage here and gives it to the
searcher. By default the Optuna study lives in the naslab store's own database
(Optuna's tables ``studies``, ``trials``, ... beside naslab's ``naslab_*``), named
``naslab:<study>``, so ``optuna-dashboard`` shows the search live. The searcher
option ``storage`` may say ``"memory"`` instead, or give the SQLAlchemy URL of
another database.

On SQLite, Optuna's engine gets the store's settings
(:func:`naslab.db.engine.configure_sqlite`): a busy timeout and write transactions
begun ``IMMEDIATE`` (so it shares the file with naslab's writers in WAL mode
without "database is locked"), and ``synchronous = NORMAL`` (Optuna commits each
suggested parameter on its own).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from naslab.core.errors import ConfigError, StorageError
from naslab.db.engine import configure_sqlite, parse_url

if TYPE_CHECKING:
    import optuna

    from naslab.db.store import Store

__all__ = ["optuna_storage", "searcher_storage_options"]

#: Seconds an SQLite connection of Optuna's waits for another's lock.
SQLITE_BUSY_S = 30.0
_RACING = ("already exists", "UNIQUE constraint", "duplicate key")


def optuna_storage(target: Store | str | None) -> optuna.storages.BaseStorage:
    """An Optuna storage on a naslab store's database (a :class:`~naslab.Store` or
    its URL), with the store's dialect settings; in memory for None, ``"memory"`` or
    an in-memory SQLite URL."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    url = getattr(target, "connect_url", target)
    if url is None or url == "memory":
        return optuna.storages.InMemoryStorage()
    parsed, path = parse_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and path is None and parsed.database in (None, "", ":memory:"):
        return optuna.storages.InMemoryStorage()
    kwargs: dict[str, Any] = {}
    if sqlite:  # isolation_level None: sqlite3 issues no BEGIN; naslab's listener does
        kwargs = {"connect_args": {"isolation_level": None, "timeout": SQLITE_BUSY_S}}
    shown = parsed.render_as_string(hide_password=True)
    for attempt in range(5):
        try:
            storage = optuna.storages.RDBStorage(
                parsed.render_as_string(hide_password=False), engine_kwargs=kwargs)
            break
        except SQLAlchemyError as exc:
            # several drivers creating Optuna's tables (and stamping its alembic
            # version) at once: one wins, the others find them on the next try
            if attempt == 4 or not any(r in str(exc) for r in _RACING):
                raise StorageError(f"cannot open an Optuna storage in {shown}: {exc}") from exc
            time.sleep(0.1 * (attempt + 1))
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"cannot use {shown!r} as Optuna storage: {exc}") from exc
    if sqlite:
        configure_sqlite(storage.engine, busy_ms=int(SQLITE_BUSY_S * 1000),
                         wal=_is_wal(storage), begin="IMMEDIATE")
        storage.engine.dispose()  # the connections opened so far lack the settings
    return storage


def _is_wal(storage: Any) -> bool:
    with storage.engine.connect() as conn:
        return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower() == "wal"


def searcher_storage_options(
    options: Mapping[str, Any], store: Store, study_name: str
) -> dict[str, Any]:
    """The options of an Optuna-based searcher with its storage and study name filled
    in: ``storage`` (None: the store's database; ``"memory"``; or a URL) becomes an
    Optuna storage, ``study_name`` ``naslab:<study_name>`` unless given."""
    from naslab.searchers.optuna_searcher import optuna_study_name

    out = dict(options)
    out.setdefault("study_name", optuna_study_name(study_name))
    where = out.get("storage")
    if where is not None and not isinstance(where, str):
        return out  # a ready Optuna storage
    if where is not None and not where:
        raise ConfigError("searcher option storage must be 'memory' or an SQLAlchemy URL")
    out["storage"] = optuna_storage(store if where is None else where)
    return out
