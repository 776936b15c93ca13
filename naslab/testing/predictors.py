"""The predictor contract: what every :class:`~naslab.predictors.base.Predictor` must do,
as a pytest suite.

Subclass :class:`PredictorContract` and give it a ``predictor_case`` fixture: a
factory ``seed -> Predictor`` that builds a new, unfitted predictor, or a
:class:`PredictorCase` when the predictor needs a feature column or is expected to
rank less well. Parametrise the fixture to check several predictors::

    import pytest

    from naslab.testing import PredictorCase, PredictorContract
    from mypackage import MyPredictor

    CASES = [
        PredictorCase("mine", lambda seed: MyPredictor(seed=seed)),
        PredictorCase("mine-small", lambda seed: MyPredictor(size=2, seed=seed), min_tau=0.1),
    ]


    class TestMyPredictors(PredictorContract):
        @pytest.fixture(params=CASES, ids=lambda case: case.name)
        def predictor_case(self, request):
            return request.param

The checks: ``fit`` returns the predictor and it learns (Kendall's tau above
``min_tau`` on 800 held-out architectures of NAS-Bench-Graph cora, fitted on 150,
with their real validation accuracies, :func:`cora_sample`); predictions are finite
with a non-negative ``std``; the same seed gives the same predictions, and the order
of the architectures does not matter; a saved predictor loads back and predicts
alike; it fits and predicts on other spaces (the ``any_space`` fixture: the chain
and NB201 spaces; override it to add yours); it refuses bad input with clear errors
(predicting before fitting, mismatched lengths, non-finite targets, things that are
not architectures, empty input, features of the wrong length).

A predictor that needs a feature column (``needs_signal_feature``) gets one named
``signal``: the target plus noise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from naslab.core.errors import ConfigError
from naslab.predictors.base import (
    NotFittedError,
    Prediction,
    Predictor,
    load_predictor,
    predictor_from_bytes,
)
from naslab.predictors.metrics import kendall_tau
from naslab.search_spaces.base import SearchSpace

__all__ = ["PredictorCase", "PredictorContract", "cora_sample"]


@dataclass(frozen=True)
class PredictorCase:
    """A predictor under test: how to build it and what to expect.

    Attributes:
        name: shown in test ids.
        make: ``seed -> Predictor``, a new, unfitted predictor.
        needs_signal_feature: whether it needs a feature column (it gets ``signal``).
        min_tau: the Kendall's tau on held-out data that it must beat.
    """

    name: str
    make: Callable[[int], Predictor]
    needs_signal_feature: bool = False
    min_tau: float = 0.2


@functools.lru_cache(maxsize=4)
def cora_sample(n_train: int = 150, n_test: int = 800) -> dict[str, Any]:
    """Architectures of NAS-Bench-Graph cora with their real ``valid_perf``: ``train``
    and ``y_train`` (``n_train`` of them), ``test`` and ``y_test`` (the next
    ``n_test`` of a fixed permutation of the table), and ``f_train``/``f_test``:
    ``{"signal": target + N(0, 0.05) noise}``, an informative feature. Read once per
    process (treat it as read-only)."""
    from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace, decisions_from_key
    from naslab.workers.benchmark_table import load_table

    table = load_table("cora")
    keys = sorted(table)  # the order of all_architectures("cora")
    order = np.random.default_rng(0).permutation(len(keys))
    noise = np.random.default_rng(1).normal(0, 0.05, len(keys))
    space = NasBenchGraphSpace("cora")

    def part(idx: np.ndarray) -> tuple[list[Any], np.ndarray, dict[str, np.ndarray]]:
        archs = [space.from_decisions(decisions_from_key(keys[i])) for i in idx]
        y = np.array([float(table[keys[i]]["valid_perf"]) for i in idx])
        return archs, y, {"signal": y + noise[idx]}

    train, y_train, f_train = part(order[:n_train])
    test, y_test, f_test = part(order[n_train:n_train + n_test])
    return {"train": train, "y_train": y_train, "f_train": f_train,
            "test": test, "y_test": y_test, "f_test": f_test}


def _features(case: PredictorCase, data: dict[str, Any], part: str, n: int | None = None
              ) -> dict[str, np.ndarray] | None:
    """The ``part`` features of ``data`` (the first ``n`` rows), if ``case`` needs them."""
    if not case.needs_signal_feature:
        return None
    return {k: v[:n] for k, v in data[f"f_{part}"].items()}


class PredictorContract:
    """Every predictor: sklearn-like, deterministic, saves safely, learns, refuses bad
    input (needs a ``predictor_case`` fixture)."""

    @pytest.fixture
    def case(self, predictor_case: PredictorCase | Callable[[int], Predictor]
             ) -> PredictorCase:
        """The ``predictor_case`` fixture as a :class:`PredictorCase`."""
        if isinstance(predictor_case, PredictorCase):
            return predictor_case
        if callable(predictor_case):
            return PredictorCase("predictor", predictor_case)
        raise TypeError("the predictor_case fixture must return a PredictorCase or a "
                        f"factory seed -> Predictor, not {type(predictor_case).__name__}")

    @pytest.fixture
    def predictor_data(self) -> dict[str, Any]:
        """The data the predictors learn from (:func:`cora_sample`)."""
        return cora_sample()

    @pytest.fixture(params=["chain", "nb201"])
    def any_space(self, request: Any) -> SearchSpace:
        """Other spaces a predictor must handle (override to add yours)."""
        from naslab.search_spaces.registry import get_space

        return get_space(request.param)

    # ------------------------------------------------------------------ checks

    def test_fit_predict_learns(self, case: PredictorCase, predictor_data: dict) -> None:
        data = predictor_data
        predictor = case.make(0)
        assert isinstance(predictor, Predictor)
        assert predictor.fit(data["train"], data["y_train"],
                             _features(case, data, "train")) is predictor
        pred = predictor.predict(data["test"], _features(case, data, "test"))
        assert isinstance(pred, Prediction) and len(pred) == len(data["test"])
        assert np.isfinite(pred.mean).all() and np.isfinite(pred.std).all()
        assert (pred.std >= 0).all()
        assert kendall_tau(data["y_test"], pred.mean) > case.min_tau

    def test_deterministic_and_order_equivariant(self, case: PredictorCase,
                                                 predictor_data: dict) -> None:
        train, y = predictor_data["train"][:40], predictor_data["y_train"][:40]
        feats = _features(case, predictor_data, "train", 40)
        a = case.make(3).fit(train, y, feats).predict(train, feats)
        b = case.make(3).fit(train, y, feats).predict(train, feats)
        np.testing.assert_array_equal(a.mean, b.mean)
        np.testing.assert_array_equal(a.std, b.std)
        rev_feats = None if feats is None else {k: v[::-1] for k, v in feats.items()}
        c = case.make(3).fit(train, y, feats).predict(train[::-1], rev_feats)
        np.testing.assert_allclose(c.mean[::-1], a.mean, rtol=1e-5, atol=1e-6)

    def test_save_load_round_trip(self, case: PredictorCase, predictor_data: dict,
                                  tmp_path: Any) -> None:
        data = predictor_data
        predictor = case.make(1).fit(data["train"][:60], data["y_train"][:60],
                                     _features(case, data, "train", 60))
        test_feats = _features(case, data, "test", 100)
        before = predictor.predict(data["test"][:100], test_feats)
        path = predictor.save(tmp_path / "p.safetensors")
        loaded = load_predictor(path)
        assert type(loaded) is type(predictor)
        assert loaded.get_params() == predictor.get_params()
        after = loaded.predict(data["test"][:100], test_feats)
        np.testing.assert_array_equal(before.mean, after.mean)
        np.testing.assert_array_equal(before.std, after.std)
        assert predictor_from_bytes(predictor.to_bytes()).get_params() == predictor.get_params()

    def test_any_space(self, case: PredictorCase, any_space: SearchSpace) -> None:
        rng = np.random.default_rng(0)
        archs = [any_space.sample(rng) for _ in range(40)]
        y = np.array([a.graph.number_of_nodes() + 0.1 * i % 3 for i, a in enumerate(archs)])
        feats = {"signal": y + rng.normal(0, 0.1, len(y))} if case.needs_signal_feature else None
        pred = (
            case.make(0)
            .fit(archs, y, feats)
            .predict(archs[:7], None if feats is None else {k: v[:7] for k, v in feats.items()})
        )
        assert len(pred) == 7 and np.isfinite(pred.mean).all()

    def test_refuses_bad_input(self, case: PredictorCase, predictor_data: dict) -> None:
        predictor = case.make(0)
        archs, y = predictor_data["train"][:30], predictor_data["y_train"][:30]
        feats = {"signal": y} if case.needs_signal_feature else None
        with pytest.raises(NotFittedError, match="not fitted"):
            predictor.predict(archs, feats)
        with pytest.raises(ConfigError, match="30 architectures but 29 targets"):
            predictor.fit(archs, y[:29], feats)
        bad = y.copy()
        bad[4] = np.nan
        with pytest.raises(ConfigError, match="finite"):
            predictor.fit(archs, bad, feats)
        with pytest.raises(ConfigError, match="not an Architecture"):
            predictor.fit([*archs[:-1], "gcn"], y, feats)
        with pytest.raises(ConfigError, match="empty"):
            predictor.fit([], [], feats)
        with pytest.raises(ConfigError, match="rows|shape"):
            predictor.fit(archs, y, {"signal": y[:10]})
