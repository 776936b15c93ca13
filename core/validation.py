"""The one home of naslab's input checks (as scikit-learn's ``utils/validation``).

Every check takes the name of what it checks first and the value second, returns
the value in its plain Python type, and raises
:class:`~naslab.core.errors.ConfigError` (or
:class:`~naslab.core.errors.UnknownNameError` for a name outside its choices) with a
message that says what was wrong and what is accepted. Booleans are never accepted
as numbers (``True`` is not a budget).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from numbers import Integral, Real
from typing import Any

from naslab.core.errors import ConfigError, UnknownNameError

__all__ = [
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "check_mapping",
    "check_str",
]


def _bounds(minimum: float | None, maximum: float | None, strict: bool = False,
            strict_max: bool = False) -> str:
    low = "" if minimum is None else (f"> {minimum:g}" if strict else f">= {minimum:g}")
    high = "" if maximum is None else (f"< {maximum:g}" if strict_max else f"<= {maximum:g}")
    return " and ".join(p for p in (low, high) if p)


def check_int(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """``value`` as an ``int`` within ``[minimum, maximum]`` (either may be None).

    Python and NumPy integers are accepted; booleans, floats (even ``3.0``) and
    non-numbers are refused.
    """
    if type(value) is int or (isinstance(value, Integral) and not isinstance(value, bool)):
        number = int(value)
        if (minimum is None or number >= minimum) and (maximum is None or number <= maximum):
            return number
        raise ConfigError(f"{name} must be an integer {_bounds(minimum, maximum)}, got {number}")
    bounds = _bounds(minimum, maximum)
    raise ConfigError(f"{name} must be an integer{' ' + bounds if bounds else ''}, "
                      f"got {value!r}")


def check_float(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
    strict_maximum: bool = False,
) -> float:
    """``value`` as a finite ``float`` within the bounds (``> minimum`` with
    ``strict_minimum``, ``< maximum`` with ``strict_maximum``); NaN, infinities,
    booleans and non-numbers are refused."""
    if not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value):
        number = float(value)
        too_low = minimum is not None and (
            number <= minimum if strict_minimum else number < minimum)
        too_high = maximum is not None and (
            number >= maximum if strict_maximum else number > maximum)
        if not (too_low or too_high):
            return number
    bounds = _bounds(minimum, maximum, strict_minimum, strict_maximum)
    raise ConfigError(f"{name} must be a finite number{' ' + bounds if bounds else ''}, "
                      f"got {value!r}")


def check_str(name: str, value: Any, *, max_length: int | None = None) -> str:
    """``value`` as a non-blank string of at most ``max_length`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
    if max_length is not None and len(value) > max_length:
        raise ConfigError(f"{name} must be at most {max_length} characters, got {len(value)}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False`` (not 0, 1 or a string)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(kind: str, name: Any, choices: Iterable[str]) -> str:
    """``name`` if it is one of ``choices``, else :class:`UnknownNameError` listing them."""
    options = list(choices)
    if not isinstance(name, str) or name not in options:
        raise UnknownNameError(kind, str(name), options)
    return name


def check_mapping(name: str, value: Any) -> dict[str, Any]:
    """``value`` (a mapping with string keys, or None for empty) as a ``dict``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{name} must be a mapping of names to values, got {value!r}")
    return dict(value)
