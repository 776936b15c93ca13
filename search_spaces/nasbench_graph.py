"""The NAS-Bench-Graph macro space (``nasbench_graph``).

NAS-Bench-Graph (Qin et al., NeurIPS 2022; the ``nas-bench-graph`` package) trained
every GNN of a small macro space on nine node-classification data sets. A network
has four computing nodes (GNN layers); each reads exactly one earlier node (the raw
input is node 0) and applies one operation. The layers nobody reads (the *leaves*)
feed the output, which the package's README says "all leaf nodes are connected to".

Decisions (this module's encoding):

* ``link``: the wiring, one of the package's nine canonical patterns
  (:data:`LINKS`), written as the input index of layers 1..4 joined by ``-``:
  ``"0-0-1-2"`` means layer 1 and layer 2 read the input, layer 3 reads layer 1 and
  layer 4 reads layer 2. (The other 15 wirings of four single-input layers are
  relabelings of these nine; the package maps them onto the nine too, see
  :func:`bench_key`.)
* ``op1`` .. ``op4``: the operation of layer 1..4, among the nine operations
  ``gat gcn gin cheb sage arma graph fc skip`` (:data:`OPS`). The ``proteins``
  table covers only ``gcn sage arma fc skip`` (:data:`PROTEINS_OPS`, the package's
  ``gnn_list_proteins``), so ``NasBenchGraphSpace("proteins")`` offers only those.

An architecture whose four layers are all ``skip`` computes nothing; the package
leaves it out of its tables and this space refuses it (sampling, mutation,
crossover and neighbourhoods never produce it).

The graph (:meth:`NasBenchGraphSpace.to_graph`) is the network as computed, built so
that two architectures get the same canonical hash exactly when the package gives
them the same table row (checked exhaustively by ``pytest -m slow``: 59,040 decision
combinations, 26,206 classes on both sides):

* ``skip`` layers are identities and are contracted away: a layer reads the nearest
  non-``skip`` node up its chain (or the input).
* Each leaf feeds the output through what it resolves to. A leaf that resolves to
  the raw input (a chain of ``skip`` from the input) is dropped: the package treats
  it as absent (its ``check_dim``: the raw features do not have the hidden width).
* A layer that k > 1 leaves resolve to (a layer read by several ``skip`` leaves)
  feeds the output k times: one direct edge plus k - 1 ``skip`` nodes, because the
  package keeps such multiplicities apart (e.g. ``0-0-1-1 gat gat skip skip``, where
  layer 1 reaches the output twice, is not ``0-0-0-0 gat gat skip skip``).

Node ids: ``in``, ``out``, ``n1`` .. ``n4`` (the layer's position) and
``n{i}_copy{j}`` for the extra ``skip`` copies.

:meth:`NasBenchGraphSpace.build` returns a PyTorch Geometric network following the
same graph: ``forward(x, edge_index) -> logits`` for every node of the input graph.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from naslab.core.errors import InvalidArchitectureError
from naslab.core.validation import check_choice, check_float, check_int
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.search_spaces.decisions import Categorical, Decision, Value, sample_decisions

if TYPE_CHECKING:
    from torch import nn


def __getattr__(name: str) -> Any:
    # the network (and torch) is imported only when a model is built, so that a
    # table search starts without loading torch
    if name == "NasBenchGraphNetwork":
        from naslab.search_spaces.nasbench_graph_network import NasBenchGraphNetwork

        return NasBenchGraphNetwork
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "DATASETS",
    "LINKS",
    "OPS",
    "PROTEINS_OPS",
    "NasBenchGraphSpace",
    "bench_key",
    "decisions_from_key",
    "link_string",
    "parse_link",
]

#: The nine data sets of the package's tables (``nas_bench_graph/light/*.bench``).
DATASETS: tuple[str, ...] = (
    "cora",
    "citeseer",
    "pubmed",
    "cs",
    "physics",
    "photo",
    "computers",
    "arxiv",
    "proteins",
)

#: The package's nine canonical link patterns (``nas_bench_graph.link_list``):
#: the input index of layers 1..4 (0 = the raw input).
LINK_PATTERNS: tuple[tuple[int, int, int, int], ...] = (
    (0, 0, 0, 0),
    (0, 0, 0, 1),
    (0, 0, 1, 1),
    (0, 0, 1, 2),
    (0, 0, 1, 3),
    (0, 1, 1, 1),
    (0, 1, 1, 2),
    (0, 1, 2, 2),
    (0, 1, 2, 3),
)

#: The nine operations in the package's order (``nas_bench_graph.gnn_list``).
OPS: tuple[str, ...] = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")

#: The operations the proteins table covers (``nas_bench_graph.gnn_list_proteins``).
PROTEINS_OPS: tuple[str, ...] = ("gcn", "sage", "arma", "fc", "skip")

SKIP = "skip"
N_LAYERS = 4
OP_NAMES: tuple[str, ...] = tuple(f"op{i}" for i in range(1, N_LAYERS + 1))


def link_string(link: Sequence[int]) -> str:
    """The ``link`` decision value of a pattern: ``(0, 0, 1, 2)`` -> ``"0-0-1-2"``."""
    return "-".join(str(int(i)) for i in link)


def parse_link(text: str) -> tuple[int, ...]:
    """Inverse of :func:`link_string`; refuses a malformed or non-causal wiring."""
    try:
        link = tuple(int(part) for part in str(text).split("-"))
    except ValueError:
        link = ()
    if len(link) != N_LAYERS or any(not 0 <= p <= i for i, p in enumerate(link)):
        raise InvalidArchitectureError(
            f"nasbench_graph: bad link {text!r}; expected 4 '-'-separated input indices, "
            "layer i (from 1) reading 0..i-1, e.g. '0-0-1-2'"
        )
    return link


#: The ``link`` decision's values, in the package's order.
LINKS: tuple[str, ...] = tuple(link_string(p) for p in LINK_PATTERNS)


def _layers(decisions: Mapping[str, Any]) -> tuple[tuple[int, ...], list[str]]:
    return parse_link(decisions["link"]), [str(decisions[n]) for n in OP_NAMES]


def bench_key(arch: Architecture | Mapping[str, Any]) -> int:
    """The key of ``arch``'s row in the package's tables.

    Computed by the package itself (``Arch(link, ops).valid_hash()``), from an
    :class:`Architecture` of this space or from its decisions. Every data set's table
    uses the same keys (proteins' too: ``valid_hash`` always numbers the operations
    by the full nine-operation list); the key is the canonical link's index followed
    by the four operations' indices, in base 10 (see :func:`decisions_from_key`).
    """
    from nas_bench_graph.architecture import Arch

    decisions = arch.decisions if isinstance(arch, Architecture) else arch
    link, ops = _layers(decisions)
    unknown = sorted(set(ops) - set(OPS))
    if unknown:
        raise InvalidArchitectureError(
            f"nasbench_graph: unknown operation(s) {unknown}; known: {', '.join(OPS)}"
        )
    return int(Arch(list(link), ops).valid_hash())


def decisions_from_key(key: int) -> dict[str, str]:
    """The decisions that a table key encodes (the package's canonical form).

    Inverse of :func:`bench_key` up to isomorphism: ``bench_key(decisions_from_key(k))
    == k`` for every key of the tables.
    """
    key = int(key)
    digits = []
    rest = key
    for _ in range(N_LAYERS):
        rest, d = divmod(rest, len(OPS) + 1)
        digits.append(d)
    if not 0 <= rest < len(LINKS) or any(d >= len(OPS) for d in digits) or key < 0:
        raise InvalidArchitectureError(f"nasbench_graph: {key} is not a table key")
    ops = [OPS[d] for d in reversed(digits)]
    return {"link": LINKS[rest], **dict(zip(OP_NAMES, ops))}


def _all_skip(decisions: Mapping[str, Any]) -> bool:
    return all(decisions.get(n) == SKIP for n in OP_NAMES)


class NasBenchGraphSpace(SearchSpace):
    """NAS-Bench-Graph's macro space: 9 wirings x 9^4 operations, 26,206 classes.

    Args:
        dataset: the data set whose operation vocabulary to use, one of
            :data:`DATASETS`. Only ``proteins`` differs (5 operations, 2,021
            classes); for every other data set the space is the same, so its
            :attr:`key` is the same (the data set belongs to the evaluator's key).
        hidden: width of every GNN layer in :meth:`build` (1 to 4096).
        dropout: dropout rate in :meth:`build`.

    ``hidden`` and ``dropout`` only shape the module that :meth:`build` returns (the
    benchmark tuned them per data set; the tables were not computed with these
    values); when they differ from the defaults they are part of :meth:`config`.
    """

    name = "nasbench_graph"
    stable_key = True  # a built-in space: its key is its name plus its config
    _DEFAULT_HIDDEN = 64
    _DEFAULT_DROPOUT = 0.5

    def __init__(
        self,
        dataset: str = "cora",
        hidden: int = _DEFAULT_HIDDEN,
        dropout: float = _DEFAULT_DROPOUT,
    ) -> None:
        self.dataset = check_choice("NAS-Bench-Graph data set", dataset, DATASETS)
        self.hidden = check_int("nasbench_graph's hidden", hidden, minimum=1, maximum=4096)
        self.dropout = check_float("nasbench_graph's dropout", dropout, minimum=0.0,
                                   maximum=1.0, strict_maximum=True)
        self.ops: tuple[str, ...] = PROTEINS_OPS if self.dataset == "proteins" else OPS
        #: Node labels this instance produces besides input and output.
        self.operations = self.ops

    def config(self) -> dict[str, Any]:
        """``{"ops": "proteins"}`` for the proteins vocabulary, plus non-default
        ``hidden``/``dropout``; ``{}`` (key ``nasbench_graph``) otherwise."""
        cfg: dict[str, Any] = {}
        if self.ops != OPS:
            cfg["ops"] = "proteins"
        if self.hidden != self._DEFAULT_HIDDEN:
            cfg["hidden"] = self.hidden
        if self.dropout != self._DEFAULT_DROPOUT:
            cfg["dropout"] = self.dropout
        return cfg

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}={getattr(self, k)!r}" for k in ("hidden", "dropout") if k in self.config()
        )
        return f"NasBenchGraphSpace(dataset={self.dataset!r}{extra})"

    # -- declarations and graph ---------------------------------------------------

    def decisions(self) -> Sequence[Decision]:
        """``link`` (one of :data:`LINKS`) and ``op1`` .. ``op4`` (the vocabulary)."""
        return [Categorical("link", LINKS)] + [Categorical(n, self.ops) for n in OP_NAMES]

    def to_graph(self, decisions: Mapping[str, Value]) -> nx.DiGraph:
        """The network as computed (see the module docstring); refuses all-``skip``."""
        link, ops = _layers(decisions)
        if all(op == SKIP for op in ops):
            raise InvalidArchitectureError(
                "nasbench_graph: all four layers are 'skip', so the network computes "
                "nothing; NAS-Bench-Graph leaves this architecture out"
            )

        def resolve(i: int) -> int:
            # The node whose output node i passes on: itself, or up a skip chain.
            while i > 0 and ops[i - 1] == SKIP:
                i = link[i - 1]
            return i

        def node(i: int) -> str:
            return "in" if i == 0 else f"n{i}"

        g = nx.DiGraph()
        g.add_node("in", op="input")
        for i in range(1, N_LAYERS + 1):
            if ops[i - 1] != SKIP:
                g.add_node(node(i), op=ops[i - 1])
        g.add_node("out", op="output")
        for i in range(1, N_LAYERS + 1):
            if ops[i - 1] != SKIP:
                g.add_edge(node(resolve(link[i - 1])), node(i))
        leaves = [i for i in range(1, N_LAYERS + 1) if i not in link]
        reach = Counter(resolve(i) for i in leaves)
        reach.pop(0, None)  # leaves that pass the raw input on are dropped
        for i, times in sorted(reach.items()):
            g.add_edge(node(i), "out")
            for j in range(1, times):
                copy = f"n{i}_copy{j}"
                g.add_node(copy, op=SKIP)
                g.add_edge(node(i), copy)
                g.add_edge(copy, "out")
        return g

    def build(self, arch: Architecture, task: Any) -> nn.Module:
        """A PyG network for a node-classification task.

        ``task.input_shape`` is ``(num_features,)``; the module maps ``(x,
        edge_index)`` to ``(num_nodes, task.num_classes)`` logits.
        """
        shape = tuple(task.input_shape)
        if len(shape) != 1:
            raise InvalidArchitectureError(
                "nasbench_graph builds GNNs for node features of shape (num_features,); "
                f"task {getattr(task, 'name', '?')!r} has input_shape {shape}"
            )
        from naslab.search_spaces.nasbench_graph_network import NasBenchGraphNetwork

        return NasBenchGraphNetwork(
            arch.graph, int(shape[0]), int(task.num_classes), self.hidden, self.dropout
        )

    # -- the generic operators, kept away from the all-skip architecture ----------

    def size(self) -> int:
        """Number of decision combinations (all-``skip`` excluded), before isomorphism."""
        return len(LINKS) * (len(self.ops) ** N_LAYERS - 1)

    def sample(self, rng: np.random.Generator) -> Architecture:
        """A uniformly random architecture (rejecting the all-``skip`` one)."""
        while True:
            decisions = sample_decisions(self.decisions(), rng)
            if not _all_skip(decisions):
                return self.from_decisions(decisions)

    def mutate(
        self, arch: Architecture, rng: np.random.Generator, max_tries: int = 50
    ) -> Architecture:
        """A copy of ``arch`` with one decision changed; differs from ``arch`` (a
        different canonical hash) whenever ``max_tries`` draws find one."""
        declared = {d.name: d for d in self.decisions()}
        names = [n for n in arch.decisions if len(declared[n].values) > 1]
        candidate = arch
        for _ in range(max_tries):
            name = names[int(rng.integers(len(names)))]
            others = [v for v in declared[name].values if v != arch.decisions[name]]
            new = {**arch.decisions, name: others[int(rng.integers(len(others)))]}
            if _all_skip(new):
                continue
            candidate = self.from_decisions(new)
            if candidate != arch:
                return candidate
        return candidate

    def crossover(self, a: Architecture, b: Architecture, rng: np.random.Generator) -> Architecture:
        """Uniform crossover of the decisions (redrawn if it gives all-``skip``)."""
        for _ in range(100):
            mixed = {
                d.name: (a, b)[int(rng.integers(2))].decisions[d.name] for d in self.decisions()
            }
            if not _all_skip(mixed):
                return self.from_decisions(mixed)
        return a  # pragma: no cover - needs 100 unlucky draws

    def neighbours(self, arch: Architecture) -> list[Architecture]:
        """Every distinct architecture one decision away (all-``skip`` excluded)."""
        seen = {arch.hash}
        out: list[Architecture] = []
        for d in self.decisions():
            for other in d.neighbour_values(arch.decisions[d.name]):
                new = {**arch.decisions, d.name: other}
                if _all_skip(new):
                    continue
                cand = self.from_decisions(new)
                if cand.hash not in seen:
                    seen.add(cand.hash)
                    out.append(cand)
        return out
