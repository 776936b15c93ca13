"""Tests of tasks, cost measurements and the training evaluator."""

from __future__ import annotations

import pickle
import random
from collections.abc import Mapping
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from naslab.core.errors import (
    ConfigError,
    EvaluationError,
    InvalidArchitectureError,
    UnknownNameError,
)
from naslab.search_spaces.base import SearchSpace
from naslab.search_spaces.decisions import Categorical, Integer
from naslab.workers.evaluator import NullReporter, Result
from naslab.workers.measure import count_flops, count_params, measure_latency_ms
from naslab.workers.task import (
    TASKS,
    LoaderTask,
    TensorTask,
    cifar10_task,
    digits_split,
    digits_task,
    get_task,
)
from naslab.workers.training import TrainingEvaluator

# -- a tiny search space for the tests ------------------------------------------------


class _NaNActivation(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


_ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "nan": _NaNActivation}


class TinyConvSpace(SearchSpace):
    """conv(width) -> BN -> act -> conv(2*width, stride 2) -> BN -> act -> pool -> linear."""

    name = "tinyconv"

    def decisions(self):
        return [Integer("width", 4, 16, 4), Categorical("act", tuple(_ACTS))]

    def to_graph(self, decisions):
        g = nx.DiGraph()
        g.add_node("in", op="input")
        g.add_node("c1", op=f"conv{decisions['width']}-{decisions['act']}")
        g.add_node("c2", op=f"conv{2 * decisions['width']}-{decisions['act']}")
        g.add_node("out", op="output")
        g.add_edges_from([("in", "c1"), ("c1", "c2"), ("c2", "out")])
        return g

    def build(self, arch, task):
        w = arch.decisions["width"]
        act = _ACTS[arch.decisions["act"]]
        c = task.input_shape[0]
        return nn.Sequential(
            nn.Conv2d(c, w, 3, padding=1),
            nn.BatchNorm2d(w),
            act(),
            nn.Conv2d(w, 2 * w, 3, padding=1, stride=2),
            nn.BatchNorm2d(2 * w),
            act(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * w, task.num_classes),
        )


class WrongOutputSpace(TinyConvSpace):
    name = "wrongout"

    def build(self, arch, task):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))


class RecordingReporter:
    def __init__(self) -> None:
        self.reports: list[tuple[int, dict[str, float]]] = []

    def report(self, step: int, metrics: Mapping[str, float]) -> None:
        self.reports.append((step, dict(metrics)))


@pytest.fixture(scope="module")
def digits():
    return digits_task(0)


@pytest.fixture(scope="module")
def space():
    return TinyConvSpace()


@pytest.fixture(scope="module")
def arch(space):
    return space.from_decisions(width=8, act="relu")


@pytest.fixture(scope="module")
def trained(digits, space, arch):
    """One 5-epoch evaluation shared by several tests, with its reports."""
    reporter = RecordingReporter()
    result = TrainingEvaluator(digits).evaluate(space, arch, 5, 0, reporter)
    return result, reporter.reports


# -- training evaluator ---------------------------------------------------------------


def test_training_learns_digits(trained):
    result, _ = trained
    assert isinstance(result, Result)
    # observed for seeds 0..9: val 0.89-0.94, test 0.91-0.95, train loss 0.29-0.38;
    # chance is 0.1
    assert result.metrics["val_accuracy"] > 0.85
    assert result.metrics["test_accuracy"] > 0.85
    assert set(result.metrics) == {"val_accuracy", "test_accuracy", "val_loss", "train_loss"}
    assert result.metrics["train_loss"] < 0.6


def test_reporter_gets_one_report_per_epoch(trained):
    result, reports = trained
    assert [step for step, _ in reports] == [1, 2, 3, 4, 5]
    for _, metrics in reports:
        assert set(metrics) == {"train_loss", "val_accuracy", "val_loss"}
        assert all(isinstance(v, float) for v in metrics.values())
    last = reports[-1][1]
    assert last["val_accuracy"] == result.metrics["val_accuracy"]
    assert last["train_loss"] == result.metrics["train_loss"]
    assert reports[-1][1]["train_loss"] < reports[0][1]["train_loss"]
    assert [h["epoch"] for h in result.extra["history"]] == [1, 2, 3, 4, 5]


def test_result_fields(trained, digits, space, arch):
    result, _ = trained
    fresh = space.build(arch, digits)
    assert result.params == count_params(fresh) > 0
    assert result.flops == count_flops(fresh, digits.sample_batch(1)) > 0
    assert result.latency_ms is not None and result.latency_ms > 0
    assert result.train_seconds > 0
    assert result.epochs == 5
    assert result.weights is not None
    assert set(result.weights) == set(fresh.state_dict())
    for value in result.weights.values():
        assert value.device.type == "cpu"
        assert not value.requires_grad
    fresh.load_state_dict(result.weights)  # loadable as a state dict


def test_same_seed_is_deterministic_and_other_seed_differs(digits, space, arch, trained):
    first, first_reports = trained
    ev = TrainingEvaluator(digits)
    reporter = RecordingReporter()
    again = ev.evaluate(space, arch, 5, 0, reporter)
    assert again.metrics == first.metrics
    assert reporter.reports == first_reports
    assert all(torch.equal(first.weights[k], again.weights[k]) for k in first.weights)
    other = ev.evaluate(space, arch, 5, 1, NullReporter())
    assert any(not torch.equal(first.weights[k], other.weights[k]) for k in first.weights)


def test_evaluate_leaves_numpy_and_random_state_alone(digits, space, arch):
    np.random.seed(123)
    random.seed(123)
    ev = TrainingEvaluator(digits, keep_weights=False, latency_repeats=1)
    result = ev.evaluate(space, arch, 1, 0, NullReporter())
    assert result.weights is None
    assert np.random.rand() == np.random.RandomState(123).rand()
    assert random.random() == random.Random(123).random()


def test_divergence_raises(digits, space, arch):
    with pytest.raises(EvaluationError, match=r"training diverged: loss is (nan|inf) at epoch \d"):
        TrainingEvaluator(digits, lr=1e6).evaluate(space, arch, 3, 0, NullReporter())
    nan_arch = space.from_decisions(width=4, act="nan")
    with pytest.raises(EvaluationError, match="training diverged: loss is nan at epoch 1"):
        TrainingEvaluator(digits).evaluate(space, nan_arch, 2, 0, NullReporter())


def test_wrong_output_shape_raises(digits):
    sp = WrongOutputSpace()
    arch = sp.from_decisions(width=4, act="relu")
    with pytest.raises(EvaluationError, match=r"output .*\(32, 3\).*expected .*\(32, 10\)"):
        TrainingEvaluator(digits).evaluate(sp, arch, 1, 0, NullReporter())


def test_architecture_of_another_space_is_refused(digits, arch):
    with pytest.raises(InvalidArchitectureError, match="tinyconv"):
        TrainingEvaluator(digits).evaluate(WrongOutputSpace(), arch, 1, 0, NullReporter())


def test_reporter_exceptions_pass_through(digits, space, arch):
    class Stop(Exception):
        pass

    class Pruner:
        def report(self, step, metrics):
            if step == 2:
                raise Stop

    with pytest.raises(Stop):
        TrainingEvaluator(digits).evaluate(space, arch, 4, 0, Pruner())


@pytest.mark.parametrize("fidelity", [0, -1, True, 2.0])
def test_fidelity_must_be_positive_int(digits, space, arch, fidelity):
    with pytest.raises(ConfigError, match="fidelity"):
        TrainingEvaluator(digits).evaluate(space, arch, fidelity, 0, NullReporter())


def test_evaluator_settings_are_checked():
    task = digits_task(0)
    with pytest.raises(UnknownNameError, match="sgd"):
        TrainingEvaluator(task, optimizer="rmsprop")
    with pytest.raises(ConfigError, match="lr"):
        TrainingEvaluator(task, lr=0)
    with pytest.raises(ConfigError, match="batch_size"):
        TrainingEvaluator(task, batch_size=0)
    with pytest.raises(UnknownNameError, match="cosine"):
        TrainingEvaluator(task, schedule="step")


def test_key_reflects_task_and_settings(digits):
    base = TrainingEvaluator(digits)
    assert "digits(seed=0)" in base.key
    assert base.key == TrainingEvaluator(digits_task(0)).key
    assert base.key == TrainingEvaluator("digits").key
    assert base.key == TrainingEvaluator(digits, keep_weights=False).key
    others = [
        TrainingEvaluator(digits_task(1)),
        TrainingEvaluator(digits, lr=0.05),
        TrainingEvaluator(digits, batch_size=64),
        TrainingEvaluator(digits, optimizer="adam"),
        TrainingEvaluator(digits, weight_decay=0.0),
        TrainingEvaluator(digits, schedule="constant"),
        TrainingEvaluator(digits, latency_batch=8),
    ]
    assert len({base.key, *(e.key for e in others)}) == len(others) + 1


def test_adam_and_constant_schedule_train(digits, space, arch):
    ev = TrainingEvaluator(digits, optimizer="adam", schedule="constant", keep_weights=False)
    result = ev.evaluate(space, arch, 2, 0, NullReporter())
    assert result.metrics["val_accuracy"] > 0.3


def test_evaluator_pickles(digits, space, arch):
    ev = TrainingEvaluator(digits, latency_repeats=1)
    ev.evaluate(space, arch, 1, 0, NullReporter())
    clone = pickle.loads(pickle.dumps(ev))
    assert clone.key == ev.key
    a = ev.evaluate(space, arch, 1, 3, NullReporter())
    b = clone.evaluate(space, arch, 1, 3, NullReporter())
    assert a.metrics == b.metrics


def test_loader_task_trains_deterministically(digits, space, arch):
    def loader(split, **kw):
        return DataLoader(TensorDataset(*digits.tensors(split)), batch_size=100, **kw)

    task = LoaderTask(
        "digits-loaders",
        loader("train", shuffle=True),
        loader("val"),
        loader("test"),
        input_shape=(1, 8, 8),
        num_classes=10,
    )
    assert task.key == "digits-loaders"
    ev = TrainingEvaluator(task, keep_weights=False, latency_repeats=1)
    a = ev.evaluate(space, arch, 3, 0, NullReporter())
    b = ev.evaluate(space, arch, 3, 0, NullReporter())
    assert a.metrics == b.metrics
    assert a.metrics["val_accuracy"] > 0.5
    # the training loader is rebuilt with the evaluator's batch size and seed
    train, val, _ = task.loaders(16, 5)
    assert train.batch_size == 16
    order = [y.tolist() for _, y in task.loaders(16, 5)[0]]
    assert order == [y.tolist() for _, y in train]
    assert val is task._loaders[1]
    assert task.sample_batch(3).shape == (3, 1, 8, 8)
    assert task.sample_batch(500).shape == (500, 1, 8, 8)  # more than val holds


# -- measurements -------------------------------------------------------------------


def test_count_flops_linear_and_conv():
    assert count_flops(nn.Linear(10, 5), torch.randn(7, 10)) == 2 * 10 * 5  # torch: no bias
    conv = nn.Conv2d(1, 8, 3, padding=1)
    assert count_flops(conv, torch.randn(4, 1, 8, 8)) == 2 * 9 * 8 * 64
    with pytest.raises(ConfigError):
        count_flops(conv, torch.randn(0, 1, 8, 8))


def test_count_params_only_trainable():
    model = nn.Sequential(nn.Linear(10, 5), nn.Linear(5, 2))
    assert count_params(model) == 55 + 12
    model[0].weight.requires_grad_(False)
    assert count_params(model) == 5 + 12


def test_measurements_restore_modes_and_state():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    model.train()
    model[2].eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 4)
    assert measure_latency_ms(model, x, repeats=3, warmup=1) > 0
    count_flops(model, x)
    assert [m.training for m in model] == [True, True, False]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ConfigError, match="repeats"):
        measure_latency_ms(model, x, repeats=0)


# -- tasks --------------------------------------------------------------------------


def test_digits_task_shape_and_standardisation(digits):
    assert digits.input_shape == (1, 8, 8)
    assert digits.num_classes == 10
    assert digits.key == "digits(seed=0)"
    assert digits.metric == "accuracy"
    assert len(digits) == 1797
    x, y = digits.tensors("train")
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
    assert digits.sample_batch(5).shape == (5, 1, 8, 8)
    assert digits.sample_batch(1000).shape == (1000, 1, 8, 8)  # more than val holds


def test_digits_split_stratified_disjoint_deterministic():
    split = digits_split(0)
    sizes = {s: len(i) for s, i in split.items()}
    assert sum(sizes.values()) == 1797
    assert sizes == {"train": 1078, "val": 359, "test": 360}  # 60/20/20
    union = np.concatenate(list(split.values()))
    assert len(np.unique(union)) == 1797  # disjoint and complete
    from sklearn.datasets import load_digits

    y = load_digits().target
    overall = np.bincount(y, minlength=10) / len(y)
    for idx in split.values():
        frac = np.bincount(y[idx], minlength=10) / len(idx)
        assert np.abs(frac - overall).max() < 0.01  # stratified
    again = digits_split(0)
    assert all(np.array_equal(split[s], again[s]) for s in split)
    other = digits_split(1)
    assert not np.array_equal(split["train"], other["train"])
    t0, t0b, t1 = digits_task(0), digits_task(0), digits_task(1)
    assert torch.equal(t0.tensors("val")[0], t0b.tensors("val")[0])
    assert t1.key == "digits(seed=1)"


def test_tensor_task_loaders(digits):
    train, val, test = digits.loaders(64, 7)
    first = torch.cat([y for _, y in train])
    second = torch.cat([y for _, y in digits.loaders(64, 7)[0]])
    assert torch.equal(first, second)  # same seed, same order
    assert not torch.equal(first, torch.cat([y for _, y in train]))  # a new order per epoch
    xb, yb = next(iter(train))
    assert xb.shape == (64, 1, 8, 8) and yb.shape == (64,)
    assert not torch.equal(first, digits.tensors("train")[1])  # shuffled
    assert torch.equal(torch.cat([y for _, y in val]), digits.tensors("val")[1])  # in order
    assert sum(len(y) for _, y in test) == len(digits.tensors("test")[1])


def _split(n=10, shape=(3,), classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.arange(n) % classes


def test_tensor_task_accepts_tensors_and_numpy():
    x, y = _split()
    task = TensorTask("toy", (x, y), (x.numpy(), y.numpy()), (x.double(), y.int()))
    assert task.input_shape == (3,)
    assert task.num_classes == 3
    assert task.key.startswith("toy(sha256=")
    assert task.key == TensorTask("toy", (x, y), (x, y), (x, y)).key
    assert task.key != TensorTask("toy", (x + 1, y), (x, y), (x, y)).key
    assert TensorTask("toy", (x, y), (x, y), (x, y), num_classes=5).num_classes == 5
    assert TensorTask("toy", (x, y), (x, y), (x, y), key="mine").key == "mine"


@pytest.mark.parametrize(
    ("train", "match"),
    [
        ((torch.ones(4, 3, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)), "floating"),
        ((torch.ones(4, 3), torch.zeros(4)), "integer class indices"),
        ((torch.ones(4, 3), torch.zeros(4, 2, dtype=torch.long)), "1-D"),
        ((torch.ones(4, 3), torch.zeros(5, dtype=torch.long)), "4 inputs but 5 labels"),
        ((torch.ones(4), torch.zeros(4, dtype=torch.long)), "n_samples"),
        ((torch.ones(4, 5), torch.zeros(4, dtype=torch.long)), "per-sample shape"),
        ((torch.ones(0, 3), torch.zeros(0, dtype=torch.long)), "empty"),
        ((torch.ones(4, 3),), "pair"),
        (([[1.0]], [0]), "torch.Tensor or numpy array"),
        ((torch.full((4, 3), float("nan")), torch.zeros(4, dtype=torch.long)), "NaN"),
        ((torch.ones(4, 3), -torch.ones(4, dtype=torch.long)), ">= 0"),
    ],
)
def test_tensor_task_validation(train, match):
    good = _split()
    with pytest.raises(ConfigError, match=match):
        TensorTask("toy", train, good, good)


def test_tensor_task_label_range():
    x, y = _split(classes=3)
    with pytest.raises(ConfigError, match=r"num_classes=2"):
        TensorTask("toy", (x, y), (x, y), (x, y), num_classes=2)


def test_tensor_task_trains_on_flat_features():
    class MLPSpace(TinyConvSpace):
        name = "mlp"

        def build(self, arch, task):
            return nn.Sequential(nn.Linear(task.input_shape[0], 8), nn.ReLU(), nn.Linear(8, 3))

    x, y = _split(n=33)  # 33 % 32 == 1: the trailing single-sample batch is dropped
    task = TensorTask("toy", (x, y), (x, y), (x, y))
    sp = MLPSpace()
    result = TrainingEvaluator(task).evaluate(
        sp, sp.from_decisions(width=4, act="relu"), 2, 0, NullReporter()
    )
    assert result.epochs == 2
    assert sum(len(b) for b, _ in task.loaders(32, 0)[0]) == 32


# -- CIFAR-10 from a local folder -----------------------------------------------------


def _write_fake_cifar(folder: Path, per_batch: int = 20) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {
            b"batch_label": name.encode(),
            b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
            b"labels": [int(i % 10) for i in range(per_batch)],
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh)


def test_cifar10_from_fake_folder(tmp_path):
    _write_fake_cifar(tmp_path / "cifar-10-batches-py")
    task = cifar10_task(tmp_path, val_size=20)
    assert task.input_shape == (3, 32, 32)
    assert task.num_classes == 10
    assert task.key == "cifar10(seed=0,val=20)"
    sizes = {s: len(task.tensors(s)[1]) for s in ("train", "val", "test")}
    assert sizes == {"train": 80, "val": 20, "test": 20}
    assert sorted(task.tensors("val")[1].tolist()) == sorted(list(range(10)) * 2)  # stratified
    x = task.tensors("train")[0]
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    # the folder itself works as root too, and through the registry
    same = get_task("cifar10", root=str(tmp_path / "cifar-10-batches-py"), val_size=20)
    assert torch.equal(same.tensors("test")[0], task.tensors("test")[0])


def test_cifar10_missing_files_explains(tmp_path):
    with pytest.raises(ConfigError, match=r"data_batch_1.*cifar-10-python\.tar\.gz"):
        cifar10_task(tmp_path)
    bad = tmp_path / "bad"
    _write_fake_cifar(bad)
    with open(bad / "test_batch", "wb") as fh:
        pickle.dump({b"nope": 1}, fh)
    with pytest.raises(ConfigError, match="not a CIFAR-10 batch"):
        cifar10_task(bad, val_size=20)


# -- registry -----------------------------------------------------------------------


def test_get_task():
    assert set(TASKS) >= {"digits", "cifar10"}
    assert get_task("digits").key == "digits(seed=0)"
    assert get_task("digits", split_seed=2).key == "digits(seed=2)"
    with pytest.raises(UnknownNameError) as info:
        get_task("mnist")
    assert "cifar10" in str(info.value) and "digits" in str(info.value)
    with pytest.raises(ConfigError, match="split_seed"):
        get_task("digits", seed=1)
