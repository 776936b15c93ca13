"""Torch blocks shared by the macro spaces (``mbv3``, ``hybrid``) and the builder of
their chain-shaped networks.

* :class:`ConvBNAct`, :class:`SqueezeExcite` and :class:`MBConv`: the layers of
  once-for-all's MobileNetV3 (mit-han-lab/once-for-all, ``ofa/utils/layers.py``).
* :class:`Bottleneck`: a ResNet bottleneck (1x1 reduce, 3x3, 1x1 expand, residual).
* :class:`AttentionBlock`: a pre-norm transformer block over the ``H*W`` tokens of a
  feature map, with a depthwise-convolution position encoding (as BoTNet/HyTra put
  position information into attention), multi-head self-attention written out
  (so that its matrix products are counted as FLOPs), an MLP, LayerNorm and residuals.
* :func:`build_chain`: a network from a graph that is a single path, one module per
  node, as :class:`~naslab.search_spaces.graph_module.GraphModule` does for DAGs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx
import torch
from torch import nn

from naslab.core.errors import InvalidArchitectureError

__all__ = [
    "ACTIVATIONS",
    "AttentionBlock",
    "Bottleneck",
    "ConvBNAct",
    "MBConv",
    "SqueezeExcite",
    "build_chain",
    "chain_nodes",
    "make_divisible",
]

#: Activation functions by the names MobileNetV3 (and OFA) give them.
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "h_swish": nn.Hardswish}


def make_divisible(value: float, divisor: int = 8) -> int:
    """OFA's ``make_divisible``: ``value`` rounded to a multiple of ``divisor`` (at
    least ``divisor``), never more than 10% below ``value``."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return int(new)


class ConvBNAct(nn.Sequential):
    """Convolution (same padding), optional batch normalisation, optional activation."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1,
                 act: str | None = "relu", groups: int = 1, bn: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride=stride,
                                             padding=kernel // 2, groups=groups, bias=not bn)]
        if bn:
            layers.append(nn.BatchNorm2d(c_out))
        if act is not None:
            layers.append(ACTIVATIONS[act]())
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """OFA's ``SEModule``: global pooling, 1x1 reduce (by 4, divisible by 8), ReLU,
    1x1 expand, hard sigmoid, channel-wise scaling."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        mid = make_divisible(channels // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, mid, 1), nn.ReLU(),
            nn.Conv2d(mid, channels, 1), nn.Hardsigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - standard forward
        return x * self.gate(x)


class MBConv(nn.Module):
    """OFA's ``MBConvLayer`` in a residual block: 1x1 expansion (absent when
    ``expand`` is 1), depthwise ``kernel`` x ``kernel`` convolution with ``stride``,
    optional squeeze-and-excitation, linear 1x1 projection; an identity shortcut
    when the stride is 1 and the width is unchanged."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int,
                 se: bool, act: str) -> None:
        super().__init__()
        mid = c_in if expand == 1 else make_divisible(round(c_in * expand))
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(c_in, mid, 1, act=act))
        layers.append(ConvBNAct(mid, mid, kernel, stride=stride, act=act, groups=mid))
        if se:
            layers.append(SqueezeExcite(mid))
        layers.append(ConvBNAct(mid, c_out, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - standard forward
        out = self.body(x)
        return x + out if self.residual else out


class Bottleneck(nn.Module):
    """A ResNet bottleneck block at constant width: 1x1 to ``channels // 4``, 3x3,
    1x1 back, each batch-normalised, a residual sum and a ReLU."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        mid = max(1, channels // reduction)
        self.body = nn.Sequential(
            ConvBNAct(channels, mid, 1), ConvBNAct(mid, mid, 3),
            ConvBNAct(mid, channels, 1, act=None))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - standard forward
        return self.act(x + self.body(x))


class AttentionBlock(nn.Module):
    """A transformer block on the tokens of a feature map (``B x C x H x W``).

    A depthwise 3x3 convolution adds position information (``x + dwconv(x)``); the
    ``H*W`` tokens of ``C`` channels then go through pre-norm multi-head
    self-attention and a pre-norm MLP (``C -> mlp_ratio*C -> C``, GELU), each with a
    residual sum. ``channels`` must be divisible by ``heads``.
    """

    def __init__(self, channels: int, heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        if channels % heads:
            raise InvalidArchitectureError(
                f"attention over {channels} channels cannot be split into {heads} heads")
        self.heads = heads
        self.pos = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.norm1 = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, mlp_ratio * channels), nn.GELU(),
                                 nn.Linear(mlp_ratio * channels, channels))

    def attend(self, tokens: torch.Tensor) -> torch.Tensor:
        """Multi-head self-attention of ``tokens`` (``B x N x C``)."""
        b, n, c = tokens.shape
        q, k, v = (self.qkv(tokens).reshape(b, n, 3, self.heads, c // self.heads)
                   .permute(2, 0, 3, 1, 4))  # each B x heads x N x d
        weights = torch.softmax(q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5, dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, n, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - standard forward
        x = x + self.pos(x)
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.attend(self.norm1(tokens))
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


#: ``make_op(attrs, in_channels) -> (module, out_channels)``
ChainOpFactory = Callable[[dict[str, Any], int], tuple[nn.Module, int]]


def chain_graph(nodes: list[tuple[str, dict[str, Any]]]) -> nx.DiGraph:
    """A DAG that chains ``nodes`` (``(name, attributes)`` pairs) in order."""
    g = nx.DiGraph()
    for name, attrs in nodes:
        g.add_node(name, **attrs)
    g.add_edges_from(zip([n for n, _ in nodes[:-1]], [n for n, _ in nodes[1:]], strict=True))
    return g


def chain_nodes(graph: nx.DiGraph) -> list[Any]:
    """The nodes of a single-path graph from its input to its output, in order, or
    :class:`InvalidArchitectureError` if the graph branches."""
    if any(graph.in_degree(v) > 1 or graph.out_degree(v) > 1 for v in graph.nodes):
        raise InvalidArchitectureError("a macro network's graph must be a single chain")
    return list(nx.topological_sort(graph))


def build_chain(graph: nx.DiGraph, make_op: ChainOpFactory, in_channels: int) -> nn.Sequential:
    """One module per node of the chain ``graph`` (input and output excluded), built by
    ``make_op`` from the node's attributes and its input width."""
    modules: list[nn.Module] = []
    channels = in_channels
    for v in chain_nodes(graph):
        attrs = dict(graph.nodes[v])
        if attrs["op"] in ("input", "output"):
            continue
        module, channels = make_op(attrs, channels)
        modules.append(module)
    return nn.Sequential(*modules)
