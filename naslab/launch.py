"""How a study was launched, stored with it, and how a resume reads it back.

A study's stored config holds ``launch``: the space and task as they were named
(a registered name or a code reference, see :mod:`naslab.core.references`) with
their options, the training options, the searcher and its options, the epochs, the
seed, the objectives and the scheduler. ``naslab search --study NAME`` with no other
flag rebuilds the study from it; a flag that is given wins, and one that contradicts
what the stored results were made with is refused by :meth:`naslab.Study.prepare`
(:class:`~naslab.core.errors.StudyConflictError`).

A code reference read back from the store is loaded only if its source file still
has the SHA-256 it had when the study was made (:func:`naslab.core.references.check_digest`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from naslab.core.errors import ConfigError
from naslab.core.references import (
    absolute_reference,
    check_digest,
    is_reference,
    reference_of,
    source_digest,
)

__all__ = ["StoredLaunch", "launch_record", "stored_launch"]


def _plain(value: Any) -> Any:
    """``value`` as JSON reads it back, or None if it is not JSON (an object)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return None


def _named(arg: Any) -> str | None:
    """How a component can be named again: the name or reference it was given as (a
    file reference made absolute), a reference to the class of an object, or None."""
    if isinstance(arg, str):
        return absolute_reference(arg) if is_reference(arg) else arg
    return None if arg is None else reference_of(arg)


def launch_record(space_arg: Any, space_options: Mapping[str, Any] | None,
                  task_arg: Any, task_options: Mapping[str, Any] | None,
                  evaluator_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The launch settings of a study's space (a name, a reference or a ready space)
    and task (the application adds the searcher, epochs, seed, objectives and
    scheduler)."""
    space_ref = _named(space_arg)
    record: dict[str, Any] = {
        "space": space_ref,
        # options of a ready object are unknown; its config() is what made it
        "space_options": _plain(dict(space_options or {}))
        if isinstance(space_arg, str) else None,
        "task": _named(task_arg) if isinstance(task_arg, str) else None,
        "task_options": _plain(dict(task_options or {})),
        "train_options": _plain(dict(evaluator_options or {})),
    }
    if isinstance(space_ref, str) and is_reference(space_ref):
        record["space_sha256"] = source_digest(space_ref)
    if isinstance(record["task"], str) and is_reference(record["task"]):
        record["task_sha256"] = source_digest(record["task"])
    return record


@dataclass
class StoredLaunch:
    """The settings to resume a study with, read from its stored launch record (or,
    for a study stored before launch records, from its columns)."""

    space: str | None = None
    space_options: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    task_options: dict[str, Any] = field(default_factory=dict)
    train_options: dict[str, Any] = field(default_factory=dict)
    searcher: str | None = None
    searcher_options: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    seed: int | None = None
    budget: int | None = None
    objectives: list[str] | None = None
    scheduler: dict[str, Any] | None = None
    digests: dict[str, str | None] = field(default_factory=dict)

    def check_code(self, given_space: bool, given_task: bool) -> None:
        """Refuse stored code references (those not given again on the command line)
        whose source changed, or that name something other than a space or task
        class or a function of the user's own code (see :func:`check_stored_factory`)."""
        from naslab.search_spaces.base import SearchSpace
        from naslab.workers.evaluator import Evaluator
        from naslab.workers.task import Task

        if not given_space and self.space and is_reference(self.space):
            check_digest("space", self.space, self.digests.get("space"))
            check_stored_factory("space", self.space, (SearchSpace,))
        if not given_task and self.task and is_reference(self.task):
            check_digest("task", self.task, self.digests.get("task"))
            check_stored_factory("task", self.task, (Task, Evaluator))


def _installed(path: str | None) -> bool:
    """Whether ``path`` lies in the Python installation (standard library or
    site-packages) rather than in the user's own code."""
    import sysconfig
    from pathlib import Path

    if not path:
        return True
    where = Path(path).resolve()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        root = sysconfig.get_paths().get(key)
        if root and where.is_relative_to(Path(root).resolve()):
            return True
    return False


def check_stored_factory(kind: str, ref: str, bases: tuple[type, ...]) -> None:
    """Refuse a stored reference that would call something other than a class of
    ``bases`` or a Python function of the user's own code: whoever can write the
    database must not make ``naslab search --study NAME`` call ``os.system`` or
    ``subprocess.run`` with stored options. A reference given on the command line
    again is the user's own choice and is not checked here."""
    import inspect

    from naslab.core.references import load_reference

    obj = load_reference(kind, ref)
    if isinstance(obj, bases) or (isinstance(obj, type) and issubclass(obj, bases)):
        return
    if inspect.isfunction(obj) and not _installed(inspect.getsourcefile(obj)):
        return
    raise ConfigError(
        f"the {kind} stored with this study ({ref}) names {type(obj).__name__} "
        f"{getattr(obj, '__qualname__', obj)!r}, not a {kind} class or a function of your "
        f"own code; give --{kind} {ref} again if you mean it")


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def stored_launch(info: Any) -> StoredLaunch:
    """The resume settings of a stored study (:class:`~naslab.db.records.StudyInfo`)."""
    config = info.config if isinstance(info.config, Mapping) else {}
    launch = config.get("launch")
    out = StoredLaunch(searcher=info.searcher, epochs=info.fidelity, seed=info.seed,
                       budget=info.budget, searcher_options=_dict(config.get("searcher_options")),
                       objectives=config.get("objectives"), scheduler=config.get("scheduler"))
    if not isinstance(launch, Mapping):  # a study stored before launch records
        out.space = info.space
        out.space_options = _dict(info.space_config)
        return out
    for key in ("space", "task"):
        value = launch.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"study {info.name!r}: its stored {key} {value!r} is not a name "
                              "or a reference")
        setattr(out, key, value)
        out.digests[key] = launch.get(f"{key}_sha256")
    if out.space is None:
        out.space = info.space
    out.space_options = (_dict(launch.get("space_options"))
                         if launch.get("space_options") is not None else _dict(info.space_config))
    out.task_options = _dict(launch.get("task_options"))
    out.train_options = _dict(launch.get("train_options"))
    return out
