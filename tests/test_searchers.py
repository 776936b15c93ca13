"""Searchers: the contract (:mod:`naslab.testing.searchers`) on every registered searcher,
then searcher-specific checks."""

from __future__ import annotations

import numpy as np
import pytest

from naslab import ConfigError, UnknownNameError
from naslab.search_spaces.nb201 import NB201Space
from naslab.searchers import SEARCHERS, RegularizedEvolution, get_searcher
from naslab.testing.searchers import SearcherContract


def score(arch) -> float:
    """A deterministic synthetic objective: fraction of 3x3 convolutions."""
    return sum(v == "nor_conv_3x3" for v in arch.decisions.values()) / 6


#: Settings that keep the predictor-guided searchers cheap in tests: a small GNN
#: ensemble scoring few candidates (the defaults are benchmarked in
#: benchmarks/search_quality.py).
SMALL_GNN = {"members": 2, "hidden": 8, "max_epochs": 5, "patience": 3, "max_steps": 20}
OPTIONS = {"guided-evolution": {"candidates": 20, "predictor_options": SMALL_GNN},
           "guided-optuna": {"screen": 8, "predictor_options": SMALL_GNN}}


class TestRegisteredSearchers(SearcherContract):
    """The contract (:mod:`naslab.testing.searchers`) on every registered searcher."""

    @pytest.fixture(params=sorted(SEARCHERS))
    def make_searcher(self, request):
        name, options = request.param, OPTIONS.get(request.param, {})
        return lambda space, seed: get_searcher(name, space, seed=seed, **options)


def test_cheaper_settings_reach_registered_searchers():
    """The contract runs on every registry entry; the cheaper settings name registered
    searchers (a renamed one would silently run with its slow defaults) and arrive."""
    assert set(OPTIONS) <= set(SEARCHERS)
    for name, options in OPTIONS.items():
        searcher = get_searcher(name, NB201Space(), seed=0, **options)
        assert searcher.guide.predictor_options == SMALL_GNN


def test_evolution_beats_random_on_synthetic_objective():
    """Evolution exploits: on a smooth objective it finds better cells than random."""
    finals = {}
    for name in ("evolution", "random"):
        bests = []
        for seed in range(6):
            s = get_searcher(name, NB201Space(), seed=seed)
            for _ in range(60):
                (a,) = s.ask(1)
                s.tell(a, score(a))
            bests.append(s.best[1])
        finals[name] = np.mean(bests)
    assert finals["evolution"] > finals["random"]


def test_evolution_population_ages():
    s = RegularizedEvolution(NB201Space(), seed=0, population_size=5, sample_size=2)
    for i in range(12):
        (a,) = s.ask(1)
        s.tell(a, float(i))
    assert [v for _, v in s.population] == [7.0, 8.0, 9.0, 10.0, 11.0]


def test_bad_options_and_names():
    with pytest.raises(ConfigError, match="population_size"):
        RegularizedEvolution(NB201Space(), population_size=1)
    with pytest.raises(UnknownNameError, match="evolution"):
        get_searcher("annealing", NB201Space())
