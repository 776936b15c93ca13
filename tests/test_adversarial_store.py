"""Adversarial storage: databases naslab did not create (refused unchanged unless
``--init``), databases shared with Optuna (accepted), and weights that were changed
after they were stored (refused when loaded)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch

from naslab.core.errors import StorageError
from naslab.db import Store, migrate
from naslab.testing.stores import new_study, start, toy_arch, toy_result
from tests.cli_helpers import one_line_error, run_main


def foreign_sqlite(path: Path, *statements: str) -> str:
    """An SQLite file in rollback-journal mode holding the tables of ``statements``."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
        for statement in statements:
            conn.execute(statement)
    return f"sqlite:///{path}"


def file_state(path: Path) -> tuple[str, str, list[str]]:
    """(content hash, journal mode, tables) of an SQLite file."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with sqlite3.connect(path) as conn:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        tables = sorted(r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"))
    conn.close()
    return digest, mode, tables


def test_a_foreign_sqlite_file_is_refused_unchanged(tmp_path, monkeypatch, capsys):
    path = tmp_path / "app.db"
    url = foreign_sqlite(path, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
                         "INSERT INTO users (name) VALUES ('ada')")
    before = file_state(path)
    with pytest.raises(StorageError, match=r"not a naslab store.*users.*--init"):
        Store(url)
    code, _, err = run_main(monkeypatch, capsys, "db", "upgrade", "--storage", url)
    assert code == 2 and "users" in one_line_error(err)
    assert file_state(path) == before  # no table added, journal mode still 'delete'
    assert before[1] == "delete" and not Path(f"{path}-wal").exists()
    # --init adds naslab's tables beside the user's, which stay
    code, out, err = run_main(monkeypatch, capsys, "db", "upgrade", "--init", "--storage", url)
    assert code == 0, err
    _, _, tables = file_state(path)
    assert "users" in tables and migrate.VERSION_TABLE in tables
    with Store(url) as store:  # naslab's now: no --init needed any more
        assert store.schema_revision == migrate.head_revision()
        assert store.sql.query("SELECT name FROM users")[1] == [("ada",)]


def test_a_table_named_like_naslabs_is_never_taken_over(tmp_path):
    path = tmp_path / "clash.db"
    url = foreign_sqlite(path, "CREATE TABLE naslab_studies (id INTEGER PRIMARY KEY, "
                               "title TEXT)", "CREATE TABLE notes (body TEXT)")
    before = file_state(path)
    for init in (False, True):
        with pytest.raises(StorageError, match="naslab_studies.*naslab did not create"):
            Store(url, init=init)
        assert file_state(path) == before  # not stamped, nothing added


def test_a_foreign_postgresql_database_is_refused_unchanged(db_url):
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    try:
        with pytest.raises(StorageError, match="invoices"):
            Store(db_url)
        assert sa.inspect(engine).get_table_names() == ["invoices"]
        with Store(db_url, init=True) as store:
            assert store.schema_revision == migrate.head_revision()
    finally:
        engine.dispose()


def test_a_database_shared_with_optuna_is_naslabs(db_url, tmp_path):
    """Optuna's tables beside naslab's (the optuna-* searchers' default), or alone (an
    Optuna storage opened first), need no --init."""
    import optuna

    from naslab.optuna_storage import optuna_storage

    with Store(db_url) as store:
        optuna_storage(store).get_all_studies()
    with Store(db_url) as store:
        assert store.upgraded_from is None
    other = f"sqlite:///{tmp_path / 'optuna-only.db'}"
    optuna.storages.RDBStorage(other).get_all_studies()
    with Store(other) as store:
        assert store.schema_revision == migrate.head_revision()


def test_a_database_from_before_migrations_needs_no_init(tmp_path):
    from tests.test_migrations import old_sqlite

    with Store(old_sqlite(tmp_path / "old.db")) as store:
        assert store.upgraded_from == migrate.BASE_REVISION


# --------------------------------------------------------------------------- weights


def stored_weights(store: Store, weights: dict[str, torch.Tensor]) -> int:
    study = new_study(store)
    tid = start(store, study, toy_arch())
    store.protocol.finish(tid, toy_result(0.5, weights=weights), objective="val_accuracy")
    return tid


def test_weights_carry_their_digest(db_url):
    with Store(db_url) as store:
        tid = stored_weights(store, {"w": torch.arange(4.0)})
        (row,) = store.sql.query("SELECT data, sha256 FROM naslab_weights")[1]
        assert row[1] == hashlib.sha256(bytes(row[0])).hexdigest()
        assert store.trials.weights(tid)["w"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_bit_flipped_weights_are_refused(db_url):
    with Store(db_url) as store:
        tid = stored_weights(store, {"w": torch.arange(64.0)})
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        data = bytearray(conn.execute(sa.text("SELECT data FROM naslab_weights")).scalar())
        data[-3] ^= 0x10  # one bit of a tensor value
        conn.execute(sa.text("UPDATE naslab_weights SET data = :d"), {"d": bytes(data)})
    engine.dispose()
    with Store(db_url) as store, pytest.raises(StorageError, match="SHA-256"):
        store.trials.weights(tid)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_holding_nan_or_inf_are_refused(db_url, bad):
    with Store(db_url) as store:
        tid = stored_weights(store, {"ok": torch.zeros(2), "w": torch.tensor([1.0, bad])})
        with pytest.raises(StorageError, match="tensor 'w' holds NaN or infinite"):
            store.trials.weights(tid)


def test_weights_in_an_unknown_format_are_refused(db_url):
    with Store(db_url) as store:
        tid = stored_weights(store, {"w": torch.zeros(2)})
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE naslab_weights SET format = 'pickle'"))
    engine.dispose()
    with Store(db_url) as store, pytest.raises(StorageError, match="'pickle'.*safetensors"):
        store.trials.weights(tid)
