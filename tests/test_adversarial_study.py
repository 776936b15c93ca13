"""The study and its search loop under bad input and crashes (issue 14, items 8, 9,
10 and 13): objectives checked before anything is stored; interrupted trials
evaluated again first after a SIGKILL; a resume with other result-changing options
refused; a budget larger than the space stops when the space is exhausted.

Run as ``python -m tests.test_adversarial_study URL STUDY BUDGET``, this module is
the search driver that :func:`test_a_sigkilled_driver_s_trials_are_evaluated_again_first`
kills.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import networkx as nx
import pytest
import sqlalchemy as sa
from torch import nn

from naslab import Categorical, Condition, ConfigError, SearchSpace, Store, Study
from naslab.core.errors import StudyConflictError
from naslab.db.protocol import ClaimContext, ClaimOutcome
from naslab.loop import EXHAUSTED_AFTER, MAX_INTERRUPTIONS
from naslab.search_spaces.registry import SPACES
from naslab.workers.benchmark_table import NasBenchGraphEvaluator
from naslab.workers.evaluator import TABLE_BENCHMARKS, Result, TableEvaluator
from tests.cli_helpers import one_line_error, run_main

# ---------------------------------------------------------------------------- helpers


class ToyGrid(SearchSpace):
    """Two unconditional decisions: 2 x 3 = 6 architectures, all distinct graphs."""

    name = "toy_grid"

    def decisions(self):
        return [Categorical("a", ("x", "y")), Categorical("b", ("p", "q", "r"))]

    def to_graph(self, d):
        g = nx.DiGraph()
        g.add_node(0, op="input")
        g.add_node(1, op=f"a_{d['a']}")
        g.add_node(2, op=f"b_{d['b']}")
        g.add_node(3, op="output")
        g.add_edges_from([(0, 1), (1, 2), (2, 3)])
        return g

    def build(self, arch, task) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(int(task.num_classes)))


class ToyTree(ToyGrid):
    """A conditional decision; the space does not say its size (3 architectures)."""

    name = "toy_tree"

    def size(self):
        return None  # as a space that cannot count itself

    def decisions(self):
        return [Categorical("a", ("x", "y")),
                Categorical("b", ("p", "q"), Condition("a", ("y",)))]

    def to_graph(self, d):
        return super().to_graph({"a": d["a"], "b": d.get("b", "none")})


class ToyTable(TableEvaluator):
    """Instant made-up results for the toy spaces; counts its evaluations."""

    metrics = ("val_accuracy", "test_accuracy")
    costs = ("params",)

    def __init__(self, task: str = "toy") -> None:
        self.dataset = task
        self.calls: list[str] = []

    @classmethod
    def tasks(cls) -> list[str]:
        return ["toy"]

    @property
    def key(self) -> str:
        return f"toy_table:{self.dataset}"

    def evaluate(self, space, arch, fidelity, seed, reporter):
        self.calls.append(arch.hash)
        value = (zlib.crc32(arch.hash.encode()) % 1000) / 1000
        reporter.report(fidelity, {"val_accuracy": value})
        return Result(metrics={"val_accuracy": value, "test_accuracy": value}, params=10,
                      epochs=fidelity)

    def architectures(self):
        raise NotImplementedError

    def columns(self, archs, names):
        raise ConfigError("no columns")


class ToyEpochs(ToyTable):
    """The toy results, as if reported every epoch (so a scheduler may be given)."""

    reports_epochs = True


class SlowCora(NasBenchGraphEvaluator):
    """The cora table answered after a pause, claimed like a training run (not
    instant), so that a driver can be killed while a trial runs."""

    instant = False

    def __init__(self, pause_s: float = 0.25) -> None:
        super().__init__("cora")
        self.pause_s = pause_s

    def evaluate(self, space, arch, fidelity, seed, reporter):
        time.sleep(self.pause_s)
        return super().evaluate(space, arch, fidelity, seed, reporter)


class CountingCora(NasBenchGraphEvaluator):
    """The cora table, recording what it evaluates."""

    def __init__(self) -> None:
        super().__init__("cora")
        self.calls: list[str] = []

    def evaluate(self, space, arch, fidelity, seed, reporter):
        self.calls.append(arch.hash)
        return super().evaluate(space, arch, fidelity, seed, reporter)


#: The searcher of the killed driver: TPE after two random trials does not replay
#: exactly (it is not told what it asked before the kill), so only a retry brings the
#: interrupted architecture back.
KILLED_SEARCHER = ["optuna-tpe", {"sampler_options": {"n_startup_trials": 2}}]


def main(argv: list[str]) -> None:
    """The driver that the SIGKILL test kills: ``URL STUDY BUDGET``."""
    url, name, budget = argv[:3]
    with Study(name, space="nasbench_graph", task=SlowCora(), searcher=KILLED_SEARCHER[0],
               searcher_options=KILLED_SEARCHER[1], budget=int(budget), seed=0,
               storage=url) as s:
        s.run()


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'adv.db'}"


@pytest.fixture
def toy_cli():
    """``--space toy_grid|toy_tree --task toy`` on the command line (this process)."""
    for space in (ToyGrid, ToyTree):
        SPACES.register(space.name, space)
        TABLE_BENCHMARKS.register(space.name, ToyTable)
    yield
    for space in (ToyGrid, ToyTree):
        SPACES.unregister(space.name)
        TABLE_BENCHMARKS.unregister(space.name)


def _rows(url: str) -> dict[str, list[tuple]]:
    """Every row of naslab's studies and trials tables (to prove nothing changed)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {t: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY id"))]
                    for t in ("naslab_studies", "naslab_trials")}
    finally:
        engine.dispose()


def _table_study(storage, name="s", budget=6, **kw) -> Study:
    kw.setdefault("searcher", "evolution")
    return Study(name, space="nasbench_graph", task="cora", budget=budget, seed=0,
                 storage=storage, **kw)


# ------------------------------------------------------------------ item 8: objectives


@pytest.mark.parametrize("objectives, wrong", [
    ("val_acc:max,params:min", "val_acc"),  # a typo
    ("val_accuracy:max,flops:min", "flops"),  # nasbench_graph's tables have no FLOPs
    ("val_accuracy:max,train_loss:min", "train_loss"),  # a training metric, not a table's
])
@pytest.mark.parametrize("how", ["objectives", "searcher option"])
def test_objectives_the_evaluator_does_not_measure_are_refused_before_anything_is_stored(
        db_url, objectives, wrong, how):
    given = ({"objectives": objectives} if how == "objectives"
             else {"searcher_options": {"objectives": objectives}})
    with Store(db_url) as store:
        for searcher in ("nsga2", "optuna-tpe"):
            with pytest.raises(ConfigError) as info:
                Study("typo", space="nasbench_graph", task="cora", searcher=searcher,
                      budget=30, storage=store, **given)
            message = str(info.value)
            assert f"objective {wrong} is not measured" in message
            assert "val_accuracy, test_accuracy, params, latency_ms" in message  # accepted
            assert store.studies.get("typo") is None
        assert store.studies.summaries() == []


def test_objectives_given_twice_must_agree(url):
    with pytest.raises(ConfigError, match="objectives were given twice"):
        Study("two", space="nasbench_graph", task="cora", searcher="nsga2", storage=url,
              objectives="val_accuracy:max,params:min",
              searcher_options={"objectives": "val_accuracy:max,latency_ms:min"})
    # the same objectives both ways are one request
    with Study("two", space="nasbench_graph", task="cora", searcher="nsga2", storage=url,
               budget=4, objectives="val_accuracy:max,params:min",
               searcher_options={"objectives": "val_accuracy:max,params:min",
                                 "population_size": 4}) as s:
        report = s.run()
        assert report.complete == 4
        names, front = s.store.fronts.get("two")
        assert names == ["val_accuracy:max", "params:min"] and front


def test_an_objective_metric_the_evaluator_does_not_declare_is_refused(url):
    class Undeclared(ToyTable):
        objective = "score"  # not among its metrics

    with pytest.raises(ConfigError, match="'score' but does not declare it"):
        Study("u", space=ToyGrid(), task=Undeclared(), searcher="random", storage=url)
    with Store(url) as store:
        assert store.studies.summaries() == []


def test_cli_refuses_unknown_objectives_in_one_line_and_stores_nothing(
        monkeypatch, capsys, tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    for args in (["--objectives", "val_acc:max,params:min"],
                 ["--objectives", "val_accuracy:max,flops:min"],
                 ["--searcher-opt", "objectives=val_acc:max,params:min"]):
        code, out, err = run_main(monkeypatch, capsys, "search", "--space", "nasbench_graph",
                                  "--task", "cora", "--searcher", "nsga2", "--budget", "30",
                                  "--storage", db, *args)
        assert code == 2, (out, err)
        message = one_line_error(err)
        assert "is not measured" in message and "val_accuracy" in message
        assert "trial" not in out
    with Store(db) as store:
        assert store.studies.summaries() == []


# --------------------------------------------------- item 10: resumes with other options


def test_a_resume_with_other_searcher_options_is_refused_and_changes_nothing(db_url):
    with _table_study(db_url, searcher_options={"population_size": 5}) as s:
        s.run()
    before = _rows(db_url)
    with pytest.raises(StudyConflictError) as info:
        _table_study(db_url, budget=50, searcher_options={"population_size": 3}).prepare()
    message = str(info.value)
    assert "searcher option population_size: stored 5, requested 3" in message
    assert "choose a new study name" in message
    with pytest.raises(StudyConflictError, match="population_size: stored 5, requested 10"):
        _table_study(db_url, budget=50).run()  # omitted: the default (10) differs too
    with pytest.raises(StudyConflictError, match="sample_size: stored 3, requested 2"):
        _table_study(db_url, budget=50, searcher_options={"population_size": 5,
                                                          "sample_size": 2}).run()
    assert _rows(db_url) == before  # the budget too
    # the same options, and settings that do not change results, resume it
    with _table_study(db_url, budget=8, searcher_options={"population_size": 5},
                      batch_trials=4) as s:
        assert s.run().complete == 8


def test_options_equal_to_the_defaults_are_the_same_request(url):
    with _table_study(url, budget=3) as s:
        s.run()
    with _table_study(url, budget=5, searcher_options={"population_size": 10}) as s:
        assert s.run().complete == 5


@pytest.mark.parametrize("first, then, differs", [
    ({"scheduler": None}, {"scheduler": "asha"}, "scheduler"),
    ({"objectives": "val_accuracy:max,params:min", "searcher": "nsga2"},
     {"objectives": "val_accuracy:max,test_accuracy:max", "searcher": "nsga2"}, "objectives"),
    ({"epochs": 2}, {"epochs": 3}, "fidelity"),
])
def test_a_resume_with_another_scheduler_objectives_or_fidelity_changes_nothing(
        url, first, then, differs):
    """Old code refused the scheduler and objectives only after storing the new budget."""
    space, make = ToyGrid(), ToyEpochs
    with Study("s", space=space, task=make(), budget=2, storage=url,
               searcher=first.pop("searcher", "random"), **first) as s:
        s.run()
    before = _rows(url)
    with pytest.raises((StudyConflictError, ConfigError), match=differs):
        Study("s", space=space, task=make(), budget=40, storage=url,
              searcher=then.pop("searcher", "random"), **then).prepare()
    assert _rows(url) == before


def test_an_older_study_without_recorded_options_still_resumes_and_records_them(url):
    with _table_study(url, budget=3) as s:
        s.run()
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # as an older naslab stored it
        config = json.loads(conn.execute(sa.text("SELECT config FROM naslab_studies")).scalar())
        for key in ("searcher_options", "scheduler", "objectives"):
            config.pop(key)
        conn.execute(sa.text("UPDATE naslab_studies SET config = :c"), {"c": json.dumps(config)})
    engine.dispose()
    with _table_study(url, budget=5, searcher_options={"population_size": 7}) as s:
        assert s.run().complete == 5  # not recorded: not checked
        assert s.store.studies.get("s").config["searcher_options"] == {"population_size": 7}
    with pytest.raises(StudyConflictError, match="population_size: stored 7, requested 10"):
        _table_study(url, budget=6).prepare()


def test_cli_refuses_a_resume_with_other_searcher_options(monkeypatch, capsys, tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    base = ["search", "--space", "nasbench_graph", "--task", "cora", "--study", "demo",
            "--storage", db, "--in-process"]
    code, out, err = run_main(monkeypatch, capsys, *base, "--budget", "4")
    assert code == 0, err
    before = _rows(db)
    code, out, err = run_main(monkeypatch, capsys, *base, "--budget", "9",
                              "--searcher-opt", "population_size=3")
    assert code == 2
    message = one_line_error(err)
    assert "searcher option population_size: stored 10, requested 3" in message
    assert "new study name" in message and "trial" not in out
    assert _rows(db) == before


# ------------------------------------------------------- item 13: a budget over the space


@pytest.mark.parametrize("searcher", ["random", "evolution", "local", "optuna-random"])
def test_a_budget_larger_than_a_space_of_known_size_stops_when_it_is_exhausted(url, searcher):
    evaluator = ToyTable()
    with Study("small", space=ToyGrid(), task=evaluator, searcher=searcher, budget=20,
               storage=url) as s:
        report = s.run()
        trials = s.store.trials.list("small")
    assert report.exhausted == "the space holds 6 architectures; all are evaluated"
    assert report.space_size == 6 and report.complete == 6
    assert len(trials) == 6 and len({t.arch_hash for t in trials}) == 6
    assert not any(t.reused_from for t in trials)  # no copies of its own results
    assert sorted(evaluator.calls) == sorted(t.arch_hash for t in trials)
    # a resume finds it exhausted at once, evaluates and stores nothing
    again = ToyTable()
    with Study("small", space=ToyGrid(), task=again, searcher=searcher, budget=30,
               storage=url) as s:
        report = s.run()
        assert report.exhausted and report.complete == 6 and not again.calls
        assert len(s.store.trials.list("small")) == 6


@pytest.mark.parametrize("searcher", ["random", "evolution"])
def test_a_space_of_unknown_size_stops_after_repeated_proposals(url, searcher):
    assert ToyTree().size() is None
    with Study("tree", space=ToyTree(), task=ToyTable(), searcher=searcher, budget=10,
               storage=url) as s:
        report = s.run()
        trials = s.store.trials.list("tree")
    assert len(trials) == 3 and len({t.arch_hash for t in trials}) == 3
    assert report.complete == 3 and report.space_size is None
    assert report.exhausted == (
        f"the searcher proposed only architectures the study holds, {EXHAUSTED_AFTER} "
        "times in a row: the space looks exhausted after 3 distinct architectures")


def test_a_budget_within_the_space_is_not_cut_short(url):
    with Study("fits", space=ToyGrid(), task=ToyTable(), searcher="random", budget=6,
               storage=url) as s:
        report = s.run()
    assert report.complete == 6 and report.exhausted is None


@pytest.mark.parametrize("space, says", [
    ("toy_grid", "stopped before the budget: the space holds 6 architectures; all are "
                 "evaluated"),
    ("toy_tree", "stopped before the budget: the searcher proposed only architectures the "
                 f"study holds, {EXHAUSTED_AFTER} times in a row: the space looks exhausted "
                 "after 3 distinct architectures"),
])
def test_cli_says_the_space_is_exhausted(monkeypatch, capsys, tmp_path, toy_cli, space, says):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    code, out, err = run_main(monkeypatch, capsys, "search", "--space", space, "--task", "toy",
                              "--searcher", "random", "--budget", "25", "--storage", db)
    assert code == 0, err
    assert says in " ".join(out.split())
    with Store(db) as store:
        (summary,) = store.studies.summaries()
        assert summary.n_complete == len({t.arch_hash for t in store.trials.list(summary.name)})


# ------------------------------------------------------- item 9: interrupted trials


def _count(url: str, name: str, state: str) -> int:
    with Store(url) as s:
        return 0 if s.studies.get(name) is None else len(s.trials.list(name, [state]))


def test_a_sigkilled_driver_s_trials_are_evaluated_again_first(monkeypatch, capsys, tmp_path):
    """A real driver process, killed with SIGKILL while a trial runs, then resumed with
    the command line: the interrupted architecture is the first new trial, evaluated
    (not reused), and the summary says so."""
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tests.test_adversarial_study", url, "k",
                             "10"], cwd=tmp_path, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            if _count(url, "k", "complete") >= 4 and _count(url, "k", "running"):
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with Store(url) as s:
        before = s.trials.list("k")
        running = [t for t in before if t.state == "running"]
    assert running, "the kill left a trial running"
    last = max(t.number for t in before)
    options = json.dumps(KILLED_SEARCHER[1]["sampler_options"])
    code, out, err = run_main(monkeypatch, capsys, "search", "--space", "nasbench_graph",
                              "--task", "cora", "--searcher", KILLED_SEARCHER[0],
                              "--searcher-opt", f"sampler_options={options}",
                              "--seed", "0", "--study", "k", "--budget", "10", "--storage", url,
                              "--in-process")
    assert code == 0, err
    said = " ".join(out.split())
    assert f"{len(running)} interrupted trial(s) from an earlier run evaluated again first" in said
    with Store(url) as s:
        after = s.trials.list("k")
    new = [t for t in after if t.number > last]
    assert [t.arch_hash for t in new[:len(running)]] == [t.arch_hash for t in running]
    for t in new[:len(running)]:
        assert t.state == "complete" and t.reused_from is None  # evaluated again
    old = {t.id: t.state for t in after if t.number <= last}
    assert all(old[t.id] == "interrupted" for t in running)  # the record stays
    done = [t for t in after if t.state == "complete"]
    assert len(done) == 10 and len({t.arch_hash for t in done}) == 10


def _interrupted(store: Store, study, arch, times: int = 1) -> None:
    """Store ``times`` interrupted trials of ``arch`` (a driver that died running it)."""
    for _ in range(times):
        ctx = ClaimContext.of(study, driver="gone/1/1", budget=None, reuse=False)
        claim = store.protocol.claim(ctx, arch)
        assert claim.outcome is ClaimOutcome.NEW, claim
        store.protocol.interrupt_running(study.id)


def test_interrupted_architectures_are_retried_unless_held_or_interrupted_too_often(db_url):
    space = ToyGrid()
    a, b, c, d = (space.from_decisions(a=x, b=y) for x, y in
                  (("x", "p"), ("x", "q"), ("y", "p"), ("y", "q")))
    evaluator = ToyTable()
    with Store(db_url) as store:
        with Study("r", space=space, task=evaluator, searcher="random", budget=1,
                   storage=store) as s:
            s.prepare()
            study = store.studies.get("r")
            _interrupted(store, study, a)
            _interrupted(store, study, b, times=MAX_INTERRUPTIONS)  # perhaps what kills it
            _interrupted(store, study, c)
            _interrupted(store, study, d)
            # d is completed meanwhile (by another driver of the study)
            claim = store.protocol.claim(
                ClaimContext.of(study, driver="other/1/1", budget=None), d)
            store.protocol.finish(claim.trial_id, evaluator.evaluate(space, d, 1, 0, _Null()),
                                  objective="val_accuracy")
            evaluator.calls.clear()
        with Study("r", space=space, task=evaluator, searcher="random", budget=5,
                   storage=store) as s:
            report = s.run()
            trials = s.store.trials.list("r", ["complete"])
    assert report.retried == 2 and report.not_retried == 1
    assert evaluator.calls[:2] == [a.hash, c.hash]  # first, in the order they ran
    assert [t.arch_hash for t in trials[1:3]] == [a.hash, c.hash]
    assert len({t.arch_hash for t in trials}) == len(trials) == 5


def test_an_interrupted_architecture_evaluated_elsewhere_is_reused_not_retrained(url):
    space = ToyGrid()
    arch = space.from_decisions(a="y", b="r")
    with Store(url) as store:
        with Study("other", space=space, task=ToyTable(), searcher="random", budget=6,
                   storage=store) as s:
            s.run()  # evaluates all six
        with Study("mine", space=space, task=ToyTable(), searcher="random", budget=1,
                   storage=store) as s:
            s.prepare()
            _interrupted(store, store.studies.get("mine"), arch)
        evaluator = ToyTable()
        with Study("mine", space=space, task=evaluator, searcher="random", budget=2,
                   storage=store) as s:
            report = s.run()
            first = s.store.trials.list("mine", ["complete"])[0]
    assert report.retried == 1 and not evaluator.calls
    assert first.arch_hash == arch.hash and first.reused_from is not None


class _Null:
    def report(self, step, metrics):
        return True


if __name__ == "__main__":
    main(sys.argv[1:])
