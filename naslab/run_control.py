"""What one run of a study watches besides its budget: :class:`RunControl`.

- a wall-clock limit (``Study.run(timeout=SECONDS)``): once it has passed, the run
  asks for no new trial; trials already running finish and are stored (a Ray
  trial's own limit is the executor's ``trial_timeout``);
- a stop request (:meth:`Study.stop <naslab.study.Study.stop>`, from a callback or
  another thread): the same graceful end;
- callbacks after each finished trial: the progress ``callback(event)`` and
  ``callbacks=[fn, ...]`` called as ``fn(study, event)`` (an exception raised by one
  ends the run: the trials finished so far are stored, those in flight are marked
  interrupted, and the exception propagates);
- the progress bar (:mod:`naslab.progress`);
- log lines on the ``naslab.run_control`` logger for each finished trial (INFO;
  a failed one at WARNING);
- a :class:`FailingTrialsWarning` (:func:`warnings.warn`, shown once by Python's
  default filters; ``logging.captureWarnings(True)`` sends it to logging) when the
  first :data:`FAILED_WARN_AFTER` trials of a run all failed, naming the first
  error, and a :class:`NoCompleteTrialWarning` at the end of a run when the study
  has failed trials and no complete one (``report.best`` is None).
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from naslab.core.errors import ConfigError
from naslab.core.validation import check_float
from naslab.loop import TrialEvent
from naslab.progress import ProgressDisplay, progress_wanted

if TYPE_CHECKING:
    from naslab.study import Study, StudyReport

__all__ = ["FAILED_WARN_AFTER", "FailingTrialsWarning", "NoCompleteTrialWarning", "RunControl",
           "StudyCallback"]

logger = logging.getLogger(__name__)

#: A run whose first this-many trials all failed warns (once).
FAILED_WARN_AFTER = 5
#: The longest error text a warning quotes.
_ERROR_CHARS = 300

#: A callback of ``Study.run(callbacks=[...])``: called with the study and the
#: :class:`~naslab.loop.TrialEvent` of each finished trial.
StudyCallback = Callable[["Study", TrialEvent], Any]


class FailingTrialsWarning(UserWarning):
    """Every trial so far failed: the task, the space or the evaluator is likely
    broken (the message names the first error)."""


class NoCompleteTrialWarning(FailingTrialsWarning):
    """A run ended and its study has failed trials but no complete one
    (``report.best`` is None)."""


class RunControl:
    """The per-run options of :meth:`Study.run <naslab.study.Study.run>`, checked
    before anything is stored, and what the loop consults (:meth:`stop_reason`) and
    calls (this object, with each :class:`~naslab.loop.TrialEvent`).

    Args:
        study: the study being run (passed to each of ``callbacks``).
        callback: called as ``callback(event)`` after each finished trial.
        callbacks: each called as ``fn(study, event)`` after each finished trial, in
            order, after ``callback``.
        progress: draw a progress bar (None: when stderr is a terminal or a notebook).
        timeout: seconds of wall clock after which the run asks for no new trial
            (a positive finite number), or None.
    """

    def __init__(self, study: Study, *, callback: Callable[[TrialEvent], Any] | None = None,
                 callbacks: Iterable[StudyCallback] = (), progress: bool | None = None,
                 timeout: float | None = None) -> None:
        self.study = study
        self.timeout = None if timeout is None else check_float(
            "timeout (seconds of wall clock)", timeout, minimum=0, strict_minimum=True)
        if callback is not None and not callable(callback):
            raise ConfigError(f"callback must be a function of one TrialEvent, got "
                              f"{type(callback).__name__}")
        self.callback = callback
        self.callbacks = _check_callbacks(callbacks)
        self.show_progress = progress_wanted(progress)
        self.started = time.monotonic()
        self.deadline: float | None = None
        self._stop_requested = False
        #: The first error of this run's failed trials, or None.
        self.first_error: str | None = None
        self._finished = 0  # this run's own finished trials
        self._complete = 0
        self._warned = False
        self._display: ProgressDisplay | None = None

    def __enter__(self) -> RunControl:
        self.started = time.monotonic()
        self.deadline = None if self.timeout is None else self.started + self.timeout
        if self.show_progress:
            study = self.study
            self._display = ProgressDisplay(study.name, study.budget, study.evaluator.objective,
                                            deadline=self.deadline).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._display is not None:
            self._display.__exit__(*exc)
            self._display = None

    def stop(self) -> None:
        """Ask the run to end: no new trial is claimed; those in flight finish."""
        self._stop_requested = True

    def stop_reason(self) -> str | None:
        """``"stopped"`` (:meth:`stop` was called), ``"timeout"`` (the wall-clock limit
        passed), or None: the loop asks this before each new trial."""
        if self._stop_requested:
            return "stopped"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "timeout"
        return None

    def __call__(self, event: TrialEvent) -> None:
        """After each finished trial: log it, watch for failures, draw, call back."""
        _log_trial(event)
        self._watch(event)
        if self._display is not None:
            self._display.update(event)
        if self.callback is not None:
            self.callback(event)
        for fn in self.callbacks:
            fn(self.study, event)

    def _watch(self, event: TrialEvent) -> None:
        self._finished += 1
        if event.state == "failed":
            if self.first_error is None:
                self.first_error = _short(event.error or "unknown error")
        else:
            self._complete += 1
        if (not self._warned and self._complete == 0
                and self._finished >= FAILED_WARN_AFTER):
            self._warned = True
            _warn(FailingTrialsWarning,
                  f"study {self.study.name!r}: the first {self._finished} trials of this "
                  f"run all failed; the first error: {self.first_error}. The search goes on; "
                  "check the task, the space and the evaluator (naslab results shows every "
                  "error)")

    def finish(self, report: StudyReport) -> None:
        """At the end of a run: show the final count; say why it stopped."""
        done = report.complete + report.stopped + report.failed
        if self._display is not None:
            self._display.finish(done, None if report.stopped_by == "budget" else done)
        logger.info("study %s: run ended (%s) after %.1f s: %d complete, %d stopped, "
                    "%d failed of budget %d", report.name, report.stopped_by,
                    report.elapsed_s, report.complete, report.stopped, report.failed,
                    report.budget)

    def warn_if_nothing_complete(self, report: StudyReport) -> None:
        """Warn when the study has failed trials and none complete (``best`` is None)."""
        if report.best is not None or report.failed == 0:
            return
        first = f"; the first error of this run: {self.first_error}" if self.first_error else ""
        _warn(NoCompleteTrialWarning,
              f"study {report.name!r} has no complete trial: all {report.failed} finished "
              f"trials failed{first}. report.best is None")


def _check_callbacks(callbacks: Iterable[StudyCallback]) -> tuple[StudyCallback, ...]:
    if callable(callbacks) or isinstance(callbacks, (str, bytes)):
        raise ConfigError("callbacks must be a list of functions fn(study, event), got "
                          f"a single {type(callbacks).__name__}; wrap it in a list")
    try:
        out = tuple(callbacks)
    except TypeError:
        raise ConfigError("callbacks must be a list of functions fn(study, event), got "
                          f"{type(callbacks).__name__}") from None
    for fn in out:
        if not callable(fn):
            raise ConfigError("each of callbacks must be a function fn(study, event), got "
                              f"{type(fn).__name__}")
    return out


def _log_trial(event: TrialEvent) -> None:
    if event.state == "failed":
        logger.warning("study %s: trial %d failed (%d/%d finished): %s", event.study,
                       event.number, event.finished, event.budget, event.error)
    elif logger.isEnabledFor(logging.INFO):
        how = "reused" if event.reused else event.state
        logger.info("study %s: trial %d %s, value %s (%d/%d finished, best %s)", event.study,
                    event.number, how, event.value, event.finished, event.budget,
                    event.best_value)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_CHARS else text[:_ERROR_CHARS - 3] + "..."


def _warn(category: type[Warning], message: str) -> None:
    """``warnings.warn`` pointing at the first caller outside naslab (the user's
    ``study.run()`` line), so Python's default filter shows it once there."""
    level, frame = 2, sys._getframe(1)  # stacklevel 2: _warn's caller
    while frame is not None and _in_naslab(str(frame.f_globals.get("__name__", ""))):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def _in_naslab(module: str) -> bool:
    return module == "naslab" or module.startswith("naslab.")
