"""``naslab plot curves|anytime``: figures of any stored study."""

from __future__ import annotations

import typer

__all__ = ["plot_app"]

plot_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True,
                       help="Figures of a stored study: learning curves, anytime curve.")
