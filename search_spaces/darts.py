"""The DARTS cell space (``darts``): a normal and a reduction cell, as in DARTS.

Follows DARTS (Liu et al. 2019; the quark0/darts code, ``cnn/genotypes.py`` and
``cnn/model.py``), itself NASNet's cell space. Each cell takes the outputs of the two
previous cells (states 0 and 1: ``c_{k-2}`` and ``c_{k-1}``) and has four
intermediate nodes (states 2 to 5); node ``n`` sums two ``(operation, input)`` pairs
whose inputs are two *distinct* earlier states, over the seven operations of a derived
genotype (``max_pool_3x3``, ``avg_pool_3x3``, ``skip_connect``, ``sep_conv_3x3``,
``sep_conv_5x5``, ``dil_conv_3x3``, ``dil_conv_5x5``; ``none`` is never chosen). The
cell's output concatenates the four intermediate nodes (``concat = [2, 3, 4, 5]``).

Decisions, per cell (``normal`` or ``reduce``) and node ``n`` in 2..5:
``{cell}_{n}_inputs``, the ordered pair of inputs (``"0,1"``, ``"1,0"``, ``"0,2"``, ...;
ordered as in DARTS's genotypes, which list the stronger edge first) and
``{cell}_{n}_op_a``, ``{cell}_{n}_op_b``, the operations applied to the first and the
second input. Every combination is valid, so Optuna can sample them directly.

The graph holds both cells in one DAG: ``input`` feeds both inputs of the normal cell;
its ``concat`` feeds both inputs of the reduction cell, whose ``concat`` feeds the
``output``. Operations are nodes (``op`` is the DARTS name, ``cell`` says which cell);
cell inputs are ``cell_input`` nodes told apart by ``state`` (``c_{k-2}`` or
``c_{k-1}``: their preprocessing differs), intermediate nodes are ``add`` nodes. A
node's pair carries no order in the graph, so swapped pairs hash alike.

:meth:`DartsSpace.to_genotype` and :meth:`DartsSpace.from_genotype` convert to and from
DARTS's own notation (``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2,
3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])``); the parser is a tokenizer, never
``eval``. The network is :class:`~naslab.search_spaces.darts_network.DartsNetwork`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
from torch import nn

from naslab.core.errors import InvalidArchitectureError
from naslab.core.validation import check_int
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace, image_shape
from naslab.search_spaces.darts_network import OPERATIONS, STEPS, DartsNetwork
from naslab.search_spaces.decisions import Categorical, Decision, Value

__all__ = ["CELLS", "MAX_GENOTYPE_CHARS", "NODES", "OPERATIONS", "DartsSpace", "input_choices",
           "parse_genotype"]

#: The two cell types, as DARTS's genotype names them.
CELLS = ("normal", "reduce")
#: The intermediate nodes (states) of a cell; states 0 and 1 are the cell's inputs.
NODES = tuple(range(2, 2 + STEPS))
#: The concatenated states, as DARTS's genotypes.py writes them.
CONCAT = list(NODES)
#: The longest genotype text accepted (DARTS's are about 500 characters).
MAX_GENOTYPE_CHARS = 10_000
#: Bounds of the options: DARTS itself uses C = 36 and 20 cells on CIFAR-10.
MAX_CHANNELS, MIN_CELLS, MAX_CELLS = 128, 3, 32
_STATES = ("c_{k-2}", "c_{k-1}")
_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


def input_choices(node: int) -> tuple[str, ...]:
    """The ordered pairs of distinct inputs node ``node`` may take: ``"0,1"``, ``"1,0"``..."""
    return tuple(f"{a},{b}" for a in range(node) for b in range(node) if a != b)


def _cell_pairs(decisions: Mapping[str, Value], cell: str) -> list[tuple[str, int]]:
    """The cell's ``(operation, input)`` pairs in DARTS's genotype order."""
    pairs: list[tuple[str, int]] = []
    for node in NODES:
        a, b = (int(s) for s in str(decisions[f"{cell}_{node}_inputs"]).split(","))
        pairs.append((str(decisions[f"{cell}_{node}_op_a"]), a))
        pairs.append((str(decisions[f"{cell}_{node}_op_b"]), b))
    return pairs


def _add_cell(g: nx.DiGraph, cell: str, source: str, pairs: Sequence[tuple[str, int]]) -> str:
    """Add one cell fed by ``source`` to ``g``; returns its concat node."""
    states = []
    for index, state in enumerate(_STATES):
        name = f"{cell}:s{index}"
        g.add_node(name, op="cell_input", cell=cell, state=state)
        g.add_edge(source, name)
        states.append(name)
    concat = f"{cell}:concat"
    g.add_node(concat, op="concat", cell=cell)
    for node in NODES:
        add = f"{cell}:n{node}"
        g.add_node(add, op="add", cell=cell)
        for slot in (0, 1):
            op, index = pairs[2 * (node - 2) + slot]
            op_node = f"{add}:{'ab'[slot]}"
            g.add_node(op_node, op=op, cell=cell)
            g.add_edge(states[index], op_node)
            g.add_edge(op_node, add)
        states.append(add)
        g.add_edge(add, concat)
    return concat


class DartsSpace(SearchSpace):
    """DARTS's cell space: a normal and a reduction cell of 4 nodes each.

    ``size()`` counts ordered input pairs: (2 * 6 * 12 * 20 * 7^8)^2, about 2.8e20
    decision combinations (about 1.1e18 once swapped pairs are identified, the figure
    usually quoted for DARTS).

    Args:
        channels: C, the width of the first cells (DARTS uses 36); 1 to 128.
        cells: the number of stacked cells (DARTS uses 20), reductions at 1/3 and 2/3
            of the depth; 3 to 32.

    Raises:
        ConfigError: an option of the wrong type (``1.5``, ``True``) or out of range.
    """

    name = "darts"
    operations = ("cell_input", "add", "concat") + OPERATIONS
    stable_key = True  # a built-in space: its key is its name plus its config

    def __init__(self, channels: int = 8, cells: int = 5) -> None:
        self.channels = check_int("darts's channels", channels, minimum=1, maximum=MAX_CHANNELS)
        self.cells = check_int("darts's cells", cells, minimum=MIN_CELLS, maximum=MAX_CELLS)

    def config(self) -> dict[str, Any]:
        """Width and depth of the stacked network."""
        return {"channels": self.channels, "cells": self.cells}

    def decisions(self) -> Sequence[Decision]:
        """Per cell and node: the ordered input pair and the two operations."""
        out: list[Decision] = []
        for cell in CELLS:
            for node in NODES:
                out.append(Categorical(f"{cell}_{node}_inputs", input_choices(node)))
                out.append(Categorical(f"{cell}_{node}_op_a", OPERATIONS))
                out.append(Categorical(f"{cell}_{node}_op_b", OPERATIONS))
        return out

    def to_graph(self, decisions: Mapping[str, Value]) -> nx.DiGraph:
        """input -> normal cell -> its concat -> reduction cell -> its concat -> output."""
        g = nx.DiGraph()
        g.add_node("input", op="input")
        source = "input"
        for cell in CELLS:
            source = _add_cell(g, cell, source, _cell_pairs(decisions, cell))
        g.add_node("output", op="output")
        g.add_edge(source, "output")
        return g

    def build(self, arch: Architecture, task: Any) -> nn.Module:
        """DARTS's CIFAR network for an image task (``input_shape`` = (C, H, W))."""
        shape = image_shape(self.name, task)
        return DartsNetwork(
            _cell_pairs(arch.decisions, "normal"), _cell_pairs(arch.decisions, "reduce"),
            shape[0], int(task.num_classes), self.channels, self.cells)

    # -- DARTS's genotype notation ---------------------------------------------

    def to_genotype(self, arch: Architecture) -> str:
        """The genotype as DARTS's genotypes.py writes it, e.g. ``Genotype(normal=[
        ('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...],
        reduce_concat=[2, 3, 4, 5])``."""
        self.validate(arch)
        normal, reduce = (_cell_pairs(arch.decisions, cell) for cell in CELLS)
        return (f"Genotype(normal={normal!r}, normal_concat={CONCAT!r}, "
                f"reduce={reduce!r}, reduce_concat={CONCAT!r})")

    def from_genotype(self, text: str) -> Architecture:
        """Parse a genotype in DARTS's notation (the inverse of :meth:`to_genotype`).

        Accepts either quote, any spacing and line breaks, trailing commas, keyword
        fields in any order, and ``range(2, 6)`` for a concat (as DARTS's search
        prints it). Refuses with :class:`InvalidArchitectureError` anything else: text
        that is not a genotype, an operation outside the seven (``none`` included), a
        cell without exactly 8 pairs, an input index out of range, a node taking the
        same input twice, another concat, or a text over
        :data:`MAX_GENOTYPE_CHARS` characters. Never evaluates the text.
        """
        return self.from_decisions(parse_genotype(text))


# -- the genotype parser ----------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<name>[A-Za-z_]\w*)|(?P<int>-?\d+)"
    r"|(?P<str>'[^'\\\n]{0,64}'|\"[^\"\\\n]{0,64}\")|(?P<punct>[()\[\],=]))", re.ASCII)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """``(kind, value, position)`` tokens, or an error at the first unexpected text."""
    out: list[tuple[str, str, int]] = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None or m.lastgroup is None:
            start = len(text) - len(text[pos:].lstrip())
            raise InvalidArchitectureError(
                f"invalid DARTS genotype: unexpected text at character {start}: "
                f"{text[start:start + 20]!r}")
        kind = m.lastgroup
        value = m.group(kind)
        out.append((kind, value[1:-1] if kind == "str" else value, m.start(kind)))
        pos = m.end()
    out.append(("end", "", end))
    return out


class _Parser:
    """Recursive descent over the tokens of ``Genotype(field=value, ...)``."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self, kind: str, value: str | None = None, what: str = "") -> str:
        tok_kind, tok_value, pos = self.tokens[self.i]
        if tok_kind != kind or (value is not None and tok_value != value):
            wanted = what or (repr(value) if value is not None else kind)
            found = "the end of the text" if tok_kind == "end" else repr(tok_value[:40])
            raise InvalidArchitectureError(
                f"invalid DARTS genotype: expected {wanted} at character {pos}, found {found}; "
                "expected Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, "
                "5], reduce=[...], reduce_concat=[2, 3, 4, 5])")
        self.i += 1
        return tok_value

    def accept(self, value: str) -> bool:
        if self.tokens[self.i][0] == "punct" and self.tokens[self.i][1] == value:
            self.i += 1
            return True
        return False

    def items(self, close: str, item: Any) -> list[Any]:
        """Comma-separated ``item()`` results up to ``close`` (a trailing comma allowed)."""
        out = []
        while not self.accept(close):
            out.append(item())
            if not self.accept(","):
                self.take("punct", close)
                break
        return out

    def integer(self) -> int:
        pos = self.peek()[2]
        digits = self.take("int", what="an integer")
        if len(digits.lstrip("-")) > 6:
            raise InvalidArchitectureError(
                f"invalid DARTS genotype: the integer at character {pos} has "
                f"{len(digits)} digits; states are small numbers (0 to 5)")
        return int(digits)

    def pair(self) -> tuple[str, int]:
        self.take("punct", "(", "an ('operation', input) pair")
        op = self.take("str", what="a quoted operation name")
        self.take("punct", ",")
        index = self.integer()
        self.accept(",")
        self.take("punct", ")")
        return op, index

    def value(self, field: str) -> Any:
        if field in ("normal", "reduce"):
            self.take("punct", "[", f"a list of pairs for {field}")
            return self.items("]", self.pair)
        if self.accept("["):
            return self.items("]", self.integer)
        self.take("name", "range", f"a list of states or range(...) for {field}")
        self.take("punct", "(")
        low = self.integer()
        self.take("punct", ",")
        high = self.integer()
        self.take("punct", ")")
        return list(range(low, high)) if high - low <= 64 else list(range(low, low + 65))

    def genotype(self) -> dict[str, Any]:
        self.take("name", "Genotype", "'Genotype('")
        self.take("punct", "(")
        fields: dict[str, Any] = {}
        while not self.accept(")"):
            name = self.take("name", what="a field name")
            if name not in _FIELDS or name in fields:
                raise InvalidArchitectureError(
                    f"invalid DARTS genotype: field {name[:40]!r} is "
                    f"{'repeated' if name in fields else 'unknown'}; "
                    f"a genotype has the fields {', '.join(_FIELDS)}, each once")
            self.take("punct", "=")
            fields[name] = self.value(name)
            if not self.accept(","):
                self.take("punct", ")")
                break
        self.take("end", what="the end of the text")
        missing = [f for f in _FIELDS if f not in fields]
        if missing:
            raise InvalidArchitectureError(
                f"invalid DARTS genotype: missing field(s) {', '.join(missing)}")
        return fields


def _cell_problems(cell: str, pairs: list[tuple[str, int]], concat: list[int]) -> list[str]:
    """What keeps a parsed cell from being a cell of this space (empty when none)."""
    problems = []
    if len(pairs) != 2 * STEPS:
        problems.append(f"{cell} has {len(pairs)} (operation, input) pairs; a DARTS cell has "
                        f"{2 * STEPS} (2 for each of its {STEPS} intermediate nodes)")
    for k, (op, index) in enumerate(pairs):
        node = 2 + k // 2
        if op == "none":
            problems.append(f"{cell} pair {k} is 'none', which a derived DARTS genotype never "
                            "holds (the derivation drops it)")
        elif op not in OPERATIONS:
            problems.append(f"{cell} pair {k} has operation {op!r}; known: "
                            f"{', '.join(OPERATIONS)}")
        if not 0 <= index < node:
            problems.append(f"{cell} pair {k} takes input {index}; node {node} takes "
                            f"states 0 to {node - 1}")
        if k % 2 and index == pairs[k - 1][1]:
            problems.append(f"{cell} node {node} takes state {index} twice; a DARTS "
                            "node sums two distinct inputs")
    if concat != CONCAT:
        problems.append(f"{cell}_concat is {concat}; this space's cells concatenate "
                        f"their {STEPS} intermediate nodes: {CONCAT} (or range(2, 6))")
    return problems


def parse_genotype(text: str) -> dict[str, Value]:
    """The decisions of the ``darts`` space for a genotype in DARTS's notation.

    Raises :class:`InvalidArchitectureError` naming every problem (see
    :meth:`DartsSpace.from_genotype`).
    """
    if not isinstance(text, str):
        raise InvalidArchitectureError(
            f"a DARTS genotype is a str, got {type(text).__name__}")
    if len(text) > MAX_GENOTYPE_CHARS:
        raise InvalidArchitectureError(
            f"invalid DARTS genotype: {len(text):,} characters; a genotype has a few "
            f"hundred (at most {MAX_GENOTYPE_CHARS:,} accepted)")
    fields = _Parser(text).genotype()
    problems: list[str] = []
    for cell in CELLS:
        problems += _cell_problems(cell, fields[cell], fields[f"{cell}_concat"])
    if problems:
        shown = problems[:12] + ([f"... and {len(problems) - 12} more"]
                                 if len(problems) > 12 else [])
        raise InvalidArchitectureError("invalid DARTS genotype: " + "; ".join(shown))
    decisions: dict[str, Value] = {}
    for cell in CELLS:
        pairs = fields[cell]
        for node in NODES:
            (op_a, a), (op_b, b) = pairs[2 * (node - 2)], pairs[2 * (node - 2) + 1]
            decisions[f"{cell}_{node}_inputs"] = f"{a},{b}"
            decisions[f"{cell}_{node}_op_a"] = op_a
            decisions[f"{cell}_{node}_op_b"] = op_b
    return decisions
