"""Progress of long commands (``naslab.cli_progress``) and what uses it: ``predictor
eval`` (fits), ``predictor rank`` (enumerating or sampling, then scoring) and
``bench`` (runs); and the candidate pool of ``rank`` (``naslab.candidates``)."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import numpy as np
import pytest
from rich.console import Console

from naslab.candidates import candidate_pool, enumerable, walk_decisions
from naslab.cli_progress import format_seconds, progress
from naslab.components import resolve
from naslab.db.store import Store
from naslab.predictor_store import load_from_store
from naslab.search_spaces.registry import get_space
from tests.cli_helpers import invoke, one_line_error, run_main, table_rows
from tests.custom_space import TinyMLPSpace

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but tab and newline


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch):
    monkeypatch.delenv("NASLAB_PROGRESS", raising=False)
    monkeypatch.delenv("NASLAB_PROGRESS_INTERVAL", raising=False)


# ------------------------------------------------------------------ the display


def test_a_terminal_gets_a_bar_with_done_total_elapsed_and_remaining():
    out = io.StringIO()
    term = Console(file=out, force_terminal=True, width=120)
    with progress("fits", 3, console=term) as bar:
        for _ in range(3):
            bar.advance()
    text = out.getvalue()
    assert "\x1b[" in text  # drawn in place
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert "fits" in plain and "3/3" in plain
    assert "elapsed" in plain and "remaining" in plain and "0:00:00" in plain


def test_a_non_terminal_gets_plain_lines_without_control_codes():
    out = io.StringIO()
    log = Console(file=out, width=80)
    assert not log.is_terminal
    with progress("fits [bold]x[/bold]", 4, console=log, interval=0) as bar:
        for _ in range(4):
            bar.advance()
    lines = out.getvalue().splitlines()
    assert lines == [f"fits [bold]x[/bold]: {i}/4 ({25 * i}%), elapsed 0:00:00, "
                     "remaining ~0:00:00" for i in range(1, 5)]
    assert not CONTROL.search(out.getvalue())


def test_a_short_loop_prints_nothing_off_a_terminal_and_nothing_when_turned_off(
        monkeypatch):
    out = io.StringIO()
    with progress("fits", 1000, console=Console(file=out)) as bar:
        for _ in range(1000):
            bar.advance()
    assert out.getvalue() == ""  # under the 30 s interval
    monkeypatch.setenv("NASLAB_PROGRESS", "0")
    term = io.StringIO()
    with progress("fits", 2, console=Console(file=term, force_terminal=True)) as bar:
        bar.advance(2)
    assert term.getvalue() == ""


def test_forced_bar_and_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv("NASLAB_PROGRESS", "1")
    out = io.StringIO()
    with progress("runs", 2, console=Console(file=out, width=100)) as bar:
        bar.advance(2)
    assert "\x1b[" in out.getvalue() and "2/2" in out.getvalue()
    monkeypatch.setenv("NASLAB_PROGRESS", "")
    monkeypatch.setenv("NASLAB_PROGRESS_INTERVAL", "0")
    lines = io.StringIO()
    with progress("runs", 2, console=Console(file=lines)) as bar:
        bar.advance()
    assert lines.getvalue().startswith("runs: 1/2 (50%)")


@pytest.mark.parametrize("bad", ["-1", "abc", "nan", "inf", "1e999"])
def test_a_bad_interval_is_refused_by_name(monkeypatch, bad):
    from naslab.core.errors import ConfigError

    monkeypatch.setenv("NASLAB_PROGRESS_INTERVAL", bad)
    with pytest.raises(ConfigError, match="NASLAB_PROGRESS_INTERVAL must be a number of "
                       "seconds >= 0"), progress("x", 1, console=Console(file=io.StringIO())):
        pass


def test_format_seconds():
    assert format_seconds(0) == "0:00:00"
    assert format_seconds(75.4) == "0:01:15"
    assert format_seconds(3 * 3600 + 61) == "3:01:01"
    assert format_seconds(float("inf")) == format_seconds(-1) == "?"


# ------------------------------------------------------------------ candidates


def test_walk_decisions_respects_conditions_and_matches_size():
    space = TinyMLPSpace()
    combos = list(walk_decisions(list(space.decisions())))
    assert len(combos) == space.size() == enumerable(space, 10**6)
    assert len({tuple(sorted(c.items())) for c in combos}) == len(combos)
    for c in combos:  # a width only for the layers that exist
        space.from_decisions(c)


def test_pool_enumerates_a_small_space_once_each_and_samples_a_large_one():
    space = TinyMLPSpace()
    steps: list[tuple[str, int]] = []

    def start(what, total):
        steps.append((what, total))
        return lambda n: steps.append(("step", n))

    pool = candidate_pool(space, None, 0, 100_000, start)
    assert pool.enumerated and pool.drawn == space.size()
    hashes = [a.hash for a in pool.archs]
    assert len(hashes) == len(set(hashes))
    rng = np.random.default_rng(1)
    assert {space.sample(rng).hash for _ in range(300)} <= set(hashes)  # nothing missing
    assert steps[0] == ("enumerating the space", space.size())
    assert sum(n for what, n in steps[1:]) == space.size()
    sampled = candidate_pool(space, 20, 0, 100_000)  # fewer wanted than the space holds
    assert not sampled.enumerated and len(sampled.archs) == sampled.drawn == 20
    assert [a.hash for a in sampled.archs] == [
        a.hash for a in candidate_pool(space, 20, 0, 100_000).archs]  # seeded
    assert enumerable(space, space.size() - 1) is None
    assert enumerable(get_space("nb101"), 100_000) is None  # 423,624 cells


# ------------------------------------------------------------------ the commands


@pytest.fixture(scope="module")
def proteins_predictor(tmp_path_factory):
    """A store (created by the fit) holding an rf fitted on the proteins table."""
    url = f"sqlite:///{tmp_path_factory.mktemp('rank') / 'new.db'}"
    out = invoke("predictor", "fit", "--space", "nasbench_graph", "--task", "proteins",
                 "--source", "table", "--model", "rf", "--opt", "n_estimators=10",
                 "--name", "prot", "--storage", url)
    assert "saved as predictor 'prot' version 1" in out
    return url


def test_rank_enumerates_the_whole_small_space_and_finds_its_true_best(
        proteins_predictor, monkeypatch, capsys):
    monkeypatch.setenv("NASLAB_PROGRESS_INTERVAL", "0")
    code, out, err = run_main(monkeypatch, capsys, "predictor", "rank", "--name", "prot",
                              "--top", "3", "--space-opt", "dataset=proteins",
                              "--storage", proteins_predictor)
    assert code == 0, err
    text = " ".join(out.split())
    assert "enumerated the whole space (5625 decision combinations, 2021 distinct " \
           "architectures)" in text
    _, evaluator = resolve("nasbench_graph", "proteins")
    table = evaluator.architectures()
    with Store(proteins_predictor) as store:
        predictor, _ = load_from_store(store, "prot")
    mean = predictor.predict(table).mean
    rows = table_rows(out)
    assert float(rows[0][1]) == pytest.approx(mean.max(), abs=1e-4)
    assert rows[0][3] == table[int(np.argmax(mean))].hash[:10]
    # progress went to stderr as plain lines: no control codes, stdout untouched
    assert re.search(r"^enumerating the space: 1/5625 \(0%\), elapsed", err, re.M)
    assert re.search(r"^scoring candidates: 2021/2021 \(100%\)", err, re.M)
    assert not CONTROL.search(err) and "enumerating" not in out


def test_rank_samples_when_fewer_candidates_are_asked(proteins_predictor, monkeypatch,
                                                      capsys):
    code, out, err = run_main(monkeypatch, capsys, "predictor", "rank", "--name", "prot",
                              "--candidates", "300", "--space-opt", "dataset=proteins",
                              "--storage", proteins_predictor)
    assert code == 0 and err == ""  # a short run off a terminal prints no progress
    assert "sampled 300 candidates in" in " ".join(out.split())


def test_rank_refuses_a_missing_store(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "typo.db"
    code, _, err = run_main(monkeypatch, capsys, "predictor", "rank", "--name", "prot",
                            "--storage", f"sqlite:///{missing}")
    assert code == 2 and one_line_error(err).startswith(f"no store at '{missing}'")
    assert not missing.exists()


def test_eval_counts_every_fit_on_stderr(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NASLAB_PROGRESS_INTERVAL", "0")
    code, out, err = run_main(
        monkeypatch, capsys, "predictor", "eval", "--space", "nasbench_graph", "--task",
        "proteins", "--source", "table", "--model", "rf,gbdt", "--opt", "n_estimators=5",
        "--sizes", "20,40", "--splits", "2", "--test-size", "100",
        "--out", str(tmp_path / "plots"), "--storage", f"sqlite:///{tmp_path / 'none.db'}")
    assert code == 0, err
    lines = err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        f"fits: {i}/8 ({100 * i / 8:.0f}%)" for i in range(1, 9)]
    assert all(re.search(r", elapsed \d:\d\d:\d\d, remaining ~\d:\d\d:\d\d$", line)
               for line in lines)
    assert not CONTROL.search(err) and "fits:" not in out


def test_a_real_pipe_gets_no_control_codes(proteins_predictor):
    """``naslab`` run as a process with stderr a pipe (not a terminal)."""
    done = subprocess.run(
        [sys.executable, "-m", "naslab.cli", "predictor", "rank", "--name", "prot", "--top", "2",
         "--candidates", "40", "--space-opt", "dataset=proteins", "--storage",
         proteins_predictor],
        capture_output=True, text=True, timeout=300,
        env={**_env(), "NASLAB_PROGRESS_INTERVAL": "0"})
    assert done.returncode == 0, done.stderr
    assert not CONTROL.search(done.stderr) and not CONTROL.search(done.stdout)
    assert "sampling candidates: 40/40 (100%)" in done.stderr
    assert "scoring candidates: 40/40 (100%)" in done.stderr
    assert "sampled 40 candidates" in " ".join(done.stdout.split())


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("NASLAB_PROGRESS")}


def test_bench_counts_finished_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NASLAB_PROGRESS_INTERVAL", "0")
    code, out, err = run_main(
        monkeypatch, capsys, "bench", "--searchers", "random", "--datasets", "cora",
        "--seeds", "2", "--queries", "3", "--processes", "1", "--prefix", "pg",
        "--out", str(tmp_path / "o"), "--storage", f"sqlite:///{tmp_path / 'b.db'}")
    assert code == 0, err
    assert [line.split(",")[0] for line in err.splitlines()] == [
        "runs: 1/2 (50%)", "runs: 2/2 (100%)", "reading runs: 1/2 (50%)",
        "reading runs: 2/2 (100%)"]
    assert "2 runs (1 searchers x 1 data sets x 2 seeds" in out
