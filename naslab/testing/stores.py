"""The store contract: what the :class:`~naslab.db.store.Store` must do on a database,
as a pytest suite.

Subclass :class:`StoreContract` and give it a ``store`` fixture: a fresh, empty store
on the database to check (a new SQLite file, an emptied PostgreSQL database, another
backend SQLAlchemy supports), closed after the test::

    import pytest

    from naslab import Store
    from naslab.testing import StoreContract


    class TestMyDatabase(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            with Store(f"sqlite:///{tmp_path / 'naslab.db'}") as store:
                yield store

Every trial is stored as the search loop stores it (:mod:`naslab.db.protocol`):
claimed, then reported, finished or failed. The checks cover studies (create,
resume, conflicts, checked settings), the claim outcomes (new, busy, known, reused,
full; one evaluation per architecture, study and fidelity), results, learning
curves, weights, failures and the trial state rules, interruption, look-ups of
earlier results, the best trials, the SQL views, and the read-only SQL console
(which must refuse every write at the database level).

The helpers below (:func:`new_study`, :func:`start`, :func:`run_trial`, ...) fill a
store the same way, for checks of your own.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import networkx as nx
import pytest

from naslab.core.errors import (
    ConfigError,
    QueryError,
    StorageError,
    StudyConflictError,
    UnknownNameError,
)
from naslab.db.models import VIEWS
from naslab.db.protocol import Claim, ClaimContext, ClaimOutcome
from naslab.db.records import StudyInfo, StudySpec, TrialRecord
from naslab.db.store import Store
from naslab.search_spaces.architecture import Architecture
from naslab.workers.evaluator import Result

__all__ = [
    "STUDY_DEFAULTS",
    "StoreContract",
    "claim",
    "context",
    "count_rows",
    "new_study",
    "run_trial",
    "start",
    "toy_arch",
    "toy_result",
]

#: The settings of the studies the suite creates (``space_key`` ``toy:v1``, task key
#: ``digits:v1``, fidelity 3, budget 10, objective ``val_accuracy`` maximised).
STUDY_DEFAULTS: dict[str, Any] = dict(
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


def toy_arch(ops: tuple[str, ...] = ("conv",), prefix: str = "n",
             decisions: dict[str, Any] | None = None) -> Architecture:
    """An architecture of space ``toy``: a chain input -> ``ops`` -> output. ``prefix``
    renames the nodes (an isomorphic graph: same hash); ``decisions`` default to
    ``{"ops": [...]}``."""
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


def toy_result(val: float, test: float | None = None, **fields: Any) -> Result:
    """A result with ``val_accuracy`` (and ``test_accuracy``), 1000 params, 20000 flops,
    1.5 ms latency, 2 s of training and 3 epochs unless ``fields`` say otherwise."""
    metrics = {"val_accuracy": val}
    if test is not None:
        metrics["test_accuracy"] = test
    fields.setdefault("params", 1000)
    fields.setdefault("flops", 20000)
    fields.setdefault("latency_ms", 1.5)
    fields.setdefault("train_seconds", 2.0)
    fields.setdefault("epochs", 3)
    return Result(metrics=metrics, **fields)


def new_study(store: Store, name: str = "s1", **overrides: Any) -> StudyInfo:
    """Create (or load) study ``name`` with :data:`STUDY_DEFAULTS` and ``overrides``."""
    return store.studies.create_or_load(StudySpec(name=name, **{**STUDY_DEFAULTS, **overrides}))


def context(study: StudyInfo, **overrides: Any) -> ClaimContext:
    """The claim context of ``study``: no budget, no reuse of other studies' results,
    worker ``w``; ``overrides`` replace any field (``seed``, ``budget``, ``reuse``,
    ``worker``, ``driver``, even ``study_id`` or ``space_key``)."""
    return replace(ClaimContext.of(study, worker="w", reuse=False, budget=None), **overrides)


def claim(store: Store, study: StudyInfo, arch: Architecture, **overrides: Any) -> Claim:
    """Claim ``arch`` in ``study`` (the :func:`context` with ``overrides``)."""
    return store.protocol.claim(context(study, **overrides), arch)


def start(store: Store, study: StudyInfo, arch: Architecture, **overrides: Any) -> int:
    """A new running trial of ``arch``; its id (AssertionError unless claimed NEW)."""
    got = claim(store, study, arch, **overrides)
    assert got.outcome is ClaimOutcome.NEW, got
    assert got.trial_id is not None
    return got.trial_id


def run_trial(store: Store, study: StudyInfo, arch: Architecture, val: float,
              **fields: Any) -> int:
    """A trial of ``arch`` claimed and finished with ``toy_result(val, **fields)``; its
    id."""
    trial_id = start(store, study, arch)
    store.protocol.finish(trial_id, toy_result(val, **fields), objective=study.objective)
    return trial_id


def count_rows(store: Store, table: str) -> int:
    """The number of rows of a table or view, through the read-only SQL console."""
    return store.sql.query(f"SELECT COUNT(*) FROM {table}")[1][0][0]


class StoreContract:
    """Checks that every store must pass (needs a ``store`` fixture: fresh and empty)."""

    # ------------------------------------------------------------------ studies

    def test_create_and_load_study(self, store: Store) -> None:
        info = new_study(store)
        assert info.name == "s1" and info.budget == 10 and info.space_config == {"depth": 2}
        assert info.config == {"workers": 1} and info.created_at.tzinfo is not None
        again = new_study(store, budget=25)  # the budget may change
        assert again.id == info.id and again.budget == 25
        assert store.studies.get("s1").budget == 25
        assert store.studies.get("nope") is None
        (summary,) = store.studies.summaries()
        assert (summary.name, summary.budget, summary.n_complete, summary.best_objective) == (
            "s1", 25, 0, None)

    def test_study_conflict_names_each_differing_field(self, store: Store) -> None:
        new_study(store)
        with pytest.raises(StudyConflictError) as err:
            new_study(store, seed=7, fidelity=12, task_key="other:v1", budget=99)
        message = str(err.value)
        assert "seed: stored 0, requested 7" in message
        assert "fidelity: stored 3, requested 12" in message
        assert "task_key: stored 'digits:v1', requested 'other:v1'" in message
        assert "space_key" not in message and "new study name" in message
        assert store.studies.get("s1").budget == 10  # nothing changed

    def test_study_arguments_are_checked(self, store: Store) -> None:
        with pytest.raises(ConfigError, match="budget"):
            new_study(store, budget=0)
        with pytest.raises(UnknownNameError, match="direction 'up'.*maximize, minimize"):
            new_study(store, direction="up")
        with pytest.raises(ConfigError, match="study name"):
            new_study(store, name="")
        assert store.studies.summaries() == []

    # ------------------------------------------------------------------ trials

    def test_trial_round_trip(self, store: Store) -> None:
        study = new_study(store)
        arch = toy_arch(("conv", "pool"))
        got = claim(store, study, arch, seed=5, worker="host:42")
        assert got.outcome is ClaimOutcome.NEW and got.number == 0
        tid = got.trial_id
        (running,) = store.trials.list("s1")
        assert isinstance(running, TrialRecord)
        assert (running.id, running.number, running.state, running.seed) == (tid, 0, "running", 5)
        assert running.worker == "host:42" and running.finished_at is None
        assert running.architecture() == arch

        store.protocol.report(tid, 1, {"train_loss": 1.0, "val_accuracy": 0.5})
        store.protocol.report(tid, 2, {"train_loss": 0.5, "val_accuracy": 0.7})
        store.protocol.report(tid, 2, {"val_accuracy": 0.75})  # replaces the earlier value
        state = store.protocol.finish(tid, toy_result(0.8, 0.78, extra={"note": "ok"}),
                                      objective="val_accuracy")
        assert state == "complete"

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

    def test_numbers_and_unique_architectures(self, store: Store) -> None:
        import sqlalchemy as sa

        study = new_study(store)
        a = toy_arch(("conv",), prefix="a", decisions={"x": 1})
        same = toy_arch(("conv",), prefix="b", decisions={"x": 2})  # isomorphic
        other = toy_arch(("pool",))
        first = start(store, study, a)
        # one evaluation per architecture, study and fidelity: the isomorphic copy is
        # not claimed while the first runs (busy: nothing stored), and is claimed once
        # that one failed
        busy = claim(store, study, same)
        assert busy.outcome is ClaimOutcome.BUSY
        assert (busy.trial_id, busy.number) == (first, 0)
        assert store.trials.count("s1") == 1
        store.protocol.fail(first, "out of memory")
        ids = [first] + [start(store, study, x) for x in (same, other)]
        records = store.trials.list("s1")
        assert [t.number for t in records] == [0, 1, 2] and [t.id for t in records] == ids
        assert records[0].arch_hash == records[1].arch_hash != records[2].arch_hash
        assert records[1].decisions == {"x": 2}  # the trial's own decisions
        assert records[1].architecture() == same
        assert count_rows(store, "naslab_architectures") == 2
        # the database itself refuses a second row with the same (space_key, hash)
        row = dict(space="toy", space_key="toy:v1", hash=a.hash, graph="{}", decisions="{}")
        with pytest.raises(sa.exc.IntegrityError), store.database.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO naslab_architectures "
                    "(space, space_key, hash, graph, decisions, created_at) "
                    "VALUES (:space, :space_key, :hash, :graph, :decisions, CURRENT_TIMESTAMP)"
                ),
                row,
            )
        assert count_rows(store, "naslab_architectures") == 2

    def test_claim_checks_study_and_space_key(self, store: Store) -> None:
        study = new_study(store)
        with pytest.raises(StorageError, match="no study with id 999"):
            claim(store, study, toy_arch(), study_id=999)
        with pytest.raises(StorageError, match="space_key"):
            claim(store, study, toy_arch(), space_key="toy:v2")
        assert store.trials.list("s1") == []
        assert count_rows(store, "naslab_architectures") == 0

    def test_claim_outcomes_known_reused_and_full(self, store: Store) -> None:
        study = new_study(store, budget=3)
        a, b, c = (toy_arch((op,)) for op in ("a", "b", "c"))
        ta = start(store, study, a, budget=3)
        store.protocol.finish(ta, toy_result(0.5, 0.4), objective="val_accuracy")
        # the study's own result: known (nothing stored), or copied when reused
        known = claim(store, study, a, budget=3)
        assert known.outcome is ClaimOutcome.KNOWN
        assert (known.trial_id, known.number, known.value) == (ta, 0, 0.5)
        assert known.metrics == {"val_accuracy": 0.5, "test_accuracy": 0.4, "params": 1000.0,
                                 "flops": 20000.0, "latency_ms": 1.5}
        assert store.trials.count("s1") == 1
        # a study holds each architecture once: its own result is never copied again
        own = claim(store, study, a, budget=3)
        assert (own.outcome, own.trial_id) == (ClaimOutcome.KNOWN, ta)
        assert store.trials.count("s1") == 1
        # the budget counts every finished and running trial
        tb = start(store, study, b, budget=3)
        tc = start(store, study, c, budget=3)
        full = claim(store, study, toy_arch(("d",)), budget=3)
        assert full.outcome is ClaimOutcome.FULL and full.trial_id is None
        assert store.trials.count("s1") == 3
        assert claim(store, study, toy_arch(("d",))).outcome is ClaimOutcome.NEW  # no budget
        # an interrupted trial gives back its claim and its place in the budget
        assert store.protocol.interrupt_running(study.id) == 3
        again = claim(store, study, b, budget=3)
        assert again.outcome is ClaimOutcome.NEW and again.number == 4
        assert store.trials.get(tb).state == store.trials.get(tc).state == "interrupted"
        assert [t.state for t in store.trials.list("s1")] == [
            "complete", "interrupted", "interrupted", "interrupted", "running"]

    def test_fail_and_state_rules(self, store: Store) -> None:
        study = new_study(store)
        tid = start(store, study, toy_arch())
        store.protocol.fail(tid, "CUDA out of memory")
        (failed,) = store.trials.list("s1", states=["failed"])
        assert failed.error == "CUDA out of memory" and failed.objective_value is None
        with pytest.raises(StorageError, match="already failed"):
            store.protocol.finish(tid, toy_result(0.5), objective="val_accuracy")
        done = run_trial(store, study, toy_arch(("pool",)), 0.6)
        with pytest.raises(StorageError, match="already complete"):
            store.protocol.fail(done, "late")
        with pytest.raises(StorageError, match="no 'accuracy' metric"):
            store.protocol.finish(done, toy_result(0.5), objective="accuracy")
        with pytest.raises(StorageError, match="no trial with id"):
            store.protocol.report(12345, 1, {"loss": 1.0})
        with pytest.raises(ConfigError, match="step"):
            store.protocol.report(done, 0, {"loss": 1.0})
        with pytest.raises(UnknownNameError, match="trial state"):
            store.trials.list("s1", states=["done"])
        with pytest.raises(UnknownNameError, match="s1"):
            store.trials.list("missing")
        assert store.trials.get(done).objective_value == 0.6  # errors changed nothing
        # stopped early by a scheduler, by the worker that evaluated it
        stopped = start(store, study, toy_arch(("skip",)))
        state = store.protocol.finish(stopped, toy_result(0.3, epochs=1),
                                      objective="val_accuracy", worker="host:7", stopped=True)
        assert state == "stopped"
        record = store.trials.get(stopped)
        assert (record.state, record.worker, record.epochs_done) == ("stopped", "host:7", 1)
        with pytest.raises(StorageError, match="already stopped"):
            store.protocol.fail(stopped, "late")

    def test_interrupt_running(self, store: Store) -> None:
        study = new_study(store)
        t0 = start(store, study, toy_arch(("a",)))
        t1 = start(store, study, toy_arch(("b",)))
        store.protocol.finish(t1, toy_result(0.5), objective="val_accuracy")
        assert store.protocol.interrupt_running(study.id) == 1
        assert store.protocol.interrupt_running(study.id) == 0
        states = {t.id: t.state for t in store.trials.list("s1")}
        assert states == {t0: "interrupted", t1: "complete"}
        assert store.trials.count("s1", ["complete", "failed"]) == 1
        assert store.trials.count(study.id) == 2
        (summary,) = store.studies.summaries()
        assert (summary.n_complete, summary.n_interrupted, summary.n_running) == (1, 1, 0)
        # only one driver's trials, and heartbeats of its running trials
        mine = start(store, study, toy_arch(("c",)), driver="host/1/1")
        theirs = start(store, study, toy_arch(("d",)), driver="host/2/1")
        assert store.protocol.heartbeat(study.id, "host/1/1") == 1
        assert store.protocol.heartbeat(study.id, "host/3/1") == 0
        assert store.protocol.interrupt_running(study.id, driver="host/1/1") == 1
        assert store.trials.get(mine).state == "interrupted"
        assert store.trials.get(theirs).state == "running"
        assert store.trials.get(theirs).driver == "host/2/1"

    def test_find_result_matches_space_task_and_fidelity_only(self, store: Store) -> None:
        arch = toy_arch(("conv", "conv"))
        base = new_study(store, "base")
        run_trial(store, new_study(store, "base2", seed=2), arch, 0.6)
        failed = start(store, base, arch)
        store.protocol.fail(failed, "boom")
        best = run_trial(store, base, arch, 0.7)
        for name, over in {
            "task": {"task_key": "other:v1"},
            "fid": {"fidelity": 9},
            "space": {"space_key": "toy:v2"},
        }.items():
            run_trial(store, new_study(store, name, **over), arch, 0.99)

        find = store.trials.find_result
        found = find("toy:v1", "digits:v1", 3, arch.hash)
        assert found is not None and found.id == best and found.objective_value == 0.7
        assert found.architecture() == arch
        assert find("toy:v1", "digits:v1", 3, toy_arch(("x",)).hash) is None
        assert find("toy:v1", "digits:v1", 4, arch.hash) is None
        assert find("toy:v2", "digits:v1", 3, arch.hash).objective_value == 0.99
        assert find("toy:v1", "digits:v1", 3, arch.hash, objective="loss") is None
        lowest = find("toy:v1", "digits:v1", 3, arch.hash, direction="minimize")
        assert lowest.objective_value == 0.6

    def test_reused_claim_copies_an_earlier_result(self, store: Store) -> None:
        import torch

        weights = {"w": torch.arange(6.0).reshape(2, 3)}
        first = new_study(store, "first")
        arch = toy_arch(("conv",))
        src_id = start(store, first, arch)
        store.protocol.report(src_id, 1, {"val_accuracy": 0.4})
        store.protocol.finish(src_id, toy_result(0.9, 0.85, weights=weights),
                              objective="val_accuracy")
        source = store.trials.find_result("toy:v1", "digits:v1", 3, arch.hash)

        second = new_study(store, "second", seed=1)
        renamed = toy_arch(("conv",), prefix="r", decisions={"ops": ["conv"], "alias": True})
        got = claim(store, second, renamed, reuse=True)
        assert got.outcome is ClaimOutcome.REUSED and got.number == 0 and got.value == 0.9
        assert got.metrics == {"val_accuracy": 0.9, "test_accuracy": 0.85, "params": 1000.0,
                               "flops": 20000.0, "latency_ms": 1.5}
        tid = got.trial_id
        (copy,) = store.trials.list("second")
        assert copy.id == tid and copy.reused_from == src_id and copy.state == "complete"
        assert copy.metrics == source.metrics and copy.objective_value == 0.9
        assert (copy.params, copy.flops, copy.seed) == (source.params, source.flops, 1)
        assert copy.decisions == {"ops": ["conv"], "alias": True}
        assert store.trials.learning_curve(tid) == {"val_accuracy": [(1, 0.4)]}
        assert torch.equal(store.trials.weights(tid)["w"], weights["w"])  # follows reused_from
        # a reused copy is never a source: reusing again points at the original, and
        # reused trials are never found
        third = new_study(store, "third", seed=2)
        again = claim(store, third, arch, reuse=True)
        assert again.outcome is ClaimOutcome.REUSED
        assert store.trials.get(again.trial_id).reused_from == src_id
        assert store.trials.find_result("toy:v1", "digits:v1", 3, arch.hash).id == src_id
        # without reuse, another study evaluates it itself
        fourth = new_study(store, "fourth", seed=3)
        assert claim(store, fourth, arch).outcome is ClaimOutcome.NEW

    def test_best_trials_direction_aware(self, store: Store) -> None:
        up = new_study(store, "up")
        down = new_study(store, "down", direction="minimize", objective="val_loss")
        for i, value in enumerate([0.3, 0.9, 0.5, math.nan]):
            arch = toy_arch((f"op{i}",))
            run_trial(store, up, arch, value)
            tid = start(store, down, arch)
            store.protocol.finish(tid, Result(metrics={"val_loss": value}), objective="val_loss")
        assert [t.objective_value for t in store.trials.best("up", 2)] == [0.9, 0.5]
        assert [t.objective_value for t in store.trials.best("down", 5)] == [0.3, 0.5, 0.9]
        assert store.trials.best(down.id, 1)[0].metrics == {"val_loss": 0.3}
        nan_trial = store.trials.list("up")[3]
        assert nan_trial.objective_value is None and math.isnan(nan_trial.metrics["val_accuracy"])
        summaries = {s.name: s.best_objective for s in store.studies.summaries()}
        assert summaries == {"up": 0.9, "down": 0.3}

    def test_weights_round_trip(self, store: Store) -> None:
        import torch

        study = new_study(store)
        shared = torch.randn(4, 4)
        weights = {
            "fc.weight": shared,
            "fc_tied.weight": shared,  # tied: shares memory
            "bn.num_batches_tracked": torch.tensor(7),
            "half": torch.randn(3).half(),
            "view": torch.randn(4, 6).t(),  # not contiguous
        }
        tid = run_trial(store, study, toy_arch(), 0.5, weights=weights)
        loaded = store.trials.weights(tid)
        assert set(loaded) == set(weights)
        for key, value in weights.items():
            assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value)
        assert store.trials.weights(run_trial(store, study, toy_arch(("b",)), 0.4)) is None

    # ------------------------------------------------------------------ SQL

    def test_views_pivot_results(self, store: Store) -> None:
        assert set(VIEWS) == {"naslab_results", "naslab_learning_curves", "naslab_study_summary",
                              "naslab_pareto", "naslab_best", "naslab_final_metrics"}
        study = new_study(store)
        arch = toy_arch(("conv",))
        tid = start(store, study, arch)
        store.protocol.report(tid, 1, {"val_accuracy": 0.5})
        store.protocol.report(tid, 2, {"val_accuracy": 0.6})
        store.protocol.finish(tid, toy_result(0.7, 0.65), objective="val_accuracy")
        failed = start(store, study, toy_arch(("pool",)))
        store.protocol.fail(failed, "nan loss")

        columns, rows = store.sql.query(
            "SELECT study, trial_number, state, arch_hash, objective_value, val_accuracy, "
            "test_accuracy, params, error, reused_from FROM naslab_results ORDER BY trial_number"
        )
        assert columns[:3] == ["study", "trial_number", "state"]
        assert rows == [
            ("s1", 0, "complete", arch.hash, 0.7, 0.7, 0.65, 1000, None, None),
            ("s1", 1, "failed", toy_arch(("pool",)).hash, None, None, None, None, "nan loss",
             None),
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
            t = start(store, down, toy_arch((f"d{i}",)))
            store.protocol.finish(t, Result(metrics={"val_loss": value}), objective="val_loss")
        new_study(store, "empty")
        _, best = store.sql.query(
            "SELECT study, trial_number, objective_value, val_accuracy, arch_hash, direction "
            "FROM naslab_best ORDER BY study")
        assert best == [("down", 1, 0.2, None, toy_arch(("d1",)).hash, "minimize"),
                        ("s1", 0, 0.7, 0.7, arch.hash, "maximize")]
        # every documented view exists and answers
        for view in VIEWS:
            store.sql.query(f"SELECT * FROM {view}")

    def test_query_readonly_refuses_writes_at_database_level(self, store: Store) -> None:
        study = new_study(store)
        run_trial(store, study, toy_arch(), 0.5)
        before = {t: count_rows(store, t) for t in ("naslab_studies", "naslab_trials")}
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
        after = {t: count_rows(store, t) for t in ("naslab_studies", "naslab_trials")}
        assert after == before
        assert store.trials.list("s1")[0].state == "complete"
        run_trial(store, study, toy_arch(("b",)), 0.6)  # the store still writes
        assert count_rows(store, "naslab_trials") == 2

    def test_query_readonly_one_statement_only(self, store: Store) -> None:
        new_study(store)
        for sql in ("SELECT 1; DELETE FROM naslab_studies", "SELECT 1; SELECT 2", "  ", ""):
            with pytest.raises(QueryError):
                store.sql.query(sql)
        assert count_rows(store, "naslab_studies") == 1
        assert store.sql.query("SELECT ';' AS x; -- fine") == (["x"], [(";",)])
        assert store.sql.query("SELECT 'a;''b' AS y /* ; */;") == (["y"], [("a;'b",)])

    def test_query_readonly_reports_the_database_message(self, store: Store) -> None:
        with pytest.raises(QueryError, match="(?i)syntax error"):
            store.sql.query("SELEC name FROM naslab_studies")
        with pytest.raises(QueryError, match="no_such_table"):
            store.sql.query("SELECT * FROM no_such_table")

    def test_query_readonly_params_and_max_rows(self, store: Store) -> None:
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

    def test_closed_store_refuses(self, store: Store) -> None:
        store.close()
        with pytest.raises(StorageError, match="closed"):
            store.studies.summaries()
        store.close()  # idempotent
