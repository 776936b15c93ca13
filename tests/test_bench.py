"""The benchmark harness (``naslab bench``) and the multi-objective CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from naslab import ConfigError, UnknownNameError
from naslab.bench import (
    best_so_far,
    execute,
    parse_searcher_spec,
    plan_runs,
    split_specs,
    summarise,
    write_outputs,
)
from naslab.db.store import Store
from tests.cli_helpers import invoke, one_line_error, run_main, table_rows


def test_searcher_specs():
    assert split_specs("random, guided-evolution[predictor=rf,kappa=2],evolution") == [
        "random", "guided-evolution[predictor=rf,kappa=2]", "evolution"]
    spec = parse_searcher_spec("guided-evolution[predictor=rf,kappa=2]")
    assert spec.name == "guided-evolution" and spec.options == {"predictor": "rf", "kappa": 2}
    assert spec.label == "guided-evolution[predictor=rf,kappa=2]"
    with pytest.raises(UnknownNameError, match="searcher"):
        parse_searcher_spec("annealing")
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        parse_searcher_spec("random[seed]")
    with pytest.raises(ConfigError, match="repeat"):
        plan_runs(["random", "random"], ["cora"], 1, 5)
    with pytest.raises(UnknownNameError, match="cora"):
        plan_runs(["random"], ["mnist"], 1, 5)


def test_best_so_far_follows_validation_and_reports_its_test():
    val = np.array([0.5, np.nan, 0.7, 0.6, 0.7])
    test = np.array([0.4, np.nan, 0.65, 0.9, 0.1])
    bv, bt = best_so_far(val, test)
    assert bv.tolist() == [0.5, 0.5, 0.7, 0.7, 0.7]
    assert bt.tolist() == [0.4, 0.4, 0.65, 0.65, 0.65]  # ties keep the first


@pytest.mark.parametrize("processes", [1, 2])
def test_runs_write_studies_and_summaries(tmp_path, processes):
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    runs = plan_runs(["random", "evolution[population_size=5]"], ["cora"], 2, 12)
    execute(runs, url, processes)
    with Store(url) as store:
        assert {r.study for r in runs} == {s.name for s in store.studies.summaries()}
        summary = summarise(store, runs)
    reg = summary.regret[("random", "cora")]
    assert reg.shape == (2, 12) and (np.diff(reg, axis=1) <= 1e-12).all() and (reg >= 0).all()
    figures = write_outputs(summary, tmp_path / "out", "random")
    assert {p.split("/")[-1] for p in figures["files"]} == {
        "anytime_regret.png", "anytime_test.png", "regret.md", "summary.json"}
    for name in ("anytime_regret.png", "anytime_test.png"):
        assert (tmp_path / "out" / name).read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["runs"]["random|cora"]["queries_to_reach_reference"] <= 12
    assert "| evolution[population_size=5] |" in (tmp_path / "out" / "regret.md").read_text()


def test_cli_bench_multi_objective_and_resume(tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    args = ["bench", "--searchers", "random,nsga2[population_size=4]", "--datasets", "cora",
            "--seeds", "2", "--queries", "10", "--processes", "1", "--objectives",
            "val_accuracy:max,latency_ms:min", "--out", str(tmp_path / "o"), "--storage", url]
    out = invoke(*args)
    assert "Hypervolume after the last query" in out and "4 runs" in out
    assert (tmp_path / "o" / "hypervolume.png").exists()
    again = invoke(*args[:-4], "--summary-only", "--out", str(tmp_path / "o2"), "--storage", url)
    assert "runs (" not in again and (tmp_path / "o2" / "regret.md").exists()


def test_cli_bench_refuses_unfinished_summary(tmp_path, monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "bench", "--searchers", "random", "--datasets",
                            "cora", "--seeds", "1", "--queries", "5", "--summary-only",
                            "--storage", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2 and "has 0 of 5 queries" in one_line_error(err)


def test_cli_search_multi_objective_lists_and_plots_the_front(tmp_path):
    url = f"sqlite:///{tmp_path / 'mo.db'}"
    out = invoke("search", "--space", "nasbench_graph", "--searcher", "nsga2", "--budget", "25",
                 "--objectives", "val_accuracy:max,latency_ms:min", "--study", "mo",
                 "--storage", url)
    assert "Pareto front of mo" in out and "hypervolume" in out
    listed = invoke("results", "--study", "mo", "--storage", url,
                    "--plot", str(tmp_path / "front.png"))
    assert (tmp_path / "front.png").read_bytes()[:4] == b"\x89PNG"
    rows = [r for r in table_rows(listed) if r and r[0].isdigit()]
    with Store(url) as store:
        _, front = store.fronts.get("mo")
        sql = store.sql.query("SELECT trial_number FROM naslab_pareto WHERE study = 'mo'")
    assert sorted(int(r[0]) for r in rows) == sorted(t.number for t in front)
    assert sorted(r[0] for r in sql[1]) == sorted(t.number for t in front)
    best = invoke("results", "--study", "mo", "--no-pareto", "--storage", url)
    assert "Pareto front" not in best
