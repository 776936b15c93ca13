"""The trainable GNN space (``gnn``): NAS-Bench-Graph's architectures, trained for real.

The same decisions and graphs as
:class:`~naslab.search_spaces.nasbench_graph.NasBenchGraphSpace` (a wiring ``link``
among nine and an operation ``op1`` .. ``op4`` per layer among ``gat gcn gin cheb
sage arma graph fc skip``: 59,040 decision combinations, 26,206 distinct networks),
but evaluated by training each network on a graph task
(:class:`~naslab.workers.graph_task.GraphTask`, e.g. ``sbm``, ``karate``, ``cora``)
instead of looking it up in a table. ``nasbench_graph`` stays the fast table
benchmark of the same space.

Unlike ``nasbench_graph``, whose tables were computed with the benchmark's own
settings, ``hidden``, ``dropout`` and the operation vocabulary here change what is
trained, so they are always part of :meth:`GNNSpace.config` (and of the key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import networkx as nx

from naslab.core.errors import ConfigError, InvalidArchitectureError
from naslab.core.validation import check_float, check_int
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.decisions import Value
from naslab.search_spaces.nasbench_graph import (
    LINKS,
    N_LAYERS,
    OPS,
    PROTEINS_OPS,
    SKIP,
    NasBenchGraphSpace,
)

if TYPE_CHECKING:
    from torch import nn

__all__ = ["OP_SETS", "GNNSpace"]

#: Named operation vocabularies: all nine, or the five of NAS-Bench-Graph's proteins.
OP_SETS: dict[str, tuple[str, ...]] = {"all": OPS, "proteins": PROTEINS_OPS}


def _check_ops(ops: Any) -> tuple[str, ...]:
    """``ops`` (a name of :data:`OP_SETS`, a comma-separated string or a sequence of
    operation names) as a tuple in :data:`OPS` order."""
    if isinstance(ops, str):
        names = OP_SETS.get(ops) or tuple(p.strip() for p in ops.split(","))
    elif isinstance(ops, Sequence) and not isinstance(ops, (bytes, bytearray)):
        names = tuple(ops)
    else:
        raise ConfigError(f"gnn's ops must be 'all', 'proteins' or a list of operations from "
                          f"{', '.join(OPS)}; got {ops!r}")
    unknown = [n for n in names if not isinstance(n, str) or n not in OPS]
    if unknown or not names:
        raise ConfigError(f"gnn's ops: unknown operation(s) {unknown!r}; choose from "
                          f"{', '.join(OPS)} (or 'all', 'proteins')" if unknown else
                          "gnn's ops must name at least one operation")
    if len(set(names)) != len(names):
        raise ConfigError(f"gnn's ops lists an operation twice: {list(names)}")
    if set(names) == {SKIP}:
        raise ConfigError("gnn's ops must hold an operation besides 'skip' (an all-skip "
                          "network computes nothing)")
    return tuple(op for op in OPS if op in names)


class GNNSpace(NasBenchGraphSpace):
    """NAS-Bench-Graph's macro space of GNNs, trained on a graph task.

    Args:
        hidden: width of every GNN layer (1 to 4096).
        dropout: dropout rate applied to each layer's input and the classifier's.
        ops: the operation vocabulary: ``"all"`` (the nine), ``"proteins"`` (``gcn sage
            arma fc skip``), or a list (or comma-separated string) of operation names
            including one besides ``skip``.

    :meth:`build` returns a PyTorch Geometric network mapping ``(x, edge_index)`` to
    logits for every node of a task with ``input_shape == (num_features,)``.
    """

    name = "gnn"
    stable_key = True  # a built-in space: its key is its name plus its config

    def __init__(self, hidden: int = 64, dropout: float = 0.5, ops: Any = "all") -> None:
        self.dataset = "cora"  # unused: the vocabulary comes from ``ops``
        self.hidden = check_int("gnn's hidden", hidden, minimum=1, maximum=4096)
        self.dropout = check_float("gnn's dropout", dropout, minimum=0.0, maximum=1.0,
                                   strict_maximum=True)
        self.ops = _check_ops(ops)
        self.operations = self.ops

    def config(self) -> dict[str, Any]:
        """``hidden``, ``dropout`` and ``ops`` (always: they change what is trained)."""
        return {"hidden": self.hidden, "dropout": self.dropout, "ops": list(self.ops)}

    def __repr__(self) -> str:
        ops = next((k for k, v in OP_SETS.items() if v == self.ops), list(self.ops))
        return f"GNNSpace(hidden={self.hidden}, dropout={self.dropout}, ops={ops!r})"

    def to_graph(self, decisions: Mapping[str, Value]) -> nx.DiGraph:
        """The network as computed (see :mod:`naslab.search_spaces.nasbench_graph`)."""
        try:
            return super().to_graph(decisions)
        except InvalidArchitectureError as exc:
            raise InvalidArchitectureError(str(exc).replace("nasbench_graph", "gnn", 1)) from None

    def build(self, arch: Architecture, task: Any) -> nn.Module:
        """A PyG network for a node-classification task with ``input_shape`` ``(F,)``."""
        shape = tuple(task.input_shape)
        if len(shape) != 1:
            raise InvalidArchitectureError(
                "gnn builds GNNs for node features of shape (num_features,); task "
                f"{getattr(task, 'name', '?')!r} has input_shape {shape} (use a graph task "
                "such as 'sbm' or 'karate')")
        from naslab.search_spaces.nasbench_graph_network import NasBenchGraphNetwork

        return NasBenchGraphNetwork(arch.graph, int(shape[0]), int(task.num_classes),
                                    self.hidden, self.dropout)

    def size(self) -> int:
        """Number of decision combinations (all-``skip`` excluded), before isomorphism."""
        all_skip = 1 if SKIP in self.ops else 0
        return len(LINKS) * (len(self.ops) ** N_LAYERS - all_skip)
