"""The JSON-lines format of ``naslab db export`` / ``naslab db import``.

What both directions share (the format itself is described in
:mod:`naslab.db.transfer`): the line types and the header, the tables a transfer
carries (:class:`TransferTables`), the conversion of column values to JSON
(:func:`row_to_json`) and back, checked against the column types
(:class:`RowReader`), and the files: :func:`open_output` (written to a temporary
file that replaces the target once complete, gzip for ``.gz``), :func:`open_input`
(gzip data recognised) and :func:`read_lines` (one JSON object per line, with
errors that name the line).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import math
import os
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from naslab.core.errors import ConfigError
from naslab.db.models import Base

__all__ = [
    "FORMAT",
    "HEADER_TYPE",
    "LINE_TYPES",
    "BadValue",
    "RowReader",
    "TransferTables",
    "check_header",
    "dumps_line",
    "line_error",
    "open_input",
    "open_output",
    "read_lines",
    "row_to_json",
    "to_json_value",
]

#: The ``type`` of a file's first line.
HEADER_TYPE = "naslab-export"
#: The format this naslab writes, and the newest it reads (format 2 added the
#: weights' ``sha256`` and the header's ``external_trials``; format 1 is still read).
FORMAT = 2
#: The line types of a file, in the order they appear in a study's section.
LINE_TYPES = (HEADER_TYPE, "study", "architecture", "trial", "metric", "weights", "pareto", "end")


@dataclass(frozen=True)
class TransferTables:
    """The tables whose rows a file carries."""

    studies: Table
    architectures: Table
    trials: Table
    metrics: Table
    weights: Table
    pareto: Table

    @classmethod
    def of_schema(cls) -> TransferTables:
        """The tables as :data:`naslab.db.models.Base` defines them."""
        tables = Base.metadata.tables
        return cls(
            studies=tables["naslab_studies"],
            architectures=tables["naslab_architectures"],
            trials=tables["naslab_trials"],
            metrics=tables["naslab_metrics"],
            weights=tables["naslab_weights"],
            pareto=tables["naslab_pareto_fronts"],
        )


# --------------------------------------------------------------------------- export values


def to_json_value(value: Any) -> Any:
    """A database value as a JSON value: timestamps as ISO-8601 UTC strings, binary
    data as base64, NaN and infinite floats as None."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "is_finite"):  # Decimal
        return float(value) if value.is_finite() else None
    if hasattr(value, "isoformat"):  # date, time
        return value.isoformat()
    return str(value)


def row_to_json(table: Table, row: Mapping[str, Any], leave_out: Sequence[str]) -> dict[str, Any]:
    """Every column of ``table`` in ``row`` as JSON values, except ``leave_out``."""
    return {c.name: to_json_value(row[c.name]) for c in table.columns if c.name not in leave_out}


def dumps_line(obj: Mapping[str, Any]) -> str:
    """One line of the file (without its newline): compact JSON, no NaN."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# --------------------------------------------------------------------------- import values


def line_error(lineno: int, message: str) -> ConfigError:
    """A ConfigError about line ``lineno`` of the file."""
    return ConfigError(f"line {lineno}: {message}")


class BadValue(Exception):
    """A value of the wrong kind: ``args[0]`` says what is accepted."""


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise BadValue("an ISO-8601 timestamp string")
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadValue("an ISO-8601 timestamp such as 2026-01-01T12:00:00+00:00") from None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=timezone.utc)


def _binary(value: Any) -> bytes:
    if not isinstance(value, str):
        raise BadValue("base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadValue("base64 text") from None


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadValue("true or false")
    return value


def _integer(bits: int) -> Callable[[Any], int]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def check(value: Any) -> int:
        if type(value) is not int:
            raise BadValue("an integer")
        if not low <= value <= high:
            raise BadValue(f"an integer from {low} to {high}")
        return value

    return check


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadValue("a finite number or null")
    try:
        number = float(value)
    except OverflowError:
        raise BadValue("a finite number or null") from None
    if not math.isfinite(number):
        raise BadValue("a finite number or null")
    return number


def _string(length: int | None) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if type(value) is not str:
            raise BadValue("a string")
        if length is not None and len(value) > length:
            raise BadValue(f"at most {length} characters long (it has {len(value)})")
        return value

    return check


def _any(value: Any) -> Any:
    return value


def _converter(col_type: TypeEngine[Any]) -> Callable[[Any], Any]:
    """The function that checks and converts a JSON value for a column of this type."""
    base = col_type.impl_instance if isinstance(col_type, TypeDecorator) else col_type
    if isinstance(base, DateTime):
        return _timestamp
    if isinstance(base, LargeBinary):
        return _binary
    if isinstance(base, Boolean):
        return _boolean
    if isinstance(base, BigInteger):
        return _integer(64)
    if isinstance(base, Integer):
        return _integer(32)
    if isinstance(base, (Float, Numeric)):
        return _number
    if isinstance(base, String):
        return _string(base.length)
    return _any


@dataclass(frozen=True)
class _Column:
    name: str
    convert: Callable[[Any], Any]
    nullable: bool
    required: bool


class RowReader:
    """Reads the row of ``table`` that a line gives, without the ``handled`` columns.

    Keys the table does not have are ignored; so are foreign keys that the import
    does not re-map (their ids mean nothing in the target) and a generated id.
    Required columns (not nullable, no default) that the line lacks are an error.
    ``kind`` names the line in error messages (``"trial"``, ``"pareto row"``, ...).
    """

    def __init__(self, table: Table, kind: str, handled: Sequence[str] = ()) -> None:
        self.kind = kind
        single_pk = len(table.primary_key.columns) == 1
        self.columns = [
            _Column(c.name, _converter(c.type), bool(c.nullable),
                    not c.nullable and c.default is None and c.server_default is None)
            for c in table.columns
            if c.name not in handled and not c.foreign_keys and not (c.primary_key and single_pk)
        ]
        self.required = [c.name for c in self.columns if c.required]

    def __call__(self, obj: Mapping[str, Any], lineno: int) -> dict[str, Any]:
        """The column values of the line ``obj`` (number ``lineno``), checked and
        converted; ConfigError naming the line and the column if one is wrong."""
        out: dict[str, Any] = {}
        for column in self.columns:
            if column.name in obj:
                out[column.name] = self._value(column, obj[column.name], lineno)
            elif column.required:
                raise line_error(
                    lineno, f"the {self.kind} has no {column.name!r}; a {self.kind} line "
                    "needs: " + ", ".join(self.required)
                )
        return out

    def _value(self, column: _Column, value: Any, lineno: int) -> Any:
        kind, name = self.kind, column.name
        if value is None:
            if not column.nullable:
                raise line_error(lineno, f"the {kind}'s {name!r} is null; it must have a value")
            return None
        try:
            return column.convert(value)
        except BadValue as exc:
            shown = repr(value)
            if len(shown) > 60:
                shown = shown[:57] + "..."
            raise line_error(
                lineno, f"the {kind}'s {name!r} must be {exc.args[0]}, got {shown}"
            ) from None


def check_header(header: dict[str, Any] | None, lineno: int) -> list[str]:
    """The study names of a file's first line ``header`` (None: the file is empty);
    ConfigError if it is not the header of a format this naslab reads."""
    accepted = "a file written by naslab db export"
    if header is None:
        raise ConfigError(f"the file is empty; expected {accepted}")
    if header.get("type") != HEADER_TYPE:
        raise line_error(
            lineno, f"is not a naslab export header: the first line must be "
            f'{{"type": "{HEADER_TYPE}", "format": {FORMAT}, ...}} ({accepted}); got a line '
            f"of type {header.get('type')!r}"
        )
    fmt = header.get("format")
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
        raise line_error(lineno, f"the header's format must be a positive integer, got {fmt!r}")
    if fmt > FORMAT:
        raise line_error(
            lineno, f"the file has export format {fmt} (written by naslab "
            f"{header.get('naslab_version', '?')}), newer than format {FORMAT} that this "
            "naslab reads; import it with a newer naslab"
        )
    names = header.get("studies")
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise line_error(lineno, "the header's studies must be a list of study names")
    if len(set(names)) != len(names):
        raise line_error(lineno, "the header lists a study twice")
    return list(names)


# --------------------------------------------------------------------------- files


def _is_path(target: Any) -> bool:
    return isinstance(target, (str, os.PathLike))


@contextmanager
def open_output(out: str | os.PathLike[str] | IO[str]) -> Iterator[tuple[IO[str], str | None]]:
    """A text file to write, and its path (None for an open file); a path is
    written to a temporary file that replaces it only once complete (gzip when the
    name ends with ``.gz``). ConfigError if it cannot be written."""
    if not _is_path(out):
        if not hasattr(out, "write"):
            raise ConfigError(f"out must be a path or a text file, got {type(out).__name__}")
        yield out, None  # type: ignore[misc]
        return
    path = Path(out).expanduser()  # type: ignore[arg-type]
    if path.is_dir():
        raise ConfigError(f"{str(path)!r} is a directory; give a file name such as out.jsonl")
    if not path.parent.is_dir():
        raise ConfigError(f"the directory of {str(path)!r} does not exist; create it first")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if path.name.endswith(".gz"):
            fh: IO[str] = gzip.open(tmp, "wt", encoding="utf-8", newline="\n")
        else:
            fh = open(tmp, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        with fh:
            yield fh, str(path)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def open_input(source: str | os.PathLike[str] | IO[str]) -> Iterator[IO[str]]:
    """A text file to read; a path holding gzip data is decompressed. ConfigError
    if there is no such file or it cannot be read."""
    if not _is_path(source):
        if not hasattr(source, "read"):
            raise ConfigError(
                f"source must be a path or a text file, got {type(source).__name__}"
            )
        yield source  # type: ignore[misc]
        return
    path = Path(source).expanduser()  # type: ignore[arg-type]
    if not path.is_file():
        raise ConfigError(f"there is no file {str(path)!r} to import")
    try:
        with open(path, "rb") as raw:
            magic = raw.read(2)
        if magic == b"\x1f\x8b":
            fh: IO[str] = gzip.open(path, "rt", encoding="utf-8", newline="")
        else:
            fh = open(path, encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    with fh:
        yield fh


def read_lines(fh: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line; ConfigError naming the line for
    one that is not UTF-8, not JSON or not an object with a ``type``."""
    lineno = 0
    iterator = iter(fh)
    while True:
        try:
            line = next(iterator)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise line_error(lineno + 1, f"is not UTF-8 text ({exc.reason})") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise ConfigError(
                f"the compressed file is corrupted or truncated after line {lineno}: {exc}"
            ) from None
        lineno += 1
        if line.strip():
            yield lineno, _parse_line(line, lineno)


class _NotJson(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity`` in a line (Python's json reads them)."""


def _no_constant(name: str) -> Any:
    raise _NotJson(name)


def _parse_line(line: str, lineno: int) -> dict[str, Any]:
    try:
        obj = json.loads(line, parse_constant=_no_constant)
    except _NotJson as exc:
        raise line_error(
            lineno, f"holds {exc.args[0]}, which is not JSON (naslab writes NaN and infinite "
            "values as null)") from None
    except json.JSONDecodeError as exc:
        raise line_error(
            lineno, f"is not valid JSON ({exc.msg} at column {exc.colno}); each line of "
            "a naslab export is one JSON object (the file may be truncated or corrupted)"
        ) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise line_error(
            lineno, 'is not a JSON object with a "type"; each line of a naslab export '
            'is one, e.g. {"type": "trial", ...}'
        )
    return obj
