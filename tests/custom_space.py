"""A user-defined space, written only against the public API (as in the README)."""

from __future__ import annotations

import networkx as nx
from torch import nn

from naslab import Architecture, Categorical, Condition, Integer, SearchSpace


class TinyMLPSpace(SearchSpace):
    """An MLP on flattened inputs: 1-3 hidden layers, each with its own width."""

    name = "tiny_mlp"
    operations = ("linear",)

    def decisions(self):
        return [
            Integer("layers", 1, 3),
            Categorical("width_1", (16, 32, 64)),
            Categorical("width_2", (16, 32, 64), Condition("layers", (2, 3))),
            Categorical("width_3", (16, 32, 64), Condition("layers", (3,))),
            Categorical("act", ("relu", "tanh")),
        ]

    def to_graph(self, d):
        g = nx.DiGraph()
        g.add_node("in", op="input")
        prev = "in"
        for i in range(1, d["layers"] + 1):
            g.add_node(i, op="linear", width=d[f"width_{i}"], act=d["act"])
            g.add_edge(prev, i)
            prev = i
        g.add_node("out", op="output")
        g.add_edge(prev, "out")
        return g

    def build(self, arch: Architecture, task) -> nn.Module:
        in_features = 1
        for s in task.input_shape:
            in_features *= s
        layers: list[nn.Module] = [nn.Flatten()]
        d = arch.decisions
        act = nn.ReLU if d["act"] == "relu" else nn.Tanh
        for i in range(1, d["layers"] + 1):
            layers += [nn.Linear(in_features, d[f"width_{i}"]), act()]
            in_features = d[f"width_{i}"]
        layers.append(nn.Linear(in_features, task.num_classes))
        return nn.Sequential(*layers)
