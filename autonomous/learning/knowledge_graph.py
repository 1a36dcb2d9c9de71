"""Knowledge graph of what the operator saw, decided, did and how it ended.

A ``networkx.MultiDiGraph`` held in memory and written through to the store
(``graph_nodes`` / ``graph_edges``), so it survives a kill. Node types used by the
operator: ``observation``, ``anomaly``, ``error``, ``decision``, ``action``, ``outcome``,
``resource``, ``generation``, ``mode``, plus whatever subsystems add. Edges point forward in
causality (observation -led_to-> decision -chose-> action -resulted_in-> outcome) and to
context (decision -under_generation-> generation, -under_mode-> mode, -about-> resource).

"Why did ATLAS restart NEXUS?" is ``why(outcome_id)``: the causal chain walked backwards.

The store is the graph: every query (``node``, ``neighbours``, ``why``, ``find``,
``related``, ``visualize_subgraph``, ``stats``) reads it through its indexes, so an operator
restarts and explains its decisions at once, however large the graph (bench/bench_graph.py:
100k entities), and a recording inside a transaction that rolls back leaves no trace
anywhere. No copy is kept in memory: it would cost the operator memory that grows with the
graph, a whole-graph load under the store's lock on first use (~1 s at 40k nodes, with every
store user waiting), and a second state to keep equal to the store. ``to_networkx`` builds a
copy for analysis on demand.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

import networkx as nx

from autonomous.core.clock import Clock, SystemClock, iso
from autonomous.learning.graph_prune import (
    CAUSAL_RELATIONS,
    deletion_batches,
    stale_nodes,
)
from autonomous.learning.graph_view import bounded_neighbourhood, render_svg
from autonomous.store import Store

__all__ = ["CAUSAL_RELATIONS", "KnowledgeGraph"]


class KnowledgeGraph:
    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        # the store's own lock, not one of its own: a caller's transaction that records
        # here and a prune that reads the store cannot take two locks in opposite orders
        self._lock = store.lock
        self._watching: list[set[str]] = []  # one set per prune in progress

    def to_networkx(self) -> nx.MultiDiGraph:
        """A copy of the whole graph as a ``networkx.MultiDiGraph`` (edges keyed by relation),
        for analysis; built from the store on each call, and changes to it stay in it."""
        with self._lock:
            nodes = self.store.query_tuples(
                "SELECT id, type, label, ts, COALESCE(seen, ts), attrs FROM graph_nodes")
            edges = self.store.query_tuples(
                "SELECT src, dst, rel, ts, attrs FROM graph_edges ORDER BY id")
        g = nx.MultiDiGraph()
        g.add_nodes_from((r[0], {"type": r[1], "label": r[2], "ts": r[3], "seen": r[4],
                                 "attrs": json.loads(r[5])}) for r in nodes)
        g.add_edges_from((r[0], r[1], r[2], {"rel": r[2], "ts": r[3], "attrs": json.loads(r[4])})
                         for r in edges)
        return g

    # -- one way to read a node and its edges ------------------------------------------
    def _row(self, node_id: str) -> dict[str, Any] | None:
        r = self.store.query_tuples("SELECT type, label, ts, COALESCE(seen, ts), attrs FROM "
                                    "graph_nodes WHERE id=?", (node_id,))
        if not r:
            return None
        t, label, ts, seen, attrs = r[0]
        return {"type": t, "label": label, "ts": ts, "seen": seen, "attrs": json.loads(attrs)}

    def _edges(self, node_id: str, direction: str) -> list[tuple[str, str]]:
        """``(rel, other node)`` of the edges out of / into ``node_id``, oldest first."""
        col, other = ("src", "dst") if direction == "out" else ("dst", "src")
        return [(r[0], r[1]) for r in self.store.query_tuples(
            f"SELECT rel, {other} FROM graph_edges WHERE {col}=? ORDER BY id", (node_id,))]

    def _edge_rows(self, node_id: str, direction: str) -> list[tuple[str, str, dict[str, Any]]]:
        """Like ``_edges`` with the other node's row: one indexed join instead of a lookup
        per neighbour."""
        col, other = ("src", "dst") if direction == "out" else ("dst", "src")
        rows = self.store.query_tuples(
            f"SELECT e.rel, n.id, n.type, n.label, n.ts, COALESCE(n.seen, n.ts), n.attrs "
            f"FROM graph_edges e JOIN graph_nodes n ON n.id = e.{other} "
            f"WHERE e.{col}=? ORDER BY e.id", (node_id,))
        return [(r[0], r[1], {"type": r[2], "label": r[3], "ts": r[4], "seen": r[5],
                              "attrs": json.loads(r[6])}) for r in rows]

    @staticmethod
    def _shown(node_id: str, d: dict[str, Any]) -> dict[str, Any]:
        return {"id": node_id, "type": d["type"], "label": d["label"], "ts": iso(d["ts"]),
                "attrs": d["attrs"]}

    def has(self, node_id: str) -> bool:
        """Whether the node exists."""
        return bool(self.store.query_tuples("SELECT 1 FROM graph_nodes WHERE id=?", (node_id,)))

    # -- writing -----------------------------------------------------------------------------
    def add_entity(self, type_: str, label: str, *, id: str | None = None,
                   attrs: dict[str, Any] | None = None, ts: float | None = None) -> str:
        """Add (or update the attributes of) a node; returns its id."""
        node_id = id or f"{type_}:{uuid.uuid4().hex[:12]}"
        ts = self.clock.now() if ts is None else ts
        attrs = dict(attrs or {})
        with self._lock:
            self._written(node_id)
            row = self._row(node_id)
            if row is not None:
                merged = {**row["attrs"], **attrs}
                self.store.execute("UPDATE graph_nodes SET label=?, attrs=?, seen=? WHERE id=?",
                                   (label, json.dumps(merged, default=str), ts, node_id))
                return node_id
            self.store.execute("INSERT INTO graph_nodes(id, type, label, ts, attrs, seen) "
                               "VALUES (?, ?, ?, ?, ?, ?)",
                               (node_id, type_, label, ts, json.dumps(attrs, default=str), ts))
        return node_id

    def touch(self, node_ids: Iterable[str], ts: float | None = None) -> bool:
        """Mark nodes seen again: ``repeats`` + 1 and ``last_seen``; False if one is gone.

        Used for a decision repeated unchanged, so it updates its chain instead of adding one.
        """
        now = self.clock.now() if ts is None else ts
        ids = list(node_ids)
        with self._lock:
            self._written(*ids)
            rows = [self._row(n) for n in ids]
            if any(r is None for r in rows):
                return False
            with self.store.transaction():
                for n, row in zip(ids, rows):
                    assert row is not None
                    attrs = row["attrs"]
                    attrs["repeats"] = int(attrs.get("repeats", 0)) + 1
                    attrs["last_seen"] = now
                    self.store.execute("UPDATE graph_nodes SET attrs=?, seen=? WHERE id=?",
                                       (json.dumps(attrs, default=str), now, n))
        return True

    def add_relation(self, src: str, rel: str, dst: str, *,
                     attrs: dict[str, Any] | None = None) -> None:
        ts = self.clock.now()
        with self._lock:
            for n in (src, dst):
                if not self.has(n):
                    raise KeyError(f"unknown graph node {n!r}; add it with add_entity first")
            if (rel, dst) in self._edges(src, "out"):
                return
            self._written(src, dst)
            self.store.execute("INSERT INTO graph_edges(src, dst, rel, ts, attrs) "
                               "VALUES (?, ?, ?, ?, ?)",
                               (src, dst, rel, ts, json.dumps(attrs or {}, default=str)))

    def ensure(self, type_: str, name: str, attrs: dict[str, Any] | None = None) -> str:
        """A named context node (resource, generation, mode, policy rule…) with a stable id."""
        return self.add_entity(type_, name, id=f"{type_}:{name}", attrs=attrs)

    def record_chain(self, steps: Iterable[tuple[str, str, dict[str, Any]]], *,
                     context: dict[str, str] | None = None) -> list[str]:
        """Record a causal chain ``[(type, label, attrs), ...]`` linked by causal relations.

        Each step is linked to the next with the relation fitting their types, and the first
        decision-like step is linked to every ``context`` node (``{"about": node_id, ...}``).
        Returns the node ids in order.
        """
        ids: list[str] = []
        with self._lock, self.store.transaction():
            for type_, label, attrs in steps:
                node = self.add_entity(type_, label, attrs=attrs)
                if ids:
                    self.add_relation(ids[-1], _relation(type_), node)
                ids.append(node)
            for rel, target in (context or {}).items():
                for node in ids:
                    self.add_relation(node, rel, target)
        return ids

    def prune(self, before: float, *, batch: int = 500) -> dict[str, int]:
        """Delete chains whose newest node was last seen before ``before``, and their edges.

        A causal chain (nodes joined by causal relations) goes as a whole, so nothing still
        reached from a recent node is cut off; a context node (resource, generation, mode…)
        goes once it is old itself and no kept node points to it.

        The lock (the store's) is held only to delete, one transaction per ``batch`` nodes of
        whole chains, let go between them: the nodes' ids and times and the edges are read on
        a connection of their own and the chains found without it (~0.5 s at 40k nodes). A
        write meanwhile to a node still to go sends the decision back under the lock, so
        nothing written during a prune is cut off.
        """
        watch: set[str] = set()
        with self._lock:  # no other thread is inside a transaction now: it holds the lock
            self._watching.append(watch)
        deleted = {"graph_nodes": 0, "graph_edges": 0}
        try:
            nodes, edges = self._snapshot(apart=True)
            gone = stale_nodes(nodes, edges, before)
            batches = deletion_batches(gone, edges, batch)
            while batches:
                with self._lock:
                    if watch & gone:  # written to meanwhile: decide again on the graph as it is
                        nodes, edges = self._snapshot()
                        gone = stale_nodes(nodes, edges, before)
                        batches = deletion_batches(gone, edges, batch)
                        watch.clear()
                        if not batches:
                            break
                    ids = batches.pop(0)
                    for key, n in zip(("graph_nodes", "graph_edges"), self._delete(ids)):
                        deleted[key] += n
                    gone.difference_update(ids)
                time.sleep(0)  # let a thread woken by the release take the lock before us
        finally:
            with self._lock:
                self._watching.remove(watch)
        return deleted

    def _delete(self, ids: list[str]) -> tuple[int, int]:
        """(lock held) Delete these nodes and their edges in one transaction; the counts."""
        marks = ",".join("?" * len(ids))
        with self.store.transaction():
            edges = self.store.execute(f"DELETE FROM graph_edges WHERE src IN ({marks}) "
                                       f"OR dst IN ({marks})", (*ids, *ids)).rowcount
            nodes = self.store.execute(f"DELETE FROM graph_nodes WHERE id IN ({marks})",
                                       ids).rowcount
        return nodes, edges

    def _snapshot(self, *, apart: bool = False
                  ) -> tuple[list[tuple[str, float]], list[tuple[str, str, str]]]:
        """What deciding the stale chains needs: every node's id and last-seen time and every
        edge, read on a connection of its own without the lock (``apart``), else under it."""
        sqls = ("SELECT id, COALESCE(seen, ts) FROM graph_nodes",
                "SELECT src, dst, rel FROM graph_edges")
        if apart:
            nodes, edges = self.store.read_apart(*sqls)
        else:
            nodes, edges = (self.store.query_tuples(sql) for sql in sqls)
        return [(n, t) for n, t in nodes], [(u, v, k) for u, v, k in edges]

    def _written(self, *node_ids: str) -> None:
        """(lock held) Tell a prune in progress which nodes changed."""
        for w in self._watching:
            w.update(node_ids)

    # -- reading -----------------------------------------------------------------------------
    def node(self, node_id: str) -> dict[str, Any]:
        with self._lock:
            d = self._row(node_id)
            if d is None:
                raise KeyError(node_id)
            return self._shown(node_id, d)

    def neighbours(self, node_id: str, *, direction: str = "both") -> list[dict[str, Any]]:
        with self._lock:
            if not self.has(node_id):
                raise KeyError(node_id)
            out: list[dict[str, Any]] = []
            for way in ("out", "in"):
                if direction in (way, "both"):
                    out += [{"rel": k, "direction": way, "node": self._shown(v, d)}
                            for k, v, d in self._edge_rows(node_id, way)]
            return out

    def why(self, node_id: str) -> list[dict[str, Any]]:
        """The causal chain ending at ``node_id``, oldest first, with each step's context."""
        with self._lock:
            row = self._row(node_id)
            if row is None:
                raise KeyError(node_id)
            chain = [(node_id, row)]
            current = node_id
            while True:
                causes = [(u, d) for k, u, d in self._edge_rows(current, "in")
                          if k in CAUSAL_RELATIONS and all(u != c for c, _ in chain)]
                if not causes:
                    break
                current, d = max(causes, key=lambda c: c[1]["ts"])
                chain.append((current, d))
            chain.reverse()
            out = []
            for n, d in chain:
                item = self._shown(n, d)
                item["context"] = [{"rel": k, "node": self._shown(v, dv)}
                                   for k, v, dv in self._edge_rows(n, "out")
                                   if k not in CAUSAL_RELATIONS]
                out.append(item)
            return out

    def find(self, *, type_: str | None = None, since: float | None = None,
             until: float | None = None, label_contains: str | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
        """Nodes filtered by type, time range and label text, newest first (from the store,
        through its type/time index; the label is matched case-insensitively here)."""
        where, args = [], []
        for cond, value in (("type = ?", type_), ("ts >= ?", since), ("ts <= ?", until)):
            if value is not None:
                where.append(cond)
                args.append(value)
        sql = ("SELECT id, label FROM graph_nodes" + (" WHERE " + " AND ".join(where) if where
                                                       else "") + " ORDER BY ts DESC, rowid")
        with self._lock:
            if label_contains is None:
                ids = [r[0] for r in self.store.query_tuples(sql + " LIMIT ?", (*args, limit))]
            else:
                needle = label_contains.lower()
                ids = [r[0] for r in self.store.query_tuples(sql, args)
                       if needle in r[1].lower()][:limit]
            return [self.node(n) for n in ids]

    def _around(self, node_id: str) -> list[str]:
        """Neighbours in either direction, each once: successors first, then predecessors."""
        out = dict.fromkeys(v for _, v in self._edges(node_id, "out"))
        out.update(dict.fromkeys(u for _, u in self._edges(node_id, "in")))
        out.pop(node_id, None)
        return list(out)

    def related(self, node_id: str, depth: int = 1) -> dict[str, Any]:
        """The neighbourhood of ``node_id`` up to ``depth`` hops, as nodes and edges."""
        with self._lock:
            if not self.has(node_id):
                raise KeyError(node_id)
            seen = {node_id: None}
            frontier = [node_id]
            for _ in range(depth):
                nxt = [m for n in frontier for m in self._around(n) if m not in seen]
                nxt = list(dict.fromkeys(nxt))
                seen.update(dict.fromkeys(nxt))
                frontier = nxt
            return self.subgraph(list(seen))

    def subgraph(self, node_ids: list[str]) -> dict[str, Any]:
        """The given nodes (unknown ids left out) and the edges among them."""
        with self._lock:
            rows = {n: r for n in dict.fromkeys(node_ids) if (r := self._row(n)) is not None}
            return {"nodes": [self._shown(n, r) for n, r in rows.items()],
                    "edges": [{"src": n, "dst": v, "rel": k} for n in rows
                              for k, v in self._edges(n, "out") if v in rows]}

    # -- the specification's names ---------------------------------------------------------
    def query_graph(self, *, type_: str | None = None, since: float | None = None,
                    until: float | None = None, label_contains: str | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
        """Nodes matching the filters, newest first (the specification's name for ``find``)."""
        return self.find(type_=type_, since=since, until=until,
                         label_contains=label_contains, limit=limit)

    def find_related(self, node_id: str, depth: int = 1) -> dict[str, Any]:
        """The neighbourhood of ``node_id`` (the specification's name for ``related``)."""
        return self.related(node_id, depth)

    def visualize_subgraph(self, node_id: str, *, depth: int = 1, max_nodes: int,
                           fmt: str = "json") -> dict[str, Any] | str:
        """At most ``max_nodes`` nodes around ``node_id`` (breadth first), as JSON or SVG."""
        if fmt not in ("json", "svg"):
            raise ValueError(f"fmt must be 'json' or 'svg', not {fmt!r}")
        with self._lock:
            if not self.has(node_id):
                raise KeyError(node_id)
            seen, truncated = bounded_neighbourhood(node_id, self._around, depth=depth,
                                                    max_nodes=max_nodes)
            sub = self.subgraph(seen)
            sub["truncated"] = truncated
        if fmt == "svg":
            return render_svg(sub)
        return sub

    def stats(self) -> dict[str, Any]:
        """Node and edge counts, nodes per type (counted by the store)."""
        with self._lock:
            types = {t: c for t, c in self.store.query_tuples(
                "SELECT type, COUNT(*) FROM graph_nodes GROUP BY type ORDER BY MIN(rowid)")}
            edges = self.store.query_tuples("SELECT COUNT(*) FROM graph_edges")[0][0]
            return {"nodes": sum(types.values()), "edges": edges, "by_type": types}


def _relation(dst_type: str) -> str:
    if dst_type == "action":
        return "chose"
    if dst_type == "outcome":
        return "resulted_in"
    return "led_to"
