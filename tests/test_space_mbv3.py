"""The once-for-all MobileNetV3 space (``mbv3``): contract, OFA's settings, size,
hashes, option attacks, training, and a real search per searcher."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from naslab import InvalidArchitectureError
from naslab.core.errors import ConfigError
from naslab.db.store import Store
from naslab.search_spaces.decisions import active_decisions
from naslab.search_spaces.macro_blocks import MBConv, SqueezeExcite
from naslab.search_spaces.mbv3 import OFA_STAGES, MobileNetV3Space
from naslab.study import Study
from naslab.testing.spaces import SearchSpaceContract

DIGITS = SimpleNamespace(name="digits-like", input_shape=(1, 8, 8), num_classes=10)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TestMobileNetV3Contract(SearchSpaceContract):
    @pytest.fixture
    def space(self):
        return MobileNetV3Space()


class TestSmallMobileNetV3Contract(SearchSpaceContract):
    @pytest.fixture
    def space(self):
        return MobileNetV3Space(width_mult=0.1, stages=2, stem_stride=2, strides=[2, 1])


def count_combinations(declared, chosen=None, index=0):
    """Decision combinations of ``declared``, enumerated (conditions honoured)."""
    chosen = {} if chosen is None else chosen
    if index == len(declared):
        return 1
    d = declared[index]
    if d.condition is not None and not d.condition.holds(chosen):
        return count_combinations(declared, chosen, index + 1)
    total = 0
    for v in d.values:
        chosen[d.name] = v
        total += count_combinations(declared, chosen, index + 1)
    del chosen[d.name]
    return total


def test_size_is_ofas_count_and_the_exact_number_of_combinations():
    assert MobileNetV3Space().size() == (9**2 + 9**3 + 9**4) ** 5 == 21_758_655_492_572_485_851
    one = MobileNetV3Space(stages=1)
    assert one.size() == count_combinations(list(one.decisions())) == 7371
    assert MobileNetV3Space(stages=3).size() == 7371**3


def test_decisions_depth_parents_and_conditional_blocks():
    space = MobileNetV3Space(stages=2)
    names = [d.name for d in space.decisions()]
    assert names[:3] == ["depth_1", "kernel_1_1", "expand_1_1"]
    decisions = {"depth_1": 2, "depth_2": 4}
    for s, depth in ((1, 2), (2, 4)):
        for b in range(1, depth + 1):
            decisions[f"kernel_{s}_{b}"], decisions[f"expand_{s}_{b}"] = 7, 6
    arch = space.from_decisions(decisions)
    active = {d.name for d in active_decisions(space.decisions(), arch.decisions)}
    assert "kernel_1_3" not in active and "kernel_2_4" in active
    with pytest.raises(InvalidArchitectureError, match="kernel_1_3.*inactive"):
        space.from_decisions({**arch.decisions, "kernel_1_3": 3})
    with pytest.raises(InvalidArchitectureError, match="depth_1"):
        space.from_decisions({**arch.decisions, "depth_1": 5})
    with pytest.raises(InvalidArchitectureError, match="expand_2_1"):
        space.from_decisions({**arch.decisions, "expand_2_1": 5})
    with pytest.raises(InvalidArchitectureError, match="kernel_2_1"):
        space.from_decisions({**arch.decisions, "kernel_2_1": True})


def test_graph_follows_ofa_settings_at_width_1():
    space = MobileNetV3Space(width_mult=1.0, stem_stride=2, strides=(2, 2, 2, 1, 2))
    arch = space.sample(np.random.default_rng(3))
    g = arch.graph
    blocks = [g.nodes[v] for v in g.nodes if g.nodes[v]["op"] == "mbconv"]
    assert blocks[0] == {"op": "mbconv", "stage": 0, "kernel": 3, "expand": 1, "se": False,
                         "act": "relu", "stride": 1, "width": 16}
    assert g.nodes["stem"] == {"op": "conv", "kernel": 3, "stride": 2, "width": 16,
                               "act": "h_swish"}
    assert g.nodes["final_expand"]["width"] == 960 and g.nodes["feature_mix"]["width"] == 1280
    for s, (width, act, se, stride) in enumerate(OFA_STAGES, start=1):
        stage = [b for b in blocks if b["stage"] == s]
        assert len(stage) == arch.decisions[f"depth_{s}"]
        assert [b["stride"] for b in stage] == [stride] + [1] * (len(stage) - 1)
        for b, attrs in enumerate(stage, start=1):
            assert (attrs["width"], attrs["act"], attrs["se"]) == (width, act, se)
            assert attrs["kernel"] == arch.decisions[f"kernel_{s}_{b}"]
            assert attrs["expand"] == arch.decisions[f"expand_{s}_{b}"]
    # the network has the blocks the graph says: SE where OFA puts it, 7x7 depthwise...
    net = space.build(arch, SimpleNamespace(input_shape=(3, 32, 32), num_classes=5))
    mb = [m for m in net.modules() if isinstance(m, MBConv)]
    assert len(mb) == len(blocks)
    for m, attrs in zip(mb, blocks):
        assert any(isinstance(x, SqueezeExcite) for x in m.modules()) == attrs["se"]
        dw = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d) and c.groups > 1]
        assert dw[0].kernel_size == (attrs["kernel"],) * 2 and dw[0].stride[0] == attrs["stride"]
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 5)


def test_equal_decisions_equal_hashes_and_every_difference_shows():
    a, b = MobileNetV3Space(), MobileNetV3Space()
    rng = np.random.default_rng(11)
    archs = [a.sample(rng) for _ in range(300)]
    by_decisions = {tuple(sorted(x.decisions.items())): x.hash for x in archs}
    assert len(set(by_decisions.values())) == len(by_decisions)  # distinct -> distinct
    for x in archs[:20]:
        assert b.from_decisions(dict(x.decisions)).hash == x.hash  # another instance agrees
    arch = archs[0]
    declared = {d.name: d for d in a.decisions()}
    nbrs = a.neighbours(arch)
    # every single-decision change is a different architecture: none merges
    assert len(nbrs) == sum(len(declared[n].neighbour_values(v))
                            for n, v in arch.decisions.items())


def test_forward_backward_on_an_8x8_batch():
    space = MobileNetV3Space()
    torch.manual_seed(0)
    for seed in range(3):
        net = space.build(space.sample(np.random.default_rng(seed)), DIGITS)
        x = torch.randn(16, 1, 8, 8)
        loss = torch.nn.functional.cross_entropy(net(x), torch.arange(16) % 10)
        loss.backward()
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0


def test_non_image_task_refused():
    space = MobileNetV3Space()
    with pytest.raises(InvalidArchitectureError, match="input_shape"):
        space.build(space.sample(np.random.default_rng(0)),
                    SimpleNamespace(name="graph", input_shape=(12,), num_classes=3))


def test_config_and_key_follow_the_options():
    space = MobileNetV3Space(width_mult=0.5, stages=3, stem_stride=2, strides=[2, 1, 2])
    assert space.config() == {"width_mult": 0.5, "stages": 3, "stem_stride": 2,
                              "strides": [2, 1, 2]}
    assert MobileNetV3Space(stages=2).config()["strides"] == [1, 2]
    assert space.key != MobileNetV3Space().key
    assert space.key == MobileNetV3Space(width_mult=0.5, stages=3, stem_stride=2,
                                         strides=(2, 1, 2)).key


@pytest.mark.parametrize("options, match", [
    ({"width_mult": True}, "width_mult"),
    ({"width_mult": "0.5"}, "width_mult"),
    ({"width_mult": math.nan}, "width_mult"),
    ({"width_mult": math.inf}, "width_mult"),
    ({"width_mult": 0.0}, "width_mult"),
    ({"width_mult": -1.0}, "width_mult"),
    ({"width_mult": 1e9}, "width_mult.*<= 2"),
    ({"stages": 0}, "stages"),
    ({"stages": 6}, "stages.*<= 5"),
    ({"stages": -3}, "stages"),
    ({"stages": True}, "stages"),
    ({"stages": 2.0}, "stages"),
    ({"stages": 10**40}, "stages"),
    ({"stem_stride": 0}, "stem_stride"),
    ({"stem_stride": 3}, "stem_stride"),
    ({"stem_stride": False}, "stem_stride"),
    ({"strides": "12212"}, "strides"),
    ({"strides": {1: 2}}, "strides"),
    ({"strides": 2}, "strides"),
    ({"strides": [1, 2]}, "one stride per stage"),
    ({"strides": [1] * 10**5}, "one stride per stage"),
    ({"strides": [1, 2, 3, 1, 1]}, "strides"),
    ({"strides": [1, 2, 0, 1, 1]}, "strides"),
    ({"strides": [True, 2, 2, 1, 2]}, "strides"),
    ({"strides": [1.0, 2, 2, 1, 2]}, "strides"),
])
def test_bad_options_refused(options, match):
    with pytest.raises(ConfigError, match=match):
        MobileNetV3Space(**options)


def test_widest_network_stays_bounded():
    space = MobileNetV3Space(width_mult=2.0)
    biggest = {d.name: d.values[-1] for d in space.decisions()}
    net = space.build(space.from_decisions(biggest), DIGITS)
    assert sum(p.numel() for p in net.parameters()) < 60_000_000


def small_study(tmp_path, searcher, **kw):
    return Study(space=MobileNetV3Space(width_mult=0.1, stages=2), task="digits",
                 searcher=searcher, budget=kw.pop("budget", 3), epochs=1,
                 storage=kw.pop("storage", f"sqlite:///{tmp_path}/s.db"),
                 evaluator_options={"batch_size": 128}, **kw)



SLOW = pytest.mark.slow


@pytest.mark.parametrize("searcher", [
    "random",
    pytest.param("evolution", marks=SLOW),
    pytest.param("local", marks=SLOW),
    pytest.param("nsga2", marks=SLOW),
    pytest.param("guided-evolution", marks=SLOW),
    pytest.param("guided-optuna", marks=SLOW),
    "optuna-tpe",
])
def test_search_runs_with_every_searcher(tmp_path, searcher):
    report = small_study(tmp_path, searcher).run()
    assert report.complete == 3 and report.failed == 0
    assert report.space_size == 7371**2


def test_multi_objective_search_records_varying_flops(tmp_path):
    with Store(f"sqlite:///{tmp_path}/mo.db") as store:
        report = small_study(tmp_path, "nsga2", budget=4, storage=store,
                             objectives="val_accuracy:max,flops:min").run()
        assert report.complete == 4 and report.failed == 0
        trials = store.trials.list(report.name)
        flops = [t.flops for t in trials]
        assert all(f and f > 0 for f in flops) and len(set(flops)) > 1
        assert all(t.params and t.latency_ms for t in trials)
