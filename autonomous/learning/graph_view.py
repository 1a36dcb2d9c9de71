"""Bounded rendering of a knowledge-graph neighbourhood as JSON or SVG.

The subgraph is capped at ``max_nodes`` nodes (breadth first from the centre), so a
request can never render the whole graph; ``truncated`` says when the cap cut it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from html import escape
from typing import Any

__all__ = ["bounded_neighbourhood", "render_svg"]


def bounded_neighbourhood(centre: str, around: Callable[[str], Iterable[str]], *, depth: int,
                          max_nodes: int) -> tuple[list[str], bool]:
    """The ids within ``depth`` hops of ``centre``, breadth first, at most ``max_nodes`` of
    them (``centre`` first); and whether the cap cut the neighbourhood short."""
    if max_nodes < 1:
        raise ValueError("max_nodes must be at least 1")
    seen = [centre]
    frontier = [centre]
    truncated = False
    for _ in range(depth):
        nxt: list[str] = []
        for n in frontier:
            for m in around(n):
                if m in seen or m in nxt:
                    continue
                if len(seen) + len(nxt) >= max_nodes:
                    truncated = True
                    break
                nxt.append(m)
        seen.extend(nxt)
        frontier = nxt
    return seen, truncated


def render_svg(sub: dict[str, Any], *, size: int = 640) -> str:
    """An SVG drawing of ``sub`` (``{"nodes": [...], "edges": [...]}``): nodes on a circle."""
    nodes = sub["nodes"]
    n = max(len(nodes), 1)
    r = size / 2 - 60
    pos: dict[str, tuple[float, float]] = {}
    for i, node in enumerate(nodes):
        a = 2 * math.pi * i / n
        pos[node["id"]] = (size / 2 + r * math.cos(a), size / 2 + r * math.sin(a))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
             f'viewBox="0 0 {size} {size}">']
    for e in sub["edges"]:
        if e["src"] in pos and e["dst"] in pos:
            (x1, y1), (x2, y2) = pos[e["src"]], pos[e["dst"]]
            parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                         f'stroke="#888"><title>{escape(str(e["rel"]))}</title></line>')
    for node in nodes:
        x, y = pos[node["id"]]
        label = escape(f'{node["type"]}: {node["label"]}')
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="8" fill="#4a7"/>'
                     f'<text x="{x + 10:.1f}" y="{y + 4:.1f}" font-size="11">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)
