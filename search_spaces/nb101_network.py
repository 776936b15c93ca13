"""The PyTorch network of a NAS-Bench-101 cell
(:class:`~naslab.search_spaces.nb101.NB101Space`), following ``nasbench``'s
``model_builder.py`` and ``base_ops.py``.

Skeleton: a 3x3 conv-BN-ReLU stem of width C, three stacks of ``cells`` cells (max
pooling 2x2, stride 2, before the second and third stacks, each doubling the
width), global average pooling and a linear classifier.

In a cell of output width C: the output concatenates the intermediate vertices that
feed it, their widths splitting C as evenly as possible (the first ones in vertex
order get the remainder, as ``compute_vertex_channels``); every other intermediate
vertex is as wide as the widest vertex it feeds. A vertex sums its inputs: other
vertices' outputs cut to its width (their first channels) and, when the input feeds
it, a 1x1 conv-BN-ReLU projection of the input. When the input feeds the output,
its projection to C is added to the concatenation (or is the output, when no
intermediate vertex feeds it).

Convolutions have no bias, as in NAS-Bench-101; batch normalisation uses PyTorch's
defaults (NAS-Bench-101's momentum of 0.997 suits its 108-epoch runs, not a few
epochs on a small data set).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from naslab.core.errors import InvalidArchitectureError

__all__ = ["NB101Cell", "NB101Network", "conv_bn_relu", "vertex_channels"]


def conv_bn_relu(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    """Convolution (no bias, 'same' padding), batch normalisation, ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


def _op(op: str, channels: int) -> nn.Module:
    if op == "conv3x3-bn-relu":
        return conv_bn_relu(channels, channels, 3)
    if op == "conv1x1-bn-relu":
        return conv_bn_relu(channels, channels, 1)
    if op == "maxpool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise InvalidArchitectureError(f"nb101: no module for operation {op!r}")


def vertex_channels(in_channels: int, out_channels: int,
                    matrix: Sequence[Sequence[int]]) -> list[int]:
    """The width of every vertex of a pruned cell (``compute_vertex_channels``)."""
    n = len(matrix)
    widths = [0] * n
    widths[0], widths[n - 1] = in_channels, out_channels
    if n == 2:
        return widths
    feeding = [v for v in range(1, n - 1) if matrix[v][n - 1]]
    share, extra = divmod(out_channels, len(feeding))
    if share == 0:
        raise InvalidArchitectureError(
            f"nb101: {out_channels} channels cannot be split among the {len(feeding)} "
            "vertices that feed the output; use more channels")
    for k, v in enumerate(feeding):
        widths[v] = share + (1 if k < extra else 0)
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            widths[v] = max(widths[w] for w in range(v + 1, n - 1) if matrix[v][w])
    return widths


class NB101Cell(nn.Module):
    """One cell: ``forward(x)`` maps ``in_channels`` to ``out_channels`` channels at
    the same resolution. ``matrix`` and ``ops`` are a pruned spec (upper-triangular,
    ``ops[0] == 'input'``, ``ops[-1] == 'output'``)."""

    def __init__(self, matrix: Sequence[Sequence[int]], ops: Sequence[str],
                 in_channels: int, out_channels: int) -> None:
        super().__init__()
        n = len(ops)
        self.matrix = [[int(x) for x in row] for row in matrix]
        self.widths = vertex_channels(in_channels, out_channels, self.matrix)
        self.ops = nn.ModuleList(_op(ops[v], self.widths[v]) for v in range(1, n - 1))
        self.proj = nn.ModuleDict({
            str(v): conv_bn_relu(in_channels, self.widths[v], 1)
            for v in range(1, n) if self.matrix[0][v]
        })

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - standard forward
        n = len(self.matrix)
        values: list[torch.Tensor] = [x]
        concat: list[torch.Tensor] = []
        for t in range(1, n - 1):
            width = self.widths[t]
            parts = [values[s][:, :width] for s in range(1, t) if self.matrix[s][t]]
            if self.matrix[0][t]:
                parts.append(self.proj[str(t)](x))
            total = parts[0]
            for p in parts[1:]:
                total = total + p
            values.append(self.ops[t - 1](total))
            if self.matrix[t][n - 1]:
                concat.append(values[t])
        skip = self.proj[str(n - 1)](x) if self.matrix[0][n - 1] else None
        if not concat:
            assert skip is not None
            return skip
        out = concat[0] if len(concat) == 1 else torch.cat(concat, dim=1)
        return out if skip is None else out + skip


class NB101Network(nn.Module):
    """Stem, three stacks of cells with max-pool downsampling, pooling, classifier."""

    def __init__(self, matrix: Sequence[Sequence[int]], ops: Sequence[str], in_channels: int,
                 num_classes: int, channels: int, cells: int) -> None:
        super().__init__()
        self.stem = conv_bn_relu(in_channels, channels, 3)
        layers: list[nn.Module] = []
        width = channels
        for stack in range(3):
            out = width
            if stack > 0:
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                out = width * 2
            for _ in range(cells):
                layers.append(NB101Cell(matrix, ops, width, out))
                width = out
        self.cells = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - standard forward
        return self.classifier(self.pool(self.cells(self.stem(x))))
