"""What every ``naslab`` command shares: the consoles, the ``--storage`` option,
``KEY=VALUE`` and list parsing, and how stored values are printed.

Options given as ``KEY=VALUE`` take JSON values (``channels=16``, ``widths=[8,16]``)
or plain strings; nothing typed on the command line is evaluated as code. Stored
text is printed as it is, never read as console markup.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from naslab.core.errors import ConfigError
from naslab.core.validation import parse_option_value

__all__ = [
    "STORAGE_HELP",
    "Init",
    "SpaceOpt",
    "TrainOpt",
    "option",
    "Storage",
    "compact_decisions",
    "console",
    "err_console",
    "fmt",
    "open_store",
    "parse_list",
    "parse_options",
    "seconds",
    "short_task",
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


def open_store(storage: str | None, *, init: bool = False) -> Any:
    """The store at ``storage`` (default: ``$NASLAB_STORAGE`` or ``naslab.db``);
    ``init``: add naslab's tables to a database that holds other tables (``--init``)."""
    from naslab.db.store import Store

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


def fmt(value: Any) -> str:
    """A value as console markup: stored text is shown as is, never read as markup."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return escape(str(value))


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
