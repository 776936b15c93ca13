"""Tests of the SQL store (:mod:`naslab.db`).

The :class:`TestStore` suite runs against every backend (the ``db_url`` fixture,
:mod:`tests.databases`): a fresh SQLite file always, and PostgreSQL when
``NASLAB_TEST_POSTGRES_URL`` names a database that the tests may empty (e.g.
``postgresql+psycopg://user@localhost/test``).
"""

from __future__ import annotations

import math
import pickle
import sqlite3
import threading

import networkx as nx
import pytest
import sqlalchemy as sa
import torch

from naslab.core.errors import (
    ClaimError,
    ConfigError,
    QueryError,
    StorageError,
    StudyConflictError,
    UnknownNameError,
)
from naslab.db import VIEWS, Store, StudyInfo, TrialRecord
from naslab.db.models import Base
from naslab.search_spaces.architecture import Architecture
from naslab.workers.evaluator import Result


def make_arch(ops=("conv",), prefix: str = "n", decisions: dict | None = None) -> Architecture:
    """A chain input -> ops... -> output; ``prefix`` renames nodes (same hash)."""
    g = nx.DiGraph()
    g.add_node(f"{prefix}_in", op="input")
    prev = f"{prefix}_in"
    for i, op in enumerate(ops):
        node = f"{prefix}{i}"
        g.add_node(node, op=op)
        g.add_edge(prev, node)
        prev = node
    g.add_node(f"{prefix}_out", op="output")
    g.add_edge(prev, f"{prefix}_out")
    return Architecture("toy", decisions if decisions is not None else {"ops": list(ops)}, g)


STUDY_DEFAULTS = dict(
    space="toy",
    space_key="toy:v1",
    space_config={"depth": 2},
    task_key="digits:v1",
    searcher="random",
    objective="val_accuracy",
    direction="maximize",
    budget=10,
    fidelity=3,
    seed=0,
    config={"workers": 1},
)


def new_study(store: Store, name: str = "s1", **overrides) -> StudyInfo:
    return store.create_or_load_study(name, **{**STUDY_DEFAULTS, **overrides})


def result(val: float, test: float | None = None, **kw) -> Result:
    metrics = {"val_accuracy": val}
    if test is not None:
        metrics["test_accuracy"] = test
    kw.setdefault("params", 1000)
    kw.setdefault("flops", 20000)
    kw.setdefault("latency_ms", 1.5)
    kw.setdefault("train_seconds", 2.0)
    kw.setdefault("epochs", 3)
    return Result(metrics=metrics, **kw)


def run_trial(store: Store, study: StudyInfo, arch: Architecture, val: float, **kw) -> int:
    tid = store.start_trial(study.id, arch, study.space_key, study.fidelity, study.seed, "host:1")
    store.protocol.finish(tid, result(val, **kw), study.objective)
    return tid


def count(store: Store, table: str) -> int:
    return store.sql.query(f"SELECT COUNT(*) FROM {table}")[1][0][0]


@pytest.fixture
def store(db_url):
    with Store(db_url) as s:
        yield s


class TestStore:
    """Every operation, on every backend."""

    def test_create_and_load_study(self, store):
        info = new_study(store)
        assert info.name == "s1" and info.budget == 10 and info.space_config == {"depth": 2}
        assert info.config == {"workers": 1} and info.created_at.tzinfo is not None
        again = new_study(store, budget=25)  # the budget may change
        assert again.id == info.id and again.budget == 25
        assert store.studies.get("s1").budget == 25
        assert store.studies.get("nope") is None
        (summary,) = store.studies.summaries()
        assert (summary.name, summary.budget, summary.n_complete, summary.best_objective) == (
            "s1",
            25,
            0,
            None,
        )

    def test_study_conflict_names_each_differing_field(self, store):
        new_study(store)
        with pytest.raises(StudyConflictError) as err:
            new_study(store, seed=7, fidelity=12, task_key="other:v1", budget=99)
        message = str(err.value)
        assert "seed: stored 0, requested 7" in message
        assert "fidelity: stored 3, requested 12" in message
        assert "task_key: stored 'digits:v1', requested 'other:v1'" in message
        assert "space_key" not in message and "new study name" in message
        assert store.studies.get("s1").budget == 10  # nothing changed

    def test_study_arguments_are_checked(self, store):
        with pytest.raises(ConfigError, match="budget"):
            new_study(store, budget=0)
        with pytest.raises(ConfigError, match="direction"):
            new_study(store, direction="up")
        with pytest.raises(ConfigError, match="study name"):
            new_study(store, name="")
        assert store.studies.summaries() == []

    def test_trial_round_trip(self, store):
        study = new_study(store)
        arch = make_arch(("conv", "pool"))
        tid = store.start_trial(study.id, arch, "toy:v1", 3, 5, "host:42")
        (running,) = store.trials.list("s1")
        assert isinstance(running, TrialRecord)
        assert (running.id, running.number, running.state, running.seed) == (tid, 0, "running", 5)
        assert running.worker == "host:42" and running.finished_at is None
        assert running.architecture() == arch

        store.report(tid, 1, {"train_loss": 1.0, "val_accuracy": 0.5})
        store.report(tid, 2, {"train_loss": 0.5, "val_accuracy": 0.7})
        store.report(tid, 2, {"val_accuracy": 0.75})  # replaces the earlier value
        store.protocol.finish(tid, result(0.8, 0.78, extra={"note": "ok"}), "val_accuracy")

        (done,) = store.trials.list(study.id, states=["complete"])
        assert done.state == "complete" and done.objective_value == pytest.approx(0.8)
        assert done.metrics == {"val_accuracy": pytest.approx(0.8), "test_accuracy": 0.78}
        assert (done.params, done.flops, done.latency_ms, done.epochs_done) == (1000, 20000, 1.5, 3)
        assert done.train_seconds == 2.0 and done.extra == {"note": "ok"}
        assert done.finished_at >= done.started_at
        rebuilt = done.architecture()
        assert rebuilt == arch and dict(rebuilt.decisions) == {"ops": ["conv", "pool"]}
        assert store.trials.get(tid) == done and store.trials.get(10_000) is None
        assert store.trials.learning_curve(tid) == {
            "train_loss": [(1, 1.0), (2, 0.5)],
            "val_accuracy": [(1, 0.5), (2, 0.75)],
        }
        _, rows = store.sql.query("SELECT params, flops FROM naslab_architectures")
        assert rows == [(1000, 20000)]  # filled from the first result

    def test_numbers_and_unique_architectures(self, store):
        study = new_study(store)
        a = make_arch(("conv",), prefix="a", decisions={"x": 1})
        same = make_arch(("conv",), prefix="b", decisions={"x": 2})  # isomorphic
        other = make_arch(("pool",))
        first = store.start_trial(study.id, a, "toy:v1", 3, 0, "w")
        # one evaluation per architecture, study and fidelity: the isomorphic copy is
        # refused while the first runs, and allowed once that one failed
        with pytest.raises(ClaimError, match="already running in study 's1'") as err:
            store.start_trial(study.id, same, "toy:v1", 3, 0, "w")
        assert err.value.trial_id == first
        store.protocol.fail(first, "out of memory")
        ids = [first] + [store.start_trial(study.id, x, "toy:v1", 3, 0, "w")
                         for x in (same, other)]
        records = store.trials.list("s1")
        assert [t.number for t in records] == [0, 1, 2] and [t.id for t in records] == ids
        assert records[0].arch_hash == records[1].arch_hash != records[2].arch_hash
        assert records[1].decisions == {"x": 2}  # the trial's own decisions
        assert records[1].architecture() == same
        assert count(store, "naslab_architectures") == 2
        # the database itself refuses a second row with the same (space_key, hash)
        row = dict(space="toy", space_key="toy:v1", hash=a.hash, graph="{}", decisions="{}")
        with pytest.raises(sa.exc.IntegrityError), store._engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO naslab_architectures "
                    "(space, space_key, hash, graph, decisions, created_at) "
                    "VALUES (:space, :space_key, :hash, :graph, :decisions, CURRENT_TIMESTAMP)"
                ),
                row,
            )
        assert count(store, "naslab_architectures") == 2

    def test_start_trial_checks_study_and_space_key(self, store):
        study = new_study(store)
        with pytest.raises(UnknownNameError):
            store.start_trial(999, make_arch(), "toy:v1", 3, 0, "w")
        with pytest.raises(StorageError, match="space_key"):
            store.start_trial(study.id, make_arch(), "toy:v2", 3, 0, "w")
        assert store.trials.list("s1") == []

    def test_fail_and_state_rules(self, store):
        study = new_study(store)
        tid = store.start_trial(study.id, make_arch(), "toy:v1", 3, 0, "w")
        store.protocol.fail(tid, "CUDA out of memory")
        (failed,) = store.trials.list("s1", states=["failed"])
        assert failed.error == "CUDA out of memory" and failed.objective_value is None
        with pytest.raises(StorageError, match="already failed"):
            store.protocol.finish(tid, result(0.5), "val_accuracy")
        done = run_trial(store, study, make_arch(("pool",)), 0.6)
        with pytest.raises(StorageError, match="already complete"):
            store.protocol.fail(done, "late")
        with pytest.raises(StorageError, match="no 'accuracy' metric"):
            store.protocol.finish(done, result(0.5), "accuracy")
        with pytest.raises(StorageError, match="no trial with id"):
            store.report(12345, 1, {"loss": 1.0})
        with pytest.raises(ConfigError, match="step"):
            store.report(done, 0, {"loss": 1.0})
        with pytest.raises(UnknownNameError, match="trial state"):
            store.trials.list("s1", states=["done"])
        with pytest.raises(UnknownNameError, match="s1"):
            store.trials.list("missing")
        assert store.trials.get(done).objective_value == 0.6  # errors changed nothing

    def test_interrupt_running(self, store):
        study = new_study(store)
        t0 = store.start_trial(study.id, make_arch(("a",)), "toy:v1", 3, 0, "w")
        t1 = store.start_trial(study.id, make_arch(("b",)), "toy:v1", 3, 0, "w")
        store.protocol.finish(t1, result(0.5), "val_accuracy")
        assert store.protocol.interrupt_running(study.id) == 1
        assert store.protocol.interrupt_running(study.id) == 0
        states = {t.id: t.state for t in store.trials.list("s1")}
        assert states == {t0: "interrupted", t1: "complete"}
        assert store.trials.count("s1", ["complete", "failed"]) == 1
        assert store.trials.count(study.id) == 2
        (summary,) = store.studies.summaries()
        assert (summary.n_complete, summary.n_interrupted, summary.n_running) == (1, 1, 0)

    def test_find_result_matches_space_task_and_fidelity_only(self, store):
        arch = make_arch(("conv", "conv"))
        base = new_study(store, "base")
        run_trial(store, new_study(store, "base2", seed=2), arch, 0.6)
        failed = store.start_trial(base.id, arch, "toy:v1", 3, 0, "w")
        store.protocol.fail(failed, "boom")
        best = run_trial(store, base, arch, 0.7)
        for name, over in {
            "task": {"task_key": "other:v1"},
            "fid": {"fidelity": 9},
            "space": {"space_key": "toy:v2"},
        }.items():
            run_trial(store, new_study(store, name, **over), arch, 0.99)

        found = store.trials.find_result("toy:v1", "digits:v1", 3, arch.hash)
        assert found is not None and found.id == best and found.objective_value == 0.7
        assert found.architecture() == arch
        assert store.trials.find_result("toy:v1", "digits:v1", 3, make_arch(("x",)).hash) is None
        assert store.trials.find_result("toy:v1", "digits:v1", 4, arch.hash) is None
        assert store.trials.find_result("toy:v2", "digits:v1", 3, arch.hash).objective_value == 0.99
        assert store.trials.find_result("toy:v1", "digits:v1", 3, arch.hash, objective="loss") is None
        lowest = store.trials.find_result("toy:v1", "digits:v1", 3, arch.hash, direction="minimize")
        assert lowest.objective_value == 0.6

    def test_record_reused(self, store):
        weights = {"w": torch.arange(6.0).reshape(2, 3)}
        first = new_study(store, "first")
        arch = make_arch(("conv",))
        src_id = store.start_trial(first.id, arch, "toy:v1", 3, 0, "w")
        store.report(src_id, 1, {"val_accuracy": 0.4})
        store.protocol.finish(src_id, result(0.9, 0.85, weights=weights), "val_accuracy")
        source = store.trials.find_result("toy:v1", "digits:v1", 3, arch.hash)

        second = new_study(store, "second", seed=1)
        renamed = make_arch(("conv",), prefix="r", decisions={"ops": ["conv"], "alias": True})
        tid = store.record_reused(second.id, renamed, "toy:v1", 3, 1, source)
        (copy,) = store.trials.list("second")
        assert copy.id == tid and copy.reused_from == src_id and copy.state == "complete"
        assert copy.metrics == source.metrics and copy.objective_value == 0.9
        assert (copy.params, copy.flops, copy.seed) == (source.params, source.flops, 1)
        assert copy.decisions == {"ops": ["conv"], "alias": True}
        assert store.trials.learning_curve(tid) == {"val_accuracy": [(1, 0.4)]}
        assert torch.equal(store.trials.weights(tid)["w"], weights["w"])  # follows reused_from
        # reusing a reused trial points at the original; reused trials are never found
        third = new_study(store, "third", seed=2)
        again = store.record_reused(third.id, arch, "toy:v1", 3, 2, copy)
        assert store.trials.get(again).reused_from == src_id
        assert store.trials.find_result("toy:v1", "digits:v1", 3, arch.hash).id == src_id

    def test_best_trials_direction_aware(self, store):
        up = new_study(store, "up")
        down = new_study(store, "down", direction="minimize", objective="val_loss")
        for i, value in enumerate([0.3, 0.9, 0.5, math.nan]):
            arch = make_arch((f"op{i}",))
            run_trial(store, up, arch, value)
            tid = store.start_trial(down.id, arch, "toy:v1", 3, 0, "w")
            store.protocol.finish(tid, Result(metrics={"val_loss": value}), "val_loss")
        assert [t.objective_value for t in store.trials.best("up", 2)] == [0.9, 0.5]
        assert [t.objective_value for t in store.trials.best("down", 5)] == [0.3, 0.5, 0.9]
        assert store.trials.best(down.id, 1)[0].metrics == {"val_loss": 0.3}
        nan_trial = store.trials.list("up")[3]
        assert nan_trial.objective_value is None and math.isnan(nan_trial.metrics["val_accuracy"])
        summaries = {s.name: s.best_objective for s in store.studies.summaries()}
        assert summaries == {"up": 0.9, "down": 0.3}

    def test_weights_round_trip(self, store):
        study = new_study(store)
        shared = torch.randn(4, 4)
        weights = {
            "fc.weight": shared,
            "fc_tied.weight": shared,  # tied: shares memory
            "bn.num_batches_tracked": torch.tensor(7),
            "half": torch.randn(3).half(),
            "view": torch.randn(4, 6).t(),  # not contiguous
        }
        tid = run_trial(store, study, make_arch(), 0.5, weights=weights)
        loaded = store.trials.weights(tid)
        assert set(loaded) == set(weights)
        for key, value in weights.items():
            assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value)
        assert store.trials.weights(run_trial(store, study, make_arch(("b",)), 0.4)) is None

    def test_views_pivot_results(self, store):
        assert set(VIEWS) == {"naslab_results", "naslab_learning_curves", "naslab_study_summary",
                              "naslab_pareto", "naslab_best", "naslab_final_metrics"}
        study = new_study(store)
        arch = make_arch(("conv",))
        tid = store.start_trial(study.id, arch, "toy:v1", 3, 0, "w")
        store.report(tid, 1, {"val_accuracy": 0.5})
        store.report(tid, 2, {"val_accuracy": 0.6})
        store.protocol.finish(tid, result(0.7, 0.65), "val_accuracy")
        failed = store.start_trial(study.id, make_arch(("pool",)), "toy:v1", 3, 0, "w")
        store.protocol.fail(failed, "nan loss")

        columns, rows = store.sql.query(
            "SELECT study, trial_number, state, arch_hash, objective_value, val_accuracy, "
            "test_accuracy, params, error, reused_from FROM naslab_results ORDER BY trial_number"
        )
        assert columns[:3] == ["study", "trial_number", "state"]
        assert rows == [
            ("s1", 0, "complete", arch.hash, 0.7, 0.7, 0.65, 1000, None, None),
            (
                "s1",
                1,
                "failed",
                make_arch(("pool",)).hash,
                None,
                None,
                None,
                None,
                "nan loss",
                None,
            ),
        ]
        _, curve = store.sql.query(
            "SELECT trial_number, metric, step, value FROM naslab_learning_curves ORDER BY step"
        )
        assert curve == [(0, "val_accuracy", 1, 0.5), (0, "val_accuracy", 2, 0.6)]
        _, summary = store.sql.query(
            "SELECT study, n_trials, n_complete, n_failed, best_objective FROM naslab_study_summary"
        )
        assert summary == [("s1", 2, 1, 1, 0.7)]
        _, finals = store.sql.query(
            "SELECT trial_number, metric, value FROM naslab_final_metrics ORDER BY metric")
        assert finals == [(0, "test_accuracy", 0.65), (0, "val_accuracy", 0.7)]
        # the best architecture of each study, direction-aware
        down = new_study(store, "down", direction="minimize", objective="val_loss")
        for i, value in enumerate([0.4, 0.2, 0.3]):
            t = store.start_trial(down.id, make_arch((f"d{i}",)), "toy:v1", 3, 0, "w")
            store.protocol.finish(t, Result(metrics={"val_loss": value}), "val_loss")
        new_study(store, "empty")
        _, best = store.sql.query(
            "SELECT study, trial_number, objective_value, val_accuracy, arch_hash, direction "
            "FROM naslab_best ORDER BY study")
        assert best == [("down", 1, 0.2, None, make_arch(("d1",)).hash, "minimize"),
                        ("s1", 0, 0.7, 0.7, arch.hash, "maximize")]
        # every documented view exists and answers
        for view in VIEWS:
            store.sql.query(f"SELECT * FROM {view}")

    def test_query_readonly_refuses_writes_at_database_level(self, store):
        study = new_study(store)
        run_trial(store, study, make_arch(), 0.5)
        before = {t: count(store, t) for t in ("naslab_studies", "naslab_trials")}
        writes = [
            "INSERT INTO naslab_studies (name) VALUES ('x')",
            "UPDATE naslab_trials SET state = 'failed'",
            "DELETE FROM naslab_trials",
            "DROP TABLE naslab_metrics",
            "CREATE TABLE sneaky (a INTEGER)",
            "DROP VIEW naslab_results",
        ]
        for sql in writes:
            with pytest.raises(QueryError) as err:
                store.sql.query(sql)
            assert "Traceback" not in str(err.value) and "[SQL:" not in str(err.value)
            if store.dialect == "sqlite":
                assert "readonly" in str(err.value) or "not authorized" in str(err.value)
        after = {t: count(store, t) for t in ("naslab_studies", "naslab_trials")}
        assert after == before
        assert store.trials.list("s1")[0].state == "complete"
        run_trial(store, study, make_arch(("b",)), 0.6)  # the store still writes
        assert count(store, "naslab_trials") == 2

    def test_query_readonly_one_statement_only(self, store):
        new_study(store)
        for sql in ("SELECT 1; DELETE FROM naslab_studies", "SELECT 1; SELECT 2", "  ", ""):
            with pytest.raises(QueryError):
                store.sql.query(sql)
        assert count(store, "naslab_studies") == 1
        assert store.sql.query("SELECT ';' AS x; -- fine") == (["x"], [(";",)])
        assert store.sql.query("SELECT 'a;''b' AS y /* ; */;") == (["y"], [("a;'b",)])

    def test_query_readonly_reports_the_database_message(self, store):
        with pytest.raises(QueryError, match="(?i)syntax error"):
            store.sql.query("SELEC name FROM naslab_studies")
        with pytest.raises(QueryError, match="no_such_table"):
            store.sql.query("SELECT * FROM no_such_table")

    def test_query_readonly_params_and_max_rows(self, store):
        for name in ("a", "b", "c"):
            new_study(store, name)
        style = "?" if store.dialect == "sqlite" else "%s"
        columns, rows = store.sql.query(
            f"SELECT name FROM naslab_studies WHERE name <> {style} ORDER BY name", ("b",)
        )
        assert columns == ["name"] and rows == [("a",), ("c",)]
        _, rows = store.sql.query("SELECT name FROM naslab_studies ORDER BY name", max_rows=1)
        assert rows == [("a",)]
        # the driver parses the SQL: no bind-parameter rewriting of ':' or '%'
        assert store.sql.query("SELECT 'a:b' AS c, '5%' AS p") == (["c", "p"], [("a:b", "5%")])

    def test_closed_store_refuses(self, store):
        store.close()
        with pytest.raises(StorageError, match="closed"):
            store.studies.summaries()
        store.close()  # idempotent


# ---------------------------------------------------------------- SQLite specifics


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "naslab.db"


def test_shares_a_database_with_optuna(db_path):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{db_path}"
    with Store(url) as store:
        run_trial(store, new_study(store, "nas"), make_arch(), 0.5)
    opt = optuna.create_study(storage=url, study_name="hpo", direction="maximize")
    opt.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    with Store(url) as store:  # opens the same file after Optuna
        run_trial(store, store.studies.get("nas"), make_arch(("b",)), 0.6)
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
        with store._engine.connect() as conn:
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
        store._engine.dispose()  # no -shm file left behind
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
        run_trial(store, study, make_arch(), 0.5)
        with pytest.raises(QueryError, match="readonly"):
            store.sql.query("DELETE FROM naslab_trials")
        with pytest.raises(QueryError):
            store.sql.query("PRAGMA query_only = OFF")
        assert count(store, "naslab_trials") == 1
        run_trial(store, study, make_arch(("b",)), 0.6)  # writable again afterwards
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
            assert copy.get_study("s1") is not None


def test_concurrent_writers_get_distinct_numbers(db_path):
    url = f"sqlite:///{db_path}"
    with Store(url) as store:
        study = new_study(store)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            with Store(url) as mine:
                for i in range(15):
                    tid = mine.start_trial(
                        study.id, make_arch((f"w{k}", f"op{i}")), "toy:v1", 3, 0, f"w{k}"
                    )
                    mine.report(tid, 1, {"loss": 1.0})
                    mine.complete_trial(tid, result(i / 15), "val_accuracy")
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
                store.start_trial(study.id, make_arch(), "toy:v1", 3, 0, "w")
            assert "[SQL:" not in str(err.value)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        store.start_trial(study.id, make_arch(), "toy:v1", 3, 0, "w")
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
    with pytest.raises(StorageError, match="older naslab.*'stopped'"):
        Store(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:  # nothing was changed
        assert conn.execute("SELECT count(*) FROM naslab_trials").fetchone() == (1,)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"naslab_trials"}
