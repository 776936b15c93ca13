"""Local search (hill climbing with random restarts) over single-decision moves.

White, Nolen and Savani, "Exploring the loss landscape in neural architecture
search" (UAI 2021) show that this simple method is state of the art on the NAS
benchmarks. The algorithm:

1. The first ``initial_samples`` proposals are uniform random samples. Once that
   many results have been told, the best of them becomes the *incumbent*.
2. The incumbent's neighbourhood (:meth:`SearchSpace.neighbours`: every distinct
   architecture one decision away) is proposed in a random order, skipping
   architectures already seen.
3. *Best improvement* (the default, the paper's variant): once every neighbour has a
   result, the search moves to the best one if it beats the incumbent.
   *First improvement* (``first_improvement=True``): it moves as soon as a told
   neighbour beats the incumbent, without waiting for the rest.
4. When a neighbourhood is done and none of it beats the incumbent (a local
   optimum), the search restarts: the next proposal is a random sample, and the
   first successful result told after that (other than the local optimum and its
   neighbours, whose late results may still come in) becomes the new incumbent, from
   which the climb resumes. The best result of the whole study stays in
   :attr:`Searcher.best`.

State and replay. Everything the search decides is derived in :meth:`tell` from the
told history alone: the incumbent, its neighbourhood (shuffled with a generator
seeded by ``(seed, incumbent hash)``), which neighbours have results, the phase
(initial sampling, climbing, awaiting a restart point) and the restart count. So
:meth:`~Searcher.replay` rebuilds it exactly and a resumed search proposes what an
uninterrupted one would. :meth:`_propose` only reads that state and the set of seen
architectures (to skip neighbours already proposed).

Robustness:

* Failed trials (value ``None``) count as evaluated neighbours that do not improve;
  they never become the incumbent.
* Results of architectures this searcher did not propose (results reused from the
  store, histories from elsewhere) are welcome: a told neighbour of the incumbent
  counts as evaluated, whoever proposed it; any other result only updates the best
  seen (and can become the start point while one is awaited).
* Several proposals in flight (``ask(n)``, or repeated ``ask(1)`` before the
  results): the neighbourhood queue hands out distinct neighbours; once it is empty
  while neighbours are still awaited, random samples fill in. A neighbourhood also
  counts as done once twice as many results as it had unevaluated neighbours have
  been told since the climb reached it, so a proposal whose result never comes
  (a trial lost to an interruption) cannot stall the climb.
* Neighbourhoods are computed once per incumbent (``space.neighbours`` can take
  tens of milliseconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from naslab.core.validation import check_bool, check_int
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.searchers.base import Searcher

#: The phases of the search (see :attr:`LocalSearch.phase`).
INITIAL, CLIMB, RESTART = "initial", "climb", "restart"
#: Neighbourhoods kept (oldest dropped first).
_CACHE_SIZE = 256


class LocalSearch(Searcher):
    """Hill climbing over single-decision neighbourhoods, with random restarts.

    White, Nolen and Savani, UAI 2021 ("local search is state of the art for NAS
    benchmarks"). After ``initial_samples`` random samples it climbs from the best
    of them: it proposes the incumbent's unseen neighbours in a random order and
    moves to the best of them once all have results (or, with
    ``first_improvement``, to the first that beats the incumbent). A neighbourhood
    with nothing better is a local optimum: the search restarts from a random
    sample. It maximises the told value (one objective, like :attr:`Searcher.best`).

    State (:attr:`phase`, :attr:`incumbent`, the incumbent's neighbourhood and which
    of it has results, :attr:`restarts`, :attr:`moves`) changes only in :meth:`tell`,
    so :meth:`replay` rebuilds it exactly; see the module docstring for the details
    (failed trials, foreign results, proposals in flight).

    Args:
        space: the search space.
        seed: seed of the random samples and of the neighbourhood orders.
        initial_samples: random samples before the climb starts (at least 1); the
            climb starts from the best of them.
        first_improvement: move to the first told neighbour that beats the incumbent
            (True) instead of evaluating the whole neighbourhood and moving to its
            best member (False, the default).
        max_retries: draws before :meth:`ask` accepts a repeated architecture.
    """

    name = "local"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        initial_samples: int = 10,
        first_improvement: bool = False,
        max_retries: int = 100,
    ) -> None:
        super().__init__(space, seed, max_retries=max_retries)
        # the random samples before the climb starts
        self.initial_samples = check_int("local search's initial_samples", initial_samples,
                                         minimum=1)
        self.first_improvement = check_bool("local search's first_improvement",
                                            first_improvement)
        self._sign = self.objectives[0].sign
        #: Latest successful value told per architecture hash (None: only failures).
        self._values: dict[str, float | None] = {}
        self._phase = INITIAL
        self._incumbent: Architecture | None = None
        self._incumbent_value: float | None = None
        self._neighbours: list[Architecture] = []  # shuffled neighbourhood
        self._neighbour_set: set[str] = set()
        self._pending: set[str] = set()  # neighbours without a told result
        self._deadline = 0  # len(history) at which the neighbourhood counts as done
        self._cursor = 0  # neighbours before it are all seen
        self._excluded: set[str] = set()  # not restart points: the last local optimum's area
        self._restarts = 0
        self._moves = 0
        self._cache: dict[str, list[Architecture]] = {}  # shuffled neighbourhoods by hash

    # -- read-only views of the state -------------------------------------------

    @property
    def phase(self) -> str:
        """``"initial"`` (random samples), ``"climb"`` (exploring the incumbent's
        neighbourhood) or ``"restart"`` (awaiting a random restart point)."""
        return self._phase

    @property
    def incumbent(self) -> tuple[Architecture, float] | None:
        """The architecture the climb is at and its value (None outside a climb)."""
        if self._incumbent is None or self._incumbent_value is None:
            return None
        return self._incumbent, self._incumbent_value

    @property
    def restarts(self) -> int:
        """Local optima reached so far (each followed by a random restart)."""
        return self._restarts

    @property
    def moves(self) -> int:
        """Improving moves made so far (incumbent changes within a climb)."""
        return self._moves

    # -- proposals ----------------------------------------------------------------

    def _propose(self, rng: np.random.Generator) -> Architecture:
        if self._phase == CLIMB:
            while self._cursor < len(self._neighbours):
                cand = self._neighbours[self._cursor]
                if cand.hash not in self._seen:
                    return cand
                self._cursor += 1
            # every neighbour is proposed, some results are still due: explore meanwhile
        return self.space.sample(rng)

    # -- learning -------------------------------------------------------------------

    def tell(
        self, arch: Architecture, value: float | None, metrics: Mapping[str, Any] | None = None
    ) -> None:
        """Record the result and advance the climb (see the module docstring)."""
        super().tell(arch, value, metrics)
        obs = self.history[-1]
        h = arch.hash
        if obs.value is not None or h not in self._values:
            self._values[h] = obs.value
        if self._phase == INITIAL:
            if len(self.history) >= self.initial_samples:
                start = self._best_told()
                if start is None:
                    self._phase = RESTART
                else:
                    self._climb_from(start)
        elif self._phase == RESTART:
            if obs.value is not None and h not in self._excluded:
                self._climb_from(arch)
        else:
            self._pending.discard(h)
            if (self.first_improvement and h in self._neighbour_set
                    and self._beats(obs.value, self._incumbent_value)):
                self._moves += 1
                self._climb_from(arch)
            elif not self._pending or len(self.history) >= self._deadline:
                self._finish_neighbourhood()

    def _beats(self, value: float | None, than: float | None) -> bool:
        return value is not None and (than is None or self._sign * value > self._sign * than)

    def _best_told(self) -> Architecture | None:
        best: Architecture | None = None
        best_value: float | None = None
        for o in self.history:
            if self._beats(o.value, best_value):
                best, best_value = o.arch, o.value
        return best

    def _neighbourhood(self, arch: Architecture) -> list[Architecture]:
        """``arch``'s neighbours in an order fixed by the seed and ``arch`` (cached:
        restarts often climb back through the same architectures)."""
        nbrs = self._cache.get(arch.hash)
        if nbrs is None:
            found = list(self.space.neighbours(arch))
            rng = np.random.default_rng([self.seed, int(arch.hash[:16], 16)])
            nbrs = [found[i] for i in rng.permutation(len(found))]
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[arch.hash] = nbrs
        return nbrs

    def _climb_from(self, arch: Architecture) -> None:
        """Make ``arch`` the incumbent; moves on at once while the results already told
        decide (first improvement: a known better neighbour; both: a fully known
        neighbourhood)."""
        while True:
            self._phase = CLIMB
            self._incumbent = arch
            self._incumbent_value = self._values.get(arch.hash)
            self._neighbours = self._neighbourhood(arch)
            self._neighbour_set = {n.hash for n in self._neighbours}
            self._pending = {n.hash for n in self._neighbours if n.hash not in self._values}
            self._deadline = len(self.history) + 2 * len(self._pending)
            self._cursor = 0
            if self.first_improvement:
                better = self._best_neighbour()
                if better is not None:
                    self._moves += 1
                    arch = better
                    continue
            if not self._pending:
                better = self._best_neighbour()
                if better is not None:
                    self._moves += 1
                    arch = better
                    continue
                self._restart()
            return

    def _best_neighbour(self) -> Architecture | None:
        """The best told neighbour if it beats the incumbent (first in order on ties)."""
        best: Architecture | None = None
        best_value = self._incumbent_value
        for n in self._neighbours:
            v = self._values.get(n.hash)
            if self._beats(v, best_value):
                best, best_value = n, v
        return best

    def _finish_neighbourhood(self) -> None:
        better = self._best_neighbour()
        if better is not None:
            self._moves += 1
            self._climb_from(better)
        else:
            self._restart()

    def _restart(self) -> None:
        """A local optimum: await a random restart point outside its neighbourhood."""
        assert self._incumbent is not None
        self._restarts += 1
        self._phase = RESTART
        self._excluded = self._neighbour_set | {self._incumbent.hash}
        self._incumbent = None
        self._incumbent_value = None
        self._neighbours = []
        self._neighbour_set = set()
        self._pending = set()
        self._cursor = 0
