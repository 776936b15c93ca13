"""Zero-cost proxies (naslab.predictors.proxies) on real networks and hand-checked models."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn

from naslab.core.errors import ConfigError, UnknownNameError
from naslab.predictors.proxies import (
    JACOB_COV_K,
    PROXIES,
    SYNFLOW_LOG_MIN,
    architecture_proxies,
    compute_proxies,
    jacob_cov_floor,
    proxy_batch,
)
from naslab.search_spaces.chain import ChainSpace
from naslab.search_spaces.nb201 import NB201Space
from naslab.workers.task import digits_task


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """These networks are tiny: one intra-op thread avoids oversubscribing a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def task():
    return digits_task()


@pytest.fixture(scope="module")
def batch(task):
    return proxy_batch(task, 32, 0)


def _cell(space: NB201Space, op: str):
    return space.from_decisions({f"e{i}_{j}": op for j in range(1, 4) for i in range(j)})


# -- the minibatch ----------------------------------------------------------------


def test_proxy_batch_is_a_deterministic_training_batch(task):
    x1, y1 = proxy_batch(task, 64, 3)
    x2, y2 = proxy_batch(task, 64, 3)
    x3, _ = proxy_batch(task, 64, 4)
    assert x1.shape == (64, 1, 8, 8) and y1.shape == (64,) and y1.dtype == torch.int64
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    train_x, train_y = task.tensors("train")
    match = (x1.flatten(1)[:, None, :] == train_x.flatten(1)[None]).all(-1)
    assert bool(match.any(1).all())  # every sample is a training sample
    rows = match.float().argmax(1)
    assert torch.equal(train_y[rows], y1)


def test_proxy_batch_refuses_bad_sizes(task):
    with pytest.raises(ConfigError, match="batch_size"):
        proxy_batch(task, 0)
    with pytest.raises(ConfigError, match="seed"):
        proxy_batch(task, 8, -1)


# -- real search spaces -------------------------------------------------------------


@pytest.mark.parametrize(
    "space", [NB201Space(channels=4), ChainSpace(max_depth=3)], ids=["nb201", "chain"]
)
def test_all_proxies_finite_and_deterministic(space, task):
    rng = np.random.default_rng(0)
    for _ in range(3):
        arch = space.sample(rng)
        first = architecture_proxies(space, arch, task, batch_size=32)
        assert list(first) == list(PROXIES)
        assert all(isinstance(v, float) and math.isfinite(v) for v in first.values()), first
        assert first["params"] > 0 and first["flops"] > 0
        assert architecture_proxies(space, arch, task, batch_size=32) == first


def test_architecture_proxies_leaves_the_global_rng_alone(task):
    space = NB201Space(channels=4)
    arch = space.sample(np.random.default_rng(1))
    state = torch.get_rng_state()
    architecture_proxies(space, arch, task, batch_size=16)
    assert torch.equal(torch.get_rng_state(), state)


def test_seed_changes_the_network_and_batch(task):
    space = NB201Space(channels=4)
    arch = _cell(space, "nor_conv_3x3")
    a = architecture_proxies(space, arch, task, ("synflow", "snip"), batch_size=16, seed=0)
    b = architecture_proxies(space, arch, task, ("synflow", "snip"), batch_size=16, seed=1)
    assert a["synflow"] != b["synflow"] and a["snip"] != b["snip"]


def test_caller_model_is_left_unchanged(task, batch):
    space = NB201Space(channels=4)
    arch = space.sample(np.random.default_rng(2))
    torch.manual_seed(0)
    model = space.build(arch, task)
    model.train()
    model.head.eval()  # mixed modes must survive as they are
    model.stem[0].weight.requires_grad_(False)
    model.classifier.weight.grad = torch.ones_like(model.classifier.weight)
    state = copy.deepcopy(model.state_dict())
    modes = {n: m.training for n, m in model.named_modules()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    x, y = batch
    x_before = x.clone()
    values = compute_proxies(model, x, y, loss_fn=task.loss)
    assert all(math.isfinite(v) for v in values.values())
    after = model.state_dict()
    assert list(after) == list(state)
    assert all(torch.equal(after[k], state[k]) for k in state)
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    for n, p in model.named_parameters():
        assert (p.grad is None) == (grads[n] is None)
        if p.grad is not None:
            assert torch.equal(p.grad, grads[n])
    assert torch.equal(x, x_before) and not x.requires_grad


def test_convolutions_score_above_skip_and_empty_cells(task):
    space = NB201Space(channels=4)
    conv = architecture_proxies(space, _cell(space, "nor_conv_3x3"), task, batch_size=32)
    skip = architecture_proxies(space, _cell(space, "skip_connect"), task, batch_size=32)
    empty = architecture_proxies(space, _cell(space, "none"), task, batch_size=32)
    for name in ("params", "flops", "synflow", "snip"):
        assert conv[name] > skip[name], name
    # A network whose output ignores its input: the documented degenerate values.
    assert empty["synflow"] == SYNFLOW_LOG_MIN
    assert empty["jacob_cov"] == pytest.approx(jacob_cov_floor(32))
    assert empty["nwot"] == 0.0
    assert empty["snip"] == 0.0 and empty["grad_norm"] == 0.0
    assert all(math.isfinite(v) for v in empty.values())
    for name in ("synflow", "jacob_cov", "nwot"):
        assert skip[name] > empty[name], name


def test_proxies_track_network_size_over_random_cells(task):
    """A real signal: over random NB201 cells, synflow and nwot rise with the size."""
    space = NB201Space(channels=4)
    rng = np.random.default_rng(0)
    vals = [
        architecture_proxies(space, space.sample(rng), task, ("params", "synflow", "nwot"), 32)
        for _ in range(12)
    ]
    params = [v["params"] for v in vals]
    assert spearmanr(params, [v["synflow"] for v in vals])[0] > 0.5
    assert spearmanr(params, [v["nwot"] for v in vals])[0] > 0


# -- names and inputs ---------------------------------------------------------------


def test_unknown_name_lists_the_choices(batch):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x, y = batch
    with pytest.raises(UnknownNameError) as info:
        compute_proxies(model, x, y, ["synflow", "zen"])
    message = str(info.value)
    assert "'zen'" in message
    assert all(name in message for name in PROXIES)
    with pytest.raises(UnknownNameError, match="choose one of"):
        architecture_proxies(NB201Space(4), None, None, ["fisher"])


def test_names_subset_duplicates_and_single_string(batch):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x, y = batch
    out = compute_proxies(model, x, y, ["flops", "params", "flops"])
    assert list(out) == ["flops", "params"]
    assert out == {"flops": 2.0 * 64 * 10, "params": 650.0}
    assert compute_proxies(model, x, y, "params") == {"params": 650.0}
    assert compute_proxies(model, x, y, []) == {}


def test_bad_batches_are_refused(batch):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x, y = batch
    with pytest.raises(ConfigError, match="at least 2"):
        compute_proxies(model, x[:1], y[:1], ["nwot"])
    assert "snip" in compute_proxies(model, x[:1], y[:1], ["snip"])
    with pytest.raises(ConfigError, match="must match"):
        compute_proxies(model, x, y[:3])
    with pytest.raises(ConfigError, match="NaN"):
        compute_proxies(model, torch.full_like(x, float("nan")), y)
    with pytest.raises(ConfigError, match="scalar"):
        compute_proxies(model, x, y, ["snip"], loss_fn=lambda o, t: o)


def test_model_must_return_a_tensor(batch):
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            y = self.fc(x.flatten(1))
            return y, y

    x, y = batch
    with pytest.raises(ConfigError, match="return a tensor"):
        compute_proxies(Pair(), x, y, ["snip"])


# -- definitions, checked by hand -------------------------------------------------------


def test_synflow_of_a_linear_chain_is_conserved_flow():
    # With |W| and an input of ones, each layer carries the whole flow R = 1'|W2||W1|1.
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(6, 5, bias=False), nn.ReLU(), nn.Linear(5, 3, bias=False)
    )
    w1, w2 = model[1].weight.detach().double().abs(), model[3].weight.detach().double().abs()
    flow = float((w2 @ w1 @ torch.ones(6, dtype=torch.float64)).sum())
    x, y = torch.randn(4, 1, 2, 3), torch.tensor([0, 1, 2, 0])
    got = compute_proxies(model, x, y, ["synflow"])["synflow"]
    assert got == pytest.approx(math.log(2 * flow), rel=1e-12)


def test_synflow_ignores_batchnorm():
    torch.manual_seed(0)
    with_bn = nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 4)
    )
    with torch.no_grad():
        with_bn[1].weight.fill_(7.0)
        with_bn[1].running_var.fill_(0.01)
    without = nn.Sequential(with_bn[0], nn.ReLU(), nn.Flatten(), with_bn[4])
    x, y = torch.randn(5, 1, 4, 4), torch.tensor([0, 1, 2, 3, 0])
    a = compute_proxies(with_bn, x, y, ["synflow"])["synflow"]
    b = compute_proxies(without, x, y, ["synflow"])["synflow"]
    assert a == pytest.approx(b, rel=1e-12)


def _tiny(act: nn.Module | None = None, last_relu: bool = True) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 96), act or nn.ReLU(), nn.Linear(96, 10))
    return model.append(nn.ReLU()) if last_relu else model


def test_snip_and_grad_norm_match_their_definitions(batch):
    model = _tiny()
    x, y = batch
    loss = F.cross_entropy(model(x), y)
    weights = [model[1].weight, model[3].weight]
    grads = torch.autograd.grad(loss, weights)
    snip = sum(float((w.detach() * g).abs().sum()) for w, g in zip(weights, grads, strict=True))
    norm = sum(float(g.norm()) for g in grads)
    got = compute_proxies(model, x, y, ["snip", "grad_norm"])
    assert got["snip"] == pytest.approx(snip, rel=1e-5)
    assert got["grad_norm"] == pytest.approx(norm, rel=1e-5)


def test_jacob_cov_matches_the_reference_formula(batch):
    model = _tiny()
    x, y = batch
    x = x[:16].clone().requires_grad_(True)
    model(x).backward(torch.ones(16, 10))
    jacob = x.grad.reshape(16, -1).double().numpy()
    v = np.linalg.eigvalsh(np.corrcoef(jacob))
    k = JACOB_COV_K
    expected = -np.sum(np.log(v + k) + 1.0 / (v + k))
    got = compute_proxies(model, x.detach(), y[:16], ["jacob_cov"])["jacob_cov"]
    assert got == pytest.approx(expected, rel=1e-6)
    assert jacob_cov_floor(16) < got <= -16


def test_nwot_matches_the_hamming_kernel(batch):
    model = _tiny()
    x, y = batch
    with torch.no_grad():
        h = model[1](model[0](x))
        out = model[3](torch.relu(h))
    codes = [(h > 0).double(), (out > 0).double()]
    kernel = sum(c @ c.T + (1 - c) @ (1 - c).T for c in codes)
    expected = float(torch.linalg.slogdet(kernel)[1])
    got = compute_proxies(model, x, y, ["nwot"])["nwot"]
    assert got == pytest.approx(expected, rel=1e-9)
    assert got > 0


class _FunctionalReLU(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def forward(self, x):
        if self.how == "functional":
            return F.relu(x)
        if self.how == "inplace":
            return F.relu(x.clone(), inplace=True)
        return x.clone().relu_()


@pytest.mark.parametrize(
    "act",
    [
        nn.ReLU(inplace=True),
        _FunctionalReLU("functional"),
        _FunctionalReLU("inplace"),
        _FunctionalReLU("method"),
        nn.GELU(),
    ],
    ids=["module-inplace", "functional", "functional-inplace", "method", "gelu"],
)
def test_nwot_captures_every_form_of_relu(act, batch):
    x, y = batch
    reference = compute_proxies(_tiny(last_relu=False), x, y, ["nwot"])["nwot"]
    assert reference > 0
    # GELU's code is also the sign of its input.
    got = compute_proxies(_tiny(act, last_relu=False), x, y, ["nwot"])["nwot"]
    assert got == pytest.approx(reference, rel=1e-12)


def test_nwot_of_a_singular_kernel_is_zero(batch):
    x, y = batch
    twins = torch.cat([x[:8], x[:8]])  # identical samples: identical codes
    assert compute_proxies(_tiny(), twins, torch.cat([y[:8], y[:8]]), ["nwot"])["nwot"] == 0.0
    no_relu = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    assert compute_proxies(no_relu, x, y, ["nwot"])["nwot"] == 0.0


def test_dropout_is_reproducible_and_rng_untouched(batch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5))
    model.append(nn.Linear(32, 10))
    x, y = batch
    state = torch.get_rng_state()
    a = compute_proxies(model, x, y)
    assert torch.equal(torch.get_rng_state(), state)
    assert compute_proxies(model, x, y) == a
