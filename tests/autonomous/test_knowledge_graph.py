from __future__ import annotations

import pytest

from autonomous.core.clock import FakeClock
from autonomous.learning.knowledge_graph import KnowledgeGraph
from autonomous.store import Store


def _star(tmp_path, n: int) -> tuple[KnowledgeGraph, str]:
    g = KnowledgeGraph(Store(tmp_path / "g.db").open(), FakeClock())
    centre = g.add_entity("resource", "nexus", id="resource:nexus")
    for i in range(n):
        leaf = g.add_entity("observation", f"obs {i}", id=f"observation:{i}")
        g.add_relation(leaf, "about", centre)
    return g, centre


def test_visualize_subgraph_is_bounded_and_says_so(tmp_path):
    g, centre = _star(tmp_path, 30)
    sub = g.visualize_subgraph(centre, depth=2, max_nodes=10)
    assert isinstance(sub, dict)
    assert len(sub["nodes"]) == 10 and sub["truncated"] is True
    assert all(e["dst"] == centre for e in sub["edges"])
    whole = g.visualize_subgraph(centre, depth=1, max_nodes=100)
    assert isinstance(whole, dict)
    assert len(whole["nodes"]) == 31 and whole["truncated"] is False


def test_visualize_subgraph_svg_escapes_labels(tmp_path):
    g, centre = _star(tmp_path, 2)
    g.add_entity("observation", "<script>", id="observation:x")
    g.add_relation("observation:x", "about", centre)
    svg = g.visualize_subgraph(centre, max_nodes=5, fmt="svg")
    assert isinstance(svg, str) and svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count("<circle") == 4


def test_visualize_subgraph_rejects_bad_arguments(tmp_path):
    g, centre = _star(tmp_path, 1)
    with pytest.raises(ValueError):
        g.visualize_subgraph(centre, max_nodes=0)
    with pytest.raises(ValueError):
        g.visualize_subgraph(centre, max_nodes=5, fmt="png")
    with pytest.raises(KeyError):
        g.visualize_subgraph("resource:none", max_nodes=5)


def test_specification_names_match_find_and_related(tmp_path):
    g, centre = _star(tmp_path, 3)
    assert g.query_graph(type_="observation") == g.find(type_="observation")
    assert g.find_related(centre) == g.related(centre)
