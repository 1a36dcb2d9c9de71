"""Which knowledge-graph nodes retention deletes, decided on a copy of the graph.

A pure function of the nodes (with when each was last seen), the edges and the cut-off, so
``KnowledgeGraph.prune`` runs it without holding the store's lock; and the batches it
deletes them in, each of whole chains, so the lock is let go between them and a kill between
two leaves no chain in part.
"""

from __future__ import annotations

import networkx as nx

CAUSAL_RELATIONS = ("led_to", "chose", "resulted_in", "caused", "triggered")


def stale_nodes(nodes: list[tuple[str, float]], edges: list[tuple[str, str, str]],
                before: float) -> set[str]:
    """The nodes ``KnowledgeGraph.prune`` deletes, from a copy of the graph: ``nodes`` as
    ``(id, seen)``, ``edges`` as ``(src, dst, relation)``. A causal chain goes whole when its
    newest node is older than ``before``; a node outside any chain goes when it is old and
    every node pointing to it goes."""
    seen = dict(nodes)
    causal = nx.Graph()
    causal.add_nodes_from(seen)
    causal.add_edges_from((u, v) for u, v, k in edges if k in CAUSAL_RELATIONS)
    gone: set[str] = set()
    for comp in nx.connected_components(causal):
        if len(comp) > 1 and max(seen[n] for n in comp) < before:
            gone |= comp
    preds: dict[str, list[str]] = {}
    for u, v, _ in edges:
        preds.setdefault(v, []).append(u)
    for n, deg in causal.degree():
        if deg == 0 and seen[n] < before and all(u in gone for u in preds.get(n, ())):
            gone.add(n)
    return gone


def deletion_batches(gone: set[str], edges: list[tuple[str, str, str]],
                     size: int) -> list[list[str]]:
    """``gone`` in batches of about ``size`` nodes (a longer chain is a batch of its own),
    each of whole causal chains; the nodes outside any chain (context nodes) last, once
    nothing deleted before them still points to them."""
    causal = nx.Graph()
    causal.add_nodes_from(gone)
    causal.add_edges_from((u, v) for u, v, k in edges
                          if k in CAUSAL_RELATIONS and u in gone and v in gone)
    chains = sorted(sorted(c) for c in nx.connected_components(causal) if len(c) > 1)
    loose = sorted(n for n, deg in causal.degree() if deg == 0)
    out: list[list[str]] = []
    batch: list[str] = []
    for chain in chains:
        if batch and len(batch) + len(chain) > size:
            out.append(batch)
            batch = []
        batch += chain
    if batch:
        out.append(batch)
    out += [loose[i:i + size] for i in range(0, len(loose), size)]
    return out
