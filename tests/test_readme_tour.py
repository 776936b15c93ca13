"""The README's tour, run top to bottom in a fresh folder: every shell block of "A
tour", in order, as a user would paste it (slow: it trains about a hundred networks).

What a fresh machine cannot do is replaced, and said so here: the PostgreSQL URLs
name the test server (``NASLAB_TEST_POSTGRES_URL``; the blocks that need it are
skipped without one, as the other PostgreSQL tests are), and the two lines that join
an existing Ray cluster are left out (``tests/test_ray_cluster.py`` runs them against
a real two-node cluster).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.databases import PG_URL, empty_postgres, require_postgres

README = Path(__file__).resolve().parents[1] / "README.md"
PG_PLACEHOLDERS = ("postgresql+psycopg://user:password@dbhost/naslab",
                   "postgresql+psycopg://user@dbhost/naslab")
CLUSTER_ONLY = "--ray-address"


def tour_blocks() -> list[str]:
    """The ```bash blocks of the README between "## A tour" and the next "## "."""
    text = README.read_text()
    start = text.index("## A tour")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```bash\n(.*?)```", text[start:end], flags=re.S)


def runnable(block: str, pg_url: str | None) -> str | None:
    """The block as this test runs it, or None when it needs a server we lack."""
    lines = [line for line in block.splitlines() if CLUSTER_ONLY not in line]
    script = "\n".join(lines)
    if any(p in script for p in PG_PLACEHOLDERS):
        if pg_url is None:
            return None
        for placeholder in PG_PLACEHOLDERS:
            script = script.replace(placeholder, pg_url)
    # `wait` alone returns 0 whatever the jobs did: wait for each and fail with it
    return re.sub(r"^wait\b", 'for job in $(jobs -p); do wait "$job"; done;', script,
                  flags=re.M)


def test_the_blocks_cover_the_commands_a_user_reads():
    blocks = tour_blocks()
    commands = "\n".join(blocks)
    for needed in ("naslab search", "naslab export", "naslab sql", "naslab db export",
                   "naslab db import", "naslab predictor", "naslab bench",
                   "naslab results"):
        assert needed in commands
    assert sum(CLUSTER_ONLY in line for b in blocks for line in b.splitlines()) == 2


@pytest.mark.slow
def test_the_tour_runs_top_to_bottom_in_a_fresh_folder(tmp_path):
    pg_url = None
    if PG_URL or os.environ.get("CI"):
        pg_url = require_postgres()
        empty_postgres(pg_url)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NASLAB_", "RAY_ADDRESS"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # short enough for Ray's socket paths (a pytest tmp_path is not)
    env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    folder = tmp_path / "tour"
    folder.mkdir()
    timings = []
    for number, block in enumerate(tour_blocks()):
        script = runnable(block, pg_url)
        if script is None:
            print(f"block {number}: skipped, no PostgreSQL server")
            continue
        begun = time.perf_counter()
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=folder,
                              env=env, capture_output=True, text=True, timeout=900)
        timings.append((number, time.perf_counter() - begun))
        assert done.returncode == 0, (
            f"block {number} failed (exit {done.returncode}):\n{script}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
    print("tour blocks (number, seconds):", [(n, round(s)) for n, s in timings])
    engine = sa.create_engine(f"sqlite:///{folder / 'naslab.db'}")
    with engine.connect() as conn:
        names = {row[0] for row in conn.exec_driver_sql("SELECT name FROM naslab_studies")}
    engine.dispose()
    assert {"nb201-digits-evolution-s0", "nb201-wide", "nb201-asha", "nb201-copy",
            "photo-front"} <= names, names
    assert (folder / "naslab-exports" / "nb201-digits-evolution-s0" / "trial.json").exists()
    if pg_url:
        engine = sa.create_engine(pg_url)
        with engine.connect() as conn:
            rows, distinct = conn.exec_driver_sql(
                "SELECT count(*), count(DISTINCT t.architecture_id) FROM naslab_trials t "
                "JOIN naslab_studies s ON s.id = t.study_id "
                "WHERE s.name = 'shared' AND t.state = 'complete'").one()
        engine.dispose()
        assert rows == distinct == 2000
