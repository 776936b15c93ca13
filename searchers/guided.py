"""Predictor-guided evolution: mutate many, evaluate the few the predictor ranks best.

Each proposal, after ``initial_samples`` random ones:

1. the performance predictor (any of :mod:`naslab.predictors`, by name) is fitted on
   the results told so far, refitted every ``refit_every`` new results;
2. ``candidates`` unseen architectures are generated cheaply: mutations (one or two
   decisions changed) and crossovers of the best ``parents`` results, plus a
   fraction of random samples for exploration;
3. the predictor scores them (mean and uncertainty) through an acquisition function
   (:mod:`naslab.searchers.acquisition`: ``ucb`` by default, ``ei``, ``ts``
   Thompson sampling, ``mean``), optionally hill-climbs the acquisition from the best
   of them (``local_steps``, as SMAC optimises its acquisition), and the best
   unseen one is proposed.

This is the scheme of BANANAS (White, Neiswanger, Savani, AAAI 2021: an ensemble
predictor, mutation of the best architectures, an acquisition function), with
naslab's predictors. On NAS-Bench-Graph with 100 queries (cora, photo and arxiv, 10
seeds), an exploiting acquisition (``ucb`` with ``kappa=0.5``, or ``mean``) did
better than ``ts`` and ``ei``, whose exploration costs more than it finds in so few
queries; ``benchmarks/search_quality.py`` compares the searchers on all data sets.

With several objectives (e.g. ``val_accuracy:max,latency_ms:min``) one predictor
per objective is fitted, the optimistic point of each candidate (its acquisition
value per objective) is compared with the current Pareto front, and the candidate
with the largest hypervolume improvement (in objectives normalised to the observed
ranges) is proposed; parents are the best by non-dominated rank.

With ``pool="space"`` and a space small enough to enumerate (at most
:data:`MAX_POOL` decision combinations, e.g. NAS-Bench-Graph's 26,206 architectures),
step 2 is replaced by the whole space: every unseen architecture is scored, and the
predictions are computed once per fit (the acquisition is re-applied per proposal).
A larger space falls back to the generated candidates.

With ``transfer_from`` the search starts warm from other tasks' stored results (see
:mod:`naslab.searchers.predictor_guide`): the predictor is pre-trained on them and
fine-tuned on the study's own results as they arrive (after ``initial_samples``
random ones; with ``initial_samples=0`` it scores candidates from the first proposal,
and the parents are the other tasks' best architectures until the study has its own).

State: the predictor is always fitted on a prefix of the successful results (see
:mod:`naslab.searchers.predictor_guide`), seeded by the searcher's seed, so the state
is a function of the told history (and, warm, of the other tasks' results) and a
resumed search proposes exactly what an uninterrupted one would (after refitting
once, on resume).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from naslab.core.errors import ConfigError
from naslab.core.validation import MAX_CANDIDATES, check_choice, check_float, check_int
from naslab.predictors.base import Prediction, Predictor
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.search_spaces.enumeration import space_architectures
from naslab.searchers.base import Observation, Searcher
from naslab.searchers.objectives import Objective
from naslab.searchers.predictor_guide import PredictorGuide
from naslab.searchers.prior import PriorRequest, PriorResults

__all__ = ["MAX_LOCAL_STEPS", "MAX_POOL", "POOLS", "GuidedEvolution", "PredictorGuide"]

#: The most hill-climbing steps on the acquisition per proposal (``local_steps``).
MAX_LOCAL_STEPS = 1_000
#: Where candidates come from: generated around the best results, or the whole space.
POOLS = ("mutations", "space")
#: The most decision combinations a space may have for ``pool="space"``.
MAX_POOL = 100_000


class GuidedEvolution(Searcher):
    """Evolution whose offspring are screened by a performance predictor.

    Args:
        space: the search space.
        seed: seed of the searcher's draws and of the predictor's fits.
        predictor: a predictor name (``dgin``, ``gin``, ``gcn``, ``rf``, ``gbdt``;
            see :func:`naslab.predictors.registry.get_predictor`).
        acquisition: ``ucb`` (default), ``ei``, ``ts`` (Thompson sampling) or
            ``mean``.
        kappa: weight of the uncertainty in ``ucb`` (and, with several objectives,
            in each objective's optimistic value; ``ts`` draws instead).
        initial_samples: random proposals before the predictor is first fitted.
        candidates: architectures generated and scored per proposal.
        parents: how many of the best results are mutated.
        refit_every: refit the predictor after this many new results (default: 10
            for the GNN predictors, 5 for the tree ones).
        random_fraction: share of the candidates sampled at random.
        crossover_prob: chance that a candidate is a crossover of two parents
            (then mutated) rather than a mutation of one.
        local_steps: hill-climbing steps on the acquisition, over one-decision
            neighbourhoods, from the parents and the ``local_starts`` best-scored
            candidates (0: score the generated candidates only). Single objective.
        local_starts: candidates the hill climbing starts from (besides the parents).
        pool: ``"mutations"`` (default: the generated candidates above) or
            ``"space"`` (every unseen architecture, when the space has at most
            :data:`MAX_POOL` decision combinations; one objective).
        predictor_options: constructor options of the predictor.
        transfer_from: warm start: ``"auto"`` (every other task of this space in the
            store) or task names (``"citeseer,pubmed"``); None (default): cold. The
            study's own task is never used. Needs a GNN predictor and one objective.
        transfer_size: at most this many architectures of each other task.
        transfer_studies: only results of studies whose name matches this glob
            (e.g. ``"bench-*"``); None: every study.
        objectives: one objective (default ``val_accuracy`` maximised) or several.
    """

    name = "guided-evolution"
    multi_objective = True

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        predictor: str = "dgin",
        acquisition: str = "ucb",
        kappa: float = 0.5,
        initial_samples: int = 10,
        candidates: int = 200,
        parents: int = 10,
        refit_every: int | None = None,
        random_fraction: float = 0.1,
        crossover_prob: float = 0.2,
        local_steps: int = 0,
        local_starts: int = 10,
        pool: str = "mutations",
        predictor_options: Mapping[str, Any] | None = None,
        transfer_from: str | Sequence[str] | None = None,
        transfer_size: int = 1000,
        transfer_studies: str | None = None,
        objectives: str | Sequence[str | Objective] | None = None,
        max_retries: int = 100,
    ) -> None:
        super().__init__(space, seed, max_retries=max_retries, objectives=objectives)
        who = self.name
        self.pool = check_choice(f"{who}: pool", pool, POOLS)
        if self.pool == "space" and len(self.objectives) > 1:
            raise ConfigError(f"{who}: pool='space' works with one objective; got "
                              f"{len(self.objectives)}")
        self.local_steps = check_int(f"{who}: local_steps", local_steps, minimum=0,
                                     maximum=MAX_LOCAL_STEPS)
        self.local_starts = check_int(f"{who}: local_starts", local_starts, minimum=1,
                                      maximum=MAX_CANDIDATES)
        self.candidates = check_int(f"{who}: candidates", candidates, minimum=1,
                                    maximum=MAX_CANDIDATES)
        self.parents = check_int(f"{who}: parents", parents, minimum=1)
        self.random_fraction = check_float(f"{who}: random_fraction", random_fraction,
                                           minimum=0, maximum=1)
        self.crossover_prob = check_float(f"{who}: crossover_prob", crossover_prob,
                                          minimum=0, maximum=1)
        self.guide = PredictorGuide(self, predictor, acquisition, kappa, initial_samples,
                                    refit_every, predictor_options, transfer_from,
                                    transfer_size, transfer_studies)
        self._pool_predictions: tuple[int, Prediction] | None = None

    def prior_request(self) -> PriorRequest | None:
        """Other tasks' results wanted for a warm start (``transfer_from``)."""
        return self.guide.prior_request()

    def use_prior(self, prior: PriorResults) -> None:
        """Pre-train the predictor on other tasks' results (``transfer_from``)."""
        self.guide.use_prior(prior)

    def _parents(self, usable: list[Observation]) -> list[Architecture]:
        if self.guide.prior is not None and len(usable) < self.parents:
            own = self._parents_of(usable) if usable else []
            known = {a.hash for a in own}
            extra = [a for a in self.guide.prior.best(self.parents) if a.hash not in known]
            return own + extra[: self.parents - len(own)]
        return self._parents_of(usable)

    def _parents_of(self, usable: list[Observation]) -> list[Architecture]:
        y = self.guide.targets(usable)
        if y.shape[1] == 1:
            order = np.argsort(-y[:, 0], kind="stable")
        else:
            from naslab.searchers.nsga2 import environmental_selection

            order = environmental_selection(-y, self.parents)[0]
        return [usable[i].arch for i in order[: self.parents]]

    def _candidates(
        self, rng: np.random.Generator, parents: list[Architecture]
    ) -> list[Architecture]:
        out: dict[str, Architecture] = {}
        n_random = int(round(self.candidates * self.random_fraction))
        for _ in range(self.candidates - n_random):
            p = parents[int(rng.integers(len(parents)))]
            if len(parents) > 1 and rng.random() < self.crossover_prob:
                q = parents[int(rng.integers(len(parents)))]
                child = self.space.mutate(self.space.crossover(p, q, rng), rng)
            else:
                child = self.space.mutate(p, rng)
                if rng.random() < 0.5:
                    child = self.space.mutate(child, rng)
            if child.hash not in self._seen:
                out.setdefault(child.hash, child)
        for _ in range(n_random):
            child = self.space.sample(rng)
            if child.hash not in self._seen:
                out.setdefault(child.hash, child)
        return list(out.values())

    def _local_search(
        self, rng: np.random.Generator, fitted: list[Predictor], parents: list[Architecture],
        pool: list[Architecture], pool_scores: np.ndarray,
    ) -> tuple[list[Architecture], np.ndarray]:
        """Hill-climb the acquisition from the parents and the best-scored pool members:
        every step scores the current points' neighbourhoods and moves each point to
        its best neighbour if that scores higher (as SMAC optimises its acquisition).
        Returns every architecture scored, with its score."""
        scores: dict[str, float] = {a.hash: float(v) for a, v in zip(pool, pool_scores)}
        known: dict[str, Architecture] = {a.hash: a for a in pool}
        order = np.argsort(-pool_scores, kind="stable")
        starts = list(parents) + [pool[i] for i in order[: self.local_starts]]
        new = [a for a in starts if a.hash not in scores]
        if new:
            for a, v in zip(new, self.guide.scores(rng, new, fitted)):
                scores[a.hash], known[a.hash] = float(v), a
        current = list({a.hash: a for a in starts}.values())
        for _ in range(self.local_steps):
            neighbourhoods = [self.space.neighbours(a) for a in current]
            fresh = {n.hash: n for ns in neighbourhoods for n in ns if n.hash not in scores}
            if fresh:
                archs = list(fresh.values())
                for a, v in zip(archs, self.guide.scores(rng, archs, fitted)):
                    scores[a.hash], known[a.hash] = float(v), a
            moved = []
            for a, ns in zip(current, neighbourhoods):
                if ns:
                    b = max(ns, key=lambda n: scores[n.hash])
                    if scores[b.hash] > scores[a.hash]:
                        moved.append(b)
            if not moved:
                break
            current = list({a.hash: a for a in moved}.values())
        out = [a for h, a in known.items() if h not in self._seen]
        return out, np.array([scores[a.hash] for a in out])

    def _from_space(self, rng: np.random.Generator, fitted: list[Predictor]
                    ) -> Architecture | None:
        """The best-scored unseen architecture of the whole space (``pool="space"``);
        None when the space is too large to enumerate or every one is seen."""
        archs = space_architectures(self.space, MAX_POOL)
        if archs is None:
            return None
        if self._pool_predictions is None or self._pool_predictions[0] != self.guide.fits:
            self._pool_predictions = (self.guide.fits, self.guide.predict(archs, fitted)[0])
        pred = self._pool_predictions[1]
        unseen = np.array([a.hash not in self._seen for a in archs])
        if not unseen.any():
            return None
        idx = np.flatnonzero(unseen)
        scores = self.guide.score_predictions(
            rng, [Prediction(pred.mean[idx], pred.std[idx])])
        return archs[int(idx[int(np.argmax(scores))])]

    def _propose(self, rng: np.random.Generator) -> Architecture:
        fitted = self.guide.predictors()
        if fitted is None:
            return self.space.sample(rng)
        if self.pool == "space":
            best = self._from_space(rng, fitted)
            if best is not None:
                return best
        parents = self._parents(self.guide.usable())
        cands = self._candidates(rng, parents)
        if not cands:
            return self.space.sample(rng)
        scores = self.guide.scores(rng, cands, fitted)
        if self.local_steps and len(self.objectives) == 1:
            cands, scores = self._local_search(rng, fitted, parents, cands, scores)
            if not cands:
                return self.space.sample(rng)
        return cands[int(np.argmax(scores))]
