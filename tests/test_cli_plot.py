"""``naslab plot curves|anytime``: figures of stored studies, their data, and the files
they may (not) write."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest

from naslab import Study
from naslab.core.errors import ConfigError
from naslab.db.store import Store
from naslab.fronts import front_hypervolume
from naslab.plots import anytime_curve, choose_curves, plot_anytime, plot_learning_curves
from naslab.searchers.objectives import parse_objectives
from tests.cli_helpers import content_hash, invoke, one_line_error, run_main
from tests.curve_evaluator import CurveEvaluator
from tests.custom_space import TinyMLPSpace

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PNG = b"\x89PNG\r\n\x1a\n"
EPOCHS = 4
MO = ["val_accuracy:max", "latency_ms:min"]


class BrokenEvaluator(CurveEvaluator):
    """Every evaluation raises: a study of failed trials only."""

    @property
    def key(self) -> str:
        return "broken"

    def evaluate(self, space, arch, fidelity, seed, reporter):
        raise RuntimeError("broken on purpose")


def _studies(url: str) -> None:
    Study("cur", space=TinyMLPSpace(), task=CurveEvaluator(), searcher="random", budget=8,
          epochs=EPOCHS, seed=0, storage=url).run()
    Study("tab", space="nasbench_graph", task="cora", searcher="random", budget=10,
          storage=url).run()
    Study("mo", space="nasbench_graph", task="cora", searcher="random", budget=10,
          objectives=MO, storage=url).run()
    with warnings.catch_warnings():  # it warns that no trial completed: on purpose
        warnings.simplefilter("ignore")
        Study("broken", space=TinyMLPSpace(), task=BrokenEvaluator(), searcher="random",
              budget=2, epochs=2, storage=url).run()


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('plot') / 'plots.db'}"
    _studies(url)
    return url


def _error(monkeypatch, capsys, *args: str) -> str:
    code, out, err = run_main(monkeypatch, capsys, "plot", *args)
    assert code == 2, (out, err)
    return one_line_error(err)


# ------------------------------------------------------------------ the data drawn


def test_curves_of_the_best_trials_are_the_stored_epochs(url):
    with Store(url) as store:
        best = [t.number for t in store.trials.best("cur", 3)]
        trials = {t.number: t for t in store.trials.list("cur")}
        chosen = choose_curves(store, "cur", "val_accuracy", top=3)
        default = choose_curves(store, "cur", "val_accuracy")
    assert [n for n, _ in chosen] == best
    assert default[:3] == chosen and len(default) == 8  # the 10 best: all 8 trials
    for number, steps in chosen:
        ceiling = CurveEvaluator.ceiling(trials[number].architecture())
        assert sorted(steps) == list(range(1, EPOCHS + 1))
        for epoch, value in steps.items():
            assert value == pytest.approx(ceiling * (1 - 0.5**epoch))


def test_anytime_is_the_best_so_far_of_the_stored_objectives(url):
    with Store(url) as store:
        curve = anytime_curve(store, "tab")
        values = [t.objective_value for t in store.trials.list("tab")]
        best = store.trials.best("tab")[0].objective_value
    np.testing.assert_allclose(curve.best, np.maximum.accumulate(values))
    assert curve.best[-1] == curve.best_by_time[-1] == best
    assert (np.diff(curve.seconds) >= 0).all() and curve.seconds[0] >= 0
    assert curve.label == "best val_accuracy so far"


def test_anytime_of_a_multi_objective_study_is_its_hypervolume_so_far(url):
    with Store(url) as store:
        curve = anytime_curve(store, "mo")
        trials = store.trials.list("mo")
    assert curve.label == "hypervolume so far"
    assert (np.diff(curve.best) >= -1e-12).all()
    assert curve.best[-1] == pytest.approx(front_hypervolume(trials, parse_objectives(MO)))


# ------------------------------------------------------------------ the commands


def test_cli_writes_both_figures(url, tmp_path):
    out = invoke("plot", "curves", "--study", "cur", "--trials", "2,0,2", "--out",
                 str(tmp_path / "c.png"), "--storage", url)
    assert f"wrote {tmp_path / 'c.png'}: val_accuracy of 2 trials (2, 0), up to epoch " \
           f"{EPOCHS}" in " ".join(out.split())
    bare = tmp_path / "a"  # no suffix: .png added
    out = invoke("plot", "anytime", "--study", "mo", "--out", str(bare), "--storage", url)
    assert "hypervolume so far after 10 finished trials" in out
    for path in (tmp_path / "c.png", tmp_path / "a.png"):
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000
    assert not bare.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "c.png"]  # no temp left


def test_table_study_without_a_curve_of_the_metric_says_why(url, monkeypatch, capsys,
                                                            tmp_path):
    msg = _error(monkeypatch, capsys, "curves", "--study", "tab", "--metric", "latency_ms",
                 "--out", str(tmp_path / "x.png"), "--storage", url)
    assert msg == ("study 'tab' has no per-epoch values of 'latency_ms': its results come "
                   "from the nasbench_graph table, which stores no learning curve of it; "
                   "plot its anytime curve with naslab plot anytime")
    msg = _error(monkeypatch, capsys, "curves", "--study", "cur", "--metric", "bogus",
                 "--out", str(tmp_path / "x.png"), "--storage", url)
    assert msg == ("study 'cur' has no per-epoch values of 'bogus'; its trials report: "
                   "val_accuracy (choose with --metric)")
    assert not (tmp_path / "x.png").exists()


def test_a_study_of_failed_trials_has_nothing_to_plot(url, monkeypatch, capsys, tmp_path):
    out = str(tmp_path / "x.png")
    assert _error(monkeypatch, capsys, "anytime", "--study", "broken", "--out", out,
                  "--storage", url) == ("study 'broken' has no complete trial yet (2 failed "
                                        "or stopped); nothing to plot")
    assert _error(monkeypatch, capsys, "curves", "--study", "broken", "--out", out,
                  "--storage", url) == (
        "study 'broken' has no per-epoch values yet (no finished trial reported any); plot "
        "its anytime curve with naslab plot anytime")
    assert not os.path.lexists(out)


@pytest.mark.parametrize("args, message", [
    (["--trials", "99"], "study 'cur' has no trial 99 (its trials: 0..7)"),
    (["--trials", "1", "--top", "2"], "give --trials or --top, not both"),
    (["--trials", "1,,2"], "--trials must be a comma-separated list of non-empty items, "
                           "got '1,,2'"),
    (["--trials", "a"], "--trials must be a comma-separated list, got 'a'"),
    (["--trials", "-1"], "a trial number of --trials must be an integer >= 0, got -1"),
    (["--trials", ",".join(map(str, range(101)))],
     "--trials names 101 trials; one figure draws at most 100"),
    (["--trials", "1e400"], "--trials must be a comma-separated list, got '1e400'"),
    (["--top", "0"], "--top must be an integer >= 1 and <= 100, got 0"),
    (["--top", "101"], "--top must be an integer >= 1 and <= 100, got 101"),
])
def test_bad_trial_choices_are_one_line_errors(url, monkeypatch, capsys, tmp_path, args,
                                               message):
    assert _error(monkeypatch, capsys, "curves", "--study", "cur", *args, "--out",
                  str(tmp_path / "x.png"), "--storage", url) == message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["nosuch", "../../etc/passwd", "x'; DROP TABLE naslab_trials;--",
                                  "$\\frac{", "", "a\x1b[31mred"])
@pytest.mark.parametrize("command", ["curves", "anytime"])
def test_unknown_or_hostile_study_names_change_nothing(url, monkeypatch, capsys, tmp_path,
                                                       name, command):
    before = content_hash(url.removeprefix("sqlite:///"))
    msg = _error(monkeypatch, capsys, command, "--study", name, "--out",
                 str(tmp_path / "x.png"), "--storage", url)
    assert msg.startswith("no study named ") and "stored studies: " in msg
    assert "\x1b" not in msg
    assert content_hash(url.removeprefix("sqlite:///")) == before
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["curves", "anytime"])
def test_out_is_never_a_link_a_device_a_folder_or_an_existing_file(url, monkeypatch, capsys,
                                                                   tmp_path, command):
    kept = tmp_path / "kept.png"
    kept.write_bytes(b"keep me")
    link = tmp_path / "link.png"
    link.symlink_to(kept)
    args = (command, "--study", "cur")
    cases = {
        str(kept): "exists; pass --force to replace it",
        str(link): "is a symbolic link; naslab never writes through or over a link",
        "/dev/null": "is a character device, not a file",
        str(tmp_path): "is a folder, not a file",
        str(tmp_path / "missing" / "x.png"): "",
        str(tmp_path / "x.bogusfmt"): "cannot write a figure as '.bogusfmt' (",
        str(tmp_path / "x."): "ends with a dot; give a suffix naming the format, e.g. .png",
    }
    for out, expected in cases.items():
        msg = _error(monkeypatch, capsys, *args, "--out", out, "--storage", url)
        assert expected in msg, (out, msg)
    assert kept.read_bytes() == b"keep me" and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.png", "link.png"]
    invoke("plot", *args, "--out", str(kept), "--force", "--storage", url)
    assert kept.read_bytes().startswith(PNG)
    msg = _error(monkeypatch, capsys, *args, "--out", str(link), "--force", "--storage", url)
    assert "symbolic link" in msg and link.is_symlink()


def test_a_missing_store_is_refused_not_created(monkeypatch, capsys, tmp_path):
    missing = tmp_path / "typo.db"
    msg = _error(monkeypatch, capsys, "anytime", "--study", "cur", "--out",
                 str(tmp_path / "x.png"), "--storage", f"sqlite:///{missing}")
    assert msg.startswith(f"no store at '{missing}'") and not missing.exists()


def test_text_with_dollars_is_drawn_as_text(tmp_path):
    """matplotlib reads $...$ as math: a name with '$' must not break a figure."""
    path = plot_learning_curves([(0, {1: 0.5, 2: 0.6})], "$\\frac{", "$\\frac{ a$b", tmp_path /
                                "c.png")
    assert path.read_bytes().startswith(PNG)


def test_a_figure_format_matplotlib_lacks_is_refused(url, tmp_path):
    with Store(url) as store:
        curve = anytime_curve(store, "tab")
    with pytest.raises(ConfigError, match="cannot write a figure as '.doc'"):
        plot_anytime(curve, "tab", tmp_path / "a.doc")
    assert plot_anytime(curve, "tab", tmp_path / "a.svg").read_text().startswith("<?xml")


def test_both_commands_on_each_backend(db_url, tmp_path):
    _studies(db_url)
    for command in ("curves", "anytime"):
        out = invoke("plot", command, "--study", "cur", "--out", str(tmp_path / command),
                     "--storage", db_url)
        assert (tmp_path / f"{command}.png").read_bytes().startswith(PNG), out
    with Store(db_url) as store:
        assert math.isclose(anytime_curve(store, "cur").best[-1],
                            store.trials.best("cur")[0].objective_value)
