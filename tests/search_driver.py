"""A search driver process for the concurrency and crash tests.

``python -m tests.search_driver URL STUDY BUDGET MODE SEARCHER [GO_FILE]`` runs the
study on NAS-Bench-Graph's cora table. MODE ``table`` answers from the table at once
(the instant path: one transaction per trial); ``slow`` is the same table behind an
evaluator that takes ``SLOW_S`` per evaluation and is not instant, so trials are
claimed ``running`` first and completed later, as when networks are trained. With
GO_FILE, the driver says it is ready (a file ``GO_FILE.ready-PID``) and waits for
GO_FILE to exist before it starts searching, so that several drivers start at once.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from naslab import Study
from naslab.workers.benchmark_table import NasBenchGraphEvaluator

SLOW_S = 0.01


class SlowTable(NasBenchGraphEvaluator):
    """The cora table, answered after ``SLOW_S`` and claimed like a training run."""

    instant = False

    def __init__(self) -> None:
        super().__init__("cora")

    def evaluate(self, space, arch, fidelity, seed, reporter):  # noqa: ANN001
        time.sleep(SLOW_S)
        return super().evaluate(space, arch, fidelity, seed, reporter)


def main(argv: list[str]) -> None:
    url, study, budget, mode, searcher = argv[:5]
    go = Path(argv[5]) if len(argv) > 5 else None
    task = SlowTable() if mode == "slow" else "cora"
    with Study(study, space="nasbench_graph", task=task, searcher=searcher,
               budget=int(budget), seed=0, storage=url) as s:
        s.prepare()
        if go is not None:
            Path(f"{go}.ready-{os.getpid()}").touch()  # imported and prepared
            while not go.exists():
                time.sleep(0.005)
        report = s.run()
    print(f"done: {report.trained_this_run} evaluated, {report.reused_this_run} reused, "
          f"{report.complete} complete")


if __name__ == "__main__":
    main(sys.argv[1:])
