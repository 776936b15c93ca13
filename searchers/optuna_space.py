"""A naslab space as Optuna sees it: samplers by name, distributions of the declared
decisions, define-by-run suggestions, and finished trials built from results.

Every proposal is one Optuna trial, sampled define-by-run: the space's decisions
are walked in declared order (parents first); a :class:`Categorical` decision
becomes ``trial.suggest_categorical(name, choices)``, an :class:`Integer` one
``trial.suggest_int(name, low, high, step=step)``. A conditional decision is
suggested only when its condition holds for the values drawn so far, so an Optuna
trial's params are exactly the architecture's active decisions.

Samplers (Optuna 5), by naslab name (:data:`SAMPLERS`):

* ``tpe``: ``TPESampler(multivariate=True, group=True)``: multivariate TPE on each
  group of decisions that occur together, which suits conditional spaces. For
  several objectives it is MOTPE.
* ``random``: ``RandomSampler``. ``nsga2`` / ``nsga3``: ``NSGAIISampler`` /
  ``NSGAIIISampler`` (genetic; the first generation, ``population_size`` trials
  (50), is random). They handle categorical decisions natively.
* ``cmaes``: ``CmaEsSampler`` models only numerical (here: integer) decisions that
  every trial has; categorical and conditional decisions are sampled by its
  independent sampler (random). On an all-categorical space (NB201,
  NAS-Bench-Graph) it is random search. One objective only.
* ``gp``: ``GPSampler``: a Gaussian process with a Hamming-distance kernel for
  categorical decisions, over the decisions that every trial has; conditional
  decisions are sampled at random. The slowest per proposal.
* ``qmc``: ``QMCSampler`` (Sobol, scrambled with the seed here, so that seeds
  differ; scrambling costs ~20 ms per proposal, ``sampler_options={"scramble":
  False}`` avoids it): a low-discrepancy design over the first trial's decisions;
  in Optuna 5 a categorical decision takes one coordinate, split into equal bins;
  decisions missing from the first trial (conditional ones) are sampled at random.

``cmaes``, ``gp`` and ``qmc`` would log a warning each time they fall back to
independent sampling; they are built with ``warn_independent_sampling=False`` (pass
``sampler_options={"warn_independent_sampling": True}`` to see them). Optuna's
``ExperimentalWarning`` for the options naslab picks is silenced;
``sampler_options`` go to the sampler's constructor as they are.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, Trial, TrialState

from naslab.core.errors import ConfigError, InvalidArchitectureError
from naslab.core.registry import Registry
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.search_spaces.decisions import Categorical, Decision, Integer, check_decisions

__all__ = ["HASH_ATTR", "SAMPLERS", "SINGLE_OBJECTIVE", "OptunaSpace", "make_sampler"]

#: Optuna's samplers by naslab name, with the options naslab passes unless
#: ``sampler_options`` overrides them.
SAMPLERS = Registry("Optuna sampler", base=optuna.samplers.BaseSampler)
SAMPLERS.register("tpe", optuna.samplers.TPESampler,
                  defaults={"multivariate": True, "group": True})
SAMPLERS.register("random", optuna.samplers.RandomSampler)
SAMPLERS.register("nsga2", optuna.samplers.NSGAIISampler)
SAMPLERS.register("nsga3", optuna.samplers.NSGAIIISampler)
SAMPLERS.register("cmaes", optuna.samplers.CmaEsSampler,
                  defaults={"warn_independent_sampling": False})
SAMPLERS.register("gp", optuna.samplers.GPSampler, defaults={"warn_independent_sampling": False})
SAMPLERS.register("qmc", optuna.samplers.QMCSampler,
                  defaults={"scramble": True, "warn_independent_sampling": False})
#: Samplers that optimise one objective only.
SINGLE_OBJECTIVE = frozenset({"cmaes"})
#: User attribute that names the naslab architecture an Optuna trial stands for.
HASH_ATTR = "naslab_arch_hash"


def make_sampler(name: str, seed: int, options: Mapping[str, Any], who: str
                 ) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` seeded with ``seed``: naslab's defaults (those this Optuna
    version's sampler accepts) overridden by ``options``. ``who`` names the searcher
    in error messages."""
    cls = SAMPLERS.load(name)
    if "seed" in options:
        raise ConfigError(f"{who}: give the seed as the searcher's seed, not in sampler_options")
    params = inspect.signature(cls.__init__).parameters
    accepted = sorted(n for n in params if n not in ("self", "seed"))
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"{who}: unknown sampler option(s) {', '.join(map(repr, unknown))}; "
                          f"{cls.__name__} accepts: {', '.join(accepted)}")
    defaults = {k: v for k, v in SAMPLERS.entry(name).defaults.items() if k in params}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(seed=seed, **{**defaults, **options})
    except (TypeError, ValueError) as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in options.items())
        raise ConfigError(
            f"{who}: {cls.__name__} refused its options ({given or 'defaults'}): {exc}"
        ) from exc


class OptunaSpace:
    """A space's declared decisions as Optuna distributions and params."""

    def __init__(self, space: SearchSpace, who: str) -> None:
        self.space = space
        self.who = who
        self.declared: list[Decision] = list(space.decisions())
        self.distributions: dict[str, BaseDistribution] = {}
        for d in self.declared:
            if isinstance(d, Integer):
                # the grid's last value: Optuna warns when high is off the step grid
                self.distributions[d.name] = IntDistribution(d.low, d.values[-1], step=d.step)
            else:
                self.distributions[d.name] = CategoricalDistribution(list(d.choices))

    def suggest(self, trial: Trial) -> dict[str, Any]:
        """Sample the active decisions, define-by-run, in declared order."""
        out: dict[str, Any] = {}
        for d in self.declared:
            if d.condition is not None and not d.condition.holds(out):
                continue
            if isinstance(d, Categorical):
                out[d.name] = trial.suggest_categorical(d.name, d.choices)
            else:
                dist = self.distributions[d.name]
                assert isinstance(dist, IntDistribution)
                out[d.name] = trial.suggest_int(d.name, dist.low, dist.high, step=dist.step)
        return out

    def params(self, arch: Architecture) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
        """An architecture's decisions as Optuna params and distributions (validated)."""
        if arch.space != self.space.name:
            raise InvalidArchitectureError(
                f"{self.who}: architecture of space {arch.space!r} told to a search of "
                f"space {self.space.name!r}")
        params = check_decisions(self.space.name, self.declared, arch.decisions)
        return params, {n: self.distributions[n] for n in params}

    def frozen(self, arch: Architecture, values: Sequence[float] | None,
               state: TrialState) -> FrozenTrial:
        """A finished Optuna trial standing for a result of ``arch``."""
        params, distributions = self.params(arch)
        return optuna.trial.create_trial(
            state=state, values=None if values is None else list(values), params=params,
            distributions=distributions, user_attrs={HASH_ATTR: arch.hash})
