"""Flat, space-agnostic encodings of architectures, learned at fit time.

Tree models, linear models and the like need every architecture as a fixed-length
vector of numbers. The two encoders here learn that layout from the architectures
they are fitted on, so they work for any search space, user-defined ones included,
without knowing its declarations:

* :class:`DecisionEncoder` encodes an architecture's *decisions*: a one-hot block per
  categorical decision (strings and booleans), the number itself for numeric ones
  (integers and floats) and an "is active" column for every decision that some
  fitted architectures lack (conditional decisions).
* :class:`PathEncoder` encodes an architecture's *graph*: the number of times each
  input-to-output path, written as the sequence of its nodes' labels, occurs (the
  path encoding of White et al., "BANANAS", AAAI 2021).

Both follow scikit-learn's ``fit`` / ``transform`` convention, return ``float64``
matrices and save to (and load from) JSON with :meth:`~DecisionEncoder.to_json` /
:meth:`~DecisionEncoder.from_json`, so a fitted encoder can travel in a saved
predictor's header.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np

from naslab.core.errors import ConfigError
from naslab.core.validation import check_int
from naslab.predictors.base import check_archs
from naslab.search_spaces.architecture import Architecture

__all__ = [
    "DEFAULT_MAX_PATHS_PER_GRAPH",
    "DEFAULT_MAX_VOCAB",
    "DecisionEncoder",
    "PathEncoder",
    "encoder_from_json",
    "graph_paths",
    "node_label",
]

#: Largest number of distinct paths a :class:`PathEncoder` keeps (the most frequent).
DEFAULT_MAX_VOCAB = 4096
#: Largest number of input-output paths enumerated per graph.
DEFAULT_MAX_PATHS_PER_GRAPH = 1024

_VERSION = 1


def _not_fitted(what: str) -> ConfigError:
    return ConfigError(f"this {what} is not fitted yet; call fit(archs) first")




def _load_json(data: Mapping[str, Any] | str, kind: str) -> dict[str, Any]:
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise ConfigError(f"a saved {kind} is not valid JSON ({exc})") from None
    if not isinstance(data, Mapping) or data.get("kind") != kind:
        got = data.get("kind") if isinstance(data, Mapping) else type(data).__name__
        raise ConfigError(f"not a saved {kind} (kind {got!r})")
    if int(data.get("version", -1)) > _VERSION:
        raise ConfigError(
            f"the {kind} was saved in version {data.get('version')}; this naslab reads up to "
            f"{_VERSION}: upgrade naslab"
        )
    return dict(data)


# --------------------------------------------------------------------- decisions

_NUMERIC, _CATEGORICAL = "numeric", "categorical"


def _plain(value: Any) -> Any:
    """A decision value as a plain Python str/bool/int/float (numpy scalars unwrapped)."""
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _value_key(value: Any) -> tuple[str, Any]:
    """A hashable, type-strict key: ``True``, ``1``, ``1.0`` and ``"1"`` all differ."""
    value = _plain(value)
    if isinstance(value, (str, bool, int, float)):
        return type(value).__name__, value
    # anything else (not produced by the declared decisions) is keyed by its text
    return "repr", repr(value)


def _key_sort(key: tuple[str, Any]) -> tuple[str, str, Any]:
    tag, value = key
    return (tag, "", value) if tag in ("int", "float", "bool") else (tag, str(value), 0)


class DecisionEncoder:
    """One row per architecture from its decisions, with a layout learned by :meth:`fit`.

    For each decision name seen at fit time (in sorted order):

    * numeric decisions (every fitted value an ``int`` or ``float``, not ``bool``)
      get one column holding the value;
    * other decisions (strings, booleans, mixed types) get a one-hot block over the
      values seen at fit time, in a canonical order; a value not seen at fit time
      encodes as all zeros in its block, so does a non-number given to a numeric
      decision;
    * a decision absent from some fitted architectures (a conditional decision) also
      gets an ``is active`` column (1 where present); where it is absent its other
      columns are 0.

    Decisions that were never seen at fit time are ignored by :meth:`transform`.
    """

    kind = "decision_encoder"

    def __init__(self) -> None:
        self.decisions_: list[dict[str, Any]] | None = None

    # -- fitting ---------------------------------------------------------------

    def fit(self, archs: Sequence[Architecture]) -> DecisionEncoder:
        """Learn the decision names and the values seen; returns ``self``."""
        archs = check_archs(archs)
        seen: dict[str, set[tuple[str, Any]]] = {}
        present: Counter[str] = Counter()
        for arch in archs:
            for name, value in arch.decisions.items():
                seen.setdefault(str(name), set()).add(_value_key(value))
                present[str(name)] += 1
        decisions = []
        for name in sorted(seen):
            keys = sorted(seen[name], key=_key_sort)
            numeric = all(tag in ("int", "float") for tag, _ in keys)
            entry: dict[str, Any] = {
                "name": name,
                "type": _NUMERIC if numeric else _CATEGORICAL,
                "conditional": present[name] < len(archs),
            }
            if not numeric:
                entry["values"] = [[tag, value] for tag, value in keys]
            decisions.append(entry)
        self._set(decisions)
        return self

    def _set(self, decisions: list[dict[str, Any]]) -> None:
        self.decisions_ = decisions
        names: list[str] = []
        # per decision: (name, numeric column or None, {key: column}, active column or None)
        self._plan: list[tuple[str, int | None, dict[tuple[str, Any], int], int | None]] = []
        for entry in decisions:
            name = entry["name"]
            num_col, onehot = None, {}
            if entry["type"] == _NUMERIC:
                num_col = len(names)
                names.append(name)
            else:
                for tag, value in entry["values"]:
                    onehot[(tag, value)] = len(names)
                    names.append(f"{name}={json.dumps(value)}")
            active_col = None
            if entry["conditional"]:
                active_col = len(names)
                names.append(f"{name}:active")
            self._plan.append((name, num_col, onehot, active_col))
        self.feature_names_ = names

    # -- using -----------------------------------------------------------------

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_json`) has run."""
        return self.decisions_ is not None

    @property
    def n_features(self) -> int:
        """Number of columns of :meth:`transform`'s output."""
        if not self.fitted:
            raise _not_fitted("DecisionEncoder")
        return len(self.feature_names_)

    def transform(self, archs: Sequence[Architecture]) -> np.ndarray:
        """The encoding of ``archs``: a ``(len(archs), n_features)`` float64 matrix."""
        if not self.fitted:
            raise _not_fitted("DecisionEncoder")
        archs = check_archs(archs)
        out = np.zeros((len(archs), len(self.feature_names_)), dtype=np.float64)
        plan = self._plan
        for row, arch in enumerate(archs):
            decisions = arch.decisions
            for name, num_col, onehot, active_col in plan:
                if name not in decisions:
                    continue
                value = _plain(decisions[name])
                if active_col is not None:
                    out[row, active_col] = 1.0
                if num_col is not None:
                    if _is_number(value) and math.isfinite(value):
                        out[row, num_col] = value
                else:
                    col = onehot.get(_value_key(value))
                    if col is not None:
                        out[row, col] = 1.0
        return out

    def fit_transform(self, archs: Sequence[Architecture]) -> np.ndarray:
        """:meth:`fit` then :meth:`transform`."""
        archs = check_archs(archs)
        return self.fit(archs).transform(archs)

    # -- saving ----------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The fitted layout as a JSON-ready dict."""
        if not self.fitted:
            raise _not_fitted("DecisionEncoder")
        return {"kind": self.kind, "version": _VERSION, "decisions": self.decisions_}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> DecisionEncoder:
        """Rebuild an encoder from :meth:`to_json` output (a dict or its JSON text)."""
        data = _load_json(data, cls.kind)
        decisions = []
        try:
            for entry in data["decisions"]:
                kind = str(entry["type"])
                if kind not in (_NUMERIC, _CATEGORICAL):
                    raise ValueError(f"unknown decision type {kind!r}")
                clean: dict[str, Any] = {
                    "name": str(entry["name"]),
                    "type": kind,
                    "conditional": bool(entry["conditional"]),
                }
                if kind == _CATEGORICAL:
                    clean["values"] = [[str(tag), value] for tag, value in entry["values"]]
                    if not all(isinstance(v, (str, bool, int, float)) for _, v in clean["values"]):
                        raise ValueError(f"decision {clean['name']!r} has a non-scalar value")
                decisions.append(clean)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"a saved DecisionEncoder is malformed ({exc!r})") from None
        encoder = cls()
        encoder._set(decisions)
        return encoder

    def __repr__(self) -> str:
        state = f"{len(self.feature_names_)} columns" if self.fitted else "not fitted"
        return f"DecisionEncoder({state})"


# ------------------------------------------------------------------------- paths


def _attr_text(value: Any) -> str:
    value = _plain(value)
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return json.dumps(str(value))


def node_label(attrs: Mapping[str, Any]) -> str:
    """A node's label in a path: its ``op``, plus its other attributes if it has any.

    ``{"op": "conv", "width": 16, "kernel": 3}`` gives ``'conv{kernel=3,width=16}'``
    (attributes sorted by name, values written as JSON); ``{"op": "gcn"}`` gives
    ``'gcn'``.
    """
    op = str(attrs.get("op", "?"))
    extra = sorted((str(k), v) for k, v in attrs.items() if k != "op")
    if not extra:
        return op
    return op + "{" + ",".join(f"{k}={_attr_text(v)}" for k, v in extra) + "}"


def _endpoints(graph: nx.DiGraph) -> tuple[list[Hashable], set[Hashable]]:
    """Start nodes (``op == "input"``, else the sources) and end nodes (likewise)."""
    ops = graph.nodes(data="op")
    starts = [v for v, op in ops if op == "input"]
    ends = {v for v, op in ops if op == "output"}
    if not starts:
        starts = [v for v in graph.nodes if graph.in_degree(v) == 0]
    if not ends:
        ends = {v for v in graph.nodes if graph.out_degree(v) == 0}
    return starts, ends


def graph_paths(graph: nx.DiGraph, max_paths: int) -> tuple[list[tuple[str, ...]], bool]:
    """The label sequences of the input-output paths of ``graph`` (at most ``max_paths``).

    Returns the paths and whether the enumeration stopped at ``max_paths``. The
    enumeration visits successors in the order of their labels (then of their
    ids), so which paths are kept when the cap is hit does not depend on node ids
    except among equally labelled nodes. Only nodes that can still reach an end
    node are visited, and a node already on the current path is never revisited,
    so dead ends and cycles cost nothing.
    """
    starts, ends = _endpoints(graph)
    if not starts or not ends:
        return [], False
    labels = {v: node_label(graph.nodes[v]) for v in graph.nodes}
    useful: set[Hashable] = set(ends)
    for end in ends:
        useful |= nx.ancestors(graph, end)

    def order(v: Hashable) -> tuple[str, str]:
        return labels[v], str(v)

    succ = {v: sorted((w for w in graph.successors(v) if w in useful), key=order) for v in useful}
    paths: list[tuple[str, ...]] = []
    starts = sorted((s for s in starts if s in useful), key=order)
    for start in starts:
        # iterative depth-first search over (node, index of next successor to try)
        stack: list[tuple[Hashable, int]] = [(start, 0)]
        on_path = {start}
        while stack:
            node, i = stack[-1]
            if i == 0 and node in ends:
                paths.append(tuple(labels[v] for v, _ in stack))
                if len(paths) >= max_paths:
                    return paths, True
            nexts = succ[node]
            while i < len(nexts) and nexts[i] in on_path:
                i += 1
            if i < len(nexts):
                stack[-1] = (node, i + 1)
                stack.append((nexts[i], 0))
                on_path.add(nexts[i])
            else:
                stack.pop()
                on_path.discard(node)
    return paths, False


class PathEncoder:
    """Path encoding (White et al., BANANAS): counts of input-output label paths.

    A path is the sequence of the labels (:func:`node_label`) of the nodes on a
    directed path from the graph's ``input`` node to its ``output`` node, both
    included (a graph without such nodes uses its sources and its sinks). :meth:`fit`
    learns the vocabulary: the ``max_vocab`` paths that occur most often in the
    fitted graphs (ties broken by the paths' text, so the choice is
    deterministic). :meth:`transform` counts, per architecture, the occurrences of
    each vocabulary path, plus one last column (``<other>``) counting the paths
    outside the vocabulary.

    Args:
        max_vocab: the most paths kept in the vocabulary (default
            :data:`DEFAULT_MAX_VOCAB`, 4096).
        max_paths_per_graph: the number of paths of a DAG can grow exponentially
            with its size, so at most this many paths are enumerated per graph
            (default :data:`DEFAULT_MAX_PATHS_PER_GRAPH`, 1024); the rest are
            neither counted nor learned. :attr:`truncated_` counts the fitted graphs
            that hit the cap.
    """

    kind = "path_encoder"

    def __init__(
        self,
        max_vocab: int = DEFAULT_MAX_VOCAB,
        max_paths_per_graph: int = DEFAULT_MAX_PATHS_PER_GRAPH,
    ) -> None:
        self.max_vocab = check_int("max_vocab", max_vocab, minimum=1, maximum=1_000_000)
        self.max_paths_per_graph = check_int("max_paths_per_graph", max_paths_per_graph,
                                             minimum=1, maximum=1_000_000)
        self.vocabulary_: list[tuple[str, ...]] | None = None
        self.truncated_ = 0

    def _paths(self, arch: Architecture) -> tuple[list[tuple[str, ...]], bool]:
        return graph_paths(arch.graph, self.max_paths_per_graph)

    def fit(self, archs: Sequence[Architecture]) -> PathEncoder:
        """Learn the vocabulary of the most frequent paths; returns ``self``."""
        archs = check_archs(archs)
        counts: Counter[tuple[str, ...]] = Counter()
        truncated = 0
        for arch in archs:
            paths, cut = self._paths(arch)
            counts.update(paths)
            truncated += int(cut)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], _path_text(kv[0])))
        self._set([path for path, _ in ranked[: self.max_vocab]])
        self.truncated_ = truncated
        return self

    def _set(self, vocabulary: list[tuple[str, ...]]) -> None:
        self.vocabulary_ = vocabulary
        self._index = {path: i for i, path in enumerate(vocabulary)}
        self.feature_names_ = [_path_text(p) for p in vocabulary] + ["<other>"]

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_json`) has run."""
        return self.vocabulary_ is not None

    @property
    def n_features(self) -> int:
        """Number of columns of :meth:`transform`'s output (vocabulary size + 1)."""
        if not self.fitted:
            raise _not_fitted("PathEncoder")
        return len(self.feature_names_)

    def transform(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Path counts of ``archs``: a ``(len(archs), n_features)`` float64 matrix."""
        if not self.fitted:
            raise _not_fitted("PathEncoder")
        archs = check_archs(archs)
        other = len(self._index)
        out = np.zeros((len(archs), other + 1), dtype=np.float64)
        index = self._index
        for row, arch in enumerate(archs):
            paths, _ = self._paths(arch)
            for path in paths:
                out[row, index.get(path, other)] += 1.0
        return out

    def fit_transform(self, archs: Sequence[Architecture]) -> np.ndarray:
        """:meth:`fit` then :meth:`transform`."""
        archs = check_archs(archs)
        return self.fit(archs).transform(archs)

    def to_json(self) -> dict[str, Any]:
        """The settings and vocabulary as a JSON-ready dict."""
        if not self.fitted:
            raise _not_fitted("PathEncoder")
        return {
            "kind": self.kind,
            "version": _VERSION,
            "max_vocab": self.max_vocab,
            "max_paths_per_graph": self.max_paths_per_graph,
            "vocabulary": [list(p) for p in self.vocabulary_],
            "truncated": self.truncated_,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> PathEncoder:
        """Rebuild an encoder from :meth:`to_json` output (a dict or its JSON text)."""
        data = _load_json(data, cls.kind)
        try:
            encoder = cls(int(data["max_vocab"]), int(data["max_paths_per_graph"]))
            vocabulary = [tuple(str(label) for label in p) for p in data["vocabulary"]]
            encoder.truncated_ = int(data.get("truncated", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"a saved PathEncoder is malformed ({exc!r})") from None
        encoder._set(vocabulary)
        return encoder

    def __repr__(self) -> str:
        state = f"{len(self.vocabulary_)} paths" if self.fitted else "not fitted"
        return (
            f"PathEncoder(max_vocab={self.max_vocab}, "
            f"max_paths_per_graph={self.max_paths_per_graph}; {state})"
        )


def _path_text(path: tuple[str, ...]) -> str:
    return " > ".join(path)


def encoder_from_json(data: Mapping[str, Any] | str) -> DecisionEncoder | PathEncoder:
    """Rebuild either encoder from its :meth:`to_json` output (by its ``kind``)."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise ConfigError(f"a saved encoder is not valid JSON ({exc})") from None
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if kind == DecisionEncoder.kind:
        return DecisionEncoder.from_json(data)
    if kind == PathEncoder.kind:
        return PathEncoder.from_json(data)
    raise ConfigError(
        f"unknown encoder kind {kind!r}; known: {DecisionEncoder.kind!r}, {PathEncoder.kind!r}"
    )
