"""Contract suite: every search space must pass these."""

from __future__ import annotations

import json
from types import SimpleNamespace

import networkx as nx
import numpy as np
import pytest
import torch

from naslab import Architecture, InvalidArchitectureError
from naslab.search_spaces.base import check_graph
from naslab.search_spaces.registry import get_space
from tests.custom_space import TinyMLPSpace

IMAGE_TASK = SimpleNamespace(name="img", input_shape=(1, 8, 8), num_classes=10)


def _space(name):
    if name == "custom":
        return TinyMLPSpace()
    return get_space(name)


SPACE_NAMES = ["nb201", "chain", "custom", "nasbench_graph"]


@pytest.fixture(params=SPACE_NAMES)
def space(request):
    if request.param == "nasbench_graph":
        pytest.importorskip("naslab.search_spaces.nasbench_graph")
    return _space(request.param)


def _task_for(space):
    if space.name == "nasbench_graph":
        return SimpleNamespace(name="graph", input_shape=(12,), num_classes=3)
    return IMAGE_TASK


def _forward(space, module):
    if space.name == "nasbench_graph":
        from torch_geometric.data import Data

        g = torch.Generator().manual_seed(0)
        data = Data(x=torch.randn(20, 12, generator=g),
                    edge_index=torch.randint(0, 20, (2, 60), generator=g))
        return module(data.x, data.edge_index), 20
    return module(torch.randn(4, *IMAGE_TASK.input_shape)), 4


class TestSearchSpaceContract:
    def test_sample_is_valid_and_seeded(self, space):
        a = [space.sample(np.random.default_rng(7)) for _ in range(2)]
        assert a[0] == a[1] and dict(a[0].decisions) == dict(a[1].decisions)
        for arch in a:
            space.validate(arch)
            assert arch.space == space.name
            check_graph(space.name, arch.graph, space.operations)

    def test_from_decisions_round_trip(self, space):
        rng = np.random.default_rng(1)
        for _ in range(20):
            arch = space.sample(rng)
            again = space.from_decisions(dict(arch.decisions))
            assert again == arch and again.hash == arch.hash

    def test_json_round_trip(self, space):
        arch = space.sample(np.random.default_rng(2))
        text = json.dumps(arch.to_json())
        back = Architecture.from_json(text)
        assert back == arch
        assert dict(back.decisions) == dict(arch.decisions)
        space.validate(back)

    def test_corrupted_json_refused(self, space):
        data = space.sample(np.random.default_rng(3)).to_json()
        data["hash"] = "0" * 64
        with pytest.raises(InvalidArchitectureError, match="hash"):
            Architecture.from_json(data)

    def test_mutate_changes_one_decision_and_stays_valid(self, space):
        rng = np.random.default_rng(4)
        for _ in range(20):
            arch = space.sample(rng)
            child = space.mutate(arch, rng)
            space.validate(child)
            assert child != arch

    def test_crossover_takes_decisions_from_parents(self, space):
        rng = np.random.default_rng(5)
        a, b = space.sample(rng), space.sample(rng)
        child = space.crossover(a, b, rng)
        space.validate(child)
        for key, value in child.decisions.items():
            parents = [p.decisions.get(key) for p in (a, b) if key in p.decisions]
            if parents:
                assert value in parents or key not in a.decisions or key not in b.decisions

    def test_neighbours_are_distinct_valid_and_one_step(self, space):
        arch = space.sample(np.random.default_rng(6))
        nbrs = space.neighbours(arch)
        assert nbrs, "every space has neighbours"
        assert len({n.hash for n in nbrs}) == len(nbrs)
        assert arch not in nbrs
        for n in nbrs[:10]:
            space.validate(n)

    def test_out_of_domain_and_unknown_decisions_refused(self, space):
        arch = space.sample(np.random.default_rng(8))
        name = next(iter(arch.decisions))
        with pytest.raises(InvalidArchitectureError, match=name):
            space.from_decisions({**arch.decisions, name: "not-a-valid-value"})
        with pytest.raises(InvalidArchitectureError, match="unknown decision"):
            space.from_decisions({**arch.decisions, "bogus": 1})
        missing = dict(arch.decisions)
        missing.pop(name)
        with pytest.raises(InvalidArchitectureError, match="missing"):
            space.from_decisions(missing)

    def test_build_forward(self, space):
        arch = space.sample(np.random.default_rng(9))
        module = space.build(arch, _task_for(space))
        out, n = _forward(space, module)
        assert out.shape == (n, _task_for(space).num_classes)
        assert torch.isfinite(out).all()

    def test_architecture_is_immutable(self, space):
        arch = space.sample(np.random.default_rng(10))
        with pytest.raises(TypeError):
            arch.decisions[next(iter(arch.decisions))] = 0  # type: ignore[index]
        with pytest.raises(nx.NetworkXError):
            arch.graph.add_node("x", op="input")

    def test_key_is_stable(self, space):
        assert space.key == _space(space.name if space.name != "tiny_mlp" else "custom").key


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
