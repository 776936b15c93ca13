"""Local search (White, Nolen, Savani, UAI 2021): climbing, restarts, replay."""

from __future__ import annotations

import numpy as np
import pytest

from naslab import ConfigError
from naslab.search_spaces.nb201 import NB201Space
from naslab.searchers import get_searcher
from naslab.searchers.local_search import LocalSearch
from naslab.searchers.random_search import RandomSearch

EDGE_NAMES = [d.name for d in NB201Space().decisions()]  # the six cell edges


def score(arch) -> float:
    """The contract suite's smooth objective: fraction of 3x3 convolutions (max 1)."""
    return sum(v == "nor_conv_3x3" for v in arch.decisions.values()) / 6


def trap(arch) -> float:
    """Two peaks: all 3x3 convolutions (1.0, global) and all average pools (0.9, a
    strict local optimum: its neighbours score 0.75 at most)."""
    ops = list(arch.decisions.values())
    return max(ops.count("nor_conv_3x3") / 6, 0.9 * ops.count("avg_pool_3x3") / 6)


WEIGHTS = dict(zip(EDGE_NAMES, range(1, 7)))


def weighted(arch) -> float:
    """3x3 convolutions weighted by edge (1..6): neighbours of a cell without
    convolutions all score differently."""
    return sum(w for e, w in WEIGHTS.items() if arch.decisions[e] == "nor_conv_3x3") / 21


def uniform(space: NB201Space, op: str):
    return space.from_decisions({e: op for e in EDGE_NAMES})


def started_at(space, start, value, **options) -> LocalSearch:
    """A searcher whose climb starts at ``start`` (told, never proposed)."""
    s = LocalSearch(space, initial_samples=1, **options)
    s.tell(start, value)
    assert s.phase == "climb" and s.incumbent == (start, value)
    return s


def step(s: LocalSearch, objective) -> object:
    (a,) = s.ask(1)
    s.tell(a, objective(a))
    return a


@pytest.mark.parametrize("first_improvement", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_climbs_to_the_global_optimum(seed, first_improvement):
    space = NB201Space()
    s = LocalSearch(space, seed=seed, first_improvement=first_improvement)
    nbhds: dict[str, list] = {}
    for r in range(1, 151):
        before = s.incumbent
        a = step(s, score)
        if r <= 10:
            assert before is None  # the initial random samples
        elif before is not None:  # every climbing proposal is a move
            inc = before[0]
            if inc.hash not in nbhds:
                nbhds[inc.hash] = space.neighbours(inc)
            assert a in nbhds[inc.hash]
        if s.best[1] == 1.0:
            break
    assert s.best == (uniform(space, "nor_conv_3x3"), 1.0)
    assert r <= 120 and s.restarts == 0 and s.moves >= 1


def test_starts_from_the_best_initial_sample():
    space = NB201Space()
    s = LocalSearch(space, seed=1, initial_samples=5)
    told = [step(s, weighted) for _ in range(5)]
    best = max(told, key=weighted)
    assert s.incumbent == (best, weighted(best))
    assert s.ask(1)[0] in space.neighbours(best)


def test_restarts_after_a_local_optimum():
    space = NB201Space()
    peak = uniform(space, "avg_pool_3x3")
    s = started_at(space, peak, trap(peak), seed=2)
    nbhd = space.neighbours(peak)
    proposed = [step(s, trap) for _ in nbhd]
    assert set(proposed) == set(nbhd)  # the whole neighbourhood, once each
    assert s.restarts == 1 and s.phase == "restart" and s.incumbent is None
    (restart,) = s.ask(1)
    assert restart != peak and restart not in nbhd
    s.tell(restart, trap(restart))
    assert s.phase == "climb" and s.incumbent == (restart, trap(restart))
    assert s.ask(1)[0] in space.neighbours(restart)


def test_best_improvement_moves_to_the_best_neighbour_after_all():
    space = NB201Space()
    start = uniform(space, "avg_pool_3x3")
    s = started_at(space, start, 0.0)
    nbhd = space.neighbours(start)
    for _ in nbhd[:-1]:
        step(s, weighted)
        assert s.incumbent == (start, 0.0)  # waits for the whole neighbourhood
    step(s, weighted)
    best = max(nbhd, key=weighted)
    assert best.decisions[EDGE_NAMES[-1]] == "nor_conv_3x3"
    assert s.incumbent == (best, 6 / 21) and s.moves == 1


def test_first_improvement_moves_at_the_first_better_neighbour():
    space = NB201Space()
    start = uniform(space, "avg_pool_3x3")
    s = started_at(space, start, 0.0, first_improvement=True)
    told = []
    while not told or weighted(told[-1]) == 0:
        assert s.incumbent == (start, 0.0)
        told.append(step(s, weighted))
    a = told[-1]
    assert s.incumbent == (a, weighted(a)) and s.moves == 1
    assert len(told) < len(space.neighbours(start))  # it did not evaluate the rest
    assert s.ask(1)[0] in space.neighbours(a)


def test_ask_several_gives_distinct_neighbours_then_fills_in():
    space = NB201Space()
    start = uniform(space, "avg_pool_3x3")
    s = started_at(space, start, 0.5)
    nbhd = space.neighbours(start)
    three = s.ask(3)
    assert len({a.hash for a in three}) == 3 and all(a in nbhd for a in three)
    rest = s.ask(len(nbhd) - 3 + 2)  # the queue empties: two random fill-ins
    assert set(three + rest[:-2]) == set(nbhd)
    assert all(a not in nbhd and a != start for a in rest[-2:])
    for a in reversed(three + rest):  # results come back in any order
        s.tell(a, 0.1)
    assert s.restarts == 1 and s.phase == "restart"


def test_told_results_it_never_proposed_are_fine():
    space = NB201Space()
    rng = np.random.default_rng(9)
    s = LocalSearch(space, seed=4, initial_samples=3)
    for _ in range(5):  # results before any proposal
        a = space.sample(rng)
        s.tell(a, score(a))
    assert s.phase == "climb"
    inc = s.incumbent[0]
    given = space.neighbours(inc)[:4]
    for a in given:  # neighbours evaluated elsewhere count, and are not proposed again
        s.tell(a, 0.0)
    seen = set()
    for i in range(80):
        (a,) = s.ask(1)
        space.validate(a)
        assert a not in given and a.hash not in seen
        seen.add(a.hash)
        s.tell(a, score(a))
        if i % 3 == 0:
            b = space.sample(rng)
            s.tell(b, None if i % 2 else score(b))
    assert s.best[1] == 1.0


def test_failures_count_as_evaluated_and_never_lead():
    space = NB201Space()
    s = LocalSearch(space, seed=0, initial_samples=3)
    for _ in range(5):
        step(s, lambda a: None)
    assert s.phase == "restart" and s.incumbent is None  # nothing to climb from yet
    a = step(s, score)
    assert s.incumbent == (a, score(a))
    nbhd = space.neighbours(a)
    for _ in nbhd:
        step(s, lambda a: None)
    assert s.restarts == 1  # a neighbourhood of failures is a dead end


def test_a_lost_proposal_does_not_stall_the_climb():
    space = NB201Space()
    start = uniform(space, "avg_pool_3x3")
    s = started_at(space, start, 0.0)
    nbhd = space.neighbours(start)
    asked = s.ask(len(nbhd))
    for a in asked[1:]:  # the first result never comes
        s.tell(a, weighted(a))
    assert s.phase == "climb" and s.incumbent[0] == start
    for _ in range(len(nbhd) + 1):  # random fill-ins meanwhile
        assert s.moves == 0
        (a,) = s.ask(1)
        assert a not in nbhd
        s.tell(a, 0.0)
    # told results since the climb reached start: twice its unevaluated neighbours
    assert s.moves == 1 and s.incumbent[0] != start


def test_neighbourhoods_are_computed_once_per_incumbent():
    space = NB201Space()
    calls = []
    original = space.neighbours

    def counting(arch):
        calls.append(arch.hash)
        return original(arch)

    space.neighbours = counting  # type: ignore[method-assign]
    s = LocalSearch(space, seed=3)
    for _ in range(100):
        step(s, trap)
    assert len(calls) == len(set(calls)) <= s.moves + s.restarts + 1 < 100


@pytest.mark.parametrize("first_improvement", [False, True])
def test_replay_rebuilds_the_exact_state(first_improvement):
    space = NB201Space()
    full = LocalSearch(space, seed=7, initial_samples=3, first_improvement=first_improvement)
    history, states = [], []
    for i in range(90):
        (a,) = full.ask(1)
        v = None if i % 11 == 5 else trap(a)
        full.tell(a, v)
        history.append((a, v))
        states.append((full.phase, full.incumbent, full.restarts, full.moves))
    assert full.restarts >= 1 and full.moves >= 2
    for cut in (3, 20, 47):
        resumed = LocalSearch(space, seed=7, initial_samples=3,
                              first_improvement=first_improvement)
        resumed.replay(history[:cut])
        assert (resumed.phase, resumed.incumbent, resumed.restarts,
                resumed.moves) == states[cut - 1]
        for a, v in history[cut:]:
            (b,) = resumed.ask(1)
            assert b == a
            resumed.tell(b, v)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_bad_options(bad):
    with pytest.raises(ConfigError, match="initial_samples"):
        LocalSearch(NB201Space(), initial_samples=bad)
    with pytest.raises(ConfigError, match="initial_samples must be an integer >= 1"):
        get_searcher("local", NB201Space(), initial_samples=0)


def test_beats_random_search_on_nas_bench_graph_cora():
    """On the real cora table (100 rounds, 5 seeds) local search finds better cells.

    Measured over 60 seeds (12 groups of 5): the mean of the ten best valid_perf
    values found is higher than random search's in every group (0.8045 vs 0.8017),
    and so is the mean of all told values (0.780 vs 0.769). The single best found is
    higher on average (0.8092 vs 0.8078), but only in 10 of the 12 groups of 5
    seeds, so it is reported here, not asserted.
    """
    from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace
    from naslab.workers.benchmark_table import NasBenchGraphEvaluator

    space = NasBenchGraphSpace("cora")
    ev = NasBenchGraphEvaluator("cora")
    found = {}
    for cls in (LocalSearch, RandomSearch):
        runs = []
        for seed in range(5):
            s = cls(space, seed=seed)
            for _ in range(100):
                (a,) = s.ask(1)
                s.tell(a, ev.lookup(a)["valid_perf"])
            runs.append(sorted(o.value for o in s.done))
        found[cls.name] = runs
    top10 = {k: np.mean([r[-10:] for r in v]) for k, v in found.items()}
    told = {k: np.mean(v) for k, v in found.items()}
    assert top10["local"] > top10["random"]
    assert told["local"] > told["random"] + 0.005
