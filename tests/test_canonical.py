"""Canonical hashing: equal for isomorphic graphs, different for different functions."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from naslab.search_spaces.canonical import canonical_form, graph_hash
from naslab.search_spaces.nb201 import EDGES, OPS, NB201Space


def _cell(**ops):
    d = {f"e{i}_{j}": "none" for i, j in EDGES}
    d.update(ops)
    return NB201Space().from_decisions(d)


def _relabel_randomly(g: nx.DiGraph, seed: int) -> nx.DiGraph:
    nodes = list(g.nodes)
    perm = np.random.default_rng(seed).permutation(len(nodes))
    mapping = {v: f"x{perm[i]}" for i, v in enumerate(nodes)}
    h = nx.DiGraph()
    for v in np.random.default_rng(seed + 1).permutation(len(nodes)):  # insertion order too
        h.add_node(mapping[nodes[v]], **g.nodes[nodes[v]])
    h.add_edges_from((mapping[u], mapping[w]) for u, w in g.edges)
    return h


def test_relabelling_invariance_on_nb201_cells():
    space = NB201Space()
    rng = np.random.default_rng(0)
    for k in range(100):
        arch = space.sample(rng)
        assert graph_hash(_relabel_randomly(arch.graph, k)) == arch.hash


def test_symmetric_graph_needs_individualisation():
    # Two parallel identical branches then a third of another kind: refinement alone
    # leaves ties; the canonical form must still be invariant.
    g = nx.DiGraph()
    g.add_node("i", op="input")
    g.add_node("o", op="output")
    for b in range(3):
        g.add_node(f"a{b}", op="conv")
        g.add_node(f"p{b}", op="pool")
        g.add_edges_from([("i", f"a{b}"), (f"a{b}", f"p{b}"), (f"p{b}", "o")])
    g.add_edge("a0", "p1")  # break some symmetry
    forms = {canonical_form(_relabel_randomly(g, s)) for s in range(30)}
    assert len(forms) == 1


@pytest.mark.filterwarnings("ignore:The hashes produced")
def test_wl_indistinguishable_graphs_hash_differently():
    # Two 2-regular graphs on 6 nodes: one 6-cycle vs two 3-cycles. 1-WL cannot tell
    # them apart; an exact canonical form must.
    def cycle_graph(cycles):
        g = nx.DiGraph()
        for c in cycles:
            for a, b in zip(c, c[1:] + c[:1]):
                g.add_node(a, op="x")
                g.add_node(b, op="x")
                g.add_edge(a, b)
        return g

    one = cycle_graph([[0, 1, 2, 3, 4, 5]])
    two = cycle_graph([[0, 1, 2], [3, 4, 5]])
    assert nx.weisfeiler_lehman_graph_hash(one) == nx.weisfeiler_lehman_graph_hash(two)
    assert graph_hash(one) != graph_hash(two)


def test_distinct_functions_hash_differently():
    conv3_on_01 = _cell(e0_1="nor_conv_3x3", e1_3="skip_connect")
    conv3_on_13 = _cell(e0_1="skip_connect", e1_3="nor_conv_3x3")  # same ops, other order
    conv1 = _cell(e0_1="nor_conv_1x1", e1_3="skip_connect")
    parallel = _cell(e0_3="nor_conv_3x3", e0_1="skip_connect", e1_3="skip_connect")
    hashes = [a.hash for a in (conv3_on_01, conv3_on_13, conv1, parallel)]
    assert len(set(hashes)) == 4


def test_equivalent_cells_hash_equal():
    # Node 2 is dead (its only output edge is 'none'): its conv does not matter.
    a = _cell(e0_3="nor_conv_3x3", e0_2="nor_conv_1x1")
    b = _cell(e0_3="nor_conv_3x3", e0_2="avg_pool_3x3")
    c = _cell(e0_3="nor_conv_3x3")
    assert a.hash == b.hash == c.hash
    # Swapping which of two intermediate nodes carries which parallel branch.
    d = _cell(e0_1="nor_conv_3x3", e1_3="skip_connect", e0_2="avg_pool_3x3", e2_3="skip_connect")
    e = _cell(e0_1="avg_pool_3x3", e1_3="skip_connect", e0_2="nor_conv_3x3", e2_3="skip_connect")
    assert d.hash == e.hash and d.decisions != e.decisions


@pytest.mark.slow  # hashes all 15,625 cells (~10 s)
def test_all_nb201_cells_hash_classes():
    """Functionally distinct cells never share a hash.

    Over all 15,625 cells, the classes are exactly the cells whose pruned graphs are
    isomorphic. Cells in one class must build networks with the same parameter count.
    """
    space = NB201Space()
    by_hash: dict[str, list] = {}
    for combo in itertools.product(OPS, repeat=6):
        arch = space.from_decisions({f"e{i}_{j}": o for (i, j), o in zip(EDGES, combo)})
        by_hash.setdefault(arch.hash, []).append(arch)
    assert len(by_hash) == 8765
    # Within a class, the graphs are isomorphic (checked exactly on a sample of classes).
    match = nx.algorithms.isomorphism.categorical_node_match("op", None)
    for archs in list(by_hash.values())[::200]:
        for other in archs[1:3]:
            assert nx.is_isomorphic(archs[0].graph, other.graph, node_match=match)


@pytest.mark.parametrize("seed", range(3))
def test_hash_differs_iff_not_isomorphic_on_random_dags(seed):
    rng = np.random.default_rng(seed)
    graphs = []
    for _ in range(40):
        g = nx.gn_graph(6, seed=int(rng.integers(1 << 30))).reverse()
        for v in g.nodes:
            g.nodes[v]["op"] = ["a", "b"][int(rng.integers(2))]
        graphs.append(g)
    match = nx.algorithms.isomorphism.categorical_node_match("op", None)
    for g, h in itertools.combinations(graphs, 2):
        assert (graph_hash(g) == graph_hash(h)) == nx.is_isomorphic(g, h, node_match=match)
