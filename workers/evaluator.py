"""The evaluator interface: what it takes to turn an architecture into a result.

An :class:`Evaluator` evaluates one architecture of one space at one fidelity (a
number of training epochs) with one seed, reports per-epoch metrics through a
:class:`Reporter` as they arrive, and returns a :class:`Result`. Implementations:
:class:`~naslab.workers.training.TrainingEvaluator` (real PyTorch training) and
:class:`~naslab.workers.benchmark_table.NasBenchGraphEvaluator` (answers from the
NAS-Bench-Graph tables).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from naslab.search_spaces.architecture import Architecture
    from naslab.search_spaces.base import SearchSpace


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
    """Evaluates architectures on one task."""

    #: The metric that searchers maximise.
    objective: str = "val_accuracy"
    #: Whether it reports the objective after every epoch (so that a multi-fidelity
    #: scheduler can stop it early); False for look-ups of final values.
    reports_epochs: bool = True
    #: Whether it answers in microseconds (a table look-up): then an in-process search
    #: evaluates and stores each trial in one transaction, holding the write lock.
    instant: bool = False

    @property
    @abstractmethod
    def key(self) -> str:
        """Identity of the task and evaluation settings; results are reused only
        between evaluations with equal keys (and equal space key and fidelity)."""

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
