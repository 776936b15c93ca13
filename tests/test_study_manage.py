"""``naslab study delete`` and ``naslab study rename`` on SQLite and PostgreSQL.

Real stores made by real NAS-Bench-Graph searches (table lookups: milliseconds per
trial), the CLI through typer's ``CliRunner`` (stdin is not a terminal there, so
``--yes`` is needed) and, for the confirmation question, a real pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

from naslab import Study
from naslab.core.drivers import driver_id
from naslab.db.protocol import ClaimContext, ClaimOutcome
from naslab.db.store import Store
from naslab.search_spaces.registry import get_space
from tests.cli_helpers import invoke, one_line_error, run_main

REPO = Path(__file__).resolve().parents[1]


def search(url: str, name: str, task: str = "cora", budget: int = 4, **extra) -> None:
    with Study(name, space="nasbench_graph", task=task, searcher=extra.pop("searcher", "random"),
               budget=budget, storage=url, **extra) as study:
        study.run()


def sql(url: str, query: str) -> list[dict]:
    return json.loads(invoke("sql", query, "--format", "json", "--storage", url))


def snapshot(url: str) -> dict[str, list[dict]]:
    """Every naslab row that a delete or rename may touch, in a stable order."""
    return {
        "studies": sql(url, "SELECT id, name, budget FROM naslab_studies ORDER BY id"),
        "trials": sql(url, "SELECT id, study_id, number, state, reused_from, objective_value "
                           "FROM naslab_trials ORDER BY id"),
        "metrics": sql(url, "SELECT id, trial_id, name, step, value FROM naslab_metrics "
                            "ORDER BY id"),
        "fronts": sql(url, "SELECT study_id, trial_id FROM naslab_pareto_fronts "
                           "ORDER BY trial_id"),
        "architectures": sql(url, "SELECT id, hash FROM naslab_architectures ORDER BY id"),
    }


def refused(monkeypatch, capsys, *args: str) -> str:
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 2 and out == "", (out, err)
    return one_line_error(err)


def optuna_studies(url: str) -> dict[str, tuple[int, int]]:
    """Optuna's studies in the database: name -> (Optuna's study id, trial count)."""
    import optuna

    storage = optuna.storages.RDBStorage(url)
    try:
        return {s.study_name: (s._study_id, s.n_trials)
                for s in optuna.get_all_study_summaries(storage)}
    finally:
        storage.engine.dispose()


def running_trial(url: str, study: str, driver: str) -> int:
    """Claim a new architecture in ``study`` for ``driver``: a running trial."""
    import numpy as np

    space = get_space("nasbench_graph")
    rng = np.random.default_rng(7)
    with Store(url) as store:
        ctx = ClaimContext.of(store.studies.require(study), driver=driver, budget=None)
        for _ in range(200):
            claim = store.protocol.claim(ctx, space.sample(rng))
            if claim.outcome is ClaimOutcome.NEW:
                return int(claim.trial_id)
    raise AssertionError("no new architecture sampled")


# ------------------------------------------------------------------ delete


def test_delete_removes_the_study_and_nothing_else(db_url):
    search(db_url, "gone", objectives="val_accuracy:max,latency_ms:min")
    search(db_url, "kept", task="citeseer")
    before = snapshot(db_url)
    gone_id = next(s["id"] for s in before["studies"] if s["name"] == "gone")
    gone_trials = {t["id"] for t in before["trials"] if t["study_id"] == gone_id}
    assert any(f["study_id"] == gone_id for f in before["fronts"])
    out = invoke("study", "delete", "gone", "--yes", "--storage", db_url)
    n_metrics = sum(1 for m in before["metrics"] if m["trial_id"] in gone_trials)
    assert out.strip().startswith(f"deleted study 'gone': 4 trial(s), {n_metrics} metric "
                                  "value(s), 0 set(s) of weights, ")
    after = snapshot(db_url)
    assert after["studies"] == [s for s in before["studies"] if s["id"] != gone_id]
    assert after["trials"] == [t for t in before["trials"] if t["study_id"] != gone_id]
    assert after["metrics"] == [m for m in before["metrics"] if m["trial_id"] not in gone_trials]
    assert after["fronts"] == [f for f in before["fronts"] if f["study_id"] != gone_id]
    assert after["architectures"] == before["architectures"]  # shared: kept
    # the name is free again: a new study of that name starts from trial 0
    search(db_url, "gone", budget=2)
    assert [t["trial_number"] for t in sql(
        db_url, "SELECT trial_number FROM naslab_results WHERE study = 'gone' "
                "ORDER BY trial_number")] == [0, 1]


def test_weights_are_exported_by_trial_then_deleted_with_the_study(db_url, tmp_path):
    import torch

    from naslab.workers.evaluator import Result

    search(db_url, "trained", budget=1)
    trial_id = running_trial(db_url, "trained", f"{socket.gethostname()}/999999999/1")
    with Store(db_url) as store:
        store.protocol.finish(trial_id, Result(metrics={"val_accuracy": 0.5}, epochs=2,
                                               weights={"w": torch.arange(3.0)}),
                              objective="val_accuracy", reports=[(1, {"val_accuracy": 0.25})])
    out = invoke("export", "--study", "trained", "--trial", "1", "--out",
                 str(tmp_path / "t1"), "--storage", db_url)
    assert out.strip() == (f"exported to {tmp_path / 't1'}: architecture.json, trial.json, "
                           "weights.safetensors")
    from safetensors.torch import load_file

    assert load_file(str(tmp_path / "t1" / "weights.safetensors"))["w"].tolist() == [0, 1, 2]
    assert sql(db_url, "SELECT count(*) AS n FROM naslab_weights") == [{"n": 1}]
    out = invoke("study", "delete", "trained", "--yes", "--storage", db_url)
    assert "2 trial(s)" in out and "1 set(s) of weights" in out
    for table in ("naslab_weights", "naslab_metrics", "naslab_trials", "naslab_studies"):
        assert sql(db_url, f"SELECT count(*) AS n FROM {table}") == [{"n": 0}], table


def test_delete_of_an_unknown_study_lists_the_stored_ones(db_url, monkeypatch, capsys):
    search(db_url, "one", budget=1)
    assert refused(monkeypatch, capsys, "study", "delete", "nope", "--yes", "--storage",
                   db_url) == "no study named 'nope'; stored studies: one"


def test_a_study_whose_results_others_reuse_is_kept(db_url, monkeypatch, capsys):
    search(db_url, "source", budget=8)
    search(db_url, "reuser", budget=8)  # the same proposals: every result is copied
    reused = sql(db_url, "SELECT trial_number, reused_from FROM naslab_results WHERE study = "
                         "'reuser' AND reused_from IS NOT NULL")
    assert reused, "the second study reused nothing; choose other seeds"
    before = snapshot(db_url)
    message = refused(monkeypatch, capsys, "study", "delete", "source", "--yes",
                      "--storage", db_url)
    assert message == (f"cannot delete study 'source': trials of other studies reuse its "
                       f"results ('reuser' ({len(reused)} trial(s))); deleting it would leave "
                       "them without their source. Delete those studies first, or keep this one")
    assert snapshot(db_url) == before
    # a rename keeps the links: the reuser's trial still names its source
    invoke("study", "rename", "source", "origin", "--yes", "--storage", db_url)
    shown = json.loads(invoke("results", "--study", "reuser", "--trial",
                              str(reused[0]["trial_number"]), "--format", "json",
                              "--storage", db_url))
    assert shown["reused_from"] == reused[0]["reused_from"]
    assert shown["reused_from_study"] == "origin"
    # the reuser first, then its source
    invoke("study", "delete", "reuser", "--yes", "--storage", db_url)
    invoke("study", "delete", "origin", "--yes", "--storage", db_url)
    assert sql(db_url, "SELECT count(*) AS n FROM naslab_trials") == [{"n": 0}]


def test_a_live_search_blocks_delete_and_rename(db_url, monkeypatch, capsys):
    search(db_url, "busy", budget=2)
    running_trial(db_url, "busy", driver_id())  # this process: alive
    running_trial(db_url, "busy", "otherhost/1/1")  # another host, fresh heartbeat: alive
    before = snapshot(db_url)
    for command in (["delete", "busy"], ["rename", "busy", "calm"]):
        message = refused(monkeypatch, capsys, "study", *command, "--yes", "--storage", db_url)
        action = command[0]
        assert message == (
            f"cannot {action} study 'busy': it has running trials of live search drivers "
            f"({', '.join(sorted([driver_id(), 'otherhost/1/1']))}); stop those searches "
            "first (or wait until they finish)"), message
    assert snapshot(db_url) == before


def test_running_trials_of_dead_drivers_do_not_block(db_url):
    search(db_url, "crashed", budget=2)
    running_trial(db_url, "crashed", f"{socket.gethostname()}/999999999/1")  # no such process
    invoke("study", "rename", "crashed", "renamed", "--yes", "--storage", db_url)
    out = invoke("study", "delete", "renamed", "--yes", "--storage", db_url)
    assert out.startswith("deleted study 'renamed': 3 trial(s)")


# ------------------------------------------------------------------ rename


def test_rename_then_resume_by_the_new_name(db_url):
    search(db_url, "first", budget=3)
    trials = sql(db_url, "SELECT trial_id, arch_hash FROM naslab_results ORDER BY trial_id")
    out = invoke("study", "rename", "first", "second", "--yes", "--storage", db_url)
    assert out.strip() == "renamed study 'first' to 'second'"
    assert sql(db_url, "SELECT trial_id, arch_hash FROM naslab_results WHERE study = 'second' "
                       "ORDER BY trial_id") == trials
    invoke("search", "--study", "second", "--budget", "5", "--in-process", "--storage", db_url)
    assert [r["trial_number"] for r in sql(
        db_url, "SELECT trial_number FROM naslab_results WHERE study = 'second' "
                "ORDER BY trial_number")] == [0, 1, 2, 3, 4]
    assert sql(db_url, "SELECT name FROM naslab_studies") == [{"name": "second"}]


BAD_NEW_NAMES = [
    ("../evil", "the new study name '../evil' is not accepted"),
    ("a/b", "the new study name 'a/b' is not accepted"),
    (".hidden", "the new study name '.hidden' is not accepted"),
    ("-dash", None),  # read as an option by the parser: refused too
    ("x" * 300, "the new study name 'xxxxxxxx"),
    ("", "the new study name '' is not accepted"),
    ("bad\x1b[2Jname", "the new study name 'bad\\x1b[2Jname' is not accepted"),
    ("taken", "cannot rename study 'mine' to 'taken': a study named 'taken' exists; choose "
              "another name"),
    ("mine", "cannot rename study 'mine' to 'mine': a study named 'mine' exists; choose "
             "another name"),
]


def test_rename_refuses_bad_or_taken_names(db_url, monkeypatch, capsys):
    search(db_url, "mine", budget=1)
    search(db_url, "taken", budget=1, task="citeseer")
    before = snapshot(db_url)
    for new, message in BAD_NEW_NAMES:
        code, out, err = run_main(monkeypatch, capsys, "study", "rename", "mine", new, "--yes",
                                  "--storage", db_url)
        assert code == 2 and out == "", new
        if message is not None:
            assert one_line_error(err).startswith(message), (new, err)
    assert snapshot(db_url) == before


def test_rename_of_an_unknown_study(db_url, monkeypatch, capsys):
    search(db_url, "one", budget=1)
    assert refused(monkeypatch, capsys, "study", "rename", "nope", "other", "--yes",
                   "--storage", db_url) == "no study named 'nope'; stored studies: one"


# ------------------------------------------------------------------ Optuna's study


def test_the_optuna_study_is_renamed_and_deleted_with_it(db_url):
    search(db_url, "tpe", budget=3, searcher="optuna-random")
    search(db_url, "other", budget=2, searcher="optuna-random", task="citeseer")
    before = optuna_studies(db_url)
    assert set(before) == {"naslab:tpe", "naslab:other"} and before["naslab:tpe"][1] >= 3
    out = invoke("study", "rename", "tpe", "tpe2", "--yes", "--storage", db_url)
    assert out.strip() == ("renamed study 'tpe' to 'tpe2' (and its Optuna study 'naslab:tpe' "
                           "to 'naslab:tpe2')")
    assert optuna_studies(db_url) == {"naslab:tpe2": before["naslab:tpe"],
                                      "naslab:other": before["naslab:other"]}
    # resumed by its new name, the searcher goes on with the same Optuna study
    invoke("search", "--study", "tpe2", "--budget", "5", "--in-process", "--storage", db_url)
    resumed = optuna_studies(db_url)
    assert resumed["naslab:tpe2"][0] == before["naslab:tpe"][0]
    assert resumed["naslab:tpe2"][1] > before["naslab:tpe"][1] and len(resumed) == 2
    out = invoke("study", "delete", "tpe2", "--yes", "--storage", db_url)
    assert out.strip().endswith(", and the Optuna study 'naslab:tpe2'")
    assert optuna_studies(db_url) == {"naslab:other": before["naslab:other"]}
    left = sql(db_url, "SELECT count(*) AS n FROM naslab_trials")
    assert left == [{"n": 2}]


def test_rename_onto_a_leftover_optuna_study_is_refused(db_url, monkeypatch, capsys):
    import optuna

    search(db_url, "tpe", budget=2, searcher="optuna-random")
    storage = optuna.storages.RDBStorage(db_url)
    optuna.create_study(study_name="naslab:new", storage=storage)
    storage.engine.dispose()
    before = snapshot(db_url)
    message = refused(monkeypatch, capsys, "study", "rename", "tpe", "new", "--yes",
                      "--storage", db_url)
    assert message.startswith("cannot rename study 'tpe' to 'new': this database already "
                              "holds an Optuna study named 'naslab:new'")
    assert snapshot(db_url) == before
    assert {k: v[1] for k, v in optuna_studies(db_url).items()} == {"naslab:tpe": 2,
                                                                    "naslab:new": 0}


def test_an_optuna_study_kept_elsewhere_is_named_not_touched(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    elsewhere = f"sqlite:///{tmp_path / 'optuna.db'}"
    search(url, "far", budget=2, searcher="optuna-random",
           searcher_options={"storage": elsewhere})
    out = invoke("study", "delete", "far", "--yes", "--storage", url)
    assert f"its Optuna study (searcher option storage) is left as is in {elsewhere}" in out
    assert {k: v[1] for k, v in optuna_studies(elsewhere).items()} == {"naslab:far": 2}


# ------------------------------------------------------------------ confirmation


def test_without_a_terminal_yes_is_required(db_url, monkeypatch, capsys):
    search(db_url, "asked", budget=1)
    before = snapshot(db_url)
    for command in (["delete", "asked"], ["rename", "asked", "other"]):
        message = refused(monkeypatch, capsys, "study", *command, "--storage", db_url)
        assert message == ("this command asks for confirmation, but stdin is not a terminal; "
                           "pass --yes to go ahead without asking")
    assert snapshot(db_url) == before


def answer(args: list[str], reply: str) -> tuple[int, str]:
    """Run ``python -m naslab.cli ARGS`` on a pseudo-terminal, type ``reply`` at its
    question; (exit code, everything it printed)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "naslab.cli", *args], stdin=follower,
                            stdout=follower, stderr=follower, cwd=REPO, env=env)
    os.close(follower)
    printed, replied, deadline = b"", False, time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            printed += chunk
        if not replied and b"[y/N]" in printed:
            os.write(leader, reply.encode() + b"\n")
            replied = True
        if proc.poll() is not None and not ready:
            break
    os.close(leader)
    return proc.wait(timeout=10), printed.decode(errors="replace")


def test_the_question_on_a_terminal(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    search(url, "asked", budget=2)
    code, printed = answer(["study", "delete", "asked", "--storage", url], "n")
    assert code == 1 and "Delete study 'asked': 2 trial(s)" in printed
    assert "nothing changed" in printed
    assert [r["name"] for r in sql(url, "SELECT name FROM naslab_studies")] == ["asked"]
    code, printed = answer(["study", "rename", "asked", "told", "--storage", url], "y")
    assert code == 0 and "Rename study 'asked' to 'told'?" in printed
    assert "renamed study 'asked' to 'told'" in printed
    assert [r["name"] for r in sql(url, "SELECT name FROM naslab_studies")] == ["told"]
