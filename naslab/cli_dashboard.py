"""``naslab dashboard`` (a read-only web app over a store) and ``naslab report``
(a study's page as one static HTML file)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from naslab.cli_common import Storage, console, err_console, fmt
from naslab.core.errors import ConfigError

__all__ = ["dashboard", "is_loopback", "report"]

INSTALL_HINT = "pip install 'naslab[dashboard]'"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_host(host: str) -> str:
    """A host to bind: an IP address or ``localhost`` (a name is refused: it may
    resolve to several addresses)."""
    host = host.strip()
    if host.lower() == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        raise ConfigError(f"--host must be an IP address such as 127.0.0.1 or 0.0.0.0 (or "
                          f"localhost), got {host!r}") from None


def _require_packages() -> None:
    import importlib

    missing = []
    for module in ("starlette", "uvicorn", "jinja2", "plotly"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(f"naslab dashboard needs {', '.join(missing)}: {INSTALL_HINT}")


def dashboard(
    storage: Storage = None,
    host: Annotated[str, typer.Option(
        help="Address to listen on. The default serves this machine only; another "
        "address makes the store readable on the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (1-65535; 0: any free "
                                      "port).")] = 8080,
) -> None:
    """Serve a read-only web dashboard over a store (studies, trials, architectures,
    Pareto fronts, predictors); running searches update live."""
    bind = _check_host(host)
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be from 0 to 65535, got {port}")
    _require_packages()
    import uvicorn

    from naslab.dashboard.app import LOOPBACK_HOSTS, create_app

    loopback = is_loopback(bind)
    app = create_app(storage, allowed_hosts=LOOPBACK_HOSTS if loopback else None)
    if not loopback:
        err_console.print(
            f"warning: serving on {bind}, not 127.0.0.1: anyone who can reach this "
            "machine on the network can read the store (studies, architectures, errors); "
            "there is no login", soft_wrap=True, markup=False)
    store = app.state.store
    shown = f"[{bind}]" if ":" in bind else bind
    console.print(f"naslab dashboard over {fmt(store.url)} (read-only) at "
                  f"http://{shown}:{port}/ ; Ctrl-C stops it", soft_wrap=True)
    uvicorn.run(app, host=bind, port=port, log_level="warning", access_log=False)


def report(
    study: Annotated[str, typer.Option(help="Study name.")],
    out: Annotated[Path, typer.Option(help="HTML file to write.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    storage: Storage = None,
) -> None:
    """Write a study's dashboard page as one static HTML file (opens without a server:
    plotly.js inlined, data embedded)."""
    from naslab.core.paths import atomic_file, checked_destination

    checked_destination(out, kind="file", force=force)  # refused before anything is read
    from naslab.dashboard import render_report

    html = render_report(storage, study)
    with atomic_file(out, force=force) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    console.print(f"wrote {fmt(out)} ({len(html.encode()) / 1e6:.1f} MB)", soft_wrap=True)
