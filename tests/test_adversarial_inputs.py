"""Issue 14 item 11 and the tracebacks of bad inputs: every bad value is refused
up front with one ``error:`` line (exit 2) and nothing stored, and the Python API
raises a named error; nothing is silently coerced."""

from __future__ import annotations

import json
import struct
import time

import networkx as nx
import numpy as np
import pytest
import torch

from naslab.cli_common import parse_options
from naslab.components import resolve
from naslab.core.errors import ConfigError, InvalidArchitectureError
from naslab.predictors.base import predictor_from_bytes
from naslab.predictors.baselines import TreePredictor
from naslab.predictors.gnn import GNNPredictor
from naslab.search_spaces.chain import ChainSpace
from naslab.search_spaces.decisions import (
    Categorical,
    Condition,
    Integer,
    SpaceDefinitionError,
)
from naslab.search_spaces.nb201 import NB201Space
from naslab.study import Study
from naslab.workers.training import TrainingEvaluator
from tests.cli_helpers import one_line_error, run_main, store_with_one_study
from tests.custom_space import TinyMLPSpace


@pytest.fixture
def db(tmp_path):
    """A store with one study, and a function hashing its content."""
    return store_with_one_study(tmp_path / "adv.db")


SEARCH_REFUSED = [
    (["--budget", "1" * 30], "budget"),
    (["--budget", str(2**63)], "budget"),
    (["--seed", str(2**64)], "seed"),
    (["--space-opt", "channels=Infinity"], "NaN or an infinity"),
    (["--space-opt", "channels=NaN"], "NaN or an infinity"),
    (["--space-opt", "channels=1e999"], "NaN or an infinity"),
    (["--space-opt", "channels=1.5"], "channels must be an integer"),
    (["--space-opt", "channels=true"], "channels must be an integer"),
    (["--space-opt", "channels=16", "--space-opt", "channels=8"], "given twice"),
    (["--space", "chain", "--space-opt", "max_depth=2.7"], "max_depth must be an integer"),
    (["--space", "chain", "--space-opt", "widths=[-8]"], "widths must be an integer >= 1"),
    (["--space", "chain", "--space-opt", "widths=[0]"], "widths must be an integer >= 1"),
    (["--space", "chain", "--space-opt", "widths=8"], "widths must be a list"),
    (["--space", "chain", "--space-opt", "kernels=[3,3]"], "distinct"),
    (["--space", "chain", "--space-opt", "kernels=[2]"], "odd"),
    (["--train-opt", "keep_weights=maybe"], "keep_weights must be True or False"),
    (["--train-opt", "keep_weights=2"], "keep_weights must be True or False"),
    (["--train-opt", "lr=NaN"], "NaN or an infinity"),
    (["--train-opt", "batch_size=8.0"], "batch_size must be an integer"),
    (["--trial-timeout", "nan"], "--trial-timeout"),
    (["--trial-timeout", "-1"], "--trial-timeout"),
    (["--cpus-per-trial", "nan"], "--cpus-per-trial"),
    (["--cpus-per-trial", "0"], "--cpus-per-trial"),
    (["--cpus-per-trial", "-2"], "--cpus-per-trial"),
    (["--cpus-per-trial", "inf"], "--cpus-per-trial"),
    (["--gpus-per-trial", "nan"], "--gpus-per-trial"),
    (["--workers", str(2**70)], "--workers"),
]


@pytest.mark.parametrize(("args", "message"), SEARCH_REFUSED,
                         ids=[" ".join(a) for a, _ in SEARCH_REFUSED])
def test_search_refuses_bad_values_before_storing(db, monkeypatch, capsys, args, message):
    url, content = db
    before = content()
    code, _, err = run_main(monkeypatch, capsys, "search", "--storage", url,
                            "--study", "bad", "--epochs", "1", *args)
    assert code == 2, err
    assert message in one_line_error(err)
    assert content() == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_device_refused_without_cuda(db, monkeypatch, capsys):
    url, content = db
    before = content()
    code, _, err = run_main(monkeypatch, capsys, "search", "--storage", url, "--study", "bad",
                            "--in-process", "--train-opt", "device=cuda")
    assert code == 2 and "CUDA is not available" in one_line_error(err)
    assert content() == before
    with pytest.raises(ConfigError, match="CUDA is not available"):
        TrainingEvaluator("digits", device="cuda:0")


def test_device_names_checked():
    with pytest.raises(ConfigError, match="invalid device"):
        TrainingEvaluator("digits", device="gpu")
    with pytest.raises(ConfigError, match="invalid device"):
        TrainingEvaluator("digits", device=3)
    assert TrainingEvaluator("digits", device="cpu").device == torch.device("cpu")


@pytest.mark.parametrize(("text", "expected"), [
    ("no", False), ("NO", False), ("false", False), ("False", False), ("0", False),
    ("yes", True), ("Yes", True), ("true", True), ("TRUE", True), ("1", True)])
def test_command_line_booleans(text, expected):
    _, evaluator = resolve("nb201", "digits",
                           evaluator_options=parse_options([f"keep_weights={text}"], "train"))
    assert evaluator.keep_weights is expected


def test_command_line_one_is_still_an_integer():
    space, _ = resolve("nb201", "digits", space_options=parse_options(["channels=1"], "space"))
    assert space.channels == 1 and type(space.channels) is int


def test_python_api_refuses_coercion():
    for bad in (1.5, True, "8", 2**64, float("nan")):
        with pytest.raises(ConfigError):
            NB201Space(channels=bad)
    with pytest.raises(ConfigError):
        ChainSpace(max_depth=2.7)
    with pytest.raises(ConfigError):
        ChainSpace(kernels=[3, 3])
    with pytest.raises(ConfigError):
        ChainSpace(widths=[True])
    for bad in ("no", 0, 1, None):
        with pytest.raises(ConfigError, match="keep_weights"):
            TrainingEvaluator("digits", keep_weights=bad)
    with pytest.raises(ConfigError, match="budget"):
        Study(space="nb201", budget=2**64, storage="sqlite://")
    with pytest.raises(ConfigError, match="seed"):
        Study(space="nb201", seed=2**64, storage="sqlite://")


def test_integer_decision_never_materialises_its_range():
    d = Integer("a", 0, 10**18)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    assert len(d.values) == 10**18 + 1 and d.values[-1] == 10**18
    assert d.contains(d.sample(rng)) and d.other_value(5, rng) != 5
    assert d.neighbour_values(0) == [1]

    class Huge(TinyMLPSpace):
        def decisions(self):
            return [*super().decisions(), Integer("seed_offset", 0, 10**18)]

    space = Huge()
    arch = space.sample(rng)
    assert space.mutate(arch, rng) != arch
    assert space.size() == 78 * (10**18 + 1)  # counted, never enumerated
    assert time.perf_counter() - started < 5
    for low, high, step in ((0, 2**64, 1), (-(2**63), 2**63 - 1, 1), (0, 10, 0), (5, 1, 1),
                            (0.5, 3, 1), (True, 3, 1)):
        with pytest.raises(SpaceDefinitionError):
            Integer("a", low, high, step)


@pytest.mark.parametrize("choices", [
    (1.0, float("nan")), (float("inf"),), ([1], [2]), (1, 1), (1, True), (), "abc", (None,),
    (2**64,)])
def test_bad_choices_refused_where_declared(choices):
    with pytest.raises(SpaceDefinitionError):
        Categorical("a", choices)


def test_bad_names_and_conditions_refused_where_declared():
    for name in ("", "  ", 3, None):
        with pytest.raises(SpaceDefinitionError):
            Categorical(name, (1, 2))
    with pytest.raises(SpaceDefinitionError):
        Condition("a", ())
    with pytest.raises(SpaceDefinitionError):
        Condition("a", (float("nan"),))


def _space(decisions=None, graph=None, name="bad"):
    """A TinyMLPSpace with other decisions or another to_graph."""

    class Bad(TinyMLPSpace):
        def decisions(self):
            return decisions if decisions is not None else super().decisions()

        def to_graph(self, d):
            return graph(d) if graph is not None else super().to_graph(d)

    Bad.name = name
    return Bad()


def _multigraph(d):
    g = nx.MultiDiGraph()
    g.add_node("in", op="input")
    g.add_node(1, op="linear")
    g.add_node("out", op="output")
    g.add_edges_from([("in", 1), ("in", 1), (1, "out")])
    return g


def _no_path(d):
    g = nx.DiGraph()
    g.add_node("in", op="input")
    g.add_node("out", op="output")
    return g


def _cycle(d):
    g = nx.DiGraph()
    g.add_nodes_from([("in", {"op": "input"}), (1, {"op": "linear"}), (2, {"op": "linear"}),
                      ("out", {"op": "output"})])
    g.add_edges_from([("in", 1), (1, 2), (2, 1), (2, "out")])
    return g


def _raises(d):
    return d["no such decision"]


BROKEN_SPACES = {
    "multigraph": (_space(graph=_multigraph), "multigraph"),
    "no path": (_space(graph=_no_path), "no path from the input to the output"),
    "cycle": (_space(graph=_cycle), "cycle"),
    "to_graph raises": (_space(graph=_raises), "KeyError"),
    "duplicate names": (_space([Integer("layers", 1, 3), Categorical("layers", (1, 2))]),
                        "declared twice"),
    "unknown parent": (_space([Integer("layers", 1, 3),
                               Categorical("w", (1, 2), Condition("depth", (2,)))]),
                       "'depth', which is not declared"),
    "later parent": (_space([Categorical("w", (1, 2), Condition("layers", (2,))),
                             Integer("layers", 1, 3)]),
                     "'layers', which is declared after it"),
    "condition outside domain": (_space([Integer("layers", 1, 3),
                                         Categorical("w", (1, 2), Condition("layers", (7,)))]),
                                 "cannot take"),
    "not decisions": (_space(["layers"]), "expected Categorical or Integer"),
}


@pytest.mark.parametrize("case", list(BROKEN_SPACES))
def test_broken_custom_spaces_refused_before_a_study_is_stored(tmp_path, case):
    space, message = BROKEN_SPACES[case]
    url = f"sqlite:///{tmp_path / 'spaces.db'}"
    with pytest.raises(SpaceDefinitionError, match=message):
        space.check_definition()
    with pytest.raises(SpaceDefinitionError, match=message):
        Study("broken", space=space, budget=2, storage=url)
    assert not (tmp_path / "spaces.db").exists()  # refused before the store was opened


def test_graph_errors_stay_architecture_errors():
    space = _space(graph=_no_path)
    with pytest.raises(InvalidArchitectureError):
        space.sample(np.random.default_rng(0))


def test_nb201_all_none_cell_still_valid():
    space = NB201Space()
    arch = space.from_decisions({d.name: "none" for d in space.decisions()})
    space.validate(arch)


def _tampered(data: bytes, kind: str | None, params: dict) -> bytes:
    """A saved predictor's bytes with its header's kind (if given) and params changed
    (a new kind gets only ``params``)."""
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    (key,) = header["__metadata__"]
    inner = json.loads(header["__metadata__"][key])
    inner["params"] = params if kind is not None else {**inner["params"], **params}
    inner["kind"] = kind or inner["kind"]
    header["__metadata__"][key] = json.dumps(inner)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + size:]


@pytest.fixture(scope="module")
def saved_tree() -> bytes:
    space = NB201Space()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(12)]
    return TreePredictor(n_estimators=5).fit(archs, np.arange(12.0)).to_bytes()


@pytest.mark.parametrize(("kind", "params", "message"), [
    (None, {"members": 10**7}, "members"),
    (None, {"n_estimators": 10**9}, "n_estimators"),
    (None, {"members": 1e7}, "members"),
    ("gnn", {"layers": 10**6}, "layers"),
    ("gnn", {"members": 10**7}, "members"),
    ("gnn", {"hidden": 10**6}, "hidden"),
])
def test_tampered_predictor_hyper_parameters_refused_on_load(saved_tree, kind, params,
                                                             message):
    assert predictor_from_bytes(_tampered(saved_tree, None, {})).fitted
    started = time.perf_counter()
    data = _tampered(saved_tree, kind, params)
    with pytest.raises(ConfigError, match=message):
        predictor_from_bytes(data)
    assert time.perf_counter() - started < 5


def test_predictor_hyper_parameters_bounded_on_construction():
    with pytest.raises(ConfigError, match="layers"):
        GNNPredictor(layers=10**6)
    with pytest.raises(ConfigError, match="members"):
        TreePredictor(members=10**7)
    with pytest.raises(ConfigError, match="members"):
        GNNPredictor(members=True)


@pytest.mark.parametrize("value", ["100000000", str(2**64), "0"])
def test_rank_candidates_bounded(db, monkeypatch, capsys, value):
    url, content = db
    before = content()
    code, _, err = run_main(monkeypatch, capsys, "predictor", "rank", "--name", "p",
                            "--candidates", value, "--storage", url)
    assert code == 2 and "--candidates" in one_line_error(err)
    assert content() == before


def test_guided_candidates_bounded():
    from naslab.searchers.registry import get_searcher

    with pytest.raises(ConfigError, match="candidates"):
        get_searcher("guided-evolution", NB201Space(), seed=0, candidates=10**8)
