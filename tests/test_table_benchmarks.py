"""A user's own table benchmark plugs in like the built-in NAS-Bench-Graph tables:
a :class:`TableEvaluator` registered under its space's name runs in-process with
batched commits, from Python and from the CLI, and feeds ``predictor --source
table``."""

from __future__ import annotations

import hashlib
import itertools
import json

import numpy as np
import pytest

from naslab import Study
from naslab.core.errors import ConfigError, UnknownNameError
from naslab.search_spaces.registry import SPACES
from naslab.workers.evaluator import TABLE_BENCHMARKS, Reporter, Result, TableEvaluator
from tests.cli_helpers import invoke, one_line_error, run_main
from tests.custom_space import TinyMLPSpace


class TinyTable(TableEvaluator):
    """A table of every :class:`TinyMLPSpace` architecture (78) for tasks ``t1`` and
    ``t2``: accuracies derived from the canonical hash and the task, params from the
    widths. Written only against the public evaluator interface."""

    metrics = ("val_accuracy", "test_accuracy")
    costs = ("params",)
    table_columns = ("val_accuracy", "test_accuracy", "params")

    def __init__(self, task: str = "t1") -> None:
        if task not in self.tasks():
            raise ConfigError(f"TinyTable has no task {task!r}")
        self.table_task = task

    @classmethod
    def tasks(cls) -> list[str]:
        return ["t1", "t2"]

    @property
    def key(self) -> str:
        return f"tiny-table:{self.table_task}"

    @property
    def task_name(self) -> str:
        return self.table_task

    def _row(self, arch) -> dict[str, float]:
        digest = hashlib.sha256(f"{self.table_task}:{arch.hash}".encode()).digest()
        val = 0.5 + digest[0] / 600
        widths = [arch.decisions[f"width_{i}"] for i in range(1, arch.decisions["layers"] + 1)]
        return {"val_accuracy": val, "test_accuracy": val - digest[1] / 5000,
                "params": float(sum(widths) * 10)}

    def architectures(self):
        space, out, seen = TinyMLPSpace(), [], set()
        for layers, w1, w2, w3, act in itertools.product(
                (1, 2, 3), (16, 32, 64), (16, 32, 64), (16, 32, 64), ("relu", "tanh")):
            d = {"layers": layers, "width_1": w1, "act": act}
            d.update({"width_2": w2} if layers >= 2 else {})
            d.update({"width_3": w3} if layers == 3 else {})
            arch = space.from_decisions(d)
            if arch.hash not in seen:
                seen.add(arch.hash)
                out.append(arch)
        return out

    def columns(self, archs, names):
        rows = [self._row(a) for a in archs]
        return {n: np.array([r[n] for r in rows]) for n in names}

    def evaluate(self, space, arch, fidelity: int, seed: int, reporter: Reporter) -> Result:
        row = self._row(arch)
        metrics = {"val_accuracy": row["val_accuracy"], "test_accuracy": row["test_accuracy"]}
        reporter.report(fidelity, metrics)
        return Result(metrics=metrics, params=int(row["params"]), epochs=fidelity)


@pytest.fixture
def tiny():
    """``tiny`` registered as a space and as its table benchmark, for one test."""
    SPACES.register("tiny", TinyMLPSpace, info={"default_task": "t1"})
    TABLE_BENCHMARKS.register("tiny", TinyTable)
    yield TinyTable
    TABLE_BENCHMARKS.unregister("tiny")
    SPACES.unregister("tiny")


@pytest.mark.parametrize("batch_trials", [1, 8])
def test_a_registered_table_runs_in_process_and_stores_its_values(tiny, tmp_path, batch_trials):
    url = f"sqlite:///{tmp_path / 't.db'}"
    with Study("mine", space="tiny", task="t2", searcher="evolution", budget=40, seed=0,
               storage=url, batch_trials=batch_trials) as study:
        assert study.evaluator.instant and study.executor.inline
        report = study.run()
        trials = study.store.trials.list("mine")
        info = study.store.studies.get("mine")
    assert report.complete == 40 and report.trained_this_run == 40
    assert info.task_key == "tiny-table:t2" and info.config["table_benchmark"] is True
    table = TinyTable("t2")
    for t in trials:
        assert t.metrics["val_accuracy"] == table._row(t.architecture())["val_accuracy"]
        assert t.params == int(table._row(t.architecture())["params"])
    best = max(table.columns(table.architectures(), ["val_accuracy"])["val_accuracy"])
    assert report.best.objective_value <= best


def test_the_cli_searches_and_evaluates_predictors_on_it(tiny, tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 't.db'}"
    code, out, err = run_main(monkeypatch, capsys, "search", "--space", "tiny", "--budget",
                              "12", "--storage", url)
    assert code == 0, err
    assert "task t1" in out and "in-process" in out  # a table: no Ray workers
    listed = invoke("spaces")
    assert "tiny" in listed and "t1, t2" in listed
    evaluated = invoke("predictor", "eval", "--space", "tiny", "--task", "t1", "--source",
                       "table", "--model", "rf", "--sizes", "20", "--splits", "1",
                       "--out", str(tmp_path / "eval"))
    assert "78 architectures from the t1 table" in evaluated
    code, _, err = run_main(monkeypatch, capsys, "search", "--space", "tiny", "--task",
                            "cora", "--storage", url)
    assert code == 2
    assert one_line_error(err) == "unknown task for space tiny 'cora'; choose one of: t1, t2"


def test_registering_a_name_twice_is_refused(tiny):
    with pytest.raises(ConfigError, match="already registered"):
        TABLE_BENCHMARKS.register("tiny", TinyTable)
    with pytest.raises(UnknownNameError, match="choose one of"):
        TABLE_BENCHMARKS.unregister("nope")
    assert json.dumps(TinyTable.tasks()) == '["t1", "t2"]'
