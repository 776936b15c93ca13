"""The ``darts`` space: the contract, its options, its graph, DARTS's genotype notation
(published genotypes and attacks on the parser), its network, and a real search per
searcher."""

from __future__ import annotations

import math
import os
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from naslab.core.errors import ConfigError, InvalidArchitectureError
from naslab.search_spaces.darts import (
    CELLS,
    MAX_GENOTYPE_CHARS,
    NODES,
    OPERATIONS,
    DartsSpace,
    input_choices,
    parse_genotype,
)
from naslab.search_spaces.darts_network import FactorizedReduce
from naslab.testing.spaces import SearchSpaceContract

DIGITS = SimpleNamespace(name="digits-like", input_shape=(1, 8, 8), num_classes=10)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


OTHER = [(("dil_conv_5x5", 1), ("avg_pool_3x3", 0))] + PLAIN[1:]


@pytest.mark.parametrize("change", ["cells", "states", "op"])
def test_different_cells_hash_apart(small, change):
    a = _decisions(PLAIN, OTHER)
    if change == "cells":  # the same two cells, normal and reduction exchanged
        b = _decisions(OTHER, PLAIN)
    elif change == "states":  # c_{k-2} and c_{k-1} exchanged on node 2
        b = _decisions([(("sep_conv_3x3", 1), ("sep_conv_5x5", 0))] + PLAIN[1:], OTHER)
    else:
        b = _decisions([(("sep_conv_3x3", 0), ("dil_conv_5x5", 1))] + PLAIN[1:], OTHER)
    assert a != b and small.from_decisions(a) != small.from_decisions(b)


def test_decisions_refused_by_name(small):
    good = _decisions(PLAIN, PLAIN)
    for name, value in [("normal_2_inputs", "0,0"), ("normal_2_inputs", "0,2"),
                        ("reduce_5_inputs", "5,1"), ("normal_3_op_a", "none"),
                        ("reduce_4_op_b", "sep_conv_7x7"), ("normal_2_inputs", (0, 1)),
                        ("normal_2_op_a", 3)]:
        with pytest.raises(InvalidArchitectureError, match=name):
            small.from_decisions({**good, name: value})


# -- DARTS's genotype notation --------------------------------------------------------
# The literals below are copied from DARTS's cnn/genotypes.py (quark0/darts).

DARTS_V1 = "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"  # noqa: E501
DARTS_V2 = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"  # noqa: E501

NASNET = """Genotype(
  normal = [
    ('sep_conv_5x5', 1),
    ('sep_conv_3x3', 0),
    ('sep_conv_5x5', 0),
    ('sep_conv_3x3', 0),
    ('avg_pool_3x3', 1),
    ('skip_connect', 0),
    ('avg_pool_3x3', 0),
    ('avg_pool_3x3', 0),
    ('sep_conv_3x3', 1),
    ('skip_connect', 1),
  ],
  normal_concat = [2, 3, 4, 5, 6],
  reduce = [
    ('sep_conv_5x5', 1),
    ('sep_conv_7x7', 0),
    ('max_pool_3x3', 1),
    ('sep_conv_7x7', 0),
    ('avg_pool_3x3', 1),
    ('sep_conv_5x5', 0),
    ('skip_connect', 3),
    ('avg_pool_3x3', 2),
    ('sep_conv_3x3', 2),
    ('max_pool_3x3', 1),
  ],
  reduce_concat = [4, 5, 6],
)"""

AMOEBANET = """Genotype(
  normal = [
    ('avg_pool_3x3', 0),
    ('max_pool_3x3', 1),
    ('sep_conv_3x3', 0),
    ('sep_conv_5x5', 2),
    ('sep_conv_3x3', 0),
    ('avg_pool_3x3', 3),
    ('sep_conv_3x3', 1),
    ('skip_connect', 1),
    ('skip_connect', 0),
    ('avg_pool_3x3', 1),
    ],
  normal_concat = [4, 5, 6],
  reduce = [
    ('avg_pool_3x3', 0),
    ('sep_conv_3x3', 1),
    ('max_pool_3x3', 0),
    ('sep_conv_7x7', 2),
    ('sep_conv_7x7', 0),
    ('avg_pool_3x3', 1),
    ('max_pool_3x3', 0),
    ('max_pool_3x3', 1),
    ('conv_7x1_1x7', 0),
    ('sep_conv_3x3', 5),
  ],
  reduce_concat = [3, 4, 6]
)"""

V2_NORMAL = [(("sep_conv_3x3", 0), ("sep_conv_3x3", 1)), (("sep_conv_3x3", 0), ("sep_conv_3x3", 1)),
             (("sep_conv_3x3", 1), ("skip_connect", 0)), (("skip_connect", 0), ("dil_conv_3x3", 2))]
V2_REDUCE = [(("max_pool_3x3", 0), ("max_pool_3x3", 1)), (("skip_connect", 2), ("max_pool_3x3", 1)),
             (("max_pool_3x3", 0), ("skip_connect", 2)), (("skip_connect", 2), ("max_pool_3x3", 1))]


@pytest.mark.parametrize("text", [DARTS_V1, DARTS_V2], ids=["DARTS_V1", "DARTS_V2"])
def test_published_genotypes_round_trip(small, text):
    arch = small.from_genotype(text)
    assert small.to_genotype(arch) == text
    assert small.from_genotype(small.to_genotype(arch)).decisions == arch.decisions


def test_darts_v2_is_the_expected_architecture(small):
    arch = small.from_genotype(DARTS_V2)
    expected = small.from_decisions(_decisions(V2_NORMAL, V2_REDUCE))
    assert arch == expected and dict(arch.decisions) == dict(expected.decisions)
    assert small.from_genotype(DARTS_V1) != arch


def test_v2_network_has_the_genotype_s_operations(small):
    net = small.build(small.from_genotype(DARTS_V2), DIGITS)
    normal, reduce = net.cells[0], net.cells[1]  # cells=3: reductions at 1 and 2
    assert not normal.reduction and reduce.reduction
    assert [type(m).__name__ for m in normal.ops] == [
        "SepConv", "SepConv", "SepConv", "SepConv", "SepConv", "Identity", "Identity",
        "DilConv"]
    # in a reduction cell an op on a cell input has stride 2: skip becomes a
    # FactorizedReduce; skips from intermediate nodes stay identities
    assert [type(m).__name__ for m in reduce.ops] == [
        "MaxPool2d", "MaxPool2d", "Identity", "MaxPool2d", "MaxPool2d", "Identity",
        "Identity", "MaxPool2d"]
    assert all(m.stride == 2 for m, i in zip(reduce.ops, reduce.indices)
               if isinstance(m, torch.nn.MaxPool2d) and i < 2)
    assert normal.indices == [0, 1, 0, 1, 1, 0, 0, 2]


@pytest.mark.parametrize("text", [
    DARTS_V2.replace("'", '"'),
    DARTS_V2.replace(", ", ",\n    ").replace("(", "( ").replace("=", " = "),
    DARTS_V2.replace("[2, 3, 4, 5]", "range(2, 6)"),
    DARTS_V2.replace("[2, 3, 4, 5]", "[2, 3, 4, 5,]").replace(")]", "),]"),
    "  " + DARTS_V2 + "\n",
], ids=["double-quotes", "spaced", "range", "trailing-commas", "padded"])
def test_accepted_spellings(small, text):
    assert small.from_genotype(text).decisions == small.from_genotype(DARTS_V2).decisions


def test_fields_in_any_order(small):
    normal = DARTS_V2[DARTS_V2.index("normal=["):DARTS_V2.index(", normal_concat")]
    reduce = DARTS_V2[DARTS_V2.index("reduce=["):DARTS_V2.index(", reduce_concat")]
    text = f"Genotype(reduce_concat=[2, 3, 4, 5], {reduce}, normal_concat=[2, 3, 4, 5], {normal})"
    assert small.from_genotype(text).decisions == small.from_genotype(DARTS_V2).decisions
    exchanged = (text.replace("reduce=", "XX=").replace("normal=", "reduce=")
                 .replace("XX=", "normal="))
    assert small.from_genotype(exchanged).decisions["normal_2_op_a"] == "max_pool_3x3"


def test_search_output_with_range_concat(small):
    """DARTS's search prints ``normal_concat=range(2, 6)`` (Python 3's range repr)."""
    text = DARTS_V1.replace("[2, 3, 4, 5]", "range(2, 6)")
    assert small.to_genotype(small.from_genotype(text)) == DARTS_V1


def test_sampled_architectures_round_trip(small):
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = small.sample(rng)
        text = small.to_genotype(arch)
        assert text.startswith("Genotype(normal=[(")
        assert text.endswith("reduce_concat=[2, 3, 4, 5])")
        back = small.from_genotype(text)
        assert back.decisions == arch.decisions and back == arch


@pytest.mark.parametrize("text, needles", [
    (NASNET, ["normal has 10 (operation, input) pairs", "'sep_conv_7x7'",
              "takes state 0 twice", "normal_concat is [2, 3, 4, 5, 6]",
              "reduce_concat is [4, 5, 6]"]),
    (AMOEBANET, ["normal has 10", "'conv_7x1_1x7'", "'sep_conv_7x7'", "takes state 1 twice",
                 "reduce_concat is [3, 4, 6]"]),
], ids=["NASNet", "AmoebaNet"])
def test_nasnet_and_amoebanet_refused_clearly(small, text, needles):
    with pytest.raises(InvalidArchitectureError) as info:
        small.from_genotype(text)
    message = str(info.value)
    assert message.startswith("invalid DARTS genotype: ")
    for needle in needles:
        assert needle in message


def _v2_with(old, new, count=1):
    assert old in DARTS_V2
    return DARTS_V2.replace(old, new, count)


@pytest.mark.parametrize("text, match", [
    (_v2_with("('sep_conv_3x3', 0)", "('none', 0)"), "'none', which a derived DARTS genotype"),
    (_v2_with("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"),
     "normal pair 7 takes input 5; node 5 takes states 0 to 4"),
    (_v2_with("('sep_conv_3x3', 1)", "('sep_conv_3x3', 2)"),
     "normal pair 1 takes input 2; node 2 takes states 0 to 1"),
    (_v2_with("('sep_conv_3x3', 0)", "('sep_conv_3x3', -1)"), "takes input -1"),
    (_v2_with("('sep_conv_3x3', 1)", "('sep_conv_3x3', 0)"), "normal node 2 takes state 0 twice"),
    (_v2_with(", ('dil_conv_3x3', 2)]", "]"), "normal has 7 (operation, input) pairs"),
    (_v2_with("('dil_conv_3x3', 2)]", "('dil_conv_3x3', 2), ('skip_connect', 1)]"),
     "normal has 9"),
    (_v2_with("normal=[", "normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "),
     "normal has 10"),
    (DARTS_V2.replace("normal=[", "normal=[]+["), "unexpected text at character 18"),
    (_v2_with("normal=[", "reduce=["), "field 'reduce' is repeated"),
    (_v2_with("normal_concat", "normal_concatenation"), "field 'normal_concatenation' is unknown"),
    (_v2_with(", normal_concat=[2, 3, 4, 5]", ""), "missing field(s) normal_concat"),
    (_v2_with("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 4]"),
     "normal_concat is [2, 3, 4]"),
    (_v2_with("normal_concat=[2, 3, 4, 5]", "normal_concat=range(0, 600000)"),
     "normal_concat is [0, 1, 2"),
    (_v2_with("normal_concat=[2, 3, 4, 5]", "normal_concat=range(0, 6000000)"), "7 digits"),
    (_v2_with("('sep_conv_3x3', 0)", "('sep_conv_3x3', 0, 1)"), "expected ')'"),
    (_v2_with("('sep_conv_3x3', 0)", "('sep_conv_3x3', '0')"), "expected an integer"),
    (_v2_with("('sep_conv_3x3', 0)", "(sep_conv_3x3, 0)"), "expected a quoted operation name"),
    (_v2_with("('sep_conv_3x3', 0)", "('" + "x" * 70 + "', 0)"), "unexpected text at character"),
    (_v2_with("('sep_conv_3x3', 0)", "('sep_conv_3x3', 1" + "0" * 5000 + ")"), "5001 digits"),
    (DARTS_V2 + ")", "expected the end of the text"),
    (DARTS_V2 + "; import os", "unexpected text at character"),
    (DARTS_V2[:-1], "expected ')' at character"),
    (DARTS_V2.replace("Genotype", "namedtuple"), "expected 'Genotype('"),
    (DARTS_V2.replace("Genotype(", "Genotype(Genotype("), "field 'Genotype' is unknown"),
    (DARTS_V2.replace("normal=", "normal=normal="), "expected a list of pairs for normal"),
    ("Genotype(normal=__import__('os').system('touch HACKED'))", "unexpected text at character 32"),
    ("Genotype(normal=[(__import__('os').system('touch HACKED'), 0)])",
     "unexpected text at character 34"),
    ("", "expected 'Genotype(' at character 0, found the end of the text"),
    ("   \n\t ", "found the end of the text"),
    ("garbage", "expected 'Genotype(' at character 0, found 'garbage'"),
    ("Genotype()", "missing field(s) normal, normal_concat, reduce, reduce_concat"),
    ("Génotype(normal=[])", "unexpected text at character 1"),
    ("Genotype(normal=[('sep_conv_3x3'\x00, 0)])", "unexpected text"),
    ("{'normal': []}", "unexpected text at character 0"),
    ("Genotype" + "(" * 4000, "expected a field name"),
    ("Genotype(" + "n" * 9000 + "=[])", "field 'nnnnnnnn"),
    (_v2_with("normal=[", "normal=[" + "('skip_connect', 0), " * 392), "normal has 400"),
    (_v2_with("normal=[", "normal=[" + "('skip_connect', 0), " * 392), "more"),
])
def test_bad_genotypes_refused(small, text, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidArchitectureError, match="genotype") as info:
        small.from_genotype(text)
    assert match in str(info.value)
    assert len(str(info.value)) < 2000  # the offending text is quoted short
    assert not os.listdir(tmp_path)  # never evaluated


@pytest.mark.parametrize("size", [MAX_GENOTYPE_CHARS + 1, 1 << 20])
def test_long_texts_refused_at_once(small, size):
    text = (DARTS_V2 + " " * size)[:size]
    start = time.perf_counter()
    with pytest.raises(InvalidArchitectureError, match=f"{size:,} characters"):
        small.from_genotype(text)
    assert time.perf_counter() - start < 0.1


def test_longest_accepted_text(small):
    pad = (MAX_GENOTYPE_CHARS - len(DARTS_V2)) // DARTS_V2.count(", ")
    text = DARTS_V2.replace(", ", "," + " " * (pad + 1))
    assert len(text) <= MAX_GENOTYPE_CHARS
    assert small.from_genotype(text) == small.from_genotype(DARTS_V2)


@pytest.mark.parametrize("value", [DARTS_V2.encode(), None, 7, ["Genotype"], {"normal": []}])
def test_non_text_refused(small, value):
    with pytest.raises(InvalidArchitectureError, match="a DARTS genotype is a str, got"):
        small.from_genotype(value)


def test_parse_genotype_gives_decisions():
    decisions = parse_genotype(DARTS_V2)
    assert decisions == _decisions(V2_NORMAL, V2_REDUCE)


def test_to_genotype_refuses_foreign_architectures(small):
    from naslab.search_spaces.nb201 import NB201Space

    foreign = NB201Space().sample(np.random.default_rng(0))
    with pytest.raises(InvalidArchitectureError, match="belongs to space 'nb201'"):
        small.to_genotype(foreign)


# -- the network --------------------------------------------------------------------


def test_darts_v2_at_darts_s_size_has_darts_s_parameter_count():
    """C = 36, 20 cells, CIFAR-10 shapes: DARTS's training log reports "param size =
    3.349342MB" for DARTS_V2 (its count leaves out the auxiliary head, as we do)."""
    space = DartsSpace(channels=36, cells=20)
    cifar = SimpleNamespace(name="cifar-like", input_shape=(3, 32, 32), num_classes=10)
    net = space.build(space.from_genotype(DARTS_V2), cifar)
    assert sum(p.numel() for p in net.parameters()) == 3_349_342


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 7, 7), (2, 3, 5), (1, 1, 1)])
def test_sampled_networks_have_the_expected_output(shape):
    space = DartsSpace(channels=2, cells=3)
    task = SimpleNamespace(name="images", input_shape=shape, num_classes=3)
    rng = np.random.default_rng(len(shape) + sum(shape))
    for _ in range(3):
        net = space.build(space.sample(rng), task)
        out = net(torch.randn(5, *shape))
        assert isinstance(out, torch.Tensor) and out.shape == (5, 3)
        assert torch.isfinite(out).all()


def test_reductions_at_one_and_two_thirds():
    space = DartsSpace(channels=4, cells=5)
    net = space.build(space.from_genotype(DARTS_V2), DIGITS)
    shapes = []
    for cell in net.cells:
        cell.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
    net(torch.randn(2, 1, 8, 8))
    assert net.stem[0].out_channels == 3 * 4  # DARTS's stem multiplier
    assert [c.reduction for c in net.cells] == [False, True, False, True, False]
    assert shapes == [(16, 8, 8), (32, 4, 4), (32, 4, 4), (64, 2, 2), (64, 2, 2)]
    # FactorizedReduce on c_{k-2} in the cell after a reduction, ReLUConvBN elsewhere
    assert [type(c.preprocess0).__name__ for c in net.cells] == [
        "ReLUConvBN", "ReLUConvBN", "FactorizedReduce", "ReLUConvBN", "FactorizedReduce"]
    assert net.classifier.in_features == 64
    assert not any("auxiliary" in name for name, _ in net.named_modules())


def test_reduction_skip_on_a_cell_input_is_factorized(small):
    reduce = [(("skip_connect", 0), ("skip_connect", 1))] + PLAIN[1:]
    net = small.build(small.from_decisions(_decisions(PLAIN, reduce)), DIGITS)
    assert [type(m).__name__ for m in net.cells[1].ops[:2]] == ["FactorizedReduce"] * 2
    assert type(net.cells[0].ops[0]).__name__ == "SepConv"


def test_parameters_grow_with_channels_and_cells():
    arch = DartsSpace().sample(np.random.default_rng(3))

    def count(**options):
        net = DartsSpace(**options).build(arch, DIGITS)
        return sum(p.numel() for p in net.parameters())

    by_width = [count(channels=c, cells=3) for c in (2, 4, 8, 16)]
    assert by_width == sorted(set(by_width))
    assert count(channels=4, cells=3) < count(channels=4, cells=6) < count(channels=4, cells=9)


def test_isomorphic_architectures_build_alike(small):
    swapped = [((op_b, ib), (op_a, ia)) for (op_a, ia), (op_b, ib) in PLAIN]
    a = small.build(small.from_decisions(_decisions(PLAIN, PLAIN)), DIGITS)
    b = small.build(small.from_decisions(_decisions(swapped, swapped)), DIGITS)
    assert (sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters()))


def test_a_training_step_reaches_every_operation(small):
    torch.manual_seed(0)
    net = small.build(small.sample(np.random.default_rng(4)), DIGITS)
    loss = torch.nn.functional.cross_entropy(net(torch.randn(8, 1, 8, 8)),
                                             torch.arange(8) % 10)
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("shape", [(12,), (8, 8), (1, 2, 8, 8)])
def test_non_image_tasks_refused(small, shape):
    task = SimpleNamespace(name="not-images", input_shape=shape, num_classes=3)
    with pytest.raises(InvalidArchitectureError, match="image tasks"):
        small.build(small.sample(np.random.default_rng(0)), task)


def test_factorized_reduce_refuses_an_odd_width():
    with pytest.raises(ValueError, match="even output width, got 3"):
        FactorizedReduce(4, 3)


# -- a real search per searcher ------------------------------------------------------------

SEARCHERS = ["random", "evolution", "local", "nsga2", "guided-evolution", "guided-optuna",
             "optuna-tpe"]


@pytest.mark.parametrize("searcher", SEARCHERS)
def test_search_on_digits(searcher, tmp_path):
    import naslab

    report = naslab.Study(
        space=DartsSpace(channels=2, cells=3), task="digits", searcher=searcher, budget=3,
        epochs=1, storage=f"sqlite:///{tmp_path}/s.db",
        evaluator_options={"batch_size": 64, "latency_repeats": 1}).run()
    assert report.complete == 3 and report.failed == 0
    assert report.space_size == DartsSpace().size()
    accuracy = report.best.metrics["val_accuracy"]
    assert 0.0 <= accuracy <= 1.0 and not math.isnan(accuracy)
