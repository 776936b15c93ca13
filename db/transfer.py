"""Export studies from a store to JSON lines, and import them into another store.

:func:`export_studies` writes one JSON object per line (gzip-compressed when the
file name ends with ``.gz``)::

    {"type": "naslab-export", "format": 2, "naslab_version": "0.1.0",
     "exported_at": "2026-01-01T12:00:00+00:00", "dialect": "sqlite",
     "studies": ["a", "b"], "external_trials": [3]}
    {"type": "study", "name": "a", "space": ..., ...}        # naslab_studies, no id
    {"type": "architecture", "space_key": ..., "hash": ..., ...}   # no id
    {"type": "trial", "id": 7, "study": "a", "architecture": [space_key, hash],
     "number": 0, "state": "complete", "reused_from": null, ...}
    {"type": "metric", "trial": 7, "name": "val_accuracy", "step": null, "value": 0.8}
    {"type": "weights", "trial": 7, "format": "safetensors", "data": "<base64>",
     "sha256": "<64 hex digits of data>"}
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
fidelity (from a database older than the claims of concurrent drivers) is kept as
an ``interrupted`` reuse of the first, as schema upgrades 0002 and 0003 do. So an
import never adds a second running or complete trial of an architecture to a study
and fidelity (the partial unique index ``uq_naslab_trials_one_evaluation``).

Every record is checked as strictly as a live search would
(:mod:`naslab.db.transfer_checks`): the study's space must be known to this naslab
(hashes and graphs are recomputed from the decisions), numbers finite, integers in
range, weights in naslab's format with a matching SHA-256 and finite values; a
``reused_from`` must name a trial of the file or one of the header's
``external_trials`` (format 2; format 1 files, without digests or that list, are
still read). Any bad record refuses the whole file, naming its line and field.

The code is split by concern: :mod:`naslab.db.transfer_format` (line types, value
conversion, row readers, files), :mod:`naslab.db.transfer_export` (writing),
:mod:`naslab.db.transfer_import` (reading a file into a store, all or nothing) and
:mod:`naslab.db.transfer_trials` (the trial lines of an import: states, reuse links,
batches). This module is their public API.
"""

from __future__ import annotations

from naslab.db.transfer_export import ExportSummary, export_studies
from naslab.db.transfer_format import FORMAT, HEADER_TYPE, LINE_TYPES
from naslab.db.transfer_import import ImportSummary, OnConflict, import_studies
from naslab.db.transfer_trials import IMPORTED_RUNNING_ERROR

__all__ = [
    "FORMAT",
    "HEADER_TYPE",
    "IMPORTED_RUNNING_ERROR",
    "LINE_TYPES",
    "ExportSummary",
    "ImportSummary",
    "OnConflict",
    "export_studies",
    "import_studies",
]
