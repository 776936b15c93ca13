"""Every registered space end to end: a search stores its trials, the best one is
exported with its trained weights and loads back (same architecture, same outputs),
architectures read back from the store equal the searched ones, and architectures of
every space featurize for the GNN predictors and the path encoding.

(The contract suite and a search per searcher run in each space's own test file.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from naslab import Study
from naslab.export import export_best, load_exported
from naslab.predictors.encodings import PathEncoder
from naslab.predictors.featurize import featurize
from naslab.search_spaces.registry import SPACES, get_space

#: Small settings per space so that a trial trains in about a second.
SMALL = {
    "nb201": {"channels": 4},
    "nb101": {"channels": 8},
    "darts": {"channels": 2, "cells": 3},
    "mbv3": {"width_mult": 0.1, "stages": 2},
    "hybrid": {"blocks": 3, "channels": 8},
    "chain": {"max_depth": 2},
    "gnn": {"hidden": 8},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_registered_space_is_covered_here():
    assert set(SPACES) - {"nasbench_graph"} == set(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_search_store_export_and_load_back(tmp_path, name):
    options = SMALL[name]
    train = {"keep_weights": True}
    if name != "gnn":
        train["batch_size"] = 128
    with Study("e2e", space=name, space_options=options, searcher="random", budget=2,
               epochs=1, storage=f"sqlite:///{tmp_path / 's.db'}",
               evaluator_options=train) as study:
        report = study.run()
        assert report.complete == 2, report
        trials = study.store.trials.list("e2e", ["complete"])
        space = study.space
        for trial in trials:  # the store gives back the architecture that was searched
            arch = trial.architecture()
            assert arch == space.from_decisions(dict(arch.decisions))
            space.validate(arch)
        folder = export_best(study.store, "e2e", tmp_path / "export")
    loaded_space, arch, module = load_exported(folder)
    assert loaded_space.key == space.key and arch.space == name
    if name == "gnn":
        from naslab.workers.task import get_task

        data = get_task("sbm").data
        out = module(data.x, data.edge_index)
        assert out.shape == (data.num_nodes, 4)
    else:
        out = module(torch.randn(3, 1, 8, 8))
        assert out.shape == (3, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_architectures_featurize_for_the_predictors(name):
    space = get_space(name, **SMALL[name])
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(8)]
    for arch in archs:
        data = featurize(arch)
        assert data.x.shape[0] == arch.graph.number_of_nodes()
        assert torch.isfinite(data.x).all()
    codes = PathEncoder().fit_transform(archs)
    assert codes.shape[0] == 8 and np.isfinite(codes).all()
