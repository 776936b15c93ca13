"""``naslab search``'s settings: the flags given, else those stored with the study
(so that ``naslab search --study NAME`` alone resumes it), else the defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from naslab.cli_common import err_console, fmt, parse_options
from naslab.core.references import is_reference

__all__ = ["DEFAULTS", "SearchFlags", "search_settings"]

#: What a new study gets for a flag that is not given.
DEFAULTS: dict[str, Any] = {"space": "nb201", "searcher": "evolution", "budget": 30, "seed": 0}


@dataclass
class SearchFlags:
    """The study-defining flags of ``naslab search`` as typed (None: not given)."""

    space: str | None = None
    task: str | None = None
    searcher: str | None = None
    budget: int | None = None
    epochs: int | None = None
    seed: int | None = None
    objectives: str | None = None
    space_opt: list[str] | None = None
    task_opt: list[str] | None = None
    searcher_opt: list[str] | None = None
    train_opt: list[str] | None = None
    scheduler: str | None = None
    scheduler_options: dict[str, int] | None = field(default=None)


def _stored(study: str | None, storage: str | None) -> Any:
    """The stored launch of ``study``, or None (no name given, no such study)."""
    if study is None:
        return None
    from naslab.db.store import Store
    from naslab.launch import stored_launch

    store = Store(storage)
    try:
        info = store.studies.get(study)
    finally:
        store.close()
    return None if info is None else stored_launch(info)


def search_settings(flags: SearchFlags, study: str | None, storage: str | None
                    ) -> dict[str, Any]:
    """Keyword arguments for :class:`naslab.Study` (besides name, storage and
    executor): each flag given, else the study's stored setting, else the default."""
    given = {
        "space": flags.space, "task": flags.task, "searcher": flags.searcher,
        "budget": flags.budget, "epochs": flags.epochs, "seed": flags.seed,
        "objectives": flags.objectives,
        "space_options": None if flags.space_opt is None else parse_options(
            flags.space_opt, "space"),
        "task_options": None if flags.task_opt is None else parse_options(
            flags.task_opt, "task"),
        "searcher_options": None if flags.searcher_opt is None else parse_options(
            flags.searcher_opt, "searcher"),
        "evaluator_options": None if flags.train_opt is None else parse_options(
            flags.train_opt, "train"),
    }
    scheduler = _given_scheduler(flags)
    stored = _stored(study, storage)
    if stored is None:
        out = {k: (DEFAULTS.get(k) if v is None else v) for k, v in given.items()}
        out["scheduler"], out["scheduler_options"] = scheduler or (None, None)
        return out
    stored.check_code(given_space=flags.space is not None, given_task=flags.task is not None)
    from_store = {
        "space": stored.space, "task": stored.task, "searcher": stored.searcher,
        "budget": stored.budget, "epochs": stored.epochs, "seed": stored.seed,
        "objectives": ",".join(stored.objectives) if stored.objectives else None,
        "space_options": stored.space_options, "task_options": stored.task_options,
        "searcher_options": stored.searcher_options,
        "evaluator_options": stored.train_options,
    }
    if flags.space is not None and _same_space(flags.space) != stored.space:
        # another space: the stored task and options were the old space's (the
        # resume is then refused as a conflict, naming what differs)
        for key in ("task", "space_options", "task_options"):
            from_store[key] = None
    out = {k: (from_store[k] if v is None else v) for k, v in given.items()}
    if scheduler is None and stored.scheduler:
        options = {k: v for k, v in stored.scheduler.items() if k != "name"}
        scheduler = (stored.scheduler.get("name"), options)
    out["scheduler"], out["scheduler_options"] = scheduler or (None, None)
    _say_stored_code(out, flags)
    return out


def _same_space(space: str) -> str:
    """``space`` as a study stores it (a file reference with an absolute path)."""
    from naslab.core.references import absolute_reference

    return absolute_reference(space) if is_reference(space) else space


def _given_scheduler(flags: SearchFlags) -> tuple[str | None, dict[str, int] | None] | None:
    """The scheduler flags as (name or None for 'none', options), None if not given."""
    if flags.scheduler in (None, "none") and flags.scheduler_options:
        from naslab.core.errors import ConfigError

        raise ConfigError("--min-epochs and --eta need a --scheduler (asha or hyperband)")
    if flags.scheduler is None:
        return None
    if flags.scheduler == "none":
        return (None, None)
    return (flags.scheduler, flags.scheduler_options)


def _say_stored_code(settings: dict[str, Any], flags: SearchFlags) -> None:
    """Say which code a resume loads because the study names it."""
    for key, flag in (("space", flags.space), ("task", flags.task)):
        value = settings.get(key)
        if flag is None and isinstance(value, str) and is_reference(value):
            err_console.print(f"{key} {fmt(value)} (stored with the study)", soft_wrap=True)
