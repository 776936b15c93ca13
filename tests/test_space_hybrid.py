"""The HyTra-style hybrid CNN-transformer space (``hybrid``): contract, downsampling
declaration, hashes, attention that attends, option attacks, and a real search per
searcher."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from naslab import InvalidArchitectureError
from naslab.core.errors import ConfigError
from naslab.search_spaces.hybrid import HybridSpace
from naslab.search_spaces.macro_blocks import AttentionBlock, Bottleneck
from naslab.study import Study
from naslab.testing.spaces import SearchSpaceContract

DIGITS = SimpleNamespace(name="digits-like", input_shape=(1, 8, 8), num_classes=10)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TestHybridContract(SearchSpaceContract):
    @pytest.fixture
    def space(self):
        return HybridSpace()


class TestHybridNoDownsamplingContract(SearchSpaceContract):
    @pytest.fixture
    def space(self):
        return HybridSpace(blocks=3, channels=8, heads=4, downsamplings=0)


class TestHybridStackedDownsamplingContract(SearchSpaceContract):
    @pytest.fixture
    def space(self):
        return HybridSpace(blocks=2, channels=4, heads=1, downsamplings=3)


def decisions(types, downs):
    return {**{f"block_{b}": t for b, t in enumerate(types, start=1)},
            **{f"down_{j}": d for j, d in enumerate(downs, start=1)}}


def test_every_combination_is_valid_and_hashes_count_the_multisets():
    space = HybridSpace(blocks=3, channels=4, heads=2, downsamplings=2)
    assert space.size() == 2**3 * 3**2 == 72
    hashes = set()
    for types in itertools.product(("conv", "attn"), repeat=3):
        for downs in itertools.product(range(1, 4), repeat=2):
            hashes.add(space.from_decisions(decisions(types, downs)).hash)
    assert len(hashes) == space.architectures() == 2**3 * math.comb(4, 2) == 48
    assert HybridSpace().architectures() == 256 * 36


def test_order_of_downsamplings_does_not_matter_but_positions_do():
    space = HybridSpace(blocks=6, downsamplings=2)
    types = ["conv", "attn", "attn", "conv", "attn", "conv"]
    a = space.from_decisions(decisions(types, [2, 5]))
    assert a == space.from_decisions(decisions(types, [5, 2]))
    assert a != space.from_decisions(decisions(types, [2, 4]))
    assert a != space.from_decisions(decisions(types, [2, 2]))
    assert a != space.from_decisions(decisions(types[::-1], [2, 5]))


def test_graph_stages_widths_and_downsample_nodes():
    space = HybridSpace(blocks=4, channels=8, heads=2, downsamplings=3)
    arch = space.from_decisions(decisions(["attn", "conv", "attn", "conv"], [3, 1, 3]))
    g = arch.graph
    chain = [g.nodes[v] for v in ["stem", "down_1_1", "block_1", "block_2", "down_3_1",
                                  "down_3_2", "block_3", "block_4", "head"]]
    assert [n["op"] for n in chain] == ["stem", "downsample", "attn_block", "conv_block",
                                        "downsample", "downsample", "attn_block",
                                        "conv_block", "head"]
    assert [n.get("stage") for n in chain] == [None, 1, 1, 1, 2, 3, 3, 3, None]
    assert [n["width"] for n in chain] == [8, 16, 16, 16, 32, 64, 64, 64, 64]
    assert chain[2]["heads"] == 2 and "heads" not in chain[3]
    assert g.number_of_nodes() == len(chain) + 2 and g.number_of_edges() == len(chain) + 1
    net = space.build(arch, DIGITS)
    features = net[:-1](torch.randn(2, 1, 8, 8))
    assert features.shape == (2, 64, 1, 1)  # 8 -> 4 -> 2 -> 1, width 8 -> 64
    assert sum(isinstance(m, AttentionBlock) for m in net.modules()) == 2
    assert sum(isinstance(m, Bottleneck) for m in net.modules()) == 2


def far_token_changes_output(block, channels):
    """Whether changing token (0, 0) of an image changes the output at token (7, 7)."""
    block.eval()
    x = torch.randn(1, channels, 8, 8, generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[0, :, 0, 0] += 5.0
    with torch.no_grad():
        a, b = block(x), block(y)
    assert not torch.equal(a[0, :, 0, 0], b[0, :, 0, 0])  # the changed token itself
    return not torch.allclose(a[0, :, 7, 7], b[0, :, 7, 7])


def test_attention_block_attends_to_far_tokens_and_conv_block_does_not():
    torch.manual_seed(0)
    space = HybridSpace(blocks=1, channels=8, heads=2, downsamplings=0)
    attn = space.build(space.from_decisions(block_1="attn"), DIGITS)[1]
    conv = space.build(space.from_decisions(block_1="conv"), DIGITS)[1]
    assert isinstance(attn, AttentionBlock) and isinstance(conv, Bottleneck)
    assert far_token_changes_output(attn, 8)
    assert not far_token_changes_output(conv, 8)
    # images of a batch do not attend to each other
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        first = attn(x)[0]
        x[1] += 3.0
        assert torch.allclose(first, attn(x)[0], atol=1e-6)


def test_forward_backward_on_an_8x8_batch():
    space = HybridSpace()
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
    space = HybridSpace()
    with pytest.raises(InvalidArchitectureError, match="input_shape"):
        space.build(space.sample(np.random.default_rng(0)),
                    SimpleNamespace(name="graph", input_shape=(12,), num_classes=3))


def test_bad_decisions_refused():
    space = HybridSpace(blocks=4, downsamplings=2)
    good = decisions(["conv"] * 4, [1, 2])
    for name, bad in [("down_1", 0), ("down_1", 5), ("down_2", True), ("down_2", 1.0),
                      ("block_3", "mlp"), ("block_3", 1)]:
        with pytest.raises(InvalidArchitectureError, match=name):
            space.from_decisions({**good, name: bad})
    with pytest.raises(InvalidArchitectureError, match="unknown decision.*down_3"):
        space.from_decisions({**good, "down_3": 1})


def test_config_and_key_follow_the_options():
    space = HybridSpace(blocks=4, channels=12, heads=3, downsamplings=1)
    assert space.config() == {"blocks": 4, "channels": 12, "heads": 3, "downsamplings": 1}
    assert space.key != HybridSpace().key
    assert space.key == HybridSpace(blocks=4, channels=12, heads=3, downsamplings=1).key


@pytest.mark.parametrize("options, match", [
    ({"blocks": 0}, "blocks"),
    ({"blocks": -2}, "blocks"),
    ({"blocks": 33}, "blocks.*<= 32"),
    ({"blocks": 10**40}, "blocks"),
    ({"blocks": True}, "blocks"),
    ({"blocks": 8.0}, "blocks"),
    ({"blocks": "8"}, "blocks"),
    ({"channels": 0}, "channels"),
    ({"channels": 4096}, "channels.*<= 1024"),
    ({"channels": math.nan}, "channels"),
    ({"heads": 0}, "heads"),
    ({"heads": 17}, "heads.*<= 16"),
    ({"heads": False}, "heads"),
    ({"heads": 3}, "heads \\(3\\) must divide its channels \\(16\\)"),
    ({"channels": 8, "heads": 16}, "must divide"),
    ({"downsamplings": -1}, "downsamplings"),
    ({"downsamplings": 6}, "downsamplings.*<= 5"),
    ({"downsamplings": True}, "downsamplings"),
    ({"channels": 1024, "downsamplings": 2}, "widest layer.*4096.*at most 2048"),
    ({"channels": 128, "downsamplings": 5}, "widest layer"),
])
def test_bad_options_refused(options, match):
    with pytest.raises(ConfigError, match=match):
        HybridSpace(**options)


def test_widest_allowed_network_builds():
    space = HybridSpace(blocks=2, channels=64, heads=16, downsamplings=5)
    arch = space.from_decisions(decisions(["attn", "attn"], [2] * 5))
    net = space.build(arch, DIGITS)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert sum(p.numel() for p in net.parameters()) < 200_000_000



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
    report = Study(space=HybridSpace(blocks=4, channels=8, heads=2, downsamplings=1),
                   task="digits", searcher=searcher, budget=3, epochs=1,
                   storage=f"sqlite:///{tmp_path}/s.db",
                   evaluator_options={"batch_size": 128}).run()
    assert report.complete == 3 and report.failed == 0
    assert report.space_size == 2**4 * 4
