"""Ask/tell searchers.

``random``, ``evolution`` (regularized evolution), ``local`` (local search),
``nsga2`` (multi-objective evolution), ``guided-evolution`` and ``guided-optuna``
(predictor-guided), and every Optuna sampler as ``optuna-<sampler>``; see
:data:`SEARCHERS` and :func:`get_searcher`. The classes of the heavier ones (Optuna,
predictors) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from naslab.searchers.base import Observation, Searcher
from naslab.searchers.evolution import RegularizedEvolution
from naslab.searchers.objectives import Objective, parse_objectives
from naslab.searchers.random_search import RandomSearch
from naslab.searchers.registry import SEARCHERS, get_searcher

_LAZY = {
    "LocalSearch": "naslab.searchers.local_search",
    "NSGA2": "naslab.searchers.nsga2",
    "GuidedEvolution": "naslab.searchers.guided",
    "PredictorGuide": "naslab.searchers.guided",
    "GuidedOptuna": "naslab.searchers.guided_optuna",
    "OptunaSearcher": "naslab.searchers.optuna_searcher",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'naslab.searchers' has no attribute {name!r}")


__all__ = [
    "SEARCHERS",
    "GuidedEvolution",
    "GuidedOptuna",
    "LocalSearch",
    "NSGA2",
    "Objective",
    "Observation",
    "OptunaSearcher",
    "PredictorGuide",
    "RandomSearch",
    "RegularizedEvolution",
    "Searcher",
    "get_searcher",
    "parse_objectives",
]
