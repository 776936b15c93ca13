"""The NAS-Bench-Graph space and its table evaluator, checked against the package."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from nas_bench_graph import Arch, light_read, link_list

from naslab.core.errors import (
    ConfigError,
    EvaluationError,
    InvalidArchitectureError,
    UnknownNameError,
)
from naslab.search_spaces.nasbench_graph import (
    DATASETS,
    LINKS,
    OPS,
    PROTEINS_OPS,
    NasBenchGraphSpace,
    bench_key,
    decisions_from_key,
    parse_link,
)
from naslab.workers.benchmark_table import (
    NasBenchGraphEvaluator,
    all_architectures,
    load_table,
)

ROWS = {d: (2021 if d == "proteins" else 26206) for d in DATASETS}
TASK = SimpleNamespace(name="synthetic-graph", input_shape=(12,), num_classes=3)


class Recorder:
    def __init__(self):
        self.reports = []

    def report(self, step, metrics):
        self.reports.append((step, dict(metrics)))


def _arch(space, link, ops):
    return space.from_decisions(link=link, **{f"op{i}": op for i, op in enumerate(ops, 1)})


def _ops(arch):
    return [arch.decisions[f"op{i}"] for i in range(1, 5)]


@pytest.fixture(scope="module")
def cora():
    return NasBenchGraphSpace("cora")


@pytest.fixture(scope="module")
def proteins():
    return NasBenchGraphSpace("proteins")


# -- data sets and vocabularies -------------------------------------------------------


def test_datasets_are_the_package_tables():
    import nas_bench_graph

    light = Path(nas_bench_graph.__file__).parent / "light"
    assert sorted(DATASETS) == sorted(p.stem for p in light.glob("*.bench"))


@pytest.mark.parametrize(
    "make", [NasBenchGraphSpace, NasBenchGraphEvaluator, load_table, all_architectures]
)
def test_unknown_dataset_refused_listing_choices(make):
    with pytest.raises(UnknownNameError) as info:
        make("karate")
    message = str(info.value)
    assert "'karate'" in message
    for name in DATASETS:
        assert name in message


def test_row_counts_and_shared_keys():
    keys = {d: set(load_table(d)) for d in DATASETS}
    for d in DATASETS:
        assert len(keys[d]) == ROWS[d], d
    # Every data set but proteins has the same rows; proteins' are a subset.
    assert all(keys[d] == keys["cora"] for d in DATASETS if d != "proteins")
    assert keys["proteins"] < keys["cora"]
    # The proteins rows use exactly the package's five proteins operations.
    used = {decisions_from_key(k)[f"op{i}"] for k in keys["proteins"] for i in range(1, 5)}
    assert used == set(PROTEINS_OPS)


def test_vocabulary_and_key(cora, proteins):
    assert cora.ops == OPS and proteins.ops == PROTEINS_OPS
    assert cora.key == "nasbench_graph"
    assert {NasBenchGraphSpace(d).key for d in DATASETS if d != "proteins"} == {cora.key}
    assert proteins.key != cora.key and proteins.config() == {"ops": "proteins"}
    assert cora.config() == {}
    assert NasBenchGraphSpace("cora", hidden=32).key != cora.key
    assert cora.size() == 9 * (9**4 - 1) and proteins.size() == 9 * (5**4 - 1)
    assert [parse_link(s) for s in LINKS] == [tuple(x) for x in link_list]


# -- canonicalisation against the package ---------------------------------------------


@pytest.mark.parametrize("dataset", ["cora", "proteins"])
def test_samples_find_their_row_and_hash_like_it(dataset):
    space = NasBenchGraphSpace(dataset)
    table = load_table(dataset)
    rng = np.random.default_rng(2024)
    for _ in range(500):
        arch = space.sample(rng)
        key = bench_key(arch)
        assert key in table, arch
        # Our canonical hash is the hash of the row's canonical representative.
        assert arch == space.from_decisions(decisions_from_key(key)), arch


@pytest.mark.parametrize("dataset", [pytest.param("cora", marks=pytest.mark.slow), "proteins"])
def test_one_distinct_hash_per_row(dataset):
    archs = all_architectures(dataset)
    keys = sorted(load_table(dataset))
    assert len(archs) == len(keys) == ROWS[dataset]
    assert [bench_key(a) for a in archs] == keys
    assert len({a.hash for a in archs}) == len(keys)


def _classes_coincide(space, ops):
    """Every combination of ``ops``: equal hash <=> equal package key."""
    by_hash, by_key = {}, {}
    for link in LINKS:
        for combo in itertools.product(ops, repeat=4):
            if set(combo) == {"skip"}:
                continue
            arch = _arch(space, link, combo)
            key = bench_key(arch)
            assert by_hash.setdefault(arch.hash, key) == key, (link, combo)
            assert by_key.setdefault(key, arch.hash) == arch.hash, (link, combo)
    return len(by_key)


def test_hash_classes_coincide_with_package_rows_on_a_sub_vocabulary(cora):
    # Four operations, skip among them, exercise every rule of the package's
    # canonicalisation (reordering, skip contraction, dropped and repeated leaves).
    assert _classes_coincide(cora, ("gcn", "gat", "fc", "skip")) > 500


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["cora", "proteins"])
def test_hash_classes_coincide_with_package_rows_exhaustively(dataset):
    space = NasBenchGraphSpace(dataset)
    assert _classes_coincide(space, space.ops) == ROWS[dataset]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        # Parallel layers on the input, in any order.
        (("0-0-0-0", "gcn gat gin fc"), ("0-0-0-0", "fc gin gat gcn"), True),
        # A skip leaf off the input is dropped; one off a layer re-feeds that layer.
        (("0-0-0-0", "gat gat gat skip"), ("0-0-0-1", "gat gat gat skip"), True),
        # A skip at the start or the end of a chain changes nothing.
        (("0-1-2-3", "skip gcn gcn gcn"), ("0-1-2-3", "gcn gcn gcn skip"), True),
        # Two skip leaves off layer 1 feed it to the output twice: not the same.
        (("0-0-1-1", "gat gat skip skip"), ("0-0-0-0", "gat gat skip skip"), False),
        (("0-0-1-1", "gat gcn skip skip"), ("0-0-1-1", "gcn gat skip skip"), False),
        (("0-1-2-3", "gcn gat fc sage"), ("0-1-2-3", "sage fc gat gcn"), False),
    ],
)
def test_isomorphic_variants(cora, a, b, same):
    x, y = (_arch(cora, link, ops.split()) for link, ops in (a, b))
    assert (x == y) is same and (x.hash == y.hash) is same
    assert (bench_key(x) == bench_key(y)) is same


def test_bench_key_is_the_packages_valid_hash(cora):
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = cora.sample(rng)
        link = list(parse_link(arch.decisions["link"]))
        assert bench_key(arch) == Arch(link, _ops(arch)).valid_hash()
        assert bench_key(dict(arch.decisions)) == bench_key(arch)


# -- the evaluator -------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["cora", "physics", "proteins"])
def test_values_match_the_packages_read(dataset):
    space = NasBenchGraphSpace(dataset)
    evaluator = NasBenchGraphEvaluator(dataset)
    bench = light_read(dataset)
    rng = np.random.default_rng(1)
    for _ in range(5):
        arch = space.sample(rng)
        row = bench[Arch(list(parse_link(arch.decisions["link"])), _ops(arch)).valid_hash()]
        rec = Recorder()
        result = evaluator.evaluate(space, arch, 7, 0, rec)
        assert result.metrics == {
            "val_accuracy": float(row["valid_perf"]),
            "test_accuracy": float(row["perf"]),
        }
        assert 0.0 <= result.metrics["val_accuracy"] <= 1.0
        assert result.params == round(float(row["para"]) * 1e6)
        assert isinstance(result.params, int)
        assert result.extra["params_millions"] == float(row["para"])
        assert result.latency_ms == pytest.approx(row["latency"] * 1000.0)
        assert result.train_seconds == 0.0 and result.epochs == 7
        assert rec.reports == [(7, result.metrics)]


def test_readme_example_matches(cora):
    # The package README's example, Arch([0, 1, 2, 1], ['gcn', 'gin', 'fc', 'cheb']):
    # gcn reads the input, gin and cheb read gcn, fc reads gin. In our nine wirings
    # that is 0-1-1-2 with gcn gin cheb fc. (The README calls it the same as
    # Arch([0, 1, 1, 2], ['gcn', 'cheb', 'gin', 'fc']), where fc reads cheb: a slip in
    # the README; the package's valid_hash keeps the two apart, and so do we.)
    key = Arch([0, 1, 2, 1], ["gcn", "gin", "fc", "cheb"]).valid_hash()
    arch = _arch(cora, "0-1-1-2", ["gcn", "gin", "cheb", "fc"])
    assert bench_key(arch) == key
    slip = _arch(cora, "0-1-1-2", ["gcn", "cheb", "gin", "fc"])
    assert slip != arch and bench_key(slip) != key
    result = NasBenchGraphEvaluator("cora").evaluate(cora, arch, 1, 0, Recorder())
    assert result.metrics["val_accuracy"] == light_read("cora")[key]["valid_perf"]


def test_evaluator_key_and_refusals(cora, proteins):
    evaluator = NasBenchGraphEvaluator("proteins")
    assert evaluator.key == "nasbench_graph:proteins"
    assert NasBenchGraphEvaluator().key == "nasbench_graph:cora"
    arch = _arch(cora, "0-1-2-3", ["gat", "gcn", "gcn", "gcn"])
    with pytest.raises(EvaluationError, match="no proteins row.*gcn, sage, arma, fc, skip"):
        evaluator.evaluate(cora, arch, 1, 0, Recorder())
    with pytest.raises(ConfigError, match="fidelity"):
        NasBenchGraphEvaluator("cora").evaluate(cora, arch, 0, 0, Recorder())
    from naslab.search_spaces.registry import get_space

    other = get_space("chain")
    with pytest.raises(EvaluationError, match="nasbench_graph space only"):
        NasBenchGraphEvaluator("cora").evaluate(
            other, other.sample(np.random.default_rng(0)), 1, 0, Recorder()
        )
    # A proteins architecture has a row in every table.
    p_arch = proteins.sample(np.random.default_rng(3))
    result = NasBenchGraphEvaluator("arxiv").evaluate(
        cora, cora.from_decisions(dict(p_arch.decisions)), 1, 0, Recorder()
    )
    assert result.extra["metric"] == "accuracy"


# -- decisions and graphs -----------------------------------------------------------


def test_invalid_decisions_refused(cora, proteins):
    good = {"link": "0-0-1-2", "op1": "gcn", "op2": "gat", "op3": "fc", "op4": "skip"}
    cora.from_decisions(good)
    with pytest.raises(InvalidArchitectureError, match="op2"):
        cora.from_decisions({**good, "op2": "conv3x3"})
    with pytest.raises(InvalidArchitectureError, match="op2"):
        proteins.from_decisions(good)  # gat is not in the proteins vocabulary
    with pytest.raises(InvalidArchitectureError, match="link"):
        cora.from_decisions({**good, "link": "0-1-0-2"})
    with pytest.raises(InvalidArchitectureError, match="all four layers are 'skip'"):
        cora.from_decisions(link="0-0-0-0", op1="skip", op2="skip", op3="skip", op4="skip")
    with pytest.raises(InvalidArchitectureError, match="bad link"):
        parse_link("0-3-0-0")


def test_graph_shape(cora):
    arch = _arch(cora, "0-0-1-1", ["gat", "gcn", "skip", "skip"])
    g = arch.graph
    assert {g.nodes[v]["op"] for v in g} == {"input", "output", "gat", "gcn", "skip"}
    # gat reaches the output twice (directly and through one skip copy), gcn once.
    assert sorted(g.predecessors("out")) == ["n1", "n1_copy1", "n2"]
    dropped = _arch(cora, "0-0-0-0", ["skip", "gcn", "skip", "skip"]).graph
    assert sorted(dropped.edges) == [("in", "n2"), ("n2", "out")]


def test_generic_operators_never_produce_all_skip(proteins):
    rng = np.random.default_rng(11)
    lone = _arch(proteins, "0-0-0-0", ["skip", "skip", "skip", "gcn"])
    for _ in range(200):
        child = proteins.mutate(lone, rng)
        proteins.validate(child)
        assert child != lone
    other = _arch(proteins, "0-0-0-0", ["gcn", "skip", "skip", "skip"])
    for _ in range(50):
        proteins.validate(proteins.crossover(lone, other, rng))
    nbrs = proteins.neighbours(lone)
    assert nbrs and all(set(_ops(n)) != {"skip"} for n in nbrs)
    assert len({n.hash for n in nbrs}) == len(nbrs) and lone not in nbrs


# -- build ----------------------------------------------------------------------------


def _graph_data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(30, 12, generator=g), torch.randint(0, 30, (2, 90), generator=g)


@pytest.mark.parametrize(
    ("link", "ops"),
    [
        ("0-1-2-3", "gat gcn gin cheb"),
        ("0-0-1-2", "sage arma graph fc"),
        ("0-0-1-1", "gat gcn skip skip"),
        ("0-1-1-1", "skip cheb skip fc"),
    ],
)
def test_build_forward_on_a_synthetic_graph(cora, link, ops):
    torch.manual_seed(0)
    model = cora.build(_arch(cora, link, ops.split()), TASK)
    x, edge_index = _graph_data()
    out = model(x, edge_index)
    assert out.shape == (30, TASK.num_classes) and torch.isfinite(out).all()
    out.sum().backward()
    model.eval()
    from torch_geometric.data import Data

    assert model(Data(x=x, edge_index=edge_index)).shape == (30, TASK.num_classes)


def test_build_refuses_non_graph_tasks(cora):
    arch = cora.sample(np.random.default_rng(0))
    with pytest.raises(InvalidArchitectureError, match="num_features"):
        cora.build(arch, SimpleNamespace(name="img", input_shape=(1, 8, 8), num_classes=10))
