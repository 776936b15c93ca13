"""Tampered export files: each is refused whole (``ConfigError`` naming the line and
the field), and the target database is left exactly as it was (issue 14, item 5)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from safetensors.torch import save

from naslab.core.errors import ConfigError
from naslab.db.models import Base
from naslab.db.store import Store
from naslab.db.transfer import export_studies, import_studies
from naslab.search_spaces.registry import SPACES
from naslab.testing.stores import toy_arch, toy_result
from naslab.testing.toy_space import ToySpace
from tests.store_helpers import complete, make_study, reuse

TOY = dict(space="toy", space_key="toy:v1", space_config={"depth": 2}, task_key="digits:v1",
           searcher="random", objective="val_accuracy", direction="maximize", budget=10,
           fidelity=3, seed=0, config={})


@pytest.fixture(autouse=True)
def toy_space():
    SPACES.register("toy", ToySpace, replace=True)
    yield
    SPACES.unregister("toy")


@pytest.fixture(scope="module")
def export_lines(tmp_path_factory) -> list[dict]:
    """An export of study ``src`` (a trained trial with weights, one reused from study
    ``other``, which is exported too)."""
    folder = tmp_path_factory.mktemp("export")
    SPACES.register("toy", ToySpace, replace=True)
    with Store(f"sqlite:///{folder / 'src.db'}") as store:
        other = make_study(store, "other", **TOY)
        src = make_study(store, "src", **TOY)
        complete(store, other, toy_arch(("pool",)), toy_result(0.7))
        weights = {"w": torch.arange(6.0).reshape(2, 3)}
        complete(store, src, toy_arch(("conv",)), toy_result(0.8, weights=weights))
        reuse(store, src, toy_arch(("pool",)))
        export_studies(store, folder / "all.jsonl", ["other", "src"])
    return [json.loads(line) for line in (folder / "all.jsonl").read_text().splitlines()]


def snapshot(url: str) -> dict[str, list]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {name: sorted(map(repr, conn.execute(sa.select(table))))
                    for name, table in Base.metadata.tables.items()}
    finally:
        engine.dispose()


def first(lines: list[dict], kind: str, **match) -> dict:
    return next(o for o in lines if o["type"] == kind
                and all(o.get(k) == v for k, v in match.items()))


def _trial(lines):
    return first(lines, "trial", study="src", number=0)


def _weights_of(data: bytes, lines) -> None:
    w = first(lines, "weights")
    w["data"] = base64.b64encode(data).decode()
    w["sha256"] = hashlib.sha256(data).hexdigest()


TAMPERINGS = {
    "objective Infinity": (lambda ls: _trial(ls).update(objective_value=math.inf),
                           "objective_value.*finite|Infinity"),
    "NaN metric": (lambda ls: first(ls, "metric").update(value=math.nan), "NaN"),
    "huge number": (lambda ls: first(ls, "metric").update(value="__HUGE__"),
                    "value.*finite"),
    "negative budget": (lambda ls: first(ls, "study", name="src").update(budget=-5),
                        "budget"),
    "negative trial number": (lambda ls: _trial(ls).update(number=-1), "number"),
    "oversized seed": (lambda ls: _trial(ls).update(seed=2 ** 70), "seed"),
    "running with a result": (lambda ls: _trial(ls).update(state="running"),
                              "running.*result"),
    "unknown state": (lambda ls: _trial(ls).update(state="winning"), "state"),
    "dangling reused_from": (lambda ls: first(ls, "trial", study="src", number=1).update(
        reused_from=987654), "dangling"),
    "unknown space": (lambda ls: first(ls, "study", name="src").update(space="nope"),
                      "space 'nope'"),
    "wrong space_key": (lambda ls: first(ls, "study", name="src").update(
        space_key="toy:v2"), "space_key"),
    "weights format pickle": (lambda ls: first(ls, "weights").update(format="pickle"),
                              "pickle"),
    "malformed graph": (lambda ls: first(ls, "architecture").update(graph="{not json"),
                        "graph.*JSON"),
    "another graph": (lambda ls: first(ls, "architecture").update(graph=json.dumps(
        {"nodes": [], "edges": []})), "graph"),
    "decisions off the hash": (lambda ls: first(ls, "architecture").update(
        decisions=json.dumps({"ops": ["id"]})), "hash"),
    "trial decisions off its architecture": (lambda ls: _trial(ls).update(
        decisions=json.dumps({"ops": ["id"]})), "decisions"),
    "bit-flipped weights": (lambda ls: first(ls, "weights").update(sha256="0" * 64),
                            "SHA-256"),
    "NaN weights": (lambda ls: _weights_of(save({"w": torch.tensor([1.0, math.nan])}), ls),
                    "NaN or infinite"),
    "weights without digest": (lambda ls: first(ls, "weights").pop("sha256"), "sha256"),
}


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_tampered_file_is_refused_and_nothing_changes(name, export_lines, db_url, tmp_path):
    tamper, message = TAMPERINGS[name]
    lines = json.loads(json.dumps(export_lines))
    tamper(lines)
    path = tmp_path / "tampered.jsonl"
    text = "\n".join(json.dumps(o) for o in lines) + "\n"
    path.write_text(text.replace('"__HUGE__"', "1e400"))  # read as infinity by Python
    with Store(db_url) as store:  # the target already holds a study
        complete(store, make_study(store, "mine", **TOY), toy_arch(("id",)), toy_result(0.5))
    before = snapshot(db_url)
    with Store(db_url) as store, pytest.raises(ConfigError, match=message) as refused:
        import_studies(store, path)
    assert str(refused.value).startswith("line ")  # names the record
    assert snapshot(db_url) == before


def test_the_untampered_file_imports(export_lines, db_url, tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text("\n".join(json.dumps(o) for o in export_lines) + "\n")
    with Store(db_url) as store:
        got = import_studies(store, path)
        (trained,) = [t for t in store.trials.list("src") if t.reused_from is None]
        assert store.trials.weights(trained.id)["w"].shape == (2, 3)
    assert got.trials == 3 and got.weights == 1 and got.detached == 0


def test_a_graph_listed_in_another_order_is_the_same_graph(export_lines, tmp_path):
    """The order in which a graph's nodes and edges are listed is not part of the
    graph (NB201's pruning of dead nodes lists them in an order that varies between
    processes): a genuine export must import whatever its order."""
    lines = json.loads(json.dumps(export_lines))
    for line in lines:
        if line["type"] == "architecture":
            graph = json.loads(line["graph"])
            graph["nodes"].reverse()
            graph["edges"].reverse()
            line["graph"] = json.dumps(dict(reversed(list(graph.items()))))
    path = tmp_path / "reordered.jsonl"
    path.write_text("\n".join(json.dumps(o) for o in lines) + "\n")
    with Store(f"sqlite:///{tmp_path / 'reordered.db'}") as store:
        assert import_studies(store, path).trials == 3


def test_unsafe_study_names_are_refused_in_the_file_and_in_renames(export_lines, tmp_path):
    """A study name becomes a file name on export: neither a name in the file nor a
    new name given to the Python API may leave the export folder."""
    url = f"sqlite:///{tmp_path / 'names.db'}"
    path = tmp_path / "ok.jsonl"
    path.write_text("\n".join(json.dumps(o) for o in export_lines) + "\n")
    with Store(url) as store:
        with pytest.raises(ConfigError, match="study name '../evil' is not accepted"):
            import_studies(store, path, rename={"src": "../evil"})
    before = snapshot(url)
    lines = json.loads(json.dumps(export_lines))
    for line in lines:
        for field in ("name", "study"):
            if line.get(field) == "src":
                line[field] = "../evil"
        if line["type"] == export_lines[0]["type"]:  # the header
            line["studies"] = ["../evil" if n == "src" else n for n in line["studies"]]
    path.write_text("\n".join(json.dumps(o) for o in lines) + "\n")
    with Store(url) as store:
        with pytest.raises(ConfigError, match="import it under another with --rename"):
            import_studies(store, path)
        assert snapshot(url) == before
        assert import_studies(store, path, rename={"../evil": "src-safe"}).trials == 3


def test_a_format_1_file_still_imports(export_lines, tmp_path):
    lines = json.loads(json.dumps(export_lines))
    lines[0]["format"] = 1
    del lines[0]["external_trials"]
    first(lines, "weights").pop("sha256")
    path = Path(tmp_path / "v1.jsonl")
    path.write_text("\n".join(json.dumps(o) for o in lines) + "\n")
    with Store(f"sqlite:///{tmp_path / 'v1.db'}") as store:
        assert import_studies(store, path).weights == 1
        (row,) = store.sql.query("SELECT sha256 FROM naslab_weights")[1]
        assert len(row[0]) == 64  # the digest is computed on import
