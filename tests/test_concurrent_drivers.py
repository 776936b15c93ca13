"""Several search drivers on one study, and drivers killed at random moments.

Real processes on real databases (SQLite in WAL mode, and a PostgreSQL server when
``NASLAB_TEST_POSTGRES_URL`` is set): the drivers are ``python -m
tests.search_driver`` and the ``naslab search`` command itself, on NAS-Bench-Graph's
cora table.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from naslab.db import Store

ROOT = Path(__file__).resolve().parent.parent
NASLAB = [sys.executable, "-c", "from naslab.cli import main; main()"]


def driver(url: str, study: str, budget: int, mode: str, searcher: str,
           go: Path | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "tests.search_driver", url, study, str(budget), mode,
            searcher] + ([str(go)] if go else [])
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def query(url: str, sql: str, **params) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def check_study(url: str, study: str, budget: int) -> dict[str, int]:
    """The study has exactly ``budget`` complete trials, numbered 0..budget-1 with no
    gap, at most one evaluation per architecture, and every reused trial points at
    a complete evaluation. Returns trials per driver."""
    states = dict(query(url, "SELECT t.state, COUNT(*) FROM naslab_trials t JOIN "
                             "naslab_studies s ON s.id = t.study_id WHERE s.name = :s "
                             "GROUP BY t.state", s=study))
    assert states.get("complete") == budget, states
    assert set(states) <= {"complete", "interrupted"}, states
    numbers = [n for (n,) in query(
        url, "SELECT t.number FROM naslab_trials t JOIN naslab_studies s ON s.id = t.study_id "
             "WHERE s.name = :s AND t.state = 'complete' ORDER BY t.number", s=study)]
    assert len(set(numbers)) == budget
    twice = query(url, "SELECT t.architecture_id, COUNT(*) FROM naslab_trials t JOIN "
                       "naslab_studies s ON s.id = t.study_id WHERE s.name = :s AND "
                       "t.reused_from IS NULL AND t.state = 'complete' "
                       "GROUP BY t.architecture_id HAVING COUNT(*) > 1", s=study)
    assert twice == [], f"architectures evaluated twice: {twice}"
    orphans = query(url, "SELECT r.id FROM naslab_trials r JOIN naslab_studies s ON "
                         "s.id = r.study_id LEFT JOIN naslab_trials o ON o.id = r.reused_from "
                         "WHERE s.name = :s AND r.reused_from IS NOT NULL AND "
                         "(o.id IS NULL OR o.state <> 'complete')", s=study)
    assert orphans == []
    return dict(query(url, "SELECT t.driver, COUNT(*) FROM naslab_trials t JOIN "
                           "naslab_studies s ON s.id = t.study_id WHERE s.name = :s "
                           "AND t.state = 'complete' GROUP BY t.driver", s=study))


@pytest.mark.parametrize("mode,searcher,budget", [
    ("table", "evolution", 800), ("slow", "random", 90),
    pytest.param("table", "optuna-tpe", 120, marks=pytest.mark.slow)])  # ~12 s each
def test_drivers_share_a_study(db_url, tmp_path, mode, searcher, budget):
    """Three drivers start at once on one study: together they finish exactly its
    budget, and no architecture is evaluated twice."""
    Store(db_url).close()  # the schema, so that the test can watch
    go = tmp_path / "go"
    procs = [driver(db_url, "shared", budget, mode, searcher, go) for _ in range(3)]
    for _ in range(1200):  # until all three have imported, prepared and wait for the go
        if len(list(tmp_path.glob("go.ready-*"))) == 3:
            break
        time.sleep(0.05)
    assert query(db_url, "SELECT COUNT(*) FROM naslab_studies")[0][0] == 1
    go.touch()
    outputs = [finish(p) for p in procs]
    per_driver = check_study(db_url, "shared", budget)
    assert len(per_driver) >= 2, (per_driver, outputs)  # they really worked together
    assert all(n > 0 for n in per_driver.values())
    if searcher.startswith("optuna"):  # one shared Optuna study, nothing left running
        import optuna

        trials = optuna.load_study(study_name="naslab:shared", storage=db_url).trials
        assert sum(t.state.name == "COMPLETE" for t in trials) >= budget
        assert not [t for t in trials if t.state.name == "RUNNING"]


def test_drivers_reusing_results_hold_each_architecture_once(db_url, tmp_path):
    """A first study fills results; then two drivers run a second study at once over
    the same architectures (same searcher and seed): the second study holds each
    architecture once, trained or reused (issue 14, item 6: 16-46% of the budget
    went to second copies of one reused architecture)."""
    finish(driver(db_url, "first", 200, "table", "evolution"))
    go = tmp_path / "go"
    procs = [driver(db_url, "second", 200, "table", "evolution", go) for _ in range(2)]
    for _ in range(1200):
        if len(list(tmp_path.glob("go.ready-*"))) == 2:
            break
        time.sleep(0.05)
    go.touch()
    outputs = [finish(p) for p in procs]
    check_study(db_url, "second", 200)
    rows = query(url=db_url, sql="SELECT t.fidelity, COUNT(*), COUNT(DISTINCT "
                 "t.architecture_id), SUM(CASE WHEN t.reused_from IS NULL THEN 0 ELSE 1 END) "
                 "FROM naslab_trials t JOIN naslab_studies s ON s.id = t.study_id "
                 "WHERE s.name = 'second' AND t.state IN ('complete', 'running') "
                 "GROUP BY t.fidelity")
    for fidelity, n_rows, distinct, reused in rows:
        assert distinct == n_rows, (fidelity, n_rows, distinct, outputs)
        assert reused > 0, outputs  # the first study's results were reused


def test_naslab_search_commands_side_by_side(db_url):
    """Two ``naslab search`` commands on the same study and database."""
    args = ["search", "--space", "nasbench_graph", "--task", "cora", "--budget", "400",
            "--study", "cli-shared", "--storage", db_url]
    procs = [subprocess.Popen(NASLAB + args, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    for p in procs:
        finish(p)
    check_study(db_url, "cli-shared", 400)


def _complete(url: str, study: str) -> dict[int, tuple]:
    rows = query(url, "SELECT t.id, t.number, a.hash, t.objective_value, t.reused_from "
                      "FROM naslab_trials t JOIN naslab_studies s ON s.id = t.study_id "
                      "JOIN naslab_architectures a ON a.id = t.architecture_id "
                      "WHERE s.name = :s AND t.state = 'complete'", s=study)
    return {r[0]: r[1:] for r in rows}


@pytest.mark.slow  # 20 subprocess kills and resumes per case
@pytest.mark.parametrize("mode,kills,budget", [("table", 20, 2000), ("slow", 6, 300)])
def test_drivers_killed_at_random_moments_resume_exactly(db_url, mode, kills, budget):
    """SIGKILL the driver ``kills`` times at random moments while it searches, resume
    each time; at the end the study has exactly its budget of complete trials, every
    result stored before a kill is still there unchanged, and none was evaluated twice.
    """
    Store(db_url).close()
    rng = random.Random(6)
    study = f"crash-{mode}"
    seen: dict[int, tuple] = {}
    progress = []
    for _ in range(kills):
        before = len(seen)
        proc = driver(db_url, study, budget, mode, "evolution")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:  # searching?
            if len(_complete(db_url, study)) > before:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the driver finished before it could be killed"
        time.sleep(rng.uniform(0.0, 0.06))  # a random moment of the search
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        now = _complete(db_url, study)
        lost = {k: v for k, v in seen.items() if now.get(k) != v}
        assert not lost, f"results lost or changed after a kill: {lost}"
        progress.append(len(now) - before)
        seen = now
    assert len(seen) < budget
    finish(driver(db_url, study, budget, mode, "evolution"))
    final = _complete(db_url, study)
    assert all(final.get(k) == v for k, v in seen.items())
    check_study(db_url, study, budget)
    interrupted = query(db_url, "SELECT COUNT(*) FROM naslab_trials WHERE state = "
                                "'interrupted'")[0][0]
    print(f"\ncrash test ({mode}, {db_url.split(':')[0]}): {kills} SIGKILLs, complete "
          f"trials gained per killed run {progress}, {len(seen)} complete before the last "
          f"run, {len(final)} = budget {budget} at the end, {interrupted} trials left "
          "running by a kill were interrupted and redone, 0 lost, 0 evaluated twice")
