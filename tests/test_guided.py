"""Predictor-guided searchers, acquisition functions and multi-objective studies."""

from __future__ import annotations

import numpy as np
import pytest

from naslab import ConfigError, Study, UnknownNameError
from naslab.search_spaces.nb201 import NB201Space
from naslab.searchers.acquisition import acquire, expected_improvement
from naslab.searchers.guided import GuidedEvolution
from naslab.searchers.guided_optuna import GuidedOptuna
from naslab.searchers.objectives import Objective, parse_objectives


def score(arch) -> float:
    return sum(v == "nor_conv_3x3" for v in arch.decisions.values()) / 6


def cost(arch) -> float:
    return float(sum(9 if v == "nor_conv_3x3" else 1 if v == "nor_conv_1x1" else 0
                     for v in arch.decisions.values()))


class TestAcquisition:
    def test_ucb_mean_and_ts(self):
        mean, std = np.array([0.5, 0.4]), np.array([0.0, 0.2])
        assert acquire("mean", mean, std).tolist() == [0.5, 0.4]
        assert np.allclose(acquire("ucb", mean, std, kappa=1.0), [0.5, 0.6])
        draws = np.array([acquire("ts", mean, std, rng=np.random.default_rng(i))
                          for i in range(2000)])
        assert np.allclose(draws[:, 0], 0.5)  # no uncertainty: no spread
        assert abs(draws[:, 1].std() - 0.2) < 0.02 and abs(draws[:, 1].mean() - 0.4) < 0.02

    def test_expected_improvement_matches_monte_carlo(self):
        rng = np.random.default_rng(0)
        mean, std, best = np.array([0.3, 0.5, 0.7]), np.array([0.1, 0.05, 0.2]), 0.55
        ei = expected_improvement(mean, std, best)
        samples = rng.normal(mean, std, size=(200_000, 3))
        mc = np.maximum(samples - best, 0).mean(axis=0)
        assert np.allclose(ei, mc, atol=2e-3)
        assert expected_improvement(np.array([0.6]), np.array([0.0]), 0.5)[0] == pytest.approx(0.1)

    def test_bad_acquisition(self):
        with pytest.raises(UnknownNameError, match="ucb"):
            acquire("pi", np.zeros(1), np.zeros(1))
        with pytest.raises(ConfigError, match="acquisition"):
            GuidedEvolution(NB201Space(), predictor="rf", acquisition="pi")


class TestGuidedEvolution:
    def test_beats_random_on_a_smooth_objective(self):
        finals = {"guided": [], "random": []}
        for seed in range(3):
            g = GuidedEvolution(NB201Space(), seed=seed, predictor="rf", candidates=100)
            r = GuidedEvolution(NB201Space(), seed=seed, predictor="rf", initial_samples=10_000)
            for s, key in ((g, "guided"), (r, "random")):
                for _ in range(30):
                    (a,) = s.ask(1)
                    s.tell(a, score(a))
                finals[key].append(s.best[1])
        assert np.mean(finals["guided"]) > np.mean(finals["random"])
        assert np.mean(finals["guided"]) >= 0.75

    def test_refits_on_prefixes_only(self):
        s = GuidedEvolution(NB201Space(), seed=0, predictor="rf", initial_samples=5,
                            refit_every=4, candidates=20)
        for _ in range(17):
            (a,) = s.ask(1)
            s.tell(a, score(a))
        # fits at 5, 9, 13 (asked before the 6th, 10th, 14th proposal) and at 17: none yet
        assert s.guide.fits == 3 and s.guide._fitted[0] == 13

    def test_gnn_predictor_guides_too(self):
        s = GuidedEvolution(NB201Space(), seed=1, predictor="dgin", initial_samples=6,
                            candidates=30, predictor_options={"members": 2, "max_steps": 50})
        for _ in range(9):
            (a,) = s.ask(1)
            s.tell(a, score(a))
        assert s.guide.fits == 1 and s.guide.refit_every == 10

    @pytest.mark.parametrize("acquisition", ["ucb", "ei", "ts", "mean"])
    def test_every_acquisition_runs(self, acquisition):
        s = GuidedEvolution(NB201Space(), seed=0, predictor="rf", acquisition=acquisition,
                            initial_samples=4, candidates=20)
        for _ in range(8):
            (a,) = s.ask(1)
            s.tell(a, score(a))
        assert len({o.arch.hash for o in s.history}) == 8

    def test_multi_objective_beats_random_on_a_table(self):
        """Accuracy against latency on NAS-Bench-Graph's cora table (real values)."""
        from naslab.bench import hypervolume_curve, table_bounds
        from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace, bench_key
        from naslab.searchers import get_searcher
        from naslab.workers.benchmark_table import load_table

        objs = ["val_accuracy:max", "latency_ms:min"]
        table, space = load_table("cora"), NasBenchGraphSpace("cora")
        low, high = table_bounds("cora", objs)
        hv = {}
        for name, options in (("guided-evolution", {"predictor": "rf", "candidates": 80}),
                              ("random", {})):
            vols = []
            for seed in range(3):
                s = get_searcher(name, space, seed=seed, objectives=objs, **options)
                points = []
                for _ in range(40):
                    (a,) = s.ask(1)
                    row = table[bench_key(a)]
                    s.tell(a, row["valid_perf"], {"latency_ms": 1000 * row["latency"]})
                    points.append((row["valid_perf"], 1000 * row["latency"]))
                vols.append(hypervolume_curve(np.array(points), objs, low, high)[-1])
            hv[name] = np.mean(vols)
        assert hv["guided-evolution"] > hv["random"]

    def test_bad_options(self):
        with pytest.raises(ConfigError, match="candidates"):
            GuidedEvolution(NB201Space(), predictor="rf", candidates=0)
        with pytest.raises(ConfigError, match="crossover_prob"):
            GuidedEvolution(NB201Space(), predictor="rf", crossover_prob=2)
        with pytest.raises(UnknownNameError, match="predictor"):
            GuidedEvolution(NB201Space(), predictor="svm")


class TestGuidedOptuna:
    def test_only_real_evaluations_reach_the_optuna_study(self):
        s = GuidedOptuna(NB201Space(), seed=0, predictor="rf", initial_samples=5, screen=8)
        for _ in range(12):
            (a,) = s.ask(1)
            s.tell(a, score(a))
        complete = [t for t in s.study.trials if t.state.name == "COMPLETE"]
        assert len(complete) >= 12
        hashes = {t.user_attrs.get("naslab_arch_hash") for t in complete}
        assert {o.arch.hash for o in s.history} <= hashes
        assert s.guide.fits == 2  # at 5 and 10 results (rf refits every 5)


class TestObjectives:
    def test_parse(self):
        assert parse_objectives(None) == (Objective("val_accuracy", "max"),)
        assert parse_objectives("val_accuracy, latency") == (
            Objective("val_accuracy", "max"), Objective("latency_ms", "min"))
        with pytest.raises(ConfigError, match="direction"):
            parse_objectives("loss")
        with pytest.raises(ConfigError, match="repeat"):
            parse_objectives("params,params:min")

    def test_single_objective_searcher_refuses_several(self):
        from naslab.searchers import get_searcher

        with pytest.raises(ConfigError, match="multi-objective searcher"):
            get_searcher("evolution", NB201Space(), objectives="val_accuracy,params")


class TestMultiObjectiveStudy:
    def test_front_is_stored_and_resumed(self, tmp_path):
        url = f"sqlite:///{tmp_path / 'mo.db'}"
        objs = "val_accuracy:max,latency_ms:min"
        with Study("mo", space="nasbench_graph", task="cora", searcher="nsga2", budget=30,
                   seed=0, storage=url, objectives=objs) as study:
            study.run()
            objectives, front = study.store.fronts.get("mo")
            trials = study.store.trials.list("mo", ["complete"])
        assert objectives == ["val_accuracy:max", "latency_ms:min"] and front
        for f in front:  # nothing stored dominates a front member
            assert not any(t.metrics["val_accuracy"] >= f.metrics["val_accuracy"]
                           and t.latency_ms <= f.latency_ms
                           and (t.metrics["val_accuracy"], t.latency_ms)
                           != (f.metrics["val_accuracy"], f.latency_ms) for t in trials)
        with Study("mo", space="nasbench_graph", task="cora", searcher="nsga2", budget=40,
                   seed=0, storage=url, objectives=objs) as study:
            report = study.run()
            assert report.complete + report.failed == 40 and report.trained_this_run == 10
        with pytest.raises(Exception, match="objectives"), Study(
                "mo", space="nasbench_graph", task="cora", searcher="nsga2", budget=40,
                seed=0, storage=url, objectives="val_accuracy:max,params:min") as study:
            study.run()

    def test_multi_objective_needs_a_multi_objective_searcher(self, tmp_path):
        with pytest.raises(ConfigError, match="multi-objective"):
            Study(space="nasbench_graph", task="cora", searcher="evolution",
                  objectives="val_accuracy,latency", storage=f"sqlite:///{tmp_path}/x.db")
        with pytest.raises(ConfigError, match="single-objective study"):
            Study(space="nasbench_graph", task="cora", objectives="latency",
                  storage=f"sqlite:///{tmp_path}/x.db")
