"""Every failure kind on real Ray workers: stored as failed with its reason, and the
search still finishes its budget. Slow (worker processes are killed and replaced):
run with ``python -m pytest -m slow``, as ``.ci/run`` does."""

from __future__ import annotations

import pytest

from naslab import Store, Study
from naslab.workers.ray_executor import RayExecutor
from tests.fault_evaluators import FaultyTable

pytestmark = pytest.mark.slow


def _run(tmp_path, evaluator, budget, **executor_options):
    store = Store(f"sqlite:///{tmp_path / 'faults.db'}")
    executor = RayExecutor(workers=2, **executor_options)
    report = Study("faults", space="nasbench_graph", task=evaluator, searcher="random",
                   budget=budget, seed=1, storage=store, executor=executor).run()
    trials = store.trials.list("faults")
    store.close()
    return report, trials


def test_each_failure_kind_is_stored_with_its_reason(ray_cluster, tmp_path):
    # 5 s: room for a fresh worker to start on a loaded 2-core machine before the
    # retried gat trial kills it again (the timeout counts from the launch)
    report, trials = _run(tmp_path, FaultyTable(), budget=30, trial_timeout=5.0,
                          max_retries=1)
    assert report.complete + report.failed == 30 == len(trials)
    by_op: dict[str, list] = {}
    for t in trials:
        by_op.setdefault(t.decisions["op1"], []).append(t)
    for op, expected in (("gat", "worker died (2 attempts)"), ("gin", "worker died"),
                         ("sage", "timed out after 5 s"),
                         ("cheb", "RuntimeError: deterministic bug in the model")):
        assert by_op.get(op), f"seed 1 samples some {op} architectures"
        for t in by_op[op]:
            assert t.state == "failed" and expected in t.error, (op, t.error)
            assert t.worker.split(":")[-1].isdigit(), t.worker  # the worker that ran it
    healthy = [t for op, ts in by_op.items() if op not in ("gat", "gin", "sage", "cheb")
               for t in ts]
    assert healthy and all(t.state == "complete" for t in healthy)


def test_a_worker_killed_once_is_retried_and_completes(ray_cluster, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    report, trials = _run(tmp_path, FaultyTable(str(markers), faults=("gat",)), budget=15)
    killed_once = [t for t in trials if t.decisions["op1"] == "gat"]
    assert killed_once and len(list(markers.iterdir())) == len(killed_once)
    assert all(t.state == "complete" for t in trials) and report.failed == 0


def test_workers_that_cannot_start_stop_the_search_before_any_trial(ray_cluster, tmp_path):
    from naslab import ConfigError
    from tests.fault_evaluators import UnloadableTable

    store = Store(f"sqlite:///{tmp_path / 'broken.db'}")
    study = Study("broken", space="nasbench_graph", task=UnloadableTable("cora"),
                  searcher="random", budget=5, storage=store,
                  executor=RayExecutor(workers=2))
    with pytest.raises(ConfigError, match="could not be started.*my_private_evaluators"):
        study.run()
    assert store.trials.count("broken") == 0  # no budget burnt on a broken setup
    store.close()
