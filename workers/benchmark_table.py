"""Answers from NAS-Bench-Graph's tables instead of training.

:class:`NasBenchGraphEvaluator` looks an architecture of the ``nasbench_graph`` space
up in the table that the ``nas-bench-graph`` package ships for one data set
(``nas_bench_graph/light/<dataset>.bench``, read with the package's ``light_read``).

What those tables hold, per row (one row per architecture class, keyed by
:func:`~naslab.search_spaces.nasbench_graph.bench_key`): ``valid_perf`` and
``perf`` (validation and test performance, fractions in 0..1), ``latency``
(inference time in seconds) and ``para`` (parameter count in millions). They are
final values of the benchmark's training runs, averaged over its three seeds (so a
few ``para`` values are not whole numbers of parameters); the per-epoch curves are
only in the full benchmark files (a separate download), not in the package. Rows:
26,206 for each data set except ``proteins`` (2,021: five operations only).

For ``proteins`` (ogbn-proteins) the performance is presumably ROC-AUC, that data
set's standard metric; the package does not say. It is reported under the same
``val_accuracy`` / ``test_accuracy`` names, and ``extra["metric"]`` says
``"roc_auc"`` (``"accuracy"`` elsewhere).
"""

from __future__ import annotations

import math
import pickle
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from naslab.core.errors import ConfigError, EvaluationError
from naslab.core.validation import check_choice, check_int
from naslab.search_spaces.nasbench_graph import (
    DATASETS,
    PROTEINS_OPS,
    NasBenchGraphSpace,
    bench_key,
    decisions_from_key,
)
from naslab.workers.evaluator import Reporter, Result, TableEvaluator

if TYPE_CHECKING:
    from naslab.search_spaces.architecture import Architecture
    from naslab.search_spaces.base import SearchSpace

__all__ = ["NasBenchGraphEvaluator", "all_architectures", "load_table"]

_TABLES: dict[str, dict[int, Mapping[str, Any]]] = {}
_LOCK = threading.Lock()


def load_table(dataset: str) -> dict[int, Mapping[str, Any]]:
    """The package's table for ``dataset`` (row key -> fields), read once and cached.

    Raises:
        UnknownNameError: ``dataset`` is not one of the nine data sets.
        EvaluationError: the table could not be read.
    """
    dataset = check_choice("NAS-Bench-Graph data set", str(dataset), DATASETS)
    table = _TABLES.get(dataset)
    if table is None:
        with _LOCK:
            table = _TABLES.get(dataset)
            if table is None:
                try:
                    from nas_bench_graph.readbench import light_read

                    table = dict(light_read(dataset))
                except (OSError, ImportError, ValueError, EOFError, pickle.UnpicklingError) as exc:
                    raise EvaluationError(
                        f"could not read the NAS-Bench-Graph table of {dataset!r}: {exc}"
                    ) from exc
                _TABLES[dataset] = table
    return table


def all_architectures(dataset: str) -> list[Architecture]:
    """One architecture per row of ``dataset``'s table, in key order.

    Each is the package's canonical form of its class (decoded from the row key),
    built in ``NasBenchGraphSpace(dataset)``; their canonical hashes are pairwise
    distinct and :func:`~naslab.search_spaces.nasbench_graph.bench_key` of each
    gives its row. 26,206 architectures (2,021 for ``proteins``).
    """
    space = NasBenchGraphSpace(dataset)
    return [space.from_decisions(decisions_from_key(k)) for k in sorted(load_table(dataset))]


class NasBenchGraphEvaluator(TableEvaluator):
    """Evaluates ``nasbench_graph`` architectures by looking them up in the tables.

    Args:
        dataset: one of the nine data sets
            (:data:`~naslab.search_spaces.nasbench_graph.DATASETS`).

    The result ignores ``seed`` (the tables hold one value, the mean over the
    benchmark's three seeds) and ``fidelity`` (the tables hold final values only);
    ``fidelity`` is recorded as :attr:`Result.epochs` and as the single reported step.
    """

    metrics = ("val_accuracy", "test_accuracy")
    costs = ("params", "latency_ms")
    table_columns = ("val_accuracy", "test_accuracy", "params", "latency")
    #: The table's own field of each column: ``params`` in millions, ``latency`` in
    #: seconds (as the package stores them).
    FIELDS = {"val_accuracy": "valid_perf", "test_accuracy": "perf", "params": "para",
              "latency": "latency"}

    def __init__(self, dataset: str = "cora") -> None:
        self.dataset = check_choice("NAS-Bench-Graph data set", str(dataset), DATASETS)

    @classmethod
    def tasks(cls) -> list[str]:
        """The nine data sets (:data:`~naslab.search_spaces.nasbench_graph.DATASETS`)."""
        return list(DATASETS)

    @classmethod
    def space_options(cls, task: str) -> dict[str, Any]:
        """``{"dataset": task}``: the proteins table covers fewer operations."""
        return {"dataset": task}

    @property
    def task_name(self) -> str:
        """The data set."""
        return self.dataset

    def architectures(self) -> list[Architecture]:
        """Every architecture of this data set's table (:func:`all_architectures`)."""
        return all_architectures(self.dataset)

    def columns(self, archs: Sequence[Architecture], names: Sequence[str]) -> dict[str, Any]:
        """The table's ``val_accuracy``, ``test_accuracy``, ``params`` (millions) or
        ``latency`` (seconds) of ``archs``."""
        import numpy as np

        unknown = [n for n in names if n not in self.FIELDS]
        if unknown:
            raise ConfigError(f"the {self.dataset} table has no {', '.join(unknown)}; it "
                              f"offers: {', '.join(self.table_columns)}")
        rows = [self.lookup(a) for a in archs]
        return {n: np.array([float(r[self.FIELDS[n]]) for r in rows]) for n in names}

    @property
    def key(self) -> str:
        """``nasbench_graph:<dataset>``."""
        return f"nasbench_graph:{self.dataset}"

    def __repr__(self) -> str:
        return f"NasBenchGraphEvaluator({self.dataset!r})"

    def lookup(self, arch: Architecture | Mapping[str, Any]) -> Mapping[str, Any]:
        """The raw table row of ``arch`` (or of its decisions).

        Raises:
            EvaluationError: the architecture has no row in this data set's table.
        """
        key = bench_key(arch)
        row = load_table(self.dataset).get(key)
        if row is None:
            decisions = getattr(arch, "decisions", arch)
            hint = ""
            if self.dataset == "proteins":
                hint = f" (the proteins table covers only {', '.join(PROTEINS_OPS)})"
            raise EvaluationError(
                f"NAS-Bench-Graph has no {self.dataset} row for {dict(decisions)} (key {key}){hint}"
            )
        return row

    def evaluate(
        self,
        space: SearchSpace,
        arch: Architecture,
        fidelity: int,
        seed: int,
        reporter: Reporter,
    ) -> Result:
        """The table's values for ``arch``, reported once at step ``fidelity``.

        Metrics: ``val_accuracy`` and ``test_accuracy`` as stored (fractions in
        0..1). ``params`` is the stored count in millions times 10^6, rounded to an
        integer (exact except for the rows where the three seeds' counts differed;
        the stored value stays in ``extra["params_millions"]``). ``latency_ms`` is
        the stored latency (seconds) times 1000. ``train_seconds`` is 0.

        Raises:
            ConfigError: ``fidelity`` < 1.
            EvaluationError: ``arch`` is not of the ``nasbench_graph`` space or has
                no row in the table.
            InvalidArchitectureError: ``arch`` is not valid in ``space``.
        """
        check_int("fidelity (epochs)", fidelity, minimum=1)
        if not isinstance(space, NasBenchGraphSpace) or arch.space != space.name:
            raise EvaluationError(
                f"NasBenchGraphEvaluator answers for the nasbench_graph space only, not "
                f"{getattr(space, 'name', type(space).__name__)!r} "
                f"(architecture of {arch.space!r})"
            )
        space.validate(arch)
        row = self.lookup(arch)
        val, test = float(row["valid_perf"]), float(row["perf"])
        millions, latency_s = float(row["para"]), float(row["latency"])
        metrics = {"val_accuracy": val, "test_accuracy": test}
        for name, value in metrics.items():
            if not math.isfinite(value):
                raise EvaluationError(f"the {self.dataset} table holds {name} = {value}")
        reporter.report(fidelity, dict(metrics))
        return Result(
            metrics=metrics,
            params=int(round(millions * 1e6)),
            flops=None,
            latency_ms=latency_s * 1000.0,
            train_seconds=0.0,
            epochs=fidelity,
            extra={
                "source": "nas-bench-graph light table",
                "dataset": self.dataset,
                "bench_key": bench_key(arch),
                "metric": "roc_auc" if self.dataset == "proteins" else "accuracy",
                "params_millions": millions,
                "latency_s": latency_s,
            },
        )
