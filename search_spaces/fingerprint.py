"""The fingerprint of a search space: a digest of what it declares and builds.

Used in the :attr:`~naslab.search_spaces.base.SearchSpace.key` of spaces that are not
built in, so that editing a space's ``decisions``, ``to_graph`` or ``build`` gives a
new key and stored results of the old definition are not reused. It is cheap: a few
architectures (a fixed, seeded probe set), their graphs, and the module types and
parameter shapes that ``build`` makes for them on a small image task; nothing is
trained and no weight value is read.
"""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from naslab.search_spaces.base import SearchSpace

__all__ = ["PROBE_TASK", "space_fingerprint"]

#: The task ``build`` is probed with: 1 x 8 x 8 images, 10 classes.
PROBE_TASK = SimpleNamespace(name="fingerprint-probe", input_shape=(1, 8, 8), num_classes=10)


def _graph_text(graph: Any) -> list[Any]:
    nodes = sorted((str(v), json.dumps(dict(graph.nodes[v]), sort_keys=True, default=str))
                   for v in graph.nodes)
    edges = sorted((str(u), str(v)) for u, v in graph.edges)
    return [nodes, edges]


def _module_text(space: SearchSpace, arch: Any) -> list[Any]:
    """Module types and parameter/buffer shapes of ``build(arch, PROBE_TASK)``, or the
    name of the error it raised (a space built for other tasks)."""
    import torch

    try:
        with torch.random.fork_rng(devices=[]):
            module = space.build(arch, PROBE_TASK)
            types = [type(m).__name__ for m in module.modules()]
            shapes = [(k, list(v.shape)) for k, v in module.state_dict().items()]
    except Exception as exc:  # noqa: BLE001 - user code; only its type is kept
        return ["build failed", type(exc).__name__]
    return [types, shapes]


def space_fingerprint(space: SearchSpace) -> str:
    """A 10-hex-digit digest of ``space``'s declarations, the graphs of its probe
    architectures and the modules it builds for them."""
    declared = list(space.decisions())
    parts: list[Any] = [[repr(d) for d in declared]]
    for decisions in space.probe_set():
        arch = space.from_decisions(decisions)
        parts.append([_graph_text(arch.graph), _module_text(space, arch)])
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]
