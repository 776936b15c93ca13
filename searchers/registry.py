"""Built-in searchers by name.

Entries name the module and class, imported on first use, so that listing the
searchers (or using random search) does not import Optuna or the predictors.
"""

from __future__ import annotations

import importlib
from typing import Any

from naslab.core.errors import ConfigError, UnknownNameError
from naslab.search_spaces.base import SearchSpace
from naslab.searchers.base import Searcher

#: Optuna samplers reachable as ``optuna-<name>``.
OPTUNA_SAMPLERS: tuple[str, ...] = ("tpe", "random", "nsga2", "nsga3", "cmaes", "gp", "qmc")

#: Searchers by CLI name: (module, class, fixed keyword options).
SEARCHERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "random": ("naslab.searchers.random_search", "RandomSearch", {}),
    "evolution": ("naslab.searchers.evolution", "RegularizedEvolution", {}),
    "local": ("naslab.searchers.local_search", "LocalSearch", {}),
    "nsga2": ("naslab.searchers.nsga2", "NSGA2", {}),
    "guided-evolution": ("naslab.searchers.guided", "GuidedEvolution", {}),
    "guided-optuna": ("naslab.searchers.guided_optuna", "GuidedOptuna", {}),
    **{
        f"optuna-{s}": ("naslab.searchers.optuna_searcher", "OptunaSearcher", {"sampler": s})
        for s in OPTUNA_SAMPLERS
    },
}


def searcher_class(name: str) -> type[Searcher]:
    """The class behind searcher ``name``; unknown names list the choices."""
    if name not in SEARCHERS:
        raise UnknownNameError("searcher", name, SEARCHERS)
    module, cls, _ = SEARCHERS[name]
    return getattr(importlib.import_module(module), cls)


def get_searcher(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Searcher:
    """The searcher ``name`` over ``space``; unknown names list the choices."""
    cls = searcher_class(name)
    fixed = SEARCHERS[name][2]
    objectives = options.get("objectives")
    if objectives is not None and not cls.multi_objective:
        from naslab.searchers.objectives import parse_objectives

        parsed = parse_objectives(objectives)
        if len(parsed) > 1:
            multi = sorted(n for n in SEARCHERS if searcher_class(n).multi_objective)
            raise ConfigError(
                f"searcher {name!r} optimises one objective, but {len(parsed)} were given "
                f"({', '.join(map(str, parsed))}); use a multi-objective searcher: "
                + ", ".join(multi)
            )
        options = {k: v for k, v in options.items() if k != "objectives"}
    return cls(space, seed=seed, **{**fixed, **options})
