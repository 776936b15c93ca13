"""Multi-fidelity schedulers: the rules, and searches that stop trials early."""

from __future__ import annotations

import math

import pytest

from naslab import ConfigError, Store, Study, StudyConflictError, UnknownNameError
from naslab.searchers.schedulers import ASHA, SCHEDULERS, Hyperband, get_scheduler
from naslab.workers.ray_executor import RayExecutor
from naslab.workers.task import digits_task
from naslab.workers.training import TrainingEvaluator
from tests.curve_evaluator import CurveEvaluator
from tests.custom_space import TinyMLPSpace

EPOCHS = 9


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'sched.db'}")
    yield s
    s.close()


def curve_study(store, name, scheduler, budget=24, executor=None, evaluator=None, seed=0):
    return Study(name, space=TinyMLPSpace(), task=evaluator or CurveEvaluator(),
                 searcher="random", budget=budget, epochs=EPOCHS, seed=seed, storage=store,
                 executor=executor, scheduler=scheduler)


# ------------------------------------------------------------------ the rules


def test_asha_rungs_and_cutoff():
    asha = ASHA(9, min_epochs=1, eta=3)
    assert asha.rungs(0) == asha.rungs(7) == frozenset({1, 3})
    assert asha.on_report(0, 1, 0.5)  # the first at a rung always continues
    assert asha.on_report(1, 1, 0.6)
    assert not asha.on_report(2, 1, 0.4)  # below the 2/3 quantile of [0.5, 0.6]
    assert asha.on_report(3, 2, 0.0)  # not a rung
    assert not asha.on_report(4, 1, math.nan)  # NaN is worse than any number
    assert ASHA(10, min_epochs=2, eta=2).rungs(0) == frozenset({2, 4, 8})


def test_hyperband_brackets_follow_hyperband_sizes():
    hb = Hyperband(9, min_epochs=1, eta=3)
    assert hb.s_max == 2 and hb.sizes == [9, 5, 3]
    assert [hb.bracket(n) for n in (0, 8, 9, 13, 14, 16, 17)] == [0, 0, 1, 1, 2, 2, 0]
    assert hb.rungs(0) == frozenset({1, 3})
    assert hb.rungs(9) == frozenset({3})
    assert hb.rungs(14) == frozenset()  # the last bracket trains every trial fully
    # brackets do not compete: a poor trial of bracket 1 only meets bracket 1
    assert hb.on_report(0, 3, 0.9)
    assert hb.on_report(9, 3, 0.1)


def test_replay_rebuilds_the_same_rungs():
    live = ASHA(9)
    curves = [(n, {1: 0.1 * (n % 5), 3: 0.2 * (n % 4)}) for n in range(12)]
    answers = []
    for n, curve in curves:
        go = live.on_report(n, 1, curve[1])
        if go:
            live.on_report(n, 3, curve[3])
        answers.append(go)
    replayed = ASHA(9)
    replayed.replay([(n, c if go else {1: c[1]}) for (n, c), go in zip(curves, answers)])
    assert replayed._rungs.recorded == live._rungs.recorded


@pytest.mark.parametrize(
    "args, message",
    [
        (("asha", 9, {"min_epochs": 9}), "min_epochs"),
        (("asha", 9, {"eta": 1}), "eta must be an integer >= 2"),
        (("hyperband", 1, {}), "min_epochs"),
        (("asha", 9, {"grace": 2}), "unexpected keyword argument .grace.; it accepts: "
                                    "max_epochs, min_epochs, eta"),
    ],
)
def test_bad_scheduler_settings_are_refused(args, message):
    name, epochs, options = args
    with pytest.raises(ConfigError, match=message):
        get_scheduler(name, epochs, **options)


def test_unknown_scheduler_lists_the_choices():
    with pytest.raises(UnknownNameError, match="asha"):
        get_scheduler("median", 9)


def test_a_table_search_refuses_a_scheduler(store):
    with pytest.raises(ConfigError, match="per-epoch reports"):
        Study("t", space="nasbench_graph", task="cora", storage=store, scheduler="asha")


def test_resuming_with_another_scheduler_is_refused(store):
    curve_study(store, "s", "asha", budget=3).run()
    with pytest.raises(StudyConflictError, match="scheduler"):
        curve_study(store, "s", "hyperband", budget=5).run()
    with pytest.raises(StudyConflictError, match="scheduler"):
        curve_study(store, "s", None, budget=5).run()
    assert store.trials.count("s") == 3


# ------------------------------------------------------------------ searches


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
class TestSchedulerContract:
    """Every scheduler, in a real (in-process) search over made-up curves."""

    def test_stopped_trials_are_stored_with_the_epochs_they_reached(self, store, name):
        report = curve_study(store, "c", name).run()
        assert report.complete + report.stopped == 24 and report.failed == 0
        assert report.stopped > 0
        scheduler = get_scheduler(name, EPOCHS)
        for t in store.trials.list("c"):
            curve = store.trials.learning_curve(t.id)["val_accuracy"]
            assert [s for s, _ in curve] == list(range(1, t.epochs_done + 1))
            if t.state == "stopped":
                assert t.epochs_done in scheduler.rungs(t.number) and t.error is None
                assert t.objective_value == pytest.approx(curve[-1][1])
            else:
                assert t.state == "complete" and t.epochs_done == EPOCHS
        best = store.trials.best("c", 3)
        assert all(t.state == "complete" for t in best)
        cols, rows = store.sql.query(
            "SELECT state, count(*), min(epochs_done), max(epochs_done) FROM naslab_results "
            "WHERE study = 'c' GROUP BY state ORDER BY state")
        states = {r[0]: r[1:] for r in rows}
        assert states["stopped"][0] == report.stopped and states["stopped"][2] < EPOCHS
        (summary,) = store.sql.query(
            "SELECT n_complete, n_stopped FROM naslab_study_summary WHERE study = 'c'")[1]
        assert summary == (report.complete, report.stopped)

    def test_decisions_follow_the_rule_in_trial_order(self, store, name):
        curve_study(store, "c", name).run()
        fresh = get_scheduler(name, EPOCHS)
        for t in store.trials.list("c"):
            curve = dict(store.trials.learning_curve(t.id)["val_accuracy"])
            stop_at = None
            for step in sorted(fresh.rungs(t.number)):
                if not fresh.on_report(t.number, step, curve[step]):
                    stop_at = step
                    break
            assert (t.state == "stopped") == (stop_at is not None), t.number
            if stop_at is not None:
                assert t.epochs_done == stop_at

    def test_a_resumed_search_decides_as_an_uninterrupted_one(self, store, tmp_path, name):
        curve_study(store, "r", name, budget=10).run()
        curve_study(store, "r", name, budget=24).run()  # a new driver: replays the rungs
        with Store(f"sqlite:///{tmp_path / 'once.db'}") as once:
            curve_study(once, "r", name, budget=24).run()
            expected = [(t.arch_hash, t.state, t.epochs_done) for t in once.trials.list("r")]
        assert [(t.arch_hash, t.state, t.epochs_done) for t in store.trials.list("r")] == expected


def test_real_training_is_stopped_at_the_rung(store):
    study = Study("train", space=TinyMLPSpace(), task=TrainingEvaluator(digits_task()),
                  searcher="random", budget=6, epochs=3, storage=store, scheduler="asha",
                  scheduler_options={"min_epochs": 1, "eta": 3})
    report = study.run()
    assert report.stopped > 0 and report.complete + report.stopped == 6
    for t in store.trials.list("train"):
        steps = [s for s, _ in store.trials.learning_curve(t.id)["val_accuracy"]]
        if t.state == "stopped":
            assert t.epochs_done == 1 and steps == [1]
            assert 0 < t.metrics["test_accuracy"] <= 1  # the partial network was tested
            assert store.trials.weights(t.id) is not None
        else:
            assert t.epochs_done == 3 and steps == [1, 2, 3]


# ------------------------------------------------------------------ on Ray


def test_one_ray_worker_decides_as_in_process(ray_cluster, store, tmp_path):
    curve_study(store, "ray", "asha", budget=12, executor=RayExecutor(workers=1)).run()
    with Store(f"sqlite:///{tmp_path / 'local.db'}") as local:
        curve_study(local, "ray", "asha", budget=12).run()
        expected = [(t.arch_hash, t.state, t.epochs_done) for t in local.trials.list("ray")]
    assert [(t.arch_hash, t.state, t.epochs_done) for t in store.trials.list("ray")] == expected


def test_ray_workers_wait_for_the_decision_at_rungs(ray_cluster, store):
    evaluator = CurveEvaluator(epoch_seconds=0.02)
    report = curve_study(store, "ray2", "hyperband", budget=16, evaluator=evaluator,
                         executor=RayExecutor(workers=2)).run()
    assert report.stopped > 0 and report.complete + report.stopped == 16
    hb = get_scheduler("hyperband", EPOCHS)
    for t in store.trials.list("ray2"):
        expected = EPOCHS if t.state == "complete" else t.epochs_done
        assert t.epochs_done == expected
        if t.state == "stopped":  # exactly at a rung: the worker waited for the answer
            assert t.epochs_done in hb.rungs(t.number)
            assert len(store.trials.learning_curve(t.id)["val_accuracy"]) == t.epochs_done
    assert len({t.worker for t in store.trials.list("ray2")}) == 2


def test_nan_on_a_ray_worker_is_a_failed_trial(ray_cluster, store):
    evaluator = CurveEvaluator(nan_act="tanh")
    report = curve_study(store, "nan", None, budget=10, evaluator=evaluator,
                         executor=RayExecutor(workers=2)).run()
    trials = store.trials.list("nan")
    nan_trials = [t for t in trials if t.decisions["act"] == "tanh"]
    assert nan_trials and report.failed == len(nan_trials)
    for t in nan_trials:
        assert t.state == "failed" and "val_accuracy is nan, not a finite number" in t.error
    assert all(t.state == "complete" for t in trials if t.decisions["act"] != "tanh")
    assert report.complete + report.failed == 10
