"""Multi-fidelity schedulers: stop poor candidates early from their per-epoch reports.

A :class:`Scheduler` watches each trial's learning curve (its objective, reported
after every epoch) and decides, at a few *rungs* (epochs known in advance), whether
the trial goes on training. A trial it stops is stored as ``stopped`` with the
metrics of the epochs it reached; its learning curve stays in the store.

Built in (the stopping forms used by Ray Tune and Optuna, which need no pausing
and resuming of trials):

``asha``
    Asynchronous successive halving (Li et al., 2020). Rungs at
    ``min_epochs * eta**k`` epochs, below the study's fidelity. A trial reaching a
    rung continues only if its objective there is at least the ``1 - 1/eta``
    quantile of the values recorded at that rung by earlier trials (the first trial
    at a rung always continues), so about ``1/eta`` of the trials go on past each
    rung. This is Ray Tune's ``ASHAScheduler`` rule.
``hyperband``
    Asynchronous Hyperband: ``s_max + 1`` ASHA brackets whose first rung is at
    ``min_epochs * eta**b`` epochs (``b = 0`` the most aggressive, ``b = s_max``
    trains every trial to the end). Trial ``n`` joins a bracket by ``n`` modulo the
    brackets' Hyperband sizes ``ceil((s_max + 1) / (s + 1) * eta**s)``, so the
    assignment is deterministic and survives a resume. Rungs compare trials of the
    same bracket only.

Decisions depend only on reports already received, in the order they arrived.
A resumed study rebuilds the rungs from the stored learning curves of its finished
trials (:meth:`Scheduler.replay`). Synchronous successive halving and Hyperband
with *promotion* (pause a trial at a rung, resume it later) are not provided: they
need resumable training checkpoints.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from naslab.core.errors import ConfigError
from naslab.core.registry import Registry
from naslab.core.validation import check_int


class Scheduler(ABC):
    """Decides, at rung epochs, whether a trial keeps training (objective maximised).

    Subclasses set :attr:`name` and implement :meth:`rungs` and :meth:`_decide`.
    """

    #: Name used by the CLI and stored with the study.
    name: str = "scheduler"

    def __init__(self, max_epochs: int) -> None:
        self.max_epochs = check_int("max_epochs (the study's epochs)", max_epochs, minimum=1)

    @abstractmethod
    def rungs(self, trial_number: int) -> frozenset[int]:
        """The epochs at which trial ``trial_number`` may be stopped."""

    @abstractmethod
    def _decide(self, trial_number: int, step: int, value: float) -> bool:
        """Record ``value`` at rung ``step`` and say whether the trial continues."""

    def on_report(self, trial_number: int, step: int, value: float | None) -> bool:
        """Whether trial ``trial_number`` continues after reporting ``value`` at ``step``.

        Steps that are not rungs of the trial always continue; a missing or NaN
        value at a rung stops the trial (it is worse than any number).
        """
        if step not in self.rungs(trial_number):
            return True
        if value is None or not math.isfinite(value):
            value = -math.inf
        return self._decide(trial_number, step, float(value))

    def replay(self, curves: Iterable[tuple[int, Mapping[int, float]]]) -> None:
        """Rebuild the rungs from finished trials: ``(trial number, {step: value})``,
        in the order they were reported."""
        for number, curve in curves:
            for step in sorted(self.rungs(number)):
                if step in curve:
                    self.on_report(number, step, curve[step])

    def config(self) -> dict[str, Any]:
        """The settings that define this scheduler (stored with the study)."""
        return {"name": self.name}


def _check_rung_settings(min_epochs: Any, eta: Any, max_epochs: int) -> tuple[int, int]:
    """Checked ``(min_epochs, eta)``: a first rung below ``max_epochs``, eta >= 2."""
    min_epochs = check_int("min_epochs", min_epochs, minimum=1)
    eta = check_int("eta", eta, minimum=2)
    if min_epochs >= max_epochs:
        raise ConfigError(
            f"min_epochs ({min_epochs}) must be below the study's epochs ({max_epochs}) "
            "for a scheduler to stop anything"
        )
    return min_epochs, eta


class _Rungs:
    """Values recorded at each rung of one bracket."""

    def __init__(self, steps: Iterable[int], eta: int) -> None:
        self.steps = frozenset(steps)
        self.eta = eta
        self.recorded: dict[int, dict[int, float]] = {s: {} for s in self.steps}

    def decide(self, trial_number: int, step: int, value: float) -> bool:
        recorded = self.recorded[step]
        if trial_number in recorded:  # a repeated report: same answer as before
            others = [v for n, v in recorded.items() if n != trial_number]
        else:
            others = list(recorded.values())
        recorded[trial_number] = value
        if not others:
            return True
        finite = [v for v in others if math.isfinite(v)]
        if not finite:
            return True
        cutoff = float(np.percentile(finite, (1.0 - 1.0 / self.eta) * 100.0))
        return value >= cutoff


class ASHA(Scheduler):
    """Asynchronous successive halving (stopping form).

    Args:
        max_epochs: the study's fidelity; trials that pass every rung train this long.
        min_epochs: the first rung (epochs every trial trains).
        eta: reduction factor: about ``1/eta`` of the trials pass each rung.
    """

    name = "asha"

    def __init__(self, max_epochs: int, *, min_epochs: int = 1, eta: int = 3) -> None:
        super().__init__(max_epochs)
        self.min_epochs, self.eta = _check_rung_settings(min_epochs, eta, self.max_epochs)
        self._rungs = _Rungs(rung_steps(self.min_epochs, self.max_epochs, self.eta), self.eta)

    def rungs(self, trial_number: int) -> frozenset[int]:
        """The same rungs for every trial: ``min_epochs * eta**k < max_epochs``."""
        return self._rungs.steps

    def _decide(self, trial_number: int, step: int, value: float) -> bool:
        return self._rungs.decide(trial_number, step, value)

    def config(self) -> dict[str, Any]:
        """Name, min_epochs and eta."""
        return {"name": self.name, "min_epochs": self.min_epochs, "eta": self.eta}


class Hyperband(Scheduler):
    """Asynchronous Hyperband: ASHA brackets with different first rungs.

    Args:
        max_epochs: the study's fidelity.
        min_epochs: the first rung of the most aggressive bracket.
        eta: reduction factor within each bracket.
    """

    name = "hyperband"

    def __init__(self, max_epochs: int, *, min_epochs: int = 1, eta: int = 3) -> None:
        super().__init__(max_epochs)
        self.min_epochs, self.eta = _check_rung_settings(min_epochs, eta, self.max_epochs)
        s_max = 0
        while self.min_epochs * self.eta ** (s_max + 1) <= self.max_epochs:
            s_max += 1
        self.s_max = s_max
        self.brackets: list[_Rungs] = []
        self.sizes: list[int] = []
        for b in range(s_max + 1):
            s = s_max - b  # halvings in this bracket
            first = self.min_epochs * self.eta**b
            self.brackets.append(_Rungs(rung_steps(first, self.max_epochs, self.eta), self.eta))
            self.sizes.append(math.ceil((s_max + 1) / (s + 1) * self.eta**s))
        self._cycle = sum(self.sizes)

    def bracket(self, trial_number: int) -> int:
        """The bracket of trial ``trial_number`` (0 = most aggressive)."""
        pos = trial_number % self._cycle
        for b, size in enumerate(self.sizes):
            if pos < size:
                return b
            pos -= size
        raise AssertionError("unreachable")

    def rungs(self, trial_number: int) -> frozenset[int]:
        """The rungs of the trial's bracket."""
        return self.brackets[self.bracket(trial_number)].steps

    def _decide(self, trial_number: int, step: int, value: float) -> bool:
        return self.brackets[self.bracket(trial_number)].decide(trial_number, step, value)

    def config(self) -> dict[str, Any]:
        """Name, min_epochs and eta."""
        return {"name": self.name, "min_epochs": self.min_epochs, "eta": self.eta}


def rung_steps(first: int, max_epochs: int, eta: int) -> list[int]:
    """``first * eta**k`` for k = 0, 1, ... while below ``max_epochs``."""
    steps = []
    step = first
    while step < max_epochs:
        steps.append(step)
        step *= eta
    return steps


#: Schedulers by their CLI name; options ``min_epochs`` (int >= 1) and ``eta`` (int >= 2).
SCHEDULERS = Registry("scheduler", base=Scheduler)
SCHEDULERS.register(ASHA.name, ASHA)
SCHEDULERS.register(Hyperband.name, Hyperband)


def get_scheduler(name: str, max_epochs: int, **options: Any) -> Scheduler:
    """The scheduler ``name`` for trials of ``max_epochs``; unknown names list the
    choices, unknown options those accepted (``min_epochs``, ``eta``)."""
    return SCHEDULERS.create(name, max_epochs=max_epochs, **options)
