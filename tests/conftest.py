"""Shared fixtures."""

from __future__ import annotations

import os
import tempfile

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance (2 CPUs, no dashboard, listening on 127.0.0.1 only, as
    naslab starts it) for the whole test session."""
    ray = pytest.importorskip("ray")
    from naslab.workers.ray_connect import start_local

    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are limited
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["RAY_TMPDIR"] = tmp
    start_local(2, temp_dir=tmp)
    yield ray
    ray.shutdown()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A fresh, empty database URL: SQLite, and PostgreSQL (see tests/databases.py)."""
    from tests.databases import database_url

    return database_url(request.param, tmp_path)


def pytest_terminal_summary(terminalreporter) -> None:
    """Say how many tests ran against PostgreSQL (and where), or why none did."""
    from tests.databases import PG_URL

    ran = [r for key in ("passed", "failed", "error")
           for r in terminalreporter.stats.get(key, [])
           if getattr(r, "when", "call") == "call" and "postgresql" in r.nodeid]
    if not ran and not PG_URL:
        return
    passed = sum(1 for r in terminalreporter.stats.get("passed", []) if r in ran)
    where = PG_URL.rsplit("@", 1)[-1] if PG_URL else "?"
    terminalreporter.write_line(
        f"PostgreSQL: {len(ran)} test cases ran against a real server at {where} "
        f"({passed} passed)")
