"""Predictors and the store: training sets from stored results, cached zero-cost
proxies, versioned predictors (``naslab_proxies``, ``naslab_predictors``) and
``naslab predictor fit|eval|list|rank``.

Everything runs on real SQLite files. The stored results come from random searches
on the NAS-Bench-Graph tables (milliseconds per trial), run once per module into a
template database that each test copies; proxies are computed on tiny NB-201 networks
on the digits task. CLI commands run as in ``test_cli.py``: successes through typer's
``CliRunner``, errors through ``naslab.cli.main``.
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

from naslab import cli, cli_predictor
from naslab.components import resolve
from naslab.core.errors import ConfigError, UnknownNameError
from naslab.db.derived import NewPredictor, ProxyKey
from naslab.db.models import VIEW_SQL, Base
from naslab.db.store import Store
from naslab.predictor_store import (
    fit_from_store,
    load_from_store,
    proxies_for,
    save_to_store,
    training_set,
)
from naslab.predictors import proxies as proxies_module
from naslab.predictors.base import predictor_from_bytes
from naslab.predictors.registry import get_predictor
from naslab.study import Study
from naslab.workers.evaluator import Result
from tests.cli_helpers import invoke, one_line_error, run_main, table_rows
from tests.store_helpers import complete, make_study

GRAPH = ["--space", "nasbench_graph", "--task", "cora"]
CORA = "nasbench_graph:cora"
STUDIES = ("rand-s0", "rand-s1")
BUDGET = 40
TWIN_BUDGET = 15
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NEW_TABLES = ("naslab_proxies", "naslab_predictors")
OPTUNA_TABLES = {"studies", "trials", "version_info", "alembic_version"}


# ------------------------------------------------------------------ helpers


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Consoles wide enough that table rows and messages fit on one line each."""
    monkeypatch.setattr(cli, "console", Console(width=250))
    monkeypatch.setattr(cli, "err_console", Console(stderr=True, width=250))
    monkeypatch.setattr(cli_predictor, "console", Console(width=250))


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A store with two random table searches (seeds 0 and 1) on cora, plus a third
    study with seed 0 whose trials are all reused from the first."""
    path = tmp_path_factory.mktemp("template") / "searched.db"
    with Store(f"sqlite:///{path}") as store:
        for name, seed in zip(STUDIES, (0, 1)):
            Study(name, space="nasbench_graph", task="cora", searcher="random",
                  budget=BUDGET, seed=seed, storage=store).run()
        Study("twin", space="nasbench_graph", task="cora", searcher="random",
              budget=TWIN_BUDGET, seed=0, storage=store).run()
    return path


def copy_db(src: Path, dst: Path) -> Path:
    with closing(sqlite3.connect(src)) as a, closing(sqlite3.connect(dst)) as b:
        a.backup(b)
    return dst


@pytest.fixture
def db(template, tmp_path) -> Path:
    """A private copy of the searched template database."""
    return copy_db(template, tmp_path / "store.db")


@pytest.fixture
def url(db) -> str:
    return f"sqlite:///{db}"


@pytest.fixture(scope="module")
def graph():
    """The NAS-Bench-Graph space on cora and its evaluator."""
    return resolve("nasbench_graph", "cora")


def query(db: Path, sql: str, *args) -> list[tuple]:
    with closing(sqlite3.connect(db)) as con:
        return con.execute(sql, args).fetchall()


def names_in(db: Path) -> set[str]:
    return {n for (n,) in query(db, "SELECT name FROM sqlite_master WHERE type IN "
                                    "('table', 'view')")}


def manual_study(store: Store, space, name: str, fidelity: int = 3, seed: int = 7):
    return make_study(store, name, space=space.name, space_key=space.key,
                      space_config=space.config(), task_key=CORA, searcher="manual",
                      objective="val_accuracy", budget=10, fidelity=fidelity, seed=seed)


def add_result(store: Store, study, space, arch, value: float) -> int:
    """A self-evaluated complete trial of ``arch`` with ``val_accuracy`` = value."""
    return complete(store, study, arch, Result(metrics={"val_accuracy": value}, params=123,
                                               epochs=study.fidelity))


def distinct_samples(space, n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    archs: dict[str, object] = {}
    while len(archs) < n:
        arch = space.sample(rng)
        archs.setdefault(arch.hash, arch)
    return list(archs.values())


def assert_same_prediction(a, b) -> None:
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)


# ------------------------------------------------------------------ training_set


def test_training_set_gathers_both_studies_one_entry_per_architecture(db, url, graph):
    space, evaluator = graph
    assert evaluator.key == CORA
    with Store(url) as store:
        data = training_set(store, space, evaluator.key)

    distinct = {h for (h,) in query(
        db, "SELECT DISTINCT arch_hash FROM naslab_results WHERE state = 'complete'")}
    evaluated = query(db, "SELECT arch_hash, val_accuracy, params, study FROM naslab_results "
                          "WHERE state = 'complete' AND reused_from IS NULL")
    reused = query(db, "SELECT count(*) FROM naslab_results WHERE study = 'twin' "
                       "AND reused_from IS NOT NULL")
    assert reused == [(TWIN_BUDGET,)]  # the third study holds only reused results
    assert len(evaluated) == len(distinct) > BUDGET  # both searches contributed

    hashes = [a.hash for a in data.archs]
    assert len(hashes) == len(set(hashes)) == len(distinct)
    assert set(hashes) == distinct
    stored = {h: (value, params) for h, value, params, _ in evaluated}
    assert data.targets.shape == (len(distinct),)
    assert [float(t) for t in data.targets] == [stored[h][0] for h in hashes]
    assert [int(p) for p in data.params] == [stored[h][1] for h in hashes]
    assert data.studies == list(STUDIES)
    assert {s for *_, s in evaluated} == set(STUDIES)
    assert data.n_results == len(distinct)
    assert (data.fidelity, data.metric) == (10, "val_accuracy")
    assert data.fidelities == {10: len(distinct)}
    assert all(a.space == "nasbench_graph" for a in data.archs)

    with Store(url) as store:  # the task by name: resolved to the same key
        by_name = training_set(store, space, "cora")
    assert [a.hash for a in by_name.archs] == hashes


def test_training_set_averages_repeats_skips_nan_and_picks_a_fidelity(url, graph):
    space, _ = graph
    with Store(url) as store:
        base = training_set(store, space, CORA)
        n = len(base.archs)
        first, second = base.archs[0], base.archs[1]
        repeats = manual_study(store, space, "repeats", fidelity=10)
        add_result(store, repeats, space, first, 0.125)  # evaluated again
        add_result(store, repeats, space, second, float("nan"))  # left out
        low = manual_study(store, space, "low", fidelity=3)
        add_result(store, low, space, first, 0.5)
        add_result(store, low, space, base.archs[2], 0.25)

        data = training_set(store, space, CORA)
        assert data.fidelity == 10  # the fidelity with the most architectures
        assert data.fidelities == {3: 2, 10: n}
        assert len(data.archs) == n
        assert data.n_results == n + 1
        assert data.studies == sorted([*STUDIES, "repeats"])
        by_hash = dict(zip([a.hash for a in data.archs], data.targets))
        assert by_hash[first.hash] == pytest.approx((base.targets[0] + 0.125) / 2)
        assert by_hash[second.hash] == base.targets[1]

        at3 = training_set(store, space, CORA, fidelity=3)
        assert [a.hash for a in at3.archs] == [first.hash, base.archs[2].hash]
        assert list(at3.targets) == [0.5, 0.25]
        assert (at3.fidelity, at3.studies, at3.n_results) == (3, ["low"], 2)

        with pytest.raises(ConfigError) as info:
            training_set(store, space, CORA, fidelity=5)
    assert str(info.value) == (
        f"no results at fidelity 5; stored fidelities (epochs: architectures): 3: 2, 10: {n}"
    )


def test_training_set_errors_name_what_the_store_holds(url, graph, tmp_path):
    space, _ = graph
    with Store(url) as store:
        data = training_set(store, space, CORA)
        with pytest.raises(ConfigError) as wrong_task:
            training_set(store, space, "nasbench_graph:citeseer")
        with pytest.raises(ConfigError) as wrong_fidelity:
            training_set(store, space, CORA, fidelity=3)
        with pytest.raises(ConfigError) as wrong_metric:
            training_set(store, space, CORA, metric="nosuch_metric")
    total = 2 * BUDGET + TWIN_BUDGET  # complete trials, reused ones included
    assert str(wrong_task.value) == (
        "no complete val_accuracy results of space nasbench_graph on task "
        f"nasbench_graph:citeseer; tasks with complete results for this space: {CORA} "
        f"({total} trials)"
    )
    assert str(wrong_fidelity.value) == (
        "no results at fidelity 3; stored fidelities (epochs: architectures): "
        f"10: {len(data.archs)}"
    )
    assert "no complete nosuch_metric results" in str(wrong_metric.value)
    assert f"{CORA} ({total} trials)" in str(wrong_metric.value)

    with Store(f"sqlite:///{tmp_path / 'empty.db'}") as empty:
        with pytest.raises(ConfigError, match=r"no complete trial of this space yet "
                                              r"\(run a search first\)$"):
            training_set(empty, space, CORA)
        one = manual_study(empty, space, "one", fidelity=10)
        add_result(empty, one, space, data.archs[0], 0.5)
        with pytest.raises(ConfigError, match="only 1 architecture has results at fidelity 10"):
            fit_from_store(get_predictor("rf"), empty, space, CORA)


def test_training_set_default_fidelity_is_the_highest_among_equals(tmp_path, graph):
    space, _ = graph
    archs = distinct_samples(space, 3, seed=5)
    with Store(f"sqlite:///{tmp_path / 'fidelities.db'}") as store:
        for fidelity in (5, 3):
            study = manual_study(store, space, f"f{fidelity}", fidelity=fidelity)
            for i, arch in enumerate(archs[:2]):
                add_result(store, study, space, arch, fidelity / 10 + i)
        data = training_set(store, space, CORA)
        assert (data.fidelity, data.fidelities) == (5, {3: 2, 5: 2})
        assert list(data.targets) == [0.5, 1.5]
        study = manual_study(store, space, "f3")
        add_result(store, study, space, archs[2], 0.0)  # now 3 has the most
        assert training_set(store, space, CORA).fidelity == 3


# ------------------------------------------------------------------ saved predictors


def test_fit_save_load_versions_predict_identically(db, url, graph):
    space, _ = graph
    candidates = distinct_samples(space, 40, seed=11)
    with Store(url) as store:
        rf = get_predictor("rf", {"n_estimators": 20})
        data = fit_from_store(rf, store, space, CORA)
        v1 = save_to_store(store, "cora-model", rf, space=space, task_key=CORA,
                           target="val_accuracy", summary={"note": "forest"})
        gin = get_predictor("gin", {"members": 2, "max_epochs": 5, "hidden": 16, "layers": 2})
        fit_from_store(gin, store, space, CORA)
        v2 = save_to_store(store, "cora-model", gin, space=space, task_key=CORA,
                           target="val_accuracy", summary={"note": "gnn"})
        other = save_to_store(store, "other", rf)
        assert (v1, v2, other) == (1, 2, 1)

        for version, fitted, kind in ((1, rf, "tree"), (2, gin, "gnn")):
            loaded, record = load_from_store(store, "cora-model", version)
            assert type(loaded) is type(fitted)
            assert loaded.get_params() == fitted.get_params()
            assert_same_prediction(loaded.predict(candidates), fitted.predict(candidates))
            assert (record.name, record.version, record.kind) == ("cora-model", version, kind)
            assert (record.space, record.space_key, record.task_key, record.target) == (
                "nasbench_graph", space.key, CORA, "val_accuracy")
            assert record.n_train == len(data.archs)
            assert record.params == json.loads(json.dumps(fitted.get_params()))
            assert record.summary == {"note": "forest" if version == 1 else "gnn"}
            # a safetensors file: 8-byte header length, JSON header, tensors
            size = int.from_bytes(record.data[:8], "little")
            header = json.loads(record.data[8 : 8 + size])
            saved = json.loads(header["__metadata__"]["naslab_predictor"])
            assert (saved["kind"], saved["format_version"]) == (kind, 1)
            assert load_safetensors(record.data)  # arrays readable without naslab

        latest, record = load_from_store(store, "cora-model")
        assert record.version == 2
        assert_same_prediction(latest.predict(candidates), gin.predict(candidates))
        bare, bare_record = load_from_store(store, "other")
        assert (bare_record.space, bare_record.task_key, bare_record.summary) == (None, None, {})
        assert_same_prediction(bare.predict(candidates), rf.predict(candidates))

        listing = store.predictors.list()
        assert [(r.name, r.version, r.kind, r.data) for r in listing] == [
            ("cora-model", 1, "tree", b""), ("cora-model", 2, "gnn", b""), ("other", 1, "tree", b"")
        ]
        assert [r.version for r in store.predictors.list("cora-model")] == [1, 2]
        assert store.predictors.list("nosuch") == []

        with pytest.raises(UnknownNameError) as unknown:
            load_from_store(store, "nosuch")
        assert str(unknown.value) == "unknown predictor 'nosuch'; choose one of: cora-model, other"
        with pytest.raises(ConfigError) as no_version:
            load_from_store(store, "cora-model", 3)
        assert str(no_version.value) == "predictor 'cora-model' has no version 3; versions: 1, 2"
        with pytest.raises(UnknownNameError, match="unknown predictor 'nosuch'"):
            load_from_store(store, "nosuch", 1)
        for bad in (" ", "../evil", "a/b", "x" * 201):
            with pytest.raises(ConfigError, match="name .* is not accepted; use 1-200"):
                save_to_store(store, bad, rf)

    rows = query(db, "SELECT name, version, kind, n_train, length(data) > 0 "
                     "FROM naslab_predictors ORDER BY id")
    assert rows == [("cora-model", 1, "tree", len(data.archs), 1),
                    ("cora-model", 2, "gnn", len(data.archs), 1),
                    ("other", 1, "tree", len(data.archs), 1)]


def _fitted_forest(space):
    archs = distinct_samples(space, 30, seed=3)
    targets = np.random.default_rng(3).random(30)
    return get_predictor("rf", {"n_estimators": 5}).fit(archs, targets), archs


def _tampered(data: bytes, **changes) -> bytes:
    arrays = load_safetensors(data)
    size = int.from_bytes(data[:8], "little")
    header = json.loads(json.loads(data[8 : 8 + size])["__metadata__"]["naslab_predictor"])
    header.update(changes)
    return save_safetensors(arrays, metadata={"naslab_predictor": json.dumps(header)})


def test_saved_bytes_are_checked_before_loading(url, graph):
    space, _ = graph
    forest, archs = _fitted_forest(space)
    data = forest.to_bytes()
    assert_same_prediction(predictor_from_bytes(data).predict(archs), forest.predict(archs))

    for garbage in (b"", b"garbage, not a safetensors file", b"\0" * 64, data[: len(data) // 2]):
        with pytest.raises(ConfigError, match="not a saved naslab predictor"):
            predictor_from_bytes(garbage)
    with pytest.raises(ConfigError, match="the safetensors header has no predictor"):
        predictor_from_bytes(save_safetensors({"x": np.zeros(2)}))
    with pytest.raises(ConfigError, match=r"unknown predictor kind 'pickle'; known: \['gnn', "):
        predictor_from_bytes(_tampered(data, kind="pickle"))
    with pytest.raises(ConfigError, match="saved in format 2; this naslab reads up to 1"):
        predictor_from_bytes(_tampered(data, format_version=2))

    # the same checks when the bytes come from the database
    with Store(url) as store:
        for name, blob in (("junk", b"junk"), ("tampered", _tampered(data, kind="pickle"))):
            store.predictors.save(NewPredictor(name, blob, kind="tree", n_train=30))
        with pytest.raises(ConfigError, match="not a saved naslab predictor"):
            load_from_store(store, "junk")
        with pytest.raises(ConfigError, match="unknown predictor kind 'pickle'"):
            load_from_store(store, "tampered")


@pytest.mark.parametrize("changes", [
    {"params": {"bogus": 1}},
    {"kind": "gnn"},  # a forest's params given to the GNN predictor
])
def test_tampered_params_are_refused_with_config_error(graph, changes):
    space, _ = graph
    forest, _ = _fitted_forest(space)
    data = forest.to_bytes()
    if "params" in changes:
        changes = {"params": {**forest.get_params(), **changes["params"]}}
    with pytest.raises(ConfigError):
        predictor_from_bytes(_tampered(data, **changes))


def test_unknown_version_lists_versions_in_numeric_order(url, graph):
    space, _ = graph
    forest, _ = _fitted_forest(space)
    with Store(url) as store:
        for _ in range(11):
            save_to_store(store, "many", forest)
        with pytest.raises(ConfigError) as info:
            load_from_store(store, "many", 12)
    assert str(info.value).endswith("versions: " + ", ".join(str(v) for v in range(1, 12)))


def test_the_load_advice_printed_by_fit_works(url, graph):
    space, _ = graph
    forest, archs = _fitted_forest(space)
    with Store(url) as store:
        save_to_store(store, "advised", forest)
        from naslab import load_from_store as advised  # as printed by the CLI

        loaded, _ = advised(store, "advised")
    assert_same_prediction(loaded.predict(archs), forest.predict(archs))


# ------------------------------------------------------------------ zero-cost proxies


def test_proxies_are_computed_once_and_stored(tmp_path, monkeypatch):
    from naslab.search_spaces.nb201 import NB201Space
    from naslab.workers.task import digits_task

    space, task = NB201Space(channels=4), digits_task()
    archs = distinct_samples(space, 3)
    hashes = [a.hash for a in archs]
    calls: list[tuple[str, list[str]]] = []
    real = proxies_module.architecture_proxies

    def counting(space_, arch, task_, names, *args, **kwargs):
        calls.append((arch.hash, list(names)))
        return real(space_, arch, task_, names, *args, **kwargs)

    monkeypatch.setattr(proxies_module, "architecture_proxies", counting)
    path = tmp_path / "proxies.db"
    url = f"sqlite:///{path}"
    with Store(url) as store:
        first = proxies_for(store, space, archs, task, ("params", "synflow"))
        assert calls == [(h, ["params", "synflow"]) for h in hashes]
        assert list(first) == ["params", "synflow"]
        assert all(v.shape == (3,) and np.isfinite(v).all() for v in first.values())
        assert all(v > 0 for v in first["params"])

        rows = query(path, "SELECT a.hash, p.task_key, p.name, p.batch_size, p.seed, p.value "
                           "FROM naslab_proxies p JOIN naslab_architectures a "
                           "ON a.id = p.architecture_id")
        assert sorted(rows) == sorted(
            (h, task.key, name, 64, 0, float(first[name][i]))
            for i, h in enumerate(hashes) for name in ("params", "synflow")
        )

        calls.clear()
        second = proxies_for(store, space, archs, task, ("params", "synflow"))
        assert calls == []  # nothing computed
        for name in first:
            np.testing.assert_array_equal(second[name], first[name])

        # same architectures in another order, one of them twice
        shuffled = [archs[2], archs[0], archs[2]]
        again = proxies_for(store, space, shuffled, task, ("synflow",))
        assert calls == []
        assert list(again["synflow"]) == [first["synflow"][i] for i in (2, 0, 2)]

        third = proxies_for(store, space, archs, task, ("params", "synflow", "grad_norm"))
        assert calls == [(h, ["grad_norm"]) for h in hashes]  # only the new proxy
        for name in first:
            np.testing.assert_array_equal(third[name], first[name])
        assert np.isfinite(third["grad_norm"]).all()
    assert query(path, "SELECT count(*) FROM naslab_proxies") == [(9,)]

    # another process (a new store on the same file) reads them too
    calls.clear()
    with Store(url) as reopened:
        fourth = proxies_for(reopened, space, archs, task, ("grad_norm", "params"))
    assert calls == []
    assert list(fourth) == ["grad_norm", "params"]
    np.testing.assert_array_equal(fourth["grad_norm"], third["grad_norm"])
    np.testing.assert_array_equal(fourth["params"], first["params"])


# ------------------------------------------------------------------ CLI


def test_cli_fit_twice_list_and_rank(url, graph):
    space, _ = graph
    with Store(url) as store:
        n = len(training_set(store, space, CORA).archs)
    name = "nasbench_graph-cora-rf"
    out = invoke("predictor", "fit", *GRAPH, "--model", "rf", "--storage", url)
    assert f"fitting rf on {n} architectures ({n} results at 10 epochs, studies: " \
           f"{', '.join(STUDIES)})" in out
    assert f"saved as predictor '{name}' version 1" in out
    again = invoke("predictor", "fit", *GRAPH, "--model", "rf", "--storage", url)
    assert f"saved as predictor '{name}' version 2" in again

    rows = table_rows(invoke("predictor", "list", "--storage", url))
    assert [r[:7] for r in rows] == [
        [name, str(v), "tree", "nasbench_graph", CORA, "val_accuracy", str(n)] for v in (1, 2)
    ]
    with Store(url) as store:
        assert [(r.name, r.version) for r in store.predictors.list()] == [(name, 1), (name, 2)]

    ranked = invoke("predictor", "rank", "--name", name, "--candidates", "500", "--top", "3",
                    "--storage", url)
    rows = table_rows(ranked)
    assert [r[0] for r in rows] == ["1", "2", "3"]
    predicted = [float(r[1]) for r in rows]
    assert predicted == sorted(predicted, reverse=True)
    assert len({r[3] for r in rows}) == 3  # three distinct architectures
    assert re.search(rf"sampled 500 candidates in .*\({name} v2\)", ranked)
    older = invoke("predictor", "rank", "--name", name, "--version", "1", "--candidates", "50",
                   "--top", "2", "--storage", url)
    assert len(table_rows(older)) == 2
    assert f"({name} v1)" in older


def test_cli_eval_on_the_table_writes_both_plots(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NASLAB_STORAGE", f"sqlite:///{tmp_path / 'unused.db'}")
    out_dir = tmp_path / "plots"
    # proteins: the smallest table (2,021 rows), read in a fraction of cora's time
    out = invoke("predictor", "eval", "--space", "nasbench_graph", "--task", "proteins",
                 "--source", "table", "--model", "rf", "--sizes", "25,50", "--splits", "2",
                 "--test-size", "500", "--out", str(out_dir))
    assert re.search(r"evaluating rf on 2021 architectures from the proteins table", out)
    assert "n=25" in out and "n=50" in out
    assert "rf at n=50, split 0: tau " in out
    for png in ("tau_vs_size.png", "predicted_vs_actual.png"):
        data = (out_dir / png).read_bytes()
        assert data.startswith(PNG_MAGIC), png
        assert len(data) > 1000
    assert not (tmp_path / "unused.db").exists()  # the table source opens no store


@pytest.mark.parametrize("args, message", [
    (["fit", *GRAPH, "--model", "xgb"],
     "unknown predictor 'xgb'; choose one of: dgin, gbdt, gcn, gin, proxy:<feature>, rf"),
    (["eval", *GRAPH, "--model", "rf,xgb", "--source", "table"],
     "unknown predictor 'xgb'; choose one of: dgin, gbdt, gcn, gin, proxy:<feature>, rf"),
    (["fit", "--space", "nb201", "--source", "table", "--model", "rf"],
     "--source table needs a table benchmark's space (nasbench_graph); nb201 results come "
     "from the store (--source store)"),
    (["fit", *GRAPH, "--model", "rf"],
     "no complete val_accuracy results of space nasbench_graph on task nasbench_graph:cora; "
     "the store has no complete trial of this space yet (run a search first)"),
    (["fit", *GRAPH, "--model", "rf", "--source", "nowhere"],
     "--source must be one of store, table, got 'nowhere'"),
    (["rank", "--name", "nosuch"], "unknown predictor 'nosuch'; choose one of: "),
])
def test_cli_errors_are_one_line_exit_2(tmp_path, monkeypatch, capsys, args, message):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(url).close()  # an empty store (a missing one is refused before these checks)
    code, out, err = run_main(monkeypatch, capsys, "predictor", *args, "--storage", url)
    assert code == 2, (out, err)
    assert one_line_error(err) == message


def test_cli_eval_sizes_too_large_for_a_tiny_store(tmp_path, monkeypatch, capsys, graph):
    space, _ = graph
    url = f"sqlite:///{tmp_path / 'tiny.db'}"
    with Store(url) as store:
        Study("tiny", space="nasbench_graph", task="cora", searcher="random", budget=12,
              storage=store).run()
        total = len(training_set(store, space, CORA).archs)
    largest = total - max(10, total // 5)
    assert largest < 5
    code, out, err = run_main(monkeypatch, capsys, "predictor", "eval", *GRAPH, "--model", "rf",
                              "--sizes", "5,10", "--splits", "1", "--out",
                              str(tmp_path / "plots"), "--storage", url)
    assert code == 2, (out, err)
    assert one_line_error(err) == (
        f"none of the sizes [5, 10] leaves enough test architectures out of {total} "
        f"(at least 10 and a fifth); the largest usable size is {largest}"
    )
    assert not (tmp_path / "plots").exists()


# ------------------------------------------------------------------ tables


def test_every_naslab_table_and_view_is_prefixed():
    assert all(name.startswith("naslab_") for name in Base.metadata.tables)
    assert all(name.startswith("naslab_") for name in VIEW_SQL)
    assert set(NEW_TABLES) <= set(Base.metadata.tables)
    assert not OPTUNA_TABLES & (set(Base.metadata.tables) | set(VIEW_SQL))


@pytest.mark.parametrize("optuna_first", [True, False])
def test_store_and_optuna_share_a_database(tmp_path, graph, optuna_first):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, _ = graph
    path = tmp_path / "shared.db"
    url = f"sqlite:///{path}"

    def optuna_study():
        study = optuna.create_study(study_name="opt", storage=url, load_if_exists=True)
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)

    if optuna_first:
        optuna_study()
    forest, archs = _fitted_forest(space)
    with Store(url) as store:
        assert save_to_store(store, "shared", forest) == 1
        key = ProxyKey(space.key, CORA, 64, 0)
        store.predictors.put_proxies(key, archs[0], {"params": 5.0})
        assert store.predictors.proxies(key, [archs[0].hash]) == {
            archs[0].hash: {"params": 5.0}}
    if not optuna_first:
        optuna_study()

    tables = names_in(path)
    assert OPTUNA_TABLES <= tables
    assert set(NEW_TABLES) <= tables
    assert len(optuna.load_study(study_name="opt", storage=url).trials) == 3
    with Store(url) as store:
        assert [r.name for r in store.predictors.list()] == ["shared"]
    naslab_objects = query(path, "SELECT name FROM sqlite_master WHERE tbl_name LIKE 'naslab%'")
    for (name,) in naslab_objects:
        assert re.match(r"(sqlite_autoindex_)?(ix_|uq_)?naslab_", name), name


def test_a_store_from_before_the_predictor_tables_gets_them(db, url, graph):
    space, _ = graph
    with closing(sqlite3.connect(db)) as con:  # as a naslab from before migrations made it
        for table in NEW_TABLES:
            con.execute(f"DROP TABLE {table}")
        con.execute("DROP TABLE naslab_alembic_version")
        for view in ("naslab_best", "naslab_final_metrics"):  # what schema 0002 added
            con.execute(f"DROP VIEW {view}")
        con.execute("DROP INDEX uq_naslab_trials_one_evaluation")
        con.execute("DROP INDEX ix_naslab_trials_study_id_state_objective_value")
        con.execute("CREATE INDEX ix_naslab_trials_study_id_state ON naslab_trials "
                    "(study_id, state)")
        con.execute("ALTER TABLE naslab_trials DROP COLUMN driver")
        con.execute("ALTER TABLE naslab_trials DROP COLUMN heartbeat_at")
        con.execute("ALTER TABLE naslab_weights DROP COLUMN sha256")  # what 0003 added
        con.commit()
    assert not set(NEW_TABLES) & names_in(db)
    before = query(db, "SELECT name, budget FROM naslab_studies ORDER BY id")
    n_trials = query(db, "SELECT count(*) FROM naslab_trials")

    with Store(url) as store:
        assert set(NEW_TABLES) <= names_in(db)
        assert [s.name for s in store.studies.summaries()] == [*STUDIES, "twin"]
        assert store.predictors.list() == []
        rf = get_predictor("rf", {"n_estimators": 5})
        data = fit_from_store(rf, store, space, CORA)
        assert save_to_store(store, "after-upgrade", rf, space=space, task_key=CORA) == 1
        arch = data.archs[0]
        key = ProxyKey(space.key, CORA, 64, 0)
        store.predictors.put_proxies(key, arch, {"params": 1.0, "synflow": float("nan")})
        got = store.predictors.proxies(key, [arch.hash])
    assert got[arch.hash]["params"] == 1.0 and np.isnan(got[arch.hash]["synflow"])
    assert query(db, "SELECT name, budget FROM naslab_studies ORDER BY id") == before
    assert query(db, "SELECT count(*) FROM naslab_trials") == n_trials
    assert query(db, "SELECT name, version FROM naslab_predictors") == [("after-upgrade", 1)]
    with Store(url) as reopened:  # opening again changes nothing
        assert [r.version for r in reopened.predictors.list()] == [1]
