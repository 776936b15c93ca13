"""Built-in search spaces by name (:data:`SPACES`).

Entries name the module and class, imported on first use. ``info`` says which
task a space uses when none is given (``default_task``), what its networks take
(``inputs``: ``images`` or ``graphs``; tasks are listed to match) and what the space
follows (``follows``). Add a space of your own with ``SPACES.register("mine",
MySpace)``, or name its class on the command line (``--space file.py:MySpace``).
"""

from __future__ import annotations

from typing import Any

from naslab.core.registry import Registry
from naslab.search_spaces.base import SearchSpace

__all__ = ["SPACES", "get_space"]

#: The search spaces, by name.
SPACES = Registry("search space", base=SearchSpace)
SPACES.register("nb201", "naslab.search_spaces.nb201:NB201Space",
                info={"default_task": "digits", "inputs": "images",
                      "follows": "NAS-Bench-201 cells (Dong & Yang 2020)"})
SPACES.register("nb101", "naslab.search_spaces.nb101:NB101Space",
                info={"default_task": "digits", "inputs": "images",
                      "follows": "NAS-Bench-101 cells (Ying et al. 2019)"})
SPACES.register("darts", "naslab.search_spaces.darts:DartsSpace",
                info={"default_task": "digits", "inputs": "images",
                      "follows": "DARTS / NASNet normal and reduction cells (Liu et al. 2019)"})
SPACES.register("mbv3", "naslab.search_spaces.mbv3:MobileNetV3Space",
                info={"default_task": "digits", "inputs": "images",
                      "follows": "once-for-all MobileNetV3 (Cai et al. 2020; DyNAS-T)"})
SPACES.register("hybrid", "naslab.search_spaces.hybrid:HybridSpace",
                info={"default_task": "digits", "inputs": "images",
                      "follows": "BossNAS HyTra CNN-transformer blocks (Li et al. 2021)"})
SPACES.register("chain", "naslab.search_spaces.chain:ChainSpace",
                info={"default_task": "digits", "inputs": "images",
                      "follows": "a plain macro space of stacked convolutions"})
SPACES.register("gnn", "naslab.search_spaces.gnn:GNNSpace",
                info={"default_task": "sbm", "inputs": "graphs",
                      "follows": "NAS-Bench-Graph's space, trained with PyG (Qin et al. 2022)"})
SPACES.register("nasbench_graph", "naslab.search_spaces.nasbench_graph:NasBenchGraphSpace",
                info={"default_task": "cora", "inputs": "graphs",
                      "follows": "NAS-Bench-Graph's tables (Qin et al. 2022)"})


def get_space(name: str, **kwargs: Any) -> SearchSpace:
    """The space ``name`` built with ``kwargs``; unknown names list the choices."""
    return SPACES.create(name, **kwargs)
