"""Regression trees as plain arrays, evaluated with numpy (:class:`TreeEnsemble`).

:class:`~naslab.predictors.baselines.TreePredictor` fits scikit-learn forests and
boosted trees, then copies them into a :class:`TreeEnsemble`: a saved predictor
holds arrays and no scikit-learn object (no pickle), and predicts exactly what the
fresh one did, with a vectorised evaluator that walks every (tree, row) pair down
the trees at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from naslab.core.errors import ConfigError

__all__ = ["TreeEnsemble"]

#: Bound on the number of (tree, architecture) pairs evaluated at once.
_EVAL_CELLS = 1 << 15
#: Steps down the trees between two removals of the pairs that reached a leaf.
_STEPS_PER_CHECK = 6


class TreeEnsemble:
    """Regression trees held as plain arrays, evaluated with numpy.

    The trees are stored the way scikit-learn stores them (``sklearn.tree._tree.Tree``),
    concatenated: for node ``i`` of the concatenation, ``left[i]`` / ``right[i]`` are
    the *tree-local* indices of its children (``-1`` for a leaf), ``feature[i]`` and
    ``threshold[i]`` its split (a sample goes left when ``x[feature] <= threshold``)
    and ``value[i]`` its prediction; tree ``t`` holds nodes ``offsets[t]`` to
    ``offsets[t + 1] - 1`` and its root is its first node.

    Trees are grouped into *members*: member ``m`` predicts ``bias[m]`` plus the sum
    of ``weight[t]`` times the leaf value of each of its trees ``t``
    (``member[t] == m``; trees are sorted by member). A random forest is one member
    per tree (weight 1, bias 0); a gradient-boosted model is one member whose trees
    are weighted by the learning rate, with the initial prediction as its bias.

    As scikit-learn does, inputs are rounded to ``float32`` before they are compared
    with the (``float64``) thresholds, so predictions match scikit-learn's.

    The constructor checks that the arrays form a proper forest (children after
    their parent, each node with one parent, features in range, finite numbers), so
    arrays read from a file cannot make the evaluator loop or index out of bounds.

    Raises:
        ConfigError: the arrays do not describe a valid ensemble.
    """

    ARRAY_NAMES = (
        "left",
        "right",
        "feature",
        "threshold",
        "value",
        "offsets",
        "member",
        "weight",
        "bias",
    )

    def __init__(
        self,
        left: np.ndarray,
        right: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        value: np.ndarray,
        offsets: np.ndarray,
        member: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray,
        n_columns: int,
    ) -> None:
        def ints(a: Any, what: str) -> np.ndarray:
            a = np.asarray(a)
            if a.ndim != 1 or a.dtype.kind not in "iu":
                raise ConfigError(f"tree array {what!r} must be a 1-D integer array")
            return a.astype(np.int64)

        def floats(a: Any, what: str) -> np.ndarray:
            a = np.asarray(a)
            if a.ndim != 1 or a.dtype.kind not in "fiu":
                raise ConfigError(f"tree array {what!r} must be a 1-D numeric array")
            a = a.astype(np.float64)
            if not np.all(np.isfinite(a)):
                raise ConfigError(f"tree array {what!r} holds non-finite numbers")
            return a

        self.left = ints(left, "left")
        self.right = ints(right, "right")
        self.feature = ints(feature, "feature")
        self.threshold = floats(threshold, "threshold")
        self.value = floats(value, "value")
        self.offsets = ints(offsets, "offsets")
        self.member = ints(member, "member")
        self.weight = floats(weight, "weight")
        self.bias = floats(bias, "bias")
        self.n_columns = int(n_columns)
        self._validate()
        self._build()

    # -- construction ----------------------------------------------------------

    @classmethod
    def from_trees(
        cls,
        trees: Sequence[Any],
        member: Sequence[int],
        weight: Sequence[float],
        bias: Sequence[float],
        n_columns: int,
    ) -> TreeEnsemble:
        """Copy fitted scikit-learn regression trees (``estimator.tree_``) into arrays."""
        sizes = [int(t.node_count) for t in trees]
        return cls(
            left=np.concatenate([t.children_left[:n] for t, n in zip(trees, sizes)]),
            right=np.concatenate([t.children_right[:n] for t, n in zip(trees, sizes)]),
            feature=np.concatenate([t.feature[:n] for t, n in zip(trees, sizes)]),
            threshold=np.concatenate([t.threshold[:n] for t, n in zip(trees, sizes)]),
            value=np.concatenate([t.value[:n, 0, 0] for t, n in zip(trees, sizes)]),
            offsets=np.concatenate([[0], np.cumsum(sizes)]),
            member=np.asarray(member, dtype=np.int64),
            weight=np.asarray(weight, dtype=np.float64),
            bias=np.asarray(bias, dtype=np.float64),
            n_columns=n_columns,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The ensemble as named arrays (the constructor's arguments, less ``n_columns``)."""
        return {
            "left": self.left.astype(np.int32),
            "right": self.right.astype(np.int32),
            "feature": self.feature.astype(np.int32),
            "threshold": self.threshold.copy(),
            "value": self.value.copy(),
            "offsets": self.offsets.copy(),
            "member": self.member.astype(np.int32),
            "weight": self.weight.copy(),
            "bias": self.bias.copy(),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], n_columns: int) -> TreeEnsemble:
        """Inverse of :meth:`arrays`."""
        missing = [k for k in cls.ARRAY_NAMES if k not in arrays]
        if missing:
            raise ConfigError(f"a saved tree ensemble lacks arrays {missing}")
        return cls(**{k: arrays[k] for k in cls.ARRAY_NAMES}, n_columns=n_columns)

    def _validate(self) -> None:
        n = self.left.shape[0]
        for name in ("right", "feature", "threshold", "value"):
            if getattr(self, name).shape != (n,):
                shape = getattr(self, name).shape
                raise ConfigError(f"tree array {name!r} has shape {shape}; want ({n},)")
        off = self.offsets
        if off.shape[0] < 2 or off[0] != 0 or off[-1] != n or np.any(np.diff(off) < 1):
            raise ConfigError("tree offsets must rise strictly from 0 to the number of nodes")
        n_trees = off.shape[0] - 1
        if self.member.shape != (n_trees,) or self.weight.shape != (n_trees,):
            raise ConfigError(f"tree member and weight arrays need one entry per tree ({n_trees})")
        n_members = self.bias.shape[0]
        m = self.member
        if (
            n_members < 1
            or m[0] != 0
            or m[-1] != n_members - 1
            or np.any((np.diff(m) != 0) & (np.diff(m) != 1))
        ):
            raise ConfigError("trees must be sorted by member, each member owning >= 1 tree")
        tree_of = np.repeat(np.arange(n_trees), np.diff(off))
        local = np.arange(n) - off[tree_of]
        size = np.diff(off)[tree_of]
        leaf = self.left < 0
        if (
            np.any(leaf != (self.right < 0))
            or np.any(self.left[leaf] != -1)
            or np.any(self.right[leaf] != -1)
        ):
            raise ConfigError("a tree node must have two children or none (-1, -1)")
        inner = ~leaf
        for name in ("left", "right"):
            child = getattr(self, name)[inner]
            if np.any(child <= local[inner]) or np.any(child >= size[inner]):
                raise ConfigError(f"tree {name} children must come after their parent, in tree")
        parents = np.zeros(n, dtype=np.int64)
        np.add.at(parents, self.left[inner] + off[tree_of[inner]], 1)
        np.add.at(parents, self.right[inner] + off[tree_of[inner]], 1)
        roots = np.zeros(n, dtype=bool)
        roots[off[:-1]] = True
        if np.any(parents[roots] != 0) or np.any(parents[~roots] != 1):
            raise ConfigError("every tree node but the root must have exactly one parent")
        if np.any(self.feature[inner] < 0) or np.any(self.feature[inner] >= self.n_columns):
            raise ConfigError(f"tree split features must lie in [0, {self.n_columns})")

    def _build(self) -> None:
        """Renumber the nodes for the evaluator, level by level, siblings side by side.

        In the new numbering tree ``t``'s root is node ``t`` and the right child of a
        node is its left child plus one, so a step down is
        ``child = left + (x > threshold)``. A leaf points to itself with an infinite
        threshold, so further steps leave it in place.
        """
        off = self.offsets
        n = self.left.shape[0]
        tree_of = np.repeat(np.arange(self.n_trees), np.diff(off))
        leaf = self.left < 0
        glob_left = np.where(leaf, 0, self.left + off[tree_of])
        glob_right = np.where(leaf, 0, self.right + off[tree_of])
        new_id = np.empty(n, dtype=np.intp)
        frontier = off[:-1]
        new_id[frontier] = np.arange(self.n_trees)
        levels, placed, depth = [frontier], self.n_trees, 0
        while True:  # a validated forest: every node is reached once, so this ends
            inner = frontier[~leaf[frontier]]
            if inner.size == 0:
                break
            frontier = np.stack([glob_left[inner], glob_right[inner]], axis=1).reshape(-1)
            new_id[frontier] = placed + np.arange(frontier.size)
            placed += frontier.size
            levels.append(frontier)
            depth += 1
        order = np.concatenate(levels)  # old index of each new node
        e_leaf = leaf[order]
        self._leaf = e_leaf
        self._feature = np.where(e_leaf, 0, self.feature[order]).astype(np.intp)
        self._threshold = np.where(e_leaf, np.inf, self.threshold[order])
        self._child = np.where(e_leaf, np.arange(n), new_id[glob_left[order]]).astype(np.intp)
        self._value = self.value[order]
        #: Depth of the deepest leaf (0 when every tree is a single leaf).
        self.depth = depth
        self._starts = np.flatnonzero(np.r_[True, np.diff(self.member) != 0])

    # -- evaluating -------------------------------------------------------------

    @property
    def n_trees(self) -> int:
        """Number of trees."""
        return int(self.offsets.shape[0] - 1)

    @property
    def n_members(self) -> int:
        """Number of members (see the class docstring)."""
        return int(self.bias.shape[0])

    def leaf_values(self, X: np.ndarray) -> np.ndarray:
        """Each tree's prediction for each row of ``X``: shape ``(n_trees, len(X))``."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_columns:
            raise ConfigError(f"the trees need {self.n_columns} columns; got shape {X.shape}")
        n = X.shape[0]
        out = np.empty((self.n_trees, n), dtype=np.float64)
        step = max(1, _EVAL_CELLS // self.n_trees)
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            out[:, lo:hi] = self._evaluate(X[lo:hi])
        return out

    def _evaluate(self, X: np.ndarray) -> np.ndarray:
        n, n_trees = X.shape[0], self.n_trees
        if self.depth == 0:
            return np.repeat(self._value[:n_trees, None], n, axis=1)
        # scikit-learn compares float32 inputs with float64 thresholds
        flat = np.ascontiguousarray(X, dtype=np.float32).reshape(-1)
        # one entry per (tree, row) pair still inside its tree, tree-major
        idx = np.repeat(np.arange(n_trees, dtype=np.intp), n)
        row = np.tile(np.arange(n, dtype=np.intp) * self.n_columns, n_trees)
        pos = np.arange(idx.shape[0], dtype=np.intp)
        reached = np.empty_like(idx)
        steps = min(_STEPS_PER_CHECK, self.depth)
        while idx.size:
            for _ in range(steps):
                x = flat[row + self._feature[idx]]
                idx = self._child[idx] + (x > self._threshold[idx])
            done = self._leaf[idx]
            if done.any():  # drop the pairs that reached their leaf
                reached[pos[done]] = idx[done]
                keep = ~done
                idx, row, pos = idx[keep], row[keep], pos[keep]
        return self._value[reached].reshape(n_trees, n)

    def members(self, X: np.ndarray) -> np.ndarray:
        """Each member's prediction for each row of ``X``: shape ``(n_members, len(X))``."""
        leaves = self.leaf_values(X) * self.weight[:, None]
        return np.add.reduceat(leaves, self._starts, axis=0) + self.bias[:, None]
