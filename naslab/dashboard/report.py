"""``naslab report``: a study's dashboard page as one static HTML file: plotly.js, the
script and the style sheet inlined, the figures' data embedded, no live updates, so
that it opens from disk without a server or network."""

from __future__ import annotations

from datetime import datetime, timezone

from naslab.core.errors import ConfigError
from naslab.dashboard import pages, render
from naslab.dashboard.params import TableParams

__all__ = ["REPORT_ROWS", "render_report"]

#: The trials a report's table lists (the best ones by the objective).
REPORT_ROWS = 1000


def render_report(url: str | None, study: str) -> str:
    """Study ``study`` of the store at ``url`` (default as for the store), opened
    read-only, as one self-contained HTML page: the study page's figures, its Pareto
    front and the :data:`REPORT_ROWS` best trials.

    Raises:
        ConfigError: the dashboard's packages are missing, or there is no such study.
        StorageError: the store cannot be read.
    """
    try:
        import jinja2  # noqa: F401
        import plotly  # noqa: F401
    except ImportError as exc:
        raise ConfigError("naslab report needs the dashboard's packages (Jinja2 and plotly; "
                          f"{exc}): pip install 'naslab[dashboard]'") from exc
    from naslab.db.dashboard_queries import DashboardQueries
    from naslab.db.store import Store

    with Store(url, read_only=True) as store:
        q = DashboardQueries(store.database)
        info = q.study(study)
        if info is None:
            names = [s.name for s in q.studies()]
            raise ConfigError(f"no study named {study!r}; stored studies: "
                              + (", ".join(names) or "none"))
        table = TableParams(page=1, per_page=REPORT_ROWS, sort="objective",
                            descending=info.direction != "minimize")
        try:
            context = pages.study_context(q, study, table, with_figures=True)
        except pages.NotFound as exc:
            raise ConfigError(str(exc)) from None
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return render.render(
        "study.html", static=True, poll_ms=0, generated=generated,
        inline_css=_script(render.static_text("dashboard.css"), "style"),
        inline_plotly=_script(render.plotly_js(inline=True)),
        inline_js=_script(render.static_text("dashboard.js")), **context)


def _script(text: str, element: str = "script") -> str:
    """Text for a ``<script>`` (or ``<style>``) element, checked to be free of its end
    tag (the template marks it safe)."""
    if f"</{element}" in text.lower():
        raise ConfigError(f"inlined text may not contain </{element}")
    return text
