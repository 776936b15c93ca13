"""The search loop end to end: storage, resume, reuse, failures, crashes."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from naslab import ConfigError, Store, Study, StudyConflictError
from naslab.workers.benchmark_table import NasBenchGraphEvaluator
from naslab.workers.evaluator import Result
from naslab.workers.task import digits_task
from naslab.workers.training import TrainingEvaluator
from tests.custom_space import TinyMLPSpace


class CountingTable(NasBenchGraphEvaluator):
    """The real table evaluator, counting its evaluations."""

    def __init__(self, dataset: str = "cora") -> None:
        super().__init__(dataset)
        self.calls = 0

    def evaluate(self, space, arch, fidelity, seed, reporter):
        self.calls += 1
        return super().evaluate(space, arch, fidelity, seed, reporter)


class FlakyTable(CountingTable):
    """Raises for GAT first layers and returns NaN for GIN first layers."""

    def evaluate(self, space, arch, fidelity, seed, reporter):
        result = super().evaluate(space, arch, fidelity, seed, reporter)
        if arch.decisions["op1"] == "gat":
            raise RuntimeError("simulated CUDA error")
        if arch.decisions["op1"] == "gin":
            return Result(metrics={**result.metrics, "val_accuracy": math.nan})
        return result


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'study.db'}")
    yield s
    s.close()


def table_study(store, name="s", budget=20, searcher="evolution", seed=0, evaluator=None):
    return Study(name, space="nasbench_graph", task=evaluator or CountingTable(),
                 searcher=searcher, budget=budget, seed=seed, storage=store)


def test_budget_is_met_and_every_result_is_stored(store):
    study = table_study(store, budget=25)
    report = study.run()
    assert report.complete == 25 and report.failed == 0
    trials = store.trials.list("s")
    assert [t.number for t in trials] == list(range(25))
    assert len({t.arch_hash for t in trials}) == 25
    assert study.evaluator.calls == 25
    for t in trials:
        assert t.state == "complete"
        assert t.metrics["val_accuracy"] == t.objective_value
        assert t.params and t.latency_ms
    assert report.best.objective_value == max(t.objective_value for t in trials)


def test_resume_continues_exactly_where_an_uninterrupted_run_would(store, tmp_path):
    table_study(store, "split", budget=12).run()
    first = [(t.arch_hash, t.objective_value) for t in store.trials.list("split")]
    resumed = table_study(store, "split", budget=30)
    report = resumed.run()
    assert report.complete == 30
    assert resumed.evaluator.calls == 18  # nothing retrained
    split = [(t.arch_hash, t.objective_value) for t in store.trials.list("split")]
    assert split[:12] == first

    with Store(f"sqlite:///{tmp_path / 'other.db'}") as other:
        table_study(other, "whole", budget=30).run()
        whole = [(t.arch_hash, t.objective_value) for t in other.trials.list("whole")]
    assert split == whole


def test_known_architectures_are_reused_across_studies(store):
    table_study(store, "a", budget=15, searcher="random", seed=3).run()
    b = table_study(store, "b", budget=20, searcher="random", seed=3)
    report = b.run()
    assert report.reused_this_run == 15 and b.evaluator.calls == 5
    source = {t.arch_hash: t for t in store.trials.list("a")}
    for t in store.trials.list("b")[:15]:
        assert t.reused_from == source[t.arch_hash].id
        assert t.objective_value == source[t.arch_hash].objective_value
    # A different task is a different key: nothing is reused.
    c = table_study(store, "c", budget=5, searcher="random", seed=3,
                    evaluator=CountingTable("citeseer"))
    assert c.run().reused_this_run == 0 and c.evaluator.calls == 5


def test_failing_and_nan_evaluations_are_stored_and_the_search_goes_on(store):
    study = table_study(store, "flaky", budget=40, searcher="random", evaluator=FlakyTable())
    report = study.run()
    trials = store.trials.list("flaky")
    assert len(trials) == 40 and report.complete + report.failed == 40
    failed = [t for t in trials if t.state == "failed"]
    assert failed, "a random sample of 40 hits gat or gin first layers"
    for t in failed:
        if t.decisions["op1"] == "gat":
            assert "RuntimeError: simulated CUDA error" in t.error
        else:
            assert t.decisions["op1"] == "gin" and "not a finite number" in t.error
    assert all(t.decisions["op1"] not in ("gat", "gin") for t in trials if t.state == "complete")
    # Failed architectures are not reused: a new study retries them.
    again = table_study(store, "again", budget=40, searcher="random",
                        evaluator=CountingTable())
    again.run()
    assert again.evaluator.calls == report.failed


def test_real_training_stores_curves_weights_and_measurements(store):
    evaluator = TrainingEvaluator(digits_task(), keep_weights=True)
    study = Study("mlp", space=TinyMLPSpace(), task=evaluator, budget=3, epochs=2,
                  storage=store, searcher="random")
    report = study.run()
    assert report.complete == 3
    for t in store.trials.list("mlp"):
        assert t.metrics["val_accuracy"] > 0.5
        assert 0 < t.metrics["test_accuracy"] <= 1
        assert t.params > 0 and t.flops > 0 and t.latency_ms > 0 and t.train_seconds > 0
        curve = store.trials.learning_curve(t.id)
        assert [step for step, _ in curve["val_accuracy"]] == [1, 2]
        assert curve["val_accuracy"][-1][1] == pytest.approx(t.metrics["val_accuracy"])
        weights = store.trials.weights(t.id)
        module = study.space.build(t.architecture(), evaluator.task)
        module.load_state_dict(weights)
        assert sum(p.numel() for p in module.parameters()) == t.params


def test_study_settings_are_checked(store):
    with pytest.raises(ConfigError, match="budget"):
        Study("x", budget=0, storage=store)
    with pytest.raises(ConfigError, match="seed"):
        Study("x", seed=-1, storage=store)
    with pytest.raises(ConfigError, match="epochs"):
        Study("x", epochs=0, storage=store)
    table_study(store, "taken", budget=2).run()
    with pytest.raises(StudyConflictError, match="task_key"):
        table_study(store, "taken", budget=2, evaluator=CountingTable("citeseer")).run()
    assert len(store.trials.list("taken")) == 2


def _count(db: str, state: str) -> int:
    with Store(f"sqlite:///{db}") as s:
        study = s.studies.get("crash")
        return 0 if study is None else len(s.trials.list("crash", states=[state]))


@pytest.mark.slow  # kills the CLI in a subprocess, with its Ray workers
@pytest.mark.parametrize("executor", [["--in-process"], ["--workers", "2"]],
                         ids=["in-process", "ray"])
def test_sigkilled_search_resumes_without_losing_or_retraining(tmp_path, executor):
    """Kill a real `naslab search` (its driver) with SIGKILL mid-training, then resume it."""
    db = tmp_path / "crash.db"
    cmd = [sys.executable, "-m", "naslab.cli", "search", "--space", "chain", "--epochs", "2",
           "--budget", "5", "--study", "crash", "--storage", f"sqlite:///{db}", *executor]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled",
           "RAY_TMPDIR": tempfile.mkdtemp(prefix="rk", dir="/tmp")}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if db.exists() and _count(str(db), "complete") >= 2 and _count(str(db), "running"):
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Store(f"sqlite:///{db}") as s:
        before = {t.id: (t.arch_hash, t.objective_value)
                  for t in s.trials.list("crash", ["complete"])}
        assert s.trials.list("crash", ["running"]), "the kill left a trial running"

    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "interrupted trial(s) from an earlier run evaluated again first" in said
    with Store(f"sqlite:///{db}") as s:
        complete = s.trials.list("crash", ["complete"])
        assert len(complete) == 5
        assert not s.trials.list("crash", ["running"])
        assert len(s.trials.list("crash", ["interrupted"])) >= 1
        after = {t.id: (t.arch_hash, t.objective_value) for t in complete}
        assert all(after[i] == v for i, v in before.items())  # nothing lost or changed
        assert len({t.arch_hash for t in complete}) == 5  # nothing evaluated twice


def test_running_the_same_study_object_again_continues_it(store, tmp_path):
    study = table_study(store, "twice", budget=8)
    study.run()
    study.budget = 14
    report = study.run()
    assert report.complete == 14 and len(study.searcher.history) == 14
    with Store(f"sqlite:///{tmp_path / 'fresh.db'}") as other:
        table_study(other, "twice", budget=14).run()
        fresh = [t.arch_hash for t in other.trials.list("twice")]
    assert [t.arch_hash for t in store.trials.list("twice")] == fresh


def test_conflict_is_refused_by_prepare_before_any_trial(store):
    table_study(store, "taken", budget=2).run()
    clash = Study("taken", space="nasbench_graph", task="citeseer", budget=5, storage=store)
    with pytest.raises(StudyConflictError):
        clash.prepare()
    assert len(store.trials.list("taken")) == 2
