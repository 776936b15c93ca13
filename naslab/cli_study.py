"""``naslab study delete|rename``: manage stored studies.

Both ask for confirmation on a terminal; ``--yes`` skips the question, and without
a terminal (a script, a pipe) ``--yes`` is required: the command is refused, never
left waiting for an answer. The checks run before the question: a study whose
results other studies reuse, or that a live search is running, is refused (see
:mod:`naslab.db.study_changes`).

The Optuna study an ``optuna-*`` or ``guided-optuna`` searcher keeps in the store's
database under its default name (``naslab:<study>``) is deleted or renamed with
the naslab study, in the same transaction. One kept elsewhere (the searcher option
``storage``) or under a name of the user's choosing (``study_name``) is left as is,
and the command says so.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from naslab.cli_common import Storage, console, fmt, open_store
from naslab.core.errors import ConfigError
from naslab.core.paths import check_name

__all__ = ["delete_command", "rename_command", "study_app"]

study_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True,
                        help="Manage stored studies: delete, rename.")

Yes = Annotated[bool, typer.Option(
    "--yes", "-y", help="Do not ask for confirmation (required when stdin is not a terminal).")]


def default_optuna_name(study: str) -> str:
    """The name of the Optuna study a naslab study's Optuna searcher keeps by default."""
    from naslab.searchers.optuna_searcher import optuna_study_name

    return optuna_study_name(study)


def _optuna_note(info: Any) -> str:
    """A note when the study's searcher keeps its Optuna study where this command does
    not touch it (another storage, or a name given in the searcher options)."""
    options = info.config.get("searcher_options") or {}
    if not isinstance(options, dict):
        return ""
    where, name = options.get("storage"), options.get("study_name")
    if where is not None and where != "memory":
        return f"its Optuna study (searcher option storage) is left as is in {where}"
    if name is not None and where is None:
        return f"its Optuna study {name!r} (searcher option study_name) is left as is"
    return ""


def _confirm(question: str, yes: bool) -> None:
    """Ask ``question`` unless ``yes``; refuse without a terminal to ask on."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError("this command asks for confirmation, but stdin is not a terminal; "
                          "pass --yes to go ahead without asking")
    if not typer.confirm(question, default=False):
        console.print("nothing changed")
        raise typer.Exit(1)


@study_app.command("delete")
def delete_command(
    name: Annotated[str, typer.Argument(help="The study to delete.")],
    yes: Yes = False,
    storage: Storage = None,
) -> None:
    """Delete a study: its trials, metrics, weights and Pareto front (and its Optuna
    study in the same database). Architectures, zero-cost proxies and saved predictors
    are kept. Refused while other studies reuse its results or a live search runs it."""
    store = open_store(storage)
    try:
        info = store.studies.require(name)
        optuna = default_optuna_name(name)
        plan = store.studies.deletion_plan(name, optuna_study=optuna)
        _confirm(f"Delete {plan.describe()}?", yes)
        done = store.studies.delete(name, optuna_study=optuna)
    finally:
        store.close()
    console.print(f"deleted {fmt(done.describe())}", soft_wrap=True, highlight=False)
    note = _optuna_note(info)
    if note:
        console.print(fmt(note), soft_wrap=True, highlight=False)


@study_app.command("rename")
def rename_command(
    old: Annotated[str, typer.Argument(help="The study's name.")],
    new: Annotated[str, typer.Argument(help="Its new name.")],
    yes: Yes = False,
    storage: Storage = None,
) -> None:
    """Rename a study (and its Optuna study in the same database); its results and
    the results other studies reuse from it are kept as they are."""
    check_name("the new study name", new)  # refused before the store is opened
    store = open_store(storage)
    try:
        info = store.studies.require(old)
        if store.studies.get(new) is not None:
            raise ConfigError(f"cannot rename study {old!r} to {new!r}: a study named {new!r} "
                              "exists; choose another name")
        _confirm(f"Rename study {old!r} to {new!r}?", yes)
        names = (default_optuna_name(old), default_optuna_name(new))
        renamed_optuna = store.studies.rename(old, new, optuna_names=names)
    finally:
        store.close()
    also = f" (and its Optuna study {names[0]!r} to {names[1]!r})" if renamed_optuna else ""
    console.print(f"renamed study {fmt(repr(old))} to {fmt(repr(new))}{fmt(also)}",
                  soft_wrap=True, highlight=False)
    note = _optuna_note(info)
    if note:
        console.print(fmt(note), soft_wrap=True, highlight=False)
