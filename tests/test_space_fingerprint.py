"""Issue 14 item 7: an edited custom space gets a new key, so a new study does not
reuse the results of the old definition; the built-in spaces keep their keys."""

from __future__ import annotations

import pickle
import warnings

import pytest
from torch import nn

from naslab.components import SpaceChangedWarning
from naslab.db.store import Store
from naslab.search_spaces.chain import ChainSpace
from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace
from naslab.search_spaces.nb201 import NB201Space
from naslab.study import Study
from naslab.workers.task import digits_task
from naslab.workers.training import TrainingEvaluator
from tests.custom_space import TinyMLPSpace


class WiderFirstLayer(TinyMLPSpace):
    """The same name, decisions and graphs, but ``build`` changed: the first hidden
    layer is twice as wide as declared (what an edit of ``build`` does)."""

    def build(self, arch, task) -> nn.Module:
        module = super().build(arch, task)
        first = module[1]
        module[1] = nn.Linear(first.in_features, first.out_features * 2)
        module[3] = nn.Linear(first.out_features * 2, module[3].out_features)
        return module


class Versioned(WiderFirstLayer):
    version = 2


@pytest.mark.parametrize(("space", "key"), [
    (NB201Space(), "nb201-dafc379457"),
    (ChainSpace(), "chain-1d0ca70fb6"),
    (NasBenchGraphSpace(), "nasbench_graph"),
    (NasBenchGraphSpace("proteins"), "nasbench_graph-40b42454bf"),
])
def test_built_in_keys_are_the_ones_existing_stores_hold(space, key):
    assert space.key == key


def test_custom_key_is_stable_and_changes_with_build_version_and_subclassing():
    key = TinyMLPSpace().key
    assert key == TinyMLPSpace().key == pickle.loads(pickle.dumps(TinyMLPSpace())).key
    assert key.startswith("tiny_mlp-fp")
    assert WiderFirstLayer().key != key  # build edited
    assert Versioned().key.startswith("tiny_mlp-v2-fp")

    class Subchain(ChainSpace):  # a subclass of a built-in space is fingerprinted
        pass

    assert Subchain().key.startswith("chain-1d0ca70fb6-fp")


def test_edited_space_is_trained_again_not_reused(tmp_path):
    evaluator = TrainingEvaluator(digits_task(), keep_weights=False)
    with Store(f"sqlite:///{tmp_path / 'fp.db'}") as store:
        def run(name, space):
            study = Study(name, space=space, task=evaluator, budget=2, epochs=1,
                          storage=store, searcher="random", seed=3)
            return study.run()

        first = run("first", TinyMLPSpace())
        assert first.trained_this_run == 2
        same = run("same", TinyMLPSpace())
        assert same.reused_this_run == 2 and same.trained_this_run == 0
        with pytest.warns(SpaceChangedWarning, match="bump the space's `version`"):
            edited = run("edited", WiderFirstLayer())
        assert edited.trained_this_run == 2 and edited.reused_this_run == 0
        with warnings.catch_warnings():
            warnings.simplefilter("error", SpaceChangedWarning)
            bumped = run("bumped", Versioned())  # a new version: no warning
        assert bumped.reused_this_run == 0
        keys = {store.studies.get(n).space_key for n in ("first", "edited", "bumped")}
        assert len(keys) == 3
