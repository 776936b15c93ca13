"""The dashboard's web app: a Starlette application over a read-only store.

Pages (GET only): ``/`` the studies, ``/study?name=`` a study, ``/trial?study=&number=``
a trial, ``/predictors[?study=]`` the stored predictors. ``/api/live?name=`` feeds a
study page's live update (its summary, its page of trials and its anytime curves)
and ``/fragment/studies`` the studies page's; the pages poll them every
:data:`POLL_MS` milliseconds. A study page fetches its figures (``/api/figures``)
after its first paint, so that the page shows at once whatever the study's size.
plotly.js is served from the installed plotly package.

Every query parameter is checked (:mod:`naslab.dashboard.params`); a bad one is a
400 page, an unknown study or trial a 404 page, a database error a 503 page: never a
traceback. Responses forbid framing and scripts from elsewhere (a Content Security
Policy), and by default only ``Host`` names of this machine are answered (against
DNS rebinding).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from naslab.core.errors import ConfigError, StorageError
from naslab.dashboard import pages, render
from naslab.dashboard.params import parse_curves, parse_number, parse_table, required
from naslab.dashboard.predictors_page import ScoreCache, predictors_context

__all__ = ["LOOPBACK_HOSTS", "POLL_MS", "create_app"]

#: How often a live page asks for news (milliseconds).
POLL_MS = 2000
#: The Host names answered when serving on this machine only.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


def _html(text: str, status: int = 200) -> Any:
    from starlette.responses import HTMLResponse

    return HTMLResponse(text, status_code=status, headers=_HEADERS)


def _error_page(status: int, message: str) -> Any:
    titles = {400: "Bad request", 404: "Not found", 503: "Store unavailable"}
    return _html(render.render("error.html", status=status, title=titles.get(status, "Error"),
                               message=message), status)


def _handlers() -> dict[Any, Any]:
    async def bad(_request: Any, exc: Exception) -> Any:
        return _error_page(400, str(exc))

    async def missing(_request: Any, exc: Exception) -> Any:
        message = str(exc) if isinstance(exc, pages.NotFound) else "there is no such page"
        return _error_page(404, message)

    async def unavailable(_request: Any, exc: Exception) -> Any:
        return _error_page(503, str(exc))

    return {ConfigError: bad, pages.NotFound: missing, 404: missing, StorageError: unavailable}


class _Views:
    """The endpoints, over one read-only store."""

    def __init__(self, store: Any) -> None:
        from naslab.db.dashboard_queries import DashboardQueries

        self.store = store
        self.q = DashboardQueries(store.database)
        self.scores = ScoreCache()

    def studies(self, request: Any) -> Any:
        return _html(render.render("studies.html", poll_ms=POLL_MS, static=False,
                                   **pages.studies_context(self.q)))

    def studies_fragment(self, request: Any) -> Any:
        return _html(render.render("_studies_table.html", **pages.studies_context(self.q)))

    def study(self, request: Any) -> Any:
        params = request.query_params
        context = pages.study_context(self.q, required(params, "name"), parse_table(params),
                                      parse_curves(params.get("curves")))
        return _html(render.render("study.html", poll_ms=POLL_MS, static=False, **context))

    def live(self, request: Any) -> Any:
        from starlette.responses import Response

        from naslab.dashboard.params import embeddable_json

        params = request.query_params
        info = pages.require_study(self.q, required(params, "name"))
        table = parse_table(params)
        overview = self.q.overview(info.name)
        page = self.q.trial_page(info.id, page=table.page, per_page=table.per_page,
                                 sort=table.sort, descending=table.descending, state=table.state)
        body = {
            "summary": render.render("_study_summary.html", info=info, overview=overview),
            "table": render.render("_trials_table.html", info=info, page=page, table=table,
                                   static=False),
            "figures": pages.live_figures(self.q, info),
        }
        return Response(embeddable_json(body), media_type="application/json",
                        headers=_HEADERS)

    def figures(self, request: Any) -> Any:
        from starlette.responses import Response

        from naslab.dashboard.params import embeddable_json

        params = request.query_params
        info = pages.require_study(self.q, required(params, "name"))
        context = pages.study_figures(self.q, info, parse_curves(params.get("curves")))
        body = {"figures": context["figures"],
                "extra": render.render("_study_extra.html", info=info, **context)}
        return Response(embeddable_json(body), media_type="application/json",
                        headers=_HEADERS)

    def trial(self, request: Any) -> Any:
        params = request.query_params
        number = parse_number(params.get("number"), "number")
        context = pages.trial_context(self.q, required(params, "study"), number)
        return _html(render.render("trial.html", static=False, **context))

    def predictors(self, request: Any) -> Any:
        study = request.query_params.get("study") or None
        context = predictors_context(self.store, self.q, study, self.scores)
        return _html(render.render("predictors.html", static=False, **context))

    def static(self, request: Any) -> Any:
        from starlette.responses import FileResponse, Response

        name = request.path_params["name"]
        headers = {**_HEADERS, "Cache-Control": "max-age=3600"}
        if name == "plotly.min.js":
            return FileResponse(str(render.plotly_path()), media_type="text/javascript",
                                headers=headers)
        if name not in _STATIC:  # a whitelist: no path from the request reaches the disk
            raise pages.NotFound(f"there is no static file {name!r}")
        return Response(render.static_text(name), media_type=_STATIC[name], headers=headers)


def _routes(views: _Views) -> list[Any]:
    from starlette.routing import Route

    table: Sequence[tuple[str, Callable[..., Any]]] = (
        ("/", views.studies), ("/fragment/studies", views.studies_fragment),
        ("/study", views.study), ("/api/live", views.live), ("/api/figures", views.figures),
        ("/trial", views.trial),
        ("/predictors", views.predictors), ("/static/{name}", views.static))
    return [Route(path, endpoint, methods=["GET"]) for path, endpoint in table]


def create_app(store_url: str | None = None, *,
               allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS) -> Any:
    """The dashboard as a Starlette app over the store at ``store_url`` (default as
    for the store), opened read-only (:class:`naslab.db.store.Store` with
    ``read_only=True``: nothing is ever written).

    Args:
        store_url: an SQLAlchemy URL of an existing naslab store.
        allowed_hosts: the ``Host`` header names answered (others get 400); None
            answers any (when serving on the network).

    Raises:
        ConfigError: the dashboard's packages are not installed (``pip install
            'naslab[dashboard]'``), or the URL is bad or names no SQLite file.
        StorageError: the store cannot be read, or its schema is not the newest.
    """
    try:
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.middleware.trustedhost import TrustedHostMiddleware
    except ImportError as exc:
        raise ConfigError("the dashboard needs Starlette, uvicorn, Jinja2 and plotly "
                          f"({exc}): pip install 'naslab[dashboard]'") from exc
    from naslab.db.store import Store

    store = Store(store_url, read_only=True)
    views = _Views(store)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            store.close()

    middleware = ([] if allowed_hosts is None else
                  [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))])
    app = Starlette(routes=_routes(views), middleware=middleware,
                    exception_handlers=_handlers(), lifespan=lifespan)
    app.state.store = store
    return app
