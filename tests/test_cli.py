"""The ``naslab`` command line, run through its real entry points.

Successful commands run in-process with typer's ``CliRunner`` on ``naslab.cli.app``;
errors go through ``naslab.cli.main`` (which turns naslab's errors into one line on
stderr and exit code 2), in-process or as ``python -m naslab.cli``. Most searches use
the NAS-Bench-Graph tables (milliseconds); one trains tiny chain networks on digits.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

import naslab
from naslab import cli
from naslab.db.store import Store
from tests.cli_helpers import invoke, one_line_error, run_main, table_rows

REPO = Path(__file__).resolve().parents[1]
GRAPH = ["--space", "nasbench_graph", "--task", "cora"]
S0 = "nasbench_graph-cora-evolution-s0"
ACCEPTED_URLS = (
    "an SQLAlchemy URL such as sqlite:///path.db or postgresql+psycopg://user@host/db"
)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Consoles wide enough that table rows and messages fit on one line each."""
    monkeypatch.setattr(cli, "console", Console(width=250))
    monkeypatch.setattr(cli, "err_console", Console(stderr=True, width=250))


@pytest.fixture
def db(tmp_path):
    return tmp_path / "x.db"


@pytest.fixture
def url(db):
    return f"sqlite:///{db}"


@pytest.fixture
def store_url(url):
    """``url`` with an empty store made there (read commands refuse a missing file)."""
    Store(url).close()
    return url


def sql_json(url: str, query: str) -> list[dict]:
    return json.loads(invoke("sql", query, "--format", "json", "--storage", url))


def graph_search(url: str, *extra: str) -> str:
    return invoke("search", *GRAPH, "--storage", url, *extra)


def trials_of(url: str, study: str) -> list[tuple]:
    with Store(url) as store:
        return [(t.id, t.number, t.arch_hash, t.state, t.objective_value, t.reused_from)
                for t in store.trials.list(study)]


# ------------------------------------------------------------------ end to end


def test_python_m_naslab_cli_help_and_usage_errors(tmp_path):
    env = {**os.environ, "COLUMNS": "80"}

    def naslab(*args):
        return subprocess.run([sys.executable, "-m", "naslab.cli", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)

    helped = naslab("--help")
    assert helped.returncode == 0, helped.stderr
    for command in ("search", "studies", "results", "sql", "export", "spaces"):
        assert command in helped.stdout

    bad_int = naslab("search", "--budget", "abc")
    assert bad_int.returncode == 2
    assert "Invalid value for '--budget'" in bad_int.stderr
    assert "Traceback" not in bad_int.stderr + bad_int.stdout
    assert not (tmp_path / "naslab.db").exists()


def test_python_m_naslab_cli_error_is_one_line_exit_2(tmp_path):
    # a long message at 80 columns: still one line, not wrapped by the console
    proc = subprocess.run(
        [sys.executable, "-m", "naslab.cli", "search", "--space", "nasbench_graph",
         "--task", "nosuch", "--storage", f"sqlite:///{tmp_path / 'x.db'}"],
        cwd=tmp_path, env={**os.environ, "COLUMNS": "80"}, capture_output=True, text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: unknown task for space nasbench_graph 'nosuch'; choose one of: arxiv, "
        "citeseer, computers, cora, cs, photo, physics, proteins, pubmed\n"
    )
    assert proc.stdout == ""


# ------------------------------------------------------------------ search


def test_search_creates_study_prints_trials_and_best(url):
    out = invoke("search", *GRAPH, "--budget", "5", "--storage", url)
    assert out.startswith(f"study {S0}: space NasBenchGraphSpace(dataset='cora'), task cora, "
                          "searcher evolution, budget 5, 10 epochs, seed 0, in-process, "
                          f"store {url}")
    trials = trials_of(url, S0)
    assert [t[1] for t in trials] == [0, 1, 2, 3, 4]
    assert all(t[3] == "complete" for t in trials)
    for _, number, _, _, value, _ in trials:
        assert f"trial {number:>4} complete  val_accuracy={value:.4f}" in out
    assert "trials" in out and "5/5" in out
    assert re.search(r"^done in \d+:\d\d: ", out, flags=re.M)
    assert "5 evaluated and 0 reused this run; study has 5 complete, 0 failed of budget 5" in out
    best = max(trials, key=lambda t: t[4])
    best_line = next(line for line in out.splitlines() if line.startswith("best: "))
    assert best_line.startswith(f"best: trial {best[1]} val_accuracy={best[4]:.4f} ")
    with Store(url) as store:
        info = store.studies.get(S0)
        top = store.trials.best(S0, 1)[0]
    assert (info.space, info.searcher, info.budget, info.fidelity, info.seed) == (
        "nasbench_graph", "evolution", 5, 10, 0)
    assert f"test_accuracy={top.metrics['test_accuracy']:.4f} params={top.params}" in best_line
    assert best_line.endswith(f"decisions={json.dumps(top.decisions)}")


def test_rerunning_with_a_larger_budget_resumes(url):
    graph_search(url, "--budget", "4")
    first = trials_of(url, S0)
    assert len(first) == 4

    out = graph_search(url, "--budget", "7")
    after = trials_of(url, S0)
    assert len(after) == 7
    assert after[:4] == first  # kept as they were, not re-run
    assert [t[1] for t in after] == list(range(7))
    assert all(t[3] == "complete" for t in after)
    printed = [line.split()[1] for line in out.splitlines() if line.startswith("  trial ")]
    assert printed == ["4", "5", "6"]
    assert "study has 7 complete, 0 failed of budget 7" in out
    rows = sql_json(url, "SELECT budget, count(t.id) AS n FROM naslab_studies s "
                         "JOIN naslab_trials t ON t.study_id = s.id GROUP BY s.id")
    assert rows == [{"budget": 7, "n": 7}]

    # the same budget again: nothing left to do
    again = graph_search(url, "--budget", "7")
    assert "0 evaluated and 0 reused this run; study has 7 complete" in again
    assert trials_of(url, S0) == after


def test_another_study_reuses_results_of_evaluated_architectures(url):
    graph_search(url, "--budget", "6")
    original = {t[2]: t for t in trials_of(url, S0) if t[5] is None}
    assert len(original) == 6

    # same searcher and seed under another name: the same proposals, all reused
    out = graph_search(url, "--budget", "6", "--study", "twin")
    assert "0 evaluated and 6 reused this run; study has 6 complete" in out
    assert out.count(" reused    val_accuracy=") == 6
    twin = sql_json(url, "SELECT arch_hash, reused_from, objective_value, state "
                         "FROM naslab_results WHERE study = 'twin' ORDER BY trial_number")
    assert [(r["arch_hash"], r["reused_from"], r["objective_value"], r["state"]) for r in twin] \
        == [(t[2], t[0], t[4], "complete") for t in trials_of(url, S0)]

    # another seed and searcher: reused exactly where an architecture was evaluated before
    graph_search(url, "--budget", "30", "--seed", "1", "--searcher", "random")
    rows = sql_json(url, "SELECT trial_id, arch_hash, reused_from FROM naslab_results "
                         "WHERE study = 'nasbench_graph-cora-random-s1' ORDER BY trial_number")
    assert len(rows) == 30
    evaluated = {h: t[0] for h, t in original.items()}
    for row in rows:
        assert row["reused_from"] == evaluated.get(row["arch_hash"])
        evaluated.setdefault(row["arch_hash"], row["trial_id"])


def test_studies_lists_every_study(url):
    graph_search(url, "--budget", "5")
    graph_search(url, "--budget", "3", "--seed", "2", "--searcher", "random")
    rows = table_rows(invoke("studies", "--storage", url))
    with Store(url) as store:
        best = {s.name: s.best_objective for s in store.studies.summaries()}
    assert rows == [
        [S0, "nasbench_graph", "nasbench_graph:cora", "evolution", "5", "5", "0", "0",
         f"{best[S0]:.4f}"],
        ["nasbench_graph-cora-random-s2", "nasbench_graph", "nasbench_graph:cora", "random",
         "3", "3", "0", "0", f"{best['nasbench_graph-cora-random-s2']:.4f}"],
    ]


def test_studies_of_an_empty_store(store_url):
    assert table_rows(invoke("studies", "--storage", store_url)) == []


# ------------------------------------------------------------------ results


def test_results_top_3_ordered_by_objective(url):
    graph_search(url, "--budget", "8")
    rows = table_rows(invoke("results", "--study", S0, "--top", "3", "--storage", url))
    assert len(rows) == 3
    expected = sql_json(url, f"SELECT trial_number, objective_value, arch_hash, decisions "
                             f"FROM naslab_results WHERE study = '{S0}' "
                             f"ORDER BY objective_value DESC, trial_id LIMIT 3")
    assert [r[0] for r in rows] == [str(e["trial_number"]) for e in expected]
    assert [r[1] for r in rows] == [f"{e['objective_value']:.4f}" for e in expected]
    objectives = [float(r[1]) for r in rows]
    assert objectives == sorted(objectives, reverse=True)
    for row, e in zip(rows, expected):
        assert row[8] == e["arch_hash"][:10]
        assert row[9] == " ".join(f"{k}={v}" for k, v in json.loads(e["decisions"]).items())


def test_results_of_unknown_study_lists_the_stored_ones(url, monkeypatch, capsys):
    graph_search(url, "--budget", "2")
    graph_search(url, "--budget", "2", "--study", "other")
    code, out, err = run_main(monkeypatch, capsys, "results", "--study", "nope",
                              "--storage", url)
    assert code == 2 and out == ""
    assert one_line_error(err) == f"no study named 'nope'; stored studies: {S0}, other"


def test_results_top_must_be_positive(url, monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "results", "--study", S0, "--top", "0",
                            "--storage", url)
    assert code == 2
    assert one_line_error(err) == "--top must be >= 1, got 0"


# ------------------------------------------------------------------ sql


def test_sql_table_csv_and_json(url):
    graph_search(url, "--budget", "4")
    trials = trials_of(url, S0)
    query = ("SELECT study, trial_number, state, val_accuracy, reused_from FROM naslab_results "
             "ORDER BY trial_number")

    table = table_rows(invoke("sql", query, "--storage", url))
    assert table == [[S0, str(t[1]), "complete", f"{t[4]:.4f}", ""] for t in trials]

    text = invoke("sql", query, "--format", "csv", "--storage", url)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["study", "trial_number", "state", "val_accuracy", "reused_from"]
    assert len(rows) == 1 + len(trials)
    assert [(r[0], int(r[1]), r[2], float(r[3]), r[4]) for r in rows[1:]] == [
        (S0, t[1], "complete", t[4], "") for t in trials]

    data = json.loads(invoke("sql", query, "--format", "json", "--storage", url))
    assert data == [{"study": S0, "trial_number": t[1], "state": "complete",
                     "val_accuracy": t[4], "reused_from": None} for t in trials]


def test_sql_metrics_csv_as_in_the_readme(url):
    graph_search(url, "--budget", "1")
    text = invoke("sql", "SELECT name, step, value FROM naslab_metrics WHERE trial_id = 1 "
                         "ORDER BY name", "--format", "csv", "--storage", url)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["name", "step", "value"]
    assert {r[0] for r in rows[1:]} >= {"val_accuracy", "test_accuracy"}


def test_sql_table_shows_text_as_is(store_url):
    out = invoke("sql", "SELECT '[/x] and [bold]y' AS \"[/c]\"", "--storage", store_url)
    assert "┃ [/c]" in out
    assert table_rows(out) == [["[/x] and [bold]y"]]


@pytest.mark.parametrize("statement", [
    "INSERT INTO naslab_metrics (trial_id, name, step, value) VALUES (1, 'x', NULL, 1.0)",
    "DELETE FROM naslab_trials",
    "DROP TABLE naslab_metrics",
    "DROP VIEW naslab_results",
    "UPDATE naslab_studies SET budget = 1",
])
def test_sql_refuses_writes(url, monkeypatch, capsys, statement):
    graph_search(url, "--budget", "3")
    before = trials_of(url, S0)
    metrics = sql_json(url, "SELECT * FROM naslab_metrics ORDER BY id")
    capsys.readouterr()

    code, out, err = run_main(monkeypatch, capsys, "sql", statement, "--storage", url)
    assert code == 2 and out == ""
    assert one_line_error(err) == "attempt to write a readonly database"
    assert trials_of(url, S0) == before
    assert sql_json(url, "SELECT * FROM naslab_metrics ORDER BY id") == metrics
    assert sql_json(url, "SELECT budget FROM naslab_studies") == [{"budget": 3}]


@pytest.mark.parametrize("query, message", [
    ("SELEC * FRM naslab_results", 'near "SELEC": syntax error'),
    ("SELECT nope FROM naslab_results", "no such column: nope"),
    ("SELECT 1; SELECT 2",
     "only one SQL statement is allowed per query; remove what follows the ';'"),
    ("  ", "the query is empty; give one SQL statement such as SELECT ..."),
])
def test_sql_malformed_is_one_line_error(store_url, monkeypatch, capsys, query, message):
    code, out, err = run_main(monkeypatch, capsys, "sql", query, "--storage", store_url)
    assert code == 2 and out == ""
    assert one_line_error(err) == message


def test_sql_unknown_format(url, monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "sql", "SELECT 1", "--format", "xml",
                            "--storage", url)
    assert code == 2
    assert one_line_error(err) == "--format must be one of table, csv, json; got 'xml'"


# ------------------------------------------------------------------ export


def test_trained_chain_search_exports_a_loadable_model(tmp_path, url, monkeypatch):
    out = invoke("search", "--space", "chain", "--epochs", "1", "--budget", "2",
                 "--in-process", "--storage", url)
    study = "chain-digits-evolution-s0"
    assert f"study {study}: space ChainSpace(" in out
    assert "2 evaluated and 0 reused this run; study has 2 complete, 0 failed of budget 2" in out
    with Store(url) as store:
        best = store.trials.best(study, 1)[0]
        weights = store.trials.weights(best.id)
    assert weights

    monkeypatch.chdir(tmp_path)  # the default folder is ./naslab-exports/STUDY
    printed = invoke("export", "--study", study, "--storage", url)
    folder = Path("naslab-exports") / study
    assert printed.strip() == (
        f"exported to {folder}: architecture.json, trial.json, weights.safetensors")
    assert sorted(p.name for p in folder.iterdir()) == [
        "architecture.json", "trial.json", "weights.safetensors"]

    meta = json.loads((folder / "trial.json").read_text())
    assert (meta["study"], meta["trial_number"], meta["fidelity"], meta["seed"]) == (
        study, best.number, 1, 0)
    assert meta["objective_value"] == best.objective_value
    assert meta["model_io"] == {"name": "digits", "input_shape": [1, 8, 8], "num_classes": 10}
    arch_json = json.loads((folder / "architecture.json").read_text())
    assert arch_json["hash"] == best.arch_hash
    assert arch_json["decisions"] == best.decisions

    space, arch, module = naslab.load_exported(folder)
    assert space.name == "chain" and arch.hash == best.arch_hash
    batch = naslab.digits_task().sample_batch(7)
    with torch.no_grad():
        logits = module(batch)
    assert logits.shape == (7, 10)
    state = module.state_dict()
    assert set(state) == set(weights)
    for key, value in weights.items():
        assert torch.equal(state[key], value), key


def test_export_of_a_table_study_has_no_weights(tmp_path, url, monkeypatch, capsys):
    graph_search(url, "--budget", "4")
    folder = tmp_path / "exp"
    printed = invoke("export", "--study", S0, "--out", str(folder), "--storage", url)
    assert printed.strip() == (f"exported to {folder}: architecture.json, trial.json "
                               "(no trained weights: a table benchmark)")
    assert sorted(p.name for p in folder.iterdir()) == ["architecture.json", "trial.json"]
    meta = json.loads((folder / "trial.json").read_text())
    with Store(url) as store:
        best = store.trials.best(S0, 1)[0]
    assert meta["weights"] is None and meta["model_io"] is None
    assert meta["objective_value"] == best.objective_value
    assert meta["metrics"]["test_accuracy"] == best.metrics["test_accuracy"]
    assert json.loads((folder / "architecture.json").read_text())["decisions"] == best.decisions
    with pytest.raises(naslab.NaslabError, match="input shape"):
        naslab.load_exported(folder)

    code, _, err = run_main(monkeypatch, capsys, "export", "--study", "nope",
                            "--out", str(tmp_path / "nope"), "--storage", url)
    assert code == 2
    assert one_line_error(err) == f"no study named 'nope'; stored studies: {S0}"
    assert not (tmp_path / "nope").exists()


# ------------------------------------------------------------------ spaces, help


def test_spaces_lists_spaces_tasks_and_searchers(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per space
    out = invoke("spaces")
    rows = {r[0]: r for r in table_rows(out)}
    assert set(rows) == {"nb201", "nb101", "darts", "mbv3", "hybrid", "chain", "gnn",
                         "nasbench_graph"}
    assert rows["nb201"][3] == rows["chain"][3] == "digits"
    assert rows["nasbench_graph"][3] == "cora"
    assert "digits" in rows["chain"][4].split(", ")
    assert {"cora", "citeseer", "pubmed"} <= set(rows["nasbench_graph"][4].split(", "))
    (searchers,) = [line for line in out.splitlines() if line.startswith("searchers: ")]
    from naslab.searchers import SEARCHERS

    assert set(searchers.removeprefix("searchers: ").split(", ")) == set(SEARCHERS)


def test_help():
    result = CliRunner().invoke(cli.app, ["--help"])
    assert result.exit_code == 0
    assert "neural architecture search" in result.stdout
    search_help = invoke("search", "--help")
    for option in ("--space", "--task", "--searcher", "--budget", "--epochs", "--seed",
                   "--study", "--storage", "--space-opt", "--train-opt"):
        assert option in search_help


def test_usage_errors_through_main(monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "search", "--bogus")
    assert code == 2 and "No such option: --bogus" in err and "Traceback" not in err
    code, _, err = run_main(monkeypatch, capsys, "nosuchcommand")
    assert code == 2 and "No such command 'nosuchcommand'" in err


def test_ctrl_c_during_a_search_says_how_to_resume(url, monkeypatch, capsys):
    def interrupted(self, callback=None, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr("naslab.study.Study.run", interrupted)
    code, _, err = run_main(monkeypatch, capsys, "search", *GRAPH, "--storage", url)
    assert code == 130
    assert err.strip() == "interrupted; re-run the same command to resume"


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("args, message", [
    (["--space", "foo"], "unknown search space 'foo'; choose one of: chain, darts, gnn, hybrid, "
     "mbv3, nasbench_graph, nb101, nb201"),
    (["--space", "nasbench_graph", "--task", "foo"],
     "unknown task for space nasbench_graph 'foo'; choose one of: arxiv, citeseer, computers, "
     "cora, cs, photo, physics, proteins, pubmed"),
    (["--task", "foo"], "unknown task for space nb201 'foo'; choose one of: cifar10, digits"),
    (["--searcher", "foo"], "unknown searcher 'foo'; choose one of: evolution, guided-evolution, "
     "guided-optuna, local, nsga2, optuna-cmaes, optuna-gp, optuna-nsga2, optuna-nsga3, "
     "optuna-qmc, optuna-random, optuna-tpe, random"),
    (["--objectives", "val_accuracy,latency"],
     "searcher 'evolution' optimises one objective, but 2 were given (val_accuracy:max, "
     "latency_ms:min); use a multi-objective searcher: guided-evolution, guided-optuna, "
     "nsga2, optuna-cmaes, optuna-gp, optuna-nsga2, optuna-nsga3, optuna-qmc, "
     "optuna-random, optuna-tpe, random"),
    (["--objectives", "loss"], "objective 'loss' needs a direction ('loss:max' or 'loss:min'); "
     "metrics with a default direction: val_accuracy, test_accuracy, params, flops, "
     "latency_ms"),
    (["--budget", "0"], "budget must be an integer >= 1, got 0"),
    (["--epochs", "0"], "epochs must be an integer >= 1, got 0"),
    (["--seed", "-1"], "seed must be an integer >= 0, got -1"),
    (["--space-opt", "channels"], "space option 'channels' is not KEY=VALUE (e.g. channels=16)"),
    (["--space-opt", "=16"], "space option '=16' is not KEY=VALUE (e.g. channels=16)"),
    (["--space-opt", "[/x]"], "space option '[/x]' is not KEY=VALUE (e.g. channels=16)"),
    (["--searcher-opt", "population_size"],
     "searcher option 'population_size' is not KEY=VALUE (e.g. channels=16)"),
    (["--train-opt", "lr"], "train option 'lr' is not KEY=VALUE (e.g. channels=16)"),
])
def test_search_refuses_bad_input(db, url, monkeypatch, capsys, args, message):
    code, out, err = run_main(monkeypatch, capsys, "search", *args, "--storage", url)
    assert code == 2 and out == ""
    assert one_line_error(err) == message
    assert not db.exists()  # refused before anything was stored


@pytest.mark.parametrize("command", [["search", *GRAPH], ["studies"], ["sql", "SELECT 1"]])
def test_malformed_storage_url(monkeypatch, capsys, command):
    code, _, err = run_main(monkeypatch, capsys, *command, "--storage", "notaurl")
    assert code == 2
    assert one_line_error(err) == f"malformed storage URL 'notaurl'; use {ACCEPTED_URLS}"


def test_other_bad_storage_urls(tmp_path, monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "studies", "--storage", "foo://bar")
    assert code == 2
    assert one_line_error(err) == f"unknown database backend in 'foo://bar'; use {ACCEPTED_URLS}"
    missing = tmp_path / "no" / "such" / "x.db"
    code, _, err = run_main(monkeypatch, capsys, "studies", "--storage", f"sqlite:///{missing}")
    assert code == 2
    assert f"the directory of the SQLite database '{missing}' does not exist" in one_line_error(
        err)


def test_storage_from_the_environment(tmp_path, url, monkeypatch):
    graph_search(url, "--budget", "2")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NASLAB_STORAGE", url)
    assert [r[0] for r in table_rows(invoke("studies"))] == [S0]
    assert not (tmp_path / "naslab.db").exists()


def test_space_opt_channels_for_nb201(db, url, monkeypatch, capsys):
    out = invoke("search", "--space", "nb201", "--space-opt", "channels=4", "--budget", "1",
                 "--epochs", "1", "--in-process", "--storage", url)
    assert "space NB201Space(channels=4, cells_per_stage=1)" in out
    assert "1 evaluated and 0 reused this run; study has 1 complete" in out
    with Store(url) as store:
        info = store.studies.get("nb201-digits-evolution-s0")
        (trial,) = store.trials.list(info.id)
    assert info.space_config["channels"] == 4
    assert trial.state == "complete" and trial.params > 0

    code, _, err = run_main(monkeypatch, capsys, "search", "--space", "nb201", "--space-opt",
                            "bogus=1", "--budget", "1", "--epochs", "1", "--study", "b",
                            "--storage", url)
    assert code == 2
    message = one_line_error(err)
    assert message.startswith("bad options for search space 'nb201': ")
    assert "'bogus'" in message
    with Store(url) as store:
        assert store.studies.get("b") is None


def test_same_study_name_with_other_settings_is_refused(url, monkeypatch, capsys):
    graph_search(url, "--budget", "3", "--study", "shared")
    before = trials_of(url, "shared")
    capsys.readouterr()

    code, out, err = run_main(monkeypatch, capsys, "search", "--space", "chain", "--epochs",
                              "1", "--budget", "3", "--study", "shared", "--storage", url)
    assert code == 2
    assert out == ""  # refused before the header or a progress bar is printed
    message = one_line_error(err)
    assert message.startswith("study 'shared' already exists with different settings (")
    for field in ("space_key: stored 'nasbench_graph', requested 'chain-",
                  "task_key: stored 'nasbench_graph:cora', requested 'train-",
                  "fidelity: stored 10, requested 1"):
        assert field in message
    for same in ("searcher:", "seed:", "objective:"):
        assert same not in message
    assert trials_of(url, "shared") == before
    with Store(url) as store:
        assert store.studies.get("shared").space == "nasbench_graph"

    code, _, err = run_main(monkeypatch, capsys, "search", *GRAPH, "--searcher", "random",
                            "--study", "shared", "--storage", url)
    assert code == 2
    assert "(searcher: stored 'evolution', requested 'random')" in one_line_error(err)


# ------------------------------------------------------------------ executors and schedulers


def test_search_with_asha_stores_stopped_trials(url):
    out = invoke("search", "--space", "chain", "--epochs", "3", "--budget", "5", "--in-process",
                 "--scheduler", "asha", "--min-epochs", "1", "--eta", "3", "--storage", url)
    assert "in-process, scheduler {'name': 'asha', 'min_epochs': 1, 'eta': 3}" in out
    rows = sql_json(url, "SELECT state, epochs_done FROM naslab_results ORDER BY trial_number")
    assert len(rows) == 5
    assert {(r["state"], r["epochs_done"]) for r in rows} <= {("complete", 3), ("stopped", 1)}
    n_stopped = sum(r["state"] == "stopped" for r in rows)
    if n_stopped:
        assert f"{n_stopped} stopped early" in " ".join(out.split())
        assert re.search(r"trial +\d+ stopped ", out)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--space", "chain", "--eta", "2"], "--min-epochs and --eta need a --scheduler"),
        (["--space", "chain", "--in-process", "--workers", "2"], "--in-process cannot be"),
        ([*GRAPH, "--scheduler", "asha"], "needs per-epoch reports"),
        (["--space", "chain", "--scheduler", "sha"], "unknown scheduler 'sha'"),
        (["--space", "chain", "--epochs", "2", "--scheduler", "asha", "--min-epochs", "2"],
         "min_epochs (2) must be below"),
    ],
)
def test_bad_executor_or_scheduler_options_are_refused(monkeypatch, capsys, url, args, message):
    code, out, err = run_main(monkeypatch, capsys, "search", *args, "--storage", url)
    assert code == 2 and out == ""
    assert message in one_line_error(err)


def test_errors_never_pass_control_characters_to_the_terminal(monkeypatch, capsys, tmp_path):
    """An escape sequence typed into an option (here an unknown option's name, which
    click echoes as given) reaches the error line escaped, never raw."""
    code, _, err = run_main(monkeypatch, capsys, "search", "--\x1b]0;pwned\x07")
    assert code == 2 and "\x1b" not in err and "\x07" not in err and "\\x1b" in err
