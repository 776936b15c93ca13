"""The trial loop's transactions (naslab/loop.py): the batch that inline table trials
share never blocks a searcher that writes to the same database, never runs reads
inside it, and is rolled back on errors."""

from __future__ import annotations

import time

import pytest

from naslab import Study
from naslab import loop as trial_loop
from naslab.db.store import Store
from naslab.optuna_storage import optuna_storage
from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace
from naslab.searchers.optuna_searcher import OptunaSearcher
from naslab.searchers.random_search import RandomSearch


def test_a_ready_optuna_searcher_in_the_store_file_is_never_blocked_by_a_batch(tmp_path):
    """An Optuna study kept in the store's SQLite file, given as a ready searcher, with
    batched commits asked for: the loop commits before each searcher call (else the
    searcher's write would wait for the batch's lock until its busy timeout)."""
    with Store(f"sqlite:///{tmp_path / 'n.db'}") as store:
        searcher = OptunaSearcher(NasBenchGraphSpace("cora"), seed=0, sampler="random",
                                  storage=optuna_storage(store), study_name="naslab:mine")
        started = time.perf_counter()
        with Study("mine", space="nasbench_graph", task="cora", searcher=searcher, budget=30,
                   storage=store, batch_trials=16) as study:
            assert study.searcher_shares_store
            report = study.run()
        assert report.complete == 30
        assert time.perf_counter() - started < 20  # no lock waits (30 s each)
        assert len(searcher.study.trials) >= 30


def test_an_in_memory_store_syncs_outside_its_batch(monkeypatch):
    """With one shared connection (``sqlite://``), a read inside the open batch would
    fail; the loop commits the batch before it looks for other drivers' trials."""
    monkeypatch.setattr(trial_loop, "SYNC_EVERY_S", 0.0)  # sync before every claim
    with Store("sqlite://") as store:
        with Study("mem", space="nasbench_graph", task="cora", searcher="random", budget=25,
                   storage=store, batch_trials=8) as study:
            report = study.run()
        assert report.complete == 25 and store.trials.count("mem") == 25


class _Boom(RandomSearch):
    """Random search that fails when told its sixth result."""

    def tell(self, arch, value, metrics=None):
        if len(self.history) == 5:
            raise RuntimeError("boom")
        super().tell(arch, value, metrics)


def test_an_error_rolls_back_only_the_open_batch(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'n.db'}") as store:
        space = NasBenchGraphSpace("cora")
        with Study("boom", space=space, task="cora", searcher=_Boom(space, seed=0), budget=40,
                   storage=store, batch_trials=4) as study:
            with pytest.raises(RuntimeError, match="boom"):
                study.run()
        kept = store.trials.list("boom")
        # the first 4 were committed (a full batch) before the searcher heard of them;
        # the 5th and 6th only if their batch reached BATCH_S first; nothing else
        assert 4 <= len(kept) <= 6
        assert [t.state for t in kept] == ["complete"] * len(kept)
        again = Study("boom", space="nasbench_graph", task="cora", searcher="random",
                      budget=40, storage=store)
        with again:
            assert again.run().complete == 40  # resumes from what was committed
