"""The NAS-Bench-101 space: the contract, NAS-Bench-101's published facts (423,624
unique cells, its README's cell and parameter count, its MD5 hashes), pruning and
validity, the constrained operators, attacks on options and specs, and a real
search per searcher."""

from __future__ import annotations

import itertools
import math
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from naslab.core.errors import ConfigError, InvalidArchitectureError
from naslab.search_spaces.decisions import sample_decisions
from naslab.search_spaces.nb101 import (
    EDGE_NAMES,
    OP_NAMES,
    OPS,
    NB101Space,
    from_spec,
    nb101_hash,
    to_spec,
)
from naslab.search_spaces.nb101_count import (
    UNIQUE_CELLS,
    count_unique_cells,
    edge_list,
    invalid_fraction,
    live_vertices,
    valid_masks,
    valid_table,
)
from naslab.search_spaces.nb101_network import NB101Cell, vertex_channels
from naslab.testing import SearchSpaceContract

C3, C1, MP = OPS
IN, OUT = "input", "output"
CIFAR = SimpleNamespace(name="cifar-shaped", input_shape=(3, 32, 32), num_classes=10)
DIGITS = SimpleNamespace(name="digits-shaped", input_shape=(1, 8, 8), num_classes=10)

#: NAS-Bench-101's README: the Inception-like cell, 2,694,282 trainable parameters.
INCEPTION = (
    [[0, 1, 1, 1, 0, 1, 0],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 1, 0, 0],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 0]],
    [IN, C1, C3, C3, C3, MP, OUT],
)
#: The same cell as NASBench.ipynb's query returns it (the table's numbering).
INCEPTION_STORED = (
    [[0, 1, 1, 1, 1, 0, 0],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 1, 0],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 0]],
    [IN, C3, C1, MP, C3, C3, OUT],
)


def _from_inputs(inputs: dict[int, list[int]], ops: list[str]) -> tuple[list[list[int]], list[str]]:
    n = len(ops)
    matrix = [[0] * n for _ in range(n)]
    for j, sources in inputs.items():
        for i in sources:
            matrix[i][j] = 1
    return matrix, ops


#: NNI's NAS-Bench-101 docs: table id 4, hash 00005c14..., 8.55553 M parameters.
NNI_CELL = _from_inputs({1: [0], 2: [1], 3: [2], 4: [0], 5: [0, 3, 4], 6: [2, 5]},
                        [IN, C3, MP, C3, C3, C1, OUT])
NNI_HASH = "00005c142e6f48ac74fdcf73e3439874"
#: NASLib's NAS-Bench-101 test: the cell stored under hash ff940d27... (NASLib's op
#: codes: 2 maxpool, 3 conv1x1, 4 conv3x3).
NASLIB_CELL = _from_inputs({1: [0], 2: [0], 3: [2], 4: [0, 1, 3], 5: [0, 4], 6: [5]},
                           [IN, MP, C3, C1, C1, C3, OUT])
NASLIB_HASH = "ff940d27cbe9ed0a639a68a9c3f87283"


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def space() -> NB101Space:
    return NB101Space()


class TestNB101Space(SearchSpaceContract):
    @pytest.fixture
    def space(self):
        return NB101Space()


# -- published facts -----------------------------------------------------------------


def test_counts_423624_unique_cells(space):
    start = time.perf_counter()
    assert count_unique_cells() == UNIQUE_CELLS == 423_624
    assert time.perf_counter() - start < 20
    assert space.size() == 423_624


def test_count_agrees_with_canonical_hashes_of_every_small_cell(space):
    """Up to 5 vertices, build every cell and count distinct canonical hashes (and
    NAS-Bench-101's hashes, which must not merge different cells here)."""
    hashes, md5s = set(), set()
    for n in range(2, 6):
        edges = edge_list(n)
        masks = np.arange(1 << len(edges))
        live, count = live_vertices(masks, n)
        for mask in masks[live.all(axis=-1) & (count <= 9)]:
            matrix = [[0] * n for _ in range(n)]
            for k, (i, j) in enumerate(edges):
                matrix[i][j] = int(mask >> k & 1)
            for inner in itertools.product(OPS, repeat=n - 2):
                arch = from_spec(matrix, [IN, *inner, OUT], space)
                hashes.add(arch.hash)
                md5s.add(nb101_hash(arch))
    assert len(hashes) == len(md5s) == count_unique_cells(max_vertices=5)
    # in->out; in->v->out (3 ops); the same plus in->out (3 ops)
    assert count_unique_cells(max_vertices=3) == 1 + 3 + 3
    assert count_unique_cells(max_vertices=7, max_edges=9, num_ops=1) < UNIQUE_CELLS


def test_readme_cell_is_valid_and_has_its_parameter_count():
    space = NB101Space(channels=128, cells_per_stack=3)
    arch = from_spec(*INCEPTION, space=space)
    assert to_spec(arch) == (INCEPTION[0], INCEPTION[1])
    assert _params(space.build(arch, CIFAR)) == 2_694_282
    stored = from_spec(*INCEPTION_STORED, space=space)
    assert stored == arch and nb101_hash(stored) == nb101_hash(arch)
    assert _params(space.build(stored, CIFAR)) == 2_694_282


def test_nb101_hash_matches_published_hashes():
    space = NB101Space(channels=128, cells_per_stack=3)
    nni = from_spec(*NNI_CELL, space=space)
    assert nb101_hash(nni) == NNI_HASH
    assert _params(space.build(nni, CIFAR)) == 8_555_530  # NNI: 8.55553 M
    assert nb101_hash(from_spec(*NASLIB_CELL)) == NASLIB_HASH


def test_graph_util_isomorphism_cases():
    """NAS-Bench-101's graph_util_test: isomorphic pairs share both hashes, the
    tricky non-isomorphic ones differ in both."""
    ops = {1: C3, 2: C1, 3: MP, 0: MP}

    def arch(matrix, labels):
        return from_spec(matrix, [IN] + [ops[x] for x in labels] + [OUT])

    m1 = [[0, 1, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    m2 = [[0, 1, 0, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    m3 = [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    a1, a2, a3 = arch(m1, [1, 2, 3]), arch(m2, [2, 3, 1]), arch(m3, [2, 1, 3])
    assert a1 == a2 == a3 and len({nb101_hash(a) for a in (a1, a2, a3)}) == 1
    for other in (arch(m1, [2, 3, 1]), arch(m1, [2, 1, 3])):
        assert other != a1 and nb101_hash(other) != nb101_hash(a1)
    chain = [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    x, y = arch(chain, [1, 0, 0]), arch(chain, [0, 0, 1])
    assert x != y and nb101_hash(x) != nb101_hash(y)


def test_isomorphic_cells_build_the_same_network():
    """A cell numbered two ways (output fed by 3 vertices: 16 channels split 6/5/5)
    builds modules of the same shapes, whichever numbering came first."""
    space = NB101Space(channels=16)
    a = from_spec(*_from_inputs({1: [0], 2: [0], 3: [1], 4: [1, 2, 3]},
                                [IN, C3, MP, C1, OUT]), space=space)
    b = from_spec(*_from_inputs({1: [0], 2: [1], 3: [0], 4: [2, 1, 3]},
                                [IN, C3, C1, MP, OUT]), space=space)
    assert a == b and dict(a.decisions) != dict(b.decisions)
    shapes = [{k: v.shape for k, v in space.build(x, DIGITS).state_dict().items()} for x in (a, b)]
    assert shapes[0] == shapes[1]


def test_vertex_channels_as_nasbench():
    # three vertices feed the output: 16 = 6 + 5 + 5, the first one in order gets +1
    matrix = _from_inputs({1: [0], 2: [0], 3: [1], 4: [1, 2, 3]}, [IN, C3, C3, C3, OUT])[0]
    assert vertex_channels(8, 16, matrix) == [8, 6, 5, 5, 16]
    # a vertex that feeds only others is as wide as the widest it feeds
    matrix = _from_inputs({1: [0], 2: [1], 3: [1], 4: [2, 3]}, [IN, C3, C3, C3, OUT])[0]
    assert vertex_channels(8, 15, matrix) == [8, 8, 8, 7, 15]
    assert vertex_channels(8, 16, [[0, 1], [0, 0]]) == [8, 16]
    with pytest.raises(InvalidArchitectureError, match="cannot be split"):
        vertex_channels(8, 2, _from_inputs({1: [0], 2: [0], 3: [0], 4: [1, 2, 3]},
                                           [IN, C3, C3, C3, OUT])[0])


def test_bare_cell_projects_the_input():
    cell = NB101Cell([[0, 1], [0, 0]], [IN, OUT], 4, 8)
    assert cell(torch.randn(2, 4, 8, 8)).shape == (2, 8, 8, 8)


# -- validity and pruning ---------------------------------------------------------------


def test_ten_edges_refused_but_pruned_edges_are_what_counts(space):
    ten = _from_inputs({j: [0] for j in range(1, 6)} | {6: [1, 2, 3, 4, 5]},
                       [IN, C3, C3, C3, C3, C3, OUT])
    with pytest.raises(InvalidArchitectureError, match="10 edges.*at most 9"):
        from_spec(*ten, space=space)
    # 9 live edges plus 2 edges of a dead vertex (5 feeds nothing): valid, as in nasbench
    nine = _from_inputs({1: [0], 2: [0], 3: [0], 4: [0], 5: [0, 1], 6: [1, 2, 3, 4]},
                        [IN, C3, C3, C3, C3, C3, OUT])
    arch = from_spec(*nine, space=space)
    assert sum(map(sum, to_spec(arch)[0])) == 8 and len(to_spec(arch)[1]) == 6


def test_disconnected_cell_refused(space):
    with pytest.raises(InvalidArchitectureError, match="no path from the input"):
        from_spec(*_from_inputs({1: [0], 2: [1], 4: [3]}, [IN, C3, C3, C3, OUT]), space=space)
    with pytest.raises(InvalidArchitectureError, match="no path"):
        space.from_decisions({**dict.fromkeys(EDGE_NAMES, 0), **dict.fromkeys(OP_NAMES, C3)})


def test_extraneous_vertex_is_pruned(space):
    base = _from_inputs({1: [0], 2: [1], 3: [0, 2]}, [IN, C3, MP, OUT])
    # vertex 3 reads the input but feeds nothing; vertex 4 feeds the output but is not fed
    extra = _from_inputs({1: [0], 2: [1], 3: [0], 4: [], 5: [0, 2, 4]},
                         [IN, C3, MP, C1, C1, OUT])
    a, b = from_spec(*base, space=space), from_spec(*extra, space=space)
    assert a == b and nb101_hash(a) == nb101_hash(b)
    assert to_spec(b) == (base[0], base[1])
    assert sorted(a.graph.nodes(data="op")) == sorted(b.graph.nodes(data="op"))
    assert sorted(a.graph.edges) == sorted(b.graph.edges)


def test_bad_decisions_refused(space):
    arch = space.sample(np.random.default_rng(0))
    for name, value in [("e0_1", True), ("e0_1", 2), ("e0_1", "1"), ("e0_1", 1.0),
                        ("e0_1", math.nan), ("op1", "conv5x5"), ("op1", None), ("op1", 0)]:
        with pytest.raises(InvalidArchitectureError, match=name):
            space.from_decisions({**arch.decisions, name: value})


# -- the constrained operators ------------------------------------------------------------


def _assert_valid(space, arch):
    space.validate(arch)
    matrix, ops = to_spec(arch)
    assert sum(map(sum, matrix)) <= 9 and ops[0] == IN and ops[-1] == OUT


def test_thousand_samples_are_valid_and_uniform_over_valid_decisions(space):
    """Samples follow NAS-Bench-101's random spec (uniform bits and operations, invalid
    cells rejected): e.g. the bare input->output cell has the share of valid edge
    masks that prune to it (about 10%), so 1,000 samples hold ~500 distinct cells."""
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(1000)]
    for arch in archs:
        _assert_valid(space, arch)
    assert len({a.hash for a in archs}) > 400
    live, _ = live_vertices(valid_masks())
    bare_share = np.mean(live.sum(axis=-1) == 2)
    sample_share = np.mean([len(to_spec(a)[1]) == 2 for a in archs])
    assert 0.05 < bare_share < 0.15 and abs(sample_share - bare_share) < 0.03


def test_mutation_and_neighbours_stay_valid(space):
    rng = np.random.default_rng(1)
    for _ in range(150):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        _assert_valid(space, child)
        assert child != arch
        changed = [k for k in arch.decisions if arch.decisions[k] != child.decisions[k]]
        assert len(changed) == 1
    for _ in range(20):
        arch = space.sample(rng)
        nbrs = space.neighbours(arch)
        assert nbrs and arch not in nbrs and len({n.hash for n in nbrs}) == len(nbrs)
        for n in nbrs:
            _assert_valid(space, n)


def test_neighbours_are_every_valid_single_change(space):
    """The bit checks that pick the moves lose none: brute force over all 31 decisions."""
    rng = np.random.default_rng(4)
    for _ in range(15):
        arch = space.sample(rng)
        expected = set()
        for d in space.decisions():
            for value in d.neighbour_values(arch.decisions[d.name]):
                try:
                    cand = space.from_decisions({**arch.decisions, d.name: value})
                except InvalidArchitectureError:
                    continue
                if cand != arch:
                    expected.add(cand.hash)
        assert {n.hash for n in space.neighbours(arch)} == expected


def test_bare_cell_mutates_and_has_neighbours(space):
    bare = from_spec([[0, 1], [0, 0]], [IN, OUT], space=space)
    child = space.mutate(bare, np.random.default_rng(0))
    _assert_valid(space, child)
    assert child != bare
    # no single change keeps it valid and changes it: a vertex is wired in instead
    nbrs = space.neighbours(bare)
    assert len(nbrs) == 3 and {len(to_spec(n)[1]) for n in nbrs} == {3}
    for n in nbrs:
        _assert_valid(space, n)
        assert sum(map(sum, to_spec(n)[0])) == 3  # in->v, v->out, in->out


def test_crossover_stays_valid(space):
    rng = np.random.default_rng(2)
    for _ in range(200):
        a, b = space.sample(rng), space.sample(rng)
        child = space.crossover(a, b, rng)
        _assert_valid(space, child)
        for k, v in child.decisions.items():
            assert v in (a.decisions[k], b.decisions[k])


def test_invalid_share_of_uniform_decision_draws(space):
    """Optuna draws the declared decisions uniformly: about 26.7% are invalid."""
    frac = invalid_fraction()
    assert frac == pytest.approx(1 - valid_table().sum() / 2**21)
    assert 0.25 < frac < 0.28
    rng = np.random.default_rng(3)
    bad = 0
    for _ in range(1000):
        try:
            space.from_decisions(sample_decisions(space.decisions(), rng))
        except InvalidArchitectureError:
            bad += 1
    assert abs(bad / 1000 - frac) < 0.05


# -- attacks on options and specs -----------------------------------------------------------


@pytest.mark.parametrize("option, value", [
    ("channels", 4), ("channels", 0), ("channels", -16), ("channels", 1025),
    ("channels", 10**30), ("channels", True), ("channels", 16.0), ("channels", "16"),
    ("channels", None), ("channels", math.nan),
    ("cells_per_stack", 0), ("cells_per_stack", -1), ("cells_per_stack", 33),
    ("cells_per_stack", False), ("cells_per_stack", 1.5), ("cells_per_stack", "3"),
    ("cells_per_stack", math.inf),
])
def test_bad_options_refused(option, value):
    with pytest.raises(ConfigError, match=option):
        NB101Space(**{option: value})


def test_options_in_config_and_key():
    a, b = NB101Space(), NB101Space(channels=32, cells_per_stack=2)
    assert a.config() == {"channels": 16, "cells_per_stack": 1}
    assert b.config() == {"channels": 32, "cells_per_stack": 2}
    assert a.key.startswith("nb101-") and a.key != b.key and a.key == NB101Space().key


GOOD = INCEPTION


@pytest.mark.parametrize("matrix, ops, match", [
    (None, GOOD[1], "square"),
    ("0110", GOOD[1], "square"),
    ([[0]], [IN], "square"),
    ([[0] * 8 for _ in range(8)], [IN] + [C3] * 6 + [OUT], "square"),
    ([[0, 1, 0], [0, 0]], [IN, C3, OUT], "square"),
    ([[0, 2], [0, 0]], [IN, OUT], "0 or 1"),
    ([[0, -1], [0, 0]], [IN, OUT], "0 or 1"),
    ([[0, True], [0, 0]], [IN, OUT], "0 or 1"),
    ([[0, 0.5], [0, 0]], [IN, OUT], "0 or 1"),
    ([[0, "1"], [0, 0]], [IN, OUT], "0 or 1"),
    ([[0, 1], [1, 0]], [IN, OUT], "upper-triangular"),
    ([[1, 1], [0, 0]], [IN, OUT], "upper-triangular"),
    (GOOD[0], GOOD[1][:-1], "7 operations"),
    (GOOD[0], "input", "7 operations"),
    (GOOD[0], [C3] + GOOD[1][1:], "'input', then"),
    (GOOD[0], GOOD[1][:-1] + [C3], "'input', then"),
    (GOOD[0], [IN, "conv5x5", *GOOD[1][2:]], "'input', then"),
    (GOOD[0], [IN, IN, *GOOD[1][2:]], "'input', then"),
])
def test_bad_specs_refused(matrix, ops, match):
    with pytest.raises(InvalidArchitectureError, match=match):
        from_spec(matrix, ops)


def test_huge_matrix_and_wrong_space_refused():
    with pytest.raises(InvalidArchitectureError, match="square"):
        from_spec([[0] * 10**6] * 10**6, [IN, OUT])
    with pytest.raises(InvalidArchitectureError, match="square"):
        from_spec({0: [0, 1], 1: [0, 0]}, [IN, OUT])
    with pytest.raises(ConfigError, match="NB101Space"):
        from_spec([[0, 1], [0, 0]], [IN, OUT], space="nb101")


def test_numpy_spec_accepted_and_round_trips(space):
    arch = from_spec(np.array(INCEPTION[0], dtype=np.int8), list(INCEPTION[1]), space)
    again = from_spec(*to_spec(arch), space=space)
    assert again == arch and to_spec(again) == to_spec(arch)


def test_foreign_architectures_refused():
    from naslab.search_spaces.nb201 import NB201Space

    other = NB201Space().sample(np.random.default_rng(0))
    for fn in (to_spec, nb101_hash):
        with pytest.raises(InvalidArchitectureError, match="nb101"):
            fn(other)
        with pytest.raises(InvalidArchitectureError, match="nb101"):
            fn("not an architecture")


def test_non_image_task_refused(space):
    arch = space.sample(np.random.default_rng(0))
    with pytest.raises(InvalidArchitectureError, match="input_shape"):
        space.build(arch, SimpleNamespace(name="vec", input_shape=(12,), num_classes=3))


def test_network_trains_a_step_on_digits_shape():
    space = NB101Space(channels=8, cells_per_stack=2)
    net = space.build(from_spec(*NNI_CELL, space=space), DIGITS)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in net.parameters())


# -- a real search per searcher -----------------------------------------------------------

FAST = ["random", "evolution"]
SLOW = ["local", "nsga2", "guided-evolution", "guided-optuna", "optuna-tpe"]


@pytest.mark.parametrize("searcher", FAST + [pytest.param(s, marks=pytest.mark.slow)
                                             for s in SLOW])
def test_search(searcher, tmp_path):
    import naslab

    report = naslab.Study(space=NB101Space(channels=5), task="digits", searcher=searcher,
                          budget=3, epochs=1, storage=f"sqlite:///{tmp_path}/s.db",
                          evaluator_options={"batch_size": 256, "latency_repeats": 1}).run()
    assert report.complete == 3 and report.failed == 0
    assert report.space_size == 423_624
    assert report.best is not None


def test_definition_check_and_subclass_key():
    """Studies check a space's definition on probe cells; a subclass's key carries a
    fingerprint, which changes when what it builds changes."""
    NB101Space().check_definition()

    class Wider(NB101Space):
        version = 1

    class Broken(NB101Space):
        version = 1

        def to_graph(self, decisions):
            raise RuntimeError("boom")

    key = Wider().key
    assert key.startswith("nb101-v1-") and "-fp" in key and key == Wider().key
    assert Wider(channels=32).key != key
    with pytest.raises(InvalidArchitectureError, match="boom"):
        Broken().check_definition()
