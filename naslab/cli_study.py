"""``naslab study delete|rename``: manage stored studies."""

from __future__ import annotations

import typer

__all__ = ["study_app"]

study_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True,
                        help="Manage stored studies: delete, rename.")
