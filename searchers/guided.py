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

State: the predictor is always fitted on the first ``initial_samples + k *
refit_every`` successful results (the largest such prefix), seeded by the searcher's
seed, so the state is a
function of the told history and a resumed search proposes exactly what an
uninterrupted one would (after refitting once, on resume).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from naslab.core.errors import ConfigError
from naslab.core.validation import (
    MAX_CANDIDATES,
    check_float,
    check_int,
    check_mapping,
    check_str,
)
from naslab.predictors.base import Predictor
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.searchers.acquisition import ACQUISITIONS, acquire
from naslab.searchers.base import Observation, Searcher
from naslab.searchers.objectives import Objective

_GNN_NAMES = ("dgin", "gin", "gcn")
#: The most hill-climbing steps on the acquisition per proposal (``local_steps``).
MAX_LOCAL_STEPS = 1_000


class PredictorGuide:
    """The predictor side of a guided searcher: fitting on a prefix of the history and
    scoring candidates through an acquisition function (one predictor per objective).

    Args: as the same-named arguments of :class:`GuidedEvolution`.
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
    ) -> None:
        self.searcher = searcher
        who = searcher.name
        if not isinstance(acquisition, str) or acquisition not in ACQUISITIONS:
            raise ConfigError(f"{who}: acquisition must be one of {', '.join(ACQUISITIONS)}; "
                              f"got {acquisition!r}")
        self.acquisition = acquisition
        self.kappa = check_float(f"{who}: kappa", kappa, minimum=0)
        self.initial_samples = check_int(f"{who}: initial_samples", initial_samples, minimum=1)
        self.predictor_name = check_str(f"{who}: predictor", predictor)
        if refit_every is None:
            refit_every = 10 if predictor in _GNN_NAMES else 5
        self.refit_every = check_int(f"{who}: refit_every", refit_every, minimum=1)
        self.predictor_options = check_mapping(f"{who}: predictor_options", predictor_options)
        self._make_predictor()  # refuse a bad name or options now, not at the 11th ask
        self._fitted: tuple[int, list[Predictor]] | None = None
        #: Seconds spent fitting predictors, and number of fits (for reports).
        self.fit_seconds = 0.0
        self.fits = 0

    @property
    def objectives(self) -> tuple[Objective, ...]:
        """The searcher's objectives."""
        return self.searcher.objectives

    def _make_predictor(self) -> Predictor:
        from naslab.predictors.registry import get_predictor

        options = dict(self.predictor_options)
        options.setdefault("seed", self.searcher.seed)
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
        fitting them if the prefix grew; None before ``initial_samples`` results."""
        usable = self.usable()
        if len(usable) < max(2, self.initial_samples):
            return None
        m = len(usable) - (len(usable) - self.initial_samples) % self.refit_every
        if self._fitted is not None and self._fitted[0] == m:
            return self._fitted[1]
        prefix = usable[:m]
        y = self.targets(prefix)
        archs = [o.arch for o in prefix]
        start = time.perf_counter()
        fitted = [self._make_predictor().fit(archs, y[:, j]) for j in range(y.shape[1])]
        self.fit_seconds += time.perf_counter() - start
        self.fits += 1
        self._fitted = (m, fitted)
        return fitted

    def scores(self, rng: np.random.Generator, cands: Sequence[Architecture],
               fitted: list[Predictor]) -> np.ndarray:
        """The acquisition value of each candidate (larger is better). With several
        objectives: the hypervolume improvement of its optimistic point over the
        current front (objectives normalised to the observed ranges), or, when none
        improves it, minus the sum of its normalised optimistic objectives."""
        preds = [p.predict(list(cands)) for p in fitted]
        y = self.targets(self.usable())
        if len(preds) == 1:
            return acquire(self.acquisition, preds[0].mean, preds[0].std,
                           best=float(y[:, 0].max()), kappa=self.kappa, rng=rng)
        from naslab.searchers.pareto import hypervolume_improvement, pareto_mask

        # optimistic value per objective (larger is better), then minimisation form
        opt = np.stack([
            p.mean + p.std * rng.standard_normal(len(cands)) if self.acquisition == "ts"
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
        predictor_options: constructor options of the predictor.
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
        predictor_options: Mapping[str, Any] | None = None,
        objectives: str | Sequence[str | Objective] | None = None,
        max_retries: int = 100,
    ) -> None:
        super().__init__(space, seed, max_retries=max_retries, objectives=objectives)
        who = self.name
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
                                    refit_every, predictor_options)

    def _parents(self, usable: list[Observation]) -> list[Architecture]:
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

    def _propose(self, rng: np.random.Generator) -> Architecture:
        fitted = self.guide.predictors()
        if fitted is None:
            return self.space.sample(rng)
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
