"""NSGA-II: selection, Pareto front, replay and search quality on a synthetic problem."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import naslab.searchers.nsga2 as nsga2_module
from naslab import ConfigError
from naslab.search_spaces.nb201 import OPS, NB201Space
from naslab.searchers import get_searcher
from naslab.searchers.nsga2 import NSGA2, environmental_selection
from naslab.searchers.objectives import as_minimised
from naslab.searchers.pareto import hypervolume, non_dominated_sort, normalise, pareto_mask
from naslab.searchers.random_search import RandomSearch

TWO = "val_accuracy:max,params:min"

# A synthetic trade-off on NB-201 cells: "accuracy" grows with each edge's operation
# (3x3 conv > 1x1 conv > skip > pool > none) while "params" counts the convolutions'
# weights (9 per 3x3, 1 per 1x1). The front mixes 3x3 and 1x1 convolutions with skips
# on the other edges, a small corner of the 15,625 cells.
QUALITY = {
    "none": 0.0,
    "avg_pool_3x3": 0.15,
    "skip_connect": 0.3,
    "nor_conv_1x1": 0.6,
    "nor_conv_3x3": 1.0,
}
PARAMS = {"none": 0, "avg_pool_3x3": 0, "skip_connect": 0, "nor_conv_1x1": 1, "nor_conv_3x3": 9}
LOW, HIGH, REF = [-1.0, 0.0], [0.0, 54.0], [1.1, 1.1]  # bounds of (-accuracy, params)


def synthetic(ops) -> tuple[float, float]:
    ops = list(ops)
    return sum(QUALITY[o] for o in ops) / len(ops), float(sum(PARAMS[o] for o in ops))


def normalised_hv(pairs) -> float:
    """Hypervolume of (accuracy, params) pairs, normalised to [0, 1] in both."""
    pts = np.array([[-acc, params] for acc, params in pairs]).reshape(-1, 2)
    return hypervolume(normalise(pts, LOW, HIGH), REF)


def run(searcher, rounds: int) -> list[tuple[float, float]]:
    for _ in range(rounds):
        (arch,) = searcher.ask(1)
        acc, params = synthetic(arch.decisions.values())
        searcher.tell(arch, acc, {"val_accuracy": acc, "params": params})
    return [(o.metrics["val_accuracy"], o.metrics["params"]) for o in searcher.done]


def distinct_archs(n: int, seed: int = 0):
    space, rng, out = NB201Space(), np.random.default_rng(seed), {}
    while len(out) < n:
        a = space.sample(rng)
        out.setdefault(a.hash, a)
    return list(out.values())


def test_beats_random_search_on_a_two_objective_tradeoff():
    optimum = normalised_hv(synthetic(c) for c in itertools.product(OPS, repeat=6))
    finals = {}
    for name in ("nsga2", "random"):
        hvs = []
        for seed in range(5):
            if name == "nsga2":
                s = NSGA2(NB201Space(), seed=seed, objectives=TWO, population_size=10)
            else:
                s = RandomSearch(NB201Space(), seed=seed)  # single-objective: only samples
            hvs.append(normalised_hv(run(s, 80)))
        finals[name] = float(np.mean(hvs))
    # not trivial: 80 random cells leave a clear gap to the true front ...
    assert finals["random"] < optimum - 0.05
    # ... which NSGA-II narrows, on average over the seeds
    assert finals["nsga2"] > finals["random"] + 0.01
    assert finals["nsga2"] < optimum


def test_replay_resumes_exactly_with_two_objectives():
    space = NB201Space()
    full = NSGA2(space, seed=7, objectives=TWO, population_size=6, crossover_prob=0.7)
    history = []
    for i in range(40):
        (a,) = full.ask(1)
        acc, params = synthetic(a.decisions.values())
        if i % 9 == 4:
            item = (a, None, None)  # failed trial
        elif i % 11 == 5:
            item = (a, acc, {"val_accuracy": acc})  # params missing: ignored by NSGA-II
        else:
            item = (a, acc, {"val_accuracy": acc, "params": params})
        full.tell(*item)
        history.append(item)
    resumed = NSGA2(space, seed=7, objectives=TWO, population_size=6, crossover_prob=0.7)
    resumed.replay(history[:17])
    tail = []
    for _a, value, metrics in history[17:]:
        (b,) = resumed.ask(1)
        tail.append(b.hash)
        resumed.tell(b, value, metrics)
    assert tail == [a.hash for a, _, _ in history[17:]]
    assert [o.arch.hash for o in resumed.population] == [o.arch.hash for o in full.population]


def test_failed_trials_are_accepted_and_ignored():
    s = NSGA2(NB201Space(), seed=0, objectives=TWO, population_size=3)
    space = s.space
    for i in range(12):
        (a,) = s.ask(1)
        space.validate(a)
        if i % 2:
            s.tell(a, None)
        else:
            s.tell(a, 0.5, {"val_accuracy": 0.5})  # params missing
    assert s.population == [] and s.pareto_front == []
    (a,) = s.ask(1)  # with no usable result it keeps sampling
    space.validate(a)
    s.tell(a, 0.5, {"val_accuracy": 0.5, "params": 3.0})
    assert [o.arch for o in s.population] == [a] == [o.arch for o in s.pareto_front]
    for _ in range(3):  # one member: both tournaments pick it
        (b,) = s.ask(1)
        space.validate(b)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"population_size": 1}, "population_size must be an integer >= 2"),
        ({"population_size": 2.5}, "population_size must be an integer >= 2"),
        ({"population_size": True}, "population_size must be an integer >= 2"),
        ({"population_size": "20"}, "population_size must be an integer >= 2"),
        ({"crossover_prob": -0.1}, "crossover_prob must be a finite number >= 0 and <= 1"),
        ({"crossover_prob": 1.5}, "crossover_prob must be a finite number >= 0 and <= 1"),
        ({"crossover_prob": float("nan")}, "crossover_prob must be a finite number >= 0 and <= 1"),
        ({"crossover_prob": "high"}, "crossover_prob must be a finite number >= 0 and <= 1"),
        ({"objectives": "val_accuracy:up"}, "'max' or 'min'"),
    ],
)
def test_bad_options_are_refused(options, match):
    with pytest.raises(ConfigError, match=match):
        NSGA2(NB201Space(), **options)


def test_options_and_registry():
    s = get_searcher(
        "nsga2", NB201Space(), seed=1, objectives=TWO, population_size=4, crossover_prob=1
    )
    assert isinstance(s, NSGA2) and s.multi_objective
    assert (s.population_size, s.crossover_prob) == (4, 1.0)
    assert [str(o) for o in s.objectives] == ["val_accuracy:max", "params:min"]
    NSGA2(NB201Space(), population_size=np.int64(2), crossover_prob=0)  # accepted


def test_environmental_selection_cuts_the_last_front_by_crowding():
    pts = np.array(
        [
            [5.0, 5.0],  # 0: front 1
            [1.0, 3.0],  # 1: front 0, crowding (2-0)/4 + (4-2.5)/4 = 0.875
            [0.0, 4.0],  # 2: front 0, boundary
            [3.0, 1.0],  # 3: front 0, crowding (4-2)/4 + (2.5-0)/4 = 1.125
            [4.0, 0.0],  # 4: front 0, boundary
            [2.0, 2.5],  # 5: front 0, crowding (3-1)/4 + (3-1)/4 = 1.0
        ]
    )
    index, ranks, crowding = environmental_selection(pts, 4)
    assert index.tolist() == [2, 3, 4, 5]
    assert ranks.tolist() == [0, 0, 0, 0]
    assert np.isinf(crowding[[0, 2]]).all()
    index, _, _ = environmental_selection(pts, 6)
    assert index.tolist() == [0, 1, 2, 3, 4, 5]
    index, ranks, _ = environmental_selection(pts[[0, 1, 2]], 2)
    assert index.tolist() == [1, 2] and ranks.tolist() == [0, 0]
    tie = np.array([[0.0, 2.0], [1.0, 1.0], [2.0, 0.0], [1.0, 1.0], [3.0, 3.0]])
    assert environmental_selection(tie, 3)[0].tolist() == [0, 1, 2]  # history order
    assert environmental_selection(np.empty((0, 2)), 3)[0].tolist() == []


def test_population_is_the_selection_over_the_whole_history():
    """The pruned, incremental state selects what a full sort of the history selects."""
    rng = np.random.default_rng(0)
    archs = distinct_archs(150)
    for objectives, size in [
        (TWO, 8),
        ("val_accuracy:max,params:min,latency_ms:min", 12),
        (None, 5),
    ]:
        s = NSGA2(NB201Space(), objectives=objectives, population_size=size)
        for i, a in enumerate(archs):
            acc, params, lat = (float(v) for v in rng.integers(0, 6, size=3))  # many ties
            s.tell(
                a,
                None if i % 13 == 0 else acc,
                {"val_accuracy": acc, "params": params, "latency_ms": lat},
            )
            if i % 25 == 24:
                done = [o for o in s.history if o.values is not None]
                pts = np.array([as_minimised(s.objectives, o.values) for o in done])
                expected, ranks, _ = environmental_selection(pts, size)
                assert [o.arch for o in s.population] == [done[k].arch for k in expected]
                assert np.array_equal(s._population().ranks, ranks)
                front = [o.arch for o, keep in zip(done, pareto_mask(pts)) if keep]
                assert [o.arch for o in s.pareto_front] == front
                assert (non_dominated_sort(pts)[pareto_mask(pts)] == 0).all()


def test_one_objective_is_a_mu_plus_one_genetic_algorithm():
    archs = distinct_archs(30)
    s = NSGA2(NB201Space(), population_size=5)
    values = [float(v) for v in np.random.default_rng(1).permutation(30)]
    for a, v in zip(archs, values):
        s.tell(a, v)
    assert sorted(o.value for o in s.population) == [25.0, 26.0, 27.0, 28.0, 29.0]
    assert [o.value for o in s.pareto_front] == [29.0]
    assert s.best[1] == 29.0

    def score(arch) -> float:
        return sum(v == "nor_conv_3x3" for v in arch.decisions.values()) / 6

    finals = {}
    for name in ("nsga2", "random"):
        bests = []
        for seed in range(5):
            s = get_searcher(
                name,
                NB201Space(),
                seed=seed,
                **({"population_size": 10} if name == "nsga2" else {}),
            )
            for _ in range(60):
                (a,) = s.ask(1)
                s.tell(a, score(a))
            bests.append(s.best[1])
        finals[name] = np.mean(bests)
    assert finals["nsga2"] > finals["random"]


def test_population_is_cached_until_the_history_changes(monkeypatch):
    calls = []
    real = nsga2_module.environmental_selection

    def counting(points, size):
        calls.append(len(points))
        return real(points, size)

    monkeypatch.setattr(nsga2_module, "environmental_selection", counting)
    s = NSGA2(NB201Space(), seed=0, objectives=TWO, population_size=4)
    run(s, 4)
    assert calls == []  # random phase: no selection needed
    s.ask(3)  # three proposals (and any retries), one selection
    assert len(calls) == 1
    first = s._population()
    assert s._population() is first and len(calls) == 1
    run(s, 1)
    assert len(calls) == 1  # the ask reused it; the tell invalidated it
    assert s._population() is not first and len(calls) == 2


def test_proposals_depend_on_the_options():
    def proposals(**options):
        s = NSGA2(NB201Space(), seed=2, objectives=TWO, population_size=5, **options)
        run(s, 25)
        return [o.arch.hash for o in s.history]

    never, always = proposals(crossover_prob=0.0), proposals(crossover_prob=1.0)
    assert never[:5] == always[:5]  # the random start
    assert never[5:] != always[5:]
