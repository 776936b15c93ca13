"""naslab: neural architecture search and performance prediction on graph-encoded spaces.

The public API, re-exported here (loaded on first use, so ``import naslab`` is quick):

- search spaces: :class:`Architecture`, :class:`SearchSpace`, :class:`Categorical`,
  :class:`Integer`, :class:`Condition`, :class:`NB201Space`, :class:`NB101Space`,
  :class:`DartsSpace`, :class:`MobileNetV3Space`, :class:`HybridSpace`,
  :class:`ChainSpace`, :class:`GNNSpace`, :class:`NasBenchGraphSpace`,
  :func:`get_space`;
- tasks and evaluation: :class:`Task`, :class:`TensorTask`, :class:`LoaderTask`,
  :class:`GraphTask`, :func:`digits_task`, :class:`TrainingEvaluator`,
  :class:`GraphTrainingEvaluator`, :class:`NasBenchGraphEvaluator`,
  :class:`Evaluator`, :class:`Result`;
- searchers: :class:`Searcher`, :class:`RandomSearch`, :class:`RegularizedEvolution`;
- the search loop and the store: :class:`Study`, :class:`Store`;
- export: :func:`export_best`, :func:`load_exported`;
- errors: :class:`NaslabError` and its subclasses in :mod:`naslab.core.errors`.
"""

from __future__ import annotations

import importlib
from typing import Any

from naslab.core import registry as _registry
from naslab.core.errors import (
    ConfigError,
    EvaluationError,
    InvalidArchitectureError,
    NaslabError,
    QueryError,
    StorageError,
    StudyConflictError,
    UnknownNameError,
)
from naslab.core.version import __version__

# the modules that define (and fill) the registry of each kind of component
for _kind, _module in (("search space", "naslab.search_spaces.registry"),
                       ("searcher", "naslab.searchers.registry"),
                       ("predictor", "naslab.predictors.registry"),
                       ("scheduler", "naslab.searchers.schedulers"),
                       ("task", "naslab.workers.task"),
                       ("table benchmark", "naslab.workers.evaluator"),
                       ("Optuna sampler", "naslab.searchers.optuna_space")):
    _registry.declare(_kind, _module)
resolve = _registry.resolve

_LAZY = {
    "Architecture": "naslab.search_spaces.architecture",
    "SearchSpace": "naslab.search_spaces.base",
    "Categorical": "naslab.search_spaces.decisions",
    "Integer": "naslab.search_spaces.decisions",
    "Condition": "naslab.search_spaces.decisions",
    "SpaceDefinitionError": "naslab.search_spaces.decisions",
    "SpaceChangedWarning": "naslab.components",
    "NB201Space": "naslab.search_spaces.nb201",
    "ChainSpace": "naslab.search_spaces.chain",
    "NB101Space": "naslab.search_spaces.nb101",
    "DartsSpace": "naslab.search_spaces.darts",
    "MobileNetV3Space": "naslab.search_spaces.mbv3",
    "HybridSpace": "naslab.search_spaces.hybrid",
    "GNNSpace": "naslab.search_spaces.gnn",
    "NasBenchGraphSpace": "naslab.search_spaces.nasbench_graph",
    "GraphModule": "naslab.search_spaces.graph_module",
    "get_space": "naslab.search_spaces.registry",
    "Task": "naslab.workers.task",
    "TensorTask": "naslab.workers.task",
    "LoaderTask": "naslab.workers.task",
    "GraphTask": "naslab.workers.graph_task",
    "GraphTrainingEvaluator": "naslab.workers.graph_training",
    "digits_task": "naslab.workers.task",
    "TrainingEvaluator": "naslab.workers.training",
    "NasBenchGraphEvaluator": "naslab.workers.benchmark_table",
    "Evaluator": "naslab.workers.evaluator",
    "Result": "naslab.workers.evaluator",
    "TableEvaluator": "naslab.workers.evaluator",
    "InProcessExecutor": "naslab.workers.executor",
    "Searcher": "naslab.searchers.base",
    "RandomSearch": "naslab.searchers.random_search",
    "RegularizedEvolution": "naslab.searchers.evolution",
    "Study": "naslab.study",
    "StudyReport": "naslab.study",
    "TrialEvent": "naslab.events",
    "FailingTrialsWarning": "naslab.run_control",
    "NoCompleteTrialWarning": "naslab.run_control",
    "TrialLoop": "naslab.loop",
    "Store": "naslab.db.store",
    "optuna_storage": "naslab.optuna_storage",
    "training_set": "naslab.predictor_store",
    "fit_from_store": "naslab.predictor_store",
    "proxies_for": "naslab.predictor_store",
    "save_to_store": "naslab.predictor_store",
    "load_from_store": "naslab.predictor_store",
    "export_best": "naslab.export",
    "export_trial": "naslab.export",
    "load_exported": "naslab.export",
}

__all__ = [
    "ConfigError",
    "EvaluationError",
    "InvalidArchitectureError",
    "NaslabError",
    "QueryError",
    "StorageError",
    "StudyConflictError",
    "UnknownNameError",
    "__version__",
    "resolve",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'naslab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
