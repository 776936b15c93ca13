"""``naslab studies`` / ``naslab results`` in every ``--format``, ``results --trial N``,
``export --trial N``, and the refusal of a missing SQLite file by every command that
reads a store (nothing is created).

The commands run through typer's ``CliRunner`` (stdout is not a terminal: the piped
case) or ``naslab.cli.main`` for errors; the store is real (SQLite files made by real
NAS-Bench-Graph searches, milliseconds each).
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from naslab import Study
from naslab.cli_results import RESULT_COLUMNS, STUDY_COLUMNS
from naslab.db.records import StudySpec
from naslab.db.store import Store
from tests.cli_helpers import content_hash, invoke, one_line_error, run_main, table_rows

LONG = "a-study-name-that-is-much-longer-than-a-narrow-terminal-" + "x" * 60
SEARCHED = ("cora-random", "mo", LONG)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, Path]:
    """A store with three searched studies (one multi-objective, one with a long
    name), an empty study, and a failed trial whose error holds markup, a terminal
    escape sequence, a comma, a quote and a newline."""
    path = tmp_path_factory.mktemp("results") / "r.db"
    url = f"sqlite:///{path}"
    runs = {"cora-random": {}, "mo": {"objectives": "val_accuracy:max,latency_ms:min"},
            LONG: {"seed": 3}}
    for name, extra in runs.items():
        with Study(name, space="nasbench_graph", task="cora", searcher="random", budget=5,
                   storage=url, **extra) as study:
            study.run()
    with Store(url) as s:
        s.studies.create_or_load(StudySpec(
            name="empty", space="nasbench_graph", space_key="k", task_key="t",
            searcher="random", objective="val_accuracy", budget=1, fidelity=1, seed=0))
    conn = sqlite3.connect(path)
    with conn:  # a failed trial, as a worker's exception would leave it
        conn.execute("UPDATE naslab_trials SET state = 'failed', objective_value = NULL, "
                     "error = ? WHERE number = 4 AND study_id = (SELECT id FROM naslab_studies "
                     "WHERE name = 'cora-random')",
                     ("boom [red]x[/red] \x1b[2J, \"quoted\"\nsecond line",))
    conn.close()
    return url, path


def sql_rows(url: str, query: str) -> list[dict]:
    return json.loads(invoke("sql", query, "--format", "json", "--storage", url))


# ------------------------------------------------------------------ studies


def test_studies_table_piped_is_never_cut(store):
    url, _ = store
    out = invoke("studies", "--storage", url)  # CliRunner: 80 columns, not a terminal
    assert "…" not in out
    header = next(line for line in out.splitlines() if "study" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == [
        "study", "space", "task", "searcher", "budget", "complete", "stopped", "failed",
        "best"]
    assert [r[0] for r in table_rows(out)] == [*SEARCHED, "empty"]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_studies_csv_and_json_have_every_column(store, fmt):
    url, _ = store
    text = invoke("studies", "--format", fmt, "--storage", url)
    if fmt == "csv":
        lines = list(csv.reader(io.StringIO(text)))
        assert tuple(lines[0]) == STUDY_COLUMNS
        rows = [dict(zip(lines[0], line)) for line in lines[1:]]
    else:
        rows = json.loads(text)
        assert all(tuple(r) == STUDY_COLUMNS for r in rows)
    view = {r["study"]: r for r in sql_rows(url, "SELECT * FROM naslab_study_summary")}
    assert [r["study"] for r in rows] == [*SEARCHED, "empty"]
    for row in rows:
        expected = view[row["study"]]
        for key in ("space", "task_key", "searcher", "objective", "direction", "budget",
                    "n_trials", "n_complete", "n_failed", "best_objective"):
            want = expected[key]
            got = row[key]
            if fmt == "csv":  # text: the full value, None as an empty cell
                assert got == ("" if want is None else str(want)), key
            else:  # numbers as numbers, None as null
                assert got == want and type(got) is type(want), key
    assert rows[0]["task_key"] == "nasbench_graph:cora"  # not shortened
    by_name = {r["study"]: r for r in rows}
    assert by_name["empty"]["best_objective"] in ("", None)
    assert by_name["cora-random"]["n_failed"] in ("1", 1)


def test_unknown_format_is_refused(store, monkeypatch, capsys):
    url, _ = store
    for command in (["studies"], ["results", "--study", "mo"]):
        code, out, err = run_main(monkeypatch, capsys, *command, "--format", "xml",
                                  "--storage", url)
        assert code == 2 and out == ""
        assert one_line_error(err) == "--format must be one of table, csv, json; got 'xml'"


def test_stored_text_cannot_drive_the_terminal(tmp_path):
    """A name stored before names were checked (written here with SQL) is shown with its
    control characters escaped and its markup as text."""
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    with Store(url) as s:
        s.studies.create_or_load(StudySpec(
            name="plain", space="s", space_key="k", task_key="t", searcher="random",
            objective="val_accuracy", budget=1, fidelity=1, seed=0))
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE naslab_studies SET name = ?", ("\x1b]0;pwned\x07[bold]x[/bold]",))
    conn.close()
    out = invoke("studies", "--storage", url)
    assert "\x1b" not in out and "\x07" not in out
    assert table_rows(out)[0][0] == "\\x1b]0;pwned\\x07[bold]x[/bold]"
    data = json.loads(invoke("studies", "--format", "json", "--storage", url))
    assert data[0]["study"] == "\x1b]0;pwned\x07[bold]x[/bold]"  # data: exact


# ------------------------------------------------------------------ results


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_results_csv_and_json_are_unabbreviated(store, fmt):
    url, _ = store
    text = invoke("results", "--study", "cora-random", "--top", "3", "--format", fmt,
                  "--storage", url)
    expected = sql_rows(url, "SELECT * FROM naslab_results WHERE study = 'cora-random' AND "
                             "state = 'complete' ORDER BY objective_value DESC, trial_number "
                             "LIMIT 3")
    if fmt == "csv":
        lines = list(csv.reader(io.StringIO(text)))
        assert tuple(lines[0]) == RESULT_COLUMNS
        rows = [dict(zip(lines[0], line)) for line in lines[1:]]
        for row in rows:
            row["decisions"] = json.loads(row["decisions"])
            row["trial_number"] = int(row["trial_number"])
            row["objective_value"] = float(row["objective_value"])
            row["params"] = int(row["params"]) if row["params"] else None
    else:
        rows = json.loads(text)
        assert all(tuple(r) == RESULT_COLUMNS for r in rows)
    assert len(rows) == 3
    for row, want in zip(rows, expected):
        assert row["trial_number"] == want["trial_number"]
        assert row["objective_value"] == want["objective_value"]  # full precision
        assert row["arch_hash"] == want["arch_hash"] and len(row["arch_hash"]) == 64
        assert row["decisions"] == json.loads(want["decisions"])
        assert row["params"] == want["params"]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_pareto_front_as_csv_and_json(store, fmt):
    url, _ = store
    text = invoke("results", "--study", "mo", "--format", fmt, "--storage", url)
    front = sql_rows(url, "SELECT trial_number, arch_hash FROM naslab_pareto WHERE study = 'mo'")
    columns = ["trial_number", "trial_id", "val_accuracy", "latency_ms", "test_accuracy",
               "arch_hash", "decisions"]
    if fmt == "csv":
        lines = list(csv.reader(io.StringIO(text)))
        assert lines[0] == columns
        got = {(int(r[0]), r[5]) for r in lines[1:]}
    else:
        data = json.loads(text)
        assert all(list(r) == columns for r in data)
        got = {(r["trial_number"], r["arch_hash"]) for r in data}
    assert got == {(r["trial_number"], r["arch_hash"]) for r in front} and got


def test_results_table_piped_shows_full_headers(store):
    url, _ = store
    out = invoke("results", "--study", LONG, "--storage", url)
    assert "…" not in out
    for header in ("trial", "objective", "val_acc", "test_acc", "latency ms", "decisions"):
        assert header in out


def test_plot_note_goes_to_stderr_when_writing_data(store, tmp_path, monkeypatch, capsys):
    url, _ = store
    plot = tmp_path / "front.png"
    code, out, err = run_main(monkeypatch, capsys, "results", "--study", "mo", "--plot",
                              str(plot), "--format", "json", "--storage", url)
    assert code == 0 and plot.stat().st_size > 0
    assert isinstance(json.loads(out), list)  # stdout holds only the data
    assert "wrote" in err


# ------------------------------------------------------------------ one trial


def test_trial_table_shows_everything_and_the_learning_curve(store):
    url, _ = store
    out = invoke("results", "--study", "cora-random", "--trial", "1", "--storage", url)
    row = sql_rows(url, "SELECT * FROM naslab_results WHERE study = 'cora-random' AND "
                        "trial_number = 1")[0]
    fields = {r[0]: r[1] for r in table_rows(out.split("learning curve")[0])}
    assert fields["state"] == "complete"
    assert fields["arch_hash"] == row["arch_hash"]  # full hash
    assert fields["objective_value"] == f"{row['objective_value']:.4f}"
    assert fields["metric val_accuracy"] == f"{row['val_accuracy']:.4f}"
    assert fields["worker"] == row["worker"]
    assert "started_at" in fields and "finished_at" in fields
    curve = sql_rows(url, "SELECT step, value FROM naslab_learning_curves WHERE study = "
                          "'cora-random' AND trial_number = 1 AND metric = 'val_accuracy' "
                          "ORDER BY step")
    assert curve
    rows = table_rows(out.split("learning curve")[1])
    assert [r[0] for r in rows] == [str(c["step"]) for c in curve]
    assert "…" not in out


def test_trial_json_and_csv(store):
    url, _ = store
    data = json.loads(invoke("results", "--study", "cora-random", "--trial", "1",
                             "--format", "json", "--storage", url))
    row = sql_rows(url, "SELECT * FROM naslab_results WHERE study = 'cora-random' AND "
                        "trial_number = 1")[0]
    assert data["trial_number"] == 1 and data["state"] == "complete"
    assert data["arch_hash"] == row["arch_hash"]
    assert data["decisions"] == json.loads(row["decisions"])
    assert data["metrics"]["val_accuracy"] == row["val_accuracy"]
    assert data["error"] is None and data["reused_from"] is None
    curve = sql_rows(url, "SELECT step, metric, value FROM naslab_learning_curves WHERE "
                          "study = 'cora-random' AND trial_number = 1")
    got = {(p["step"], m, v) for p in data["learning_curve"] for m, v in p.items()
           if m != "step"}
    assert got == {(c["step"], c["metric"], c["value"]) for c in curve} and got
    lines = list(csv.reader(io.StringIO(invoke(
        "results", "--study", "cora-random", "--trial", "1", "--format", "csv",
        "--storage", url))))
    assert lines[0] == ["step", "test_accuracy", "val_accuracy"]
    assert {(int(r[0]), float(r[2])) for r in lines[1:]} == {
        (c["step"], c["value"]) for c in curve if c["metric"] == "val_accuracy"}


def test_failed_trial_shows_its_error_safely(store):
    url, _ = store
    out = invoke("results", "--study", "cora-random", "--trial", "4", "--storage", url)
    assert "\x1b" not in out
    assert "boom [red]x[/red] \\x1b[2J, \"quoted\"" in out  # markup shown as text
    assert "second line" in out
    data = json.loads(invoke("results", "--study", "cora-random", "--trial", "4",
                             "--format", "json", "--storage", url))
    assert data["state"] == "failed"
    assert data["error"] == "boom [red]x[/red] \x1b[2J, \"quoted\"\nsecond line"


@pytest.mark.parametrize("args, message", [
    (["--study", "cora-random", "--trial", "99"],
     "study 'cora-random' has no trial 99; its trials are numbered 0 to 4"),
    (["--study", "empty", "--trial", "0"], "study 'empty' has no trial 0; it has no trials"),
    (["--study", "cora-random", "--trial", "-1"],
     "--trial must be an integer >= 0 and <= 2147483647, got -1"),
    (["--study", "cora-random", "--trial", str(2**64)],
     "--trial must be an integer >= 0 and <= 2147483647 (within 64 bits), got "
     "18446744073709551616"),
    (["--study", "cora-random", "--trial", str(2**31)],
     "--trial must be an integer >= 0 and <= 2147483647, got 2147483648"),
    (["--study", "mo", "--trial", "0", "--pareto"],
     "--trial shows one trial; it cannot be combined with --pareto or --plot"),
    (["--study", "nope", "--trial", "0"],
     f"no study named 'nope'; stored studies: cora-random, mo, {LONG}, empty"),
    (["--study", "cora-random", "--trial", "abc"], None),
])
def test_bad_trial_numbers_are_refused(store, monkeypatch, capsys, args, message):
    url, path = store
    before = content_hash(path)
    code, out, err = run_main(monkeypatch, capsys, "results", *args, "--storage", url)
    assert code == 2 and out == ""
    if message is not None:
        assert one_line_error(err) == message
    else:
        assert "--trial" in one_line_error(err)
    assert content_hash(path) == before


# ------------------------------------------------------------------ export


def test_export_any_trial_into_its_default_folder(store, tmp_path, monkeypatch):
    url, _ = store
    monkeypatch.chdir(tmp_path)
    out = invoke("export", "--study", "cora-random", "--trial", "2", "--storage", url)
    folder = Path("naslab-exports") / "cora-random-trial2"
    assert f"exported to {folder}: architecture.json, trial.json" in out
    meta = json.loads((folder / "trial.json").read_text())
    assert meta["trial_number"] == 2 and meta["state"] == "complete"
    row = sql_rows(url, "SELECT arch_hash FROM naslab_results WHERE study = 'cora-random' "
                        "AND trial_number = 2")[0]
    assert json.loads((folder / "architecture.json").read_text())["hash"] == row["arch_hash"]
    best = invoke("export", "--study", "cora-random", "--storage", url)
    assert "naslab-exports/cora-random:" in best  # the best keeps its folder name


@pytest.mark.parametrize("trial, message", [
    ("4", "trial 4 of study 'cora-random' is failed (error: 'boom [red]x[/red] \\x1b[2J, "
          "\"quoted\"'); only a complete or stopped trial has a model to export"),
    ("7", "study 'cora-random' has no trial 7; its trials are numbered 0 to 4"),
    ("-2", "--trial must be an integer >= 0 and <= 2147483647, got -2"),
    (str(2**63), "--trial must be an integer >= 0 and <= 2147483647 (within 64 bits), got "
              "9223372036854775808"),
])
def test_export_refuses_a_trial_without_a_model(store, tmp_path, monkeypatch, capsys, trial,
                                                message):
    url, _ = store
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(monkeypatch, capsys, "export", "--study", "cora-random",
                              "--trial", trial, "--storage", url)
    assert code == 2 and out == ""
    assert one_line_error(err) == message
    assert not Path("naslab-exports").exists()


# ------------------------------------------------------------------ a missing store file


READERS = [
    ["studies"], ["results", "--study", "x"], ["results", "--study", "x", "--trial", "0"],
    ["export", "--study", "x"], ["sql", "SELECT 1"], ["schema"],
    ["db", "export", "{tmp}/out.jsonl"], ["study", "delete", "x", "--yes"],
    ["study", "rename", "x", "y", "--yes"], ["predictor", "list"],
]


@pytest.mark.parametrize("command", READERS, ids=lambda c: " ".join(c[:2]))
def test_a_missing_store_file_is_refused_not_created(tmp_path, monkeypatch, capsys, command):
    missing = tmp_path / "typo.db"
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    code, out, err = run_main(monkeypatch, capsys, *args, "--storage", f"sqlite:///{missing}")
    assert code == 2 and out == ""
    assert one_line_error(err) == (f"no store at '{missing}'; run naslab search first, or "
                                   "check --storage (or $NASLAB_STORAGE)")
    assert not missing.exists() and not (tmp_path / "out.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no -wal, -shm either


def test_a_missing_store_named_by_the_environment_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NASLAB_STORAGE", raising=False)
    code, _, err = run_main(monkeypatch, capsys, "studies")  # the default: ./naslab.db
    assert code == 2 and "no store at" in one_line_error(err)
    assert not (tmp_path / "naslab.db").exists()


def test_upgrade_and_import_still_make_a_new_store(store, tmp_path):
    url, _ = store
    fresh = tmp_path / "fresh.db"
    assert "nothing to do" in invoke("db", "upgrade", "--storage", f"sqlite:///{fresh}")
    assert fresh.exists()
    dump = tmp_path / "mo.jsonl"
    invoke("db", "export", str(dump), "--study", "mo", "--storage", url)
    moved = tmp_path / "moved.db"
    invoke("db", "import", str(dump), "--storage", f"sqlite:///{moved}")
    assert [r[0] for r in table_rows(invoke("studies", "--storage", f"sqlite:///{moved}"))] \
        == ["mo"]
