"""The ``darts`` space: the contract, its options, its graph, DARTS's genotype notation
(published genotypes and attacks on the parser), its network, and a real search per
searcher."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from naslab.core.errors import ConfigError, InvalidArchitectureError
from naslab.search_spaces.darts import (
    CELLS,
    NODES,
    OPERATIONS,
    DartsSpace,
    input_choices,
)
from naslab.testing.spaces import SearchSpaceContract

DIGITS = SimpleNamespace(name="digits-like", input_shape=(1, 8, 8), num_classes=10)


@pytest.fixture(scope="module")
def small():
    """A small instance shared by the tests that do not train."""
    return DartsSpace(channels=4, cells=3)


def _decisions(normal, reduce):
    """Decisions from per-node ``((op_a, a), (op_b, b))`` lists of both cells."""
    out = {}
    for cell, nodes in (("normal", normal), ("reduce", reduce)):
        for node, ((op_a, a), (op_b, b)) in zip(NODES, nodes):
            out[f"{cell}_{node}_inputs"] = f"{a},{b}"
            out[f"{cell}_{node}_op_a"] = op_a
            out[f"{cell}_{node}_op_b"] = op_b
    return out


PLAIN = [(("sep_conv_3x3", 0), ("sep_conv_5x5", 1)), (("max_pool_3x3", 0), ("avg_pool_3x3", 1)),
         (("skip_connect", 2), ("dil_conv_3x3", 3)), (("dil_conv_5x5", 4), ("sep_conv_3x3", 1))]


class TestDartsSpace(SearchSpaceContract):
    """The search space contract on a small instance."""

    @pytest.fixture
    def space(self):
        return DartsSpace(channels=4, cells=3)


# -- options ------------------------------------------------------------------------


def test_defaults_and_config():
    space = DartsSpace()
    assert (space.channels, space.cells) == (8, 5)
    assert space.config() == {"channels": 8, "cells": 5}
    assert space.key.startswith("darts-") and space.key != DartsSpace(channels=16).key
    assert space.key == DartsSpace(channels=8, cells=5).key
    assert "fp" not in space.key  # a built-in space: name plus config digest


@pytest.mark.parametrize("option, value, match", [
    ("channels", 0, ">= 1"),
    ("channels", -8, ">= 1"),
    ("channels", 129, "<= 128"),
    ("channels", 10**30, "<= 128"),
    ("channels", True, "integer"),
    ("channels", 8.0, "integer"),
    ("channels", float("nan"), "integer"),
    ("channels", "8", "integer"),
    ("channels", None, "integer"),
    ("cells", 2, ">= 3"),
    ("cells", 0, ">= 3"),
    ("cells", -1, ">= 3"),
    ("cells", 33, "<= 32"),
    ("cells", 2**63, "<= 32"),
    ("cells", False, "integer"),
    ("cells", 5.5, "integer"),
])
def test_bad_options_refused(option, value, match):
    with pytest.raises(ConfigError, match=match) as info:
        DartsSpace(**{option: value})
    assert f"darts's {option}" in str(info.value)


# -- decisions and size -------------------------------------------------------------


def test_decisions_are_the_darts_cell_choices(small):
    declared = {d.name: d for d in small.decisions()}
    assert len(declared) == 2 * 4 * 3
    for cell in CELLS:
        for node in NODES:
            assert declared[f"{cell}_{node}_op_a"].choices == OPERATIONS
            assert declared[f"{cell}_{node}_op_b"].choices == OPERATIONS
            pairs = declared[f"{cell}_{node}_inputs"].choices
            assert len(pairs) == node * (node - 1)  # ordered pairs of distinct states
            for pair in pairs:
                a, b = map(int, pair.split(","))
                assert a != b and 0 <= a < node and 0 <= b < node
    assert "none" not in OPERATIONS and len(OPERATIONS) == 7
    assert input_choices(2) == ("0,1", "1,0")


def test_size_is_exact():
    size = DartsSpace().size()
    assert isinstance(size, int)
    assert size == (2 * 6 * 12 * 20) ** 2 * 7**16 == 275_647_219_316_498_534_400
    # identifying the two orders of each of the 8 nodes' pairs gives DARTS's ~10^18
    assert size // 2**8 == (1 * 3 * 6 * 10) ** 2 * 7**16
    assert 1.0e18 < size / 2**8 < 1.1e18


def test_every_declared_combination_is_valid(small):
    """Extreme corners: every node on the same op, latest and earliest inputs."""
    for op in OPERATIONS:
        for pick in (0, -1):
            decisions = {}
            for d in small.decisions():
                decisions[d.name] = op if d.name.endswith(("op_a", "op_b")) else d.choices[pick]
            arch = small.from_decisions(decisions)
            small.validate(arch)


# -- the graph ----------------------------------------------------------------------


def test_graph_holds_both_cells(small):
    arch = small.from_decisions(_decisions(PLAIN, PLAIN))
    g = arch.graph
    ops = [g.nodes[v]["op"] for v in g.nodes]
    assert ops.count("input") == 1 and ops.count("output") == 1
    assert g.number_of_nodes() == 2 + 2 * (2 + 4 + 8 + 1)
    for cell in CELLS:
        members = [v for v in g.nodes if g.nodes[v].get("cell") == cell]
        assert sorted(g.nodes[v]["op"] for v in members).count("add") == 4
        assert sum(g.nodes[v]["op"] in OPERATIONS for v in members) == 8
        assert sorted(g.nodes[v]["state"] for v in members
                      if g.nodes[v]["op"] == "cell_input") == ["c_{k-1}", "c_{k-2}"]
        concat = next(v for v in members if g.nodes[v]["op"] == "concat")
        assert g.in_degree(concat) == 4  # all four intermediate nodes are concatenated
    out = next(v for v in g.nodes if g.nodes[v]["op"] == "output")
    (last,) = g.predecessors(out)
    assert g.nodes[last] == {"op": "concat", "cell": "reduce"}


def test_swapped_pairs_hash_alike(small):
    swapped = [((op_b, ib), (op_a, ia)) for (op_a, ia), (op_b, ib) in PLAIN]
    a = small.from_decisions(_decisions(PLAIN, PLAIN))
    b = small.from_decisions(_decisions(swapped, PLAIN))
    c = small.from_decisions(_decisions(PLAIN, swapped))
    assert dict(a.decisions) != dict(b.decisions)
    assert a == b == c and a.hash == b.hash == c.hash


def test_renumbered_intermediate_nodes_hash_alike(small):
    """Nodes 2 and 3 exchanged (and the later references to them): the same cell."""
    renumbered = [PLAIN[1], PLAIN[0], (("skip_connect", 3), ("dil_conv_3x3", 2)), PLAIN[3]]
    a = small.from_decisions(_decisions(PLAIN, PLAIN))
    b = small.from_decisions(_decisions(renumbered, PLAIN))
    assert a == b


@pytest.mark.parametrize("change", ["cells", "states", "op"])
def test_different_cells_hash_apart(small, change):
    other = [(("sep_conv_3x3", 0), ("sep_conv_5x5", 1))] + PLAIN[1:]
    if change == "cells":  # the same cells, normal and reduction exchanged
        a = _decisions(PLAIN, other[:1] + [PLAIN[0]] + PLAIN[2:])
        b = _decisions(other[:1] + [PLAIN[0]] + PLAIN[2:], PLAIN)
    elif change == "states":  # c_{k-2} and c_{k-1} exchanged on node 2
        a = _decisions(PLAIN, PLAIN)
        b = _decisions([(("sep_conv_3x3", 1), ("sep_conv_5x5", 0))] + PLAIN[1:], PLAIN)
    else:
        a = _decisions(PLAIN, PLAIN)
        b = _decisions([(("sep_conv_3x3", 0), ("dil_conv_5x5", 1))] + PLAIN[1:], PLAIN)
    assert small.from_decisions(a) != small.from_decisions(b)


def test_decisions_refused_by_name(small):
    good = _decisions(PLAIN, PLAIN)
    for name, value in [("normal_2_inputs", "0,0"), ("normal_2_inputs", "0,2"),
                        ("reduce_5_inputs", "5,1"), ("normal_3_op_a", "none"),
                        ("reduce_4_op_b", "sep_conv_7x7"), ("normal_2_inputs", (0, 1)),
                        ("normal_2_op_a", 3)]:
        with pytest.raises(InvalidArchitectureError, match=name):
            small.from_decisions({**good, name: value})
