"""The searcher contract: what every ask/tell :class:`~naslab.searchers.base.Searcher`
must do, as a pytest suite.

Subclass :class:`SearcherContract` and give it a ``make_searcher`` fixture: a factory
``(space, seed) -> Searcher`` that builds a new searcher (each check builds several,
to compare runs with the same seed)::

    import pytest

    from naslab.testing import SearcherContract
    from mypackage import MySearcher


    class TestMySearcher(SearcherContract):
        @pytest.fixture
        def make_searcher(self):
            return lambda space, seed: MySearcher(space, seed=seed, population=8)

The checks: proposals are valid and distinct; the same seed gives the same
proposals; a searcher rebuilt with :meth:`~naslab.searchers.base.Searcher.replay`
from a history (failures included) proposes what the uninterrupted one did (skipped
for a searcher whose ``exact_replay`` is False); failed trials (value None) are
accepted. They search the NB201 space by default (override the ``space`` fixture in
the subclass for another) and tell a deterministic synthetic objective, a function of
the architecture's hash (override :meth:`SearcherContract.objective`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.searchers.base import Searcher

__all__ = ["SearcherContract"]

#: ``(space, seed) -> Searcher``: what the ``make_searcher`` fixture returns.
SearcherFactory = Callable[[SearchSpace, int], Searcher]


class SearcherContract:
    """Checks that every searcher must pass (needs a ``make_searcher`` fixture)."""

    @pytest.fixture
    def space(self) -> SearchSpace:
        """The space searched (NB201 with its default settings); override in the
        subclass to search another."""
        from naslab.search_spaces.nb201 import NB201Space

        return NB201Space()

    def objective(self, arch: Architecture) -> float:
        """The value told for ``arch``: a deterministic number in [0, 1) drawn from its
        canonical hash (equal for isomorphic architectures)."""
        return int(arch.hash[:8], 16) / 16**8

    def _new(self, make_searcher: SearcherFactory, space: SearchSpace, seed: int) -> Searcher:
        searcher = make_searcher(space, seed)
        assert isinstance(searcher, Searcher), (
            f"make_searcher must return a Searcher, got {type(searcher).__name__}")
        return searcher

    def _run(self, searcher: Searcher, n: int, value: Callable[[int, Architecture], Any]
             ) -> list[tuple[Architecture, Any]]:
        """``n`` rounds of ask(1) and tell; the history."""
        history = []
        for i in range(n):
            (arch,) = searcher.ask(1)
            v = value(i, arch)
            searcher.tell(arch, v)
            history.append((arch, v))
        return history

    # ------------------------------------------------------------------ checks

    def test_ask_returns_valid_distinct_architectures(self, make_searcher: SearcherFactory,
                                                      space: SearchSpace) -> None:
        s = self._new(make_searcher, space, 0)
        seen = set()
        for _ in range(30):
            asked = s.ask(1)
            assert isinstance(asked, list) and len(asked) == 1
            (arch,) = asked
            assert isinstance(arch, Architecture)
            space.validate(arch)
            assert arch.hash not in seen
            seen.add(arch.hash)
            s.tell(arch, self.objective(arch))

    def test_ask_several_at_once(self, make_searcher: SearcherFactory,
                                 space: SearchSpace) -> None:
        s = self._new(make_searcher, space, 1)
        first = s.ask(3)
        assert len(first) == 3 and len({a.hash for a in first}) == 3
        for arch in first:
            space.validate(arch)
            s.tell(arch, self.objective(arch))
        more = s.ask(2)
        assert len(more) == 2
        assert not {a.hash for a in more} & {a.hash for a in first}

    def test_same_seed_same_proposals(self, make_searcher: SearcherFactory,
                                      space: SearchSpace) -> None:
        runs = []
        for _ in range(2):
            s = self._new(make_searcher, space, 3)
            runs.append([a.hash for a, _ in self._run(s, 15, lambda i, a: self.objective(a))])
        assert runs[0] == runs[1]

    def test_replay_resumes_exactly(self, make_searcher: SearcherFactory,
                                    space: SearchSpace) -> None:
        """A searcher rebuilt from history proposes what the uninterrupted one would."""
        full = self._new(make_searcher, space, 5)
        if not full.exact_replay:
            pytest.skip(f"{full.name} keeps sampler state outside naslab (exact_replay=False)")

        def value(i: int, arch: Architecture) -> float | None:
            return None if i % 7 == 3 else self.objective(arch)  # some failures

        history = self._run(full, 25, value)
        resumed = self._new(make_searcher, space, 5)
        resumed.replay(history[:12])
        replay_tail = []
        for _a, v in history[12:]:
            (b,) = resumed.ask(1)
            replay_tail.append(b.hash)
            resumed.tell(b, v)
        assert replay_tail == [a.hash for a, _ in history[12:]]

    def test_failed_trials_are_accepted(self, make_searcher: SearcherFactory,
                                        space: SearchSpace) -> None:
        s = self._new(make_searcher, space, 0)
        for _ in range(15):
            (a,) = s.ask(1)
            space.validate(a)
            s.tell(a, None)
        assert s.best is None
