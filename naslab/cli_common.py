"""What every ``naslab`` command shares: the consoles, the ``--storage`` option,
``KEY=VALUE`` and list parsing, how stored values are printed, and the output
formats of the commands that list records (``--format table|csv|json``).

Options given as ``KEY=VALUE`` take JSON values (``channels=16``, ``widths=[8,16]``)
or plain strings; nothing typed on the command line is evaluated as code. Stored
text is printed as it is, never read as console markup, and its control
characters (a terminal escape sequence in an error message) are shown escaped.

Output formats: ``table`` is a Rich table, fitted to the terminal's width on a
terminal; when stdout is not a terminal (a pipe, a file) the table is printed at
its full natural width, never cut or wrapped. ``csv`` is a header and one row per
record with every column, values unabbreviated (nested values as JSON text);
``json`` is a list of objects (numbers as numbers, None and NaN as null, times in
ISO 8601).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from naslab.core.errors import ConfigError
from naslab.core.validation import parse_option_value

__all__ = [
    "FORMATS",
    "STORAGE_HELP",
    "OutputFormat",
    "Init",
    "SpaceOpt",
    "TrainOpt",
    "option",
    "Storage",
    "check_format",
    "compact_decisions",
    "console",
    "csv_value",
    "err_console",
    "fmt",
    "json_value",
    "open_store",
    "parse_list",
    "parse_options",
    "print_table",
    "printable",
    "seconds",
    "short_task",
    "write_records",
]

console = Console()
err_console = Console(stderr=True)

STORAGE_HELP = "SQLAlchemy URL of the store (default: $NASLAB_STORAGE or sqlite:///naslab.db)."
#: The ``--storage`` option of every command that opens the store.
Storage = Annotated[str | None, typer.Option(envvar="NASLAB_STORAGE", help=STORAGE_HELP)]


def option(help: str, *names: str) -> Any:
    """A ``typer.Option`` with ``help`` (and the given flag names), for ``Annotated``
    option types."""
    return typer.Option(*names, help=help)


#: ``--init``: add naslab's tables to a database that already holds other tables.
Init = Annotated[bool, typer.Option(
    "--init", help="Add naslab's tables to a database that holds other tables (refused "
    "without it).")]
#: ``--space-opt KEY=VALUE`` (repeatable).
SpaceOpt = Annotated[list[str] | None, typer.Option(
    "--space-opt", help="Space option KEY=VALUE (repeatable), e.g. channels=16.")]
#: ``--train-opt KEY=VALUE`` (repeatable).
TrainOpt = Annotated[list[str] | None, typer.Option(
    "--train-opt", help="Training option KEY=VALUE, e.g. lr=0.1 or batch_size=128 (part "
    "of the task key of stored results).")]


def open_store(storage: str | None, *, init: bool = False, create: bool = False) -> Any:
    """The store at ``storage`` (default: ``$NASLAB_STORAGE`` or ``naslab.db``);
    ``init``: add naslab's tables to a database that holds other tables (``--init``).

    An SQLite file that does not exist is refused (ConfigError; nothing is created)
    unless ``create``: a typo in ``--storage`` must not silently make an empty store.
    Only the commands that make stores pass ``create`` (``naslab db upgrade``,
    ``naslab db import``; ``naslab search`` opens its own)."""
    from naslab.db.engine import parse_url, storage_url
    from naslab.db.store import Store

    if not create:
        _, path = parse_url(storage_url(storage))
        if path is not None and not path.exists():
            raise ConfigError(f"no store at {str(path)!r}; run naslab search first, or check "
                              "--storage (or $NASLAB_STORAGE)")
    return Store(storage, init=init)


def parse_options(pairs: list[str] | None, what: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (JSON values, else strings).

    Values go through :func:`~naslab.core.validation.parse_option_value`: NaN and
    infinities are refused, and ``true/false/yes/no/1/0`` (any case) can stand for a
    boolean option. A key given twice is refused. The components check types and
    ranges (``channels=1.5`` or ``channels=true`` is not an integer).
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} option {pair!r} is not KEY=VALUE (e.g. channels=16)")
        if key.strip() in out:
            raise ConfigError(f"{what} option {key.strip()!r} is given twice")
        try:
            out[key.strip()] = parse_option_value(raw)
        except ConfigError as exc:
            raise ConfigError(f"{what} option {key.strip()!r}: {exc}") from None
    return out


def parse_list(text: str | None, what: str, cast: Any = str) -> list[Any]:
    """``"a,b"`` -> ``["a", "b"]`` (each passed through ``cast``); [] for None.

    An empty text or an empty item (``","``, ``"a,,b"``) is refused, as is an item
    that ``cast`` refuses."""
    if text is None:
        return []
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise ConfigError(f"{what} must be a comma-separated list of non-empty items, "
                          f"got {text!r}")
    try:
        return [cast(part) for part in parts]
    except (ValueError, OverflowError):
        raise ConfigError(f"{what} must be a comma-separated list, got {text!r}") from None


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with its control characters (but newlines and tabs) escaped as
    ``\\xNN``: stored text never drives the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def fmt(value: Any) -> str:
    """A value as console markup: stored text is shown as is, never read as markup,
    with its control characters escaped."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return escape(printable(str(value)))


def seconds(value: float | None) -> str:
    """``m:ss`` of a number of seconds (``?`` for None)."""
    if value is None:
        return "?"
    value = int(round(value))
    return f"{value // 60}:{value % 60:02d}"


def compact_decisions(decisions: dict[str, Any]) -> str:
    """``{"a": 1, "b": "x"}`` -> ``a=1 b=x``: wraps between decisions in narrow tables."""
    return " ".join(f"{k}={v}" for k, v in decisions.items())


def short_task(task_key: str) -> str:
    """``train-v1(digits(seed=0);sgd,...)`` -> ``digits(seed=0)``; other keys unchanged."""
    if task_key.startswith("train-") and "(" in task_key:
        return task_key[task_key.index("(") + 1 :].split(";")[0]
    return task_key


# --------------------------------------------------------------------------- output formats

#: The output formats of the commands that list records.
FORMATS = ("table", "csv", "json")
FORMAT_HELP = ("Output: table (fitted to a terminal; printed at full width, never cut, when "
               "stdout is not a terminal), csv (every column, values unabbreviated) or json "
               "(a list of objects).")
#: ``--format table|csv|json``.
OutputFormat = Annotated[str, typer.Option("--format", help=FORMAT_HELP)]


def check_format(value: str, accepted: Sequence[str] = FORMATS) -> str:
    """``value`` if it is one of ``accepted``, else ConfigError listing them."""
    if value not in accepted:
        raise ConfigError(f"--format must be one of {', '.join(accepted)}; got {value!r}")
    return value


def print_table(table: Table) -> None:
    """Print ``table``: fitted to the terminal on one, else (a pipe, a file) at its
    full natural width, so that no header or cell is cut to ``…``."""
    if console.is_terminal:
        console.print(table)
        return
    probe = Console(width=1_000_000, file=io.StringIO())
    width = max(probe.measure(table).maximum, 20)
    Console(file=console.file, width=width, highlight=False, color_system=None,
            force_terminal=False).print(table)


def json_value(value: Any) -> Any:
    """``value`` for JSON: NaN and infinities as None, times in ISO 8601, tuples and
    sets as lists, mappings with string keys, anything else unknown as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_value(v) for v in value]
    return str(value)


def csv_value(value: Any) -> Any:
    """``value`` for a CSV cell: None as an empty cell, nested values as compact JSON
    text, times in ISO 8601, numbers in full precision."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(json_value(value), separators=(",", ":"))
    return value


def write_records(format: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write ``rows`` (one value per column) to stdout as ``csv`` (a header, then the
    rows) or ``json`` (a list of objects keyed by ``columns``)."""
    if format == "json":
        data = [{c: json_value(v) for c, v in zip(columns, row)} for row in rows]
        sys.stdout.write(json.dumps(data, allow_nan=False) + "\n")
        return
    if format != "csv":
        raise ValueError(f"write_records writes csv or json, not {format!r}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([csv_value(v) for v in row] for row in rows)
    sys.stdout.write(buf.getvalue())
