"""DARTS's operations and its CIFAR network, scaled down (the ``darts`` space's modules).

Follows the DARTS code (Liu et al. 2019, quark0/darts ``cnn/operations.py`` and
``cnn/model.py``): the seven operations of a derived genotype (``none`` is never one),
``ReLUConvBN`` and ``FactorizedReduce`` preprocessing, a cell that sums two operated
states per intermediate node and concatenates its four intermediate nodes, and
``NetworkCIFAR``: a 3x3 stem of ``3 * C`` channels, ``cells`` cells with reduction
cells (stride 2, twice the width) at 1/3 and 2/3 of the depth, global average pooling
and a linear classifier.

Left out on purpose: the auxiliary head and drop path (training regularisers of the
final 600-epoch run, not part of the architecture), and ``MixedOp`` (a search-time
relaxation; a derived genotype keeps only its chosen operations). One change for
small inputs: ``FactorizedReduce`` pads its shifted branch on odd sizes, so any
image size halves as the pooling and strided convolutions do (DARTS's own inputs are
always even).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OPERATIONS", "STEPS", "Cell", "DartsNetwork", "FactorizedReduce", "make_op"]

#: The operations of a derived DARTS genotype, in DARTS's PRIMITIVES order (``none``
#: dropped: the derivation never picks it).
OPERATIONS: tuple[str, ...] = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
#: Intermediate nodes per cell (DARTS's ``steps``); each cell concatenates all of them.
STEPS = 4
#: The stem's width is this multiple of C (DARTS's ``stem_multiplier``).
STEM_MULTIPLIER = 3


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution (no bias), batch normalisation."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
        )


class DilConv(nn.Sequential):
    """ReLU, dilated depthwise convolution, pointwise convolution, batch normalisation."""

    def __init__(self, c: int, kernel: int, stride: int, padding: int, dilation: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride=stride, padding=padding, dilation=dilation,
                      groups=c, bias=False),
            nn.Conv2d(c, c, 1, padding=0, bias=False),
            nn.BatchNorm2d(c),
        )


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convolutions (only the first has the stride)."""

    def __init__(self, c: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride=stride, padding=padding, groups=c, bias=False),
            nn.Conv2d(c, c, 1, padding=0, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride=1, padding=padding, groups=c, bias=False),
            nn.Conv2d(c, c, 1, padding=0, bias=False),
            nn.BatchNorm2d(c),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution with two strided 1x1 convolutions, one shifted by a pixel,
    whose outputs are concatenated (``c_out`` must be even)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even output width, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Both halves at ``ceil(H / 2) x ceil(W / 2)``."""
        x = self.relu(x)
        shifted = x[:, :, 1:, 1:]
        # odd sizes: pad the shifted branch back to the size of the first one
        shifted = F.pad(shifted, (0, x.shape[3] % 2, 0, x.shape[2] % 2))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def make_op(name: str, c: int, stride: int) -> nn.Module:
    """The module of DARTS operation ``name`` on ``c`` channels (``OPS[name]`` there)."""
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        kernel = int(name[-1])
        return SepConv(c, kernel, stride, kernel // 2)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        kernel = int(name[-1])
        return DilConv(c, kernel, stride, 2 * (kernel // 2), 2)
    raise ValueError(f"unknown DARTS operation {name!r}; known: {', '.join(OPERATIONS)}")


class Cell(nn.Module):
    """One DARTS cell: ``pairs`` holds ``2 * STEPS`` ``(operation, input state)`` pairs,
    two per intermediate node; the output concatenates the intermediate nodes."""

    def __init__(self, pairs: Sequence[tuple[str, int]], c_prev_prev: int, c_prev: int,
                 c: int, reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(c_prev_prev, c) if reduction_prev
                            else ReLUConvBN(c_prev_prev, c, 1, 1, 0))
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)
        self.indices = [int(index) for _, index in pairs]
        self.ops = nn.ModuleList(
            make_op(name, c, 2 if reduction and index < 2 else 1) for name, index in pairs)
        self.steps = len(self.indices) // 2
        self.out_channels = self.steps * c

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        """The concatenated intermediate nodes."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(self.steps):
            a, b = 2 * i, 2 * i + 1
            states.append(self.ops[a](states[self.indices[a]])
                          + self.ops[b](states[self.indices[b]]))
        return torch.cat(states[2:], dim=1)


class DartsNetwork(nn.Module):
    """DARTS's ``NetworkCIFAR`` without auxiliary head and drop path.

    Args:
        normal, reduce: the ``2 * STEPS`` ``(operation, input state)`` pairs of the
            normal and the reduction cell, in DARTS's genotype order.
        in_channels, num_classes: the task's image channels and classes.
        channels: C, the width of the first cells' operations.
        cells: the number of cells; reductions at ``cells // 3`` and ``2 * cells // 3``.
    """

    def __init__(self, normal: Sequence[tuple[str, int]], reduce: Sequence[tuple[str, int]],
                 in_channels: int, num_classes: int, channels: int, cells: int) -> None:
        super().__init__()
        c_curr = STEM_MULTIPLIER * channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_prev_prev, c_prev, c_curr = c_curr, c_curr, channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(cells):
            reduction = i in (cells // 3, 2 * cells // 3)
            if reduction:
                c_curr *= 2
            cell = Cell(reduce if reduction else normal, c_prev_prev, c_prev, c_curr,
                        reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.out_channels
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (no auxiliary logits)."""
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))
