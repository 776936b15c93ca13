"""Export studies from a store to JSON lines, and import them into another store.

:func:`export_studies` writes one JSON object per line (gzip-compressed when the
file name ends with ``.gz``)::

    {"type": "naslab-export", "format": 1, "naslab_version": "0.1.0",
     "exported_at": "2026-01-01T12:00:00+00:00", "dialect": "sqlite",
     "studies": ["a", "b"]}
    {"type": "study", "name": "a", "space": ..., ...}        # naslab_studies, no id
    {"type": "architecture", "space_key": ..., "hash": ..., ...}   # no id
    {"type": "trial", "id": 7, "study": "a", "architecture": [space_key, hash],
     "number": 0, "state": "complete", "reused_from": null, ...}
    {"type": "metric", "trial": 7, "name": "val_accuracy", "step": null, "value": 0.8}
    {"type": "weights", "trial": 7, "format": "safetensors", "data": "<base64>"}
    {"type": "pareto", "study": "a", "trial": 7, "objectives": "[...]", ...}
    ... (the lines of the next study)
    {"type": "end", "lines": 1234}

Each study's section starts with its ``study`` line and holds the ``architecture``
lines its trials need (an architecture used by several studies is repeated in each
section), its ``trial``, ``metric``, ``weights`` and ``pareto`` lines. A trial keeps
its source ``id``, which only serves cross-references within the file (``trial``
of metrics, weights and Pareto rows; ``reused_from``). The ``end`` line gives the
number of lines before it, so a truncated file is refused.

Every column of the tables is carried, read generically from the table
definitions (:data:`naslab.db.models.Base` metadata): a column added to a table
later is exported without changes here. Values: timestamps are ISO-8601 UTC
strings, binary data base64, NaN and infinite floats ``null`` (a NULL metric value
stands for NaN), JSON text columns (``decisions``, ``config``, ...) stay strings.
The key ``type`` is the line's; ``study``, ``architecture`` and ``trial`` replace
the foreign keys ``study_id``, ``architecture_id`` and ``trial_id``.

:func:`import_studies` reads such a file and inserts it in one transaction (all or
nothing). Columns of the file that the target table does not have are ignored;
columns of the target that the file lacks get their defaults (NULL). Ids are
re-mapped; architectures already stored (same ``space_key`` and ``hash``) are
reused. Other foreign keys a table may get are not carried (their ids would mean
nothing in the target). Running trials are imported as ``interrupted`` (no
driver in the target owns them).

A ``reused_from`` that names a trial of the file is re-mapped (also when that trial
comes later in the file). One that names a trial outside the imported data (a
study not exported, or not imported) cannot be kept: the first such trial of a
study, architecture and fidelity becomes the evaluation (``reused_from`` NULL;
without weights, which stayed with the original) and later ones point to it,
unless the study has its own evaluation of that architecture and fidelity in the
file, which they then point to. A second evaluation of an architecture, study and
fidelity (from a database older than the claims of concurrent drivers) becomes a
reuse of the first, as schema upgrade 0002 does. So an import never adds a second
running or complete evaluation of an architecture to a study and fidelity (the
partial unique index ``uq_naslab_trials_one_evaluation``).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import math
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal

from sqlalchemy import (
    Boolean,
    Connection,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import TypeDecorator, TypeEngine

from naslab import __version__
from naslab.core.errors import ConfigError, StudyConflictError
from naslab.db.models import TRIAL_STATES, Base, utcnow
from naslab.db.store import Store

#: The ``type`` of a file's first line.
HEADER_TYPE = "naslab-export"
#: The format this naslab writes, and the newest it reads.
FORMAT = 1
#: The line types of a file, in the order they appear in a study's section.
LINE_TYPES = (HEADER_TYPE, "study", "architecture", "trial", "metric", "weights", "pareto", "end")
#: What a running trial's ``error`` becomes when it is imported (as ``interrupted``).
IMPORTED_RUNNING_ERROR = "interrupted: imported while running"

_ROWS_PER_FETCH = 1000
_BLOBS_PER_FETCH = 16
_BATCH = 1000
_OnConflict = Literal["error", "skip"]
_ON_CONFLICT = ("error", "skip")


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_studies` wrote."""

    path: str | None
    studies: tuple[str, ...]
    trials: int
    architectures: int
    metrics: int
    weights: int
    pareto: int
    lines: int

    def describe(self) -> str:
        """One line for people."""
        where = f" to {self.path}" if self.path else ""
        names = f" ({', '.join(self.studies)})" if self.studies else ""
        return (
            f"exported {len(self.studies)} stud{'y' if len(self.studies) == 1 else 'ies'}"
            f"{names}: {self.trials} trials, {self.architectures} architecture lines, "
            f"{self.metrics} metrics, {self.weights} weights, {self.pareto} Pareto rows{where}"
        )


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_studies` stored.

    ``studies`` are the names the imported studies have in the target (after
    renaming); ``skipped`` the ones left out because the target already had them
    (``on_conflict="skip"``). ``architectures_new`` were inserted,
    ``architectures_reused`` were already stored. ``interrupted`` counts running
    trials imported as ``interrupted``; ``detached`` the trials whose
    ``reused_from`` named a trial outside the imported data (see the module).
    """

    studies: tuple[str, ...]
    skipped: tuple[str, ...]
    trials: int
    architectures_new: int
    architectures_reused: int
    metrics: int
    weights: int
    pareto: int
    interrupted: int
    detached: int

    def describe(self) -> str:
        """One line for people."""
        n = len(self.studies)
        text = (
            f"imported {n} stud{'y' if n == 1 else 'ies'}"
            + (f" ({', '.join(self.studies)})" if self.studies else "")
            + f": {self.trials} trials, {self.architectures_new} new architectures "
            f"({self.architectures_reused} already stored), {self.metrics} metrics, "
            f"{self.weights} weights, {self.pareto} Pareto rows"
        )
        if self.interrupted:
            text += f"; {self.interrupted} running trials imported as interrupted"
        if self.skipped:
            text += f"; skipped {len(self.skipped)} existing: {', '.join(self.skipped)}"
        return text


def _tables() -> dict[str, Table]:
    return dict(Base.metadata.tables)


# --------------------------------------------------------------------------- values


def _base_type(col_type: TypeEngine[Any]) -> TypeEngine[Any]:
    if isinstance(col_type, TypeDecorator):
        return col_type.impl_instance
    return col_type


def _to_json(value: Any) -> Any:
    """A database value as a JSON value."""
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


def _row_json(table: Table, row: Mapping[str, Any], leave_out: Sequence[str]) -> dict[str, Any]:
    return {c.name: _to_json(row[c.name]) for c in table.columns if c.name not in leave_out}


def _line_error(lineno: int, message: str) -> ConfigError:
    return ConfigError(f"line {lineno}: {message}")


class _Bad(Exception):
    """A value of the wrong kind: ``args[0]`` says what is accepted."""


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise _Bad("an ISO-8601 timestamp string")
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _Bad("an ISO-8601 timestamp such as 2026-01-01T12:00:00+00:00") from None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=timezone.utc)


def _binary(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _Bad("base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad("base64 text") from None


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad("true or false")
    return value


def _integer(value: Any) -> int:
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _Bad("an integer")
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad("a number or null")
    number = float(value)
    return None if math.isnan(number) else number


def _string(length: int | None) -> Any:
    def check(value: Any) -> str:
        if type(value) is not str:
            raise _Bad("a string")
        if length is not None and len(value) > length:
            raise _Bad(f"at most {length} characters long (it has {len(value)})")
        return value

    return check


def _any(value: Any) -> Any:
    return value


def _converter(col_type: TypeEngine[Any]) -> Any:
    """The function that checks and converts a JSON value for a column of this type."""
    base = _base_type(col_type)
    if isinstance(base, DateTime):
        return _timestamp
    if isinstance(base, LargeBinary):
        return _binary
    if isinstance(base, Boolean):
        return _boolean
    if isinstance(base, Integer):
        return _integer
    if isinstance(base, (Float, Numeric)):
        return _number
    if isinstance(base, String):
        return _string(base.length)
    return _any


class _RowReader:
    """Reads the row of ``table`` that a line gives, without the ``handled`` columns.

    Keys the table does not have are ignored; so are foreign keys that the import
    does not re-map (their ids mean nothing in the target) and a generated id.
    Required columns (not nullable, no default) that the line lacks are an error.
    """

    def __init__(self, table: Table, kind: str, handled: Sequence[str]) -> None:
        self.kind = kind
        single_pk = len(table.primary_key.columns) == 1
        self.columns = [
            (c.name, _converter(c.type), bool(c.nullable),
             not c.nullable and c.default is None and c.server_default is None)
            for c in table.columns
            if c.name not in handled and not c.foreign_keys and not (c.primary_key and single_pk)
        ]
        self.required = [name for name, _, _, required in self.columns if required]

    def __call__(self, obj: Mapping[str, Any], lineno: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        kind = self.kind
        for name, convert, nullable, required in self.columns:
            if name not in obj:
                if required:
                    raise _line_error(
                        lineno, f"the {kind} has no {name!r}; a {kind} line needs: "
                        + ", ".join(self.required)
                    )
                continue
            value = obj[name]
            if value is None:
                if not nullable:
                    raise _line_error(
                        lineno, f"the {kind}'s {name!r} is null; it must have a value"
                    )
                out[name] = None
                continue
            try:
                out[name] = convert(value)
            except _Bad as exc:
                shown = repr(value)
                if len(shown) > 60:
                    shown = shown[:57] + "..."
                raise _line_error(
                    lineno, f"the {kind}'s {name!r} must be {exc.args[0]}, got {shown}"
                ) from None
        return out


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# --------------------------------------------------------------------------- files


def _is_path(target: Any) -> bool:
    return isinstance(target, (str, os.PathLike))


@contextmanager
def _open_out(out: str | os.PathLike[str] | IO[str]) -> Iterator[tuple[IO[str], str | None]]:
    """A text file to write; a path is written to a temporary file that replaces it
    only once complete (gzip when the name ends with ``.gz``)."""
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
def _open_in(source: str | os.PathLike[str] | IO[str]) -> Iterator[IO[str]]:
    """A text file to read; a path holding gzip data is decompressed."""
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


def _lines(fh: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line; clear errors for bad lines."""
    lineno = 0
    iterator = iter(fh)
    while True:
        try:
            line = next(iterator)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise _line_error(lineno + 1, f"is not UTF-8 text ({exc.reason})") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise ConfigError(
                f"the compressed file is corrupted or truncated after line {lineno}: {exc}"
            ) from None
        lineno += 1
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _line_error(
                lineno, f"is not valid JSON ({exc.msg} at column {exc.colno}); each line of "
                "a naslab export is one JSON object (the file may be truncated or corrupted)"
            ) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise _line_error(
                lineno, 'is not a JSON object with a "type"; each line of a naslab export '
                'is one, e.g. {"type": "trial", ...}'
            )
        yield lineno, obj


# --------------------------------------------------------------------------- export


def export_studies(
    store: Store,
    out: str | os.PathLike[str] | IO[str],
    studies: Sequence[str] | None = None,
    *,
    weights: bool = True,
) -> ExportSummary:
    """Write studies of ``store`` to ``out`` as JSON lines (see the module docstring).

    Args:
        store: the store to read.
        out: a file path (gzip-compressed when it ends with ``.gz``; written to a
            temporary file first, which replaces ``out`` once complete) or an open
            text file.
        studies: names of the studies to export; default: all, oldest first.
        weights: include trained weights (base64); they are most of the size.

    Returns:
        What was written.

    Raises:
        ConfigError: an unknown study name, or ``out`` cannot be written.
        StorageError: the database could not be read.

    The studies are read in one transaction (a consistent snapshot), streamed in
    chunks: a large study is never held in memory.
    """
    store._check_open()
    if isinstance(studies, str):
        studies = [studies]
    tables = _tables()
    st = tables["naslab_studies"]
    engine = store._engine
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                rows = conn.execute(select(st.c.id, st.c.name).order_by(st.c.id)).all()
                by_name = {name: sid for sid, name in rows}
                if studies is None:
                    chosen = [(sid, name) for sid, name in rows]
                else:
                    unknown = [n for n in studies if n not in by_name]
                    if unknown:
                        raise ConfigError(
                            f"no stud{'y' if len(unknown) == 1 else 'ies'} named "
                            f"{', '.join(map(repr, unknown))} in {store.url}; stored studies: "
                            f"{', '.join(by_name) or 'none'}"
                        )
                    wanted = set(studies)
                    chosen = [(sid, name) for sid, name in rows if name in wanted]
                with _open_out(out) as (fh, path):
                    writer = _Writer(fh)
                    writer.write({
                        "type": HEADER_TYPE,
                        "format": FORMAT,
                        "naslab_version": __version__,
                        "exported_at": _to_json(utcnow()),
                        "dialect": engine.dialect.name,
                        "studies": [name for _, name in chosen],
                    })
                    for sid, name in chosen:
                        _export_study(conn, tables, writer, sid, name, weights)
                    writer.write({"type": "end", "lines": writer.lines})
    except SQLAlchemyError as exc:
        raise store._error("export studies", exc) from exc
    counts = writer.counts
    return ExportSummary(
        path=path,
        studies=tuple(name for _, name in chosen),
        trials=counts.get("trial", 0),
        architectures=counts.get("architecture", 0),
        metrics=counts.get("metric", 0),
        weights=counts.get("weights", 0),
        pareto=counts.get("pareto", 0),
        lines=writer.lines,
    )


class _Writer:
    def __init__(self, fh: IO[str]) -> None:
        self.fh = fh
        self.lines = 0
        self.counts: dict[str, int] = {}

    def write(self, obj: Mapping[str, Any]) -> None:
        self.fh.write(_dumps(obj))
        self.fh.write("\n")
        self.lines += 1
        kind = str(obj["type"])
        self.counts[kind] = self.counts.get(kind, 0) + 1


def _stream(conn: Connection, statement: Any, per_fetch: int = _ROWS_PER_FETCH) -> Iterator[Any]:
    result = conn.execute(statement.execution_options(yield_per=per_fetch))
    yield from result.mappings()


def _export_study(
    conn: Connection, tables: dict[str, Table], writer: _Writer, sid: int, name: str,
    with_weights: bool,
) -> None:
    st, ar, tr = tables["naslab_studies"], tables["naslab_architectures"], tables["naslab_trials"]
    me, we, pa = tables["naslab_metrics"], tables["naslab_weights"], tables["naslab_pareto_fronts"]
    study_row = conn.execute(select(st).where(st.c.id == sid)).mappings().one()
    writer.write({"type": "study", **_row_json(st, study_row, ("id",))})
    used = select(tr.c.architecture_id).where(tr.c.study_id == sid)
    for row in _stream(conn, select(ar).where(ar.c.id.in_(used)).order_by(ar.c.id)):
        writer.write({"type": "architecture", **_row_json(ar, row, ("id",))})
    sk, hs = "naslab_arch_space_key_", "naslab_arch_hash_"
    trials = (
        select(tr, ar.c.space_key.label(sk), ar.c.hash.label(hs))
        .join(ar, ar.c.id == tr.c.architecture_id)
        .where(tr.c.study_id == sid)
        .order_by(tr.c.number, tr.c.id)
    )
    for row in _stream(conn, trials):
        line = {"type": "trial", "id": row["id"], "study": name,
                "architecture": [row[sk], row[hs]]}
        line.update(_row_json(tr, row, ("id", "study_id", "architecture_id")))
        writer.write(line)
    in_study = select(tr.c.id).where(tr.c.study_id == sid)
    metrics = select(me).where(me.c.trial_id.in_(in_study)).order_by(me.c.trial_id, me.c.id)
    for row in _stream(conn, metrics):
        writer.write({"type": "metric", "trial": row["trial_id"],
                      **_row_json(me, row, ("id", "trial_id"))})
    if with_weights:
        blobs = select(we).where(we.c.trial_id.in_(in_study)).order_by(we.c.trial_id)
        for row in _stream(conn, blobs, _BLOBS_PER_FETCH):
            writer.write({"type": "weights", "trial": row["trial_id"],
                          **_row_json(we, row, ("trial_id",))})
    front = select(pa).where(pa.c.study_id == sid).order_by(pa.c.trial_id)
    for row in _stream(conn, front):
        writer.write({"type": "pareto", "study": name, "trial": row["trial_id"],
                      **_row_json(pa, row, ("study_id", "trial_id"))})


# --------------------------------------------------------------------------- import


def import_studies(
    store: Store,
    source: str | os.PathLike[str] | IO[str],
    *,
    studies: Sequence[str] | None = None,
    rename: Mapping[str, str] | None = None,
    on_conflict: _OnConflict = "error",
) -> ImportSummary:
    """Import the studies of a file written by :func:`export_studies` into ``store``.

    Args:
        store: the target store.
        source: a file path (gzip data is recognised) or an open text file.
        studies: names (as in the file) of the studies to import; default: all.
        rename: ``{name in the file: name in the target}`` for studies to import
            under another name.
        on_conflict: what to do with a study whose (target) name the store already
            has: ``"error"`` (raise :class:`~naslab.core.errors.StudyConflictError`,
            import nothing) or ``"skip"`` (leave that study out).

    Returns:
        What was imported (see :class:`ImportSummary`).

    Raises:
        ConfigError: the file is not a valid naslab export (the message names the
            line and what was wrong), or the arguments are invalid.
        StudyConflictError: a study exists in the target and ``on_conflict`` is
            ``"error"``.
        StorageError: the database refused the data.

    Everything is inserted in one transaction: on any error the target is left
    exactly as it was. Ids are re-mapped, stored architectures reused, running
    trials imported as ``interrupted``; see the module docstring for trials reused
    from trials outside the file.
    """
    store._check_open()
    if on_conflict not in _ON_CONFLICT:
        raise ConfigError(
            f"on_conflict must be one of {', '.join(_ON_CONFLICT)}, got {on_conflict!r}"
        )
    if isinstance(studies, str):
        studies = [studies]
    rename = dict(rename or {})
    for old, new in rename.items():
        if not isinstance(old, str) or not isinstance(new, str) or not new.strip():
            raise ConfigError(
                f"rename maps study names to new non-empty names; got {old!r} -> {new!r}"
            )
    with _open_in(source) as fh:
        lines = _lines(fh)
        header_no, header = next(lines, (0, None))
        in_file = _check_header(header, header_no)
        selected = in_file if studies is None else list(dict.fromkeys(studies))
        missing = [n for n in selected if n not in in_file]
        if missing:
            raise ConfigError(
                f"the file has no stud{'y' if len(missing) == 1 else 'ies'} "
                f"{', '.join(map(repr, missing))}; it holds: {', '.join(in_file) or 'none'}"
            )
        bad_renames = [n for n in rename if n not in selected]
        if bad_renames:
            raise ConfigError(
                f"cannot rename {', '.join(map(repr, bad_renames))}: not among the studies "
                f"to import ({', '.join(selected) or 'none'})"
            )
        targets = {n: rename.get(n, n) for n in selected}
        clashes = sorted({t for t in targets.values() if list(targets.values()).count(t) > 1})
        if clashes:
            raise ConfigError(
                f"several studies would be imported as {', '.join(map(repr, clashes))}; "
                "rename them to distinct names"
            )
        with store._core_write("import studies") as conn:
            importer = _Importer(conn, _tables(), in_file, selected, targets)
            existing = importer.existing_names(list(targets.values()))
            if existing and on_conflict == "error":
                raise StudyConflictError(_conflict_message(existing, targets, store.url))
            importer.skip(existing)
            for lineno, obj in lines:
                importer.handle(lineno, obj)
            return importer.finish()


def _conflict_message(existing: list[str], targets: Mapping[str, str], url: str) -> str:
    pairs = [(old, new) for old, new in targets.items() if new in existing]
    names = ", ".join(repr(new) for _, new in pairs)
    example_old, example_new = pairs[0]
    return (
        f"the target {url} already has stud{'y' if len(pairs) == 1 else 'ies'} {names}; "
        f"import under another name with --rename {example_old}={example_new}-2 "
        f"(rename={{{example_old!r}: {example_new + '-2'!r}}}), or leave existing studies "
        "out with --skip-existing (on_conflict='skip')"
    )


def _check_header(header: dict[str, Any] | None, lineno: int) -> list[str]:
    accepted = "a file written by naslab db export"
    if header is None:
        raise ConfigError(f"the file is empty; expected {accepted}")
    if header.get("type") != HEADER_TYPE:
        raise _line_error(
            lineno, f"is not a naslab export header: the first line must be "
            f'{{"type": "{HEADER_TYPE}", "format": {FORMAT}, ...}} ({accepted}); got a line '
            f"of type {header.get('type')!r}"
        )
    fmt = header.get("format")
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
        raise _line_error(lineno, f"the header's format must be a positive integer, got {fmt!r}")
    if fmt > FORMAT:
        raise _line_error(
            lineno, f"the file has export format {fmt} (written by naslab "
            f"{header.get('naslab_version', '?')}), newer than format {FORMAT} that this "
            "naslab reads; import it with a newer naslab"
        )
    names = header.get("studies")
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise _line_error(lineno, "the header's studies must be a list of study names")
    if len(set(names)) != len(names):
        raise _line_error(lineno, "the header lists a study twice")
    return list(names)


@dataclass
class _Deferred:
    """A trial whose ``reused_from`` names a trial not (yet) imported."""

    new_id: int
    state: str
    ref: int
    key: tuple[int, int, int]


class _Importer:
    """The state of one import: id maps, pending batches, counts."""

    def __init__(
        self, conn: Connection, tables: dict[str, Table], header_names: list[str],
        selected: list[str], targets: Mapping[str, str],
    ) -> None:
        self.conn = conn
        self.header_names = header_names
        self.st = tables["naslab_studies"]
        self.ar = tables["naslab_architectures"]
        self.tr = tables["naslab_trials"]
        self.me = tables["naslab_metrics"]
        self.we = tables["naslab_weights"]
        self.pa = tables["naslab_pareto_fronts"]
        self.read_study = _RowReader(self.st, "study", ())
        self.read_arch = _RowReader(self.ar, "architecture", ())
        self.read_trial = _RowReader(
            self.tr, "trial", ("id", "study_id", "architecture_id", "reused_from"))
        self.read_metric = _RowReader(self.me, "metric", ("id", "trial_id"))
        self.read_weights = _RowReader(self.we, "weights", ("trial_id",))
        self.read_pareto = _RowReader(self.pa, "pareto row", ("study_id", "trial_id"))
        self.selected = set(selected)
        self.targets = dict(targets)
        self.skipped: list[str] = []
        self.imported: list[str] = []
        self.seen_studies: set[str] = set()
        # the current section
        self.section: str | None = None
        self.section_id: int | None = None
        self.skip_section = False
        self.numbers: set[int] = set()
        # id maps
        self.arch_ids: dict[tuple[str, str], int] = {}
        self.trial_ids: dict[int, int] = {}  # file id -> new id
        self.demoted: dict[int, int] = {}  # new id -> evaluation it now points to
        self.anchors: dict[tuple[int, int, int], int] = {}  # (study, arch, fidelity) -> id
        self.deferred: list[_Deferred] = []
        self.with_weights: set[int] = set()
        self.on_front: set[tuple[int, int]] = set()
        # pending batches
        self.pending_archs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pending_trials: list[tuple[int, dict[str, Any], Any]] = []
        self.pending_ids: set[int] = set()
        self.pending_keys: set[tuple[int, int, int]] = set()
        self.pending_metrics: list[dict[str, Any]] = []
        # counts
        self.lines = 1  # the header
        self.ended = False
        self.n_trials = self.n_metrics = self.n_weights = self.n_pareto = 0
        self.n_arch_new = self.n_arch_reused = 0
        self.n_interrupted = self.n_detached = 0
        self.now = utcnow()

    # ------------------------------------------------------------ setup

    def existing_names(self, names: list[str]) -> list[str]:
        if not names:
            return []
        found = set(self.conn.execute(
            select(self.st.c.name).where(self.st.c.name.in_(names))).scalars())
        return [n for n in names if n in found]

    def skip(self, target_names: list[str]) -> None:
        for old, new in self.targets.items():
            if new in target_names:
                self.skipped.append(new)
                self.selected.discard(old)

    # ------------------------------------------------------------ lines

    def handle(self, lineno: int, obj: dict[str, Any]) -> None:
        kind = obj["type"]
        if self.ended:
            raise _line_error(lineno, "follows the end line; a naslab export ends with it")
        if kind == "end":
            self._end(lineno, obj)
            return
        self.lines += 1
        if kind == "architecture":
            self._architecture(lineno, obj)
            return
        self._flush_archs()
        if kind == "trial":
            self._trial(lineno, obj)
            return
        self._flush_trials()
        if kind == "study":
            self._flush_metrics()
            self._study(lineno, obj)
        elif kind == "metric":
            self._metric(lineno, obj)
        elif kind == "weights":
            self._weights(lineno, obj)
        elif kind == "pareto":
            self._pareto(lineno, obj)
        elif kind == HEADER_TYPE:
            raise _line_error(
                lineno, "is a second header; import each export file on its own "
                "(concatenated files are not supported)"
            )
        else:
            raise _line_error(
                lineno, f"has unknown type {kind!r}; a naslab export (format {FORMAT}) has "
                f"lines of type: {', '.join(LINE_TYPES)}"
            )

    def _in_section(self, lineno: int, kind: str) -> bool:
        """Whether the line's section is imported (False: a skipped study)."""
        if self.section is None:
            raise _line_error(lineno, f"a {kind} line comes before any study line")
        return not self.skip_section

    def _file_trial(self, lineno: int, obj: Mapping[str, Any], kind: str) -> int:
        ref = obj.get("trial")
        if isinstance(ref, bool) or not isinstance(ref, int):
            raise _line_error(lineno, f"the {kind}'s trial must be a trial id of the file, "
                              f"got {ref!r}")
        new = self.trial_ids.get(ref)
        if new is None:
            raise _line_error(
                lineno, f"the {kind} refers to trial {ref}, which no trial line of study "
                f"{self.section!r} before it gives"
            )
        return new

    def _study(self, lineno: int, obj: dict[str, Any]) -> None:
        name = obj.get("name")
        if not isinstance(name, str) or name not in self.header_names:
            raise _line_error(
                lineno, f"study {name!r} is not among the studies the header lists "
                f"({', '.join(self.header_names) or 'none'})"
            )
        if name in self.seen_studies:
            raise _line_error(lineno, f"study {name!r} appears twice")
        self.seen_studies.add(name)
        self.section = name
        self.numbers = set()
        self.skip_section = name not in self.selected
        if self.skip_section:
            self.section_id = None
            return
        target = self.targets[name]
        values = self.read_study({**obj, "name": target}, lineno)
        self.section_id = self._insert_one(self.st, values)
        self.imported.append(target)

    def _architecture(self, lineno: int, obj: dict[str, Any]) -> None:
        if not self._in_section(lineno, "architecture"):
            return
        values = self.read_arch(obj, lineno)
        key = (values["space_key"], values["hash"])
        if key in self.arch_ids or key in self.pending_archs:
            return
        self.pending_archs[key] = values
        if len(self.pending_archs) >= _BATCH:
            self._flush_archs()

    def _trial(self, lineno: int, obj: dict[str, Any]) -> None:
        if not self._in_section(lineno, "trial"):
            return
        assert self.section_id is not None
        if obj.get("study") != self.section:
            raise _line_error(
                lineno, f"the trial's study is {obj.get('study')!r}, but it is in the "
                f"section of study {self.section!r}"
            )
        file_id = obj.get("id")
        if isinstance(file_id, bool) or not isinstance(file_id, int):
            raise _line_error(lineno, f"the trial's id must be an integer, got {file_id!r}")
        if file_id in self.trial_ids or file_id in self.pending_ids:
            raise _line_error(lineno, f"trial id {file_id} appears twice")
        arch = obj.get("architecture")
        if (not isinstance(arch, list) or len(arch) != 2
                or not all(isinstance(a, str) for a in arch)):
            raise _line_error(
                lineno, f"the trial's architecture must be [space_key, hash], got {arch!r}"
            )
        arch_id = self.arch_ids.get((arch[0], arch[1]))
        if arch_id is None:
            raise _line_error(
                lineno, f"trial {file_id} refers to architecture {arch!r}, which no "
                "architecture line before it gives (the file is incomplete or corrupted)"
            )
        values = self.read_trial(obj, lineno)
        state = values["state"]
        if state not in TRIAL_STATES:
            raise _line_error(
                lineno, f"the trial's state {state!r} is not one of {', '.join(TRIAL_STATES)}"
            )
        number = values["number"]
        if number in self.numbers:
            raise _line_error(lineno, f"study {self.section!r} has two trials numbered {number}")
        self.numbers.add(number)
        if state == "running":
            state = values["state"] = "interrupted"
            values["error"] = IMPORTED_RUNNING_ERROR
            if values.get("finished_at") is None:
                values["finished_at"] = self.now
            self.n_interrupted += 1
        values["study_id"] = self.section_id
        values["architecture_id"] = arch_id
        key = (self.section_id, arch_id, values["fidelity"])
        ref = obj.get("reused_from")
        if ref is not None and (isinstance(ref, bool) or not isinstance(ref, int)):
            raise _line_error(
                lineno, f"the trial's reused_from must be a trial id or null, got {ref!r}"
            )
        if (ref is not None and ref in self.pending_ids) or key in self.pending_keys:
            self._flush_trials()
        note: tuple[str, Any] | None = None
        values["reused_from"] = None
        if ref is None:
            if state == "complete":
                anchor = self.anchors.get(key)
                if anchor is not None:
                    # a second evaluation (from a database without the unique index):
                    # it becomes a reuse of the first, as schema upgrade 0002 does
                    values["reused_from"] = anchor
                    note = ("demoted", anchor)
                else:
                    self.pending_keys.add(key)
                    note = ("anchor", key)
        elif ref in self.trial_ids:
            values["reused_from"] = self._root(self.trial_ids[ref])
        else:  # a trial later in the file, or not in it: resolved at the end
            if state == "complete":
                values["state"] = "interrupted"  # not an evaluation while it is pending
            note = ("pending", _Deferred(0, state, ref, key))
        self.pending_trials.append((file_id, values, note))
        self.pending_ids.add(file_id)
        if len(self.pending_trials) >= _BATCH:
            self._flush_trials()

    def _root(self, new_id: int) -> int:
        return self.demoted.get(new_id, new_id)

    def _metric(self, lineno: int, obj: dict[str, Any]) -> None:
        if not self._in_section(lineno, "metric"):
            return
        trial_id = self._file_trial(lineno, obj, "metric")
        values = self.read_metric(obj, lineno)
        values["trial_id"] = trial_id
        self.pending_metrics.append(values)
        if len(self.pending_metrics) >= 5 * _BATCH:
            self._flush_metrics()

    def _weights(self, lineno: int, obj: dict[str, Any]) -> None:
        if not self._in_section(lineno, "weights"):
            return
        trial_id = self._file_trial(lineno, obj, "weights")
        if trial_id in self.with_weights:
            raise _line_error(lineno, f"trial {obj['trial']} has a second weights line")
        values = self.read_weights(obj, lineno)
        values["trial_id"] = trial_id
        self.conn.execute(insert(self.we), values)
        self.with_weights.add(trial_id)
        self.n_weights += 1

    def _pareto(self, lineno: int, obj: dict[str, Any]) -> None:
        if not self._in_section(lineno, "pareto"):
            return
        if obj.get("study") != self.section:
            raise _line_error(
                lineno, f"the Pareto row's study is {obj.get('study')!r}, but it is in the "
                f"section of study {self.section!r}"
            )
        trial_id = self._file_trial(lineno, obj, "pareto row")
        assert self.section_id is not None
        if (self.section_id, trial_id) in self.on_front:
            raise _line_error(lineno, f"trial {obj['trial']} is on the Pareto front twice")
        values = self.read_pareto(obj, lineno)
        values.update(study_id=self.section_id, trial_id=trial_id)
        self.conn.execute(insert(self.pa), values)
        self.on_front.add((self.section_id, trial_id))
        self.n_pareto += 1

    def _end(self, lineno: int, obj: dict[str, Any]) -> None:
        expected = obj.get("lines")
        if expected != self.lines:
            raise _line_error(
                lineno, f"the end line says the file has {expected!r} lines before it, but "
                f"{self.lines} were read: lines are missing or were added"
            )
        self.ended = True

    # ------------------------------------------------------------ batches

    def _insert_one(self, table: Table, values: dict[str, Any]) -> int:
        result = self.conn.execute(insert(table).returning(table.c.id), values)
        return int(result.scalar_one())

    def _flush_archs(self) -> None:
        if not self.pending_archs:
            return
        pending, self.pending_archs = self.pending_archs, {}
        hashes = sorted({h for _, h in pending})
        found = self.conn.execute(
            select(self.ar.c.id, self.ar.c.space_key, self.ar.c.hash).where(
                self.ar.c.hash.in_(hashes))
        ).all()
        for aid, sk, h in found:
            if (sk, h) in pending:
                self.arch_ids[(sk, h)] = int(aid)
                self.n_arch_reused += 1
                del pending[(sk, h)]
        if not pending:
            return
        # plain executemany, then one look-up: faster than RETURNING of many rows
        for group in _same_keys(list(pending.values())):
            self.conn.execute(insert(self.ar), group)
        inserted = self.conn.execute(
            select(self.ar.c.id, self.ar.c.space_key, self.ar.c.hash).where(
                self.ar.c.hash.in_(sorted({h for _, h in pending})))
        ).all()
        for aid, sk, h in inserted:
            if (sk, h) in pending:
                self.arch_ids[(sk, h)] = int(aid)
                self.n_arch_new += 1

    def _flush_trials(self) -> None:
        if not self.pending_trials:
            return
        pending, self.pending_trials = self.pending_trials, []
        self.pending_ids.clear()
        self.pending_keys.clear()
        rows = [values for _, values, _ in pending]
        for group in _same_keys(rows):
            self.conn.execute(insert(self.tr), group)
        # the batch is of one new study, whose numbers are unique: their ids by number
        tr = self.tr
        by_number = {int(n): int(i) for i, n in self.conn.execute(
            select(tr.c.id, tr.c.number).where(
                tr.c.study_id == rows[0]["study_id"],
                tr.c.number.in_([values["number"] for values in rows])))}
        for file_id, values, note in pending:
            new_id = by_number[values["number"]]
            self.trial_ids[file_id] = new_id
            if note is None:
                continue
            what, arg = note
            if what == "anchor":
                self.anchors[arg] = new_id
            elif what == "demoted":
                self.demoted[new_id] = arg
            else:
                arg.new_id = new_id
                self.deferred.append(arg)
        self.n_trials += len(pending)

    def _flush_metrics(self) -> None:
        if not self.pending_metrics:
            return
        pending, self.pending_metrics = self.pending_metrics, []
        for group in _same_keys(pending):
            self.conn.execute(insert(self.me), group)
        self.n_metrics += len(pending)

    # ------------------------------------------------------------ end

    def finish(self) -> ImportSummary:
        self._flush_archs()
        self._flush_trials()
        self._flush_metrics()
        if not self.ended:
            raise ConfigError(
                f"the file ends after {self.lines} lines without its end line "
                '({"type": "end", ...}): it is truncated; export it again'
            )
        missing = [n for n in self.header_names if n not in self.seen_studies]
        if missing:
            raise ConfigError(
                f"the header lists stud{'y' if len(missing) == 1 else 'ies'} "
                f"{', '.join(map(repr, missing))}, which the file does not hold"
            )
        self._resolve_deferred()
        return ImportSummary(
            studies=tuple(self.imported),
            skipped=tuple(self.skipped),
            trials=self.n_trials,
            architectures_new=self.n_arch_new,
            architectures_reused=self.n_arch_reused,
            metrics=self.n_metrics,
            weights=self.n_weights,
            pareto=self.n_pareto,
            interrupted=self.n_interrupted,
            detached=self.n_detached,
        )

    def _resolve_deferred(self) -> None:
        """Set ``reused_from`` (and the real state) of trials whose reference was
        forward or outside the file: see the module docstring."""
        if not self.deferred:
            return
        fixes: list[dict[str, Any]] = []
        for d in sorted(self.deferred, key=lambda d: d.new_id):
            target = self.trial_ids.get(d.ref)
            if target is not None:
                ref: int | None = self._root(target)
            elif d.state != "complete":
                ref = None
                self.n_detached += 1
            else:
                ref = self.anchors.get(d.key)
                if ref is None:  # the first of its kind: the evaluation
                    self.anchors[d.key] = d.new_id
                self.n_detached += 1
            fixes.append({"tid": d.new_id, "new_state": d.state, "new_ref": ref})
        stmt = (
            update(self.tr)
            .where(self.tr.c.id == bindparam("tid"))
            .values(state=bindparam("new_state"), reused_from=bindparam("new_ref"))
        )
        for start in range(0, len(fixes), _BATCH):
            self.conn.execute(stmt, fixes[start:start + _BATCH])


def _same_keys(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Runs of consecutive rows with the same keys (one executemany each), in order."""
    run: list[dict[str, Any]] = []
    keys: frozenset[str] | None = None
    for row in rows:
        row_keys = frozenset(row)
        if run and row_keys != keys:
            yield run
            run = []
        keys = row_keys
        run.append(row)
    if run:
        yield run


__all__ = [
    "FORMAT",
    "ExportSummary",
    "ImportSummary",
    "export_studies",
    "import_studies",
]
