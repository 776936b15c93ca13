"""Evaluators that fail on purpose, by the first layer's op (for Ray fault tests).

They wrap the real NAS-Bench-Graph table evaluator: gat -> the worker process is
SIGKILLed (the first time only if ``marker_dir`` is set, so a retry succeeds),
gin -> the worker segfaults, sage -> hangs, cheb -> raises.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path

from naslab.workers.benchmark_table import NasBenchGraphEvaluator


class FaultyTable(NasBenchGraphEvaluator):
    def __init__(self, marker_dir: str | None = None, faults=("gat", "gin", "sage", "cheb")):
        super().__init__("cora")
        self.marker_dir = marker_dir
        self.faults = tuple(faults)

    def evaluate(self, space, arch, fidelity, seed, reporter):
        op = arch.decisions["op1"]
        if op in self.faults:
            if op == "gat":
                marker = Path(self.marker_dir or "/nonexistent") / arch.hash
                if self.marker_dir is None or not marker.exists():
                    if self.marker_dir is not None:
                        marker.touch()
                    os.kill(os.getpid(), signal.SIGKILL)
            elif op == "gin":
                ctypes.string_at(0)  # segmentation fault
            elif op == "sage":
                time.sleep(3600)
            elif op == "cheb":
                raise RuntimeError("deterministic bug in the model")
        return super().evaluate(space, arch, fidelity, seed, reporter)


class UnloadableTable(NasBenchGraphEvaluator):
    """Cannot be unpickled outside the process that made it (as an evaluator whose
    module is missing on the workers)."""

    def __getstate__(self):
        return {**self.__dict__, "_home": os.getpid()}

    def __setstate__(self, state):
        if state["_home"] != os.getpid():
            raise ModuleNotFoundError("No module named 'my_private_evaluators'")
        self.__dict__.update(state)
