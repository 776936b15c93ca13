"""A ``torch.nn.Module`` that executes an architecture's labelled DAG.

Spaces whose networks are their graphs (cells, chains) build from the graph rather
than from the decisions, so two architectures with the same canonical hash get the
same module structure, parameter count and FLOPs.

Node semantics: ``input`` yields the module's input; ``add`` and ``output`` sum
their predecessors (an ``output`` with no predecessor yields zeros shaped like the
input); every other node applies its operation, built by ``make_op``, to the sum of
its predecessors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx
import torch
from torch import nn

from naslab.core.errors import InvalidArchitectureError

#: ``make_op(attrs, in_channels) -> (module, out_channels)``
OpFactory = Callable[[dict[str, Any], int], tuple[nn.Module, int]]

_SUM_OPS = ("add", "output")


class GraphModule(nn.Module):
    """Runs ``graph`` on tensors whose channel dimension is dimension 1."""

    def __init__(self, graph: nx.DiGraph, make_op: OpFactory, in_channels: int) -> None:
        super().__init__()
        self._order = list(nx.lexicographical_topological_sort(graph, key=str))
        self._index = {v: i for i, v in enumerate(self._order)}
        self._preds = [
            sorted(self._index[p] for p in graph.predecessors(v)) for v in self._order
        ]
        self._kinds: list[str] = []
        self.ops = nn.ModuleDict()
        channels: list[int] = []
        for i, v in enumerate(self._order):
            attrs = dict(graph.nodes[v])
            op = attrs["op"]
            in_ch = {channels[p] for p in self._preds[i]}
            if len(in_ch) > 1:
                raise InvalidArchitectureError(
                    f"node {v!r} ({op}) sums inputs of different widths {sorted(in_ch)}"
                )
            cin = in_ch.pop() if in_ch else in_channels
            if op == "input":
                self._kinds.append("input")
                channels.append(in_channels)
            elif op in _SUM_OPS:
                self._kinds.append("sum")
                channels.append(cin)
            else:
                module, cout = make_op(attrs, cin)
                self.ops[f"n{i}"] = module
                self._kinds.append("op")
                channels.append(cout)
        outputs = [i for i, v in enumerate(self._order) if graph.nodes[v]["op"] == "output"]
        if len(outputs) != 1:
            raise InvalidArchitectureError("graph needs exactly one 'output' node")
        self._out = outputs[0]
        self.out_channels = channels[self._out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate the graph on ``x``; returns the output node's value."""
        values: list[torch.Tensor | None] = []
        for i, kind in enumerate(self._kinds):
            preds = self._preds[i]
            if kind == "input":
                values.append(x)
                continue
            total: torch.Tensor | None = None
            for p in preds:
                val = values[p]
                assert val is not None
                total = val if total is None else total + val
            if kind == "sum":
                values.append(torch.zeros_like(x) if total is None else total)
            else:
                values.append(self.ops[f"n{i}"](total if total is not None else x))
        out = values[self._out]
        assert out is not None
        return out
