"""Objectives: which stored metrics a search optimises, and in which direction.

A single-objective search maximises the evaluator's objective (``val_accuracy``).
A multi-objective search names two or more metrics, each maximised or minimised,
e.g. ``"val_accuracy:max,latency_ms:min"``. The metrics a result carries are its
final metrics (``val_accuracy``, ``test_accuracy``, ...) plus ``params``, ``flops``
and ``latency_ms`` where the evaluator measured them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from naslab.core.errors import ConfigError

#: Directions taken when a spec names a metric without one.
DEFAULT_DIRECTIONS: dict[str, str] = {
    "val_accuracy": "max",
    "test_accuracy": "max",
    "params": "min",
    "flops": "min",
    "latency_ms": "min",
}
#: Short names accepted for metrics.
ALIASES: dict[str, str] = {"latency": "latency_ms", "accuracy": "val_accuracy"}


@dataclass(frozen=True)
class Objective:
    """One metric and whether it is maximised (``"max"``) or minimised (``"min"``)."""

    name: str
    direction: str = "max"

    def __post_init__(self) -> None:
        if self.direction not in ("max", "min"):
            raise ConfigError(
                f"objective {self.name!r} has direction {self.direction!r}; use 'max' or 'min'"
            )
        if not self.name:
            raise ConfigError("an objective needs a metric name")

    @property
    def sign(self) -> float:
        """+1 for a maximised metric, -1 for a minimised one."""
        return 1.0 if self.direction == "max" else -1.0

    def __str__(self) -> str:
        return f"{self.name}:{self.direction}"


#: The objective of a single-objective search.
DEFAULT_OBJECTIVES: tuple[Objective, ...] = (Objective("val_accuracy", "max"),)


def _one(spec: str | Objective) -> Objective:
    if isinstance(spec, Objective):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"an objective is 'metric' or 'metric:max|min', got {spec!r}")
    name, _, direction = spec.strip().partition(":")
    name = ALIASES.get(name.strip(), name.strip())
    direction = direction.strip().lower()
    if not direction:
        if name not in DEFAULT_DIRECTIONS:
            raise ConfigError(
                f"objective {name!r} needs a direction ('{name}:max' or '{name}:min'); "
                f"metrics with a default direction: {', '.join(DEFAULT_DIRECTIONS)}"
            )
        direction = DEFAULT_DIRECTIONS[name]
    direction = {"maximize": "max", "minimize": "min"}.get(direction, direction)
    return Objective(name, direction)


def parse_objectives(
    spec: str | Objective | Sequence[str | Objective] | None,
) -> tuple[Objective, ...]:
    """Objectives from ``"a:max,b:min"``, a list of such strings or Objectives, or None
    (the default: ``val_accuracy`` maximised). Refuses repeats and empty lists."""
    if spec is None:
        return DEFAULT_OBJECTIVES
    items: Sequence[str | Objective]
    if isinstance(spec, (str, Objective)):
        items = [s for s in spec.split(",") if s.strip()] if isinstance(spec, str) else [spec]
    else:
        items = list(spec)
    objectives = tuple(_one(s) for s in items)
    if not objectives:
        raise ConfigError("at least one objective is needed, e.g. 'val_accuracy:max'")
    names = [o.name for o in objectives]
    if len(set(names)) != len(names):
        raise ConfigError(f"objectives repeat a metric: {', '.join(names)}")
    return objectives


def objective_values(
    objectives: Sequence[Objective], metrics: Mapping[str, Any]
) -> tuple[float, ...] | None:
    """The objectives' values read from ``metrics`` (None if any is missing or NaN)."""
    out = []
    for o in objectives:
        v = metrics.get(o.name)
        if v is None:
            return None
        v = float(v)
        if v != v:
            return None
        out.append(v)
    return tuple(out)


def as_minimised(objectives: Sequence[Objective], values: Sequence[float]) -> tuple[float, ...]:
    """``values`` turned so that every objective is minimised (maximised ones negated)."""
    return tuple(-v if o.direction == "max" else v for o, v in zip(objectives, values))
