"""``naslab db ...``: database maintenance.

``naslab db upgrade`` applies pending schema migrations (any naslab command also
applies them when it opens the store) and says what it did (on an SQLite file that
does not exist it makes a new, empty store: other commands but ``search`` and
``db import`` refuse a missing file); ``naslab db version``
prints the schema revision of a database.
``naslab db grant-reader`` (PostgreSQL) makes the read-only role ``naslab sql`` runs as.
``naslab db export OUT.jsonl`` writes studies (their trials, architectures, metrics,
weights and Pareto fronts) as JSON lines; ``naslab db import IN.jsonl`` reads them
into another store, in one transaction. See :mod:`naslab.db.transfer` for the format.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from naslab.cli_common import Init, Storage, console, open_store
from naslab.core.errors import ConfigError
from naslab.core.paths import check_name

db_app = typer.Typer(rich_markup_mode=None,
    no_args_is_help=True,
    help="Database maintenance: schema upgrades, and export and import of studies (JSON "
    "lines, gzip-compressed when the file name ends with .gz), e.g. to move them between "
    "SQLite and PostgreSQL.",
)

def parse_renames(pairs: list[str] | None) -> dict[str, str]:
    """``["old=new", ...]`` -> ``{"old": "new", ...}``; ConfigError for a malformed pair."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        old, sep, new = pair.partition("=")
        old, new = old.strip(), new.strip()
        if not sep or not old or not new:
            raise ConfigError(
                f"--rename takes OLD=NEW (e.g. --rename demo=demo-copy), got {pair!r}"
            )
        if old in out:
            raise ConfigError(f"--rename names study {old!r} twice")
        out[old] = check_name("--rename: the new study name", new)
    return out


@db_app.command("upgrade")
def upgrade_command(
    storage: Storage = None,
    init: Init = False,
) -> None:
    """Apply pending schema migrations to the store (in one transaction); with --init,
    create naslab's tables in a database that holds other tables."""
    store = open_store(storage, init=init, create=True)  # may make a new store
    try:
        before, now, url = store.upgraded_from, store.schema_revision, store.url
    finally:
        store.close()
    if before is None:
        console.print(f"{escape(url)}: schema at revision {now}, the newest; nothing to do")
    else:
        console.print(f"{escape(url)}: schema upgraded from revision {before} to {now}")


@db_app.command("version")
def version_command(
    storage: Storage = None,
) -> None:
    """Print the store's schema revision (changes nothing)."""
    from naslab.db import migrate
    from naslab.db.revision import read_revision

    found = read_revision(storage)
    console.print(f"revision {found or 'none (new, or made before migrations)'}; "
                  f"newest {migrate.head_revision()}")


@db_app.command("export")
def export_command(
    out: Path = typer.Argument(
        ..., help="File to write, e.g. studies.jsonl (gzip-compressed if it ends with .gz)."
    ),
    study: list[str] | None = typer.Option(
        None, "--study", help="Study to export (repeatable; default: every study)."
    ),
    no_weights: bool = typer.Option(
        False, "--no-weights", help="Leave trained weights out (they are most of the size)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing file OUT."),
    storage: Storage = None,
) -> None:
    """Export studies to a JSON-lines file."""
    from naslab.core.paths import checked_destination
    from naslab.db.transfer import export_studies

    checked_destination(out, kind="file", force=force)  # refused before the store is opened
    store = open_store(storage)
    try:
        summary = export_studies(store, out, study or None, weights=not no_weights, force=force)
    finally:
        store.close()
    console.print(escape(summary.describe()), soft_wrap=True)


@db_app.command("import")
def import_command(
    source: Path = typer.Argument(
        ..., metavar="IN", help="File written by naslab db export (.jsonl or .jsonl.gz)."
    ),
    study: list[str] | None = typer.Option(
        None, "--study", help="Study of the file to import (repeatable; default: all)."
    ),
    rename: list[str] | None = typer.Option(
        None, "--rename", help="Import study OLD as NEW: OLD=NEW (repeatable)."
    ),
    skip_existing: bool = typer.Option(
        False, "--skip-existing",
        help="Leave out studies whose name the store already has (default: refuse the import).",
    ),
    space: list[str] | None = typer.Option(
        None, "--space", help="Your own space class that studies of the file use, as "
        "file.py:Class or package.module:Class (repeatable); its results are checked with it."),
    storage: Storage = None,
) -> None:
    """Import studies from a JSON-lines file, all or nothing."""
    from naslab.db.transfer import import_studies

    renames = parse_renames(rename)
    if not source.is_file():
        raise ConfigError(f"there is no file {str(source)!r} to import")
    for ref in space or []:
        register_space_class(ref)
    store = open_store(storage, create=True)  # importing into a new file makes the store
    try:
        summary = import_studies(
            store, source, studies=study or None, rename=renames,
            on_conflict="skip" if skip_existing else "error",
        )
    finally:
        store.close()
    console.print(escape(summary.describe()) + f" into {escape(store.url)}", soft_wrap=True)


def register_space_class(ref: str) -> None:
    """Register the SearchSpace class that ``ref`` names under its ``name`` (for this
    process), so that an import can rebuild and check its architectures. A name that
    a different space already has is refused."""
    from naslab.core.references import load_reference
    from naslab.search_spaces.base import SearchSpace
    from naslab.search_spaces.registry import SPACES

    cls = load_reference("space", ref)
    if not (isinstance(cls, type) and issubclass(cls, SearchSpace)):
        raise ConfigError(f"--space {ref!r} is not a SearchSpace class")
    name = cls.name
    if name in SPACES:
        if SPACES.load(name) is cls:
            return
        raise ConfigError(f"--space {ref!r}: its name {name!r} is already a space of naslab's "
                          "or another class's; give your space another name")
    SPACES.register(name, cls)


@db_app.command("grant-reader")
def grant_reader_command(
    role: str = typer.Option("naslab_reader", "--role", help="Name of the reader role."),
    password: str | None = typer.Option(
        None, "--password", envvar="NASLAB_READER_PASSWORD",
        help="Its password (default: a new random one for a new role; an existing role "
        "keeps its own). $NASLAB_READER_PASSWORD keeps it out of the shell history.",
    ),
    storage: Storage = None,
) -> None:
    """PostgreSQL: create (or update) a role that may only SELECT naslab's tables and
    views, for naslab sql; prints the URL to connect as it. Run it as an administrator
    (a superuser, or the tables' owner with CREATEROLE), and again after an upgrade."""
    from naslab.db.reader_role import grant_reader, require_postgres

    require_postgres(storage)
    store = open_store(storage)
    try:
        grant = grant_reader(store.database, role, password)
    finally:
        store.close()
    console.print(escape(grant.describe()), soft_wrap=True)
