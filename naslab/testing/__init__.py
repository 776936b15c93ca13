"""Contract suites: the pytest checks that naslab runs on its own implementations, for
you to run on yours (as :mod:`optuna.testing` and
:mod:`sklearn.utils.estimator_checks` do).

Each suite is a class of pytest tests. Subclass it in a test module of yours
(named ``Test...`` so pytest collects it) and give it the fixture it needs; every
check then runs on your implementation. Parametrise the fixture to run the suite
over several implementations.

- :class:`SearchSpaceContract` (:mod:`naslab.testing.spaces`) needs ``space``, a
  search space; override its ``task_for`` and ``forward`` when the space's
  networks do not take images.
- :class:`SearcherContract` (:mod:`naslab.testing.searchers`) needs
  ``make_searcher``, a factory ``(space, seed) -> Searcher``; ``space`` (NB201 by
  default) and ``objective`` may be overridden.
- :class:`PredictorContract` (:mod:`naslab.testing.predictors`) needs
  ``predictor_case``: a factory ``seed -> Predictor``, or a :class:`PredictorCase`
  that also says whether the predictor needs a feature column.
- :class:`ExecutorContract` (:mod:`naslab.testing.executors`) needs ``executor``, a
  new, unstarted :class:`~naslab.workers.executor.Executor`.
- :class:`StoreContract` (:mod:`naslab.testing.stores`) needs ``store``, a fresh,
  empty :class:`~naslab.db.store.Store` (on the database you want to check).

For example, a searcher of your own::

    import pytest

    from naslab.testing import SearcherContract
    from mypackage import MySearcher


    class TestMySearcher(SearcherContract):
        @pytest.fixture
        def make_searcher(self):
            return lambda space, seed: MySearcher(space, seed=seed)

Each module's docstring says what its suite checks and what can be overridden.
Fixtures and methods that a suite defines itself (defaults) are overridden in the
subclass, not in a ``conftest.py`` (pytest prefers a fixture of the class).

The suites need pytest (``pip install pytest``), which naslab itself does not.
Importing this package imports no suite: each is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

try:  # detailed assertion messages in the suites, as in your own test modules
    import pytest as _pytest
except ImportError:  # pragma: no cover - the suites need pytest; this package does not
    pass
else:
    _pytest.register_assert_rewrite(
        "naslab.testing.spaces", "naslab.testing.searchers", "naslab.testing.predictors",
        "naslab.testing.executors", "naslab.testing.stores")

__all__ = [
    "ExecutorContract",
    "PredictorCase",
    "PredictorContract",
    "SearchSpaceContract",
    "SearcherContract",
    "StoreContract",
]

_SUITES = {
    "SearchSpaceContract": "naslab.testing.spaces",
    "SearcherContract": "naslab.testing.searchers",
    "PredictorContract": "naslab.testing.predictors",
    "PredictorCase": "naslab.testing.predictors",
    "ExecutorContract": "naslab.testing.executors",
    "StoreContract": "naslab.testing.stores",
}


def __getattr__(name: str) -> Any:
    module = _SUITES.get(name)
    if module is None:
        raise AttributeError(f"module 'naslab.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUITES])
