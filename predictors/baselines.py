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
from naslab.core.validation import check_bool, check_choice, check_float, check_int, check_str
from naslab.predictors.base import (
    FeaturesLike,
    FeatureTable,
    Prediction,
    Predictor,
    check_archs,
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
from naslab.predictors.tree_ensemble import TreeEnsemble
from naslab.search_spaces.architecture import Architecture

__all__ = ["ENCODINGS", "MODELS", "ProxyPredictor", "TreePredictor"]

#: The tree models of :class:`TreePredictor`.
MODELS: tuple[str, ...] = ("rf", "gbdt")
#: The architecture encodings of :class:`TreePredictor`.
ENCODINGS: tuple[str, ...] = ("onehot", "path")

#: Bound on the number of encoded matrix cells built at once while predicting.
_ENCODE_CELLS = 1 << 23


def _fraction(name: str, value: Any) -> float:
    """``value`` as a share in ``(0, 1]``."""
    return check_float(name, value, minimum=0.0, maximum=1.0, strict_minimum=True)


# ---------------------------------------------------------------------- predictors


#: Upper bounds of the tree predictors' hyper-parameters, checked when one is made and
#: when one is loaded (a tampered file cannot ask for ten million members).
TREE_LIMITS = {"n_estimators": 10_000, "max_depth": 1_000, "min_samples_leaf": 1_000_000,
               "members": 64, "n_jobs": 1_024}


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
        self.model = check_choice("tree model", model, MODELS)
        self.encoding = check_choice("tree encoding", encoding, ENCODINGS)
        self.n_estimators = check_int("n_estimators", n_estimators, minimum=1,
                                      maximum=TREE_LIMITS["n_estimators"])
        self.max_depth = None if max_depth is None else check_int(
            "max_depth", max_depth, minimum=1, maximum=TREE_LIMITS["max_depth"])
        self.min_samples_leaf = check_int("min_samples_leaf", min_samples_leaf, minimum=1,
                                          maximum=TREE_LIMITS["min_samples_leaf"])
        self.max_features = (
            None if max_features is None else _fraction("max_features", max_features)
        )
        self.learning_rate = check_float("learning_rate", learning_rate, minimum=0.0,
                                         strict_minimum=True)
        self.members = check_int("members", members, minimum=1, maximum=TREE_LIMITS["members"])
        self.subsample = _fraction("subsample", subsample)
        self.seed = check_int("seed", seed, minimum=0)
        self.n_jobs = check_int("n_jobs", n_jobs, maximum=TREE_LIMITS["n_jobs"])
        if self.n_jobs == 0 or self.n_jobs < -1:
            raise ConfigError(
                f"n_jobs must be a positive integer or -1 (every core), got {n_jobs!r}"
            )
        self.max_vocab = check_int("max_vocab", max_vocab, minimum=1, maximum=1_000_000)
        self.max_paths_per_graph = check_int("max_paths_per_graph", max_paths_per_graph,
                                             minimum=1, maximum=1_000_000)
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
        self.proxy = check_str("proxy (the name of a feature)", proxy)
        self.log = None if log is None else check_bool("log (or None: decide at fit)", log)
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
