"""A hybrid CNN-transformer block space after BossNAS's HyTra (``hybrid``).

After HyTra (Li et al., ICCV 2021, "BossNAS: Exploring Hybrid CNN-transformers with
Block-wisely Self-supervised Neural Architecture Search"): a network of ``blocks``
blocks where each block is either a residual convolution block (a ResNet bottleneck,
HyTra's ResConv) or a transformer block (HyTra's ResAtt: multi-head self-attention
over the ``H*W`` tokens of the feature map, with a depthwise-convolution position
encoding, an MLP, LayerNorm and residual sums), and where the search also decides at
which depths the resolution drops (HyTra's searchable downsampling positions).

Decisions:

* ``block_b`` for ``b`` in 1..``blocks``: ``"conv"`` or ``"attn"``;
* ``down_j`` for ``j`` in 1..``downsamplings``: the block (1..``blocks``) before which
  the ``j``-th downsampling happens. A downsampling is a 3x3 stride-2 convolution that
  halves the resolution and doubles the width (batch norm, ReLU).

Every combination is valid: the network always downsamples exactly
``downsamplings`` times; two ``down_j`` naming the same block halve twice there (two
downsampling steps in a row, a stride of 4), and the order of the ``down_j`` does not
matter (the graph, hence the hash, is the same: ``down_1=2, down_2=5`` is the
architecture of ``down_1=5, down_2=2``). :meth:`HybridSpace.size` counts decision
combinations, ``2**blocks * blocks**downsamplings`` (16,384 by default);
:meth:`HybridSpace.architectures` the distinct networks,
``2**blocks * C(blocks + downsamplings - 1, downsamplings)`` (9,216 by default).

Network: a 3x3 stem to ``channels``, the blocks (and downsamplings) in order, global
average pooling and a linear classifier. Graph: the chain ``input -> stem -> ... ->
head -> output`` of ``conv_block`` / ``attn_block`` nodes (with their resolution
``stage``, ``width`` and, for attention, ``heads``) and ``downsample`` nodes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
from torch import nn

from naslab.core.errors import ConfigError, InvalidArchitectureError
from naslab.core.validation import check_int
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace, image_shape
from naslab.search_spaces.decisions import Categorical, Decision, Integer, Value
from naslab.search_spaces.macro_blocks import (
    AttentionBlock,
    Bottleneck,
    ConvBNAct,
    build_chain,
    chain_graph,
)

__all__ = ["BLOCK_TYPES", "HybridSpace"]

BLOCK_TYPES = ("conv", "attn")
#: Bounds of the options: the widest layer (``channels * 2**downsamplings``) is at
#: most MAX_WIDTH channels.
MAX_BLOCKS, MAX_CHANNELS, MAX_HEADS, MAX_DOWNSAMPLINGS, MAX_WIDTH = 32, 1024, 16, 5, 2048
#: The transformer blocks' MLP width, as a multiple of their width.
MLP_RATIO = 2


class HybridSpace(SearchSpace):
    """HyTra-style hybrid space: conv or attention per block, downsampling positions.

    Args:
        blocks: number of blocks, 1 to 32 (default 8).
        channels: width after the stem, 1 to 1024; doubles at each downsampling.
        heads: attention heads, 1 to 16; must divide ``channels``.
        downsamplings: how many times resolution halves, 0 to 5; the widest layer,
            ``channels * 2**downsamplings``, must be at most 2048.

    Raises:
        ConfigError: an option of the wrong type (``True``, ``2.0``) or out of range,
            or options that do not fit together.
    """

    name = "hybrid"
    operations = ("stem", "conv_block", "attn_block", "downsample", "head")
    stable_key = True  # a built-in space: its key is its name plus its config

    def __init__(self, blocks: int = 8, channels: int = 16, heads: int = 2,
                 downsamplings: int = 2) -> None:
        self.blocks = check_int("hybrid's blocks", blocks, minimum=1, maximum=MAX_BLOCKS)
        self.channels = check_int("hybrid's channels", channels, minimum=1, maximum=MAX_CHANNELS)
        self.heads = check_int("hybrid's heads", heads, minimum=1, maximum=MAX_HEADS)
        self.downsamplings = check_int("hybrid's downsamplings", downsamplings, minimum=0,
                                       maximum=MAX_DOWNSAMPLINGS)
        if self.channels % self.heads:
            raise ConfigError(f"hybrid's heads ({self.heads}) must divide its channels "
                              f"({self.channels})")
        widest = self.channels * 2**self.downsamplings
        if widest > MAX_WIDTH:
            raise ConfigError(
                f"hybrid's widest layer, channels * 2**downsamplings = {self.channels} * "
                f"2**{self.downsamplings} = {widest}, must be at most {MAX_WIDTH}")

    def config(self) -> dict[str, Any]:
        """Depth, width, heads and number of downsamplings."""
        return {"blocks": self.blocks, "channels": self.channels, "heads": self.heads,
                "downsamplings": self.downsamplings}

    def decisions(self) -> Sequence[Decision]:
        """A block type per block, then a block index per downsampling."""
        out: list[Decision] = [Categorical(f"block_{b}", BLOCK_TYPES)
                               for b in range(1, self.blocks + 1)]
        out += [Integer(f"down_{j}", 1, self.blocks) for j in range(1, self.downsamplings + 1)]
        return out

    def architectures(self) -> int:
        """The number of distinct networks (downsampling positions as a multiset)."""
        return len(BLOCK_TYPES) ** self.blocks * math.comb(
            self.blocks + self.downsamplings - 1, self.downsamplings)

    def to_graph(self, decisions: Mapping[str, Value]) -> nx.DiGraph:
        """The chain of the stem, downsamplings and blocks, and the head."""
        downs = [int(decisions[f"down_{j}"]) for j in range(1, self.downsamplings + 1)]
        width, stage = self.channels, 0
        nodes: list[tuple[str, dict[str, Any]]] = [
            ("input", {"op": "input"}), ("stem", {"op": "stem", "width": width})]
        for b in range(1, self.blocks + 1):
            for i in range(downs.count(b)):
                width, stage = width * 2, stage + 1
                nodes.append((f"down_{b}_{i + 1}",
                              {"op": "downsample", "stage": stage, "width": width}))
            if decisions[f"block_{b}"] == "attn":
                attrs = {"op": "attn_block", "stage": stage, "width": width,
                         "heads": self.heads}
            else:
                attrs = {"op": "conv_block", "stage": stage, "width": width}
            nodes.append((f"block_{b}", attrs))
        nodes += [("head", {"op": "head", "width": width}), ("output", {"op": "output"})]
        return chain_graph(nodes)

    def build(self, arch: Architecture, task: Any) -> nn.Module:
        """The network for an image task (``input_shape`` = (C, H, W)), from the graph."""
        shape = image_shape(self.name, task)
        num_classes = int(task.num_classes)

        def make_op(attrs: dict[str, Any], c_in: int) -> tuple[nn.Module, int]:
            op = attrs["op"]
            if op == "stem":
                return ConvBNAct(c_in, attrs["width"], 3), attrs["width"]
            if op == "downsample":
                return ConvBNAct(c_in, attrs["width"], 3, stride=2), attrs["width"]
            if op == "conv_block":
                return Bottleneck(c_in), c_in
            if op == "attn_block":
                return AttentionBlock(c_in, attrs["heads"], MLP_RATIO), c_in
            if op == "head":
                return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                     nn.Linear(c_in, num_classes)), num_classes
            raise InvalidArchitectureError(f"hybrid: no module for operation {op!r}")

        return build_chain(arch.graph, make_op, shape[0])
