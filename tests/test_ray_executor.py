"""The Ray executor, on a real local Ray instance."""

from __future__ import annotations

import pytest

from naslab import ConfigError, Store, Study
from naslab.workers.ray_executor import RayExecutor
from naslab.workers.task import digits_task
from naslab.workers.training import TrainingEvaluator
from tests.custom_space import TinyMLPSpace


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'ray.db'}")
    yield s
    s.close()


def test_two_workers_train_in_parallel_and_stream_reports(ray_cluster, store):
    evaluator = TrainingEvaluator(digits_task())
    executor = RayExecutor(workers=2)
    study = Study("ray", space=TinyMLPSpace(), task=evaluator, searcher="random", budget=6,
                  epochs=2, storage=store, executor=executor)
    report = study.run()
    assert report.complete == 6 and report.failed == 0
    trials = store.trials.list("ray")
    assert len({t.arch_hash for t in trials}) == 6
    for t in trials:
        assert t.metrics["val_accuracy"] > 0.5
        curve = store.trials.learning_curve(t.id)
        assert [s for s, _ in curve["val_accuracy"]] == [1, 2]
        assert store.trials.weights(t.id) is not None
    assert ray_cluster.is_initialized()  # the executor leaves a cluster it did not start


def test_same_results_as_in_process(ray_cluster, tmp_path):
    def run(executor, name):
        with Store(f"sqlite:///{tmp_path / (name + '.db')}") as s:
            Study(name, space=TinyMLPSpace(), task=TrainingEvaluator(digits_task()),
                  searcher="random", budget=3, epochs=2, storage=s, executor=executor).run()
            return {t.arch_hash: t.objective_value for t in s.trials.list(name)}

    assert run(RayExecutor(workers=2), "a") == run(None, "b")


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="workers"):
        RayExecutor(workers=0)
    with pytest.raises(ConfigError, match="cpus_per_trial"):
        RayExecutor(cpus_per_trial=0)
    with pytest.raises(ConfigError, match="ray address"):
        RayExecutor(address="nowhere")


def test_cli_search_with_two_workers(ray_cluster, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from naslab.cli import app

    monkeypatch.setenv("COLUMNS", "200")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = CliRunner().invoke(app, ["search", "--space", "chain", "--epochs", "1",
                                      "--budget", "4", "--workers", "2", "--storage", url])
    assert result.exit_code == 0, result.output
    assert "workers 2 (Ray, local)" in result.output
    with Store(url) as s:
        trials = s.trials.list("chain-digits-evolution-s0")
    assert [t.state for t in trials] == ["complete"] * 4
    assert len({t.worker for t in trials}) == 2  # both actors trained


def test_resources_the_cluster_lacks_are_refused_at_start(ray_cluster):
    evaluator = TrainingEvaluator(digits_task())
    for options, message in (({"gpus_per_trial": 1}, "has 0 GPU"),
                             ({"cpus_per_trial": 64}, "has 2 CPU")):
        executor = RayExecutor(workers=1, **options)
        with pytest.raises(ConfigError, match=message):
            executor.start(evaluator, lambda *a: None)
    assert ray_cluster.is_initialized()
    auto = RayExecutor(workers=2)
    auto.start(evaluator, lambda *a: None)
    try:
        assert auto.gpus_per_trial == 0.0 and auto.capacity == 2  # CPU-only: no GPU asked
    finally:
        auto.shutdown()


def test_auto_device_is_the_cpu_without_cuda():
    import torch

    evaluator = TrainingEvaluator(digits_task())
    assert evaluator.device_spec == "auto"
    assert evaluator.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="invalid device 'tpu9'"):
        TrainingEvaluator(digits_task(), device="tpu9")


def test_each_worker_receives_the_evaluator_once(ray_cluster, store):
    from tests.curve_evaluator import CurveEvaluator

    Study("once", space=TinyMLPSpace(), task=CurveEvaluator(), searcher="random", budget=10,
          epochs=2, storage=store, executor=RayExecutor(workers=2)).run()
    extras = [t.extra for t in store.trials.list("once")]
    by_pid: dict[int, set] = {}
    for extra in extras:
        assert extra["loads"] == 1  # unpickled once in that worker, then kept
        by_pid.setdefault(extra["pid"], set()).add(extra["instance"])
    assert len(by_pid) == 2 and all(len(ids) == 1 for ids in by_pid.values())
