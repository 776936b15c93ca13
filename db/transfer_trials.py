"""The trial lines of an import: states, ``reused_from`` links and batched inserts.

:class:`TrialImporter` takes the trial lines of the studies being imported, in file
order, and inserts them in batches. It keeps the map from the file's trial ids to
the new ones and applies the rules of :mod:`naslab.db.transfer`:

* a ``running`` trial is imported as ``interrupted`` (no driver in the target owns
  it), with :data:`IMPORTED_RUNNING_ERROR`;
* a ``reused_from`` naming a trial already imported is re-mapped (to the
  evaluation it points to, if that trial was demoted to a reuse);
* a second evaluation of an architecture in a study and fidelity becomes a reuse of
  the first, as schema upgrade 0002 does;
* a ``reused_from`` naming a trial later in the file or outside it is deferred:
  the trial is inserted ``interrupted`` (not an evaluation while it is pending)
  and :meth:`TrialImporter.resolve_deferred` sets its reference and real state at
  the end. One whose source is not in the imported data is "detached": the first
  complete one of a study, architecture and fidelity becomes the evaluation, later
  ones point to it (or to the study's own evaluation, if the file has one).

So an import never adds a second running or complete evaluation of an
architecture to a study and fidelity (the partial unique index
``uq_naslab_trials_one_evaluation``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update

from naslab.db.models import TRIAL_STATES
from naslab.db.transfer_format import RowReader, line_error

__all__ = ["BATCH", "DUPLICATE_ERROR", "IMPORTED_RUNNING_ERROR", "TrialImporter", "same_keys"]

#: What a running trial's ``error`` becomes when it is imported (as ``interrupted``).
IMPORTED_RUNNING_ERROR = "interrupted: imported while running"
#: The ``error`` of a trial imported as a second trial of its architecture, study and
#: fidelity (kept, interrupted, pointing at the first).
DUPLICATE_ERROR = ("interrupted: a second trial of this architecture in the study "
                   "(imported; the study holds each architecture once)")
#: Rows inserted per batch.
BATCH = 1000

#: (study id, architecture id, fidelity): what one evaluation is unique for.
EvaluationKey = tuple[int, int, int]


@dataclass
class _Deferred:
    """A trial whose ``reused_from`` names a trial not (yet) imported."""

    new_id: int
    state: str
    ref: int
    key: EvaluationKey
    lineno: int = 0


@dataclass(frozen=True)
class _Anchor:
    """The trial is the first evaluation of ``key`` in the file."""

    key: EvaluationKey


@dataclass(frozen=True)
class _Demoted:
    """The trial was a second evaluation; it now points to ``evaluation``."""

    evaluation: int


_Note = _Anchor | _Demoted | _Deferred | None


class TrialImporter:
    """The trials of one import (see the module docstring).

    Args:
        conn: the import's connection, in its transaction.
        table: the trials table.
        now: the time given to imported running trials as ``finished_at``.
    """

    def __init__(self, conn: Connection, table: Table, now: datetime,
                 external: set[int] | None = None) -> None:
        self.conn = conn
        #: Trial ids that a ``reused_from`` may name besides the imported ones: the
        #: header's external trials and those of studies of the file not imported
        #: (None: any, for format 1 files, which do not list them).
        self.outside = None if external is None else set(external)
        self.table = table
        self.now = now
        self.read = RowReader(table, "trial", ("id", "study_id", "architecture_id",
                                               "reused_from"))
        #: file id -> new id, of the trials inserted so far.
        self.ids: dict[int, int] = {}
        self.demoted: dict[int, int] = {}  # new id -> evaluation it now points to
        self.anchors: dict[EvaluationKey, int] = {}  # -> the evaluation's new id
        self.deferred: list[_Deferred] = []
        self.numbers: set[int] = set()  # of the current study
        self.pending: list[tuple[int, dict[str, Any], _Note]] = []
        self.pending_ids: set[int] = set()
        self.pending_keys: set[EvaluationKey] = set()
        self.n_trials = self.n_interrupted = self.n_detached = 0

    def new_study(self) -> None:
        """The next trials are of another study (their numbers start afresh)."""
        self.numbers = set()

    def elsewhere(self, file_id: Any) -> None:
        """A trial of the file in a study that is not imported."""
        if self.outside is not None and type(file_id) is int:
            self.outside.add(file_id)

    def knows(self, file_id: int) -> bool:
        """Whether a trial line with this file id was taken already."""
        return file_id in self.ids or file_id in self.pending_ids

    def add(self, lineno: int, obj: Mapping[str, Any], file_id: int, study_id: int,
            arch_id: int, check: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Take the trial line ``obj`` (number ``lineno``) of the study with new id
        ``study_id``, whose architecture has the new id ``arch_id``; ``check`` is
        given its column values first (and may refuse them)."""
        values = self._values(lineno, obj, check)
        values["study_id"] = study_id
        values["architecture_id"] = arch_id
        key = (study_id, arch_id, values["fidelity"])
        ref = obj.get("reused_from")
        if ref is not None and (isinstance(ref, bool) or not isinstance(ref, int)):
            raise line_error(
                lineno, f"the trial's reused_from must be a trial id or null, got {ref!r}"
            )
        if (ref is not None and ref in self.pending_ids) or key in self.pending_keys:
            self.flush()
        note = self._link(values, ref, key)
        if isinstance(note, _Deferred):
            note.lineno = lineno
        self.pending.append((file_id, values, note))
        self.pending_ids.add(file_id)
        if len(self.pending) >= BATCH:
            self.flush()

    def _values(self, lineno: int, obj: Mapping[str, Any],
                check: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
        """The line's column values, its state and number checked, a running trial
        made interrupted."""
        values = self.read(obj, lineno)
        state = values["state"]
        if state not in TRIAL_STATES:
            raise line_error(
                lineno, f"the trial's state {state!r} is not one of {', '.join(TRIAL_STATES)}"
            )
        if check is not None:
            check(values)
        number = values["number"]
        if number in self.numbers:
            raise line_error(lineno, f"study {obj.get('study')!r} has two trials numbered "
                             f"{number}")
        self.numbers.add(number)
        if state == "running":
            values["state"] = "interrupted"
            values["error"] = IMPORTED_RUNNING_ERROR
            if values.get("finished_at") is None:
                values["finished_at"] = self.now
            self.n_interrupted += 1
        return values

    def _link(self, values: dict[str, Any], ref: int | None, key: EvaluationKey) -> _Note:
        """Set ``values["reused_from"]`` (see the module docstring); what to note
        about the trial once it has its new id."""
        state = values["state"]
        values["reused_from"] = None
        if ref is not None and ref not in self.ids:
            # a trial later in the file, or not in it: resolved at the end
            if state == "complete":
                values["state"] = "interrupted"  # holds no slot while it is pending
            return _Deferred(0, state, ref, key)
        if ref is not None:
            values["reused_from"] = self._root(self.ids[ref])
        if state != "complete":
            return None
        anchor = self.anchors.get(key)
        if anchor is not None:
            # a second complete trial of the slot (from a database older than the
            # claims of schema 0003): kept, interrupted, as that upgrade does
            values["state"], values["error"] = "interrupted", DUPLICATE_ERROR
            if values["reused_from"] is None:
                values["reused_from"] = self._root(anchor)
            return _Demoted(values["reused_from"])
        self.pending_keys.add(key)
        return _Anchor(key)

    def _root(self, new_id: int) -> int:
        return self.demoted.get(new_id, new_id)

    def flush(self) -> None:
        """Insert the pending trials and note their new ids."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        self.pending_ids.clear()
        self.pending_keys.clear()
        rows = [values for _, values, _ in pending]
        for group in same_keys(rows):
            self.conn.execute(insert(self.table), group)
        # the batch is of one new study, whose numbers are unique: their ids by number
        tr = self.table
        by_number = {int(n): int(i) for i, n in self.conn.execute(
            select(tr.c.id, tr.c.number).where(
                tr.c.study_id == rows[0]["study_id"],
                tr.c.number.in_([values["number"] for values in rows])))}
        for file_id, values, note in pending:
            new_id = by_number[values["number"]]
            self.ids[file_id] = new_id
            if isinstance(note, _Anchor):
                self.anchors[note.key] = new_id
            elif isinstance(note, _Demoted):
                self.demoted[new_id] = note.evaluation
            elif isinstance(note, _Deferred):
                note.new_id = new_id
                self.deferred.append(note)
        self.n_trials += len(pending)

    def resolve_deferred(self) -> None:
        """Set ``reused_from`` (and the real state) of trials whose reference was
        forward or outside the file: see the module docstring."""
        if not self.deferred:
            return
        fixes: list[dict[str, Any]] = []
        for d in sorted(self.deferred, key=lambda d: d.new_id):
            target = self.ids.get(d.ref)
            if target is None and self.outside is not None and d.ref not in self.outside:
                raise line_error(
                    d.lineno, f"the trial's reused_from names trial {d.ref}, which is neither "
                    "in the file nor among the header's external_trials (a dangling "
                    "reference)")
            ref = None if target is None else self._root(target)
            self.n_detached += target is None
            state, error = d.state, None
            if d.state == "complete":
                anchor = self.anchors.get(d.key)
                if anchor is None:  # the first of its kind holds the slot
                    self.anchors[d.key] = d.new_id
                else:
                    state, error = "interrupted", DUPLICATE_ERROR
                    ref = ref if ref is not None else self._root(anchor)
            fixes.append({"tid": d.new_id, "new_state": state, "new_ref": ref,
                          "new_error": error})
        stmt = (
            update(self.table)
            .where(self.table.c.id == bindparam("tid"))
            .values(state=bindparam("new_state"), reused_from=bindparam("new_ref"),
                    error=func.coalesce(bindparam("new_error"), self.table.c.error))
        )
        for start in range(0, len(fixes), BATCH):
            self.conn.execute(stmt, fixes[start:start + BATCH])


def same_keys(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
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
