"""The CLI's store commands on every backend: ``naslab sql`` (read-only at the
database level), ``naslab schema`` and ``naslab db upgrade|version``."""

from __future__ import annotations

import gzip
import json
import sqlite3

import pytest

from naslab.db import Store, migrate
from naslab.db.models import TABLES, VIEWS
from tests.cli_helpers import invoke, run_main

SEARCH = ("search", "--space", "nasbench_graph", "--task", "cora", "--budget", "5",
          "--study", "s0")
WRITES = {
    "INSERT INTO naslab_metrics (trial_id, name, step, value) VALUES (1, 'x', NULL, 1.0)":
        "INSERT",
    "DELETE FROM naslab_trials": "DELETE",
    "DROP TABLE naslab_metrics": "DROP TABLE",
    "UPDATE naslab_studies SET budget = 1": "UPDATE",
    "CREATE TABLE evil (x INT)": "CREATE TABLE",
}


def error_of(err: str) -> str:
    assert "Traceback" not in err
    assert err.startswith("error: "), err
    return err.removeprefix("error: ").strip()


def snapshot(url: str) -> str:
    return invoke("sql", "SELECT * FROM naslab_results ORDER BY trial_id", "--format", "json",
                  "--storage", url)


@pytest.mark.parametrize("statement", list(WRITES))
def test_sql_cannot_change_anything(db_url, monkeypatch, capsys, statement):
    invoke(*SEARCH, "--storage", db_url)
    before = snapshot(db_url)
    capsys.readouterr()
    code, out, err = run_main(monkeypatch, capsys, "sql", statement, "--storage", db_url)
    assert code == 2 and out == ""
    message = error_of(err)
    if db_url.startswith("sqlite"):
        assert message == "attempt to write a readonly database"
    else:
        assert message == f"cannot execute {WRITES[statement]} in a read-only transaction"
    assert snapshot(db_url) == before
    assert json.loads(invoke("sql", "SELECT budget FROM naslab_studies", "--format", "json",
                             "--storage", db_url)) == [{"budget": 5}]


@pytest.mark.parametrize("statement", [
    "COMMIT",
    "SET TRANSACTION READ WRITE",
    "BEGIN",
])
def test_sql_cannot_leave_the_read_only_transaction(db_url, monkeypatch, capsys, statement):
    invoke(*SEARCH, "--storage", db_url)
    before = snapshot(db_url)
    run_main(monkeypatch, capsys, "sql", statement, "--storage", db_url)
    code, _, err = run_main(monkeypatch, capsys, "sql", "DELETE FROM naslab_metrics",
                            "--storage", db_url)
    assert code == 2 and "read" in error_of(err)
    assert snapshot(db_url) == before


def test_malformed_sql_gets_the_database_message(db_url, monkeypatch, capsys):
    Store(db_url).close()
    code, out, err = run_main(monkeypatch, capsys, "sql", "SELEC * FRM naslab_results",
                              "--storage", db_url)
    assert code == 2 and out == ""
    message = error_of(err)
    if db_url.startswith("sqlite"):
        assert message == 'near "SELEC": syntax error'
    else:
        assert message.splitlines()[0] == 'syntax error at or near "SELEC"'
    code, _, err = run_main(monkeypatch, capsys, "sql", "SELECT nope FROM naslab_results",
                            "--storage", db_url)
    assert code == 2 and "nope" in error_of(err).splitlines()[0]


def test_schema_lists_the_documented_tables_and_views(db_url):
    Store(db_url).close()  # a missing SQLite file is refused, never made
    text = invoke("schema", "--storage", db_url)
    assert text.startswith(f"naslab schema revision {migrate.head_revision()}")
    for name in TABLES:
        assert f"table {name}: {TABLES[name]}" in text
    for name in VIEWS:
        assert f"view {name}: {VIEWS[name]}" in text
    data = json.loads(invoke("schema", "--format", "json", "--storage", db_url))
    objects = {o["name"]: o for o in data["objects"]}
    assert set(objects) == set(TABLES) | set(VIEWS)
    columns = {name: [c["name"] for c in o["columns"]] for name, o in objects.items()}
    assert {"driver", "heartbeat_at", "objective_value"} <= set(columns["naslab_trials"])
    assert columns["naslab_best"][:3] == ["study", "space", "space_key"]
    assert columns["naslab_best"][-1] == "direction"
    assert {"study", "trial_id", "metric", "step", "value"} <= set(
        columns["naslab_learning_curves"])
    assert "objectives" in columns["naslab_pareto"]
    assert {"metric", "value"} <= set(columns["naslab_final_metrics"])
    assert {"val_accuracy", "test_accuracy", "objective_value"} <= set(
        columns["naslab_results"])


def test_db_upgrade_and_version(tmp_path, monkeypatch, capsys):
    path = tmp_path / "old.db"
    dump = gzip.decompress(
        (pytest.importorskip("tests.test_migrations").OLD_DUMP).read_bytes()).decode()
    with sqlite3.connect(path) as conn:
        conn.executescript(dump)
    url = f"sqlite:///{path}"
    assert invoke("db", "version", "--storage", url).startswith("revision none")
    out = invoke("db", "upgrade", "--storage", url)
    assert f"schema upgraded from revision 0001 to {migrate.head_revision()}" in out
    assert "nothing to do" in invoke("db", "upgrade", "--storage", url)
    assert invoke("db", "version", "--storage", url).startswith(
        f"revision {migrate.head_revision()}; newest {migrate.head_revision()}")
    code, _, err = run_main(monkeypatch, capsys, "db", "version", "--storage",
                            f"sqlite:///{tmp_path / 'missing.db'}")
    assert code == 2 and "no SQLite database" in error_of(err)
    assert not (tmp_path / "missing.db").exists()
