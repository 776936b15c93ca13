"""Who owns a running trial: driver ids, liveness and heartbeats.

Several search drivers (``naslab search`` processes, on one machine or several)
may work on one study. Each running trial records the driver that started it
(``naslab_trials.driver``: ``host/pid/start``, the process's start time in
milliseconds) and when that driver last said it was alive (``heartbeat_at``).

A driver that resumes a study interrupts only the running trials of drivers that
are dead: on the same host, a process that no longer exists (or whose pid now
belongs to a younger process); on another host, one whose heartbeat is older
than the lease (:data:`LEASE_S`). Live drivers' trials are left alone.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import psutil

#: How often a driver refreshes the heartbeat of its running trials (seconds).
HEARTBEAT_S = 10.0
#: A driver on another host whose heartbeat is older than this is taken for dead.
LEASE_S = 120.0


@lru_cache(maxsize=1)
def _host() -> str:
    return socket.gethostname()


def _start_ms(pid: int) -> int | None:
    try:
        return int(round(psutil.Process(pid).create_time() * 1000))
    except (psutil.Error, OSError):
        return None


def driver_id() -> str:
    """This process's driver id: ``host/pid/start`` (start time in ms)."""
    pid = os.getpid()
    return f"{_host()}/{pid}/{_start_ms(pid) or 0}"


def parse_driver(driver: str) -> tuple[str, int, int] | None:
    """``(host, pid, start_ms)`` of a driver id, or None if it is not one."""
    host, sep, rest = driver.rpartition("/")
    host, sep2, pid = host.rpartition("/")
    if not sep or not sep2:
        return None
    try:
        return host, int(pid), int(rest)
    except ValueError:
        return None


def driver_alive(
    driver: str | None,
    heartbeat_at: datetime | None,
    *,
    now: datetime | None = None,
    lease_s: float = LEASE_S,
) -> bool:
    """Whether the driver that owns a running trial may still be working on it.

    A trial without a driver (started through the store's API, or by a naslab from
    before drivers were recorded) is taken as abandoned.
    """
    if not driver:
        return False
    parsed = parse_driver(driver)
    if parsed is not None and parsed[0] == _host():
        _, pid, start = parsed
        found = _start_ms(pid)
        return found is not None and abs(found - start) <= 1000
    if heartbeat_at is None:
        return False
    now = now or datetime.now(timezone.utc)
    if heartbeat_at.tzinfo is None:
        heartbeat_at = heartbeat_at.replace(tzinfo=timezone.utc)
    return now - heartbeat_at < timedelta(seconds=lease_s)


class Heartbeat:
    """A daemon thread that calls ``beat()`` every ``every_s`` seconds until stopped
    (the driver's loop may be busy training in the same process meanwhile)."""

    def __init__(self, beat: Callable[[], object], every_s: float = HEARTBEAT_S) -> None:
        self._beat = beat
        self._every = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="naslab-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - a missed beat is retried next time
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


__all__ = ["HEARTBEAT_S", "LEASE_S", "Heartbeat", "driver_alive", "driver_id", "parse_driver"]
