"""``naslab db import``: a file written by ``naslab db export`` read into a store.

:func:`import_studies` checks its arguments and the file's header, then feeds the
lines to an :class:`Importer` inside one write transaction of the target (all or
nothing). The importer follows the file's sections (one per study), checks each
line's references, re-maps ids, reuses stored architectures, and inserts rows in
batches; the trial lines go to a :class:`~naslab.db.transfer_trials.TrialImporter`.
The format and the import's rules are described in :mod:`naslab.db.transfer`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal

from sqlalchemy import Connection, Table, insert, select

from naslab.core.errors import ConfigError, StudyConflictError
from naslab.core.paths import check_name
from naslab.db.models import utcnow
from naslab.db.transfer_checks import RecordChecks
from naslab.db.transfer_format import (
    FORMAT,
    HEADER_TYPE,
    LINE_TYPES,
    RowReader,
    TransferTables,
    check_header,
    line_error,
    open_input,
    read_lines,
)
from naslab.db.transfer_trials import BATCH, TrialImporter, same_keys

if TYPE_CHECKING:
    from naslab.db.store import Store

__all__ = ["ON_CONFLICT", "ImportSummary", "Importer", "OnConflict", "import_studies"]

#: What :func:`import_studies` may do with a study the target already has.
OnConflict = Literal["error", "skip"]
ON_CONFLICT = ("error", "skip")


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_studies` stored.

    ``studies`` are the names the imported studies have in the target (after
    renaming); ``skipped`` the ones left out because the target already had them
    (``on_conflict="skip"``). ``architectures_new`` were inserted,
    ``architectures_reused`` were already stored. ``interrupted`` counts running
    trials imported as ``interrupted``; ``detached`` the trials whose
    ``reused_from`` named a trial outside the imported data (see
    :mod:`naslab.db.transfer`).
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


def import_studies(
    store: Store,
    source: str | os.PathLike[str] | IO[str],
    *,
    studies: Sequence[str] | None = None,
    rename: Mapping[str, str] | None = None,
    on_conflict: OnConflict = "error",
) -> ImportSummary:
    """Import the studies of a file written by
    :func:`~naslab.db.transfer.export_studies` into ``store``.

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
    trials imported as ``interrupted``; see :mod:`naslab.db.transfer` for trials
    reused from trials outside the file.
    """
    store.database.check_open()
    if on_conflict not in ON_CONFLICT:
        raise ConfigError(
            f"on_conflict must be one of {', '.join(ON_CONFLICT)}, got {on_conflict!r}"
        )
    if isinstance(studies, str):
        studies = [studies]
    renames = _checked_renames(rename)
    with open_input(source) as fh:
        lines = read_lines(fh)
        header_no, header = next(lines, (0, None))
        in_file = check_header(header, header_no)
        assert header is not None
        external = _external_trials(header, header_no)
        selected = in_file if studies is None else list(dict.fromkeys(studies))
        targets = _target_names(in_file, selected, renames)
        with store.database.writing("import studies") as conn:
            importer = Importer(conn, TransferTables.of_schema(), in_file, targets,
                                fmt=int(header["format"]), external=external)
            existing = importer.existing_names(list(targets.values()))
            if existing and on_conflict == "error":
                raise StudyConflictError(_conflict_message(existing, targets, store.url))
            importer.skip(existing)
            for lineno, obj in lines:
                importer.handle(lineno, obj)
            return importer.finish()


def _external_trials(header: Mapping[str, Any], lineno: int) -> set[int] | None:
    """The trial ids outside the file that its trials may reuse (format 2); None
    for format 1, which does not list them (its outside references are detached)."""
    if header["format"] < 2:
        return None
    ids = header.get("external_trials")
    if not isinstance(ids, list) or not all(type(i) is int for i in ids):
        raise line_error(lineno, "the header's external_trials must be a list of trial ids")
    return set(ids)


def _checked_renames(rename: Mapping[str, str] | None) -> dict[str, str]:
    renames = dict(rename or {})
    for old, new in renames.items():
        if not isinstance(old, str) or not isinstance(new, str) or not new.strip():
            raise ConfigError(
                f"rename maps study names to new non-empty names; got {old!r} -> {new!r}"
            )
    return renames


def _target_names(in_file: list[str], selected: list[str], renames: Mapping[str, str],
                  ) -> dict[str, str]:
    """{name in the file: name in the target} of the studies to import; ConfigError
    for names the file lacks, renames of studies not imported, or clashes."""
    missing = [n for n in selected if n not in in_file]
    if missing:
        raise ConfigError(
            f"the file has no stud{'y' if len(missing) == 1 else 'ies'} "
            f"{', '.join(map(repr, missing))}; it holds: {', '.join(in_file) or 'none'}"
        )
    bad_renames = [n for n in renames if n not in selected]
    if bad_renames:
        raise ConfigError(
            f"cannot rename {', '.join(map(repr, bad_renames))}: not among the studies "
            f"to import ({', '.join(selected) or 'none'})"
        )
    targets = {n: renames.get(n, n) for n in selected}
    for old, new in targets.items():  # a name becomes a file name on export
        try:
            check_name("study name", new)
        except ConfigError as exc:
            hint = "" if old != new else f"; import it under another with --rename {old}=NEW"
            raise ConfigError(f"{exc}{hint}") from None
    names = list(targets.values())
    clashes = sorted({t for t in names if names.count(t) > 1})
    if clashes:
        raise ConfigError(
            f"several studies would be imported as {', '.join(map(repr, clashes))}; "
            "rename them to distinct names"
        )
    return targets


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


class Importer:
    """The state of one import: the current section, id maps, pending batches, counts.

    Args:
        conn: a connection in the import's write transaction.
        tables: the tables to insert into.
        header_names: the studies the file's header lists.
        targets: {name in the file: name in the target} of the studies to import.
    """

    def __init__(self, conn: Connection, tables: TransferTables, header_names: list[str],
                 targets: Mapping[str, str], *, fmt: int = FORMAT,
                 external: set[int] | None = None) -> None:
        self.conn = conn
        self.checks = RecordChecks(fmt)
        self.tables = tables
        self.header_names = header_names
        self.read_study = RowReader(tables.studies, "study")
        self.read_arch = RowReader(tables.architectures, "architecture")
        self.read_metric = RowReader(tables.metrics, "metric", ("id", "trial_id"))
        self.read_weights = RowReader(tables.weights, "weights", ("trial_id", "sha256"))
        self.read_pareto = RowReader(tables.pareto, "pareto row", ("study_id", "trial_id"))
        self.trials = TrialImporter(conn, tables.trials, utcnow(), external)
        self.selected = set(targets)
        self.targets = dict(targets)
        self.skipped: list[str] = []
        self.imported: list[str] = []
        self.seen_studies: set[str] = set()
        # the current section
        self.section: str | None = None
        self.section_id: int | None = None
        self.skip_section = False
        # architectures: (space_key, hash) -> new id, and those not inserted yet
        self.arch_ids: dict[tuple[str, str], int] = {}
        self.pending_archs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pending_metrics: list[dict[str, Any]] = []
        self.with_weights: set[int] = set()
        self.on_front: set[tuple[int, int]] = set()
        # counts
        self.lines = 1  # the header
        self.ended = False
        self.n_metrics = self.n_weights = self.n_pareto = 0
        self.n_arch_new = self.n_arch_reused = 0
        #: The other line types, after the architectures and trials before them are in.
        self.handlers: dict[str, Callable[[int, dict[str, Any]], None]] = {
            "study": self._study, "metric": self._metric, "weights": self._weights,
            "pareto": self._pareto}

    # ------------------------------------------------------------ setup

    def existing_names(self, names: list[str]) -> list[str]:
        """Those of ``names`` that the target has already, in order."""
        if not names:
            return []
        st = self.tables.studies
        found = set(self.conn.execute(select(st.c.name).where(st.c.name.in_(names))).scalars())
        return [n for n in names if n in found]

    def skip(self, target_names: list[str]) -> None:
        """Leave out the studies to be imported as ``target_names``."""
        for old, new in self.targets.items():
            if new in target_names:
                self.skipped.append(new)
                self.selected.discard(old)

    # ------------------------------------------------------------ lines

    def handle(self, lineno: int, obj: dict[str, Any]) -> None:
        """Take the line ``obj`` (number ``lineno``; it has a ``type``)."""
        kind = obj["type"]
        if self.ended:
            raise line_error(lineno, "follows the end line; a naslab export ends with it")
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
        self.trials.flush()
        handler = self.handlers.get(kind)
        if handler is not None:
            handler(lineno, obj)
        elif kind == HEADER_TYPE:
            raise line_error(
                lineno, "is a second header; import each export file on its own "
                "(concatenated files are not supported)"
            )
        else:
            raise line_error(
                lineno, f"has unknown type {kind!r}; a naslab export (format {FORMAT}) has "
                f"lines of type: {', '.join(LINE_TYPES)}"
            )

    def _in_section(self, lineno: int, kind: str) -> bool:
        """Whether the line's section is imported (False: a skipped study)."""
        if self.section is None:
            raise line_error(lineno, f"a {kind} line comes before any study line")
        return not self.skip_section

    def _check_study(self, lineno: int, obj: Mapping[str, Any], kind: str) -> None:
        if obj.get("study") != self.section:
            raise line_error(
                lineno, f"the {kind}'s study is {obj.get('study')!r}, but it is in the "
                f"section of study {self.section!r}"
            )

    def _file_trial(self, lineno: int, obj: Mapping[str, Any], kind: str) -> int:
        """The new id of the trial that the line's ``trial`` names."""
        ref = obj.get("trial")
        if isinstance(ref, bool) or not isinstance(ref, int):
            raise line_error(lineno, f"the {kind}'s trial must be a trial id of the file, "
                             f"got {ref!r}")
        new = self.trials.ids.get(ref)
        if new is None:
            raise line_error(
                lineno, f"the {kind} refers to trial {ref}, which no trial line of study "
                f"{self.section!r} before it gives"
            )
        return new

    def _study(self, lineno: int, obj: dict[str, Any]) -> None:
        self._flush_metrics()
        name = obj.get("name")
        if not isinstance(name, str) or name not in self.header_names:
            raise line_error(
                lineno, f"study {name!r} is not among the studies the header lists "
                f"({', '.join(self.header_names) or 'none'})"
            )
        if name in self.seen_studies:
            raise line_error(lineno, f"study {name!r} appears twice")
        self.seen_studies.add(name)
        self.section = name
        self.trials.new_study()
        self.skip_section = name not in self.selected
        if self.skip_section:
            self.section_id = None
            return
        target = self.targets[name]
        values = self.read_study({**obj, "name": target}, lineno)
        self.checks.study_line(lineno, values)
        self.section_id = self._insert_one(self.tables.studies, values)
        self.imported.append(target)

    def _architecture(self, lineno: int, obj: dict[str, Any]) -> None:
        if not self._in_section(lineno, "architecture"):
            return
        values = self.read_arch(obj, lineno)
        self.checks.architecture_line(lineno, values)
        key = (values["space_key"], values["hash"])
        if key in self.arch_ids or key in self.pending_archs:
            return
        self.pending_archs[key] = values
        if len(self.pending_archs) >= BATCH:
            self._flush_archs()

    def _trial(self, lineno: int, obj: dict[str, Any]) -> None:
        if not self._in_section(lineno, "trial"):
            self.trials.elsewhere(obj.get("id"))
            return
        assert self.section_id is not None
        self._check_study(lineno, obj, "trial")
        file_id = obj.get("id")
        if isinstance(file_id, bool) or not isinstance(file_id, int):
            raise line_error(lineno, f"the trial's id must be an integer, got {file_id!r}")
        if self.trials.knows(file_id):
            raise line_error(lineno, f"trial id {file_id} appears twice")
        arch_id = self._trial_architecture(lineno, obj, file_id)
        arch_hash = obj["architecture"][1]
        self.trials.add(lineno, obj, file_id, self.section_id, arch_id,
                        check=lambda v: self.checks.trial_line(lineno, v, arch_hash))

    def _trial_architecture(self, lineno: int, obj: Mapping[str, Any], file_id: int) -> int:
        """The new id of the architecture a trial line names."""
        arch = obj.get("architecture")
        if (not isinstance(arch, list) or len(arch) != 2
                or not all(isinstance(a, str) for a in arch)):
            raise line_error(
                lineno, f"the trial's architecture must be [space_key, hash], got {arch!r}"
            )
        arch_id = self.arch_ids.get((arch[0], arch[1]))
        if arch_id is None:
            raise line_error(
                lineno, f"trial {file_id} refers to architecture {arch!r}, which no "
                "architecture line before it gives (the file is incomplete or corrupted)"
            )
        return arch_id

    def _metric(self, lineno: int, obj: dict[str, Any]) -> None:
        if not self._in_section(lineno, "metric"):
            return
        trial_id = self._file_trial(lineno, obj, "metric")
        values = self.read_metric(obj, lineno)
        self.checks.metric_line(lineno, values)
        values["trial_id"] = trial_id
        self.pending_metrics.append(values)
        if len(self.pending_metrics) >= 5 * BATCH:
            self._flush_metrics()

    def _weights(self, lineno: int, obj: dict[str, Any]) -> None:
        if not self._in_section(lineno, "weights"):
            return
        trial_id = self._file_trial(lineno, obj, "weights")
        if trial_id in self.with_weights:
            raise line_error(lineno, f"trial {obj['trial']} has a second weights line")
        values = self.read_weights(obj, lineno)
        self.checks.weights_line(lineno, obj, values)
        values["trial_id"] = trial_id
        self.conn.execute(insert(self.tables.weights), values)
        self.with_weights.add(trial_id)
        self.n_weights += 1

    def _pareto(self, lineno: int, obj: dict[str, Any]) -> None:
        if not self._in_section(lineno, "pareto"):
            return
        self._check_study(lineno, obj, "Pareto row")
        trial_id = self._file_trial(lineno, obj, "pareto row")
        assert self.section_id is not None
        if (self.section_id, trial_id) in self.on_front:
            raise line_error(lineno, f"trial {obj['trial']} is on the Pareto front twice")
        values = self.read_pareto(obj, lineno)
        values.update(study_id=self.section_id, trial_id=trial_id)
        self.conn.execute(insert(self.tables.pareto), values)
        self.on_front.add((self.section_id, trial_id))
        self.n_pareto += 1

    def _end(self, lineno: int, obj: dict[str, Any]) -> None:
        expected = obj.get("lines")
        if expected != self.lines:
            raise line_error(
                lineno, f"the end line says the file has {expected!r} lines before it, but "
                f"{self.lines} were read: lines are missing or were added"
            )
        self.ended = True

    # ------------------------------------------------------------ batches

    def _insert_one(self, table: Table, values: dict[str, Any]) -> int:
        result = self.conn.execute(insert(table).returning(table.c.id), values)
        return int(result.scalar_one())

    def _stored_archs(self, keys: Iterable[tuple[str, str]]) -> list[tuple[int, str, str]]:
        """(id, space_key, hash) of the stored architectures with these keys' hashes."""
        ar = self.tables.architectures
        hashes = sorted({h for _, h in keys})
        found = self.conn.execute(
            select(ar.c.id, ar.c.space_key, ar.c.hash).where(ar.c.hash.in_(hashes))).all()
        return [(int(aid), sk, h) for aid, sk, h in found]

    def _flush_archs(self) -> None:
        """Look up the pending architectures; insert those not stored yet."""
        if not self.pending_archs:
            return
        pending, self.pending_archs = self.pending_archs, {}
        for aid, sk, h in self._stored_archs(list(pending)):
            if (sk, h) in pending:
                self.arch_ids[(sk, h)] = aid
                self.n_arch_reused += 1
                del pending[(sk, h)]
        if not pending:
            return
        # plain executemany, then one look-up: faster than RETURNING of many rows
        for group in same_keys(list(pending.values())):
            self.conn.execute(insert(self.tables.architectures), group)
        for aid, sk, h in self._stored_archs(list(pending)):
            if (sk, h) in pending:
                self.arch_ids[(sk, h)] = aid
                self.n_arch_new += 1

    def _flush_metrics(self) -> None:
        if not self.pending_metrics:
            return
        pending, self.pending_metrics = self.pending_metrics, []
        for group in same_keys(pending):
            self.conn.execute(insert(self.tables.metrics), group)
        self.n_metrics += len(pending)

    # ------------------------------------------------------------ end

    def finish(self) -> ImportSummary:
        """Insert what is pending, check that the file was complete, resolve the
        deferred reuse links; what was imported."""
        self._flush_archs()
        self.trials.flush()
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
        self.trials.resolve_deferred()
        trials = self.trials
        return ImportSummary(
            studies=tuple(self.imported),
            skipped=tuple(self.skipped),
            trials=trials.n_trials,
            architectures_new=self.n_arch_new,
            architectures_reused=self.n_arch_reused,
            metrics=self.n_metrics,
            weights=self.n_weights,
            pareto=self.n_pareto,
            interrupted=trials.n_interrupted,
            detached=trials.n_detached,
        )
