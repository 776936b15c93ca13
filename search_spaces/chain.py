"""A macro space of stacked convolutional layers (``chain``).

Decisions: ``depth`` (1..``max_depth``); for each layer ``i`` that exists, its width
``width_i`` and kernel size ``kernel_i`` (conditional on ``depth >= i``); and, for
the whole network, ``activation``, ``norm`` and ``skip`` (residual connections
around each layer, with a 1x1 projection where the width changes).

The graph has one node per layer labelled ``op="conv"`` with its kernel, width,
activation and norm as attributes, ``add`` nodes for residual sums and ``proj``
nodes for projections. The network ends with global average pooling and a linear
classifier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
from torch import nn

from naslab.core.errors import ConfigError, InvalidArchitectureError
from naslab.core.validation import check_int
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace, image_shape
from naslab.search_spaces.decisions import Categorical, Condition, Decision, Integer, Value
from naslab.search_spaces.graph_module import GraphModule

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
NORMS = ("batch", "none")
#: Bounds of the options (a network far larger would not fit in memory).
MAX_DEPTH, MAX_WIDTH, MAX_KERNEL = 64, 4096, 31


def _make_op(attrs: dict[str, Any], c_in: int) -> tuple[nn.Module, int]:
    if attrs["op"] == "proj":
        return nn.Conv2d(c_in, attrs["width"], 1, bias=False), attrs["width"]
    if attrs["op"] != "conv":
        raise InvalidArchitectureError(f"chain: no module for operation {attrs['op']!r}")
    width, kernel = int(attrs["width"]), int(attrs["kernel"])
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, width, kernel, padding=kernel // 2, bias=attrs["norm"] == "none")
    ]
    if attrs["norm"] == "batch":
        layers.append(nn.BatchNorm2d(width))
    layers.append(ACTIVATIONS[attrs["activation"]]())
    return nn.Sequential(*layers), width


class ChainNetwork(nn.Module):
    """The layer graph followed by global pooling and a linear classifier."""

    def __init__(self, graph: nx.DiGraph, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.body = GraphModule(graph, _make_op, in_channels)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(self.body.out_channels, num_classes)

    def forward(self, x):  # noqa: D102 - standard forward
        return self.classifier(self.pool(self.body(x)))


def _int_choices(what: str, values: Any, maximum: int) -> tuple[int, ...]:
    """``values`` as a tuple of distinct integers in ``[1, maximum]``."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise ConfigError(f"{what} must be a list of integers, e.g. [8, 16], got {values!r}")
    out = tuple(check_int(what, v, minimum=1, maximum=maximum) for v in values)
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"{what} must be a non-empty list of distinct integers, "
                          f"got {list(out)}")
    return out


class ChainSpace(SearchSpace):
    """Stacked convolutional layers with per-layer width and kernel size.

    Args:
        max_depth: the largest number of layers (1 to 64).
        widths: the widths a layer may take (distinct integers, 1 to 4096).
        kernels: the kernel sizes a layer may take (distinct odd integers, 1 to 31).

    Raises:
        ConfigError: an option of the wrong type (``1.5``, ``true``) or out of range.
    """

    name = "chain"
    operations = ("conv", "add", "proj")
    stable_key = True  # a built-in space: its key is its name plus its config

    def __init__(
        self,
        max_depth: int = 4,
        widths: Sequence[int] = (8, 16, 32),
        kernels: Sequence[int] = (1, 3, 5),
    ) -> None:
        self.max_depth = check_int("chain's max_depth", max_depth, minimum=1,
                                   maximum=MAX_DEPTH)
        self.widths = _int_choices("chain's widths", widths, MAX_WIDTH)
        self.kernels = _int_choices("chain's kernels", kernels, MAX_KERNEL)
        if any(k % 2 == 0 for k in self.kernels):
            raise ConfigError(f"chain's kernels must be odd, got {list(self.kernels)}")

    def config(self) -> dict[str, Any]:
        """Depth limit and the width and kernel choices."""
        return {
            "max_depth": self.max_depth,
            "widths": list(self.widths),
            "kernels": list(self.kernels),
        }

    def decisions(self) -> Sequence[Decision]:
        """Depth, per-layer width and kernel (conditional), activation, norm, skip."""
        out: list[Decision] = [Integer("depth", 1, self.max_depth)]
        for i in range(1, self.max_depth + 1):
            cond = None if i == 1 else Condition("depth", tuple(range(i, self.max_depth + 1)))
            out.append(Categorical(f"width_{i}", self.widths, cond))
            out.append(Categorical(f"kernel_{i}", self.kernels, cond))
        out.append(Categorical("activation", tuple(ACTIVATIONS)))
        out.append(Categorical("norm", NORMS))
        out.append(Categorical("skip", ("none", "residual")))
        return out

    def to_graph(self, decisions: Mapping[str, Value]) -> nx.DiGraph:
        """A chain of layer nodes, with residual ``add`` (and ``proj``) nodes if asked."""
        g = nx.DiGraph()
        g.add_node("input", op="input")
        prev, prev_width = "input", None
        residual = decisions["skip"] == "residual"
        for i in range(1, int(decisions["depth"]) + 1):
            width = int(decisions[f"width_{i}"])
            layer = f"layer_{i}"
            g.add_node(
                layer,
                op="conv",
                kernel=int(decisions[f"kernel_{i}"]),
                width=width,
                activation=decisions["activation"],
                norm=decisions["norm"],
            )
            g.add_edge(prev, layer)
            # The first layer's input width depends on the task, so it gets no shortcut.
            if residual and i > 1:
                add = f"add_{i}"
                g.add_node(add, op="add")
                g.add_edge(layer, add)
                if prev_width == width:
                    g.add_edge(prev, add)
                else:
                    proj = f"proj_{i}"
                    g.add_node(proj, op="proj", width=width)
                    g.add_edge(prev, proj)
                    g.add_edge(proj, add)
                layer = add
            prev, prev_width = layer, width
        g.add_node("output", op="output")
        g.add_edge(prev, "output")
        return g

    def build(self, arch: Architecture, task: Any) -> nn.Module:
        """The network for an image task (``input_shape`` = (C, H, W))."""
        shape = image_shape(self.name, task)
        return ChainNetwork(arch.graph, shape[0], int(task.num_classes))
