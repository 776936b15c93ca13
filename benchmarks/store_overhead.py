"""Store overhead per completed trial, and top-10 queries over 100,000 trials.

Part 1, the write path. NAS-Bench-Graph's cora table answers each query at once,
so the time the store takes per completed trial can be isolated. The
architectures and their table results are computed before timing; each case then
stores ``--trials`` distinct trials in a fresh study of a fresh database:

- ``protocol.claim`` + ``protocol.finish`` inside ``Store.batch()``, one transaction
  (one commit) per trial: the claim checks, the architecture, the trial and its
  metrics (what a table search in this process does);
- the same, committing every 64 trials (what ``Study(batch_trials=64)`` does);
- ``protocol.claim`` + ``protocol.finish`` without a batch: the path of trained
  networks (two transactions per trial);
- a whole ``Study.run`` with the ``random`` searcher, against the same searcher
  and table look-ups in a loop without any store: the difference is what the
  store adds per trial in a real search.

Part 2, the read path. A study of 100,000 complete trials (100,000 architectures,
400,000 metric rows: final val/test accuracy and two per-epoch values), written
with bulk inserts, then the queries a user runs: the top 10 of the study by its
objective through the ``naslab_results`` view (what ``naslab sql`` runs), the top
10 by test accuracy (a pivoted column, not indexed), ``naslab_best``,
``Store.best_trials`` and the ``naslab_study_summary`` aggregate. Each figure is
the median of 5 runs after one warm-up; the query plan of the first is printed.

Usage: ``python benchmarks/store_overhead.py [--trials N] [--big N] [--postgres URL]``
(with ``--postgres``, the same cases also run on that database, which is emptied).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from naslab import Study
from naslab.db import ClaimContext, ClaimOutcome, Store, StudySpec
from naslab.db.models import Base, utcnow
from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace
from naslab.searchers.random_search import RandomSearch
from naslab.workers.benchmark_table import NasBenchGraphEvaluator

DATASET = "cora"
BATCH = 64
FIDELITY = NasBenchGraphEvaluator.default_fidelity  # what a table study records


def _empty_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


class Fresh:
    """Fresh databases: SQLite files in a temporary folder, or an emptied PostgreSQL."""

    def __init__(self, postgres: str | None) -> None:
        self.postgres = postgres
        self.tmp = Path(tempfile.mkdtemp(prefix="naslab-store-bench"))
        self.n = 0

    def url(self) -> str:
        self.n += 1
        if self.postgres:
            _empty_postgres(self.postgres)
            return self.postgres
        return f"sqlite:///{self.tmp / f'db{self.n}.sqlite'}"


class _NoReports:
    def report(self, step: int, metrics: object) -> bool:
        return True


def _workload(n: int, seed: int = 0):
    space = NasBenchGraphSpace(DATASET)
    evaluator = NasBenchGraphEvaluator(DATASET)
    rng = np.random.default_rng(seed)
    archs, seen = [], set()
    while len(archs) < n:
        arch = space.sample(rng)
        if arch.hash not in seen:
            seen.add(arch.hash)
            archs.append(arch)
    results = [evaluator.evaluate(space, a, FIDELITY, 0, _NoReports())
               for a in archs]
    return space, evaluator, archs, results


def _study(store: Store, space, evaluator, name: str):
    return store.studies.create_or_load(StudySpec(
        name=name, space=space.name, space_key=space.key, space_config=space.config(),
        task_key=evaluator.key, searcher="bench", objective=evaluator.objective,
        budget=10**9, fidelity=FIDELITY, seed=0))


def write_cases(fresh: Fresh, n: int) -> dict[str, float]:
    space, evaluator, archs, results = _workload(n)
    objective = evaluator.objective
    out: dict[str, float] = {}

    def record(store: Store, ctx: ClaimContext, i: int) -> None:
        claim = store.protocol.claim(ctx, archs[i], reuse_own=False)
        assert claim.outcome is ClaimOutcome.NEW, claim
        store.protocol.finish(claim.trial_id, results[i], objective=objective)

    def timed(name: str, per_commit: int | None) -> float:
        with Store(fresh.url()) as store:
            ctx = ClaimContext.of(_study(store, space, evaluator, name), driver="bench")
            t0 = time.perf_counter()
            for start in range(0, n, per_commit or 1):
                if per_commit is None:
                    record(store, ctx, start)
                    continue
                with store.batch():
                    for i in range(start, min(n, start + per_commit)):
                        record(store, ctx, i)
            return (time.perf_counter() - t0) / n

    out["claim + finish in Store.batch(), one commit per trial"] = timed("inline", 1)
    out[f"claim + finish in Store.batch() ({BATCH} per commit)"] = timed("batched", BATCH)
    out["claim + finish, two commits (training path)"] = timed("claimed", None)

    # a real search, against the same searcher and look-ups with no store
    url = fresh.url()
    t0 = time.perf_counter()
    with Study("e2e", space="nasbench_graph", task=DATASET, searcher="random", budget=n,
               seed=0, storage=url) as study:
        t_open = time.perf_counter()
        report = study.run()
    t_run = time.perf_counter() - t_open
    assert report.complete == n
    searcher = RandomSearch(space, seed=0)
    t0 = time.perf_counter()
    for _ in range(n):
        arch = searcher.ask(1)[0]
        r = evaluator.evaluate(space, arch, FIDELITY, 0, _NoReports())
        searcher.tell(arch, r.metrics[objective], r.metrics)
    t_bare = time.perf_counter() - t0
    out["Study.run (random), per trial"] = t_run / n
    out["same loop without a store, per trial"] = t_bare / n
    out["store's share of Study.run, per trial"] = (t_run - t_bare) / n
    return out


def populate_big(url: str, n: int, studies: int = 1) -> None:
    """``n`` complete trials (and as many architectures) in study ``big``, by bulk
    inserts (``studies`` - 1 small studies beside it)."""
    rng = random.Random(1)
    t = Base.metadata.tables
    now = utcnow()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for s in range(studies):
            conn.execute(sa.insert(t["naslab_studies"]), {
                "name": "big" if s == 0 else f"small{s}", "space": "synthetic",
                "space_key": "synthetic:v1", "space_config": "{}", "task_key": "synthetic",
                "searcher": "random", "objective": "val_accuracy", "direction": "maximize",
                "budget": n, "fidelity": 1, "seed": 0, "config": "{}", "created_at": now,
                "updated_at": now})
        chunk = 20_000
        for start in range(0, n, chunk):
            ids = range(start + 1, min(n, start + chunk) + 1)
            conn.execute(sa.insert(t["naslab_architectures"]), [
                {"id": i, "space": "synthetic", "space_key": "synthetic:v1",
                 "hash": hashlib.sha256(str(i).encode()).hexdigest(),
                 "graph": '{"nodes": [], "edges": []}', "decisions": f'{{"i": {i}}}',
                 "params": rng.randrange(10**4, 10**6), "flops": None, "created_at": now}
                for i in ids])
            vals = {i: rng.random() for i in ids}
            conn.execute(sa.insert(t["naslab_trials"]), [
                {"id": i, "study_id": 1, "number": i - 1, "architecture_id": i,
                 "decisions": f'{{"i": {i}}}', "fidelity": 1, "state": "complete", "seed": 0,
                 "worker": "bench", "objective_value": vals[i], "params": None, "flops": None,
                 "latency_ms": rng.random(), "train_seconds": 1.0, "epochs_done": 2,
                 "extra": None, "started_at": now, "finished_at": now, "error": None,
                 "reused_from": None, "driver": "bench", "heartbeat_at": None}
                for i in ids])
            conn.execute(sa.insert(t["naslab_metrics"]), [
                {"trial_id": i, "name": name, "step": step, "value": value}
                for i in ids
                for name, step, value in (("val_accuracy", 1, vals[i] / 2),
                                          ("val_accuracy", 2, vals[i] * 0.9),
                                          ("val_accuracy", None, vals[i]),
                                          ("test_accuracy", None, vals[i] - 0.01))])
        if engine.dialect.name == "postgresql":
            for name in ("naslab_architectures", "naslab_trials", "naslab_metrics"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT MAX(id) FROM {name}))")
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()


QUERIES = {
    "top 10 of the study by objective (naslab_results)":
        "SELECT trial_number, arch_hash, objective_value, val_accuracy, test_accuracy, "
        "params FROM naslab_results WHERE study = 'big' AND state = 'complete' "
        "ORDER BY objective_value DESC LIMIT 10",
    "top 10 by test_accuracy (pivoted, not indexed)":
        "SELECT trial_number, val_accuracy, test_accuracy FROM naslab_results "
        "WHERE study = 'big' ORDER BY test_accuracy DESC LIMIT 10",
    "naslab_best (best architecture per study)": "SELECT * FROM naslab_best",
    "naslab_study_summary (counts over all trials)": "SELECT * FROM naslab_study_summary",
}


def _median_time(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def read_cases(url: str, n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    with Store(url):
        pass
    populate_big(url, n, studies=3)
    print(f"  wrote {n:,} trials by bulk insert in {time.perf_counter() - t0:.1f} s")
    out = {}
    with Store(url) as store:
        plan_sql = ("EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN ") + \
            QUERIES["top 10 of the study by objective (naslab_results)"]
        _, plan = store.sql.query(plan_sql)
        print("  plan of the top-10 query:")
        for row in plan:
            print("    " + " | ".join(str(c) for c in row))
        for label, sql in QUERIES.items():
            columns, rows = store.sql.query(sql)
            assert rows, label
            out[label] = _median_time(lambda sql=sql: store.sql.query(sql))
        top = store.trials.best("big", 10)
        assert len(top) == 10 and top[0].objective_value >= top[-1].objective_value
        out["Store.best_trials(study, 10)"] = _median_time(lambda: store.trials.best("big", 10))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=2000, help="trials per write case")
    parser.add_argument("--big", type=int, default=100_000, help="trials of the read study")
    parser.add_argument("--postgres", default=None, help="also run on this PostgreSQL URL "
                        "(the database is emptied)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    backends = [("sqlite", None)] + ([("postgresql", args.postgres)] if args.postgres else [])
    figures: dict[str, dict] = {}
    for name, pg in backends:
        fresh = Fresh(pg)
        print(f"== {name}: store overhead per completed trial ({args.trials} trials)")
        writes = write_cases(fresh, args.trials)
        for label, sec in writes.items():
            print(f"  {label:<58} {sec * 1000:8.3f} ms")
        print(f"== {name}: queries over {args.big:,} stored trials (median of 5)")
        reads = read_cases(fresh.url(), args.big)
        for label, sec in reads.items():
            print(f"  {label:<58} {sec * 1000:8.1f} ms")
        figures[name] = {"write_ms": {k: v * 1000 for k, v in writes.items()},
                         "read_ms": {k: v * 1000 for k, v in reads.items()}}
        if name == "sqlite":
            batched = writes[f"claim + finish in Store.batch() ({BATCH} per commit)"] * 1000
            top = reads["top 10 of the study by objective (naslab_results)"] * 1000
            print(f"target store overhead <= 1 ms per trial with batching: {batched:.3f} ms "
                  f"({'met' if batched <= 1 else 'NOT met'})")
            worst = max(reads.values()) * 1000
            print(f"target top-10 over {args.big:,} trials < 1 s: {top:.1f} ms; slowest query "
                  f"{worst:.1f} ms ({'met' if worst < 1000 else 'NOT met'})")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
