"""Shared fixtures."""

from __future__ import annotations

import os
import tempfile

import pytest


@pytest.fixture
def one_torch_thread():
    """Tiny networks on one intra-op thread (the count is restored afterwards): on a
    busy 2-core machine two threads make each small operation wait for the other (a
    digits epoch of a small DARTS network took 44 s instead of 1.5 s, PyG's scatters
    were ~100x slower). Test modules that train opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
