"""The predictor contract, run over every predictor, plus GNN- and featurizer-specific checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.nn import DenseGCNConv, DenseGINConv
from torch_geometric.utils import to_dense_adj, to_dense_batch

from naslab.core.errors import ConfigError, UnknownNameError
from naslab.predictors.base import predictor_from_bytes
from naslab.predictors.baselines import ProxyPredictor, TreePredictor
from naslab.predictors.featurize import (
    NODE_FEATURES,
    OP_VOCABULARY,
    Featurizer,
    featurize,
    op_slot,
)
from naslab.predictors.gnn import GNNPredictor
from naslab.predictors.gnn_network import (
    DenseDirectedGINConv,
    EnsembleLinear,
    EnsembleMLP,
    EnsembleNetwork,
    dense_graphs,
)
from naslab.predictors.metrics import kendall_tau
from naslab.search_spaces.chain import ChainSpace
from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace
from naslab.search_spaces.nb201 import NB201Space
from naslab.testing.predictors import PredictorCase, PredictorContract, cora_sample
from tests.custom_space import TinyMLPSpace


def _small_gnn(**options) -> GNNPredictor:
    """A GNN predictor small enough for tests (the defaults are benchmarked separately)."""
    settings = {"members": 2, "hidden": 16, "layers": 2, "max_epochs": 25, "patience": 8}
    return GNNPredictor(**{**settings, **options})


CASES = [
    PredictorCase("gin", lambda s: _small_gnn(model="gin", seed=s)),
    PredictorCase("gcn", lambda s: _small_gnn(model="gcn", seed=s)),
    PredictorCase("dgin", lambda s: _small_gnn(model="dgin", seed=s)),
    PredictorCase("gin-mse", lambda s: _small_gnn(loss="mse", seed=s)),
    PredictorCase("rf", lambda s: TreePredictor(model="rf", n_estimators=50, seed=s)),
    PredictorCase("gbdt", lambda s: TreePredictor(model="gbdt", n_estimators=50, seed=s)),
    PredictorCase("rf-path", lambda s: TreePredictor(encoding="path", n_estimators=50, seed=s),
                  False, 0.05),
    PredictorCase("proxy", lambda s: ProxyPredictor("signal"), needs_signal_feature=True),
]


@pytest.fixture(scope="module")
def cora():
    """150 training and 800 test architectures of NAS-Bench-Graph cora, with real targets
    and an informative feature ``signal`` (the contract suite's data)."""
    return cora_sample()


class TestPredictors(PredictorContract):
    """The contract suite of :mod:`naslab.testing.predictors` over every built-in
    predictor, and on the custom space too."""

    @pytest.fixture(params=CASES, ids=lambda case: case.name)
    def predictor_case(self, request: pytest.FixtureRequest) -> PredictorCase:
        return request.param

    @pytest.fixture(params=[TinyMLPSpace(), ChainSpace(), NB201Space()],
                    ids=lambda space: space.name)
    def any_space(self, request: pytest.FixtureRequest):
        return request.param


def test_shared_vocabulary_and_buckets() -> None:
    assert op_slot("skip") == op_slot("skip_connect") == op_slot("identity")
    assert op_slot("nor_conv_3x3") == op_slot("conv3x3-bn-relu")
    assert op_slot("gcn") == OP_VOCABULARY.index("gcn")
    custom = op_slot("my_fancy_op")
    assert len(OP_VOCABULARY) <= custom < NODE_FEATURES
    assert op_slot("my_fancy_op") == custom  # stable, not Python's salted hash


def test_featurizer_batches_and_select() -> None:
    space = ChainSpace()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(12)]
    batch = Featurizer()(archs)
    assert batch.num_graphs == 12 and batch.x.shape[1] == NODE_FEATURES
    sub = batch.select([7, 2, 2])
    again = Featurizer()([archs[7], archs[2], archs[2]])
    for name in ("x", "edge_index", "batch", "node_ptr", "edge_ptr", "graph_x"):
        assert torch.equal(getattr(sub, name), getattr(again, name)), name
    pyg = again.to_pyg()
    assert torch.equal(pyg.x, again.x) and torch.equal(pyg.edge_index, again.edge_index)
    data = featurize(archs[0], features=[1.5, -2.0])
    assert data.x.shape[0] == archs[0].graph.number_of_nodes()
    assert data.graph_x.shape == (1, 5)
    # node attributes (a chain layer's width) change the features
    wide = space.from_decisions({**archs[0].decisions, "width_1": 32})
    narrow = space.from_decisions({**archs[0].decisions, "width_1": 8})
    assert not torch.equal(featurize(wide).x, featurize(narrow).x)


# ---------------------------------------------------------------------- GNN specifics


def test_gnn_uncertainty_in_target_units(cora: dict) -> None:
    """A pairwise loss fixes only the order; the mean is mapped back onto the targets."""
    ensemble = _small_gnn(members=3).fit(cora["train"], cora["y_train"])
    pred = ensemble.predict(cora["test"])
    assert pred.std.mean() > 0 and np.isfinite(ensemble.std_scale_)
    assert abs(pred.mean.mean() - cora["y_test"].mean()) < 0.1
    single = _small_gnn(members=1).fit(cora["train"][:40], cora["y_train"][:40])
    assert (single.predict(cora["test"][:10]).std == 0).all()


def test_gnn_fine_tune_transfers_across_spaces(cora: dict) -> None:
    predictor = _small_gnn().fit(cora["train"], cora["y_train"])
    before = predictor.predict(cora["test"][:50]).mean
    space = TinyMLPSpace()  # another space: the shared vocabulary keeps the input layout
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(30)]
    y = np.array([float(a.decisions["layers"]) for a in archs])
    assert predictor.fine_tune(archs, y, max_epochs=40) is predictor
    tuned = predictor.predict(archs)
    assert kendall_tau(y, tuned.mean) > 0.5
    assert not np.array_equal(before, predictor.predict(cora["test"][:50]).mean)
    with pytest.raises(ConfigError, match="fitted with features"):
        predictor.fine_tune(archs, y, features={"extra": y})


def test_gnn_options_are_checked() -> None:
    with pytest.raises(UnknownNameError, match="choose one of"):
        GNNPredictor(model="transformer")
    with pytest.raises(UnknownNameError, match="choose one of"):
        GNNPredictor(loss="hinge")
    with pytest.raises(ConfigError, match="members"):
        GNNPredictor(members=0)
    with pytest.raises(ConfigError, match="val_fraction"):
        GNNPredictor(val_fraction=1.5)


def test_gnn_few_samples_without_holdout() -> None:
    space = NasBenchGraphSpace("cora")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(5)]
    predictor = GNNPredictor(members=2, max_epochs=5).fit(archs, [0.1, 0.5, 0.2, 0.9, 0.3])
    assert predictor.epochs_ == [5, 5] and len(predictor.predict(archs)) == 5


def test_gnn_settings_are_checked_with_clear_messages() -> None:
    with pytest.raises(ConfigError, match="val_fraction must be a finite number > 0 and < 1"):
        GNNPredictor(val_fraction=1.0)
    with pytest.raises(ConfigError, match="dropout must be a finite number >= 0 and < 1"):
        GNNPredictor(dropout=1.0)
    with pytest.raises(ConfigError, match="lr must be a finite number > 0, got 0"):
        GNNPredictor(lr=0)
    with pytest.raises(ConfigError, match="weight_decay must be a finite number >= 0"):
        GNNPredictor(weight_decay=float("nan"))
    with pytest.raises(ConfigError, match="seed must be an integer >= 0, got -1"):
        GNNPredictor(seed=-1)
    with pytest.raises(ConfigError, match="hidden must be an integer >= 1.*, got True"):
        GNNPredictor(hidden=True)
    with pytest.raises(ConfigError, match="calibrate must be True or False, got 'no'"):
        GNNPredictor(calibrate="no")


# ------------------------------------------------------------ the ensemble network


def _mixed_batch():
    """Graphs of three spaces (different sizes, so padding is exercised), featurized."""
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for space in (ChainSpace(), NB201Space(), TinyMLPSpace())
             for _ in range(6)]
    return Featurizer()(archs)


def _member_linear(layer: EnsembleLinear, m: int) -> torch.nn.Linear:
    """Member ``m`` of an ensemble linear map as a plain ``torch.nn.Linear``."""
    d_in, d_out = layer.weight.shape[1:]
    linear = torch.nn.Linear(d_in, d_out)
    with torch.no_grad():
        linear.weight.copy_(layer.weight[m].T)
        linear.bias.copy_(layer.bias[m, 0])
    return linear


def _member_mlp(mlp: EnsembleMLP, m: int) -> torch.nn.Module:
    return torch.nn.Sequential(_member_linear(mlp.a, m), torch.nn.ReLU(),
                               _member_linear(mlp.b, m))


def _member_forward(net: EnsembleNetwork, m: int, batch) -> torch.Tensor:
    """Member ``m`` of ``net`` run alone, through PyG's dense layers as PyG ships them."""
    x, mask = to_dense_batch(batch.x, batch.batch)
    adj = to_dense_adj(batch.edge_index, batch.batch, max_num_nodes=x.shape[1])
    if net.family != "dgin":
        adj = adj + adj.transpose(1, 2)
    h = torch.relu(_member_linear(net.embed, m)(x))
    for conv in net.convs:
        if net.family == "gin":
            layer = DenseGINConv(torch.nn.Identity())
            layer.nn = _member_mlp(conv.nn, m)  # after PyG's constructor resets its nn
        elif net.family == "gcn":
            layer = DenseGCNConv(h.shape[-1], h.shape[-1], bias=False)
            layer.lin = _member_linear(conv.lin, m)  # the bias goes before propagation
        else:
            layer = DenseDirectedGINConv(_member_mlp(conv.nn, m))
        h = torch.relu(layer(h, adj, mask)) + h
    node_mask = mask.unsqueeze(-1).float()
    summed = (h * node_mask).sum(1)
    readout = torch.cat([summed / node_mask.sum(1), summed / 8.0, batch.graph_x], dim=1)
    return _member_mlp(net.head, m)(readout).squeeze(1)


@pytest.mark.parametrize("family", ["gin", "gcn", "dgin"])
def test_ensemble_members_are_independent_pyg_networks(family: str) -> None:
    """The member dimension runs each member as PyG's layers would run it alone."""
    batch = _mixed_batch()
    net = EnsembleNetwork(family, batch.graph_x.shape[1], hidden=8, layers=2, members=3,
                          dropout=0.0, seed=4).eval()
    with torch.no_grad():
        together = net(batch, batch.graph_x)
        assert together.shape == (3, batch.num_graphs)
        for m in range(3):
            alone = _member_forward(net, m, batch)
            torch.testing.assert_close(together[m], alone, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(together[0], together[1])  # independent initialisations


def test_directed_gin_sums_predecessors_and_successors_apart() -> None:
    adj = torch.zeros(1, 3, 3)
    adj[0, 0, 1] = adj[0, 1, 2] = 1.0  # a chain 0 -> 1 -> 2
    x = torch.tensor([[[1.0], [10.0], [100.0]]])
    out = DenseDirectedGINConv(torch.nn.Identity())(x, adj, torch.tensor([[1.0, 1.0, 0.0]]))
    # [own state, sum of predecessors, sum of successors]; node 2 masked out
    assert out.tolist() == [[[1.0, 0.0, 10.0], [10.0, 1.0, 100.0], [0.0, 0.0, 0.0]]]


def test_dense_graphs_pads_as_pyg_does() -> None:
    batch = _mixed_batch()
    x, adj, mask = dense_graphs(batch)
    pyg_x, pyg_mask = to_dense_batch(batch.x, batch.batch)
    assert mask.dtype == torch.float32 and torch.equal(mask.bool(), pyg_mask)
    assert torch.equal(x, pyg_x)
    assert torch.equal(adj, to_dense_adj(batch.edge_index, batch.batch))
    assert len(set((batch.node_ptr[1:] - batch.node_ptr[:-1]).tolist())) > 1  # padding


def test_ensemble_network_is_seeded_and_leaves_the_global_rng() -> None:
    state = torch.get_rng_state()
    a = EnsembleNetwork("gcn", 5, hidden=8, layers=2, members=2, dropout=0.0, seed=1)
    b = EnsembleNetwork("gcn", 5, hidden=8, layers=2, members=2, dropout=0.0, seed=1)
    c = EnsembleNetwork("gcn", 5, hidden=8, layers=2, members=2, dropout=0.0, seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    assert not torch.equal(a.embed.weight, c.embed.weight)


@pytest.mark.parametrize("family", ["gin", "gcn"])
def test_gnn_loads_files_saved_before_the_pyg_layers(family: str, cora: dict,
                                                     tmp_path) -> None:
    """Files whose layer weights are named ``blocks.<i>...`` (no PyG ``eps``) still load."""
    from safetensors import safe_open
    from safetensors.numpy import load, save

    predictor = _small_gnn(model=family, members=2, max_epochs=3).fit(
        cora["train"][:30], cora["y_train"][:30])
    path = predictor.save(tmp_path / "new.safetensors")
    with safe_open(str(path), framework="numpy") as f:
        metadata = f.metadata()
    arrays = load(path.read_bytes())
    inner = ".lin." if family == "gcn" else ".nn."
    old = {k.replace("net.convs.", "net.blocks.").replace(inner, "."): v
           for k, v in arrays.items() if not k.endswith(".eps")}
    assert any(k.startswith("net.blocks.0.") for k in old) and old.keys() != arrays.keys()
    loaded = predictor_from_bytes(save(old, metadata=metadata))
    np.testing.assert_array_equal(loaded.predict(cora["test"][:20]).mean,
                                  predictor.predict(cora["test"][:20]).mean)
