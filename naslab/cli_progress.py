"""Progress of long CLI commands, on stderr so that stdout stays parseable.

:func:`progress` counts the steps of one loop (fits, candidates, runs) and shows
done/total, elapsed time and an estimate of the time remaining:

- when stderr is a terminal: a Rich progress bar, redrawn in place;
- otherwise (a log file, a pipe, a test): a plain line of text at most every
  ``interval`` seconds (30 by default, or ``$NASLAB_PROGRESS_INTERVAL``), no
  control codes, and nothing at all for a loop that ends sooner.

``NASLAB_PROGRESS=0`` turns both off; ``NASLAB_PROGRESS=1`` forces the bar (for a
terminal that does not say it is one)::

    with progress("fits", total=len(jobs)) as bar:
        for job in jobs:
            run(job)
            bar.advance()
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console

__all__ = ["ProgressBar", "format_seconds", "progress"]

#: Seconds between two plain progress lines when stderr is not a terminal.
PLAIN_INTERVAL = 30.0


class ProgressBar(Protocol):
    """What a loop calls to report its progress."""

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` more steps as done."""


def format_seconds(seconds: float) -> str:
    """``75.2`` -> ``"0:01:15"`` (hours:minutes:seconds); ``"?"`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class _Silent:
    def advance(self, steps: int = 1) -> None:
        return None


class _PlainLines:
    """Occasional plain lines: ``what: 40/100 (40%), elapsed 0:00:31, remaining ~0:00:46``."""

    def __init__(self, description: str, total: int, console: Console, interval: float) -> None:
        self.description, self.total, self.console = description, total, console
        self.interval = interval
        self.done = 0
        self.started = self.last = time.monotonic()

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        elapsed = now - self.started
        remaining = elapsed / self.done * (self.total - self.done) if self.done else math.inf
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        self.console.print(
            f"{self.description}: {self.done}/{self.total}{share}, elapsed "
            f"{format_seconds(elapsed)}, remaining ~{format_seconds(remaining)}",
            markup=False, highlight=False, emoji=False, soft_wrap=True)


class _RichBar:
    def __init__(self, bar: object, task: int) -> None:
        self.bar, self.task = bar, task

    def advance(self, steps: int = 1) -> None:
        self.bar.advance(self.task, steps)  # type: ignore[attr-defined]


def _mode(console: Console) -> str:
    setting = os.environ.get("NASLAB_PROGRESS", "").strip().lower()
    if setting in ("0", "no", "false", "off"):
        return "off"
    if setting in ("1", "yes", "true", "on"):
        return "forced"
    return "bar" if console.is_terminal else "lines"


def _interval(default: float) -> float:
    """``$NASLAB_PROGRESS_INTERVAL`` seconds (a number >= 0), else ``default``."""
    from naslab.core.errors import ConfigError

    raw = os.environ.get("NASLAB_PROGRESS_INTERVAL", "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"NASLAB_PROGRESS_INTERVAL must be a number of seconds >= 0, "
                          f"got {raw!r}")
    return value


@contextmanager
def progress(description: str, total: int, *, console: Console | None = None,
             interval: float | None = None) -> Iterator[ProgressBar]:
    """Show the progress of a loop of ``total`` steps on ``console`` (default: the
    CLI's stderr console) while the block runs; the block calls ``advance()``.

    A bar when the console is a terminal (or ``NASLAB_PROGRESS=1``), else a plain
    line at most every ``interval`` seconds (default ``$NASLAB_PROGRESS_INTERVAL``
    or 30); nothing with ``NASLAB_PROGRESS=0``.
    """
    if console is None:
        from naslab.cli_common import err_console as console
    mode = _mode(console)
    if mode == "off":
        yield _Silent()
        return
    if mode == "lines":
        seconds = _interval(PLAIN_INTERVAL) if interval is None else interval
        yield _PlainLines(description, total, console, seconds)
        return
    if mode == "forced" and not console.is_terminal:
        console = Console(file=console.file, force_terminal=True, width=console.width)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}", markup=False), BarColumn(),
               MofNCompleteColumn(), TextColumn("elapsed"), TimeElapsedColumn(),
               TextColumn("remaining"), TimeRemainingColumn())
    # stdout is not redirected: what the command prints there stays on stdout
    with Progress(*columns, console=console, redirect_stdout=False,
                  redirect_stderr=False) as bar:
        yield _RichBar(bar, bar.add_task(description, total=total))
