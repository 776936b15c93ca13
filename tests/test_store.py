"""Tests of the SQL store (:mod:`naslab.db`).

The store contract (:class:`naslab.testing.stores.StoreContract`) runs against every
backend (the ``db_url`` fixture, :mod:`tests.databases`): a fresh SQLite file always,
and PostgreSQL when ``NASLAB_TEST_POSTGRES_URL`` names a database that the tests may
empty (e.g. ``postgresql+psycopg://user@localhost/test``). The tests after it are
specific to SQLite files, URLs and concurrent writers.
"""

from __future__ import annotations

import pickle
import sqlite3
import threading

import pytest

from naslab.core.errors import ConfigError, QueryError, StorageError
from naslab.db import Store
from naslab.db.models import Base
from naslab.testing.stores import StoreContract, new_study, run_trial, start, toy_arch, toy_result
from naslab.testing.stores import count_rows as count


class TestStore(StoreContract):
    """The contract (:mod:`naslab.testing.stores`) on every backend."""

    @pytest.fixture
    def store(self, db_url):
        with Store(db_url) as s:
            yield s


# ---------------------------------------------------------------- SQLite specifics


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "naslab.db"


def test_shares_a_database_with_optuna(db_path):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{db_path}"
    with Store(url) as store:
        run_trial(store, new_study(store, "nas"), toy_arch(), 0.5)
    opt = optuna.create_study(storage=url, study_name="hpo", direction="maximize")
    opt.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    with Store(url) as store:  # opens the same file after Optuna
        run_trial(store, store.studies.get("nas"), toy_arch(("b",)), 0.6)
        assert [s.name for s in store.studies.summaries()] == ["nas"]
        assert len(store.trials.list("nas")) == 2
        _, tables = store.sql.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        )
    names = {t for (t,) in tables}
    assert {"studies", "trials", "version_info"} <= names
    assert {t.name for t in Base.metadata.sorted_tables} <= names
    assert all(t.startswith("naslab_") for t in Base.metadata.tables)
    loaded = optuna.load_study(study_name="hpo", storage=url)
    assert len(loaded.trials) == 3
    opt2 = optuna.create_study(storage=url, study_name="hpo2")
    opt2.optimize(lambda trial: trial.suggest_float("y", 0, 1), n_trials=1)


def test_sqlite_settings(db_path):
    with Store(f"sqlite:///{db_path}") as store:
        with store.database.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert store.sql.query("PRAGMA journal_mode") == (["journal_mode"], [("wal",)])
        assert store.sql.query("PRAGMA table_info(naslab_weights)")[1][0][1] == "trial_id"


def test_readonly_refuses_attach_and_vacuum_into(db_path, tmp_path):
    with Store(f"sqlite:///{db_path}") as store:
        for sql in (
            f"ATTACH DATABASE '{tmp_path / 'new.db'}' AS x",
            f"VACUUM INTO '{tmp_path / 'copy.db'}'",
            "PRAGMA query_only = OFF",
            "PRAGMA journal_mode = DELETE",
            "BEGIN",
            "CREATE TEMP TABLE t (a)",
        ):
            with pytest.raises(QueryError):
                store.sql.query(sql)
        assert not (tmp_path / "new.db").exists() and not (tmp_path / "copy.db").exists()
        assert store.sql.query("PRAGMA journal_mode")[1] == [("wal",)]


def test_readonly_query_after_all_connections_closed(db_path):
    with Store(f"sqlite:///{db_path}") as store:
        new_study(store)
    with Store(f"sqlite:///{db_path}") as store:
        store.database.engine.dispose()  # no -shm file left behind
        assert count(store, "naslab_studies") == 1


def test_path_with_special_characters(tmp_path):
    folder = tmp_path / "my dir #1"
    folder.mkdir()
    # '?' starts a URL's query string, so it is written %3F
    with Store(f"sqlite:///{folder}/na slab%3F.db") as store:
        new_study(store)
        assert count(store, "naslab_studies") == 1
        with pytest.raises(QueryError, match="readonly"):
            store.sql.query("DELETE FROM naslab_studies")
    assert (folder / "na slab?.db").exists()


def test_readonly_query_time_limit(db_path):
    with Store(f"sqlite:///{db_path}") as store:
        endless = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n"
        )
        with pytest.raises(QueryError, match="time limit"):
            store.sql.query(endless, timeout_s=0.2)


def test_in_memory_store():
    with Store("sqlite://") as store:
        study = new_study(store)
        run_trial(store, study, toy_arch(), 0.5)
        with pytest.raises(QueryError, match="readonly"):
            store.sql.query("DELETE FROM naslab_trials")
        with pytest.raises(QueryError):
            store.sql.query("PRAGMA query_only = OFF")
        assert count(store, "naslab_trials") == 1
        run_trial(store, study, toy_arch(("b",)), 0.6)  # writable again afterwards
        assert count(store, "naslab_trials") == 2


@pytest.mark.parametrize(
    "url, match",
    [
        ("naslab.db", "malformed"),
        ("://nothing", "malformed"),
        ("nosuchdb://host/db", "unknown database backend"),
        ("sqlite:////no/such/dir/x.db", "does not exist"),
        ("", "storage URL"),
    ],
)
def test_bad_urls(url, match):
    with pytest.raises(ConfigError, match=match) as err:
        Store(url)
    if match in ("malformed", "unknown database backend"):
        assert "sqlite:///path.db" in str(err.value)


def test_missing_driver_is_a_config_error():
    pytest.importorskip("sqlalchemy.dialects.postgresql.pg8000")
    try:
        import pg8000  # noqa: F401
    except ImportError:  # a driver naslab does not install
        with pytest.raises(ConfigError, match="driver .*is not installed"):
            Store("postgresql+pg8000://user@localhost/db")
    else:
        pytest.skip("pg8000 is installed")


def test_default_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NASLAB_STORAGE", raising=False)
    with Store() as store:
        new_study(store)
    assert (tmp_path / "naslab.db").exists()
    monkeypatch.setenv("NASLAB_STORAGE", f"sqlite:///{tmp_path / 'env.db'}")
    with Store() as store:
        assert store.url.endswith("env.db") and store.studies.summaries() == []


def test_relative_path_is_fixed_when_opened(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store("sqlite:///rel.db")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    new_study(store)
    store.close()
    assert (tmp_path / "rel.db").exists() and not (tmp_path / "elsewhere" / "rel.db").exists()


def test_pickled_store_reopens(db_path):
    with Store(f"sqlite:///{db_path}") as store:
        new_study(store)
        with pickle.loads(pickle.dumps(store)) as copy:
            assert copy.studies.get("s1") is not None


def test_concurrent_writers_get_distinct_numbers(db_path):
    url = f"sqlite:///{db_path}"
    with Store(url) as store:
        study = new_study(store)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            with Store(url) as mine:
                for i in range(15):
                    tid = start(mine, study, toy_arch((f"w{k}", f"op{i}")), worker=f"w{k}")
                    mine.protocol.report(tid, 1, {"loss": 1.0})
                    mine.protocol.finish(tid, toy_result(i / 15), objective="val_accuracy")
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with Store(url) as store:
        numbers = [t.number for t in store.trials.list("s1")]
    assert numbers == list(range(60))


def test_locked_database_is_a_storage_error(db_path):
    with Store(f"sqlite:///{db_path}", busy_timeout_s=0.1) as store:
        study = new_study(store)
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StorageError, match="locked") as err:
                start(store, study, toy_arch())
            assert "[SQL:" not in str(err.value)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        start(store, study, toy_arch())
        assert [t.number for t in store.trials.list("s1")] == [0]


def test_a_database_from_before_the_stopped_state_is_refused_clearly(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE naslab_trials (id INTEGER PRIMARY KEY, state VARCHAR(16), "
            "CONSTRAINT ck_naslab_trials_state CHECK "
            "(state IN ('running', 'complete', 'failed', 'interrupted')))"
        )
        conn.execute("INSERT INTO naslab_trials (state) VALUES ('complete')")
    # (a table with only some of naslab's columns is not taken for naslab's at all)
    with pytest.raises(StorageError, match="older naslab.*'stopped'|naslab_trials that naslab "
                                           "did not create"):
        Store(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:  # nothing was changed
        assert conn.execute("SELECT count(*) FROM naslab_trials").fetchone() == (1,)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"naslab_trials"}
