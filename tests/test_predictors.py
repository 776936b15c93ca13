"""The predictor contract, run over every predictor, plus GNN- and featurizer-specific checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from naslab.core.errors import ConfigError, UnknownNameError
from naslab.predictors.base import NotFittedError, Prediction, Predictor, predictor_from_bytes
from naslab.predictors.baselines import ProxyPredictor, TreePredictor
from naslab.predictors.featurize import (
    NODE_FEATURES,
    OP_VOCABULARY,
    Featurizer,
    featurize,
    op_slot,
)
from naslab.predictors.gnn import GNNPredictor
from naslab.predictors.metrics import kendall_tau
from naslab.search_spaces.chain import ChainSpace
from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace, bench_key
from naslab.search_spaces.nb201 import NB201Space
from naslab.workers.benchmark_table import all_architectures, load_table
from tests.custom_space import TinyMLPSpace


def _small_gnn(**options) -> GNNPredictor:
    """A GNN predictor small enough for tests (the defaults are benchmarked separately)."""
    settings = {"members": 2, "hidden": 16, "layers": 2, "max_epochs": 25, "patience": 8}
    return GNNPredictor(**{**settings, **options})


@dataclass
class Case:
    """A predictor under test: how to build it and whether it needs a feature column."""

    name: str
    make: Callable[[int], Predictor]
    needs_signal_feature: bool = False
    min_tau: float = 0.2


CASES = [
    Case("gin", lambda s: _small_gnn(model="gin", seed=s)),
    Case("gcn", lambda s: _small_gnn(model="gcn", seed=s)),
    Case("dgin", lambda s: _small_gnn(model="dgin", seed=s)),
    Case("gin-mse", lambda s: _small_gnn(loss="mse", seed=s)),
    Case("rf", lambda s: TreePredictor(model="rf", n_estimators=50, seed=s)),
    Case("gbdt", lambda s: TreePredictor(model="gbdt", n_estimators=50, seed=s)),
    Case("rf-path", lambda s: TreePredictor(encoding="path", n_estimators=50, seed=s), False, 0.05),
    Case("proxy", lambda s: ProxyPredictor("signal"), needs_signal_feature=True),
]


@pytest.fixture(scope="module")
def cora():
    """150 training and 800 test architectures of NAS-Bench-Graph cora, with real targets."""
    archs = all_architectures("cora")
    table = load_table("cora")
    y = np.array([table[bench_key(a)]["valid_perf"] for a in archs])
    order = np.random.default_rng(0).permutation(len(archs))
    train, test = order[:150], order[150:950]
    noise = np.random.default_rng(1).normal(0, 0.05, len(archs))
    signal = y + noise  # an informative feature for the proxy baseline
    return {
        "train": [archs[i] for i in train],
        "y_train": y[train],
        "f_train": {"signal": signal[train]},
        "test": [archs[i] for i in test],
        "y_test": y[test],
        "f_test": {"signal": signal[test]},
    }


def _features(case: Case, data: dict, part: str):
    return data[f"f_{part}"] if case.needs_signal_feature else None


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
class TestPredictorContract:
    """Every predictor: sklearn-like, deterministic, saves safely, learns, refuses bad input."""

    def test_fit_predict_learns(self, case: Case, cora: dict) -> None:
        predictor = case.make(0)
        assert predictor.fit(cora["train"], cora["y_train"], _features(case, cora, "train")) is (
            predictor
        )
        pred = predictor.predict(cora["test"], _features(case, cora, "test"))
        assert isinstance(pred, Prediction) and len(pred) == len(cora["test"])
        assert np.isfinite(pred.mean).all() and np.isfinite(pred.std).all()
        assert (pred.std >= 0).all()
        assert kendall_tau(cora["y_test"], pred.mean) > case.min_tau

    def test_deterministic_and_order_equivariant(self, case: Case, cora: dict) -> None:
        train, y = cora["train"][:40], cora["y_train"][:40]
        feats = _features(case, cora, "train")
        feats = None if feats is None else {k: v[:40] for k, v in feats.items()}
        a = case.make(3).fit(train, y, feats).predict(train, feats)
        b = case.make(3).fit(train, y, feats).predict(train, feats)
        np.testing.assert_array_equal(a.mean, b.mean)
        np.testing.assert_array_equal(a.std, b.std)
        rev_feats = None if feats is None else {k: v[::-1] for k, v in feats.items()}
        c = case.make(3).fit(train, y, feats).predict(train[::-1], rev_feats)
        np.testing.assert_allclose(c.mean[::-1], a.mean, rtol=1e-5, atol=1e-6)

    def test_save_load_round_trip(self, case: Case, cora: dict, tmp_path) -> None:
        feats = _features(case, cora, "train")
        predictor = case.make(1).fit(
            cora["train"][:60],
            cora["y_train"][:60],
            None if feats is None else {k: v[:60] for k, v in feats.items()},
        )
        test_feats = _features(case, cora, "test")
        before = predictor.predict(
            cora["test"][:100],
            None if test_feats is None else {k: v[:100] for k, v in test_feats.items()},
        )
        path = predictor.save(tmp_path / "p.safetensors")
        from naslab.predictors.base import load_predictor

        loaded = load_predictor(path)
        assert type(loaded) is type(predictor)
        assert loaded.get_params() == predictor.get_params()
        after = loaded.predict(
            cora["test"][:100],
            None if test_feats is None else {k: v[:100] for k, v in test_feats.items()},
        )
        np.testing.assert_array_equal(before.mean, after.mean)
        np.testing.assert_array_equal(before.std, after.std)
        assert predictor_from_bytes(predictor.to_bytes()).get_params() == predictor.get_params()

    @pytest.mark.parametrize(
        "space", [TinyMLPSpace(), ChainSpace(), NB201Space()], ids=lambda s: s.name
    )
    def test_any_space(self, case: Case, space) -> None:
        rng = np.random.default_rng(0)
        archs = [space.sample(rng) for _ in range(40)]
        y = np.array([a.graph.number_of_nodes() + 0.1 * i % 3 for i, a in enumerate(archs)])
        feats = {"signal": y + rng.normal(0, 0.1, len(y))} if case.needs_signal_feature else None
        pred = (
            case.make(0)
            .fit(archs, y, feats)
            .predict(archs[:7], None if feats is None else {k: v[:7] for k, v in feats.items()})
        )
        assert len(pred) == 7 and np.isfinite(pred.mean).all()

    def test_refuses_bad_input(self, case: Case, cora: dict) -> None:
        predictor = case.make(0)
        archs, y = cora["train"][:30], cora["y_train"][:30]
        feats = {"signal": y} if case.needs_signal_feature else None
        with pytest.raises(NotFittedError, match="not fitted"):
            predictor.predict(archs, feats)
        with pytest.raises(ConfigError, match="30 architectures but 29 targets"):
            predictor.fit(archs, y[:29], feats)
        bad = y.copy()
        bad[4] = np.nan
        with pytest.raises(ConfigError, match="finite"):
            predictor.fit(archs, bad, feats)
        with pytest.raises(ConfigError, match="not an Architecture"):
            predictor.fit([*archs[:-1], "gcn"], y, feats)
        with pytest.raises(ConfigError, match="empty"):
            predictor.fit([], [], feats)
        with pytest.raises(ConfigError, match="rows|shape"):
            predictor.fit(archs, y, {"signal": y[:10]})


# ---------------------------------------------------------------------- featurizer


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
