"""A toy space's architectures, studies and results for store-level tests."""

from __future__ import annotations

import networkx as nx

from naslab.db.records import StudyInfo, StudySpec
from naslab.db.store import Store
from naslab.search_spaces.architecture import Architecture
from naslab.workers.evaluator import Result

#: Settings of a toy study (all StudySpec fields but the name).
STUDY_DEFAULTS = dict(space="toy", space_key="toy:v1", space_config={"depth": 2},
                      task_key="digits:v1", searcher="random", objective="val_accuracy",
                      direction="maximize", budget=10, fidelity=3, seed=0,
                      config={"workers": 1})


def make_arch(ops=("conv",), prefix: str = "n", decisions: dict | None = None) -> Architecture:
    """A chain input -> ops... -> output; ``prefix`` renames nodes (same hash)."""
    g = nx.DiGraph()
    g.add_node(f"{prefix}_in", op="input")
    prev = f"{prefix}_in"
    for i, op in enumerate(ops):
        node = f"{prefix}{i}"
        g.add_node(node, op=op)
        g.add_edge(prev, node)
        prev = node
    g.add_node(f"{prefix}_out", op="output")
    g.add_edge(prev, f"{prefix}_out")
    return Architecture("toy", decisions if decisions is not None else {"ops": list(ops)}, g)


def new_study(store: Store, name: str = "s1", **overrides) -> StudyInfo:
    """Create (or load) a toy study."""
    return store.studies.create_or_load(StudySpec(name=name, **{**STUDY_DEFAULTS, **overrides}))


def result(val: float, test: float | None = None, **kw) -> Result:
    """A result with ``val_accuracy`` (and ``test_accuracy``) and typical costs."""
    metrics = {"val_accuracy": val}
    if test is not None:
        metrics["test_accuracy"] = test
    kw.setdefault("params", 1000)
    kw.setdefault("flops", 20000)
    kw.setdefault("latency_ms", 1.5)
    kw.setdefault("train_seconds", 2.0)
    kw.setdefault("epochs", 3)
    return Result(metrics=metrics, **kw)
