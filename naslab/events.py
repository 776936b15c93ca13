"""What a run of a study tells its callbacks after each finished trial:
:class:`TrialEvent` (also importable from :mod:`naslab.loop`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TrialEvent"]


@dataclass(frozen=True)
class TrialEvent:
    """What the callbacks of a run receive after each of its finished trials.

    Attributes:
        study: the study's name.
        number: the trial's number in the study (0, 1, ...).
        state: ``complete``, ``stopped`` (by a multi-fidelity scheduler) or ``failed``.
        value: its objective value (None when it failed).
        reused: whether the result was copied from an earlier evaluation (another
            study's) instead of evaluated.
        finished: the study's finished trials so far (every driver's, earlier runs'
            included).
        budget: the study's budget.
        best_value: the best objective value of the study's complete trials so far
            (None before the first).
        elapsed_s: seconds since the run started.
        trained_this_run: trials this run evaluated (not reused) so far.
        error: why it failed (None unless ``state`` is ``failed``).
    """

    study: str
    number: int
    state: str
    value: float | None
    reused: bool
    finished: int
    budget: int
    best_value: float | None
    elapsed_s: float
    trained_this_run: int
    error: str | None = None

    @property
    def eta_s(self) -> float | None:
        """Estimated seconds left, from this run's pace (None before any trial)."""
        done_here = max(self.trained_this_run, 0)
        if done_here == 0 or self.finished >= self.budget:
            return None if done_here == 0 else 0.0
        return self.elapsed_s / done_here * (self.budget - self.finished)
