"""Predictors by name, for the CLI and configuration files.

Names: ``dgin`` (the default), ``gin`` and ``gcn`` (:class:`GNNPredictor` families),
``rf`` and ``gbdt`` (:class:`TreePredictor` on the one-hot encoding of decisions),
and ``proxy:NAME`` (:class:`ProxyPredictor` on the feature ``NAME``, e.g.
``proxy:synflow``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from naslab.core.errors import ConfigError, UnknownNameError
from naslab.predictors.base import Predictor

__all__ = ["DEFAULT_PREDICTOR", "PREDICTORS", "get_predictor"]

#: The predictor used when none is named.
DEFAULT_PREDICTOR = "dgin"
#: Names accepted by :func:`get_predictor` (plus ``proxy:<feature>``).
PREDICTORS: tuple[str, ...] = ("dgin", "gin", "gcn", "rf", "gbdt", "proxy:<feature>")


def get_predictor(name: str, options: Mapping[str, Any] | None = None) -> Predictor:
    """A new, unfitted predictor by name, with constructor ``options``."""
    from naslab.predictors.baselines import ProxyPredictor, TreePredictor
    from naslab.predictors.gnn import GNNPredictor

    options = dict(options or {})
    try:
        if name in ("gin", "gcn", "dgin"):
            return GNNPredictor(model=name, **options)
        if name in ("rf", "gbdt"):
            return TreePredictor(model=name, **options)
        if name.startswith("proxy:") and len(name) > len("proxy:"):
            return ProxyPredictor(proxy=name[len("proxy:") :], **options)
    except TypeError as exc:
        raise ConfigError(f"bad options for predictor {name!r}: {exc}") from None
    raise UnknownNameError("predictor", name, PREDICTORS)
