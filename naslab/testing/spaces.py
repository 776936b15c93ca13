"""The search space contract: what every :class:`~naslab.search_spaces.base.SearchSpace`
must do, as a pytest suite.

Subclass :class:`SearchSpaceContract` in a test module of yours and give it a
``space`` fixture (an instance of your space); pytest then runs every check on it::

    import pytest

    from naslab.testing import SearchSpaceContract
    from mypackage import MySpace


    class TestMySpace(SearchSpaceContract):
        @pytest.fixture
        def space(self):
            return MySpace(depth=3)

The checks sample, mutate, cross over and rebuild architectures, round-trip them
through JSON, and build one network and run a forward pass on a small batch. By
default that network is built for an image task (:meth:`SearchSpaceContract.task_for`:
1 x 8 x 8 inputs, 10 classes) and given 4 random images
(:meth:`SearchSpaceContract.forward`); a space for other inputs (graphs, sequences)
overrides both methods, as the NAS-Bench-Graph space does in naslab's own tests::

    class TestMyGraphSpace(SearchSpaceContract):
        @pytest.fixture
        def space(self):
            return MyGraphSpace()

        def task_for(self, space):
            return SimpleNamespace(name="graph", input_shape=(12,), num_classes=3)

        def forward(self, space, module, task):
            x, edge_index = ...  # a small batch your networks accept
            return module(x, edge_index), x.shape[0]
"""

from __future__ import annotations

import json
import pickle
from types import SimpleNamespace
from typing import Any

import networkx as nx
import numpy as np
import pytest

from naslab.core.errors import InvalidArchitectureError
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace, check_graph

__all__ = ["SearchSpaceContract"]


class SearchSpaceContract:
    """Checks that every search space must pass (needs a ``space`` fixture).

    Override :meth:`task_for` and :meth:`forward` for a space whose networks take
    other inputs than images.
    """

    #: Size of the batch that :meth:`forward` builds by default.
    batch_size = 4

    def task_for(self, space: SearchSpace) -> Any:
        """The task that :meth:`SearchSpace.build` builds a network for: anything with
        ``name``, ``input_shape`` and ``num_classes`` (a
        :class:`~naslab.workers.task.Task` too). Default: 1 x 8 x 8 images, 10 classes."""
        return SimpleNamespace(name="contract-images", input_shape=(1, 8, 8), num_classes=10)

    def forward(self, space: SearchSpace, module: Any, task: Any) -> tuple[Any, int]:
        """Run ``module`` (built for ``task``) on a small batch; returns the output and
        the number of samples it should have rows for. Default: :attr:`batch_size`
        random inputs of shape ``task.input_shape``."""
        import torch

        g = torch.Generator().manual_seed(0)
        x = torch.randn(self.batch_size, *task.input_shape, generator=g)
        return module(x), self.batch_size

    # ------------------------------------------------------------------ checks

    def test_sample_is_valid_and_seeded(self, space: SearchSpace) -> None:
        a = [space.sample(np.random.default_rng(7)) for _ in range(2)]
        assert a[0] == a[1] and dict(a[0].decisions) == dict(a[1].decisions)
        for arch in a:
            space.validate(arch)
            assert arch.space == space.name
            check_graph(space.name, arch.graph, space.operations,
                        space.allows_unreachable_output)

    def test_from_decisions_round_trip(self, space: SearchSpace) -> None:
        rng = np.random.default_rng(1)
        for _ in range(20):
            arch = space.sample(rng)
            again = space.from_decisions(dict(arch.decisions))
            assert again == arch and again.hash == arch.hash

    def test_json_round_trip(self, space: SearchSpace) -> None:
        arch = space.sample(np.random.default_rng(2))
        text = json.dumps(arch.to_json())
        back = Architecture.from_json(text)
        assert back == arch
        assert dict(back.decisions) == dict(arch.decisions)
        space.validate(back)

    def test_corrupted_json_refused(self, space: SearchSpace) -> None:
        data = space.sample(np.random.default_rng(3)).to_json()
        data["hash"] = "0" * 64
        with pytest.raises(InvalidArchitectureError, match="hash"):
            Architecture.from_json(data)

    def test_mutate_changes_one_decision_and_stays_valid(self, space: SearchSpace) -> None:
        rng = np.random.default_rng(4)
        for _ in range(20):
            arch = space.sample(rng)
            child = space.mutate(arch, rng)
            space.validate(child)
            assert child != arch

    def test_crossover_takes_decisions_from_parents(self, space: SearchSpace) -> None:
        rng = np.random.default_rng(5)
        a, b = space.sample(rng), space.sample(rng)
        child = space.crossover(a, b, rng)
        space.validate(child)
        for key, value in child.decisions.items():
            parents = [p.decisions.get(key) for p in (a, b) if key in p.decisions]
            if parents:
                assert value in parents or key not in a.decisions or key not in b.decisions

    def test_neighbours_are_distinct_valid_and_one_step(self, space: SearchSpace) -> None:
        arch = space.sample(np.random.default_rng(6))
        nbrs = space.neighbours(arch)
        assert nbrs, "every space has neighbours"
        assert len({n.hash for n in nbrs}) == len(nbrs)
        assert arch not in nbrs
        for n in nbrs[:10]:
            space.validate(n)

    def test_out_of_domain_and_unknown_decisions_refused(self, space: SearchSpace) -> None:
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

    def test_build_forward(self, space: SearchSpace) -> None:
        import torch

        arch = space.sample(np.random.default_rng(9))
        task = self.task_for(space)
        module = space.build(arch, task)
        out, n = self.forward(space, module, task)
        assert out.shape == (n, task.num_classes)
        assert torch.isfinite(out).all()

    def test_architecture_is_immutable(self, space: SearchSpace) -> None:
        arch = space.sample(np.random.default_rng(10))
        with pytest.raises(TypeError):
            arch.decisions[next(iter(arch.decisions))] = 0  # type: ignore[index]
        with pytest.raises(nx.NetworkXError):
            arch.graph.add_node("x", op="input")

    def test_key_is_stable_and_the_space_pickles(self, space: SearchSpace) -> None:
        """The key names the space and its settings (results are reused between equal
        keys), so it is the same on every call and in a copy sent to another process
        (executors send the space along with each job); the copy samples alike."""
        key = space.key
        assert isinstance(key, str) and key and key == space.key
        copy = pickle.loads(pickle.dumps(space))
        assert copy.key == key and copy.name == space.name
        assert copy.sample(np.random.default_rng(11)) == space.sample(np.random.default_rng(11))
