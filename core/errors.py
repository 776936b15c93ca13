"""The exceptions naslab raises.

Every error that naslab raises on purpose derives from :class:`NaslabError`, so a
caller can catch them all at once. User input is checked where it enters (CLI,
config, Python API) and refused with a message that says what was wrong and what is
accepted.
"""

from __future__ import annotations

from collections.abc import Iterable


class NaslabError(Exception):
    """Root of every error naslab raises on purpose."""


class InvalidArchitectureError(NaslabError, ValueError):
    """An architecture (its decisions or its graph) is not valid in its space."""


class UnknownNameError(NaslabError, KeyError):
    """A name (space, task, searcher, ...) is not one of the known choices."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.choices = sorted(choices)
        super().__init__(
            f"unknown {kind} {name!r}; choose one of: {', '.join(self.choices)}"
        )

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class ConfigError(NaslabError, ValueError):
    """A configuration value (budget, seed, URL, epochs, ...) is out of range."""


class StorageError(NaslabError):
    """The store could not be opened, or a database operation failed."""


class ClaimError(StorageError):
    """An architecture is already being evaluated (or was evaluated) in the study at
    that fidelity: the store refuses a second evaluation. ``trial_id`` is the
    trial that holds the claim."""

    def __init__(self, message: str, trial_id: int) -> None:
        super().__init__(message)
        self.trial_id = trial_id


class StudyConflictError(NaslabError):
    """A study of that name exists with settings that differ from the ones asked."""


class QueryError(NaslabError):
    """A read-only SQL query was refused or failed; the message is the database's."""


class EvaluationError(NaslabError):
    """An evaluation of an architecture failed (the message says why)."""

