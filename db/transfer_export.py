"""``naslab db export``: studies of a store written as JSON lines.

:func:`export_studies` reads the chosen studies in one transaction (a consistent
snapshot; ``REPEATABLE READ`` on PostgreSQL) and streams each study's section
(:func:`write_study`) in chunks, so that a large study is never held in memory.
The format is described in :mod:`naslab.db.transfer`.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, select
from sqlalchemy.exc import SQLAlchemyError

from naslab.core.errors import ConfigError
from naslab.core.paths import atomic_file, checked_destination
from naslab.core.version import __version__
from naslab.db.models import utcnow
from naslab.db.transfer_format import (
    FORMAT,
    HEADER_TYPE,
    TransferTables,
    dumps_line,
    open_output,
    row_to_json,
    to_json_value,
)

if TYPE_CHECKING:
    from naslab.db.store import Store

__all__ = ["ExportSummary", "LineWriter", "export_studies", "write_study"]

#: Rows fetched at a time while streaming a table.
ROWS_PER_FETCH = 1000
#: Weights rows (large blobs) fetched at a time.
BLOBS_PER_FETCH = 16


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


class LineWriter:
    """Writes the lines of a file, counting them and each line type."""

    def __init__(self, fh: IO[str]) -> None:
        self.fh = fh
        self.lines = 0
        self.counts: dict[str, int] = {}

    def write(self, obj: Mapping[str, Any]) -> None:
        """Write ``obj`` (which has a ``type``) as one line."""
        self.fh.write(dumps_line(obj))
        self.fh.write("\n")
        self.lines += 1
        kind = str(obj["type"])
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def summary(self, path: str | None, studies: Sequence[str]) -> ExportSummary:
        """What was written to ``path`` (None: an open file)."""
        counts = self.counts
        return ExportSummary(
            path=path,
            studies=tuple(studies),
            trials=counts.get("trial", 0),
            architectures=counts.get("architecture", 0),
            metrics=counts.get("metric", 0),
            weights=counts.get("weights", 0),
            pareto=counts.get("pareto", 0),
            lines=self.lines,
        )


def export_studies(
    store: Store,
    out: str | os.PathLike[str] | IO[str],
    studies: Sequence[str] | None = None,
    *,
    weights: bool = True,
    force: bool = False,
) -> ExportSummary:
    """Write studies of ``store`` to ``out`` as JSON lines (see :mod:`naslab.db.transfer`).

    Args:
        store: the store to read.
        out: a file path (gzip-compressed when it ends with ``.gz``; written to a
            temporary file next to it first, which becomes ``out`` once complete) or
            an open text file. A path must be a new file, or an existing regular file
            with ``force``: a link, a device, a FIFO or a folder is refused (see
            :func:`naslab.core.paths.checked_destination`).
        studies: names of the studies to export; default: all, oldest first.
        weights: include trained weights (base64); they are most of the size.
        force: replace an existing file ``out``.

    Returns:
        What was written.

    Raises:
        ConfigError: an unknown study name, or ``out`` is not a destination naslab may
            write.
        StorageError: the database could not be read, or ``out`` could not be written
            (a full disk: ``out`` is left as it was).

    The studies are read in one transaction (a consistent snapshot), streamed in
    chunks: a large study is never held in memory.
    """
    database = store.database
    database.check_open()
    if isinstance(out, (str, os.PathLike)):  # refused before the database is read
        checked_destination(out, kind="file", force=force)
    if isinstance(studies, str):
        studies = [studies]
    tables = TransferTables.of_schema()
    try:
        with database.connect() as conn:
            if database.dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                chosen = _chosen_studies(conn, tables, studies, store.url)
                with _output(out, force) as (fh, path):
                    writer = LineWriter(fh)
                    writer.write(_header(database.dialect, [name for _, name in chosen],
                                         _external_trials(conn, tables, chosen)))
                    for study_id, name in chosen:
                        write_study(conn, tables, writer, study_id, name, with_weights=weights)
                    writer.write({"type": "end", "lines": writer.lines})
    except SQLAlchemyError as exc:
        raise database.error("export studies", exc) from exc
    return writer.summary(path, [name for _, name in chosen])


@contextlib.contextmanager
def _output(out: str | os.PathLike[str] | IO[str], force: bool,
            ) -> Iterator[tuple[IO[str], str | None]]:
    """The text file to write and its path: an open file as is; a path through
    :func:`~naslab.core.paths.atomic_file` (gzip when it ends with ``.gz``)."""
    if not isinstance(out, (str, os.PathLike)):
        with open_output(out) as pair:
            yield pair
        return
    shown = str(Path(out).expanduser())
    with atomic_file(out, force=force) as tmp:
        if shown.endswith(".gz"):
            fh: IO[str] = gzip.open(tmp, "wt", encoding="utf-8", newline="\n")
        else:
            fh = open(tmp, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        with fh:
            yield fh, shown


def _chosen_studies(conn: Connection, tables: TransferTables, names: Sequence[str] | None,
                    url: str) -> list[tuple[int, str]]:
    """(id, name) of the studies to export, oldest first; ConfigError for unknown
    names."""
    st = tables.studies
    rows = [(int(sid), name) for sid, name in
            conn.execute(select(st.c.id, st.c.name).order_by(st.c.id))]
    if names is None:
        return rows
    stored = [name for _, name in rows]
    unknown = [n for n in names if n not in stored]
    if unknown:
        raise ConfigError(
            f"no stud{'y' if len(unknown) == 1 else 'ies'} named "
            f"{', '.join(map(repr, unknown))} in {url}; stored studies: "
            f"{', '.join(stored) or 'none'}"
        )
    wanted = set(names)
    return [(sid, name) for sid, name in rows if name in wanted]


def _external_trials(conn: Connection, tables: TransferTables,
                     chosen: Sequence[tuple[int, str]]) -> list[int]:
    """Ids of the trials outside the chosen studies that their trials reused (the
    header lists them, so that an import can tell them from dangling references)."""
    tr = tables.trials
    ids = [sid for sid, _ in chosen]
    inside = select(tr.c.id).where(tr.c.study_id.in_(ids))
    return sorted(int(r) for r in conn.execute(
        select(tr.c.reused_from).distinct().where(
            tr.c.study_id.in_(ids), tr.c.reused_from.is_not(None),
            tr.c.reused_from.not_in(inside))).scalars())


def _header(dialect: str, names: list[str], external: list[int]) -> dict[str, Any]:
    return {
        "type": HEADER_TYPE,
        "format": FORMAT,
        "naslab_version": __version__,
        "exported_at": to_json_value(utcnow()),
        "dialect": dialect,
        "studies": names,
        "external_trials": external,
    }


def _stream(conn: Connection, statement: Select[Any], per_fetch: int = ROWS_PER_FETCH,
            ) -> Iterator[Any]:
    result = conn.execute(statement.execution_options(yield_per=per_fetch))
    yield from result.mappings()


def write_study(conn: Connection, tables: TransferTables, writer: LineWriter, study_id: int,
                name: str, *, with_weights: bool) -> None:
    """Write the section of study ``name`` (id ``study_id``): its study line, the
    architectures its trials use, its trials, metrics, weights (if ``with_weights``)
    and Pareto rows."""
    st, ar, tr = tables.studies, tables.architectures, tables.trials
    study_row = conn.execute(select(st).where(st.c.id == study_id)).mappings().one()
    writer.write({"type": "study", **row_to_json(st, study_row, ("id",))})
    used = select(tr.c.architecture_id).where(tr.c.study_id == study_id)
    for row in _stream(conn, select(ar).where(ar.c.id.in_(used)).order_by(ar.c.id)):
        writer.write({"type": "architecture", **row_to_json(ar, row, ("id",))})
    _write_trials(conn, tables, writer, study_id, name)
    _write_trial_data(conn, tables, writer, study_id, name, with_weights)


def _write_trials(conn: Connection, tables: TransferTables, writer: LineWriter, study_id: int,
                  name: str) -> None:
    ar, tr = tables.architectures, tables.trials
    sk, hs = "naslab_arch_space_key_", "naslab_arch_hash_"
    trials = (
        select(tr, ar.c.space_key.label(sk), ar.c.hash.label(hs))
        .join(ar, ar.c.id == tr.c.architecture_id)
        .where(tr.c.study_id == study_id)
        .order_by(tr.c.number, tr.c.id)
    )
    for row in _stream(conn, trials):
        line = {"type": "trial", "id": row["id"], "study": name,
                "architecture": [row[sk], row[hs]]}
        line.update(row_to_json(tr, row, ("id", "study_id", "architecture_id")))
        writer.write(line)


def _write_trial_data(conn: Connection, tables: TransferTables, writer: LineWriter,
                      study_id: int, name: str, with_weights: bool) -> None:
    """The metric, weights and Pareto lines of the study's trials."""
    tr, me, we, pa = tables.trials, tables.metrics, tables.weights, tables.pareto
    in_study = select(tr.c.id).where(tr.c.study_id == study_id)
    metrics = select(me).where(me.c.trial_id.in_(in_study)).order_by(me.c.trial_id, me.c.id)
    for row in _stream(conn, metrics):
        writer.write({"type": "metric", "trial": row["trial_id"],
                      **row_to_json(me, row, ("id", "trial_id"))})
    if with_weights:
        blobs = select(we).where(we.c.trial_id.in_(in_study)).order_by(we.c.trial_id)
        for row in _stream(conn, blobs, BLOBS_PER_FETCH):
            writer.write({"type": "weights", "trial": row["trial_id"],
                          **row_to_json(we, row, ("trial_id",))})
    front = select(pa).where(pa.c.study_id == study_id).order_by(pa.c.trial_id)
    for row in _stream(conn, front):
        writer.write({"type": "pareto", "study": name, "trial": row["trial_id"],
                      **row_to_json(pa, row, ("study_id", "trial_id"))})
