"""The Python API's everyday comforts, on real runs (the NAS-Bench-Graph table, one
tiny real training): the progress bar, logging, the warning when every trial fails,
``Study.enqueue``, ``Study.evaluate``, ``run(timeout=...)``, callbacks and
``Study.stop``, and the CLI's ``--timeout``."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from naslab import ConfigError, InvalidArchitectureError, Store, Study
from naslab.run_control import FAILED_WARN_AFTER, FailingTrialsWarning, NoCompleteTrialWarning
from naslab.search_spaces.nasbench_graph import NasBenchGraphSpace
from naslab.workers.benchmark_table import NasBenchGraphEvaluator
from tests.cli_helpers import one_line_error, run_main

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- evaluators


class AlwaysFailing(NasBenchGraphEvaluator):
    """Every evaluation raises (a broken task)."""

    def __init__(self, dataset: str = "cora") -> None:
        super().__init__(dataset)

    def evaluate(self, space, arch, fidelity, seed, reporter):
        raise RuntimeError(f"simulated broken task on {arch.decisions['op1']}")


class FailingFirst(NasBenchGraphEvaluator):
    """The first ``n`` evaluations raise; the others look the table up."""

    def __init__(self, n: int) -> None:
        super().__init__("cora")
        self.n, self.calls = n, 0

    def evaluate(self, space, arch, fidelity, seed, reporter):
        self.calls += 1
        if self.calls <= self.n:
            raise RuntimeError(f"simulated failure {self.calls}")
        return super().evaluate(space, arch, fidelity, seed, reporter)


class SlowTable(NasBenchGraphEvaluator):
    """The table, each look-up taking ``delay_s``; not instant, so the loop dispatches
    each trial to the executor and finishes it apart (as with training)."""

    instant = False

    def __init__(self, delay_s: float = 0.15) -> None:
        super().__init__("cora")
        self.delay_s = delay_s

    def evaluate(self, space, arch, fidelity, seed, reporter):
        time.sleep(self.delay_s)
        return super().evaluate(space, arch, fidelity, seed, reporter)


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'comforts.db'}")
    yield s
    s.close()


@pytest.fixture
def db_store(db_url):
    """A store on SQLite, and on PostgreSQL (NASLAB_TEST_POSTGRES_URL; see tests/databases.py)."""
    s = Store(db_url)
    yield s
    s.close()


def table(store, name="s", budget=10, evaluator=None, **kw):
    return Study(name, space="nasbench_graph", task=evaluator or "cora", searcher="random",
                 budget=budget, storage=store, **kw)


def sample(space, seed):
    return space.sample(np.random.default_rng(seed))


def no_study(store, name="s"):
    return store.studies.get(name) is None


# ---------------------------------------------------------------- progress


def test_progress_bar_draws_trials_best_and_times_on_stderr(store, capsys):
    report = table(store, "bar", budget=8).run(progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "study bar" in err and "8/8" in err
    assert f"best val_accuracy {report.best.objective_value:.4f}" in err
    assert "elapsed 0:0" in err and "left 0:00" in err


def test_a_study_name_that_looks_like_markup_is_shown_as_it_is(store, capsys):
    table(store, "x[bold]y[red]z", budget=2).run(progress=True)
    assert "study x[bold]y[red]z" in capsys.readouterr().err


def test_progress_is_off_when_asked_and_automatic_off_a_terminal(store, capsys):
    table(store, "quiet", budget=4).run(progress=False)
    table(store, "auto", budget=4).run()  # pytest's captured stderr is no terminal
    assert capsys.readouterr() == ("", "")


def test_progress_is_automatic_on_a_terminal(store, capsys, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats stderr as a terminal
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    table(store, "tty", budget=3).run()
    assert "study tty" in capsys.readouterr().err


def test_progress_is_automatic_in_a_notebook_that_can_draw_it():
    import importlib.util

    from rich.console import Console

    from naslab.progress import progress_wanted

    notebook = Console(force_jupyter=True)
    can_draw = importlib.util.find_spec("ipywidgets") is not None
    assert progress_wanted(None, notebook) is can_draw
    assert progress_wanted(False, notebook) is False and progress_wanted(True, notebook)
    assert progress_wanted(None, Console(force_terminal=True, force_jupyter=False))
    assert not progress_wanted(None, Console(force_terminal=False, force_jupyter=False))


@pytest.mark.parametrize("bad", ["yes", 1, 0.0, "False"])
def test_progress_other_than_a_bool_or_none_is_refused_before_anything_is_stored(store, bad):
    with pytest.raises(ConfigError, match="progress must be True, False or None"):
        table(store).run(progress=bad)
    assert no_study(store)


def test_the_cli_draws_only_its_own_progress(tmp_path, monkeypatch, capsys):
    """On a terminal the library's bar would show too; the CLI turns it off."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, out, err = run_main(monkeypatch, capsys, "search", "--space", "nasbench_graph",
                              "--task", "cora", "--budget", "3", "--study", "cli",
                              "--storage", f"sqlite:///{tmp_path / 'c.db'}", "--in-process")
    assert code == 0, err
    assert "study cli" not in err and "left " not in err  # the library bar's labels
    assert "remaining" in out  # the CLI's own


# ---------------------------------------------------------------- logging


def test_library_logs_trials_and_why_the_run_ended(store, caplog):
    caplog.set_level(logging.INFO, logger="naslab")
    table(store, "logged", budget=5).run()
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("naslab")]
    assert sum("study logged: trial" in m for m in messages) == 5
    assert any("run ended (budget)" in m for m in messages)
    assert any("0 of 5 trials finished" in m for m in messages)  # the resume line


def test_retries_of_interrupted_trials_are_logged(store, caplog):
    from naslab.db.protocol import ClaimContext

    study = table(store, "ret", budget=3)
    info = study.prepare()
    arch = sample(study.space, 4)
    store.protocol.claim(ClaimContext.of(info), arch)  # a driver that then died
    store.protocol.interrupt_running(info.id)
    caplog.set_level(logging.INFO, logger="naslab")
    assert study.run().retried == 1
    assert "1 architecture(s) to retry first" in caplog.text
    assert f"interrupted architecture {arch.hash[:12]} claimed again (new)" in caplog.text


def test_the_naslab_logger_prints_nothing_unless_logging_is_configured(tmp_path):
    """A failing run logs warnings, yet a script that configures no logging prints
    nothing but Python's own warning of the failures."""
    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "import logging, naslab\n"
        "from tests.test_study_comforts import AlwaysFailing\n"
        "assert any(isinstance(h, logging.NullHandler) "
        "for h in logging.getLogger('naslab').handlers)\n"
        f"r = naslab.Study('q', space='nasbench_graph', task=AlwaysFailing(), budget=2, "
        f"storage='sqlite:///{tmp_path / 'q.db'}').run(progress=False)\n"
        "print(r.failed)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2\n" and done.stderr == ""


# ---------------------------------------------------------------- failures


def test_a_run_whose_first_trials_all_fail_warns_once_naming_the_first_error(store):
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = table(store, "broken", budget=8, evaluator=AlwaysFailing()).run(
            lambda ev: seen.append(len(caught)))
    early = [w for w in caught if w.category is FailingTrialsWarning]
    late = [w for w in caught if w.category is NoCompleteTrialWarning]
    assert len(early) == 1 and len(late) == 1
    # raised while the FAILED_WARN_AFTER-th trial finished, not before
    assert seen[FAILED_WARN_AFTER - 2] == 0 and seen[FAILED_WARN_AFTER - 1] == 1
    first = store.trials.list("broken")[0].error
    assert "simulated broken task" in first
    assert "simulated broken task" in str(early[0].message)
    assert f"first {FAILED_WARN_AFTER} trials" in str(early[0].message)
    assert "report.best is None" in str(late[0].message)
    # both point at the caller's line, not into naslab
    assert {w.filename for w in caught} == {__file__}
    assert report.best is None and report.failed == 8 and report.complete == 0


def test_a_short_all_failed_run_warns_at_its_end_only(store):
    with pytest.warns(NoCompleteTrialWarning, match="all 3 finished trials failed"):
        report = table(store, "short", budget=3, evaluator=AlwaysFailing()).run()
    assert report.best is None


@pytest.mark.parametrize("failing", [FAILED_WARN_AFTER - 1, FAILED_WARN_AFTER + 1])
def test_no_warning_once_a_trial_completes(store, failing):
    budget = FAILED_WARN_AFTER + 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = table(store, "mixed", budget=budget, evaluator=FailingFirst(failing)).run()
    kinds = [w.category for w in caught if issubclass(w.category, FailingTrialsWarning)]
    assert report.failed == failing and report.best is not None
    # the early warning only when the first FAILED_WARN_AFTER all failed; never the end one
    assert kinds == ([FailingTrialsWarning] if failing >= FAILED_WARN_AFTER else [])


def test_the_cli_prints_the_failure_warning_as_one_line(tmp_path, monkeypatch, capsys):
    code, out, err = run_main(
        monkeypatch, capsys, "search", "--space", "nasbench_graph",
        "--task", "tests.test_study_comforts:AlwaysFailing", "--budget", "6",
        "--study", "cli-broken", "--storage", f"sqlite:///{tmp_path / 'b.db'}",
        "--in-process")
    assert code == 0, err
    said = " ".join(out.split())
    assert said.count("warning:") == 1 and "simulated broken task" in said
    assert "no complete trial yet" in said and "report.best" not in said
    assert "UserWarning" not in err and "Warning:" not in err


# ---------------------------------------------------------------- enqueue


def test_enqueued_architectures_are_evaluated_first_in_order_and_told(db_store):
    study = table(db_store, "q", budget=6)
    a, b = sample(study.space, 1), sample(study.space, 2)
    assert study.enqueue(dict(b.decisions)) == b
    assert study.enqueue(a) == a
    assert study.queued == (b, a)
    study.run()
    trials = db_store.trials.list("q")
    assert [t.arch_hash for t in trials[:2]] == [b.hash, a.hash]
    assert len(trials) == 6 and study.queued == ()
    assert [o.arch.hash for o in study.searcher.history[:2]] == [b.hash, a.hash]


def test_enqueue_from_a_callback_joins_the_running_search_and_nesting_is_refused(store):
    study = table(store, "live", budget=4)
    extra = sample(study.space, 31)
    refused = []

    def on_trial(s, event):
        if event.finished == 1:
            s.enqueue(extra)
            for nested in (lambda: s.evaluate(extra), s.run):
                with pytest.raises(ConfigError, match="while study 'live' runs"):
                    nested()
                refused.append(nested)

    study.run(callbacks=[on_trial])
    assert store.trials.list("live")[1].arch_hash == extra.hash and len(refused) == 2
    assert store.trials.count("live") == 4


def test_held_or_duplicate_enqueued_architectures_are_skipped_with_a_log_line(store, caplog):
    study = table(store, "held", budget=3)
    study.run()
    held = store.trials.list("held")[0].architecture()
    fresh = sample(study.space, 99)
    caplog.set_level(logging.INFO, logger="naslab")
    study.enqueue(held)
    study.enqueue(fresh)
    study.enqueue(dict(fresh.decisions))  # the same again
    assert study.queued == (held, fresh)
    study.budget = 5
    study.run()
    trials = store.trials.list("held")
    assert len(trials) == 5 and [t.arch_hash for t in trials].count(held.hash) == 1
    assert trials[3].arch_hash == fresh.hash
    text = caplog.text
    assert "already enqueued" in text
    assert f"enqueued architecture {held.hash[:12]} skipped" in text


def test_what_the_budget_did_not_reach_stays_queued_for_the_next_run(store):
    study = table(study_store := store, "rest", budget=2)
    archs = [sample(study.space, s) for s in (11, 12, 13, 14)]
    for arch in archs:
        study.enqueue(arch)
    report = study.run()
    assert report.queued == 2 and study.queued == tuple(archs[2:])
    study.budget = 5
    report = study.run()
    assert report.queued == 0
    hashes = [t.arch_hash for t in study_store.trials.list("rest")]
    assert hashes[:4] == [a.hash for a in archs]


def test_a_resumed_search_after_enqueued_trials_proposes_what_an_uninterrupted_one_would(
        tmp_path):
    space = NasBenchGraphSpace("cora")
    first = [sample(space, s) for s in (21, 22, 23)]

    def run(db, budgets, same_object):
        with Store(f"sqlite:///{tmp_path / db}") as st:
            study = Study("r", space="nasbench_graph", task="cora", searcher="evolution",
                          budget=budgets[0], storage=st, searcher_options={
                              "population_size": 6})
            for arch in first:
                study.enqueue(arch)
            study.run()
            if not same_object:
                study = Study("r", space="nasbench_graph", task="cora",
                              searcher="evolution", budget=budgets[1], storage=st,
                              searcher_options={"population_size": 6})
            study.budget = budgets[1]
            study.run()
            return [t.arch_hash for t in st.trials.list("r")]

    whole = run("whole.db", (30, 30), True)
    assert run("live.db", (8, 30), True) == whole
    assert run("resumed.db", (8, 30), False) == whole


@pytest.mark.parametrize("bad, error, match", [
    ({"link": "0-0-1-3"}, InvalidArchitectureError, "op1"),
    ({"link": "0-0-1-3", "op1": "nope", "op2": "gcn", "op3": "gcn", "op4": "gcn"},
     InvalidArchitectureError, "nope"),
    ({"link": "'; DROP TABLE naslab_trials; --", "op1": "gcn", "op2": "gcn", "op3": "gcn",
      "op4": "gcn"}, InvalidArchitectureError, "link"),
    ({"link": "0-0-1-3", "op1": ["gcn"], "op2": "gcn", "op3": "gcn", "op4": "gcn"},
     InvalidArchitectureError, "op1"),
    ({"link": "0-0-1-3", "op1": "gcn", "op2": "gcn", "op3": "gcn", "op4": "gcn",
      "extra": 1}, InvalidArchitectureError, "extra"),
    ({1: "x"}, InvalidArchitectureError, "decision names must be strings"),
    ("op1=gcn", ConfigError, "Architecture of space 'nasbench_graph' or a mapping"),
    (None, ConfigError, "got NoneType"),
    ([("op1", "gcn")], ConfigError, "got list"),
])
def test_bad_candidates_are_refused_before_anything_is_queued_or_stored(store, bad, error,
                                                                         match):
    study = table(store, "bad", budget=2)
    with pytest.raises(error, match=match):
        study.enqueue(bad)
    with pytest.raises(error, match=match):
        study.evaluate(bad)
    assert study.queued == () and no_study(store, "bad")


def test_an_architecture_of_another_space_or_a_forged_graph_is_refused(store):
    from naslab.search_spaces.architecture import Architecture

    study = table(store, "foreign", budget=2)
    other = Study("o", space="chain", task="digits", storage=store).space
    with pytest.raises(InvalidArchitectureError, match="belongs to space 'chain'"):
        study.enqueue(sample(other, 0))
    a, b = sample(study.space, 1), sample(study.space, 2)
    forged = Architecture(a.space, a.decisions, b.graph)  # decisions of a, graph of b
    with pytest.raises(InvalidArchitectureError, match="not the one its decisions derive"):
        study.enqueue(forged)
    assert study.queued == () and no_study(store, "foreign")


# ---------------------------------------------------------------- evaluate


def test_evaluate_stores_one_trial_tells_the_searcher_and_counts_in_the_budget(db_store):
    study = table(db_store, "ev", budget=4)
    arch = sample(study.space, 5)
    record = study.evaluate(dict(arch.decisions))
    assert record.state == "complete" and record.arch_hash == arch.hash
    assert record.number == 0 and record.objective_value == record.metrics["val_accuracy"]
    assert db_store.trials.list("ev") == [record]
    assert [o.arch.hash for o in study.searcher.history] == [arch.hash]
    # the same again: the stored trial, nothing new
    assert study.evaluate(arch) == record and db_store.trials.count("ev") == 1
    report = study.run()
    assert report.complete == 4 and report.trained_this_run == 3


def test_evaluate_with_the_budget_taken_is_refused_and_stores_nothing(db_store):
    study = table(db_store, "full", budget=2)
    study.run()
    held = db_store.trials.list("full")[1]
    with pytest.raises(ConfigError, match=r"budget of 2 trials.*study.budget = 3"):
        study.evaluate(sample(study.space, 77))
    assert db_store.trials.count("full") == 2
    assert study.evaluate(held.architecture()) == held  # a held one is still answered
    study.budget = 3
    assert study.evaluate(sample(study.space, 77)).number == 2


def test_evaluate_returns_a_failed_record_and_reuses_other_studies(store):
    broken = table(store, "evfail", budget=3, evaluator=AlwaysFailing())
    arch = sample(broken.space, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        failed = broken.evaluate(arch)
    assert failed.state == "failed" and "simulated broken task" in failed.error
    assert broken.evaluate(arch) == failed  # held: not evaluated again
    good = table(store, "evgood", budget=3)
    done = good.evaluate(arch)
    again = table(store, "evcopy", budget=3).evaluate(arch)
    assert again.reused_from == done.id and again.objective_value == done.objective_value


@pytest.mark.usefixtures("one_torch_thread")
def test_evaluate_trains_a_real_network(store):
    study = Study("train", space="chain", task="digits", budget=2, epochs=1, storage=store,
                  searcher="random")
    arch = sample(study.space, 0)
    record = study.evaluate(arch)
    assert record.state == "complete" and record.fidelity == 1
    assert 0 < record.metrics["val_accuracy"] <= 1 and record.params > 0
    assert [s for s, _ in store.trials.learning_curve(record.id)["val_accuracy"]] == [1]
    assert len(study.searcher.history) == 1


# ---------------------------------------------------------------- timeout


def test_timeout_stops_asking_and_the_study_resumes(db_store):
    study = table(db_store, "timed", budget=20_000)
    started = time.perf_counter()
    report = study.run(timeout=0.3)
    took = time.perf_counter() - started
    assert report.stopped_by == "timeout"
    assert 0 < report.complete < 20_000 and took < 5
    assert db_store.trials.count("timed", ["running", "interrupted"]) == 0
    again = study.run(timeout=0.2)
    assert again.stopped_by == "timeout" and again.complete > report.complete


def test_a_trial_running_at_the_timeout_finishes_and_is_stored(store):
    study = table(store, "slow", budget=50, evaluator=SlowTable(0.15))
    report = study.run(timeout=0.4)
    assert report.stopped_by == "timeout"
    trials = store.trials.list("slow")
    assert 2 <= len(trials) <= 5 and all(t.state == "complete" for t in trials)
    assert report.elapsed_s < 0.4 + 0.15 + 2.0


def test_a_run_that_reaches_its_budget_says_so(store):
    assert table(store, "b", budget=3).run(timeout=600).stopped_by == "budget"


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, -math.inf, "10", True, 10**400])
def test_bad_timeouts_are_refused_before_anything_is_stored(store, bad):
    with pytest.raises(ConfigError, match="timeout"):
        table(store).run(timeout=bad)
    assert no_study(store)


def test_cli_timeout_stops_the_search_and_says_so(tmp_path, monkeypatch, capsys):
    db = f"sqlite:///{tmp_path / 't.db'}"
    args = ["search", "--space", "nasbench_graph", "--task", "cora", "--budget", "20000",
            "--study", "t", "--storage", db, "--in-process"]
    code, out, err = run_main(monkeypatch, capsys, *args, "--timeout", "2")
    assert code == 0, err
    assert "the --timeout passed" in " ".join(out.split())
    with Store(db) as s:
        done = s.trials.count("t")
    assert 0 < done < 20_000


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "-1", "0", "abc", "1e999", "", "1e-400"])
def test_cli_refuses_bad_timeouts_as_one_line(tmp_path, monkeypatch, capsys, bad):
    db = tmp_path / "x.db"
    code, out, err = run_main(monkeypatch, capsys, "search", "--space", "nasbench_graph",
                              "--task", "cora", "--budget", "2", "--study", "x",
                              "--storage", f"sqlite:///{db}", "--in-process",
                              "--timeout", bad)
    assert code == 2
    assert "--timeout" in one_line_error(err)
    assert not db.exists()


# ---------------------------------------------------------------- callbacks and stop


def test_callbacks_get_the_study_and_each_event_and_may_stop_the_run(store):
    calls = []

    def record(study, event):
        calls.append((study, event.number, event.finished))

    def stop_after_three(study, event):
        if event.finished == 3:
            study.stop()

    study = table(store, "cb", budget=10)
    report = study.run(callbacks=[record, stop_after_three])
    assert report.stopped_by == "stopped" and report.complete == 3
    assert [(s is study, n, f) for s, n, f in calls] == [(True, i, i + 1) for i in range(3)]
    study.stop()  # no run in progress: nothing happens, and the next run is not affected
    assert study.run().stopped_by == "budget" and store.trials.count("cb") == 10


def test_stop_from_another_thread_lets_the_running_trial_finish(store):
    study = table(store, "thread", budget=1000, evaluator=SlowTable(0.1))
    timer = threading.Timer(0.35, study.stop)
    timer.start()
    report = study.run()
    timer.join()
    assert report.stopped_by == "stopped" and 1 <= report.complete <= 10
    assert store.trials.count("thread", ["running", "interrupted"]) == 0


@pytest.mark.parametrize("evaluator, batch", [(None, 16), (SlowTable(0.01), 1)],
                         ids=["batched-table", "dispatched"])
def test_a_callback_error_propagates_and_keeps_every_finished_trial(db_store, evaluator, batch):
    def explode(study, event):
        if event.finished == 4:
            raise KeyError("callback bug")

    study = table(db_store, "boom", budget=30, evaluator=evaluator, batch_trials=batch)
    with pytest.raises(KeyError, match="callback bug"):
        study.run(callbacks=[explode])
    assert db_store.trials.count("boom", ["complete"]) == 4  # committed, even mid-batch
    assert db_store.trials.count("boom", ["running"]) == 0
    assert len(study.searcher.history) == 4
    assert study.run().complete == 30  # resumes


@pytest.mark.parametrize("bad, match", [
    (lambda s, e: None, "a single function"),
    ("print", "a single str"),
    ([print, 42], "each of callbacks must be a function"),
    (42, "got int"),
])
def test_bad_callbacks_are_refused_before_anything_is_stored(store, bad, match):
    with pytest.raises(ConfigError, match=match):
        table(store).run(callbacks=bad)
    with pytest.raises(ConfigError, match="callback must be a function"):
        table(store).run("not callable")
    assert no_study(store)
