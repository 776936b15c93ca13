"""The web dashboard: a read-only app over a naslab store (``naslab dashboard``) and a
study's page as one static HTML file (``naslab report``).

Needs the optional packages of ``pip install 'naslab[dashboard]'`` (Starlette,
uvicorn, Jinja2, plotly), imported only when these functions are called, so that
``import naslab`` works without them.

* :func:`create_app` -> a Starlette app over a store opened read-only.
* :func:`render_report` -> a study's page as one self-contained HTML text.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "render_report"]


def create_app(store_url: str | None = None, **kwargs: Any) -> Any:
    """A Starlette app serving the dashboard over the store at ``store_url``, opened
    read-only (see :func:`naslab.dashboard.app.create_app`)."""
    from naslab.dashboard.app import create_app as _create

    return _create(store_url, **kwargs)


def render_report(url: str | None, study: str) -> str:
    """Study ``study`` of the store at ``url`` (opened read-only) as one HTML page that
    opens without a server (see :func:`naslab.dashboard.report.render_report`)."""
    from naslab.dashboard.report import render_report as _render

    return _render(url, study)
