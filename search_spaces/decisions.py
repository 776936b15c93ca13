"""Declared decisions: the named choices that define an architecture.

A search space declares its decisions once; sampling, mutation, crossover,
neighbourhoods, validation and (later) Optuna sampling all work from these
declarations, so a user-defined space needs no code of its own for them.

A decision may be *conditional*: it is active only when another decision takes one
of some values (for example ``width_3`` only when ``depth >= 3``). The decisions of
an architecture hold exactly the active decisions.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from naslab.core.errors import ConfigError, InvalidArchitectureError
from naslab.core.validation import INT64_MAX, INT64_MIN, check_int

__all__ = [
    "Categorical",
    "Condition",
    "Decision",
    "Integer",
    "SpaceDefinitionError",
    "Value",
    "active_decisions",
    "check_decisions",
    "complete_decisions",
    "sample_decisions",
]

Value = str | int | float | bool


class SpaceDefinitionError(ConfigError, InvalidArchitectureError):
    """A search space's definition is not valid: a decision, a choice or a condition
    (raised where it is declared), or declarations or graphs that do not fit together
    (raised when the space is checked, before any study uses it)."""


def _check_name(what: str, name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SpaceDefinitionError(f"{what} must be a non-empty string, got {name!r}")
    return name


def _check_values(what: str, values: Any) -> tuple[Value, ...]:
    """``values`` as a tuple of distinct, finite str/int/float/bool values."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, set, frozenset)):
        raise SpaceDefinitionError(f"{what} must be a tuple of values, got {values!r}")
    out = tuple(v.item() if isinstance(v, np.generic) else v for v in values)
    if not out:
        raise SpaceDefinitionError(f"{what} needs at least one value")
    for v in out:
        if not isinstance(v, (str, int, float)):  # bool is an int
            raise SpaceDefinitionError(
                f"{what}: {v!r} is a {type(v).__name__}; values must be strings, integers, "
                "floats or booleans")
        if isinstance(v, float) and not math.isfinite(v):
            raise SpaceDefinitionError(f"{what}: {v!r} is not a finite number")
        if isinstance(v, int) and not isinstance(v, bool) and not INT64_MIN <= v <= INT64_MAX:
            raise SpaceDefinitionError(f"{what}: {v} does not fit in 64 bits")
    if len(set(out)) != len(out):
        raise SpaceDefinitionError(
            f"{what} has repeated values {list(out)} (1, 1.0 and True count as the same)")
    return out


@dataclass(frozen=True)
class Condition:
    """Active only when decision ``parent`` takes one of ``values``."""

    parent: str
    values: tuple[Value, ...]

    def __post_init__(self) -> None:
        _check_name("a condition's parent", self.parent)
        object.__setattr__(self, "values",
                           _check_values(f"the condition on {self.parent!r}", self.values))

    def holds(self, decisions: Mapping[str, Any]) -> bool:
        """Whether the condition holds for (partially built) ``decisions``."""
        return self.parent in decisions and decisions[self.parent] in self.values


@dataclass(frozen=True)
class Categorical:
    """A choice among a finite tuple of values (strings, numbers or booleans)."""

    name: str
    choices: tuple[Value, ...]
    condition: Condition | None = None

    def __post_init__(self) -> None:
        _check_name("a decision's name", self.name)
        object.__setattr__(self, "choices", _check_values(
            f"the choices of categorical decision {self.name!r}", self.choices))
        if self.condition is not None and not isinstance(self.condition, Condition):
            raise SpaceDefinitionError(
                f"decision {self.name!r}: condition must be a Condition or None")

    @property
    def values(self) -> tuple[Value, ...]:
        """Every value the decision can take."""
        return self.choices

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is in the domain (type-strict: ``True`` is not ``1``)."""
        return any(type(value) is type(c) and value == c for c in self.choices)

    def describe(self) -> str:
        """The domain, for error messages."""
        return "one of " + ", ".join(repr(c) for c in self.choices)

    def sample(self, rng: np.random.Generator) -> Value:
        """A uniformly random value."""
        return self.choices[int(rng.integers(len(self.choices)))]

    def neighbour_values(self, value: Value) -> list[Value]:
        """The values one step away from ``value``: every other choice."""
        return [c for c in self.choices if c != value]

    def other_value(self, value: Value, rng: np.random.Generator) -> Value:
        """A uniformly random value other than ``value`` (``value`` if it is the only one)."""
        others = [c for c in self.choices if c != value]
        return others[int(rng.integers(len(others)))] if others else value


@dataclass(frozen=True)
class Integer:
    """An integer in ``[low, high]`` (both inclusive) on a grid of ``step``."""

    name: str
    low: int
    high: int
    step: int = 1
    condition: Condition | None = None

    def __post_init__(self) -> None:
        _check_name("a decision's name", self.name)
        what = f"integer decision {self.name!r}"
        try:
            for field in ("low", "high", "step"):
                object.__setattr__(self, field, check_int(f"{what}: {field}",
                                                          getattr(self, field)))
        except ConfigError as exc:
            raise SpaceDefinitionError(str(exc)) from None
        if self.step < 1 or self.high < self.low:
            raise SpaceDefinitionError(
                f"{what} needs low <= high and step >= 1, "
                f"got low={self.low}, high={self.high}, step={self.step}"
            )
        if self.count > INT64_MAX:
            raise SpaceDefinitionError(f"{what} has {self.count} values; at most 2**63 - 1")
        if self.condition is not None and not isinstance(self.condition, Condition):
            raise SpaceDefinitionError(f"{what}: condition must be a Condition or None")

    @property
    def count(self) -> int:
        """How many values the decision can take."""
        return (self.high - self.low) // self.step + 1

    @property
    def values(self) -> range:
        """Every value the decision can take (a lazy ``range``: never materialised)."""
        return range(self.low, self.low + self.step * self.count, self.step)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is an integer on the grid (booleans are refused)."""
        return (
            isinstance(value, (int, np.integer))
            and not isinstance(value, bool)
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )

    def describe(self) -> str:
        """The domain, for error messages."""
        step = f" in steps of {self.step}" if self.step != 1 else ""
        return f"an integer from {self.low} to {self.high}{step}"

    def sample(self, rng: np.random.Generator) -> int:
        """A uniformly random value on the grid."""
        return int(self.low + self.step * int(rng.integers(self.count)))

    def neighbour_values(self, value: int) -> list[int]:
        """The adjacent grid values (ordinal neighbourhood)."""
        return [v for v in (value - self.step, value + self.step) if self.contains(v)]

    def other_value(self, value: int, rng: np.random.Generator) -> int:
        """A uniformly random grid value other than ``value`` (``value`` if it is the
        only one); the range is never materialised."""
        if self.count == 1:
            return value
        index = int(rng.integers(self.count - 1))
        if self.contains(value) and index >= (value - self.low) // self.step:
            index += 1
        return int(self.low + self.step * index)


Decision = Categorical | Integer


def active_decisions(
    declared: Sequence[Decision], decisions: Mapping[str, Any]
) -> list[Decision]:
    """The declared decisions that are active for ``decisions``, in declared order."""
    return [d for d in declared if d.condition is None or d.condition.holds(decisions)]


def check_decisions(
    space: str, declared: Sequence[Decision], decisions: Mapping[str, Any]
) -> dict[str, Value]:
    """Validate ``decisions`` against the declarations and return them normalised.

    Raises :class:`InvalidArchitectureError` naming every missing, unknown, inactive
    or out-of-domain decision.
    """
    by_name = {d.name: d for d in declared}
    problems: list[str] = []
    unknown = [k for k in decisions if k not in by_name]
    if unknown:
        problems.append(
            f"unknown decision(s) {', '.join(map(repr, unknown))}; "
            f"{space} declares: {', '.join(by_name)}"
        )
    active = active_decisions(declared, decisions)
    active_names = {d.name for d in active}
    out: dict[str, Value] = {}
    for d in active:
        if d.name not in decisions:
            problems.append(f"missing decision {d.name!r} ({d.describe()})")
            continue
        value = decisions[d.name]
        if not d.contains(value):
            problems.append(f"decision {d.name!r} = {reprlib.repr(value)} is not "
                            f"{d.describe()}")
            continue
        out[d.name] = int(value) if isinstance(d, Integer) else value
    inactive = [k for k in decisions if k in by_name and k not in active_names]
    for k in inactive:
        cond = by_name[k].condition
        assert cond is not None
        problems.append(
            f"decision {k!r} is inactive here (it needs {cond.parent!r} in "
            f"{list(cond.values)})"
        )
    if problems:
        raise InvalidArchitectureError(f"invalid {space} architecture: " + "; ".join(problems))
    return out


def sample_decisions(declared: Sequence[Decision], rng: np.random.Generator) -> dict[str, Value]:
    """Sample every active decision uniformly, in declared order.

    Conditions must refer to decisions declared earlier.
    """
    out: dict[str, Value] = {}
    for d in declared:
        if d.condition is None or d.condition.holds(out):
            out[d.name] = d.sample(rng)
    return out


def complete_decisions(
    declared: Sequence[Decision],
    partial: Mapping[str, Any],
    rng: np.random.Generator,
) -> dict[str, Value]:
    """Keep the active decisions of ``partial``, sample any active one it lacks.

    Used after a change to a decision that other decisions are conditioned on: the
    decisions that become inactive are dropped, the ones that become active are
    sampled.
    """
    out: dict[str, Value] = {}
    for d in declared:
        if d.condition is None or d.condition.holds(out):
            out[d.name] = partial[d.name] if d.name in partial else d.sample(rng)
    return out
