"""``naslab dashboard`` (a read-only web app over a store) and ``naslab report``
(a study's page as one static HTML file)."""

from __future__ import annotations

from naslab.core.errors import ConfigError

__all__ = ["dashboard", "report"]


def dashboard() -> None:
    """Serve a read-only web dashboard over a store (not built yet)."""
    raise ConfigError("naslab dashboard is not built yet")


def report() -> None:
    """Write a study's dashboard page as one static HTML file (not built yet)."""
    raise ConfigError("naslab report is not built yet")
