"""An architecture drawn as a Plotly figure: nodes labelled by operation, laid out in
layers by topological generation; a graph whose nodes carry a ``cell`` attribute
(DARTS's normal and reduction cells) is drawn cell by cell, side by side, each cell
framed and named."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import networkx as nx

from naslab.search_spaces.architecture import graph_from_json

__all__ = ["architecture_figure", "layered_positions", "cell_positions"]

#: Horizontal gap between blocks (cells, or columns of nodes outside cells).
BLOCK_GAP = 1.0


def layered_positions(graph: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Node -> (x, y): x is the node's topological generation, nodes of a generation
    spread evenly around y = 0 (in name order, so the layout is stable)."""
    pos: dict[str, tuple[float, float]] = {}
    for x, generation in enumerate(nx.topological_generations(graph)):
        nodes = sorted(generation, key=str)
        for i, node in enumerate(nodes):
            pos[node] = (float(x), (len(nodes) - 1) / 2 - i)
    return pos


def _blocks(graph: nx.DiGraph) -> list[tuple[str | None, list[str]]]:
    """The graph cut into blocks in topological order: each cell (its nodes), and
    each generation's nodes outside any cell as a column of their own."""
    depth = {n: d for d, gen in enumerate(nx.topological_generations(graph)) for n in gen}
    cells: dict[str, list[str]] = {}
    loose: dict[int, list[str]] = {}
    for node, attrs in graph.nodes(data=True):
        cell = attrs.get("cell")
        if cell is None:
            loose.setdefault(depth[node], []).append(node)
        else:
            cells.setdefault(str(cell), []).append(node)
    blocks: list[tuple[float, str | None, list[str]]] = [
        (sum(depth[n] for n in nodes) / len(nodes), cell, nodes) for cell, nodes in cells.items()]
    blocks += [(float(d), None, nodes) for d, nodes in loose.items()]
    blocks.sort(key=lambda b: b[0])
    return [(cell, nodes) for _, cell, nodes in blocks]


def cell_positions(graph: nx.DiGraph) -> tuple[dict[str, tuple[float, float]],
                                               list[tuple[str, float, float]]]:
    """Positions with each cell laid out on its own, cells side by side, and the
    cells' x extents ``(name, x0, x1)``."""
    pos: dict[str, tuple[float, float]] = {}
    frames: list[tuple[str, float, float]] = []
    x0 = 0.0
    for cell, nodes in _blocks(graph):
        local = layered_positions(graph.subgraph(nodes))
        width = max(x for x, _ in local.values())
        for node, (x, y) in local.items():
            pos[node] = (x0 + x, y)
        if cell is not None:
            frames.append((cell, x0 - 0.4, x0 + width + 0.4))
        x0 += width + BLOCK_GAP + (0.5 if cell is not None else 0.0)
    return pos, frames


def _label(attrs: Mapping[str, Any], node: str) -> str:
    op = attrs.get("op", node)
    state = attrs.get("state")
    return str(state) if state is not None else str(op)  # a cell input: its state


def architecture_figure(graph_json: Mapping[str, Any], title: str = "") -> dict[str, Any]:
    """A Plotly figure (as a dict) of a stored graph (:func:`graph_to_json
    <naslab.search_spaces.architecture.graph_to_json>` form): edges as lines with
    arrow heads, nodes as markers labelled by their operation."""
    import plotly.graph_objects as go

    graph = graph_from_json(graph_json)
    has_cells = any("cell" in a for _, a in graph.nodes(data=True))
    if has_cells:
        pos, frames = cell_positions(graph)
    else:
        pos, frames = layered_positions(graph), []
    xs: list[float | None] = []
    ys: list[float | None] = []
    for u, w in graph.edges:
        xs += [pos[u][0], pos[w][0], None]
        ys += [pos[u][1], pos[w][1], None]
    nodes = list(graph.nodes)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                             line={"color": "#999", "width": 1.2}))
    labels = [_label(graph.nodes[n], n) for n in nodes]
    fig.add_trace(go.Scatter(
        x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text",
        text=labels, textposition="top center", showlegend=False, name="nodes",
        hovertext=[f"{n}: {label}" for n, label in zip(nodes, labels)], hoverinfo="text",
        marker={"size": 14, "color": [zlib.crc32(str(graph.nodes[n].get("op")).encode()) % 10
                                      for n in nodes],
                "colorscale": "Turbo", "line": {"width": 1, "color": "#333"}}))
    for u, w in graph.edges:  # arrow heads at the consumer
        fig.add_annotation(x=pos[w][0], y=pos[w][1], ax=pos[u][0], ay=pos[u][1],
                           xref="x", yref="y", axref="x", ayref="y", showarrow=True,
                           arrowhead=2, arrowsize=1, arrowwidth=1, arrowcolor="#999",
                           standoff=8, text="")
    for name, x0, x1 in frames:
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=-_half_height(pos) - 0.5,
                      y1=_half_height(pos) + 0.5, line={"color": "#4a7", "dash": "dot"})
        fig.add_annotation(x=(x0 + x1) / 2, y=_half_height(pos) + 0.8, text=f"{name} cell",
                           showarrow=False, font={"color": "#275"})
    fig.update_layout(title=title or None, height=max(320, 60 * (2 * _half_height(pos) + 3)),
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, plot_bgcolor="white",
                      xaxis={"visible": False}, yaxis={"visible": False})
    return fig.to_plotly_json()


def _half_height(pos: Mapping[str, tuple[float, float]]) -> float:
    return max((abs(y) for _, y in pos.values()), default=0.0)
