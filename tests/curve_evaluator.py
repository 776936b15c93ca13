"""A fast evaluator with made-up learning curves (for scheduler and Ray tests).

The curve of an architecture rises towards a ceiling taken from its hash:
``ceiling * (1 - 0.5 ** epoch)``, so trials differ and rankings are stable across
epochs. It honours a scheduler's stop (the reporter answering False), can sleep per
epoch, and returns NaN for architectures whose activation is ``nan_act``.
"""

from __future__ import annotations

import math
import os
import time

from naslab.workers.evaluator import Evaluator, Result


class CurveEvaluator(Evaluator):
    def __init__(self, epoch_seconds: float = 0.0, nan_act: str | None = None) -> None:
        self.epoch_seconds = epoch_seconds
        self.nan_act = nan_act

    def __setstate__(self, state):  # count how often a worker unpickles this evaluator
        self.__dict__.update(state)
        self.loads = getattr(self, "loads", 0) + 1

    @property
    def key(self) -> str:
        return f"curve(nan_act={self.nan_act})"

    @staticmethod
    def ceiling(arch) -> float:
        return 0.5 + 0.5 * int(arch.hash[:8], 16) / 2**32

    def evaluate(self, space, arch, fidelity, seed, reporter):
        value = math.nan
        done = 0
        for epoch in range(1, fidelity + 1):
            time.sleep(self.epoch_seconds)
            value = self.ceiling(arch) * (1 - 0.5**epoch)
            if self.nan_act is not None and arch.decisions.get("act") == self.nan_act:
                value = math.nan
            done = epoch
            if reporter.report(epoch, {"val_accuracy": value}) is False:
                break
        return Result(metrics={"val_accuracy": value}, params=1, epochs=done,
                      train_seconds=self.epoch_seconds * done,
                      extra={"pid": os.getpid(), "instance": id(self),
                             "loads": getattr(self, "loads", 0)})
