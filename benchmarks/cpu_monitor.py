"""CPU accounting for the benchmark scripts: how much CPU this process tree used
while a measurement ran, and how much every other process on the machine used.

Imported by the scripts in this folder (run as ``python benchmarks/NAME.py``, which
puts this folder on ``sys.path``). Needs ``psutil``; without it, both figures stay 0.
"""

from __future__ import annotations

import os
import threading


class CpuMonitor:
    """Samples every process's CPU time twice a second and splits what was used while
    it ran into this process tree (the driver, Ray and its workers) and the rest of
    the machine: other work running at the same time distorts the figures."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval, self.ours, self.others = interval, 0.0, 0.0
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        try:
            import psutil
        except ImportError:
            return
        parents, cpu = {}, {}
        for p in psutil.process_iter(["pid", "ppid", "cpu_times"]):
            if p.info["cpu_times"] is not None:
                parents[p.info["pid"]] = p.info["ppid"]
                cpu[p.info["pid"]] = p.info["cpu_times"].user + p.info["cpu_times"].system
        me = os.getpid()
        for pid, used in cpu.items():
            delta = used - self._last.get(pid, used)  # new processes count from now
            ancestor, hops = pid, 0
            while ancestor not in (me, 0, 1) and hops < 50:
                ancestor, hops = parents.get(ancestor, 0), hops + 1
            if ancestor == me:
                self.ours += delta
            else:
                self.others += delta
        self._last = cpu

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> CpuMonitor:
        self._sample()
        self.ours = self.others = 0.0
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
