"""Search spaces: the contract (:mod:`naslab.testing.spaces`) on every built-in space and
on a user-defined one, then graph checks and conditional decisions."""

from __future__ import annotations

from types import SimpleNamespace

import networkx as nx
import numpy as np
import pytest
import torch

from naslab import InvalidArchitectureError
from naslab.search_spaces.base import check_graph
from naslab.search_spaces.registry import get_space
from naslab.testing.spaces import SearchSpaceContract
from tests.custom_space import TinyMLPSpace


class TestBuiltinSpaces(SearchSpaceContract):
    """The contract on the image spaces and on a user-defined space."""

    @pytest.fixture(params=["nb201", "chain", "custom"])
    def space(self, request):
        return TinyMLPSpace() if request.param == "custom" else get_space(request.param)


class TestNasBenchGraphSpace(SearchSpaceContract):
    """The contract on NAS-Bench-Graph's space, whose networks take graphs."""

    @pytest.fixture
    def space(self):
        pytest.importorskip("naslab.search_spaces.nasbench_graph")
        return get_space("nasbench_graph")

    def task_for(self, space):
        return SimpleNamespace(name="graph", input_shape=(12,), num_classes=3)

    def forward(self, space, module, task):
        from torch_geometric.data import Data

        g = torch.Generator().manual_seed(0)
        data = Data(x=torch.randn(20, 12, generator=g),
                    edge_index=torch.randint(0, 20, (2, 60), generator=g))
        return module(data.x, data.edge_index), 20


@pytest.mark.parametrize("name", ["nb201", "chain", "nasbench_graph"])
def test_built_in_keys_are_stable(name):
    """Two instances of a registered space (same settings) have the same key."""
    assert get_space(name).key == get_space(name).key
    assert TinyMLPSpace().key == TinyMLPSpace().key
    assert TinyMLPSpace().key.startswith("tiny_mlp-fp")  # fingerprinted: not built in


class TestGraphValidation:
    def _graph(self, edges, ops):
        g = nx.DiGraph()
        for node, op in ops.items():
            g.add_node(node, op=op)
        g.add_edges_from(edges)
        return g

    def test_cycle_refused(self):
        g = self._graph([("i", "a"), ("a", "b"), ("b", "a"), ("b", "o")],
                        {"i": "input", "a": "conv", "b": "conv", "o": "output"})
        with pytest.raises(InvalidArchitectureError, match="cycle"):
            check_graph("t", g, None)

    def test_dangling_refused(self):
        g = self._graph([("i", "a"), ("a", "o"), ("i", "d")],
                        {"i": "input", "a": "conv", "d": "conv", "o": "output"})
        with pytest.raises(InvalidArchitectureError, match="dangling"):
            check_graph("t", g, None)

    def test_unknown_operation_refused(self):
        g = self._graph([("i", "a"), ("a", "o")], {"i": "input", "a": "warp", "o": "output"})
        with pytest.raises(InvalidArchitectureError, match="unknown operation.*warp"):
            check_graph("t", g, ["conv"])

    def test_two_outputs_refused(self):
        g = self._graph([("i", "a"), ("a", "o"), ("a", "p")],
                        {"i": "input", "a": "conv", "o": "output", "p": "output"})
        with pytest.raises(InvalidArchitectureError, match="exactly one"):
            check_graph("t", g, None)

    def test_custom_space_graph_with_dangling_node_refused(self):
        class Broken(TinyMLPSpace):
            def to_graph(self, d):
                g = super().to_graph(d)
                g.add_node("lost", op="linear")
                g.add_edge("in", "lost")
                return g

        with pytest.raises(InvalidArchitectureError, match="dangling"):
            Broken().sample(np.random.default_rng(0))


class TestConditionalDecisions:
    def test_inactive_decision_refused(self):
        with pytest.raises(InvalidArchitectureError, match="inactive"):
            TinyMLPSpace().from_decisions(layers=1, width_1=16, width_2=32, act="relu")

    def test_mutation_of_parent_fills_and_drops_children(self):
        space = TinyMLPSpace()
        rng = np.random.default_rng(0)
        seen_layers = set()
        for _ in range(200):
            arch = space.mutate(space.sample(rng), rng)
            n = arch.decisions["layers"]
            seen_layers.add(n)
            assert {f"width_{i}" for i in range(1, n + 1)} <= set(arch.decisions)
            assert not {f"width_{i}" for i in range(n + 1, 4)} & set(arch.decisions)
        assert seen_layers == {1, 2, 3}

    def test_integer_domain_is_strict(self):
        with pytest.raises(InvalidArchitectureError, match="integer from 1 to 3"):
            TinyMLPSpace().from_decisions(layers=True, width_1=16, act="relu")
        with pytest.raises(InvalidArchitectureError, match="integer from 1 to 3"):
            TinyMLPSpace().from_decisions(layers=4, width_1=16, act="relu")


def test_unknown_space_lists_choices():
    from naslab import UnknownNameError

    with pytest.raises(UnknownNameError, match="nb201.*chain|chain.*nb201"):
        get_space("nb999")


@pytest.mark.parametrize("name", ["nb201", "chain"])
def test_convolutional_spaces_refuse_non_image_tasks(name):
    space = get_space(name)
    arch = space.sample(np.random.default_rng(0))
    tabular = SimpleNamespace(name="tabular", input_shape=(12,), num_classes=2)
    with pytest.raises(InvalidArchitectureError, match="image tasks.*'tabular' has \\(12,\\)"):
        space.build(arch, tabular)
