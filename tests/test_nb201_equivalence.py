"""NAS-Bench-201's own count of unique cells: ``equivalence="nb201"`` (skip_connect as an
identity, as its API's ``to_unique_str(consider_zero=True)``) against the default graph
equivalence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from naslab.core.errors import ConfigError, UnknownNameError
from naslab.search_spaces.nb201 import EDGES, OPS, NB201Space, unique_string


def _all_cells():
    for ops in itertools.product(OPS, repeat=len(EDGES)):
        yield {f"e{i}_{j}": op for (i, j), op in zip(EDGES, ops, strict=True)}


def test_the_published_6466_unique_cells():
    """NAS-Bench-201 (Dong & Yang 2020) counts 6,466 unique cells of its 15,625."""
    space = NB201Space(equivalence="nb201")
    assert len({space.from_decisions(d).hash for d in _all_cells()}) == 6466
    assert space.classes() == 6466 and space.size() == 15625
    assert len({unique_string(d) for d in _all_cells()}) == 6466


def test_skip_connect_is_an_identity_only_under_nb201():
    skip_then_conv = NB201Space().from_string(
        "|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|")
    conv = NB201Space().from_string("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    assert skip_then_conv != conv  # graph equivalence: two different networks
    nb = NB201Space(equivalence="nb201")
    a = nb.from_string("|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|")
    b = nb.from_string("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    assert a == b and a.hash == b.hash
    assert dict(a.decisions) != dict(b.decisions)  # each keeps its own decisions
    nb.validate(a)
    out = nb.build(a, type("T", (), {"input_shape": (1, 8, 8), "num_classes": 10})())(
        torch.randn(2, 1, 8, 8))
    assert out.shape == (2, 10)


def test_the_equivalence_is_part_of_the_key_and_checked():
    assert NB201Space().key == "nb201-dafc379457"  # unchanged: stored results stay reusable
    assert NB201Space(equivalence="nb201").key != NB201Space().key
    assert NB201Space(equivalence="nb201").config()["equivalence"] == "nb201"
    for bad in ("NB201", "", None, 1, ["nb201"]):
        with pytest.raises((ConfigError, UnknownNameError), match="equivalence"):
            NB201Space(equivalence=bad)


def test_searches_under_nb201_equivalence_never_train_a_class_twice(tmp_path):
    from naslab import Study

    with Study(space="nb201", space_options={"equivalence": "nb201"}, searcher="random",
               budget=3, epochs=1, storage=f"sqlite:///{tmp_path / 's.db'}",
               evaluator_options={"batch_size": 128}) as study:
        report = study.run()
    assert report.complete == 3
    rng = np.random.default_rng(0)
    space = NB201Space(equivalence="nb201")
    seen = {space.sample(rng).hash for _ in range(300)}
    assert len(seen) < 300
