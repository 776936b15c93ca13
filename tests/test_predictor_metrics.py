"""Predictor metrics, the learning-curve harness and its plots (fast, no training)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from naslab.core.errors import ConfigError
from naslab.predictors.base import FeatureTable, Prediction, Predictor
from naslab.predictors.evaluation import compare, format_table, learning_curve, summarise
from naslab.predictors.metrics import (
    coverage,
    kendall_tau,
    rank_report,
    rmse,
    spearman,
    top_precision,
)
from naslab.predictors.plots import plot_learning_curve, plot_predicted_vs_actual
from tests.custom_space import TinyMLPSpace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# ------------------------------------------------------------------------ metrics


def test_kendall_tau_hand_computed():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # pairs (1,2) and (1,3) concordant, (2,3) discordant: (2 - 1) / 3
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    # tau-b with a tie in the predictions: 2 / sqrt(3 * 2)
    assert kendall_tau([1, 2, 3], [1, 1, 2]) == pytest.approx(2 / math.sqrt(6))


def test_spearman_hand_computed():
    assert spearman([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # d = (0, 0, 1, 1): 1 - 6 * 2 / (4 * 15)
    assert spearman([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(0.8)


def test_constant_predictions_give_zero_not_nan():
    assert kendall_tau([1, 2, 3], [5, 5, 5]) == 0.0
    assert spearman([1, 2, 3], [5, 5, 5]) == 0.0
    assert kendall_tau([7, 7, 7], [1, 2, 3]) == 0.0


def test_top_precision_constructed_case():
    y = np.arange(10.0)  # truly best: 9, then 8
    pred = np.zeros(10)
    pred[9], pred[3] = 5.0, 4.0  # predicted top 2: {9, 3}; one of them truly top 2
    assert top_precision(y, pred, fraction=0.2) == pytest.approx(0.5)
    assert top_precision(y, y, fraction=0.2) == 1.0
    assert top_precision(y, -y, fraction=0.2) == 0.0
    assert top_precision(y, y, fraction=1.0) == 1.0
    # at least one architecture is selected: 0.1 * 5 rounds down to 0 -> k = 1
    assert top_precision([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], fraction=0.1) == 1.0
    assert top_precision([1, 2, 3, 4, 5], [5, 4, 3, 2, 1], fraction=0.1) == 0.0


def test_top_precision_ties_are_deterministic():
    # tied predictions: the one given first is selected
    assert top_precision([0, 1, 3, 2], [0, 0, 1, 1], fraction=0.25) == 1.0
    assert top_precision([0, 1, 2, 3], [0, 0, 1, 1], fraction=0.25) == 0.0
    # tied true values at the boundary: either tied architecture counts as truly top
    assert top_precision([5, 5, 1, 0], [0, 3, 2, 1], fraction=0.25) == 1.0
    assert top_precision([5, 5, 1, 0], [3, 0, 2, 1], fraction=0.25) == 1.0


def test_coverage_constructed_cases():
    y = [0.0, 0.0, 0.0, 0.0]
    mean = [0.5, 1.5, -0.9, 3.0]
    std = [1.0, 1.0, 1.0, 1.0]
    assert coverage(y, mean, std, k=1.0) == pytest.approx(0.5)
    assert coverage(y, mean, std, k=2.0) == pytest.approx(0.75)
    assert coverage(y, mean, std, k=3.0) == pytest.approx(1.0)
    # std 0 covers only an exact prediction
    assert coverage([1.0, 2.0], [1.0, 2.1], [0.0, 0.0]) == pytest.approx(0.5)
    # on the boundary counts as covered
    assert coverage([1.0], [0.0], [0.5], k=2) == 1.0


def test_rank_report_keys_and_values():
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    report = rank_report(Prediction(y + 0.1, np.full(5, 0.2)), y)
    assert set(report) == {
        "kendall_tau", "spearman", "top10_precision", "coverage_1sigma",
        "coverage_2sigma", "rmse", "n",
    }
    assert report["kendall_tau"] == pytest.approx(1.0)
    assert report["spearman"] == pytest.approx(1.0)
    assert report["top10_precision"] == 1.0
    assert report["coverage_1sigma"] == 1.0 and report["coverage_2sigma"] == 1.0
    assert report["rmse"] == pytest.approx(0.1)
    assert report["n"] == 5
    assert rmse([0, 0], [3, 4]) == pytest.approx(math.sqrt(12.5))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: kendall_tau([1, 2, 3], [1, 2]), "y_true has 3, y_pred has 2"),
        (lambda: spearman([1], [1]), "at least 2 values"),
        (lambda: kendall_tau([1, float("nan"), 3], [1, 2, 3]), r"y_true\[1\] is nan"),
        (lambda: top_precision([1, 2], [1, float("inf")]), r"y_pred\[1\] is inf"),
        (lambda: top_precision([1, 2], [1, 2], fraction=0.0), "fraction must be .* > 0 and <= 1"),
        (lambda: top_precision([1, 2], [1, 2], fraction=1.5), "fraction must be .* > 0 and <= 1"),
        (lambda: coverage([1, 2], [1, 2], [1, -1]), r"std must be >= 0; std\[1\] is -1"),
        (lambda: coverage([1, 2], [1, 2], [1, 1], k=0), r"k \(standard deviations\) must .* > 0"),
        (lambda: coverage([1, 2], [1, 2, 3], [1, 1]), "mean has 3"),
        (lambda: kendall_tau([[1, 2], [3, 4]], [1, 2]), "one-dimensional"),
        (lambda: kendall_tau("ab", [1, 2]), "sequence of numbers"),
        (lambda: rank_report((np.zeros(2), np.ones(2)), [1, 2]), "must be a Prediction"),
        (lambda: rank_report(Prediction(np.zeros(3), np.ones(3)), [1, 2]), "differ in length"),
    ],
)
def test_metric_input_errors(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


# ------------------------------------------------------------------- learning curve


class ColumnPredictor(Predictor):
    """Test double: predicts one feature column and logs which rows it saw."""

    kind = "test_column"

    def __init__(self, column: str = "score", std: float = 0.5, log: list | None = None):
        self.column = column
        self.std = std
        self.log = log
        self.n_train_: int | None = None

    def _table(self, archs: Sequence[Any], features: Any) -> FeatureTable:
        assert features is None or isinstance(features, Mapping)
        return FeatureTable.coerce(features, len(archs))

    def fit(self, archs, targets, features=None):
        table = self._table(archs, features)
        assert len(targets) == len(archs)
        self.names_ = table.names
        self.n_train_ = len(archs)
        if self.log is not None and "idx" in table.names:
            self.log.append(("fit", tuple(table.values[:, table.names.index("idx")].astype(int))))
        return self

    def predict(self, archs, features=None):
        self._check_fitted()
        values = self._table(archs, features).aligned(self.names_)
        if self.log is not None and "idx" in self.names_:
            idx = values[:, self.names_.index("idx")].astype(int)
            self.log.append(("predict", tuple(idx)))
        mean = values[:, self.names_.index(self.column)]
        return Prediction(mean, np.full(len(archs), self.std))

    def get_params(self) -> dict[str, Any]:
        return {"column": self.column, "std": self.std}

    def _state(self):
        return {}, {"names": list(self.names_), "n_train": self.n_train_}

    def _load_state(self, arrays, meta):
        self.names_ = tuple(meta["names"])
        self.n_train_ = meta["n_train"]


N = 40


@pytest.fixture(scope="module")
def data():
    """40 TinyMLPSpace architectures, targets, and features idx / score / const."""
    rng = np.random.default_rng(0)
    space = TinyMLPSpace()
    archs = [space.sample(rng) for _ in range(N)]
    targets = rng.normal(size=N)
    features = {
        "idx": np.arange(N, dtype=float),
        "score": targets + 0.3 * rng.normal(size=N),
        "const": np.ones(N),
    }
    return archs, targets, features


def _run(data, log, **kwargs):
    archs, targets, features = data
    kwargs.setdefault("sizes", (5, 10, 20))
    kwargs.setdefault("n_splits", 3)
    return learning_curve(lambda: ColumnPredictor(log=log), archs, targets,
                          features=features, **kwargs)


def _splits(log: list) -> list[tuple[set[int], set[int]]]:
    fits = [set(v) for kind, v in log if kind == "fit"]
    predicts = [set(v) for kind, v in log if kind == "predict"]
    assert len(fits) == len(predicts)
    return list(zip(fits, predicts))


def test_learning_curve_rows(data):
    log: list = []
    rows = _run(data, log)
    assert len(rows) == 9
    assert [(r["split"], r["size"]) for r in rows] == [
        (s, n) for s in range(3) for n in (5, 10, 20)
    ]
    for r in rows:
        assert r["n"] == N - r["size"]
        assert r["fit_seconds"] >= 0 and r["predict_seconds"] >= 0
        assert 0.3 < r["kendall_tau"] <= 1.0  # the score column is informative
        assert "predictor" not in r
    for (train, test), r in zip(_splits(log), rows):
        assert len(train) == r["size"] and len(test) == N - r["size"]
        assert not train & test and len(train | test) == N


def test_learning_curve_same_seed_same_splits(data):
    first: list = []
    second: list = []
    other: list = []
    _run(data, first, seed=7)
    _run(data, second, seed=7)
    _run(data, other, seed=8)
    assert first == second
    assert first != other
    # within a split the training sets are nested
    splits = _splits(first)
    assert splits[0][0] < splits[1][0] < splits[2][0]
    # splits differ from one another
    assert splits[0][0] != splits[3][0]


def test_learning_curve_test_size_and_array_features(data):
    archs, targets, features = data
    log: list = []
    rows = _run(data, log, test_size=8, sizes=(5, 30))
    assert all(r["n"] == 8 for r in rows)
    splits = _splits(log)
    for train, test in splits:
        assert len(test) == 8 and not train & test
    # the same test set for every size of a split
    assert splits[0][1] == splits[1][1]

    matrix = np.column_stack([features["idx"], features["score"]])
    array_rows = learning_curve(lambda: ColumnPredictor(column="f1"), archs, targets,
                                sizes=(5,), n_splits=2, features=matrix, name="array")
    by_mapping = _run(data, None, sizes=(5,), n_splits=2)
    assert [r["kendall_tau"] for r in array_rows] == [r["kendall_tau"] for r in by_mapping]
    assert all(r["predictor"] == "array" for r in array_rows)


def test_constant_predictor_scores_zero_tau(data):
    archs, targets, features = data
    rows = learning_curve(lambda: ColumnPredictor(column="const"), archs, targets,
                          sizes=(10,), n_splits=2, features=features)
    assert all(r["kendall_tau"] == 0.0 and r["spearman"] == 0.0 for r in rows)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sizes": (10, N)}, rf"sizes \[{N}\] are too large for {N} architectures"),
        ({"sizes": (N - 1,)}, "at least 2 for testing"),
        ({"sizes": (30,), "test_size": 15}, "a test set of 15"),
        ({"sizes": ()}, "sizes is empty"),
        ({"sizes": (1,)}, "a training-set size must be an integer >= 2, got 1"),
        ({"sizes": (2.5,)}, "must be an integer"),
        ({"n_splits": 0}, "n_splits must be an integer >= 1, got 0"),
        ({"test_size": N}, "test_size"),
    ],
)
def test_learning_curve_refuses_bad_settings(data, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        _run(data, None, **kwargs)


def test_learning_curve_refuses_bad_inputs(data):
    archs, targets, features = data
    with pytest.raises(ConfigError, match="must return a Predictor"):
        learning_curve(lambda: object(), archs, targets, sizes=(5,), n_splits=1)
    with pytest.raises(ConfigError, match="got 40 architectures but 39 targets"):
        learning_curve(ColumnPredictor, archs, targets[:-1], sizes=(5,))
    with pytest.raises(ConfigError, match="features have 3 rows"):
        learning_curve(ColumnPredictor, archs, targets, sizes=(5,), features=np.ones((3, 2)))


def test_summarise_and_format_table(data):
    archs, targets, features = data
    makers = {
        "score": lambda: ColumnPredictor(column="score"),
        "const": lambda: ColumnPredictor(column="const"),
    }
    rows = compare(makers, archs, targets, sizes=(5, 20), n_splits=3, features=features)
    assert len(rows) == 12
    summary = summarise(rows)
    assert [(e["predictor"], e["size"]) for e in summary] == [
        ("score", 5), ("score", 20), ("const", 5), ("const", 20)
    ]
    taus = [r["kendall_tau"] for r in rows if r["predictor"] == "score" and r["size"] == 5]
    first = summary[0]
    assert first["n_splits"] == 3
    assert first["kendall_tau_mean"] == pytest.approx(np.mean(taus))
    assert first["kendall_tau_std"] == pytest.approx(np.std(taus, ddof=1))
    assert "split_mean" not in first and "size_mean" not in first
    assert {"rmse_mean", "fit_seconds_std", "n_mean", "coverage_2sigma_mean"} <= set(first)
    assert summary[2]["kendall_tau_mean"] == 0.0

    table = format_table(summary)
    lines = table.splitlines()
    assert lines[0].startswith("kendall_tau")
    assert lines[1].split() == ["predictor", "n=5", "n=20"]
    assert lines[3].startswith("score") and lines[4].startswith("const")
    assert f"{first['kendall_tau_mean']:.3f}±{first['kendall_tau_std']:.3f}" in lines[3]
    assert "0.000±0.000" in lines[4]
    assert "rmse" in format_table(summary, metric="rmse", digits=2)

    # rows without a predictor label are grouped by size only
    plain = summarise(learning_curve(lambda: ColumnPredictor(), archs, targets, sizes=(5, 20),
                                     n_splits=2, features=features))
    assert [(e["size"], e["n_splits"]) for e in plain] == [(5, 2), (20, 2)]
    assert "predictor" not in plain[0]
    assert format_table(plain).splitlines()[3].startswith("all")
    single = summarise([{"size": 5, "split": 0, "kendall_tau": 0.5}])
    assert single[0]["kendall_tau_std"] == 0.0


def test_summary_errors():
    with pytest.raises(ConfigError, match="label every row or none"):
        summarise([{"predictor": "a", "size": 5, "x": 1.0}, {"size": 5, "x": 2.0}])
    summary = summarise([{"size": 5, "split": 0, "kendall_tau": 0.5}])
    with pytest.raises(ConfigError, match="no metric 'spearman'; it has: kendall_tau"):
        format_table(summary, metric="spearman")
    with pytest.raises(ConfigError, match="summary is empty"):
        format_table([])
    assert summarise([]) == []


# ------------------------------------------------------------------------- plots


def test_plot_predicted_vs_actual(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.normal(size=30)
    prediction = Prediction(y + 0.2 * rng.normal(size=30), np.full(30, 0.2))
    path = plot_predicted_vs_actual(y, prediction, tmp_path / "pva.png", title="test")
    assert path == tmp_path / "pva.png"
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    # no std, no suffix: a PNG with .png added; a nested folder is created
    path = plot_predicted_vs_actual(y, Prediction(y, np.zeros(30)), tmp_path / "sub" / "exact")
    assert path.suffix == ".png" and path.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ConfigError, match="cannot write a figure as '.xyz'"):
        plot_predicted_vs_actual(y, prediction, tmp_path / "pva.xyz")
    with pytest.raises(ConfigError, match="differ in length"):
        plot_predicted_vs_actual(y[:5], prediction, tmp_path / "bad.png")


def test_plot_learning_curve(tmp_path, data):
    archs, targets, features = data
    rows = compare(
        {"score": lambda: ColumnPredictor(), "const": lambda: ColumnPredictor(column="const")},
        archs, targets, sizes=(5, 10, 20), n_splits=2, features=features,
    )
    path = plot_learning_curve(summarise(rows), tmp_path / "curve.png", title="tau")
    data_bytes = path.read_bytes()
    assert data_bytes.startswith(PNG_MAGIC) and len(data_bytes) > 1000
    single = summarise([{"size": 5, "split": 0, "top10_precision": 0.5}])
    path = plot_learning_curve(single, tmp_path / "one.png", metric="top10_precision")
    assert path.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ConfigError, match="no metric 'kendall_tau'"):
        plot_learning_curve(single, tmp_path / "bad.png")
