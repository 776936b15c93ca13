"""Store features beyond the Store contract, on every backend (SQLite and a real
PostgreSQL): searches and their resume, multi-objective fronts, an Optuna study kept
in the same database, a trained network's weights, predictors and proxies."""

from __future__ import annotations

import math

import pytest

from naslab import Study
from naslab.core.errors import ConfigError, UnknownNameError
from naslab.db import Store
from naslab.db.derived import ProxyKey
from naslab.predictor_store import fit_from_store, save_to_store
from naslab.predictors.registry import get_predictor
from tests.toy import make_arch


def test_table_search_resumes_with_the_same_history(db_url):
    kw = dict(space="nasbench_graph", task="cora", searcher="evolution", seed=3,
              storage=db_url)
    with Study("s", budget=25, **kw) as study:
        study.run()
    with Study("s", budget=40, **kw) as study:
        report = study.run()
    with Study("straight", budget=40, **kw) as study:
        study.run()
    with Store(db_url) as store:
        resumed = [t.arch_hash for t in store.trials.list("s")]
        straight = [t.arch_hash for t in store.trials.list("straight")]
    assert report.complete == 40 and resumed == straight  # exact replay


def test_multi_objective_front_and_views(db_url):
    with Study("mo", space="nasbench_graph", task="photo", searcher="nsga2", budget=30, seed=1,
               objectives="val_accuracy:max,latency_ms:min", storage=db_url) as study:
        study.run()
        front = study.update_pareto_front()
    with Store(db_url) as store:
        objectives, stored = store.fronts.get("mo")
        _, rows = store.sql.query(
            "SELECT trial_id, objectives FROM naslab_pareto WHERE study = 'mo'")
        _, best = store.sql.query("SELECT study, objective_value FROM naslab_best")
    assert objectives == ["val_accuracy:max", "latency_ms:min"]
    assert sorted(t.id for t in stored) == sorted(t.id for t in front) == sorted(
        r[0] for r in rows)
    assert best[0][0] == "mo" and best[0][1] == max(t.objective_value for t in front)


def test_optuna_study_in_the_same_database(db_url):
    kw = dict(space="nasbench_graph", task="cora", searcher="optuna-tpe", seed=0,
              storage=db_url)
    with Study("tpe", budget=12, **kw) as study:
        study.run()
    with Study("tpe", budget=20, **kw) as study:
        report = study.run()
    import optuna

    optuna_study = optuna.load_study(study_name="naslab:tpe", storage=db_url)
    complete = [t for t in optuna_study.trials if t.state.name == "COMPLETE"]
    assert report.complete == 20 and len(complete) == 20


@pytest.mark.parametrize("epochs", [1])
def test_trained_networks_keep_curves_and_weights(db_url, epochs):
    with Study("chain", space="chain", task="digits", searcher="random", budget=2, seed=0,
               epochs=epochs, storage=db_url, space_options={"max_depth": 2}) as study:
        report = study.run()
    assert report.complete == 2
    with Store(db_url) as store:
        for t in store.trials.list("chain"):
            assert store.trials.learning_curve(t.id)["val_accuracy"][0][0] == 1
            weights = store.trials.weights(t.id)
            assert weights and all(math.isfinite(float(w.sum())) for w in weights.values())


def test_predictors_and_proxies(db_url):
    with Study("p", space="nasbench_graph", task="cora", searcher="random", budget=30, seed=0,
               storage=db_url) as study:
        study.run()
        space, task_key = study.space, study.evaluator.key
    with Store(db_url) as store:
        rf = get_predictor("rf", {"n_estimators": 5})
        data = fit_from_store(rf, store, space, task_key)
        assert len(data.archs) == 30
        assert save_to_store(store, "rf-cora", rf, space=space, task_key=task_key) == 1
        assert save_to_store(store, "rf-cora", rf, space=space, task_key=task_key) == 2
        assert [r.version for r in store.predictors.list("rf-cora")] == [1, 2]
        assert store.predictors.load("rf-cora").version == 2
        with pytest.raises(UnknownNameError):
            store.predictors.load("nope")
        arch = make_arch(("conv",))
        key = ProxyKey("toy:v1", "digits:v1", 64, 0)
        store.predictors.put_proxies(key, arch, {"synflow": 2.5, "snip": float("nan")})
        got = store.predictors.proxies(key, [arch.hash])[arch.hash]
        assert got["synflow"] == 2.5 and math.isnan(got["snip"])


def test_batched_table_search(db_url):
    kw = dict(space="nasbench_graph", task="cora", searcher="evolution", seed=4,
              storage=db_url)
    with Study("batched", budget=150, batch_trials=16, **kw) as study:
        report = study.run()
    with Study("one-by-one", budget=150, **kw) as study:
        study.run()
    with Store(db_url) as store:
        batched = [(t.number, t.arch_hash) for t in store.trials.list("batched")]
        single = [(t.number, t.arch_hash) for t in store.trials.list("one-by-one")]
    assert report.complete == 150 and batched == single
    with pytest.raises(ConfigError, match="batch_trials"):
        Study("bad", budget=5, batch_trials=0, **kw)
