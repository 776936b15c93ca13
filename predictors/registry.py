"""Predictors by name (:data:`PREDICTORS`), for the CLI and configuration files.

Names: ``dgin`` (the default), ``gin`` and ``gcn`` (:class:`GNNPredictor` families),
``rf`` and ``gbdt`` (:class:`TreePredictor` on the one-hot encoding of decisions),
and ``proxy:NAME`` (:class:`ProxyPredictor` on the feature ``NAME``, e.g.
``proxy:synflow``; the registry's entry ``proxy`` with ``proxy=NAME``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from naslab.core.errors import UnknownNameError
from naslab.core.registry import Registry
from naslab.predictors.base import Predictor

__all__ = ["DEFAULT_PREDICTOR", "PREDICTORS", "get_predictor"]

#: The predictor used when none is named.
DEFAULT_PREDICTOR = "dgin"
#: Predictors by name.
PREDICTORS = Registry("predictor", base=Predictor)
for _family in ("dgin", "gin", "gcn"):
    PREDICTORS.register(_family, "naslab.predictors.gnn:GNNPredictor",
                        defaults={"model": _family})
for _model in ("rf", "gbdt"):
    PREDICTORS.register(_model, "naslab.predictors.baselines:TreePredictor",
                        defaults={"model": _model})
PREDICTORS.register("proxy", "naslab.predictors.baselines:ProxyPredictor")


def get_predictor(name: str, options: Mapping[str, Any] | None = None) -> Predictor:
    """A new, unfitted predictor by name (``proxy:NAME`` for a proxy predictor), with
    constructor ``options``; an unknown name lists the choices."""
    options = dict(options or {})
    if isinstance(name, str) and name.startswith("proxy:") and len(name) > len("proxy:"):
        return PREDICTORS.create("proxy", proxy=name[len("proxy:"):], **options)
    if name not in PREDICTORS or name == "proxy":
        choices = [n for n in PREDICTORS if n != "proxy"] + ["proxy:<feature>"]
        raise UnknownNameError("predictor", str(name), choices)
    return PREDICTORS.create(name, **options)
