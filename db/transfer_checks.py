"""The checks an import makes of each record, as strict as a live search's.

:class:`RecordChecks` is given the column values a line's :class:`RowReader
<naslab.db.transfer_format.RowReader>` read (types, finiteness and integer ranges are
checked there) and refuses, with a :class:`~naslab.core.errors.ConfigError` naming
the line, the record and the field:

* a study of a space this naslab does not know (a custom space must be registered,
  ``SPACES.register``, in the process that imports), whose ``space_key`` is not
  what that space with the study's ``space_config`` gives, or whose budget,
  fidelity, direction or JSON settings are out of range;
* an architecture of another space than its study's, or whose ``decisions`` do not
  build the architecture of its ``hash`` (recomputed by the space), or whose
  ``graph`` is not that architecture's graph;
* a trial whose ``decisions`` are not those of its architecture, whose fidelity is
  not its study's, with a negative number, count or duration, or ``running`` with a
  result;
* a metric at a step below 1; weights in a format naslab does not write, whose
  SHA-256 differs from the one carried, that are not safetensors, or that hold NaN
  or infinite values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from naslab.core.errors import ConfigError, NaslabError
from naslab.db.integrity import SHA256_PATTERN, check_weights, weights_digest
from naslab.db.models import DIRECTIONS
from naslab.db.transfer_format import line_error
from naslab.search_spaces.architecture import graph_to_json
from naslab.search_spaces.base import SearchSpace

__all__ = ["RecordChecks"]

#: Columns that may not be negative, per record kind.
_NOT_NEGATIVE = {
    "study": ("fidelity",),
    "architecture": ("params", "flops"),
    "trial": ("number", "fidelity", "params", "flops", "latency_ms", "train_seconds",
              "epochs_done"),
}


def _json(lineno: int, kind: str, field: str, text: Any, want: type) -> Any:
    """The JSON value of a text column, of type ``want``."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (TypeError, ValueError):
        raise line_error(lineno, f"the {kind}'s {field!r} is not valid JSON text") from None
    if not isinstance(value, want):
        raise line_error(lineno, f"the {kind}'s {field!r} must be a JSON "
                         f"{'object' if want is dict else 'list'}, got {type(value).__name__}")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class RecordChecks:
    """The checks of one import (see the module docstring); ``fmt`` is the file's
    export format (format 1 carries no weights digests)."""

    def __init__(self, fmt: int) -> None:
        self.fmt = fmt
        self.space: SearchSpace | None = None
        self.study: dict[str, Any] = {}

    def _not_negative(self, lineno: int, kind: str, values: Mapping[str, Any]) -> None:
        for field in _NOT_NEGATIVE.get(kind, ()):
            value = values.get(field)
            if value is not None and value < 0:
                raise line_error(lineno, f"the {kind}'s {field!r} must not be negative, "
                                 f"got {value!r}")

    def study_line(self, lineno: int, values: Mapping[str, Any]) -> None:
        """A study's values; its space becomes the one later lines are checked with."""
        from naslab.search_spaces.registry import SPACES, get_space

        self._not_negative(lineno, "study", values)
        if values["budget"] < 1:
            raise line_error(lineno, f"the study's 'budget' must be at least 1, got "
                             f"{values['budget']!r}")
        if values["direction"] not in DIRECTIONS:
            raise line_error(lineno, f"the study's 'direction' must be one of "
                             f"{', '.join(DIRECTIONS)}, got {values['direction']!r}")
        study_config = _json(lineno, "study", "config", values["config"], dict)
        config = _json(lineno, "study", "space_config", values["space_config"], dict)
        launch = study_config.get("launch")
        options = launch.get("space_options") if isinstance(launch, dict) else None
        if isinstance(options, dict):  # the constructor's own options, where recorded
            config = options
        name = values["space"]
        if name not in SPACES.names():
            raise line_error(lineno, f"the study's space {name!r} is not one this naslab "
                             f"knows ({', '.join(SPACES.names())}); name a custom space's class "
                             "(naslab db import --space file.py:Class) or register it "
                             "(SPACES.register) in the process that imports")
        try:
            space = get_space(name, **config)
        except (NaslabError, TypeError, ValueError) as exc:
            raise line_error(lineno, f"the study's space options do not build space "
                             f"{name!r}: {exc}") from None
        if space.key != values["space_key"]:
            raise line_error(lineno, f"the study's space_key {values['space_key']!r} is not "
                             f"that of space {name!r} with its options ({space.key!r})")
        self.space, self.study = space, dict(values)

    def _architecture(self, lineno: int, kind: str, decisions: Any) -> Any:
        assert self.space is not None
        try:
            return self.space.from_decisions(decisions)
        except NaslabError as exc:
            raise line_error(lineno, f"the {kind}'s decisions are not an architecture of "
                             f"space {self.space.name!r}: {exc}") from None

    def architecture_line(self, lineno: int, values: Mapping[str, Any]) -> None:
        """An architecture's values, recomputed from its decisions."""
        self._not_negative(lineno, "architecture", values)
        for field in ("space", "space_key"):
            if values[field] != self.study.get(field):
                raise line_error(lineno, f"the architecture's {field!r} {values[field]!r} is "
                                 f"not its study's ({self.study.get(field)!r})")
        decisions = _json(lineno, "architecture", "decisions", values["decisions"], dict)
        graph = _json(lineno, "architecture", "graph", values["graph"], dict)
        arch = self._architecture(lineno, "architecture", decisions)
        if arch.hash != values["hash"]:
            raise line_error(lineno, f"the architecture's 'hash' {values['hash']!r} is not "
                             f"that of its decisions ({arch.hash!r})")
        if not _same_graph(graph, json.loads(json.dumps(graph_to_json(arch.graph)))):
            raise line_error(lineno, "the architecture's 'graph' is not the graph of its "
                             "decisions")

    def trial_line(self, lineno: int, values: Mapping[str, Any], arch_hash: str) -> None:
        """A trial's values (its architecture has ``arch_hash``)."""
        self._not_negative(lineno, "trial", values)
        if values["fidelity"] != self.study.get("fidelity"):
            raise line_error(lineno, f"the trial's 'fidelity' {values['fidelity']!r} is not "
                             f"its study's ({self.study.get('fidelity')!r})")
        decisions = _json(lineno, "trial", "decisions", values["decisions"], dict)
        if self._architecture(lineno, "trial", decisions).hash != arch_hash:
            raise line_error(lineno, "the trial's 'decisions' are not those of its "
                             f"architecture {arch_hash!r}")
        if values.get("extra") is not None:
            _json(lineno, "trial", "extra", values["extra"], dict)
        if values["state"] == "running" and any(
                values.get(f) is not None for f in ("objective_value", "finished_at")):
            raise line_error(lineno, "the trial is 'running' but has a result "
                             "(objective_value or finished_at)")
        if values["state"] in ("complete", "stopped") and values.get("finished_at") is None:
            raise line_error(lineno, f"the trial is {values['state']!r} but has no "
                             "'finished_at'")

    @staticmethod
    def metric_line(lineno: int, values: Mapping[str, Any]) -> None:
        """A metric's values: a final one (step null) or an epoch from 1."""
        if values.get("step") is not None and values["step"] < 1:
            raise line_error(lineno, f"the metric's 'step' must be null (final) or at "
                             f"least 1, got {values['step']!r}")
        if not values["name"]:
            raise line_error(lineno, "the metric's 'name' is empty")

    def weights_line(self, lineno: int, obj: Mapping[str, Any],
                     values: dict[str, Any]) -> None:
        """A weights line's values, checked; sets ``values["sha256"]``."""
        given = obj.get("sha256")
        if self.fmt >= 2 or given is not None:
            if not isinstance(given, str) or not SHA256_PATTERN.fullmatch(given):
                raise line_error(lineno, f"the weights' 'sha256' must be 64 lowercase hex "
                                 f"digits, got {given!r}")
        try:
            check_weights(values["data"], values["format"], given,
                          f"the weights of trial {obj.get('trial')!r}")
        except NaslabError as exc:
            raise ConfigError(f"line {lineno}: {exc}") from None
        values["sha256"] = weights_digest(values["data"])


def _same_graph(first: Mapping[str, Any], second: Mapping[str, Any]) -> bool:
    """Whether two graph JSON objects hold the same nodes (with their attributes) and
    edges, in whatever order (pruning a cell's dead nodes may list them in another)."""
    def canonical(graph: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        nodes = graph.get("nodes", [])
        edges = graph.get("edges", [])
        if not isinstance(nodes, list) or not isinstance(edges, list):
            return [repr(graph)], []
        return (sorted(json.dumps(n, sort_keys=True) for n in nodes),
                sorted(json.dumps(e, sort_keys=True) for e in edges))

    return set(first) == set(second) and canonical(first) == canonical(second) and all(
        first[k] == second[k] for k in first if k not in ("nodes", "edges"))
