"""The once-for-all MobileNetV3 macro space (``mbv3``).

After OFA (Cai et al., ICLR 2020, "Once-for-All: Train One Network and Specialize it
for Efficient Deployment"; mit-han-lab/once-for-all, ``OFAMobileNetV3``), the space
that DyNAS-T also searches: a fixed first convolution (3x3, h_swish) and first MBConv
block (3x3, expansion 1, ReLU), then five elastic stages, then OFA's fixed head (a
1x1 final expansion, global pooling, a 1x1 feature-mix layer, a linear classifier).

Per stage ``s``, an elastic depth ``depth_s`` in (2, 3, 4); per block ``b`` of that
stage a depthwise kernel size ``kernel_s_b`` in (3, 5, 7) and an expansion ratio
``expand_s_b`` in (3, 4, 6). Blocks 3 and 4 of a stage exist only when the depth
reaches them: their decisions are conditional on ``depth_s``. Squeeze-and-excitation,
activation, stride and width per stage are OFA's fixed settings (:data:`OFA_STAGES`):

=====  ======  ==========  =======  ====================
stage  width   activation  SE       stride (OFA / here)
=====  ======  ==========  =======  ====================
1      24      relu        no       2 / 1
2      40      relu        yes      2
3      80      h_swish     no       2
4      112     h_swish     yes      1
5      160     h_swish     yes      2
=====  ======  ==========  =======  ====================

With 5 stages there are ``(9**2 + 9**3 + 9**4) ** 5`` (about 2.2e19) decision
combinations, as OFA counts them; every one is a different network.

Scaled down for small images by parameters: ``width_mult`` multiplies every width
(rounded to a multiple of 8 as OFA does; 1.0 is OFA's MobileNetV3 and 0.25 the
default), ``stages`` keeps the first 1 to 5 stages, and ``stem_stride`` and
``strides`` set where resolution halves (OFA: 2 and (2, 2, 2, 1, 2) for 224x224
inputs; the default 1 and (1, 2, 2, 1, 2) takes 8x8 digits to 1x1).

Graph: a chain ``input -> stem -> first -> s1b1 -> ... -> final_expand -> pool ->
feature_mix -> classifier -> output``; every block node has ``op="mbconv"`` and its
``stage``, ``kernel``, ``expand``, ``se``, ``act``, ``stride`` and ``width`` as
attributes, so two architectures have the same hash exactly when their active
decisions are equal. Networks are built from the graph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
from torch import nn

from naslab.core.errors import ConfigError, InvalidArchitectureError
from naslab.core.validation import check_float, check_int
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace, image_shape
from naslab.search_spaces.decisions import Categorical, Condition, Decision, Integer, Value
from naslab.search_spaces.macro_blocks import (
    ConvBNAct,
    MBConv,
    build_chain,
    chain_graph,
    make_divisible,
)

__all__ = ["DEPTHS", "EXPANDS", "KERNELS", "OFA_STAGES", "MobileNetV3Space"]

DEPTHS = (2, 3, 4)
KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
#: OFA's elastic stages: (width, activation, squeeze-and-excitation, stride).
OFA_STAGES: tuple[tuple[int, str, bool, int], ...] = (
    (24, "relu", False, 2),
    (40, "relu", True, 2),
    (80, "h_swish", False, 2),
    (112, "h_swish", True, 1),
    (160, "h_swish", True, 2),
)
#: OFA's fixed widths: first convolution, first block, final expansion, feature mix.
STEM_WIDTH, FIRST_WIDTH, FINAL_EXPAND_WIDTH, FEATURE_MIX_WIDTH = 16, 16, 960, 1280
#: Strides of the stages by default (OFA's, less the first halving, for 8x8 inputs).
DEFAULT_STRIDES = (1, 2, 2, 1, 2)
MIN_WIDTH_MULT, MAX_WIDTH_MULT = 0.05, 2.0


def _check_strides(strides: Any, stages: int) -> tuple[int, ...]:
    if strides is None:
        return DEFAULT_STRIDES[:stages]
    if isinstance(strides, (str, bytes, Mapping)) or not isinstance(strides, Sequence):
        raise ConfigError(f"mbv3's strides must be a list of 1s and 2s, one per stage, "
                          f"got {strides!r}")
    out = tuple(check_int("mbv3's strides (each)", s, minimum=1, maximum=2) for s in strides)
    if len(out) != stages:
        raise ConfigError(f"mbv3's strides must hold one stride per stage ({stages}), "
                          f"got {len(out)}: {list(out)}")
    return out


class MobileNetV3Space(SearchSpace):
    """OFA's MobileNetV3 space: elastic depth per stage, kernel and expansion per block.

    Args:
        width_mult: multiplies OFA's widths (rounded to multiples of 8); 0.05 to 2.0.
        stages: how many of OFA's five stages (the first ones), 1 to 5.
        stem_stride: stride of the first convolution, 1 or 2 (OFA: 2).
        strides: one stride (1 or 2) per stage; default ``(1, 2, 2, 1, 2)`` cut to
            ``stages`` (OFA: ``(2, 2, 2, 1, 2)``).

    Raises:
        ConfigError: an option of the wrong type (``True``, ``"2"``, NaN) or out of range.
    """

    name = "mbv3"
    operations = ("conv", "mbconv", "pool", "feature_mix", "classifier")
    stable_key = True  # a built-in space: its key is its name plus its config

    def __init__(self, width_mult: float = 0.25, stages: int = 5, stem_stride: int = 1,
                 strides: Sequence[int] | None = None) -> None:
        self.width_mult = check_float("mbv3's width_mult", width_mult,
                                      minimum=MIN_WIDTH_MULT, maximum=MAX_WIDTH_MULT)
        self.stages = check_int("mbv3's stages", stages, minimum=1, maximum=len(OFA_STAGES))
        self.stem_stride = check_int("mbv3's stem_stride", stem_stride, minimum=1, maximum=2)
        self.strides = _check_strides(strides, self.stages)

    def config(self) -> dict[str, Any]:
        """Width multiplier, number of stages and the strides."""
        return {"width_mult": self.width_mult, "stages": self.stages,
                "stem_stride": self.stem_stride, "strides": list(self.strides)}

    def width(self, base: int) -> int:
        """OFA's width ``base`` scaled by :attr:`width_mult` (a multiple of 8)."""
        return make_divisible(base * self.width_mult)

    def decisions(self) -> Sequence[Decision]:
        """Per stage its depth, then per block its kernel and expansion ratio (blocks
        beyond the smallest depth conditional on the depth)."""
        out: list[Decision] = []
        for s in range(1, self.stages + 1):
            out.append(Integer(f"depth_{s}", DEPTHS[0], DEPTHS[-1]))
            for b in range(1, DEPTHS[-1] + 1):
                cond = (None if b <= DEPTHS[0] else
                        Condition(f"depth_{s}", tuple(d for d in DEPTHS if d >= b)))
                out.append(Categorical(f"kernel_{s}_{b}", KERNELS, cond))
                out.append(Categorical(f"expand_{s}_{b}", EXPANDS, cond))
        return out

    def size(self) -> int:
        """The exact number of decision combinations: ``(sum over depths d of
        (|kernels| * |expands|) ** d) ** stages`` (every one a different network)."""
        per_stage = sum((len(KERNELS) * len(EXPANDS)) ** d for d in DEPTHS)
        return per_stage ** self.stages

    def to_graph(self, decisions: Mapping[str, Value]) -> nx.DiGraph:
        """The chain of the stem, the first block, the active blocks and the head."""
        nodes: list[tuple[str, dict[str, Any]]] = [
            ("input", {"op": "input"}),
            ("stem", {"op": "conv", "kernel": 3, "stride": self.stem_stride,
                      "width": self.width(STEM_WIDTH), "act": "h_swish"}),
            ("first", {"op": "mbconv", "stage": 0, "kernel": 3, "expand": 1, "se": False,
                       "act": "relu", "stride": 1, "width": self.width(FIRST_WIDTH)}),
        ]
        for s in range(1, self.stages + 1):
            base, act, se, _ = OFA_STAGES[s - 1]
            for b in range(1, int(decisions[f"depth_{s}"]) + 1):
                nodes.append((f"s{s}b{b}", {
                    "op": "mbconv", "stage": s, "kernel": int(decisions[f"kernel_{s}_{b}"]),
                    "expand": int(decisions[f"expand_{s}_{b}"]), "se": se, "act": act,
                    "stride": self.strides[s - 1] if b == 1 else 1, "width": self.width(base)}))
        nodes += [
            ("final_expand", {"op": "conv", "kernel": 1, "stride": 1,
                              "width": self.width(FINAL_EXPAND_WIDTH), "act": "h_swish"}),
            ("pool", {"op": "pool"}),
            ("feature_mix", {"op": "feature_mix", "width": self.width(FEATURE_MIX_WIDTH),
                             "act": "h_swish"}),
            ("classifier", {"op": "classifier"}),
            ("output", {"op": "output"}),
        ]
        return chain_graph(nodes)

    def build(self, arch: Architecture, task: Any) -> nn.Module:
        """The network for an image task (``input_shape`` = (C, H, W)), from the graph."""
        shape = image_shape(self.name, task)
        num_classes = int(task.num_classes)

        def make_op(attrs: dict[str, Any], c_in: int) -> tuple[nn.Module, int]:
            op = attrs["op"]
            if op == "conv":
                return ConvBNAct(c_in, attrs["width"], attrs["kernel"], attrs["stride"],
                                 attrs["act"]), attrs["width"]
            if op == "mbconv":
                return MBConv(c_in, attrs["width"], attrs["kernel"], attrs["stride"],
                              attrs["expand"], attrs["se"], attrs["act"]), attrs["width"]
            if op == "pool":
                return nn.AdaptiveAvgPool2d(1), c_in
            if op == "feature_mix":
                return ConvBNAct(c_in, attrs["width"], 1, act=attrs["act"], bn=False), \
                    attrs["width"]
            if op == "classifier":
                return nn.Sequential(nn.Flatten(), nn.Linear(c_in, num_classes)), num_classes
            raise InvalidArchitectureError(f"mbv3: no module for operation {op!r}")

        return build_chain(arch.graph, make_op, shape[0])
