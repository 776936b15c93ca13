"""Every searcher resumes a study from the store (contract suite over the registry)."""

from __future__ import annotations

import optuna
import pytest

from naslab import Study
from naslab.searchers import SEARCHERS
from naslab.searchers.registry import searcher_class

#: Cheap settings for the searchers whose defaults are slow in a unit test.
OPTIONS = {
    "guided-evolution": {"predictor": "rf", "initial_samples": 5, "candidates": 40},
    "guided-optuna": {"predictor": "rf", "initial_samples": 5, "screen": 6},
    "local": {"initial_samples": 5},
    "nsga2": {"population_size": 6},
}


def study(url: str, name: str, searcher: str, budget: int) -> Study:
    return Study(name, space="nasbench_graph", task="cora", searcher=searcher, budget=budget,
                 seed=4, storage=url, searcher_options=OPTIONS.get(searcher))


@pytest.mark.parametrize("searcher", sorted(SEARCHERS))
def test_a_resumed_search_continues_where_it_stopped(tmp_path, searcher):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    budget, first = (10, 6) if searcher == "optuna-gp" else (16, 9)
    with study(url, "split", searcher, first) as s:
        s.run()
    with study(url, "split", searcher, budget) as s:
        report = s.run()
        assert report.trained_this_run == budget - first  # nothing asked twice
        split = [t.arch_hash for t in s.store.trials.list("split")]
    assert len(split) == budget and len(set(split)) == budget
    if searcher_class(searcher).exact_replay:
        with study(f"sqlite:///{tmp_path / 'w.db'}", "whole", searcher, budget) as s:
            s.run()
            assert [t.arch_hash for t in s.store.trials.list("whole")] == split


def test_optuna_study_lives_in_the_store_database(tmp_path):
    """What optuna-dashboard reads: the Optuna study beside naslab's tables."""
    url = f"sqlite:///{tmp_path / 'o.db'}"
    with study(url, "tpe", "optuna-tpe", 8) as s:
        s.run()
    with study(url, "tpe", "optuna-tpe", 12) as s:
        s.run()
        values = sorted(t.objective_value for t in s.store.trials.list("tpe"))
    loaded = optuna.load_study(study_name="naslab:tpe", storage=url)
    complete = [t for t in loaded.trials if t.state == optuna.trial.TrialState.COMPLETE
                and "naslab_arch_hash" in t.user_attrs]
    assert sorted(t.value for t in complete) == values  # one per naslab trial, none twice
