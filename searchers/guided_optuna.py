"""Predictor-guided Optuna: the predictor screens the sampler's proposals.

After ``initial_samples`` results (plain Optuna proposals until then), each
proposal:

1. asks ``screen`` proposals from a *shadow* copy of the Optuna study (same sampler
   kind, in memory, holding every told result), so the sampler's own model (TPE's
   densities, NSGA-II's population, ...) decides where to look;
2. scores them with the performance predictor (refitted as results arrive) through
   an acquisition function, exactly as
   :class:`~naslab.searchers.guided.GuidedEvolution` does;
3. proposes the best one as a trial of the real Optuna study (``enqueue_trial``), so
   the real study, the one optuna-dashboard shows, holds only real evaluations.

The shadow's screened-out proposals are told FAIL there, which TPE and the other
samplers ignore. Resume: like :class:`~naslab.searchers.optuna_searcher.OptunaSearcher`
(the Optuna study is brought up to date with the store's history; the shadow is
rebuilt from it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from naslab.core.errors import InvalidArchitectureError
from naslab.core.validation import MAX_CANDIDATES, check_int
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.searchers.objectives import Objective
from naslab.searchers.optuna_searcher import OptunaSearcher
from naslab.searchers.predictor_guide import PredictorGuide
from naslab.searchers.prior import PriorRequest, PriorResults


class GuidedOptuna(OptunaSearcher):
    """An Optuna sampler whose proposals a performance predictor screens.

    Args:
        space, seed, objectives, storage, study_name, sampler_options, max_retries: as for
            :class:`~naslab.searchers.optuna_searcher.OptunaSearcher`.
        sampler: the Optuna sampler that proposes (default ``tpe``).
        screen: proposals drawn from the sampler and scored per evaluation.
        predictor, acquisition, kappa, initial_samples, refit_every,
            predictor_options, transfer_from, transfer_size, transfer_studies: as for
            :class:`~naslab.searchers.guided.GuidedEvolution` (warm: the predictor
            screens the sampler's proposals from the first one).
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        sampler: str = "tpe",
        screen: int = 24,
        predictor: str = "dgin",
        acquisition: str = "ucb",
        kappa: float = 0.5,
        initial_samples: int = 10,
        refit_every: int | None = None,
        predictor_options: Mapping[str, Any] | None = None,
        transfer_from: str | Sequence[str] | None = None,
        transfer_size: int = 1000,
        transfer_studies: str | None = None,
        objectives: str | Sequence[str | Objective] | None = None,
        storage: optuna.storages.BaseStorage | None = None,
        study_name: str | None = None,
        sampler_options: Mapping[str, Any] | None = None,
        max_retries: int = 100,
    ) -> None:
        super().__init__(space, seed=seed, sampler=sampler, objectives=objectives,
                         storage=storage, study_name=study_name,
                         sampler_options=sampler_options, max_retries=max_retries)
        self.name = "guided-optuna"
        self.screen = check_int(f"{self.name}: screen", screen, minimum=1,
                                maximum=MAX_CANDIDATES)
        self.guide = PredictorGuide(self, predictor, acquisition, kappa, initial_samples,
                                    refit_every, predictor_options, transfer_from,
                                    transfer_size, transfer_studies)
        self._shadow: optuna.Study | None = None
        self._shadow_told = 0

    def prior_request(self) -> PriorRequest | None:
        """Other tasks' results wanted for a warm start (``transfer_from``)."""
        return self.guide.prior_request()

    def use_prior(self, prior: PriorResults) -> None:
        """Pre-train the predictor on other tasks' results (``transfer_from``)."""
        self.guide.use_prior(prior)

    def _shadow_study(self) -> optuna.Study:
        """The in-memory shadow, holding every told result (added as they come)."""
        if self._shadow is None:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self._shadow = optuna.create_study(
                storage=optuna.storages.InMemoryStorage(),
                sampler=self.make_sampler(),
                directions=self.directions,
            )
            self._shadow_told = 0
        new = self.history[self._shadow_told:]
        if new:
            self._shadow.add_trials([self._frozen(o) for o in new])
            self._shadow_told = len(self.history)
        return self._shadow

    def _screened(self) -> list[Architecture]:
        shadow = self._shadow_study()
        out: dict[str, Architecture] = {}
        for _ in range(self.screen):
            trial = shadow.ask()
            try:
                arch = self.space.from_decisions(self.optuna_space.suggest(trial))
            except InvalidArchitectureError:
                arch = None
            shadow.tell(trial, state=TrialState.FAIL)
            if arch is not None and arch.hash not in self._seen:
                out.setdefault(arch.hash, arch)
        return list(out.values())

    def _propose(self, rng: np.random.Generator) -> Architecture:
        fitted = self.guide.predictors()
        if fitted is None:
            return super()._propose(rng)
        cands = self._screened()
        if not cands:
            return super()._propose(rng)
        best = cands[int(np.argmax(self.guide.scores(rng, cands, fitted)))]
        study = self.study
        study.enqueue_trial(dict(best.decisions))
        arch = self._consider(study, study.ask())
        return best if arch is None else arch
