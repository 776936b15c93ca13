"""The trainable ``gnn`` space, graph tasks and the full-batch graph evaluator."""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from naslab.core.errors import (
    ConfigError,
    EvaluationError,
    InvalidArchitectureError,
    UnknownNameError,
)
from naslab.db.store import Store
from naslab.search_spaces.gnn import GNNSpace
from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace
from naslab.study import Study
from naslab.testing import SearchSpaceContract
from naslab.workers.evaluator import NullReporter
from naslab.workers.graph_task import MAX_SBM_NODES, GraphTask, karate_task, sbm_task
from naslab.workers.graph_training import GraphTrainingEvaluator, count_graph_flops
from naslab.workers.measure import count_params
from naslab.workers.task import TASKS, digits_task, get_task

Data = pytest.importorskip("torch_geometric.data").Data


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- the space ------------------------------------------------------------------------


class TestGNNSpace(SearchSpaceContract):
    """The contract on the trainable GNN space, whose networks take graphs."""

    @pytest.fixture
    def space(self):
        return GNNSpace(hidden=8)

    def task_for(self, space):
        return SimpleNamespace(name="graph", input_shape=(12,), num_classes=3)

    def forward(self, space, module, task):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(20, 12, generator=g)
        return module(x, torch.randint(0, 20, (2, 60), generator=g)), 20


def test_same_decisions_and_graphs_as_nasbench_graph():
    gnn, table = GNNSpace(), NasBenchGraphSpace()
    assert [(d.name, d.values) for d in gnn.decisions()] == [
        (d.name, d.values) for d in table.decisions()]
    rng = np.random.default_rng(0)
    for _ in range(30):
        arch = gnn.sample(rng)
        twin = table.from_decisions(dict(arch.decisions))
        assert arch.hash == twin.hash and arch.space == "gnn" and twin.space != "gnn"
    assert gnn.size() == table.size() == 9 * (9**4 - 1)


def test_config_key_and_options():
    space = GNNSpace()
    assert space.config() == {"hidden": 64, "dropout": 0.5, "ops": list(GNNSpace().ops)}
    assert space.key == GNNSpace().key and space.key.startswith("gnn-")
    assert len({GNNSpace(hidden=32).key, GNNSpace(dropout=0.1).key, space.key,
                GNNSpace(ops="proteins").key}) == 4
    # the order an operation list is given in does not matter
    assert GNNSpace(ops="sage,gcn").ops == GNNSpace(ops=["gcn", "sage"]).ops == ("gcn", "sage")
    assert GNNSpace(ops="proteins").ops == ("gcn", "sage", "arma", "fc", "skip")
    assert "proteins" in repr(GNNSpace(ops="proteins"))
    small = GNNSpace(ops=["gcn"])  # no skip: every combination is a network
    assert small.size() == 9
    assert GNNSpace(ops=["gcn", "skip"]).size() == 9 * (2**4 - 1)
    rng = np.random.default_rng(0)
    for _ in range(10):
        arch = small.mutate(small.sample(rng), rng)
        assert set(arch.decisions.values()) - {"gcn"} <= set(small.decisions()[0].values)


@pytest.mark.parametrize("options, match", [
    ({"hidden": 0}, "hidden"), ({"hidden": -3}, "hidden"), ({"hidden": 10**9}, "hidden"),
    ({"hidden": True}, "hidden"), ({"hidden": 8.0}, "hidden"), ({"hidden": "64"}, "hidden"),
    ({"dropout": float("nan")}, "dropout"), ({"dropout": 1.0}, "dropout"),
    ({"dropout": -0.1}, "dropout"), ({"dropout": True}, "dropout"),
    ({"dropout": float("inf")}, "dropout"),
    ({"ops": "bogus"}, "unknown operation"), ({"ops": []}, "at least one"),
    ({"ops": ["skip"]}, "besides 'skip'"), ({"ops": "skip"}, "besides 'skip'"),
    ({"ops": ["gcn", "gcn"]}, "twice"), ({"ops": 5}, "ops"), ({"ops": [1, 2]}, "unknown"),
    ({"ops": {"gcn": 1}}, "ops"), ({"ops": b"gcn"}, "ops"), ({"ops": ""}, "unknown"),
])
def test_bad_options_refused(options, match):
    with pytest.raises(ConfigError, match=match):
        GNNSpace(**options)


def test_all_skip_and_foreign_ops_refused():
    space = GNNSpace(ops="proteins")
    skip = {"link": "0-0-0-0", "op1": "skip", "op2": "skip", "op3": "skip", "op4": "skip"}
    with pytest.raises(InvalidArchitectureError, match="gnn: all four layers"):
        space.from_decisions(skip)
    with pytest.raises(InvalidArchitectureError, match="op1"):
        space.from_decisions({**skip, "op1": "gat"})  # not in the proteins vocabulary


def test_build_refuses_image_tasks():
    space = GNNSpace(hidden=4)
    arch = space.sample(np.random.default_rng(0))
    with pytest.raises(InvalidArchitectureError, match="num_features.*graph task"):
        space.build(arch, SimpleNamespace(name="img", input_shape=(1, 8, 8), num_classes=10))


# -- graph tasks --------------------------------------------------------------------


def graph(n=12, f=3, classes=3, **overrides):
    """A small valid graph: a ring with labels i % classes and a 50/25/25 node split."""
    g = torch.Generator().manual_seed(0)
    idx = torch.arange(n)
    fields = dict(
        x=torch.randn(n, f, generator=g),
        edge_index=torch.stack([idx, (idx + 1) % n]),
        y=idx % classes,
        train_mask=idx < n // 2,
        val_mask=(idx >= n // 2) & (idx < 3 * n // 4),
        test_mask=idx >= 3 * n // 4,
    )
    fields.update(overrides)
    return Data(**{k: v for k, v in fields.items() if v is not None})


def test_graph_task_holds_validated_data():
    task = GraphTask("ring", graph())
    assert task.input_shape == (3,) and task.num_classes == 3 and task.metric == "accuracy"
    assert task.num_nodes == 12 and task.num_edges == 12
    assert task.data.x.dtype == torch.float32 and task.data.edge_index.dtype == torch.int64
    assert task.key.startswith("ring(sha256=") and task.key == GraphTask("ring", graph()).key
    assert GraphTask("ring", graph(), num_classes=5).num_classes == 5
    assert GraphTask("ring", graph(), key="mine").key == "mine"
    other = graph()
    other.x[0, 0] += 1.0
    changed = graph(train_mask=torch.arange(12) < 5)
    assert len({task.key, GraphTask("ring", other).key, GraphTask("ring", changed).key}) == 3
    # only x, edge_index, y and the masks are kept
    assert set(GraphTask("r", graph(edge_attr=torch.ones(12, 2))).data.keys()) == {
        "x", "edge_index", "y", "train_mask", "val_mask", "test_mask"}


N = 12
BAD_GRAPHS = [
    (dict(x=None), "data.x must be a torch.Tensor, got missing"),
    (dict(x=np.zeros((N, 3), dtype=np.float32)), "data.x must be a torch.Tensor"),
    (dict(x=torch.ones(N, 3, dtype=torch.int64)), "floating dtype"),
    (dict(x=torch.ones(N)), "shape"),
    (dict(x=torch.ones(N, 0)), "shape"),
    (dict(x=torch.ones(N, 2, 2)), "shape"),
    (dict(x=torch.full((N, 3), float("nan"))), "NaN"),
    (dict(x=torch.full((N, 3), float("inf"))), "NaN or infinite"),
    (dict(x=torch.eye(N, 3).to_sparse()), "dense"),
    (dict(edge_index=None), "edge_index must be a torch.Tensor"),
    (dict(edge_index=torch.zeros(2, 4)), "integer node indices"),
    (dict(edge_index=torch.zeros(2, 4, dtype=torch.bool)), "integer node indices"),
    (dict(edge_index=torch.zeros(3, 4, dtype=torch.int64)), r"shape \(2, num_edges\)"),
    (dict(edge_index=torch.zeros(8, dtype=torch.int64)), r"shape \(2, num_edges\)"),
    (dict(edge_index=torch.tensor([[0, N], [1, 2]])), "outside"),
    (dict(edge_index=torch.tensor([[0, -1], [1, 2]])), "outside"),
    (dict(edge_index=torch.tensor([[0, 2**40], [1, 2]])), "outside"),
    (dict(y=None), "data.y must be a torch.Tensor"),
    (dict(y=torch.zeros(N)), "integer class indices"),
    (dict(y=torch.zeros(N, dtype=torch.bool)), "integer class indices"),
    (dict(y=torch.zeros(N, 1, dtype=torch.int64)), "multi-label"),
    (dict(y=torch.zeros(N - 1, dtype=torch.int64)), r"shape \(num_nodes,\)"),
    (dict(y=torch.arange(N) - 1), ">= 0"),
    (dict(train_mask=None), "train_mask must be a torch.Tensor"),
    (dict(val_mask=torch.zeros(N, dtype=torch.bool)), "val_mask selects no node"),
    (dict(test_mask=torch.ones(N, dtype=torch.int64)), "boolean tensor"),
    (dict(test_mask=torch.ones(N + 1, dtype=torch.bool)), "boolean tensor of shape"),
    (dict(train_mask=torch.ones(N, 3, dtype=torch.bool)), "stacked"),
    (dict(test_mask=torch.arange(N) >= N // 2), "val_mask and test_mask overlap on 3"),
    (dict(train_mask=torch.ones(N, dtype=torch.bool)), "train_mask and val_mask overlap"),
]


@pytest.mark.parametrize("overrides, match", BAD_GRAPHS)
def test_graph_task_validation_attacks(overrides, match):
    with pytest.raises(ConfigError, match=match):
        GraphTask("bad", graph(**overrides))


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_classes=2), r"num_classes=2\), found label 2"),
    (dict(num_classes=1), "num_classes"), (dict(num_classes=True), "num_classes"),
    (dict(num_classes=3.0), "num_classes"), (dict(num_classes=2**40), "num_classes"),
    (dict(key=""), "key"), (dict(key=5), "key"),
])
def test_graph_task_option_attacks(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GraphTask("bad", graph(), **kwargs)


def test_graph_task_refuses_non_graphs():
    with pytest.raises(ConfigError, match="torch_geometric.data.Data"):
        GraphTask("bad", {"x": torch.ones(3, 2)})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="name"):
        GraphTask("", graph())
    with pytest.raises(ConfigError, match="torch_geometric.data.Data"):
        GraphTask.from_data("bad", (torch.ones(3, 2),))  # type: ignore[arg-type]


def test_graph_task_has_no_minibatch_loaders():
    task = GraphTask("ring", graph())
    with pytest.raises(ConfigError, match="full-batch.*make_evaluator"):
        task.loaders(32, 0)
    with pytest.raises(ConfigError, match="full-batch"):
        task.sample_batch(4)


def test_random_split_is_seeded_stratified_and_disjoint():
    data = graph(n=60, train_mask=None, val_mask=None, test_mask=None)
    task = GraphTask.from_data("ring", data, train=0.5, val=0.25, split_seed=3)
    masks = [task.data.train_mask, task.data.val_mask, task.data.test_mask]
    assert [int(m.sum()) for m in masks] == [30, 15, 15]
    assert not (masks[0] & masks[1]).any() and not (masks[1] & masks[2]).any()
    assert bool((masks[0] | masks[1] | masks[2]).all())
    for c in range(3):  # 20 nodes per class: 10 / 5 / 5
        assert int((task.data.y[masks[0]] == c).sum()) == 10
    again = GraphTask.from_data("ring", data, train=0.5, val=0.25, split_seed=3)
    other = GraphTask.from_data("ring", data, train=0.5, val=0.25, split_seed=4)
    assert again.key == task.key != other.key
    # split="random" ignores the data's own masks; "auto" and "given" keep them
    given = graph(n=60)
    assert GraphTask.from_data("r", given, split="random").key != GraphTask("r", given).key
    assert GraphTask.from_data("r", given).key == GraphTask("r", given).key
    assert GraphTask.from_data("r", given, split="given").key == GraphTask("r", given).key


@pytest.mark.parametrize("kwargs, match", [
    (dict(train=0.0), "train fraction"), (dict(train=1.0), "train fraction"),
    (dict(train=float("nan")), "train fraction"), (dict(val=-0.1), "val fraction"),
    (dict(val=True), "val fraction"), (dict(train=0.7, val=0.3), "< 1"),
    (dict(split_seed=-1), "split_seed"), (dict(split_seed=1.5), "split_seed"),
    (dict(split="sometimes"), "split"), (dict(split="given"), "needs data.train_mask"),
])
def test_split_option_attacks(kwargs, match):
    data = graph(n=30, train_mask=None, val_mask=None, test_mask=None)
    with pytest.raises((ConfigError, UnknownNameError), match=match):
        GraphTask.from_data("r", data, **kwargs)


def test_split_of_a_too_small_graph_is_refused():
    data = graph(n=3, train_mask=None, val_mask=None, test_mask=None)
    with pytest.raises(ConfigError, match="empty"):
        GraphTask.from_data("tiny", data)


def test_sbm_is_deterministic_and_learnable_in_principle():
    a, b = sbm_task(num_nodes=120, seed=1), sbm_task(num_nodes=120, seed=1)
    assert a.key == b.key != sbm_task(num_nodes=120, seed=2).key
    assert torch.equal(a.data.edge_index, b.data.edge_index)
    assert a.num_nodes == 120 and a.num_classes == 4 and a.input_shape == (16,)
    src, dst = a.data.edge_index
    assert not bool((src == dst).any())  # no self-loops, both directions
    assert {(int(s), int(d)) for s, d in zip(src, dst)} == {
        (int(d), int(s)) for s, d in zip(src, dst)}
    same_block = float((a.data.y[src] == a.data.y[dst]).float().mean())
    assert 0.5 < same_block < 0.7  # homophily 0.6 by default (chance: 0.25)
    strong = sbm_task(num_nodes=120, seed=1, homophily=0.9)
    s2, d2 = strong.data.edge_index
    assert float((strong.data.y[s2] == strong.data.y[d2]).float().mean()) > 0.8
    assert 4 < a.num_edges / a.num_nodes < 12  # avg_degree 8


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_nodes=MAX_SBM_NODES + 1), "num_nodes"), (dict(num_nodes=3), "num_nodes"),
    (dict(num_nodes=True), "num_nodes"), (dict(num_classes=1), "num_classes"),
    (dict(num_nodes=10, num_classes=6), "num_classes"), (dict(num_features=0), "features"),
    (dict(num_features=10**6), "features"), (dict(avg_degree=-1.0), "avg_degree"),
    (dict(avg_degree=float("nan")), "avg_degree"), (dict(homophily=1.5), "homophily"),
    (dict(feature_signal=float("inf")), "feature_signal"), (dict(seed=-1), "seed"),
    (dict(num_nodes=20, avg_degree=15.0, homophily=1.0), "probabilities above 1"),
])
def test_sbm_option_attacks(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        sbm_task(**kwargs)


def test_karate_and_registered_tasks():
    task = karate_task(split_seed=0)
    assert task.num_nodes == 34 and task.num_classes == 4 and task.input_shape == (34,)
    for c in range(4):  # stratified: every class is trained on
        assert int((task.data.y[task.data.train_mask] == c).sum()) >= 1
    assert karate_task(split_seed=1).key != task.key
    assert {"sbm", "karate", "cora", "citeseer", "pubmed"} <= set(TASKS)
    assert isinstance(get_task("sbm", num_nodes=40), GraphTask)
    with pytest.raises(ConfigError, match="root"):
        get_task("cora")  # needs a folder


# -- PyG data sets from a folder --------------------------------------------------------


def write_planetoid(root, name="cora", n_train=20, n_val=500, n_test=40, f=5, classes=3):
    """PyG's Planetoid raw files (``ind.<name>.*``) for a small random graph."""
    raw = root / {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}[name] / "raw"
    raw.mkdir(parents=True)
    n = n_train + n_val + n_test
    rng = np.random.default_rng(0)
    x = rng.random((n, f)).astype(np.float32)
    labels = np.arange(n) % classes
    onehot = np.eye(classes, dtype=np.int64)[labels]
    labelled = n_train + n_val
    files = {"x": x[:n_train], "allx": x[:labelled], "tx": x[labelled:],
             "y": onehot[:n_train], "ally": onehot[:labelled], "ty": onehot[labelled:],
             "graph": {i: [int(j) for j in rng.integers(0, n, 3)] for i in range(n)}}
    for key, value in files.items():
        (raw / f"ind.{name}.{key}").write_bytes(pickle.dumps(value))
    (raw / f"ind.{name}.test.index").write_text(
        "\n".join(str(i) for i in range(labelled, n)) + "\n")
    return n


def test_from_pyg_reads_a_planetoid_folder(tmp_path):
    n = write_planetoid(tmp_path)
    task = GraphTask.from_pyg("cora", tmp_path)
    assert task.num_nodes == n and task.input_shape == (5,) and task.num_classes == 3
    assert [int(task.data[m].sum()) for m in ("train_mask", "val_mask", "test_mask")] == [
        20, 500, 40]  # Planetoid's public split
    again = GraphTask.from_pyg("cora", tmp_path)  # now from PyG's processed files
    assert again.key == task.key
    resplit = GraphTask.from_pyg("mine", tmp_path, dataset="cora", split="random")
    assert int(resplit.data.train_mask.sum()) > 300 and resplit.key.startswith("mine(")
    assert get_task("cora", root=str(tmp_path)).key == task.key


def test_from_pyg_missing_files_are_named_not_downloaded(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        GraphTask.from_pyg("cora", tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"missing.*ind\.cora\.x.*download=True"):
        GraphTask.from_pyg("cora", tmp_path)
    with pytest.raises(ConfigError, match="missing"):
        GraphTask.from_pyg("photo", tmp_path)  # Amazon's npz, not there
    with pytest.raises(UnknownNameError, match="PyG data set"):
        GraphTask.from_pyg("ogbn-arxiv", tmp_path)
    with pytest.raises(ConfigError, match="download"):
        GraphTask.from_pyg("cora", tmp_path, download="yes")
    with pytest.raises(ConfigError, match="root"):
        GraphTask.from_pyg("cora", None)  # type: ignore[arg-type]


def test_from_pyg_corrupt_files_give_a_clear_error(tmp_path):
    write_planetoid(tmp_path)
    (tmp_path / "Cora" / "raw" / "ind.cora.graph").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match="could not read PyG's Cora"):
        GraphTask.from_pyg("cora", tmp_path)


# -- the evaluator ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sbm():
    return get_task("sbm")  # the registered default: 1,000 nodes, 4 classes


@pytest.fixture
def space():
    return GNNSpace(hidden=16, dropout=0.2)


@pytest.fixture
def arch(space):
    return space.from_decisions(link="0-1-2-3", op1="gcn", op2="sage", op3="skip", op4="skip")


class Recorder:
    def __init__(self, stop_at: int | None = None) -> None:
        self.reports: list[tuple[int, dict[str, float]]] = []
        self.stop_at = stop_at

    def report(self, step: int, metrics: Mapping[str, float]) -> bool:
        self.reports.append((step, dict(metrics)))
        return step != self.stop_at


def test_training_on_sbm_beats_chance_by_far(sbm, space, arch):
    """Chance is 0.25 (4 balanced classes); 15 full-batch epochs reach 0.55+."""
    ev = sbm.make_evaluator(device="cpu", latency_repeats=2)
    rec = Recorder()
    result = ev.evaluate(space, arch, 15, 0, rec)
    assert result.metrics["val_accuracy"] > 0.55 and result.metrics["test_accuracy"] > 0.55
    assert [s for s, _ in rec.reports] == list(range(1, 16))
    assert all(set(m) == {"train_loss", "val_accuracy", "val_loss"} for _, m in rec.reports)
    assert rec.reports[-1][1]["train_loss"] < rec.reports[0][1]["train_loss"]
    assert set(result.metrics) == set(GraphTrainingEvaluator.metrics)
    assert result.epochs == 15 and len(result.extra["history"]) == 15
    model = space.build(arch, sbm)
    assert result.params == count_params(model) > 0
    assert result.flops > 0 and result.latency_ms > 0 and result.train_seconds > 0
    assert set(result.weights) == set(model.state_dict())
    model.load_state_dict(result.weights)


def test_same_seed_same_result_other_seed_differs(sbm, space, arch):
    ev = GraphTrainingEvaluator(sbm, device="cpu", latency_repeats=1)
    a, b = (ev.evaluate(space, arch, 4, 3, NullReporter()) for _ in range(2))
    c = ev.evaluate(space, arch, 4, 4, NullReporter())
    assert a.metrics == b.metrics and a.extra["history"] == b.extra["history"]
    assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)
    assert a.extra["history"] != c.extra["history"]


def test_reporter_stops_training_early(sbm, space, arch):
    rec = Recorder(stop_at=2)
    result = GraphTrainingEvaluator(sbm, latency_repeats=1).evaluate(space, arch, 10, 0, rec)
    assert [s for s, _ in rec.reports] == [1, 2] and result.epochs == 2
    assert 0 <= result.metrics["test_accuracy"] <= 1


def test_karate_trains(space, arch):
    task = karate_task()
    result = task.make_evaluator(lr=0.05).evaluate(space, arch, 10, 0, NullReporter())
    assert result.metrics["val_accuracy"] > 0.4 and result.epochs == 10  # chance 0.25


@pytest.mark.parametrize("options, match", [
    ({"lr": 0}, "lr"), ({"lr": -1e-3}, "lr"), ({"lr": float("nan")}, "lr"),
    ({"lr": True}, "lr"), ({"lr": 1e9}, "lr"), ({"lr": "0.1"}, "lr"),
    ({"weight_decay": -1.0}, "weight_decay"), ({"weight_decay": float("inf")}, "weight_decay"),
    ({"keep_weights": "yes"}, "keep_weights"), ({"keep_weights": 1}, "keep_weights"),
    ({"latency_repeats": 0}, "latency_repeats"), ({"latency_repeats": 10**9}, "latency_repeats"),
    ({"device": "tpu"}, "device"), ({"device": 5}, "device"), ({"device": "cuda:99"}, "device"),
    ({"device": "meta"}, "not supported"),
])
def test_evaluator_option_attacks(sbm, options, match):
    with pytest.raises(ConfigError, match=match):
        GraphTrainingEvaluator(sbm, **options)


def test_evaluator_task_checks(sbm):
    assert GraphTrainingEvaluator("karate").task.name == "karate"
    with pytest.raises(ConfigError, match="GraphTask.*'digits'"):
        GraphTrainingEvaluator("digits")
    with pytest.raises(ConfigError, match="GraphTask"):
        GraphTrainingEvaluator(digits_task())
    with pytest.raises(UnknownNameError):
        GraphTrainingEvaluator("nope")
    with pytest.raises(TypeError):
        sbm.make_evaluator(batch_size=32)  # full-batch: no such option


@pytest.mark.parametrize("fidelity, seed", [(0, 0), (-1, 0), (True, 0), (2.0, 0), (1, -1),
                                            (1, 0.5), (1, None)])
def test_fidelity_and_seed_checked(sbm, space, arch, fidelity, seed):
    with pytest.raises(ConfigError):
        GraphTrainingEvaluator(sbm).evaluate(space, arch, fidelity, seed, NullReporter())


def test_key_holds_task_and_settings(sbm):
    ev = GraphTrainingEvaluator(sbm)
    assert sbm.key in ev.key and "lr=0.01" in ev.key and "wd=0.0005" in ev.key
    keys = {ev.key, GraphTrainingEvaluator(sbm, lr=0.02).key,
            GraphTrainingEvaluator(sbm, weight_decay=0.0).key,
            GraphTrainingEvaluator(karate_task()).key}
    assert len(keys) == 4
    # settings that do not change results stay out of the key
    assert GraphTrainingEvaluator(sbm, device="cpu", keep_weights=False,
                                  latency_repeats=3).key == ev.key
    assert ev.model_io() == {"name": "sbm", "input_shape": [16], "num_classes": 4}
    assert ev.default_fidelity >= 50 and ev.objective == "val_accuracy"


def test_task_and_evaluator_pickle(sbm, space, arch):
    ev = GraphTrainingEvaluator(sbm, device="cpu", latency_repeats=1)
    first = ev.evaluate(space, arch, 2, 0, NullReporter())  # caches the graph
    task = pickle.loads(pickle.dumps(sbm))
    assert task.key == sbm.key and torch.equal(task.data.edge_index, sbm.data.edge_index)
    copy = pickle.loads(pickle.dumps(ev))
    assert copy.key == ev.key and copy._data is None
    assert copy.evaluate(space, arch, 2, 0, NullReporter()).metrics == first.metrics


def test_architecture_of_another_space_refused(sbm, arch):
    other = NasBenchGraphSpace().from_decisions(dict(arch.decisions))
    with pytest.raises(InvalidArchitectureError, match="not 'gnn'"):
        GraphTrainingEvaluator(sbm).evaluate(GNNSpace(hidden=16), other, 1, 0, NullReporter())


class _Broken(GNNSpace):
    """Builds networks that misbehave, to check the evaluator's errors."""

    def __init__(self, kind: str) -> None:
        super().__init__(hidden=4)
        self.kind = kind

    def build(self, arch, task):
        if self.kind == "wrong-shape":
            return _Fixed(lambda x, e: x)
        if self.kind == "nan":
            return _Fixed(lambda x, e: self.lin(x) * float("nan"))
        if self.kind == "no-params":
            return _Fixed(lambda x, e: x[:, :task.num_classes])
        if self.kind == "not-module":
            return object()
        raise RuntimeError("cannot build")

    lin = nn.Linear(16, 4)


class _Fixed(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn
        self.lin = _Broken.lin

    def forward(self, x, edge_index):
        return self.fn(x, edge_index)


@pytest.mark.parametrize("kind, error, match", [
    ("wrong-shape", EvaluationError, r"\(1000, 16\).*\(1000, 4\)"),
    ("nan", EvaluationError, "diverged"),
    ("not-module", EvaluationError, "not a torch.nn.Module"),
    ("boom", EvaluationError, "could not build.*cannot build"),
])
def test_misbehaving_networks_raise_evaluation_errors(sbm, arch, kind, error, match):
    space = _Broken(kind)
    arch = space.from_decisions(dict(arch.decisions))
    with pytest.raises(error, match=match):
        GraphTrainingEvaluator(sbm).evaluate(space, arch, 2, 0, NullReporter())


def test_graph_flops_count_matrix_products_and_aggregation():
    from torch_geometric.nn import GraphConv

    n, f, h, e = 30, 5, 7, 90
    g = torch.Generator().manual_seed(0)
    x, edges = torch.randn(n, f, generator=g), torch.randint(0, n, (2, e), generator=g)
    conv = GraphConv(f, h)  # lin_rel(sum of neighbours) + lin_root(x)
    plain = FlopCounterMode(display=False)
    with plain:
        conv(x, edges)
    assert plain.get_total_flops() == 2 * (2 * n * f * h)
    assert count_graph_flops(conv, x, edges) == 2 * (2 * n * f * h) + e * f
    assert conv.training  # mode restored


# -- searches ----------------------------------------------------------------------


def small_study(tmp_path, searcher, **kw):
    task = sbm_task(num_nodes=60, num_features=8, avg_degree=4.0, seed=0)
    return Study(space=GNNSpace(hidden=8), task=task.make_evaluator(latency_repeats=1),
                 searcher=searcher, budget=kw.pop("budget", 3), epochs=kw.pop("epochs", 3),
                 storage=kw.pop("storage", f"sqlite:///{tmp_path}/s.db"), **kw)


@pytest.mark.parametrize("searcher", ["random", "evolution", "local", "nsga2",
                                      "guided-evolution", "guided-optuna", "optuna-tpe"])
def test_search_runs_with_every_searcher(tmp_path, searcher):
    report = small_study(tmp_path, searcher).run()
    assert report.complete == 3 and report.failed == 0
    assert report.space_size == 59040
    assert 0 < report.best.metrics["val_accuracy"] <= 1


def test_asha_stops_graph_trials_at_the_rung(tmp_path):
    with Store(f"sqlite:///{tmp_path}/asha.db") as store:
        report = small_study(tmp_path, "random", budget=6, storage=store, scheduler="asha",
                             scheduler_options={"min_epochs": 1, "eta": 3}).run()
        assert report.stopped > 0 and report.complete + report.stopped == 6
        for t in store.trials.list(report.name):
            assert t.epochs_done == (1 if t.state == "stopped" else 3)


def test_study_by_task_name_uses_the_graph_evaluator(tmp_path):
    """A graph task given by name (or as a Task) is trained by its make_evaluator()."""
    study = Study(space=GNNSpace(hidden=8), task="karate", searcher="random", budget=1,
                  epochs=2, storage=f"sqlite:///{tmp_path}/k.db",
                  evaluator_options={"lr": 0.05, "latency_repeats": 1})
    assert isinstance(study.evaluator, GraphTrainingEvaluator)
    assert study.evaluator.lr == 0.05 and study.evaluator.task.name == "karate"
    report = study.run()
    assert report.complete == 1 and math.isfinite(report.best.metrics["val_loss"])
