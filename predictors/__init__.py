"""Performance predictors: learn a target (validation accuracy, ...) from architectures.

The public API, loaded on first use:

- the interface: :class:`Predictor`, :class:`Prediction`, :func:`load_predictor`,
  :func:`save_predictor`, :func:`get_predictor` (by name: ``gin``, ``gcn``,
  ``dgin``, ``rf``, ``gbdt``, ``proxy:NAME``);
- predictors: :class:`GNNPredictor` (deep ensembles of graph networks, the
  default), :class:`TreePredictor` (random forest / gradient boosting on flat
  encodings), :class:`ProxyPredictor` (one zero-cost proxy or cost alone);
- inputs: :func:`featurize`, :class:`Featurizer` (graphs as PyTorch Geometric
  data), :func:`compute_proxies`, :func:`architecture_proxies` (zero-cost proxies);
- evaluation: :func:`rank_report`, :func:`learning_curve`, :func:`compare`,
  :func:`summarise`, :func:`format_table`, :func:`plot_learning_curve`,
  :func:`plot_predicted_vs_actual`.

Fitting on a store's results, caching proxies and saving versions in the store are
the application's (:mod:`naslab.predictor_store`, also ``from naslab import
fit_from_store, ...``), since this package imports nothing from the store.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Predictor": "naslab.predictors.base",
    "Prediction": "naslab.predictors.base",
    "NotFittedError": "naslab.predictors.base",
    "load_predictor": "naslab.predictors.base",
    "save_predictor": "naslab.predictors.base",
    "predictor_from_bytes": "naslab.predictors.base",
    "get_predictor": "naslab.predictors.registry",
    "GNNPredictor": "naslab.predictors.gnn",
    "TreePredictor": "naslab.predictors.baselines",
    "ProxyPredictor": "naslab.predictors.baselines",
    "featurize": "naslab.predictors.featurize",
    "Featurizer": "naslab.predictors.featurize",
    "compute_proxies": "naslab.predictors.proxies",
    "architecture_proxies": "naslab.predictors.proxies",
    "PROXIES": "naslab.predictors.proxies",
    "rank_report": "naslab.predictors.metrics",
    "learning_curve": "naslab.predictors.evaluation",
    "compare": "naslab.predictors.evaluation",
    "summarise": "naslab.predictors.evaluation",
    "format_table": "naslab.predictors.evaluation",
    "plot_learning_curve": "naslab.predictors.plots",
    "plot_predicted_vs_actual": "naslab.predictors.plots",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'naslab.predictors' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
