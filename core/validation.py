"""The one home of naslab's input checks (as scikit-learn's ``utils/validation``).

Every check takes the name of what it checks first and the value second, returns
the value in its plain Python type, and raises
:class:`~naslab.core.errors.ConfigError` (or
:class:`~naslab.core.errors.UnknownNameError` for a name outside its choices) with a
message that says what was wrong and what is accepted. Booleans are never accepted
as numbers (``True`` is not a budget), floats are never truncated to integers,
NaN and infinities are refused where a number is needed, and integers must fit in
64 bits (the database's BIGINT and NumPy's int64).

Values typed on the command line (``KEY=VALUE`` options) reach the same checks;
:func:`parse_option_value` marks the words that may spell a boolean there
(``true/false/yes/no/1/0``, any case), which :func:`check_bool` then accepts. In
Python a boolean must be ``True`` or ``False``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from numbers import Integral, Real
from typing import Any

from naslab.core.errors import ConfigError, UnknownNameError

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_CANDIDATES",
    "CommandLineInt",
    "CommandLineWord",
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "check_mapping",
    "check_str",
    "parse_option_value",
]

#: The range of a 64-bit signed integer (BIGINT, numpy.int64): every integer check's
#: outer bounds.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: The most candidate architectures one ranking or one guided proposal samples and
#: scores (each is built in memory).
MAX_CANDIDATES = 100_000
#: The words that spell a boolean on the command line (any case).
BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


class CommandLineInt(int):
    """An integer typed on the command line as ``1`` or ``0``: an integer to
    :func:`check_int`, a boolean to :func:`check_bool`."""


class CommandLineWord(str):
    """A plain word typed on the command line (not JSON): a string to
    :func:`check_str`, a boolean to :func:`check_bool` if it is one of
    ``true/false/yes/no`` (any case)."""


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
    non-numbers are refused, and so is any integer outside 64 bits whatever the
    bounds (None stands for the 64-bit limit).
    """
    minimum = INT64_MIN if minimum is None else max(minimum, INT64_MIN)
    maximum = INT64_MAX if maximum is None else min(maximum, INT64_MAX)
    if type(value) is int or (isinstance(value, Integral) and not isinstance(value, bool)):
        number = int(value)
        if (minimum is None or number >= minimum) and (maximum is None or number <= maximum):
            return number
        bounds = _int_bounds(minimum, maximum)
        if not INT64_MIN <= number <= INT64_MAX:
            bounds = (bounds + " (" if bounds else "") + "within 64 bits" + (")" if bounds else "")
        raise ConfigError(f"{name} must be an integer {bounds}, got {_short(number)}")
    bounds = _int_bounds(minimum, maximum)
    raise ConfigError(f"{name} must be an integer{' ' + bounds if bounds else ''}, "
                      f"got {_short(value)}")


def _int_bounds(minimum: int, maximum: int) -> str:
    low = "" if minimum == INT64_MIN else f">= {minimum}"
    high = "" if maximum == INT64_MAX else f"<= {maximum}"
    return " and ".join(p for p in (low, high) if p)


def _short(value: Any) -> str:
    """``repr(value)``, cut short (a 4,000-digit integer is not worth printing)."""
    try:
        text = repr(value)
    except ValueError:  # int too large to convert to a string
        return f"an integer of about {int(value).bit_length()} bits"
    return text if len(text) <= 60 else text[:40] + f"... ({len(text)} characters)"


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
    try:
        finite = not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value)
    except OverflowError:  # an integer beyond the float range
        finite = False
    if finite:
        number = float(value)
        too_low = minimum is not None and (
            number <= minimum if strict_minimum else number < minimum)
        too_high = maximum is not None and (
            number >= maximum if strict_maximum else number > maximum)
        if not (too_low or too_high):
            return number
    bounds = _bounds(minimum, maximum, strict_minimum, strict_maximum)
    raise ConfigError(f"{name} must be a finite number{' ' + bounds if bounds else ''}, "
                      f"got {_short(value)}")


def check_str(name: str, value: Any, *, max_length: int | None = None) -> str:
    """``value`` as a non-blank string of at most ``max_length`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
    if max_length is not None and len(value) > max_length:
        raise ConfigError(f"{name} must be at most {max_length} characters, got {len(value)}")
    return str(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False`` (not 0, 1 or a string), or a boolean
    word typed on the command line (``true/false/yes/no/1/0``, any case; see
    :func:`parse_option_value`)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (CommandLineInt, CommandLineWord)):
        word = str(int(value)) if isinstance(value, CommandLineInt) else str(value).lower()
        if word in BOOLEAN_WORDS:
            return BOOLEAN_WORDS[word]
    raise ConfigError(f"{name} must be True or False, got {_short(value)} (on the command "
                      "line: true/false, yes/no or 1/0)")


def parse_option_value(raw: str) -> Any:
    """The value of a command-line ``KEY=VALUE`` option: JSON (``16``, ``0.5``,
    ``[8,16]``, ``"text"``, ``true``), else the plain word.

    ``1``/``0`` come back as :class:`CommandLineInt` and plain words as
    :class:`CommandLineWord` (so that :func:`check_bool` accepts ``yes``, ``no``, ``1``
    and ``0`` from the command line). NaN and infinities (``NaN``, ``Infinity``,
    ``1e999``) anywhere in the value raise :class:`ConfigError`.
    """
    import json

    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return CommandLineWord(raw)
    if not _all_finite(value):
        raise ConfigError(f"option value {raw!r} holds NaN or an infinity; give a finite number")
    if type(value) is int and value in (0, 1) and raw.strip() in ("0", "1"):
        return CommandLineInt(value)
    return value


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    return True


def check_choice(kind: str, name: Any, choices: Iterable[str]) -> str:
    """``name`` if it is one of ``choices``, else :class:`UnknownNameError` listing them."""
    options = list(choices)
    if not isinstance(name, str) or name not in options:
        raise UnknownNameError(kind, str(name), options)
    return str(name)


def check_mapping(name: str, value: Any) -> dict[str, Any]:
    """``value`` (a mapping with string keys, or None for empty) as a ``dict``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{name} must be a mapping of names to values, got {value!r}")
    return dict(value)
