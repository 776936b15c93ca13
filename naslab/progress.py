"""The progress display of :meth:`Study.run <naslab.study.Study.run>`: one bar on
stderr with the trials finished of the budget, the best objective so far, the time
elapsed and the time left.

``progress=None`` (the default of ``run``) shows it when stderr is a terminal or
the code runs in a Jupyter kernel (:func:`progress_wanted`); ``True`` and ``False``
force it on or off. The ``naslab search`` command draws its own and turns this one
off.
"""

from __future__ import annotations

import importlib.util
import math
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from naslab.core.errors import ConfigError

if TYPE_CHECKING:
    from naslab.loop import TrialEvent

__all__ = ["ProgressDisplay", "clock", "progress_wanted"]


def progress_wanted(progress: bool | None, console: Console | None = None) -> bool:
    """Whether to draw the progress bar: ``progress`` if True or False; for None,
    whether stderr is a terminal, or the code runs in a Jupyter kernel that can draw
    it (rich draws there through ``ipywidgets``, if installed)."""
    if progress is None:
        console = console or Console(stderr=True)
        if console.is_jupyter:
            return importlib.util.find_spec("ipywidgets") is not None
        return bool(console.is_terminal)
    if not isinstance(progress, bool):
        raise ConfigError(f"progress must be True, False or None (automatic), got "
                          f"{progress!r}")
    return progress


def clock(value: float | None) -> str:
    """``h:mm:ss`` (or ``m:ss``) of a number of seconds; ``?`` for None or a
    non-finite number."""
    if value is None or not math.isfinite(value):
        return "?"
    total = int(round(max(value, 0.0)))
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressDisplay:
    """A rich progress bar on stderr, updated with each :class:`~naslab.loop.TrialEvent`.

    Args:
        name: the study's name (shown as the bar's label).
        budget: the study's budget (the bar's total).
        objective: the name of the objective (``best val_accuracy 0.91``).
        deadline: ``time.monotonic()`` at which the run stops asking for trials (its
            ``timeout``), or None; the time left shown is then at most the time to it.
        console: where to draw; default a console on stderr.
    """

    def __init__(self, name: str, budget: int, objective: str, *,
                 deadline: float | None = None, console: Console | None = None) -> None:
        self.deadline = deadline
        self.objective = objective
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[best]}"), TextColumn("elapsed {task.fields[elapsed]}"),
            TextColumn("left {task.fields[eta]}"),
            console=console or Console(stderr=True), transient=False)
        self._bar = self._progress.add_task(
            escape(f"study {name}"), total=budget, best=f"best {escape(objective)} -",
            elapsed="0:00", eta="?")

    def __enter__(self) -> ProgressDisplay:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, event: TrialEvent) -> None:
        """Show the state after one finished trial."""
        eta = event.eta_s
        if self.deadline is not None:
            left = max(self.deadline - time.monotonic(), 0.0)
            eta = left if eta is None else min(eta, left)
        best = "-" if event.best_value is None else f"{event.best_value:.4f}"
        self._progress.update(self._bar, completed=event.finished, total=event.budget,
                              best=f"best {escape(self.objective)} {best}",
                              elapsed=clock(event.elapsed_s), eta=clock(eta))

    def finish(self, done: int, total: int | None = None) -> None:
        """Show the final count (``total``: the bar's new total, e.g. when the space
        ran out before the budget)."""
        fields: dict[str, Any] = {"completed": done, "eta": "0:00"}
        if total is not None:
            fields["total"] = total
        self._progress.update(self._bar, **fields)
