"""The predictor side of a guided searcher: fitting a performance predictor on the
results told so far, optionally warm-started from other tasks, and scoring candidates
through an acquisition function.

**Cold** (the default): after ``initial_samples`` results the predictor is fitted on
the first ``initial_samples + k * refit_every`` successful results (the largest such
prefix), seeded by the searcher's seed, so the state is a function of the told
history and a resumed search proposes what an uninterrupted one would.

**Warm** (``transfer_from``): the searcher asks for other tasks' results of the same
space (:class:`~naslab.searchers.prior.PriorRequest`; the study reads them from the
store). A predictor is pre-trained once on them (targets z-scored per task); after
``initial_samples`` random results (0 is allowed warm: the pre-trained predictor then
picks from the first proposal) it is fine-tuned on the study's own results
(:meth:`~naslab.predictors.gnn.GNNPredictor.fine_tune`) every ``refit_every``
results, and scores candidates as a cold one would. On NAS-Bench-Graph, proposing
from the pre-trained predictor at once made every seed converge on the other tasks'
favourites (see ``benchmarks/search_quality.py``), hence the random start by default.
The pre-trained predictor depends only on those results and the predictor's options
(seed 0), so it is computed once per process for equal inputs and is the same for
every seed of a benchmark. Warm starts need a predictor that fine-tunes (the GNN
families) and one objective.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from naslab.core.errors import ConfigError
from naslab.core.validation import check_float, check_int, check_mapping, check_str
from naslab.predictors.base import Prediction, Predictor
from naslab.search_spaces.architecture import Architecture
from naslab.searchers.acquisition import ACQUISITIONS, acquire
from naslab.searchers.base import Observation, Searcher
from naslab.searchers.objectives import Objective
from naslab.searchers.prior import PriorRequest, PriorResults, parse_transfer_from

__all__ = ["FINE_TUNING_PREDICTORS", "MAX_TRANSFER_SIZE", "PRETRAIN_STEPS", "PredictorGuide"]

_GNN_NAMES = ("dgin", "gin", "gcn")
#: Predictors that can be pre-trained on other tasks and fine-tuned (``transfer_from``).
FINE_TUNING_PREDICTORS = _GNN_NAMES
#: Gradient steps of the pre-training on other tasks' results (``max_steps``, unless
#: ``predictor_options`` sets it).
PRETRAIN_STEPS = 2000
#: The most architectures per other task a warm start reads (``transfer_size``).
MAX_TRANSFER_SIZE = 100_000
_PRETRAINED_KEPT = 8
_pretrained: OrderedDict[str, bytes] = OrderedDict()
_pretrained_lock = threading.Lock()


class PredictorGuide:
    """Fits predictors (one per objective) on a prefix of the history and scores
    candidates through an acquisition function.

    Args: as the same-named arguments of
    :class:`~naslab.searchers.guided.GuidedEvolution`.
    """

    def __init__(
        self,
        searcher: Searcher,
        predictor: str = "dgin",
        acquisition: str = "ucb",
        kappa: float = 0.5,
        initial_samples: int = 10,
        refit_every: int | None = None,
        predictor_options: Mapping[str, Any] | None = None,
        transfer_from: str | Sequence[str] | None = None,
        transfer_size: int = 1000,
        transfer_studies: str | None = None,
    ) -> None:
        self.searcher = searcher
        who = searcher.name
        if not isinstance(acquisition, str) or acquisition not in ACQUISITIONS:
            raise ConfigError(f"{who}: acquisition must be one of {', '.join(ACQUISITIONS)}; "
                              f"got {acquisition!r}")
        self.acquisition = acquisition
        self.kappa = check_float(f"{who}: kappa", kappa, minimum=0)
        self.initial_samples = check_int(f"{who}: initial_samples", initial_samples,
                                         minimum=0 if transfer_from is not None else 1)
        self.predictor_name = check_str(f"{who}: predictor", predictor)
        if refit_every is None:
            refit_every = 10 if predictor in _GNN_NAMES else 5
        self.refit_every = check_int(f"{who}: refit_every", refit_every, minimum=1)
        self.predictor_options = check_mapping(f"{who}: predictor_options", predictor_options)
        self._make_predictor()  # refuse a bad name or options now, not at the 11th ask
        self.transfer = parse_transfer_from(f"{who}", transfer_from)
        self.transfer_size = check_int(f"{who}: transfer_size", transfer_size, minimum=2,
                                       maximum=MAX_TRANSFER_SIZE)
        self.transfer_studies = (None if transfer_studies is None else
                                 check_str(f"{who}: transfer_studies", transfer_studies,
                                           max_length=255))
        if self.transfer_studies is not None and not self.transfer_studies.isprintable():
            raise ConfigError(f"{who}: transfer_studies must be printable characters")
        if self.transfer is not False:
            self._check_transfer(who)
        self.prior: PriorResults | None = None
        self._fitted: tuple[int, list[Predictor]] | None = None
        self._raw_units = True  # False: the pre-trained predictor's z-scores, not tuned
        #: Seconds spent fitting predictors, and number of fits (for reports).
        self.fit_seconds = 0.0
        self.fits = 0

    def _check_transfer(self, who: str) -> None:
        if self.predictor_name not in FINE_TUNING_PREDICTORS:
            raise ConfigError(
                f"{who}: transfer_from needs a predictor that fine-tunes "
                f"({', '.join(FINE_TUNING_PREDICTORS)}); got {self.predictor_name!r}")
        if len(self.objectives) != 1:
            raise ConfigError(f"{who}: transfer_from works with one objective; got "
                              f"{len(self.objectives)}")

    @property
    def objectives(self) -> tuple[Objective, ...]:
        """The searcher's objectives."""
        return self.searcher.objectives

    @property
    def warm(self) -> bool:
        """Whether other tasks' results have been given (:meth:`use_prior`)."""
        return self.prior is not None

    def prior_request(self) -> PriorRequest | None:
        """The other tasks' results this guide wants (None without ``transfer_from``)."""
        if self.transfer is False:
            return None
        objective = self.objectives[0]
        return PriorRequest(tasks=None if self.transfer is True else self.transfer,
                            per_task=self.transfer_size, studies=self.transfer_studies,
                            metric=objective.name, sign=float(objective.sign))

    def use_prior(self, prior: PriorResults) -> None:
        """Learn from other tasks' results: pre-train on them before the first proposal."""
        if self.transfer is False:
            raise ConfigError(f"{self.searcher.name}: other tasks' results were given, but "
                              "transfer_from is not set")
        if not isinstance(prior, PriorResults):
            raise ConfigError(f"use_prior takes PriorResults, got {type(prior).__name__}")
        self.prior = prior
        self._fitted = None

    def _make_predictor(self, **overrides: Any) -> Predictor:
        from naslab.predictors.registry import get_predictor

        options = dict(self.predictor_options)
        options.setdefault("seed", self.searcher.seed)
        options.update(overrides)
        return get_predictor(self.predictor_name, options)

    def targets(self, obs: Sequence[Observation]) -> np.ndarray:
        """(n, n_objectives) values, each turned so that larger is better."""
        if len(self.objectives) == 1:
            sign = self.objectives[0].sign
            return np.array([[sign * float(o.value or 0.0)] for o in obs]).reshape(-1, 1)
        signs = np.array([o.sign for o in self.objectives])
        return np.array([o.values for o in obs], dtype=float).reshape(-1, len(signs)) * signs

    def usable(self) -> list[Observation]:
        """The observations with every objective, in the order told."""
        if len(self.objectives) == 1:
            return self.searcher.done
        return [o for o in self.searcher.history if o.values is not None]

    def predictors(self) -> list[Predictor] | None:
        """The predictors (one per objective) fitted on the current prefix of results,
        fitting them if the prefix grew; None before ``initial_samples`` results
        (warm: the pre-trained predictor, fine-tuned on that prefix)."""
        if self.transfer is not False and self.prior is None:
            raise ConfigError(
                f"{self.searcher.name}: transfer_from is set but no other tasks' results "
                "were given; a study gives them before the first proposal (outside a "
                "study, call use_prior first)")
        usable = self.usable()
        if len(usable) < (self.initial_samples if self.prior is not None
                          else max(2, self.initial_samples)):
            return None
        m = len(usable) - (len(usable) - self.initial_samples) % self.refit_every
        if self._fitted is not None and self._fitted[0] == m:
            return self._fitted[1]
        prefix = usable[:m]
        y = self.targets(prefix)
        archs = [o.arch for o in prefix]
        start = time.perf_counter()
        if self.prior is not None:
            fitted = [self._fine_tuned(archs, y[:, 0])]
        else:
            fitted = [self._make_predictor().fit(archs, y[:, j]) for j in range(y.shape[1])]
        self.fit_seconds += time.perf_counter() - start
        self.fits += 1
        self._fitted = (m, fitted)
        return fitted

    def _fine_tuned(self, archs: list[Architecture], y: np.ndarray) -> Predictor:
        """The pre-trained predictor, fine-tuned on the study's first results (as is
        when there are fewer than 2)."""
        from naslab.predictors.base import predictor_from_bytes

        predictor = predictor_from_bytes(self._pretrained_bytes())
        self._raw_units = len(archs) >= 2 and float(np.ptp(y)) > 0
        if self._raw_units:
            predictor.fine_tune(archs, y)  # type: ignore[attr-defined]
        return predictor

    def _pretrained_bytes(self) -> bytes:
        """The predictor pre-trained on the prior, as bytes (computed once per process
        for the same prior and options)."""
        assert self.prior is not None
        steps = self.predictor_options.get("max_steps", PRETRAIN_STEPS)
        options = dict(self.predictor_options, seed=0, max_steps=steps)
        key = hashlib.sha256(json.dumps(
            [self.predictor_name, options, self.prior.digest()], sort_keys=True,
            default=str).encode()).hexdigest()
        with _pretrained_lock:
            if key in _pretrained:
                _pretrained.move_to_end(key)
                return _pretrained[key]
        predictor = self._make_predictor(seed=0, max_steps=steps)
        predictor.fit(list(self.prior.archs), self.prior.targets)
        data = predictor.to_bytes()
        with _pretrained_lock:
            _pretrained[key] = data
            while len(_pretrained) > _PRETRAINED_KEPT:
                _pretrained.popitem(last=False)
        return data

    def predict(self, cands: Sequence[Architecture], fitted: list[Predictor]
                ) -> list[Prediction]:
        """Each fitted predictor's prediction of ``cands``."""
        return [p.predict(list(cands)) for p in fitted]

    def scores(self, rng: np.random.Generator, cands: Sequence[Architecture],
               fitted: list[Predictor]) -> np.ndarray:
        """The acquisition value of each candidate (larger is better); see
        :meth:`score_predictions`."""
        return self.score_predictions(rng, self.predict(cands, fitted))

    def _best_in_prediction_units(self, usable: list[Observation], y: np.ndarray,
                                  pred: Prediction) -> float:
        """The best value observed, in the units the predictions are in (the
        pre-trained predictor, not yet fine-tuned, predicts z-scores: then the best of
        its predictions of the observed architectures)."""
        if not len(y):
            return float(np.max(pred.mean))
        if self._raw_units or self._fitted is None:
            return float(y[:, 0].max())
        seen = self._fitted[1][0].predict([o.arch for o in usable])
        return float(np.max(seen.mean))

    def score_predictions(self, rng: np.random.Generator, preds: list[Prediction]
                          ) -> np.ndarray:
        """The acquisition value of each predicted candidate (larger is better). With
        several objectives: the hypervolume improvement of its optimistic point over
        the current front (objectives normalised to the observed ranges), or, when
        none improves it, minus the sum of its normalised optimistic objectives."""
        usable = self.usable()
        y = self.targets(usable)
        if len(preds) == 1:
            best = self._best_in_prediction_units(usable, y, preds[0])
            return acquire(self.acquisition, preds[0].mean, preds[0].std,
                           best=best, kappa=self.kappa, rng=rng)
        from naslab.searchers.pareto import hypervolume_improvement, pareto_mask

        n = len(preds[0])
        # optimistic value per objective (larger is better), then minimisation form
        opt = np.stack([
            p.mean + p.std * rng.standard_normal(n) if self.acquisition == "ts"
            else (p.mean if self.acquisition == "mean" else p.mean + self.kappa * p.std)
            for p in preds], axis=1)
        low, high = (-y).min(axis=0), (-y).max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        front = (-y - low) / span
        front = front[pareto_mask(front)]
        points = (-opt - low) / span
        reference = np.full(len(self.objectives), 1.1)
        hvi = np.array([hypervolume_improvement(pt, front, reference) for pt in points])
        if hvi.max() > 0:
            return hvi
        return -points.sum(axis=1)  # none improves: the most promising overall
