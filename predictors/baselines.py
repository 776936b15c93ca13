"""Baseline predictors: tree ensembles on flat encodings, and single proxies.

* :class:`TreePredictor` fits a random forest or gradient-boosted trees
  (scikit-learn) on a flat encoding of each architecture (its decisions one-hot,
  :class:`~naslab.predictors.encodings.DecisionEncoder`, or its paths,
  :class:`~naslab.predictors.encodings.PathEncoder`), optionally with extra
  numeric features appended. Once fitted, the trees are copied into plain numpy
  arrays and evaluated by a vectorised numpy evaluator (:class:`TreeEnsemble`),
  both right after fitting and after loading, so a saved predictor holds no
  scikit-learn object and no pickle, and predicts exactly what the fresh one did.
* :class:`ProxyPredictor` uses one feature (a zero-cost proxy, the parameter
  count, the FLOPs, ...) alone, mapped linearly to the target: the "each proxy
  used alone as a predictor" baseline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from naslab.core.errors import ConfigError
from naslab.predictors.base import (
    FeaturesLike,
    FeatureTable,
    Prediction,
    Predictor,
    check_archs,
    check_positive_float,
    check_positive_int,
    check_targets,
    register,
    standardiser,
)
from naslab.predictors.encodings import (
    DEFAULT_MAX_PATHS_PER_GRAPH,
    DEFAULT_MAX_VOCAB,
    DecisionEncoder,
    PathEncoder,
)
from naslab.search_spaces.architecture import Architecture

__all__ = ["ENCODINGS", "MODELS", "ProxyPredictor", "TreeEnsemble", "TreePredictor"]

#: The tree models of :class:`TreePredictor`.
MODELS: tuple[str, ...] = ("rf", "gbdt")
#: The architecture encodings of :class:`TreePredictor`.
ENCODINGS: tuple[str, ...] = ("onehot", "path")

#: Bound on the number of (tree, architecture) pairs evaluated at once.
_EVAL_CELLS = 1 << 15
#: Steps down the trees between two removals of the pairs that reached a leaf.
_STEPS_PER_CHECK = 6
#: Bound on the number of encoded matrix cells built at once while predicting.
_ENCODE_CELLS = 1 << 23


# --------------------------------------------------------------------- validation


def _choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        accepted = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{name} must be one of {accepted}; got {value!r}")
    return value




def _optional_positive_int(name: str, value: Any) -> int | None:
    return None if value is None else check_positive_int(name, value)


def _fraction(name: str, value: Any, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    try:
        out = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        out = float("nan")
    if not (math.isfinite(out) and 0.0 < out <= 1.0):
        extra = " or None" if allow_none else ""
        raise ConfigError(f"{name} must be a number in (0, 1]{extra}, got {value!r}")
    return out




# ------------------------------------------------------------------ tree evaluator


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


# ---------------------------------------------------------------------- predictors


@register
class TreePredictor(Predictor):
    """A random forest or gradient-boosted trees on a flat architecture encoding.

    Args:
        model: ``"rf"`` (scikit-learn ``RandomForestRegressor``; the standard
            deviation is the spread of the trees' predictions) or ``"gbdt"``
            (``GradientBoostingRegressor``; ``members`` models, default 5, differing
            in their seed and each fitted on random ``subsample`` shares of the data
            per stage; the mean is their average and the standard deviation their
            spread).
        encoding: ``"onehot"`` (decisions, see
            :class:`~naslab.predictors.encodings.DecisionEncoder`) or ``"path"``
            (input-output paths of the graph, see
            :class:`~naslab.predictors.encodings.PathEncoder`). Any features given to
            :meth:`fit` are appended as extra columns.
        n_estimators: trees of the forest, or boosting stages of each gbdt member.
        max_depth: largest tree depth; ``None`` means unlimited for ``rf`` and 3
            for ``gbdt``.
        min_samples_leaf: fewest training architectures per leaf.
        max_features: share of the columns tried at each split (``None``: all).
        learning_rate: shrinkage of each boosting stage (``gbdt`` only).
        members: number of gbdt models whose spread is the uncertainty (``gbdt``
            only; 1 gives std 0).
        subsample: share of the training set each boosting stage sees (``gbdt``
            only; below 1 the members differ, giving a spread).
        seed: seeds the trees (``rf``) or the members (``gbdt``, member ``m`` gets a
            seed derived from ``seed`` and ``m``); a fixed seed gives the same
            predictor every time.
        n_jobs: processes the forest uses to fit (``rf`` only; default 1, -1 for
            every core). Predicting uses numpy only.
        max_vocab: paths kept by the path encoding (the most frequent).
        max_paths_per_graph: paths enumerated per graph by the path encoding.

    The targets are standardised before fitting; predictions are in the targets'
    units. The std is the ensemble's raw spread, not calibrated.

    Attributes (after :meth:`fit`):
        n_train_: number of architectures fitted on.
        encoder_: the fitted encoder.
        feature_names_: the names of the features given to :meth:`fit`.
        ensemble_: the trees as a :class:`TreeEnsemble` (what :meth:`predict` uses).
        sklearn_estimators_: the fitted scikit-learn models (after :meth:`fit` only,
            not saved; kept for inspection, never used to predict).
        fit_seconds_: wall time of the last fit.
    """

    kind = "tree"

    def __init__(
        self,
        model: str = "rf",
        encoding: str = "onehot",
        n_estimators: int = 100,
        max_depth: int | None = None,
        min_samples_leaf: int = 1,
        max_features: float | None = None,
        learning_rate: float = 0.1,
        members: int = 5,
        subsample: float = 0.8,
        seed: int = 0,
        n_jobs: int = 1,
        max_vocab: int = DEFAULT_MAX_VOCAB,
        max_paths_per_graph: int = DEFAULT_MAX_PATHS_PER_GRAPH,
    ) -> None:
        self.model = _choice("model", model, MODELS)
        self.encoding = _choice("encoding", encoding, ENCODINGS)
        self.n_estimators = check_positive_int("n_estimators", n_estimators)
        self.max_depth = _optional_positive_int("max_depth", max_depth)
        self.min_samples_leaf = check_positive_int("min_samples_leaf", min_samples_leaf)
        self.max_features = _fraction("max_features", max_features, allow_none=True)
        self.learning_rate = check_positive_float("learning_rate", learning_rate)
        self.members = check_positive_int("members", members)
        self.subsample = _fraction("subsample", subsample)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        if (
            isinstance(n_jobs, bool)
            or not isinstance(n_jobs, (int, np.integer))
            or not (n_jobs >= 1 or n_jobs == -1)
        ):
            raise ConfigError(
                f"n_jobs must be a positive integer or -1 (every core), got {n_jobs!r}"
            )
        self.n_jobs = int(n_jobs)
        self.max_vocab = check_positive_int("max_vocab", max_vocab)
        self.max_paths_per_graph = check_positive_int("max_paths_per_graph", max_paths_per_graph)
        self.n_train_: int | None = None

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments."""
        return {
            "model": self.model,
            "encoding": self.encoding,
            "n_estimators": self.n_estimators,
            "max_depth": self.max_depth,
            "min_samples_leaf": self.min_samples_leaf,
            "max_features": self.max_features,
            "learning_rate": self.learning_rate,
            "members": self.members,
            "subsample": self.subsample,
            "seed": self.seed,
            "n_jobs": self.n_jobs,
            "max_vocab": self.max_vocab,
            "max_paths_per_graph": self.max_paths_per_graph,
        }

    def _new_encoder(self) -> DecisionEncoder | PathEncoder:
        if self.encoding == "path":
            return PathEncoder(self.max_vocab, self.max_paths_per_graph)
        return DecisionEncoder()

    # -- fitting ------------------------------------------------------------------

    def fit(
        self, archs: Sequence[Architecture], targets: Any, features: FeaturesLike = None
    ) -> TreePredictor:
        """Encode ``archs``, append ``features`` and fit the trees to ``targets``."""
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

        started = time.perf_counter()
        archs = check_archs(archs)
        y = check_targets(targets, len(archs))
        table = FeatureTable.coerce(features, len(archs))
        encoder = self._new_encoder().fit(archs)
        X = np.hstack([encoder.transform(archs), table.values])
        if X.shape[1] == 0:
            raise ConfigError(
                "nothing to learn from: the architectures have no decisions and no features "
                "were given"
            )
        y_mean, y_scale = standardiser(y)
        z = (y - y_mean) / y_scale
        if self.model == "rf":
            forest = RandomForestRegressor(
                n_estimators=self.n_estimators,
                max_depth=self.max_depth,
                min_samples_leaf=self.min_samples_leaf,
                max_features=self.max_features if self.max_features is not None else 1.0,
                random_state=self.seed,
                n_jobs=self.n_jobs,
            ).fit(X, z)
            trees = [est.tree_ for est in forest.estimators_]
            ensemble = TreeEnsemble.from_trees(
                trees, range(len(trees)), np.ones(len(trees)), np.zeros(len(trees)), X.shape[1]
            )
            self.sklearn_estimators_ = [forest]
        else:
            seeds = np.random.SeedSequence(self.seed).generate_state(self.members)
            trees, member, bias, fitted = [], [], [], []
            for m, member_seed in enumerate(seeds):
                gbr = GradientBoostingRegressor(
                    n_estimators=self.n_estimators,
                    learning_rate=self.learning_rate,
                    max_depth=self.max_depth if self.max_depth is not None else 3,
                    min_samples_leaf=self.min_samples_leaf,
                    max_features=self.max_features,
                    subsample=self.subsample,
                    random_state=int(member_seed),
                ).fit(X, z)
                stage_trees = [est.tree_ for est in gbr.estimators_[:, 0]]
                trees += stage_trees
                member += [m] * len(stage_trees)
                bias.append(float(gbr.init_.predict(X[:1])[0]))
                fitted.append(gbr)
            ensemble = TreeEnsemble.from_trees(
                trees, member, np.full(len(trees), self.learning_rate), bias, X.shape[1]
            )
            self.sklearn_estimators_ = fitted
        self.encoder_ = encoder
        self.feature_names_ = list(table.names)
        self.ensemble_ = ensemble
        self.y_mean_, self.y_scale_ = y_mean, y_scale
        self.n_train_ = len(archs)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    # -- predicting -------------------------------------------------------------------

    def _members(self, archs: list[Architecture], values: np.ndarray) -> np.ndarray:
        """Member predictions in standardised units, encoding a block of rows at a time."""
        n_cols = self.ensemble_.n_columns
        step = max(256, _ENCODE_CELLS // max(1, n_cols))
        out = np.empty((self.ensemble_.n_members, len(archs)), dtype=np.float64)
        for lo in range(0, len(archs), step):
            hi = min(len(archs), lo + step)
            X = np.hstack([self.encoder_.transform(archs[lo:hi]), values[lo:hi]])
            out[:, lo:hi] = self.ensemble_.members(X)
        return out

    def predict(self, archs: Sequence[Architecture], features: FeaturesLike = None) -> Prediction:
        """Mean and spread of the ensemble for each architecture (targets' units)."""
        self._check_fitted()
        archs = check_archs(archs)
        values = FeatureTable.coerce(features, len(archs)).aligned(self.feature_names_)
        members = self._members(archs, values)
        mean = members.mean(0) * self.y_scale_ + self.y_mean_
        std = members.std(0) * self.y_scale_ if members.shape[0] > 1 else np.zeros_like(mean)
        return Prediction(mean, std)

    # -- saving -----------------------------------------------------------------------

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"trees.{k}": v for k, v in self.ensemble_.arrays().items()}
        meta = {
            "encoder": self.encoder_.to_json(),
            "feature_names": list(self.feature_names_),
            "n_columns": self.ensemble_.n_columns,
            "y_mean": self.y_mean_,
            "y_scale": self.y_scale_,
            "n_train": self.n_train_,
        }
        return arrays, meta

    def _load_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        try:
            encoder_json = meta["encoder"]
            feature_names = [str(n) for n in meta["feature_names"]]
            n_columns = int(meta["n_columns"])
            y_mean, y_scale = float(meta["y_mean"]), float(meta["y_scale"])
            n_train = int(meta["n_train"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"a saved tree predictor's metadata is malformed ({exc!r})") from None
        encoder = (PathEncoder if self.encoding == "path" else DecisionEncoder).from_json(
            encoder_json
        )
        if encoder.n_features + len(feature_names) != n_columns:
            raise ConfigError(
                f"a saved tree predictor's encoder gives {encoder.n_features} columns and it "
                f"has {len(feature_names)} features, but its trees read {n_columns} columns"
            )
        if not (math.isfinite(y_mean) and math.isfinite(y_scale) and y_scale > 0):
            raise ConfigError("a saved tree predictor's target scaling is not finite")
        trees = {k[len("trees.") :]: v for k, v in arrays.items() if k.startswith("trees.")}
        self.ensemble_ = TreeEnsemble.from_arrays(trees, n_columns)
        self.encoder_ = encoder
        self.feature_names_ = feature_names
        self.y_mean_, self.y_scale_ = y_mean, y_scale
        self.n_train_ = n_train


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


@register
class ProxyPredictor(Predictor):
    """One feature alone (a zero-cost proxy, params, FLOPs, ...) as a predictor.

    :meth:`fit` maps the feature named ``proxy`` (optionally log-transformed) to the
    target with a least-squares line, so the sign of the relation is learned: a
    proxy that falls as the target rises still ranks correctly. The std of every
    prediction is the residual standard deviation of that fit (with ``n - 2``
    degrees of freedom; a constant).

    Args:
        proxy: the name of the feature to use; ``features`` must be given to both
            :meth:`fit` and :meth:`predict` and hold a column of that name (other
            columns are ignored, and need not be given to :meth:`predict`).
        log: ``True`` maps the feature through ``sign(x) * log1p(|x|)`` first,
            ``False`` uses it as is, ``None`` (default) decides at fit time: log
            when the fitted values are all positive and the largest is more than 100
            times the smallest (e.g. parameter counts or FLOPs).

    Attributes (after :meth:`fit`):
        n_train_: number of architectures fitted on.
        log_: whether the log transform is used.
        intercept_, slope_: the fitted line (target = intercept + slope * x).
        resid_std_: the residual standard deviation (the predicted std).
    """

    kind = "proxy"

    def __init__(self, proxy: str, log: bool | None = None) -> None:
        if not isinstance(proxy, str) or not proxy:
            raise ConfigError(f"proxy must be a feature name (a non-empty string), got {proxy!r}")
        if log is not None and not isinstance(log, (bool, np.bool_)):
            raise ConfigError(f"log must be True, False or None (auto), got {log!r}")
        self.proxy = proxy
        self.log = None if log is None else bool(log)
        self.n_train_: int | None = None

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments."""
        return {"proxy": self.proxy, "log": self.log}

    def _column(self, archs: Any, features: FeaturesLike, when: str) -> np.ndarray:
        archs = check_archs(archs)
        if features is None:
            raise ConfigError(
                f"ProxyPredictor({self.proxy!r}) needs features at {when}: give "
                f"features={{{self.proxy!r}: [...]}}, one value per architecture"
            )
        table = FeatureTable.coerce(features, len(archs))
        if self.proxy not in table.names:
            raise ConfigError(
                f"ProxyPredictor needs the feature {self.proxy!r} at {when}; the features given "
                f"are {list(table.names)}"
            )
        return table.values[:, table.names.index(self.proxy)]

    def _transform(self, x: np.ndarray) -> np.ndarray:
        return _signed_log1p(x) if self.log_ else x

    def fit(
        self, archs: Sequence[Architecture], targets: Any, features: FeaturesLike = None
    ) -> ProxyPredictor:
        """Fit target = intercept + slope * (transformed proxy) by least squares."""
        archs = check_archs(archs)
        y = check_targets(targets, len(archs))
        x = self._column(archs, features, "fit")
        if self.log is None:
            lo, hi = float(np.min(x)), float(np.max(x))
            self.log_ = bool(lo > 0 and hi > 100.0 * lo)
        else:
            self.log_ = self.log
        t = self._transform(x)
        t_mean = float(t.mean())
        dt = t - t_mean
        ss = float(dt @ dt)
        slope = float(dt @ (y - y.mean()) / ss) if ss > 1e-300 else 0.0
        intercept = float(y.mean() - slope * t_mean)
        resid = y - (intercept + slope * t)
        dof = max(1, len(y) - 2)
        self.intercept_, self.slope_ = intercept, slope
        self.resid_std_ = float(math.sqrt(float(resid @ resid) / dof))
        self.n_train_ = len(archs)
        return self

    def predict(self, archs: Sequence[Architecture], features: FeaturesLike = None) -> Prediction:
        """The line's value at each architecture's proxy; std = residual std."""
        self._check_fitted()
        x = self._column(archs, features, "predict")
        mean = self.intercept_ + self.slope_ * self._transform(x)
        return Prediction(mean, np.full_like(mean, self.resid_std_))

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        meta = {
            "log": self.log_,
            "intercept": self.intercept_,
            "slope": self.slope_,
            "resid_std": self.resid_std_,
            "n_train": self.n_train_,
        }
        return {}, meta

    def _load_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        try:
            log = meta["log"]
            values = [float(meta[k]) for k in ("intercept", "slope", "resid_std")]
            n_train = int(meta["n_train"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"a saved proxy predictor's metadata is malformed ({exc!r})"
            ) from None
        if not isinstance(log, bool) or not all(math.isfinite(v) for v in values):
            raise ConfigError("a saved proxy predictor's metadata is malformed")
        self.log_ = log
        self.intercept_, self.slope_, self.resid_std_ = values
        self.n_train_ = n_train
