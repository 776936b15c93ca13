"""Flat encodings and the baseline predictors (trees on encodings, single proxies)."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pytest

from naslab.core.errors import ConfigError, UnknownNameError
from naslab.predictors.base import (
    NotFittedError,
    load_predictor,
    predictor_from_bytes,
)
from naslab.predictors.baselines import ProxyPredictor, TreePredictor
from naslab.predictors.encodings import (
    DecisionEncoder,
    PathEncoder,
    encoder_from_json,
    graph_paths,
    node_label,
)
from naslab.predictors.metrics import kendall_tau
from naslab.predictors.tree_ensemble import TreeEnsemble
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.chain import ChainSpace
from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace, decisions_from_key
from naslab.workers.benchmark_table import load_table
from tests.custom_space import TinyMLPSpace

# Kendall tau on 1,000 held-out cora architectures after fitting on 200 (the split of
# the `cora_split` fixture). Measured with default settings on this split (seeds 0, 1,
# 2): rf/onehot 0.364, 0.362, 0.362; gbdt/onehot 0.363, 0.365, 0.364; rf/path 0.113,
# 0.110, 0.105; gbdt/path 0.077, 0.085, 0.082. The learned path vocabulary generalises
# poorly here (most held-out architectures have 4-operation paths never seen in 200
# training graphs), hence the low path figures. Thresholds are about 2/3 of the
# onehot and 1/2 of the path values; under no correlation tau's standard error on 1,000
# architectures is about 0.021.
TAU_THRESHOLDS = {
    ("rf", "onehot"): 0.25,
    ("gbdt", "onehot"): 0.25,
    ("rf", "path"): 0.06,
    ("gbdt", "path"): 0.04,
}


# ------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def cora_split():
    """200 training and 1,000 held-out cora architectures (a fixed split of the table,
    in the order of ``all_architectures("cora")``), their validation accuracy and
    parameter counts; only those 1,200 are built."""
    table = load_table("cora")
    keys = sorted(table)
    perm = np.random.default_rng(2024).permutation(len(keys))
    space = NasBenchGraphSpace("cora")

    def part(idx):
        archs = [space.from_decisions(decisions_from_key(keys[i])) for i in idx]
        rows = [table[keys[i]] for i in idx]
        return (archs, np.array([r["valid_perf"] for r in rows]),
                np.array([r["para"] for r in rows]))

    return (*part(perm[:200]), *part(perm[200:1200]))


@pytest.fixture(scope="module")
def chain_data():
    space = ChainSpace()
    rng = np.random.default_rng(3)
    archs = [space.sample(rng) for _ in range(60)]
    # a synthetic target: deeper and wider is better
    y = np.array(
        [
            sum(int(a.decisions[f"width_{i}"]) for i in range(1, a.decisions["depth"] + 1))
            + (3.0 if a.decisions["skip"] == "residual" else 0.0)
            for a in archs
        ]
    )
    return archs, y


@pytest.fixture(scope="module")
def tiny_data():
    space = TinyMLPSpace()
    rng = np.random.default_rng(5)
    archs = [space.sample(rng) for _ in range(50)]
    y = np.array([a.decisions["layers"] + (a.decisions["act"] == "relu") for a in archs], float)
    return archs, y


def _arch(graph: nx.DiGraph, **decisions) -> Architecture:
    return Architecture("handmade", decisions, graph)


# ----------------------------------------------------------------- decision encoder


def test_decision_encoder_layout_and_unseen_values(tiny_data):
    archs, _ = tiny_data
    enc = DecisionEncoder().fit(archs)
    names = enc.feature_names_
    # strings one-hot, integers as numbers, conditional decisions get an active column
    assert 'act="relu"' in names and 'act="tanh"' in names
    assert "layers" in names and "width_1" in names
    assert "width_3:active" in names and "width_1:active" not in names
    X = enc.transform(archs)
    assert X.shape == (len(archs), enc.n_features) and X.dtype == np.float64
    for row, arch in zip(X, archs):
        d = arch.decisions
        assert row[names.index("layers")] == d["layers"]
        assert row[names.index("width_3:active")] == float("width_3" in d)
        if "width_3" not in d:
            assert row[names.index("width_3")] == 0.0
    # an unseen value gives zeros in its block; an unknown decision is ignored
    g = archs[0].graph
    odd = _arch(g, layers=1, width_1=16, act="gelu", brand_new="x")
    row = enc.transform([odd])[0]
    assert row[names.index('act="relu"')] == 0 and row[names.index('act="tanh"')] == 0
    assert row[names.index("width_3:active")] == 0


def test_decision_encoder_types_are_strict_and_json_round_trips():
    g = nx.DiGraph([("i", "o")])
    nx.set_node_attributes(g, {"i": "input", "o": "output"}, "op")
    archs = [
        _arch(g, flag=True, mixed=1, rate=0.5, name="a"),
        _arch(g, flag=False, mixed="1", rate=1.5, name="b"),
        _arch(g, flag=True, mixed=1.0, rate=2, name=np.str_("a")),
    ]
    enc = DecisionEncoder().fit(archs)
    assert "rate" in enc.feature_names_  # ints and floats: numeric
    for v in ("true", "false"):
        assert f"flag={v}" in enc.feature_names_  # booleans: one-hot
    # 1, "1" and 1.0 are three different categories
    assert sum(n.startswith("mixed=") for n in enc.feature_names_) == 3
    X = enc.transform(archs)
    for text in (json.dumps(enc.to_json()), enc.to_json()):
        again = DecisionEncoder.from_json(text)
        assert again.feature_names_ == enc.feature_names_
        np.testing.assert_array_equal(again.transform(archs), X)
    assert isinstance(encoder_from_json(json.dumps(enc.to_json())), DecisionEncoder)
    with pytest.raises(ConfigError, match="not a saved decision_encoder"):
        DecisionEncoder.from_json({"kind": "path_encoder"})
    with pytest.raises(ConfigError, match="not fitted"):
        DecisionEncoder().transform(archs)


# --------------------------------------------------------------------- path encoder


def test_path_encoder_counts_paths_with_attribute_labels(chain_data):
    archs, _ = chain_data
    assert node_label({"op": "gcn"}) == "gcn"
    assert node_label({"op": "conv", "width": 16, "kernel": 3}) == "conv{kernel=3,width=16}"
    enc = PathEncoder().fit(archs)
    X = enc.transform(archs)
    assert X.shape == (len(archs), len(enc.vocabulary_) + 1)
    # every path of a fitted graph is in the vocabulary: the <other> column is empty
    assert enc.feature_names_[-1] == "<other>" and not X[:, -1].any()
    for row, arch in zip(X, archs):
        assert row.sum() == len(list(nx.all_simple_paths(arch.graph, "input", "output")))
    again = PathEncoder.from_json(json.dumps(enc.to_json()))
    np.testing.assert_array_equal(again.transform(archs), X)
    assert isinstance(encoder_from_json(enc.to_json()), PathEncoder)


def test_path_encoder_caps_vocabulary_and_enumeration():
    # a ladder of 12 diamonds has 2**12 = 4096 input-output paths
    g = nx.DiGraph()
    g.add_node("in", op="input")
    prev = "in"
    for k in range(12):
        for side in ("a", "b"):
            g.add_node(f"{side}{k}", op="conv" if side == "a" else "pool")
            g.add_edge(prev, f"{side}{k}")
            g.add_edge(f"{side}{k}", f"j{k}")
        g.nodes[f"j{k}"]["op"] = "add"
        prev = f"j{k}"
    g.add_node("out", op="output")
    g.add_edge(prev, "out")
    paths, cut = graph_paths(g, max_paths=100)
    assert len(paths) == 100 and cut
    paths, cut = graph_paths(g, max_paths=10_000)
    assert len(paths) == 4096 and not cut
    arch = _arch(g)
    enc = PathEncoder(max_vocab=5, max_paths_per_graph=100).fit([arch])
    assert enc.truncated_ == 1 and len(enc.vocabulary_) == 5
    row = enc.transform([arch])[0]
    assert row.sum() == 100 and row[-1] == 95  # 5 known paths, 95 others
    with pytest.raises(ConfigError, match="max_vocab must be an integer >= 1.*, got 0"):
        PathEncoder(max_vocab=0)


def test_path_encoder_without_input_output_labels_uses_sources_and_sinks():
    g = nx.DiGraph([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    nx.set_node_attributes(g, {"a": "x", "b": "y", "c": "z", "d": "w"}, "op")
    paths, _ = graph_paths(g, 10)
    assert sorted(paths) == [("x", "y", "w"), ("x", "z", "w")]


# ------------------------------------------------------------------- tree predictor


@pytest.mark.parametrize("model,encoding", sorted(TAU_THRESHOLDS))
def test_tree_predictor_ranks_cora(cora_split, model, encoding):
    train, y_train, _, test, y_test, _ = cora_split
    p = TreePredictor(model=model, encoding=encoding).fit(train, y_train)
    assert p.n_train_ == 200 and p.fitted
    pred = p.predict(test)
    assert len(pred) == 1000 and np.all(pred.std >= 0) and np.any(pred.std > 0)
    tau = kendall_tau(y_test, pred.mean)
    assert tau > TAU_THRESHOLDS[(model, encoding)], tau


@pytest.mark.parametrize("model", ["rf", "gbdt"])
def test_saved_trees_predict_identically_and_match_sklearn(cora_split, model, tmp_path):
    train, y_train, para_train, test, _, para_test = cora_split
    p = TreePredictor(model=model, n_estimators=30, members=3).fit(
        train, y_train, {"para": para_train}
    )
    fresh = p.predict(test, {"para": para_test})
    # scikit-learn's own prediction, on the same columns (encoding, then features)
    X = np.hstack([p.encoder_.transform(test), para_test[:, None]])
    sk = np.mean([m.predict(X) for m in p.sklearn_estimators_], axis=0)
    np.testing.assert_allclose(fresh.mean, sk * p.y_scale_ + p.y_mean_, rtol=0, atol=1e-9)
    if model == "rf":
        trees = np.array([t.predict(X) for t in p.sklearn_estimators_[0].estimators_])
        np.testing.assert_allclose(fresh.std, trees.std(0) * p.y_scale_, rtol=0, atol=1e-9)
    # the saved predictor holds arrays only, and predicts exactly the same
    data = p.to_bytes()
    loaded = predictor_from_bytes(data)
    assert isinstance(loaded, TreePredictor) and loaded.get_params() == p.get_params()
    assert not hasattr(loaded, "sklearn_estimators_")
    again = loaded.predict(test, {"para": para_test})
    np.testing.assert_array_equal(again.mean, fresh.mean)
    np.testing.assert_array_equal(again.std, fresh.std)
    path = p.save(tmp_path / "trees.safetensors")
    np.testing.assert_array_equal(
        load_predictor(path).predict(test, {"para": para_test}).mean, fresh.mean
    )
    # features given at fit are needed, by name, at predict
    with pytest.raises(ConfigError, match="missing"):
        loaded.predict(test)
    with pytest.raises(ConfigError, match="missing"):
        p.predict(test, {"params": para_test})


def test_tree_predictor_is_deterministic(cora_split):
    train, y_train, _, test, _, _ = cora_split
    for model in ("rf", "gbdt"):
        a = TreePredictor(model=model, n_estimators=20, seed=7).fit(train[:80], y_train[:80])
        b = TreePredictor(model=model, n_estimators=20, seed=7).fit(train[:80], y_train[:80])
        c = TreePredictor(model=model, n_estimators=20, seed=8).fit(train[:80], y_train[:80])
        pa, pb, pc = a.predict(test[:200]), b.predict(test[:200]), c.predict(test[:200])
        np.testing.assert_array_equal(pa.mean, pb.mean)
        np.testing.assert_array_equal(pa.std, pb.std)
        assert a.to_bytes() == b.to_bytes()
        assert not np.array_equal(pa.mean, pc.mean)


@pytest.mark.parametrize("encoding", ["onehot", "path"])
@pytest.mark.parametrize("model", ["rf", "gbdt"])
def test_tree_predictor_on_chain_space(chain_data, model, encoding):
    archs, y = chain_data
    p = TreePredictor(model=model, encoding=encoding, n_estimators=30).fit(archs[:40], y[:40])
    if encoding == "onehot":
        assert "width_4:active" in p.encoder_.feature_names_
    pred = p.predict(archs[40:])
    assert np.all(np.isfinite(pred.mean)) and len(pred) == 20
    loaded = predictor_from_bytes(p.to_bytes())
    np.testing.assert_array_equal(loaded.predict(archs[40:]).mean, pred.mean)
    if encoding == "onehot":  # decisions tell widths and depth: clearly informative
        assert kendall_tau(y[40:], pred.mean) > 0.3


@pytest.mark.parametrize("encoding", ["onehot", "path"])
def test_tree_predictor_on_user_defined_space(tiny_data, encoding):
    archs, y = tiny_data
    p = TreePredictor(encoding=encoding, n_estimators=30).fit(archs[:35], y[:35])
    pred = p.predict(archs[35:])
    assert kendall_tau(y[35:], pred.mean) > 0.5
    loaded = predictor_from_bytes(p.to_bytes())
    np.testing.assert_array_equal(loaded.predict(archs[35:]).mean, pred.mean)


def test_tree_predictor_params_and_errors(tiny_data):
    archs, y = tiny_data
    p = TreePredictor(model="gbdt", encoding="path", n_estimators=10, max_depth=2, n_jobs=-1)
    params = p.get_params()
    json.dumps(params)
    assert TreePredictor(**params).get_params() == params
    assert "TreePredictor(model='gbdt'" in repr(p)
    with pytest.raises(NotFittedError, match="not fitted"):
        p.predict(archs)
    with pytest.raises(NotFittedError):
        p.to_bytes()
    assert p.fit(archs, y) is p
    with pytest.raises(UnknownNameError, match="unknown tree model 'xgb'; choose one of: gbdt, rf"):
        TreePredictor(model="xgb")
    with pytest.raises(UnknownNameError, match="tree encoding 'adjacency'; choose one of: onehot"):
        TreePredictor(encoding="adjacency")
    for bad in (
        {"n_estimators": 0},
        {"max_depth": 0},
        {"max_features": 1.5},
        {"subsample": 0},
        {"learning_rate": -1},
        {"seed": -1},
        {"n_jobs": 0},
        {"members": True},
    ):
        with pytest.raises(ConfigError):
            TreePredictor(**bad)
    with pytest.raises(ConfigError, match="got 50 architectures but 49 targets"):
        TreePredictor().fit(archs, y[:-1])
    with pytest.raises(ConfigError, match="features have 3 rows for 50 architectures"):
        TreePredictor().fit(archs, y, np.zeros((3, 1)))
    with pytest.raises(ConfigError, match="not an Architecture"):
        TreePredictor().fit([archs[0], "x"], y[:2])


def test_tree_ensemble_refuses_malformed_arrays(tiny_data):
    archs, y = tiny_data
    p = TreePredictor(n_estimators=3).fit(archs, y)
    good = p.ensemble_.arrays()
    n_cols = p.ensemble_.n_columns
    TreeEnsemble.from_arrays(good, n_cols)  # fine
    cyclic = dict(good, left=good["left"].copy())
    inner = np.flatnonzero(cyclic["left"] > 0)[1]
    cyclic["left"][inner] = 0  # a child pointing back at the root
    with pytest.raises(ConfigError, match="after their parent"):
        TreeEnsemble.from_arrays(cyclic, n_cols)
    far = dict(good, feature=np.where(good["left"] >= 0, n_cols + 3, -2).astype(np.int32))
    with pytest.raises(ConfigError, match="split features"):
        TreeEnsemble.from_arrays(far, n_cols)
    with pytest.raises(ConfigError, match="lacks arrays"):
        TreeEnsemble.from_arrays({k: v for k, v in good.items() if k != "value"}, n_cols)
    bad_value = dict(good, value=np.full_like(good["value"], np.nan))
    with pytest.raises(ConfigError, match="non-finite"):
        TreeEnsemble.from_arrays(bad_value, n_cols)


# ------------------------------------------------------------------ proxy predictor


def test_proxy_predictor_learns_the_sign_and_round_trips(cora_split):
    train, y_train, para_train, test, y_test, para_test = cora_split
    rng = np.random.default_rng(0)
    # a proxy that falls as the target rises still ranks correctly
    proxy_train = -y_train + 0.01 * rng.standard_normal(len(y_train))
    proxy_test = -y_test + 0.01 * rng.standard_normal(len(y_test))
    p = ProxyPredictor("neg").fit(train, y_train, {"neg": proxy_train, "para": para_train})
    assert p.slope_ < 0 and not p.log_
    pred = p.predict(test, {"neg": proxy_test})  # other fitted features are not needed
    assert kendall_tau(y_test, pred.mean) > 0.5
    assert np.all(pred.std == p.resid_std_) and p.resid_std_ > 0
    loaded = predictor_from_bytes(p.to_bytes())
    assert isinstance(loaded, ProxyPredictor) and loaded.get_params() == {
        "proxy": "neg",
        "log": None,
    }
    np.testing.assert_array_equal(loaded.predict(test, {"neg": proxy_test}).mean, pred.mean)


def test_proxy_predictor_log_auto_and_exact_line():
    g = nx.DiGraph([("i", "o")])
    nx.set_node_attributes(g, {"i": "input", "o": "output"}, "op")
    archs = [_arch(g, k=i) for i in range(6)]
    flops = np.array([1e3, 1e4, 1e5, 1e6, 1e7, 1e8])
    y = 2.0 + 0.5 * np.log1p(flops)
    p = ProxyPredictor("flops").fit(archs, y, {"flops": flops})
    assert p.log_  # positive and spanning five orders of magnitude
    np.testing.assert_allclose(p.predict(archs, {"flops": flops}).mean, y, atol=1e-9)
    assert p.resid_std_ < 1e-9
    assert not ProxyPredictor("flops", log=False).fit(archs, y, {"flops": flops}).log_
    narrow = ProxyPredictor("f").fit(archs, y, {"f": np.linspace(1, 50, 6)})
    assert not narrow.log_  # spans less than two orders of magnitude
    const = ProxyPredictor("c").fit(archs, y, {"c": np.ones(6)})
    assert const.slope_ == 0 and np.allclose(const.predict(archs, {"c": np.ones(6)}).mean, y.mean())
    # a 2-D array of features names its columns f0, f1, ...
    two = ProxyPredictor("f1").fit(archs, y, np.stack([np.zeros(6), flops], axis=1))
    assert two.log_ and two.slope_ > 0


def test_proxy_predictor_errors(tiny_data):
    archs, y = tiny_data
    feats = {"synflow": np.arange(len(y), dtype=float), "params": np.ones(len(y))}
    with pytest.raises(ConfigError, match=r"needs the feature 'snip'.*\['synflow', 'params'\]"):
        ProxyPredictor("snip").fit(archs, y, feats)
    with pytest.raises(ConfigError, match="needs features at fit"):
        ProxyPredictor("snip").fit(archs, y)
    p = ProxyPredictor("synflow").fit(archs, y, feats)
    with pytest.raises(ConfigError, match="needs features at predict"):
        p.predict(archs)
    with pytest.raises(ConfigError, match=r"the features given are \['params'\]"):
        p.predict(archs, {"params": feats["params"]})
    with pytest.raises(NotFittedError):
        ProxyPredictor("synflow").predict(archs, feats)
    with pytest.raises(ConfigError, match="got 50 architectures but 3 targets"):
        ProxyPredictor("synflow").fit(archs, y[:3], feats)
    with pytest.raises(ConfigError, match=r"proxy \(the name of a feature\) must be a non-empty"):
        ProxyPredictor("")
    with pytest.raises(ConfigError, match=r"log \(or None: decide at fit\) must be True or False"):
        ProxyPredictor("synflow", log="yes")
