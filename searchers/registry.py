"""Built-in searchers by name (:data:`SEARCHERS`).

Entries name the module and class, imported on first use, so that listing the
searchers (or using random search) does not import Optuna or the predictors. An
entry whose ``info`` says ``optuna_study`` keeps an Optuna study: the application
gives it its Optuna storage (``storage=``) and study name (``study_name=``). Add a
searcher of your own with ``SEARCHERS.register("mine", MySearcher)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from naslab.core.errors import ConfigError
from naslab.core.registry import Registry
from naslab.core.validation import check_mapping
from naslab.search_spaces.base import SearchSpace
from naslab.searchers.base import Searcher
from naslab.searchers.objectives import parse_objectives

__all__ = ["OPTUNA_SAMPLERS", "RESERVED_OPTIONS", "SEARCHERS", "check_objectives",
           "check_searcher", "check_searcher_options", "get_searcher", "searcher_class"]

#: Optuna samplers reachable as ``optuna-<name>``.
OPTUNA_SAMPLERS: tuple[str, ...] = ("tpe", "random", "nsga2", "nsga3", "cmaes", "gp", "qmc")

#: Searchers by CLI name.
SEARCHERS = Registry("searcher", base=Searcher)
SEARCHERS.register("random", "naslab.searchers.random_search:RandomSearch")
SEARCHERS.register("evolution", "naslab.searchers.evolution:RegularizedEvolution")
SEARCHERS.register("local", "naslab.searchers.local_search:LocalSearch")
SEARCHERS.register("nsga2", "naslab.searchers.nsga2:NSGA2")
SEARCHERS.register("guided-evolution", "naslab.searchers.guided:GuidedEvolution")
SEARCHERS.register("guided-optuna", "naslab.searchers.guided_optuna:GuidedOptuna",
                   info={"optuna_study": True})
for _sampler in OPTUNA_SAMPLERS:
    SEARCHERS.register(f"optuna-{_sampler}", "naslab.searchers.optuna_searcher:OptunaSearcher",
                       defaults={"sampler": _sampler}, info={"optuna_study": True})


def searcher_class(name: str) -> type[Searcher]:
    """The class behind searcher ``name``; unknown names list the choices."""
    return SEARCHERS.load(name)  # type: ignore[return-value]


def check_objectives(name: str, objectives: Any) -> None:
    """Refuse several ``objectives`` for the single-objective searcher ``name`` (an
    unknown name lists the choices), naming the multi-objective searchers."""
    cls = searcher_class(name)
    if objectives is None or cls.multi_objective:
        return
    parsed = parse_objectives(objectives)
    if len(parsed) > 1:
        multi = sorted(n for n in SEARCHERS if searcher_class(n).multi_objective)
        raise ConfigError(
            f"searcher {name!r} optimises one objective, but {len(parsed)} were given "
            f"({', '.join(map(str, parsed))}); use a multi-objective searcher: "
            + ", ".join(multi))


#: Constructor arguments that the application gives, never searcher options.
RESERVED_OPTIONS = ("space", "seed")


def check_searcher_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` (a mapping of option names to values, or None) as a ``dict``,
    refusing the arguments that the application gives (``space``, and ``seed``: the
    study's seed)."""
    options = check_mapping("searcher options", options)
    reserved = [k for k in RESERVED_OPTIONS if k in options]
    if reserved:
        raise ConfigError(
            f"searcher option(s) {', '.join(map(repr, reserved))} cannot be given: the "
            "search space is the study's, and so is the seed (--seed, Study(seed=...))")
    return options


def get_searcher(name: str, space: SearchSpace, /, seed: int = 0, **options: Any) -> Searcher:
    """The searcher ``name`` over ``space``; unknown names list the choices, unknown
    options those accepted. Several ``objectives`` for a single-objective searcher
    are refused with the names of the multi-objective ones."""
    options = check_searcher_options(options)
    fixed = sorted(k for k in SEARCHERS.entry(name).defaults if k in options)
    if fixed:
        raise ConfigError(
            f"searcher {name!r} sets {', '.join(fixed)} itself; choose the searcher by "
            f"name instead: {', '.join(SEARCHERS)}")
    check_objectives(name, options.get("objectives"))
    if not searcher_class(name).multi_objective:
        options = {k: v for k, v in options.items() if k != "objectives"}
    return SEARCHERS.create(name, space=space, seed=seed, **options)


def check_searcher(name: str, space: SearchSpace, seed: int = 0,
                   options: Mapping[str, Any] | None = None) -> None:
    """Refuse bad ``options`` of searcher ``name`` without opening anything: the
    searcher is built and dropped; one that keeps an Optuna study is built with an
    in-memory Optuna storage (so an application can check a searcher's options
    before it opens the store that its Optuna study would live in)."""
    options = check_searcher_options(options)
    if SEARCHERS.entry(name).info.get("optuna_study"):
        options["storage"] = None
    get_searcher(name, space, seed=seed, **options)
