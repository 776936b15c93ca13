"""OptunaSearcher: Optuna's samplers over declared decisions (searchers/optuna_searcher.py)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from naslab.core.drivers import driver_id, parse_driver
from naslab.core.errors import ConfigError, StudyConflictError, UnknownNameError
from naslab.db.store import Store
from naslab.optuna_storage import optuna_storage, searcher_storage_options
from naslab.search_spaces.nasbench_graph import OP_NAMES, NasBenchGraphSpace
from naslab.search_spaces.nb201 import NB201Space
from naslab.searchers import get_searcher
from naslab.searchers.optuna_searcher import DRIVER_ATTR, HASH_ATTR, SAMPLERS, OptunaSearcher
from naslab.workers.evaluator import Result
from tests.custom_space import TinyMLPSpace
from tests.store_helpers import complete, make_study

MULTI = "val_accuracy:max,params:min"


def score(arch) -> float:
    """The contract suite's synthetic objective: fraction of 3x3 convolutions."""
    return sum(v == "nor_conv_3x3" for v in arch.decisions.values()) / 6


def fake_params(arch) -> float:
    """A second, conflicting objective: convolutions cost parameters."""
    return float(sum(str(v).startswith("nor_conv") for v in arch.decisions.values()))


def run(searcher: OptunaSearcher, rounds: int, space=None, value=score) -> list:
    history = []
    for _ in range(rounds):
        (arch,) = searcher.ask(1)
        if space is not None:
            space.validate(arch)
        v = value(arch)
        searcher.tell(arch, v)
        history.append((arch, v))
    return history


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that stand for naslab results."""
    return [t for t in study.trials if HASH_ATTR in t.user_attrs]


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_proposes_valid_distinct_architectures(sampler):
    space = NB201Space()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # naslab's choices of options warn about nothing
        s = get_searcher(f"optuna-{sampler}", space, seed=0)
        history = run(s, 12, space)
    assert isinstance(s, OptunaSearcher) and s.name == f"optuna-{sampler}"
    hashes = [a.hash for a, _ in history]
    assert len(set(hashes)) == 12
    done = finished(s.study)
    assert [t.user_attrs[HASH_ATTR] for t in done] == hashes
    assert all(t.state == TrialState.COMPLETE for t in done)
    assert [t.value for t in done] == [v for _, v in history]
    assert s.best is not None and s.best[1] == max(v for _, v in history)


def test_batched_asks_are_distinct_and_stay_in_flight():
    space = NB201Space()
    s = OptunaSearcher(space, seed=1)
    for _ in range(4):
        batch = s.ask(5)
        assert len({a.hash for a in batch}) == 5
        for a in batch:
            s.tell(a, score(a))
    assert len({o.arch.hash for o in s.history}) == 20
    assert len(finished(s.study)) == 20
    assert not any(t.state == TrialState.RUNNING for t in s.study.trials)


@pytest.mark.parametrize("sampler", ["tpe", "random", "nsga2", "qmc"])
def test_conditional_decisions_are_suggested_exactly_when_active(sampler):
    space = TinyMLPSpace()
    s = OptunaSearcher(space, seed=2, sampler=sampler)
    history = run(s, 25, space, value=lambda a: a.decisions["layers"] + a.decisions["width_1"] / 64)
    assert len({a.hash for a, _ in history}) == 25
    assert {a.decisions["layers"] for a, _ in history} == {1, 2, 3}
    by_hash = {t.user_attrs[HASH_ATTR]: t for t in finished(s.study)}
    for arch, _ in history:
        assert by_hash[arch.hash].params == dict(arch.decisions)
    for t in s.study.trials:  # skipped trials too
        layers = t.params["layers"]
        assert ("width_2" in t.params) == (layers >= 2)
        assert ("width_3" in t.params) == (layers == 3)
        assert {"width_1", "act"} <= set(t.params)


def test_invalid_combinations_never_escape():
    space = NasBenchGraphSpace("cora")
    s = OptunaSearcher(space, seed=0, sampler="tpe")
    all_skip = {"link": "0-0-0-0", **dict.fromkeys(OP_NAMES, "skip")}
    s.study.enqueue_trial(all_skip)  # the sampler's first proposal is the invalid one
    history = run(s, 40, space, value=lambda a: sum(v == "gcn" for v in a.decisions.values()))
    assert len({a.hash for a, _ in history}) == 40
    assert not any(all(a.decisions[n] == "skip" for n in OP_NAMES) for a, _ in history)
    (first, *_) = s.study.trials
    assert first.params == all_skip and first.state == TrialState.FAIL
    assert first.user_attrs["naslab_skipped"].startswith("invalid")


def test_repeats_are_told_their_known_values_and_in_flight_ones_fail():
    space = NB201Space()
    s = OptunaSearcher(space, seed=0, sampler="random")
    (a,) = s.ask(1)
    s.tell(a, 0.25)
    (b,) = s.ask(1)  # in flight
    s.study.enqueue_trial(dict(a.decisions))
    s.study.enqueue_trial(dict(b.decisions))
    (c,) = s.ask(1)
    assert c.hash not in (a.hash, b.hash)
    repeat, in_flight = s.study.trials[2:4]
    assert repeat.state == TrialState.COMPLETE and repeat.value == 0.25
    assert repeat.user_attrs["naslab_repeat_of"] == a.hash and HASH_ATTR not in repeat.user_attrs
    assert in_flight.state == TrialState.FAIL
    assert in_flight.user_attrs["naslab_skipped"] == f"in flight: {b.hash}"
    s.tell(b, None)
    s.tell(c, 0.5)
    states = {t.user_attrs[HASH_ATTR]: t.state for t in finished(s.study)}
    assert states == {
        a.hash: TrialState.COMPLETE,
        b.hash: TrialState.FAIL,
        c.hash: TrialState.COMPLETE,
    }


def test_fallback_draws_are_fixed_on_the_optuna_trial():
    space = TinyMLPSpace()
    s = OptunaSearcher(space, seed=4, sampler="tpe", max_retries=0)
    history = run(s, 10, space, value=lambda a: float(a.decisions["layers"]))
    assert len({a.hash for a, _ in history}) == 10
    trials = s.study.trials
    assert len(trials) == 10
    assert [t.params for t in trials] == [dict(a.decisions) for a, _ in history]
    assert all("fixed_params" in t.system_attrs for t in trials)


def test_same_seed_same_proposals():
    runs = [
        [
            a.hash
            for a, _ in run(
                OptunaSearcher(TinyMLPSpace(), seed=7),
                15,
                value=lambda a: float(a.decisions["layers"]),
            )
        ]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


@pytest.mark.parametrize("sampler", ["nsga2", "tpe"])
def test_multi_objective_values_come_from_metrics(sampler):
    space = NB201Space()
    s = get_searcher(f"optuna-{sampler}", space, seed=0, objectives=MULTI)
    assert s.study.directions == [
        optuna.study.StudyDirection.MAXIMIZE,
        optuna.study.StudyDirection.MINIMIZE,
    ]
    told = []
    for i in range(12):
        (a,) = s.ask(1)
        metrics = {"val_accuracy": score(a), "params": fake_params(a)}
        if i == 5:
            metrics.pop("params")  # a missing objective metric: FAIL for Optuna
        s.tell(a, score(a), metrics)
        told.append((a.hash, metrics))
    by_hash = {t.user_attrs[HASH_ATTR]: t for t in finished(s.study)}
    for h, metrics in told:
        t = by_hash[h]
        if "params" in metrics:
            assert t.state == TrialState.COMPLETE
            assert t.values == [metrics["val_accuracy"], metrics["params"]]
        else:
            assert t.state == TrialState.FAIL and t.values is None
    assert s.study.best_trials  # a Pareto front


def test_cmaes_refuses_several_objectives():
    with pytest.raises(ConfigError, match="optuna-cmaes optimises one objective"):
        OptunaSearcher(NB201Space(), sampler="cmaes", objectives=MULTI)


def test_minimised_single_objective():
    s = OptunaSearcher(NB201Space(), seed=0, objectives="params:min")
    assert s.study.directions == [optuna.study.StudyDirection.MINIMIZE]


def test_shares_the_naslab_sqlite_file(tmp_path):
    space = NB201Space()
    store = Store(f"sqlite:///{tmp_path}/n.db")
    info = make_study(store, "s1", space=space.name, space_key=space.key,
                      task_key="synthetic", searcher="optuna-tpe", objective="val_accuracy",
                      budget=10, fidelity=1, seed=0)
    url = store.url

    def shared(seed: int) -> OptunaSearcher:
        """A searcher whose Optuna study lives in the store's file, as a Study builds it."""
        return OptunaSearcher(space, seed=seed, storage=optuna_storage(store),
                              study_name="naslab:s1")

    s = shared(0)
    history = []
    for _ in range(6):  # naslab and Optuna write to the file in turn, as in a study
        (a,) = s.ask(1)
        complete(store, info, a, Result(metrics={"val_accuracy": score(a)}))
        s.tell(a, score(a))
        history.append((a, score(a)))
    (crashed,) = s.ask(1)  # the driver dies with this trial running in Optuna...
    complete(store, info, crashed, Result(metrics={"val_accuracy": 0.5}))
    history.append((crashed, 0.5))  # ...after naslab stored its result

    loaded = optuna.load_study(study_name="naslab:s1", storage=url)
    assert len(finished(loaded)) == 6
    assert [t.state for t in loaded.trials].count(TrialState.RUNNING) == 1
    assert {t.name for t in store.studies.summaries()} == {"s1"}
    # the running trial names this (live) process as its driver; make it a dead one's
    (running,) = [t for t in loaded.trials if t.state == TrialState.RUNNING]
    assert running.user_attrs[DRIVER_ATTR] == driver_id()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = parse_driver(driver_id())[0]
    loaded._storage.set_trial_user_attr(running._trial_id, DRIVER_ATTR, f"{host}/{gone.pid}/0")

    resumed = shared(0)
    resumed.replay(history)
    loaded = optuna.load_study(study_name="naslab:s1", storage=url)
    assert not any(t.state == TrialState.RUNNING for t in loaded.trials)
    assert [t.user_attrs[HASH_ATTR] for t in finished(loaded)] == [a.hash for a, _ in history]
    assert finished(loaded)[-1].value == 0.5  # the crashed trial's stored result
    (a,) = resumed.ask(1)
    assert a.hash not in {h.hash for h, _ in history}
    resumed.tell(a, score(a))

    again = shared(0)  # a second resume duplicates nothing
    again.replay(history + [(a, score(a))])
    assert len(finished(optuna.load_study(study_name="naslab:s1", storage=url))) == 8
    # a running trial of a live driver (one sharing the study) is left alone
    other = shared(1)
    (mine,) = other.ask(1)
    third = shared(2)
    third.replay(history + [(a, score(a))])
    third.ask(1)
    states = [t.state for t in optuna.load_study(study_name="naslab:s1", storage=url).trials]
    assert states.count(TrialState.RUNNING) == 2
    other.tell(mine, score(mine))
    store.close()


def test_resumed_study_with_other_objectives_conflicts(tmp_path):
    url = f"sqlite:///{tmp_path}/n.db"
    s = OptunaSearcher(NB201Space(), seed=0, storage=optuna_storage(url), study_name="naslab:s1")
    run(s, 2)
    other = OptunaSearcher(NB201Space(), seed=0, objectives=MULTI, storage=optuna_storage(url),
                           study_name="naslab:s1")
    with pytest.raises(StudyConflictError, match="naslab:s1"):
        other.replay([])


def test_storage_is_given_never_opened_by_the_searcher(tmp_path):
    """The application turns a URL or 'memory' into an Optuna storage; the searcher takes
    only a storage object."""
    url = f"sqlite:///{tmp_path}/optuna.db"
    with Store(f"sqlite:///{tmp_path}/naslab.db") as store:
        options = searcher_storage_options({"storage": url}, store, "s2")
        assert options["study_name"] == "naslab:s2"
        s = OptunaSearcher(NB201Space(), seed=0, **options)
        run(s, 3)
        assert len(finished(optuna.load_study(study_name="naslab:s2", storage=url))) == 3
        memory = searcher_storage_options({"storage": "memory"}, store, "s3")
        assert isinstance(memory["storage"], optuna.storages.InMemoryStorage)
        m = OptunaSearcher(NB201Space(), seed=0, **memory)
        run(m, 2)
        assert m.study.study_name == "naslab:s3" and not m.shared
        default = searcher_storage_options({}, store, "s4")  # the store's own database
        assert not isinstance(default["storage"], optuna.storages.InMemoryStorage)
    assert "naslab:s4" not in {x.study_name for x in optuna.get_all_study_summaries(url)}
    with pytest.raises(ConfigError, match="storage must be an Optuna storage"):
        OptunaSearcher(NB201Space(), storage="sqlite:///somewhere.db")
    with pytest.raises(ConfigError, match="storage"):
        optuna_storage("not a url")


def test_replay_into_memory_rebuilds_the_optuna_study():
    space = NB201Space()
    full = OptunaSearcher(space, seed=5)
    history = [(a, None if i == 3 else v) for i, (a, v) in enumerate(run(full, 10))]
    resumed = OptunaSearcher(space, seed=5)
    resumed.replay(history[:4])
    resumed.replay(history[4:])  # in two parts, as a study that ran before
    trials = resumed.study.trials
    assert len(trials) == 10
    assert [t.user_attrs[HASH_ATTR] for t in trials] == [a.hash for a, _ in history]
    assert [t.state for t in trials].count(TrialState.FAIL) == 1
    assert trials[3].state == TrialState.FAIL and trials[0].value == history[0][1]
    assert len(resumed.history) == 10 and resumed._asked == 10
    new = resumed.ask(3)
    assert not {a.hash for a in new} & {a.hash for a, _ in history}


def test_reused_result_reaches_optuna():
    space = TinyMLPSpace()
    s = OptunaSearcher(space, seed=0)
    reused = space.from_decisions(layers=2, width_1=16, width_2=64, act="relu")
    s.tell(reused, 0.75)
    (t,) = s.study.trials
    assert t.state == TrialState.COMPLETE and t.value == 0.75
    assert t.params == dict(reused.decisions) and t.user_attrs[HASH_ATTR] == reused.hash
    assert reused.hash not in {a.hash for a in s.ask(5)}
    s.tell(space.from_decisions(layers=1, width_1=32, act="tanh"), None)
    assert s.study.trials[-1].state == TrialState.FAIL


def test_bad_names_and_options():
    with pytest.raises(UnknownNameError, match="unknown Optuna sampler 'bohb'.*nsga2.*tpe"):
        OptunaSearcher(NB201Space(), sampler="bohb")
    with pytest.raises(ConfigError, match=r"optuna-tpe: unknown sampler option\(s\) 'n_startup'"):
        OptunaSearcher(NB201Space(), sampler_options={"n_startup": 5})
    with pytest.raises(ConfigError, match="optuna-nsga2: NSGAIISampler refused.*population_size"):
        OptunaSearcher(NB201Space(), sampler="nsga2", sampler_options={"population_size": 1})
    with pytest.raises(ConfigError, match="seed"):
        OptunaSearcher(NB201Space(), sampler_options={"seed": 3})
    s = OptunaSearcher(NB201Space(), sampler="tpe", sampler_options={"n_startup_trials": 3})
    assert s.study.sampler._n_startup_trials == 3


def test_max_retries_is_respected_on_an_exhausted_space():
    space = TinyMLPSpace()  # 78 architectures
    s = OptunaSearcher(space, seed=0, sampler="random", max_retries=3)
    hashes = [a.hash for a, _ in run(s, 85, value=lambda a: float(np.log(a.decisions["width_1"])))]
    assert len(set(hashes)) == 78  # every one, then repeats
