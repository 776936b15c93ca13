"""Tests of ``naslab db export`` / ``naslab db import`` (:mod:`naslab.db.transfer`).

Real databases only: SQLite files always; PostgreSQL too when
``NASLAB_TEST_POSTGRES_URL`` names a server the tests may use. The PostgreSQL
tests use (and empty) two more databases of that server, ``<name>_transfer_a`` and
``<name>_transfer_b``, created when missing (:func:`tests.databases.other_postgres`).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import math
import shutil
from datetime import datetime, timezone
from pathlib import Path

import networkx as nx
import pytest
import sqlalchemy as sa
import torch
import typer
from typer.testing import CliRunner

from naslab import Study
from naslab.cli_db import db_app
from naslab.core.errors import ConfigError, StudyConflictError
from naslab.db.models import Base
from naslab.db.store import Store
from naslab.db.transfer import (
    FORMAT,
    IMPORTED_RUNNING_ERROR,
    export_studies,
    import_studies,
)
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.registry import SPACES
from naslab.testing.toy_space import ToySpace
from naslab.workers.evaluator import Result
from tests.databases import other_postgres, require_postgres
from tests.store_helpers import complete, context, fail, make_study, reuse, start

TABLE_STUDY = dict(space="nasbench_graph", task="cora", seed=0)
MOO = dict(objectives="val_accuracy:max,latency_ms:min", searcher="nsga2", budget=12)
TOY = dict(space="toy", space_key="toy:v1", space_config={"depth": 2}, task_key="digits:v1",
           searcher="random", objective="val_accuracy", direction="maximize", budget=8,
           fidelity=3, seed=7, config={"workers": 1})


# --------------------------------------------------------------------------- databases

def _url(backend: str, tmp_path: Path, name: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / name}.db"
    return other_postgres(require_postgres(), f"transfer_{name}")


PAIRS = [("sqlite", "sqlite"), ("sqlite", "postgresql"), ("postgresql", "sqlite")]


@pytest.fixture(autouse=True)
def toy_space():
    """Imports recompute every architecture with its space: the toy studies' is known."""
    SPACES.register("toy", ToySpace, replace=True)
    yield
    SPACES.unregister("toy")


@pytest.fixture(params=PAIRS, ids=["-".join(p) for p in PAIRS])
def urls(request, tmp_path) -> tuple[str, str]:
    """(source URL, empty target URL)."""
    src, dst = request.param
    return _url(src, tmp_path, "a"), _url(dst, tmp_path, "b")


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path) -> str:
    """An empty target database of each backend."""
    return _url(request.param, tmp_path, "b")


@pytest.fixture(scope="session")
def populated_sqlite(tmp_path_factory) -> Path:
    """An SQLite file made by :func:`populate`, once per session."""
    path = tmp_path_factory.mktemp("transfer") / "populated.db"
    populate(f"sqlite:///{path}")
    return path


@pytest.fixture
def source(populated_sqlite, tmp_path) -> str:
    """A populated SQLite source (a copy of the session's)."""
    path = tmp_path / "a.db"
    for suffix in ("", "-wal"):
        if Path(f"{populated_sqlite}{suffix}").exists():
            shutil.copyfile(f"{populated_sqlite}{suffix}", f"{path}{suffix}")
    return f"sqlite:///{path}"


@pytest.fixture
def export_file(source, tmp_path) -> Path:
    path = tmp_path / "all.jsonl"
    with Store(source) as store:
        export_studies(store, path)
    return path


# --------------------------------------------------------------------------- data


def toy_arch(ops: tuple[str, ...], prefix: str = "n") -> Architecture:
    """A chain input -> ops -> output; ``prefix`` renames the nodes (same hash)."""
    g = nx.DiGraph()
    g.add_node(f"{prefix}_in", op="input")
    prev = f"{prefix}_in"
    for i, op in enumerate(ops):
        g.add_node(f"{prefix}{i}", op=op)
        g.add_edge(prev, f"{prefix}{i}")
        prev = f"{prefix}{i}"
    g.add_node(f"{prefix}_out", op="output")
    g.add_edge(prev, f"{prefix}_out")
    return Architecture("toy", {"ops": list(ops), "prefix": prefix}, g)


def toy_result(val: float, **kw) -> Result:
    kw.setdefault("params", 1000)
    kw.setdefault("flops", 20000)
    kw.setdefault("latency_ms", 1.5)
    kw.setdefault("train_seconds", 2.0)
    kw.setdefault("epochs", 3)
    return Result(metrics={"val_accuracy": val, "test_accuracy": val - 0.05}, **kw)


def populate(url: str) -> None:
    """Three kinds of study in one database.

    ``rand``: a random search of 20 NAS-Bench-Graph architectures (table look-ups);
    ``moo``: a multi-objective NSGA-II search created before ``rand`` but run after
    it, so its trials reuse ``rand``'s (references forward in the file); ``manual``:
    trials claimed and finished through the trial protocol, as the search loop does
    it (per-epoch metrics, weights, a NaN metric, a failed, a running and a stopped
    trial, reuses within the study and from study ``ext``).

    ``manual`` (TOY settings; architectures a..e):

    ====  =====  ===========================================================
    0     a      complete, per-epoch metrics, weights, a NaN metric
    1     a      reused from 0 (a graph with other node names, same hash)
    2     b      failed
    3     c      left running
    4     d      stopped early
    5, 6  e      reused from ext's e (twice: the study has no evaluation of e)
    7     a      reused from ext's a, although the study has its own (0)
    ====  =====  ===========================================================

    A claim reuses the best complete evaluation of the architecture, so ext's
    evaluation of a (0.9, better than manual's 0.8) is made after trial 1 and
    before trial 7: trial 1 copies manual's own evaluation, trial 7 ext's.
    """
    moo = Study("moo", storage=url, **TABLE_STUDY, **MOO)
    moo.prepare()
    with Study("rand", searcher="random", budget=20, storage=url, **TABLE_STUDY) as study:
        study.run()
    moo.run()
    moo.close()
    with Store(url) as store:
        info = make_study(store, "manual", **TOY)
        ext = make_study(store, "ext", **TOY)
        a, b, c, d, e = (toy_arch(ops) for ops in
                         [("conv",), ("conv", "pool"), ("pool",), ("pool", "pool"), ("id",)])
        worker = {"worker": "host:1"}
        ext_e = complete(store, ext, e, toy_result(0.6), **worker)

        t0 = start(store, info, a, **worker)
        for step in (1, 2, 3):
            store.protocol.report(t0, step, {"val_accuracy": 0.5 + step / 10, "loss": 1 / step})
        store.protocol.report(t0, 2, {"grad_norm": math.nan})
        weights = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([0.5, -1.0])}
        store.protocol.finish(
            t0, Result(metrics={"val_accuracy": 0.8, "test_accuracy": 0.75, "odd": math.nan},
                       params=1000, flops=2000, latency_ms=1.5, train_seconds=2.0, epochs=3,
                       weights=weights, extra={"note": "ünïcode"}),
            objective=info.objective)
        fail(store, info, b, "boom: out of memory", **worker)
        start(store, info, c, **worker)  # left running
        t4 = start(store, info, d, **worker)
        store.protocol.report(t4, 1, {"val_accuracy": 0.3})
        store.protocol.finish(t4, toy_result(0.3, epochs=1), objective=info.objective,
                              stopped=True)
        complete(store, ext, a, toy_result(0.9), **worker)
        t5 = reuse(store, info, e)
        # a study holds each architecture once: a, its own, is known, not copied again
        assert store.protocol.claim(context(info, reuse=True), a).outcome.name == "KNOWN"
        sources = {t: store.trials.get(t).reused_from for t in (t5,)}
        assert sources == {t5: ext_e}, sources
        assert [t.state for t in store.trials.list("manual")] == [
            "complete", "failed", "running", "stopped", "complete"]


def counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                    for name, t in Base.metadata.tables.items()}
    finally:
        engine.dispose()


def _norm(value):
    """A comparable value: timestamps as aware UTC datetimes, NaN as a string."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(
            timezone.utc)
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def snapshot(url: str, names: list[str] | None = None) -> dict:
    """Everything stored about the studies, without ids (references as (study, number))."""
    engine = sa.create_engine(url)
    t = Base.metadata.tables
    with engine.connect() as conn:
        keys = {tid: (s, n) for tid, s, n in conn.execute(
            sa.select(t["naslab_trials"].c.id, t["naslab_studies"].c.name,
                      t["naslab_trials"].c.number)
            .join(t["naslab_studies"], t["naslab_studies"].c.id == t["naslab_trials"].c.study_id))}
        w = t["naslab_weights"]
        weights = {keys[tid]: (fmt, bytes(data)) for tid, fmt, data in
                   conn.execute(sa.select(w.c.trial_id, w.c.format, w.c.data))}
        view = [dict(r) for r in conn.execute(sa.text("SELECT * FROM naslab_results")).mappings()]
    engine.dispose()
    for row in view:
        row.pop("trial_id")
        row["reused_from"] = keys.get(row["reused_from"])
        for k in ("started_at", "finished_at"):
            if isinstance(row[k], str):
                row[k] = datetime.fromisoformat(row[k])
    out: dict = {"view": sorted((_norm(r) for r in view if names is None or r["study"] in names),
                                key=lambda r: (r["study"], r["trial_number"]))}
    with Store(url) as store:
        for s in store.studies.summaries():
            if names is not None and s.name not in names:
                continue
            info = dataclasses.asdict(store.studies.get(s.name))
            info.pop("id")
            trials = []
            for tr in store.trials.list(s.name):
                rec = dataclasses.asdict(tr)
                for k in ("id", "study_id"):
                    rec.pop(k)
                rec["reused_from"] = keys.get(tr.reused_from)
                rec["curve"] = store.trials.learning_curve(tr.id)
                rec["weights"] = weights.get((s.name, tr.number))
                trials.append(_norm(rec))
            objectives, front = store.fronts.get(s.name)
            out[s.name] = {"info": _norm(info), "trials": trials,
                           "front": (objectives, [f.number for f in front])}
    return out


def expected_after_import(snap: dict) -> dict:
    """``snap`` as an import makes it: running trials become interrupted."""
    snap = json.loads(json.dumps(snap, default=str))  # a deep copy
    for name, study in snap.items():
        if name == "view":
            continue
        for tr in study["trials"]:
            if tr["state"] == "running":
                tr.update(state="interrupted", error=IMPORTED_RUNNING_ERROR, finished_at="set")
    for row in snap["view"]:
        if row["state"] == "running":
            row.update(state="interrupted", error=IMPORTED_RUNNING_ERROR, finished_at="set")
    return snap


def as_imported(snap: dict) -> dict:
    """``snap`` comparable with :func:`expected_after_import` (finished_at of
    imported running trials: set, not compared)."""
    snap = json.loads(json.dumps(snap, default=str))
    for name, study in snap.items():
        rows = study if name == "view" else study["trials"]
        for tr in rows:
            if tr["error"] == IMPORTED_RUNNING_ERROR:
                assert tr["finished_at"] is not None
                tr["finished_at"] = "set"
    return snap


def one_evaluation_violations(url: str) -> list:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT study_id, architecture_id, fidelity, COUNT(*) FROM naslab_trials "
            "WHERE reused_from IS NULL AND state IN ('running', 'complete') "
            "GROUP BY study_id, architecture_id, fidelity HAVING COUNT(*) > 1")).all()
    engine.dispose()
    return rows


# --------------------------------------------------------------------------- round trips


def test_round_trip(urls, tmp_path):
    src, dst = urls
    populate(src)
    path = tmp_path / "studies.jsonl"
    with Store(src) as store:
        summary = export_studies(store, path)
    assert summary.studies == ("moo", "rand", "manual", "ext")
    assert summary.trials == 12 + 20 + 5 + 2 and summary.weights == 1 and summary.pareto > 0
    lines = path.read_text(encoding="utf-8").splitlines()

    def no_constants(token):
        raise AssertionError(f"{token} in the file")

    objs = [json.loads(line, parse_constant=no_constants) for line in lines]
    header = objs[0]
    assert header["type"] == "naslab-export" and header["format"] == FORMAT
    assert header["studies"] == ["moo", "rand", "manual", "ext"]
    assert objs[-1] == {"type": "end", "lines": len(lines) - 1}
    trial = next(o for o in objs if o["type"] == "trial")
    assert {"id", "study", "architecture", "number", "state", "driver",
            "heartbeat_at"} <= set(trial)
    assert "study_id" not in trial and "architecture_id" not in trial
    assert datetime.fromisoformat(trial["started_at"]).utcoffset().total_seconds() == 0

    with Store(dst) as store:
        got = import_studies(store, path)
    assert got.studies == ("moo", "rand", "manual", "ext") and got.skipped == ()
    assert (got.trials, got.metrics, got.weights, got.pareto) == (
        summary.trials, summary.metrics, summary.weights, summary.pareto)
    assert got.architectures_new == 20 + 5 and got.architectures_reused == 0
    assert got.interrupted == 1 and got.detached == 0
    assert as_imported(snapshot(dst)) == expected_after_import(snapshot(src))
    assert one_evaluation_violations(dst) == []

    # and back again: the same file
    again = tmp_path / "again.jsonl"
    with Store(dst) as store:
        export_studies(store, again)
    strip = [json.loads(line) for line in again.read_text().splitlines()]
    assert len(strip) == len(objs)
    assert [o["type"] for o in strip] == [o["type"] for o in objs]


def test_resume_an_imported_study(urls, tmp_path):
    src, dst = urls
    populate(src)
    path = tmp_path / "rand.jsonl"
    with Store(src) as store:
        export_studies(store, path, ["rand"])
    with Store(dst) as store:
        import_studies(store, path)
        before = store.trials.list("rand")
    with Study("rand", searcher="random", budget=30, storage=dst, **TABLE_STUDY) as study:
        report = study.run()
    assert report.complete + report.failed == 30 and report.trained_this_run == 10
    with Store(dst) as store:
        after = store.trials.list("rand")
    assert len(after) == 30 and after[:20] == before
    # the searcher continues as it would have in the source
    with Study("rand", searcher="random", budget=30, storage=src, **TABLE_STUDY) as study:
        study.run()
    with Store(src) as store:
        expected = store.trials.list("rand")
    assert [t.arch_hash for t in after] == [t.arch_hash for t in expected]
    assert [t.objective_value for t in after] == [t.objective_value for t in expected]


def test_gzip_and_no_weights(source, tmp_path):
    path = tmp_path / "studies.jsonl.gz"
    with Store(source) as store:
        summary = export_studies(store, path, ["manual", "rand"], weights=False)
    assert summary.studies == ("rand", "manual") and summary.weights == 0
    with gzip.open(path, "rt") as fh:
        assert json.loads(fh.readline())["studies"] == ["rand", "manual"]
    dst = _url("sqlite", tmp_path, "b")
    with Store(dst) as store:
        got = import_studies(store, path)
        assert got.studies == ("rand", "manual") and got.weights == 0
        assert store.trials.weights(store.trials.list("manual")[0].id) is None
        assert store.trials.count("rand") == 20


def test_text_file_objects(source):
    buf = io.StringIO()
    with Store(source) as store:
        summary = export_studies(store, buf, ["manual"])
    assert summary.path is None
    buf.seek(0)
    with Store("sqlite://") as store:
        got = import_studies(store, buf)
        assert got.studies == ("manual",)
        weights = store.trials.weights(store.trials.list("manual")[0].id)
    assert torch.equal(weights["w"], torch.arange(6.0).reshape(2, 3))


def test_reuses_of_trials_outside_the_file(source, tmp_path):
    """Only ``manual`` and ``moo``: their reuses of ``ext`` and ``rand`` trials."""
    path = tmp_path / "part.jsonl"
    with Store(source) as store:
        export_studies(store, path, ["manual", "moo"])
    dst = _url("sqlite", tmp_path, "b")
    with Store(dst) as store:
        got = import_studies(store, path)
        manual = store.trials.list("manual")
        moo = store.trials.list("moo")
    assert got.detached == 1 + 12
    by_number = {t.number: t for t in manual}
    # e, reused from ext (not imported): it becomes the evaluation
    assert by_number[4].reused_from is None and by_number[4].state == "complete"
    assert all(t.reused_from is None and t.state == "complete" for t in moo)
    assert one_evaluation_violations(dst) == []


def test_a_second_evaluation_becomes_a_reuse(export_file, tmp_path):
    """A file from a database without the one-evaluation index: two evaluations of
    an architecture in a study become an evaluation and its reuse."""
    lines = []
    for line in export_file.read_text().splitlines():
        obj = json.loads(line)
        lines.append(json.dumps(obj))
        if obj["type"] == "trial" and obj["study"] == "manual" and obj["number"] == 0:
            lines.append(json.dumps({**obj, "id": 10**6, "number": 99}))
        if obj["type"] == "end":
            lines[-1] = json.dumps({**obj, "lines": obj["lines"] + 1})
    legacy = tmp_path / "legacy.jsonl"
    legacy.write_text("\n".join(lines) + "\n")
    dst = _url("sqlite", tmp_path, "b")
    with Store(dst) as store:
        import_studies(store, legacy, studies=["manual"])
        trials = store.trials.list("manual")
        first, second = trials[0], trials[-1]
    assert first.reused_from is None and second.reused_from == first.id
    assert (first.state, second.state) == ("complete", "interrupted")
    assert one_evaluation_violations(dst) == []


def test_extra_and_missing_columns(export_file, tmp_path):
    """Keys the target does not have are ignored; columns the file lacks get NULL."""
    lines = []
    for line in export_file.read_text().splitlines():
        obj = json.loads(line)
        if obj["type"] == "trial":
            obj.pop("driver", None)
            obj["worker"] = None
            obj["a_future_column"] = [1, 2]
        lines.append(json.dumps(obj))
    changed = tmp_path / "changed.jsonl"
    changed.write_text("\n".join(lines) + "\n")
    with Store(_url("sqlite", tmp_path, "b")) as store:
        got = import_studies(store, changed)
        assert got.trials == 39
        assert {t.worker for t in store.trials.list("rand")} == {None}


# --------------------------------------------------------------------------- conflicts


def test_importing_twice_is_a_conflict(export_file, target):
    with Store(target) as store:
        import_studies(store, export_file)
    before = counts(target)
    snap = snapshot(target)
    with Store(target) as store, pytest.raises(StudyConflictError) as err:
        import_studies(store, export_file)
    message = str(err.value)
    assert "'moo'" in message and "'rand'" in message
    assert "--rename" in message and "--skip-existing" in message
    assert counts(target) == before and snapshot(target) == snap


def test_skip_existing(export_file, target):
    with Store(target) as store:
        first = import_studies(store, export_file, studies=["rand"])
        assert first.studies == ("rand",)
        got = import_studies(store, export_file, on_conflict="skip")
        assert got.skipped == ("rand",) and got.studies == ("moo", "manual", "ext")
        assert got.trials == 12 + 5 + 2 and got.architectures_reused == 12
        assert store.trials.count("rand") == 20
        # moo reused rand's trials of the file; rand was skipped: moo has its own now
        assert all(t.reused_from is None for t in store.trials.list("moo"))
        assert store.trials.list("manual")[4].reused_from is not None
        nothing = import_studies(store, export_file, on_conflict="skip")
        assert nothing.studies == () and nothing.trials == 0 and len(nothing.skipped) == 4
    assert one_evaluation_violations(target) == []


def test_rename(export_file, source, target):
    renames = {"moo": "moo-2", "rand": "rand-2", "manual": "manual-2", "ext": "ext-2"}
    with Store(target) as store:
        import_studies(store, export_file)
        got = import_studies(store, export_file, rename=renames)
        assert got.studies == tuple(renames.values())
        assert got.architectures_new == 0 and got.architectures_reused == 25
        with pytest.raises(ConfigError, match="not among the studies"):
            import_studies(store, export_file, studies=["rand"], rename={"moo": "x"})
        with pytest.raises(ConfigError, match="distinct names"):
            import_studies(store, export_file, rename={"moo": "x", "rand": "x"})
    snap = as_imported(snapshot(target))
    for old, new in renames.items():
        copy, orig = snap[new], snap[old]
        assert copy["info"] == {**orig["info"], "name": new}
        for tc, to in zip(copy["trials"], orig["trials"]):
            if to["reused_from"] is not None:
                study, number = to["reused_from"]
                assert tc["reused_from"] == [renames[study], number]
                tc["reused_from"] = to["reused_from"]
        assert copy["trials"] == orig["trials"] and copy["front"] == orig["front"]
    assert one_evaluation_violations(target) == []


def test_unknown_names(export_file, source, tmp_path):
    with Store(source) as store, pytest.raises(ConfigError, match="no study named 'nope'"):
        export_studies(store, tmp_path / "x.jsonl", ["nope"])
    assert not (tmp_path / "x.jsonl").exists()
    with Store(_url("sqlite", tmp_path, "b")) as store:
        with pytest.raises(ConfigError, match="has no study 'nope'; it holds: moo, rand"):
            import_studies(store, export_file, studies=["nope"])
        with pytest.raises(ConfigError, match="on_conflict"):
            import_studies(store, export_file, on_conflict="replace")
        with pytest.raises(ConfigError, match="no file"):
            import_studies(store, tmp_path / "missing.jsonl")


# --------------------------------------------------------------------------- bad files


def _rewrite(path: Path, lines: list[str], tmp_path: Path, name: str = "bad.jsonl") -> Path:
    out = tmp_path / name
    out.write_text("".join(lines), encoding="utf-8")
    return out


def _bad_files(export_file: Path, tmp_path: Path) -> list[tuple[Path, str]]:
    """Broken variants of the export, with the message each must raise."""
    lines = export_file.read_text(encoding="utf-8").splitlines(keepends=True)
    objs = [json.loads(line) for line in lines]
    cases = []
    # bad JSON late in the file (rows of earlier studies were inserted by then)
    k = max(i for i, o in enumerate(objs) if o["type"] == "metric")
    bad = lines[:k] + ['{"type": "metric", "trial": 3, "na\n'] + lines[k + 1:]
    cases.append((_rewrite(export_file, bad, tmp_path, "json.jsonl"),
                  f"line {k + 1}: is not valid JSON"))
    # the architecture line of manual's first trial is gone
    first = next(i for i, o in enumerate(objs) if o["type"] == "trial" and o["study"] == "manual")
    arch = objs[first]["architecture"]
    a = next(i for i, o in enumerate(objs) if o["type"] == "architecture"
             and [o["space_key"], o["hash"]] == arch and i > objs.index(
                 next(o for o in objs if o.get("name") == "manual")))
    gone = lines[:a] + lines[a + 1:]
    cases.append((_rewrite(export_file, gone, tmp_path, "arch.jsonl"),
                  f"line {first}: trial {objs[first]['id']} refers to architecture"))
    # truncated: at a line boundary, and within a line
    cases.append((_rewrite(export_file, lines[:-5], tmp_path, "cut.jsonl"), "truncated"))
    text = export_file.read_text(encoding="utf-8")
    cut = tmp_path / "cut2.jsonl"
    cut.write_text(text[: len(text) - 100], encoding="utf-8")
    cases.append((cut, f"line {len(lines) - 1}: is not valid JSON"))
    # a header that is missing, or too new
    cases.append((_rewrite(export_file, lines[1:], tmp_path, "nohead.jsonl"),
                  "line 1: is not a naslab export header"))
    newer = json.dumps({**objs[0], "format": FORMAT + 1}) + "\n"
    cases.append((_rewrite(export_file, [newer] + lines[1:], tmp_path, "new.jsonl"),
                  f"line 1: the file has export format {FORMAT + 1} (written by naslab"))
    # an unknown line type, a trial of an unknown study, a lost line
    t = objs.index(next(o for o in objs if o["type"] == "trial"))
    unknown = lines[:t] + ['{"type": "trail"}\n'] + lines[t:]
    cases.append((_rewrite(export_file, unknown, tmp_path, "type.jsonl"),
                  f"line {t + 1}: has unknown type 'trail'"))
    other = json.dumps({**objs[t], "study": "elsewhere"}) + "\n"
    cases.append((_rewrite(export_file, lines[:t] + [other] + lines[t + 1:], tmp_path,
                           "study.jsonl"), f"line {t + 1}: the trial's study is 'elsewhere'"))
    m = objs.index(next(o for o in objs if o["type"] == "metric"))
    cases.append((_rewrite(export_file, lines[:m] + lines[m + 1:], tmp_path, "lost.jsonl"),
                  "lines are missing"))
    wrong = json.dumps({**objs[t], "number": "one"}) + "\n"
    cases.append((_rewrite(export_file, lines[:t] + [wrong] + lines[t + 1:], tmp_path,
                           "value.jsonl"),
                  f"line {t + 1}: the trial's 'number' must be an integer"))
    broken_gz = tmp_path / "broken.jsonl.gz"
    broken_gz.write_bytes(gzip.compress(text.encode())[:-200])
    cases.append((broken_gz, "corrupted or truncated"))
    return cases


def test_bad_files_change_nothing(export_file, target, tmp_path):
    with Store(target) as store:
        import_studies(store, export_file, studies=["manual"], rename={"manual": "kept"})
    before, snap = counts(target), snapshot(target)
    for path, message in _bad_files(export_file, tmp_path):
        with Store(target) as store, pytest.raises(ConfigError) as err:
            import_studies(store, path)
        assert message in str(err.value), (path.name, str(err.value))
        assert counts(target) == before, path.name
    assert snapshot(target) == snap


# --------------------------------------------------------------------------- CLI


def _cli():
    app = typer.Typer()
    app.add_typer(db_app, name="db")

    @app.command()
    def version() -> None:  # a second command, so that "db" stays a sub-command
        """Unused."""

    return app


def test_cli_export_and_import(source, tmp_path):
    app, runner = _cli(), CliRunner()
    out = tmp_path / "cli.jsonl"
    result = runner.invoke(app, ["db", "export", str(out), "--study", "rand", "--study",
                                 "manual", "--no-weights", "--storage", source])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().startswith("exported 2 studies (rand, manual): 25 trials")
    assert len(result.stdout.strip().splitlines()) == 1

    dst = _url("sqlite", tmp_path, "b")
    result = runner.invoke(app, ["db", "import", str(out), "--storage", dst])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("imported 2 studies (rand, manual): 25 trials")
    assert "1 running trials imported as interrupted" in result.stdout

    result = runner.invoke(app, ["db", "import", str(out), "--storage", dst])
    assert isinstance(result.exception, StudyConflictError)
    assert "--rename rand=rand-2" in str(result.exception)

    result = runner.invoke(app, ["db", "import", str(out), "--rename", "rand=r2",
                                 "--skip-existing", "--storage", dst])
    assert result.exit_code == 0, result.output
    assert "imported 1 study (r2): 20 trials" in result.stdout
    assert "skipped 1 existing: manual" in result.stdout

    result = runner.invoke(app, ["db", "import", str(out), "--study", "manual",
                                 "--rename", "manual", "--storage", dst])
    assert isinstance(result.exception, ConfigError)
    assert "OLD=NEW" in str(result.exception)
    with Store(dst) as store:
        assert sorted(s.name for s in store.studies.summaries()) == ["manual", "r2", "rand"]


def test_cli_help():
    result = CliRunner().invoke(_cli(), ["db", "--help"])
    assert result.exit_code == 0
    assert "export" in result.stdout and "import" in result.stdout
