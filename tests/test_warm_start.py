"""Warm starts from other tasks' results (``transfer_from``) and whole-space candidate
pools (``pool="space"``) for the guided searchers (issue 17)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import naslab
from naslab.components import resolve
from naslab.core.errors import ConfigError, NaslabError
from naslab.search_spaces.enumeration import enumerate_space, space_architectures
from naslab.searchers.guided import GuidedEvolution
from naslab.searchers.prior import PriorResults, parse_transfer_from
from naslab.searchers.registry import get_searcher
from naslab.study import Study
from naslab.warm_start import data_of, is_own, load_prior
from tests.cli_helpers import one_line_error, run_main
from tests.custom_space import TinyMLPSpace

#: A small GNN, so that pre-training and fine-tuning take well under a second.
FAST = {"hidden": 8, "members": 2, "max_steps": 60, "max_epochs": 15}
CITESEER, PUBMED, CORA = ("nasbench_graph:citeseer", "nasbench_graph:pubmed",
                          "nasbench_graph:cora")


def warm_options(**extra):
    return {"predictor_options": FAST, "transfer_from": "auto", **extra}


@pytest.fixture(scope="module")
def source_url(tmp_path_factory):
    """A store with random results on citeseer and pubmed, and some on cora (the
    target of the tests, whose own results must never be used)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('warm') / 'src.db'}"
    for name, task, budget in (("src-citeseer", "citeseer", 40), ("src-pubmed", "pubmed", 30),
                               ("old-cora", "cora", 20)):
        with Study(name, space="nasbench_graph", task=task, searcher="random", budget=budget,
                   seed=3, storage=url) as study:
            study.run(progress=False)
    return url


@pytest.fixture()
def url(source_url, tmp_path):
    """A copy of the source store for one test."""
    import shutil

    path = source_url.removeprefix("sqlite:///")
    copy = tmp_path / "store.db"
    shutil.copy(path, copy)
    return f"sqlite:///{copy}"


def warm_study(url, name="warm", budget=12, **options):
    return Study(name, space="nasbench_graph", task="cora", searcher="guided-evolution",
                 searcher_options=warm_options(**options), budget=budget, seed=5, storage=url)


# ------------------------------------------------------------------ the loader


def test_auto_reads_every_other_task_and_never_the_studys_own(url):
    with warm_study(url) as study:
        study.run(progress=False)
        prior = study.searcher.guide.prior
    assert prior is not None
    assert set(prior.tasks) == {CITESEER, PUBMED}  # not cora, which the store also holds
    assert prior.tasks.count(CITESEER) == 40 and prior.tasks.count(PUBMED) == 30
    for task in (CITESEER, PUBMED):  # z-scored per task
        y = prior.targets[np.array(prior.tasks) == task]
        assert abs(y.mean()) < 1e-9 and abs(y.std() - 1) < 1e-9


def test_a_warm_search_starts_random_then_fine_tunes_the_pretrained_predictor(url):
    with warm_study(url, budget=12) as study:
        study.run(progress=False)
        guide = study.searcher.guide
    assert guide.warm and guide.fits == 1  # after the 10 random initial samples
    fitted = guide.predictors()[0]
    assert fitted.n_train_ == 10  # fine-tuned on the study's own 10


def test_initial_samples_0_lets_the_pretrained_predictor_pick_the_first_proposal(url):
    with warm_study(url, budget=12, initial_samples=0) as study:
        study.run(progress=False)
        guide = study.searcher.guide
    # pre-trained as is for the first 10 proposals, fine-tuned once 10 results are in
    assert guide.warm and guide.fits == 2
    with Study("cold", space="nasbench_graph", task="cora", searcher="guided-evolution",
               searcher_options={"predictor_options": FAST}, budget=9, seed=5,
               storage=url) as cold:
        cold.run(progress=False)
        assert cold.searcher.guide.fits == 0  # random until initial_samples results


def test_transfer_size_and_named_tasks_and_studies(url):
    study = Study("w", space="nasbench_graph", task="cora", searcher="guided-evolution",
                  searcher_options=warm_options(transfer_size=5, transfer_from="citeseer"),
                  budget=1, storage=url)
    with study:
        request = study.searcher.prior_request()
        prior = load_prior(study.store, study.space, study.evaluator.key, request)
        assert prior.tasks == (CITESEER,) * 5
        again = load_prior(study.store, study.space, study.evaluator.key, request)
        assert [a.hash for a in again.archs] == [a.hash for a in prior.archs]  # same subset
    study = Study("w2", space="nasbench_graph", task="cora", searcher="guided-evolution",
                  searcher_options=warm_options(transfer_studies="src-p*"), budget=1,
                  storage=url)
    with study:
        prior = load_prior(study.store, study.space, study.evaluator.key,
                           study.searcher.prior_request())
        assert set(prior.tasks) == {PUBMED}


def test_naming_the_studys_own_task_is_refused(url):
    with warm_study(url, transfer_from="citeseer,cora") as study:
        with pytest.raises(ConfigError, match="own task"):
            study.run(progress=False)


def test_auto_with_no_other_task_in_the_store_is_a_clear_error(tmp_path):
    with warm_study(f"sqlite:///{tmp_path / 'empty.db'}") as study:
        with pytest.raises(ConfigError, match="no complete result .* other than"):
            study.run(progress=False)


def test_studies_that_match_nothing_say_so(url):
    with warm_study(url, transfer_studies="nothing-*") as study:
        with pytest.raises(ConfigError, match="matching 'nothing-\\*'"):
            study.run(progress=False)


def test_a_resumed_warm_search_proposes_what_an_uninterrupted_one_would(url):
    with warm_study(url, name="whole", budget=14) as study:
        study.run(progress=False)
        whole = [t.arch_hash for t in study.store.trials.list("whole")]
    with warm_study(url, name="halves", budget=11) as study:  # past the first fit
        study.run(progress=False)
    with warm_study(url, name="halves", budget=14) as study:
        study.run(progress=False)
        halves = [t.arch_hash for t in study.store.trials.list("halves")]
    assert halves == whole


def test_a_resumed_warm_search_reads_only_what_its_first_run_read(url):
    with warm_study(url, name="late", budget=4, initial_samples=0) as study:
        study.run(progress=False)
        first = study.searcher.guide.prior.digest()
    with Study("newer-citeseer", space="nasbench_graph", task="citeseer", searcher="random",
               budget=15, seed=11, storage=url) as newer:
        newer.run(progress=False)  # results that finish after the warm study was made
    with warm_study(url, name="late", budget=6, initial_samples=0) as study:
        study.run(progress=False)
        assert study.searcher.guide.prior.digest() == first
    with warm_study(url, name="later", budget=1, initial_samples=0) as study:
        study.run(progress=False)  # a new study sees them
        assert study.searcher.guide.prior.tasks.count(CITESEER) > 40


def test_a_warm_searcher_without_prior_results_says_so(space):
    searcher = get_searcher("guided-evolution", space, transfer_from="auto", initial_samples=0,
                            predictor_options=FAST)
    with pytest.raises(ConfigError, match="no other tasks' results were given"):
        searcher.ask()


def test_expected_improvement_works_before_fine_tuning(url):
    with warm_study(url, name="ei", budget=12, initial_samples=0, acquisition="ei") as study:
        report = study.run(progress=False)
    assert report.complete == 12


def test_pretrained_predictors_are_shared_only_for_equal_inputs(url, space):
    with Study("pre", space="nasbench_graph", task="cora", searcher="guided-evolution",
               searcher_options=warm_options(), budget=1, storage=url) as study:
        prior = load_prior(study.store, study.space, study.evaluator.key,
                           study.searcher.prior_request())
    made = []
    for options in (FAST, FAST, {**FAST, "hidden": 9}):
        searcher = get_searcher("guided-evolution", space, transfer_from="auto",
                                predictor_options=options)
        searcher.use_prior(prior)
        made.append(searcher.guide._pretrained_bytes())
    assert made[0] is made[1] and made[0] != made[2]


def test_guided_optuna_starts_warm_too(url):
    with Study("wo", space="nasbench_graph", task="cora", searcher="guided-optuna",
               searcher_options=warm_options(storage="memory", initial_samples=0), budget=4,
               seed=1,
               storage=url) as study:
        study.run(progress=False)
        assert study.searcher.guide.warm and study.searcher.guide.fits == 1


def test_the_cli_takes_transfer_options_and_refuses_bad_ones(url, monkeypatch, capsys):
    base = ["search", "--storage", url, "--space", "nasbench_graph", "--task", "cora",
            "--searcher", "guided-evolution", "--budget", "3",
            "--searcher-opt", f"predictor_options={json.dumps(FAST)}"]
    code, out, err = run_main(monkeypatch, capsys, *base, "--study", "cli-warm",
                              "--searcher-opt", "transfer_from=auto")
    assert code == 0, err
    code, _, err = run_main(monkeypatch, capsys, *base, "--study", "cli-bad",
                            "--searcher-opt", "transfer_from=cora")
    assert code == 2 and "own task" in one_line_error(err)
    code, _, err = run_main(monkeypatch, capsys, *base, "--study", "cli-bad2",
                            "--searcher-opt", "transfer_size=1")
    assert code == 2 and "transfer_size" in one_line_error(err)


# ------------------------------------------------------------------ option checks


@pytest.fixture(scope="module")
def space():
    return resolve("nasbench_graph", "cora")[0]


@pytest.mark.parametrize(("options", "message"), [
    ({"predictor": "rf", "transfer_from": "auto"}, "fine-tunes"),
    ({"transfer_from": "auto", "objectives": "val_accuracy:max,latency_ms:min"},
     "one objective"),
    ({"pool": "space", "objectives": "val_accuracy:max,latency_ms:min"}, "one objective"),
    ({"pool": "everything"}, "pool"),
    ({"transfer_from": 3}, "transfer_from"),
    ({"transfer_from": ""}, "transfer_from"),
    ({"transfer_from": ["citeseer", 7]}, "transfer_from"),
    ({"transfer_from": "cite\x1b[2Jseer"}, "transfer_from"),
    ({"transfer_from": "x" * 300}, "transfer_from"),
    ({"transfer_from": "auto", "transfer_size": 10**9}, "transfer_size"),
    ({"transfer_from": "auto", "transfer_studies": 5}, "transfer_studies"),
])
def test_bad_warm_start_and_pool_options_are_refused(space, options, message):
    with pytest.raises(NaslabError, match=message):
        get_searcher("guided-evolution", space, **options)


def test_transfer_from_forms():
    assert parse_transfer_from("s", None) is False
    assert parse_transfer_from("s", "auto") is True
    assert parse_transfer_from("s", "citeseer, pubmed,citeseer") == ("citeseer", "pubmed")
    assert parse_transfer_from("s", ["cs"]) == ("cs",)


def test_searchers_without_warm_starts_refuse_prior_results(space):
    evolution = get_searcher("evolution", space)
    assert evolution.prior_request() is None
    prior = PriorResults((space.sample(np.random.default_rng(0)),
                          space.sample(np.random.default_rng(1))), [0.0, 1.0], ("a", "a"))
    with pytest.raises(ConfigError, match="does not learn"):
        evolution.use_prior(prior)
    cold = get_searcher("guided-evolution", space, predictor="rf")
    with pytest.raises(ConfigError, match="transfer_from is not set"):
        cold.use_prior(prior)


@pytest.mark.parametrize(("archs", "targets", "tasks", "message"), [
    (1, [0.0], ("a",), "at least 2"),
    (2, [0.0], ("a", "a"), "one target"),
    (2, [0.0, float("nan")], ("a", "a"), "finite"),
])
def test_prior_results_are_checked(space, archs, targets, tasks, message):
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match=message):
        PriorResults(tuple(space.sample(rng) for _ in range(archs)), targets, tasks)


# ------------------------------------------------------------------ pool="space"


def synthetic_value(arch) -> float:
    d = arch.decisions
    return sum(d.get(f"width_{i}", 0) for i in (1, 2, 3)) / 100 + (d["act"] == "relu") * 0.1


def test_pool_space_proposes_the_best_scored_unseen_architecture():
    space = TinyMLPSpace()
    searcher = GuidedEvolution(space, seed=0, predictor="rf", pool="space",
                               acquisition="mean", initial_samples=6)
    for arch in searcher.ask(6):
        searcher.tell(arch, synthetic_value(arch))
    fitted = searcher.guide.predictors()
    every = enumerate_space(space)
    unseen = [a for a in every if a.hash not in {o.arch.hash for o in searcher.history}]
    scores = searcher.guide.scores(np.random.default_rng(0), unseen, fitted)
    (proposal,) = searcher.ask()
    assert proposal.hash == unseen[int(np.argmax(scores))].hash


def test_pool_space_walks_the_whole_space_without_repeats():
    space = TinyMLPSpace()
    n = len(enumerate_space(space))
    searcher = GuidedEvolution(space, seed=1, predictor="rf", pool="space", initial_samples=3)
    seen = set()
    for _ in range(n):
        (arch,) = searcher.ask()
        assert arch.hash not in seen
        seen.add(arch.hash)
        searcher.tell(arch, synthetic_value(arch))
    assert len(seen) == n


def test_pool_space_falls_back_to_mutations_on_a_large_space(monkeypatch):
    monkeypatch.setattr("naslab.searchers.guided.MAX_POOL", 10)  # TinyMLP has 78
    proposals = {}
    for pool in ("space", "mutations"):
        searcher = GuidedEvolution(TinyMLPSpace(), seed=0, predictor="rf", pool=pool,
                                   initial_samples=3)
        proposals[pool] = []
        for _ in range(6):
            (arch,) = searcher.ask()
            searcher.tell(arch, synthetic_value(arch))
            proposals[pool].append(arch.hash)
    assert proposals["space"] == proposals["mutations"]


def test_enumerations_are_kept_per_process():
    space = TinyMLPSpace()
    first = space_architectures(space, 1000)
    assert first is not None and space_architectures(space, 1000) is first
    assert space_architectures(space, 5) is None  # over the limit: not enumerated


@pytest.mark.parametrize(("key", "data"), [
    ("train-v1(digits(seed=0);sgd,lr=0.1;bs=64)", "digits(seed=0)"),
    ("graph-train-v2(sbm(n=1000);full-batch;lr=0.01)", "sbm(n=1000)"),
    ("nasbench_graph:cora", "nasbench_graph:cora"),
    ("mine", "mine"),
])
def test_the_data_part_of_a_task_key(key, data):
    assert data_of(key) == data


def test_the_same_data_trained_otherwise_is_the_studys_own(space):
    fast = naslab.resolve("search space", "nb201")
    a = resolve(fast, "digits", evaluator_options={"lr": 0.1})[1].key
    b = resolve(fast, "digits", evaluator_options={"lr": 0.01})[1].key
    assert a != b and is_own(a, b) and not is_own("nasbench_graph:cora", b)


def test_naming_the_studys_own_task_by_its_key_is_refused(url):
    with warm_study(url, transfer_from=CORA) as study:
        with pytest.raises(ConfigError, match="own task"):
            study.run(progress=False)
