"""The evaluator interface: what it takes to turn an architecture into a result.

An :class:`Evaluator` evaluates one architecture of one space at one fidelity (a
number of training epochs) with one seed, reports per-epoch metrics through a
:class:`Reporter` as they arrive, and returns a :class:`Result`. Implementations:
:class:`~naslab.workers.training.TrainingEvaluator` (real PyTorch training) and the
:class:`TableEvaluator` s, which answer from tables of known results
(:class:`~naslab.workers.benchmark_table.NasBenchGraphEvaluator`, and yours, by the
name of their search space in :data:`TABLE_BENCHMARKS`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from naslab.core.registry import Registry

if TYPE_CHECKING:
    from naslab.search_spaces.architecture import Architecture
    from naslab.search_spaces.base import SearchSpace
    from naslab.workers.task import Task


class Reporter(Protocol):
    """Receives intermediate metrics while an evaluation runs."""

    def report(self, step: int, metrics: Mapping[str, float]) -> bool | None:
        """Record ``metrics`` (name -> value) at ``step`` (an epoch, from 1).

        Returns False when a multi-fidelity scheduler stopped the trial: the
        evaluator should then stop training and return the result of the epochs
        done (with :attr:`Result.epochs` = ``step``). None or True: go on.
        """


class NullReporter:
    """A reporter that drops everything."""

    def report(self, step: int, metrics: Mapping[str, float]) -> bool:
        """Ignore the report; always go on."""
        return True


@dataclass
class Result:
    """The outcome of one evaluation.

    Attributes:
        metrics: final metrics by name. Every evaluator sets the objective metric
            (``val_accuracy``, higher is better) and, where it has one,
            ``test_accuracy``.
        params: number of trainable parameters.
        flops: floating-point operations of one forward pass of one sample
            (multiply-adds count as two), or None where unknown.
        latency_ms: measured inference latency of one batch, in milliseconds.
        train_seconds: wall time spent training (0 for table look-ups).
        epochs: the fidelity reached.
        weights: trained weights (a state dict of CPU tensors) or None.
        extra: anything else worth keeping (JSON-ready).
    """

    metrics: dict[str, float]
    params: int | None = None
    flops: int | None = None
    latency_ms: float | None = None
    train_seconds: float = 0.0
    epochs: int = 0
    weights: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Evaluator(ABC):
    """Evaluates architectures on one task, and declares what it is.

    The class attributes are the declarations that the search loop and the
    application read (never probing for other attributes): override them in a
    subclass.
    """

    #: The metric that searchers maximise.
    objective: str = "val_accuracy"
    #: The final metrics every result carries (``params``, ``flops`` and
    #: ``latency_ms`` come as :class:`Result` fields where measured).
    metrics: tuple[str, ...] = ("val_accuracy",)
    #: The cost measurements it fills in a :class:`Result` (of ``params``, ``flops``,
    #: ``latency_ms``), which multi-objective searches may minimise.
    costs: tuple[str, ...] = ("params", "flops", "latency_ms")
    #: Whether it reports the objective after every epoch (so that a multi-fidelity
    #: scheduler can stop it early); False for look-ups of final values.
    reports_epochs: bool = True
    #: Whether it answers in microseconds in the calling process (a table look-up):
    #: then an in-process search may hold one transaction across the evaluation and
    #: commit many trials at once.
    instant: bool = False
    #: Whether it answers from a table of known results (:class:`TableEvaluator`).
    is_table: bool = False
    #: The fidelity (epochs) of a study that names none.
    default_fidelity: int = 10
    #: The trained task (a :class:`~naslab.workers.task.Task`), or None for a table.
    task: Task | None = None

    @property
    @abstractmethod
    def key(self) -> str:
        """Identity of the task and evaluation settings; results are reused only
        between evaluations with equal keys (and equal space key and fidelity)."""

    @property
    def task_name(self) -> str:
        """A short name of the task (``digits``, ``cora``), used in study names."""
        if self.task is not None and self.task.name:
            return str(self.task.name)
        return self.key.split(":")[-1]

    def model_io(self) -> dict[str, Any] | None:
        """What a network built for this task takes and returns (input shape, number of
        classes), stored with a study so an exported model can be rebuilt; None for a
        table."""
        if self.task is None:
            return None
        return {"name": self.task.name, "input_shape": list(self.task.input_shape),
                "num_classes": int(self.task.num_classes)}

    @abstractmethod
    def evaluate(
        self,
        space: SearchSpace,
        arch: Architecture,
        fidelity: int,
        seed: int,
        reporter: Reporter,
    ) -> Result:
        """Evaluate ``arch`` at ``fidelity`` epochs with ``seed``; report per epoch."""


class TableEvaluator(Evaluator):
    """Answers from a table of known results (a tabular benchmark), at once.

    A subclass reads its table for one of its :meth:`tasks` and implements
    :meth:`evaluate`, :meth:`architectures` and :meth:`columns`; registered in
    :data:`TABLE_BENCHMARKS` under the name of its search space, it is used by
    ``naslab search --space NAME --task TASK`` and by ``naslab predictor --source
    table`` like the built-in NAS-Bench-Graph tables.
    """

    reports_epochs = False
    instant = True
    is_table = True
    #: The names :meth:`columns` accepts: the table's metrics, and its costs as
    #: features for predictors (in the table's own units).
    table_columns: tuple[str, ...] = ()

    @classmethod
    @abstractmethod
    def tasks(cls) -> list[str]:
        """The tasks (data sets) it has tables for."""

    @classmethod
    def for_task(cls, task: str, **options: Any) -> TableEvaluator:
        """The evaluator of ``task`` (by default ``cls(task, **options)``)."""
        return cls(task, **options)  # type: ignore[call-arg]

    @classmethod
    def space_options(cls, task: str) -> dict[str, Any]:
        """Options of the search space that match ``task``'s table (default none)."""
        return {}

    @abstractmethod
    def architectures(self) -> list[Architecture]:
        """Every architecture the table holds, one per row."""

    @abstractmethod
    def columns(self, archs: Sequence[Architecture], names: Sequence[str]) -> dict[str, Any]:
        """The table's values of ``names`` (of :attr:`table_columns`: metrics and costs,
        in the table's own units) for ``archs``, as ``{name: numpy array}``;
        ConfigError for a name it lacks."""


#: Table benchmarks by the name of their search space: ``naslab search --space NAME``
#: with a task name evaluates by look-up in NAME's table for that task. Register your
#: own with ``TABLE_BENCHMARKS.register("myspace", MyTableEvaluator)``.
TABLE_BENCHMARKS = Registry("table benchmark", base=TableEvaluator)
TABLE_BENCHMARKS.register("nasbench_graph",
                          "naslab.workers.benchmark_table:NasBenchGraphEvaluator")
