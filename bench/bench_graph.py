"""The operator's persisted KnowledgeGraph at 100k entities: reload and ``why`` (issue 12 item 5).

    python3 bench/bench_graph.py            # 100,000 entities
    python3 bench/bench_graph.py --quick    # 20,000 entities

Builds the graph through the real API (``KnowledgeGraph.record_chain``: observation ->
decision -> action -> outcome chains, each decision about one of 50 resources and under one
of 200 generations) into a real SQLite store, closes it, then times a fresh
``KnowledgeGraph(store)`` until it answers its first ``why`` (5 runs; the graph is the store,
read through its indexes), a whole-graph copy (``to_networkx``), and ``why(outcome)`` on
1,000 random outcomes. Beside it, in the same run: networkx building the same graph
(``MultiDiGraph.add_nodes_from`` / ``add_edges_from``) from rows already in memory — what an
eager reload costs at least — and the same causal walk on that bare graph. Bar: reload < 1 s,
``why`` p95 < 1 ms (judged on CPU time per call; wall time is printed beside it, with the
machine's load).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pct, write_result  # noqa: E402

import networkx as nx  # noqa: E402

from autonomous.core.clock import FakeClock  # noqa: E402
from autonomous.learning.knowledge_graph import CAUSAL_RELATIONS, KnowledgeGraph  # noqa: E402
from autonomous.store import Store  # noqa: E402

STEPS = ("observation", "decision", "action", "outcome")


def build(path: Path, entities: int, seed: int) -> list[str]:
    """Chains of four through the real API; returns the outcome ids."""
    rng = random.Random(seed)
    store = Store(path).open()
    clock = FakeClock()
    g = KnowledgeGraph(store, clock)
    resources = [g.ensure("resource", f"svc{i}") for i in range(50)]
    generations = [g.ensure("generation", f"g{i}") for i in range(200)]
    outcomes: list[str] = []
    chains = (entities - len(resources) - len(generations)) // len(STEPS)
    for start in range(0, chains, 1000):
        with store.transaction():
            for i in range(start, min(chains, start + 1000)):
                clock.advance(1.0)
                svc = rng.randrange(50)
                ids = g.record_chain(
                    [("observation", f"svc{svc} latency high", {"p95_ms": rng.random() * 900}),
                     ("decision", "restart", {"reason": "latency", "score": rng.random()}),
                     ("action", "restart", {"attempt": 1}),
                     ("outcome", "succeeded", {"seconds": rng.random() * 5})],
                    context={"about": resources[svc],
                             "under_generation": rng.choice(generations)})
                outcomes.append(ids[-1])
    store.close()
    return outcomes


def rows(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    store = Store(path).open()
    nodes = store.query_tuples("SELECT id, type, label, ts, attrs FROM graph_nodes")
    edges = store.query_tuples("SELECT src, dst, rel, ts, attrs FROM graph_edges")
    store.close()
    return nodes, edges


def networkx_build(nodes: list[tuple[Any, ...]], edges: list[tuple[Any, ...]]) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    g.add_nodes_from((n[0], {"type": n[1], "label": n[2], "ts": n[3], "attrs": n[4]})
                     for n in nodes)
    g.add_edges_from((e[0], e[1], e[2], {"rel": e[2], "ts": e[3], "attrs": e[4]}) for e in edges)
    return g


def bare_why(g: nx.MultiDiGraph, node: str) -> list[str]:
    chain, current = [node], node
    while True:
        causes = [u for u, _, k in g.in_edges(current, keys=True)
                  if k in CAUSAL_RELATIONS and u not in chain]
        if not causes:
            return chain[::-1]
        current = max(causes, key=lambda n: g.nodes[n]["ts"])
        chain.append(current)


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def cpu(fn: Any, *args: Any) -> float:
    """CPU time of one call (what preemption on a loaded machine adds is left out)."""
    t0 = time.thread_time()
    fn(*args)
    return time.thread_time() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="20,000 entities")
    ap.add_argument("--entities", type=int, default=100_000)
    a = ap.parse_args(argv)
    entities = 20_000 if a.quick else a.entities
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "atlas.db"
        t_build, outcomes = timed(build, db, entities, 0)
        sample = random.Random(1).sample(outcomes, min(1000, len(outcomes)))
        ready, stats, copies = [], [], []
        for i in range(5):  # open + first answer; stats; a whole-graph copy
            store = Store(db).open()
            t0 = time.perf_counter()
            graph = KnowledgeGraph(store)
            graph.why(sample[i])
            ready.append(time.perf_counter() - t0)
            stats.append(timed(graph.stats)[0])
            copies.append(timed(graph.to_networkx)[0])
            store.close()
            del graph
            gc.collect()  # freeing the copy is not part of the next reload
        store = Store(db).open()
        graph = KnowledgeGraph(store)
        lazy = [timed(graph.why, o)[0] for o in sample]
        lazy_cpu = [cpu(graph.why, o) for o in sample]
        nodes, edges = rows(db)
        peer = [timed(networkx_build, nodes, edges) for _ in range(5)]
        first = graph.why(sample[0])
        bare = [timed(bare_why, peer[0][1], o)[0] for o in sample]
        assert [s["id"] for s in first] == bare_why(peer[0][1], sample[0])
        store.close()
    n, e = len(nodes), len(edges)
    med = statistics.median
    print(f"knowledge graph: {n} entities, {e} relations (built through record_chain in "
          f"{t_build:.1f} s); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| measure | ours | networkx peer |")
    print("|---|---|---|")
    print(f"| reload: open + first why, median of 5 | {med(ready) * 1e3:.1f} ms | "
          f"build from rows in memory {med(t for t, _ in peer):.3f} s |")
    print(f"| stats() from the store, median of 5 | {med(stats) * 1e3:.1f} ms | — |")
    print(f"| whole-graph copy (to_networkx), median of 5 | {med(copies):.3f} s | "
          f"— |")
    print(f"| why, median / p95 | {med(lazy) * 1e3:.3f} / "
          f"{pct(lazy, 95) * 1e3:.3f} ms (CPU p95 {pct(lazy_cpu, 95) * 1e3:.3f} ms) | "
          f"bare walk in memory {med(bare) * 1e3:.3f} / {pct(bare, 95) * 1e3:.3f} ms |")
    wall = pct(lazy, 95) < 1e-3
    ok = med(ready) < 1.0 and pct(lazy_cpu, 95) < 1e-3
    print(f"bar (reload < 1 s, why p95 < 1 ms): {'met' if ok else 'MISSED'} by CPU time; "
          f"by wall time {'met' if wall and ok else 'missed'} (a loaded shared machine "
          f"preempts single calls: compare the CPU p95)")
    write_result("bench_graph", {
        "reload_median_ms": round(med(ready) * 1e3, 2),
        "stats_median_ms": round(med(stats) * 1e3, 2),
        "to_networkx_median_s": round(med(copies), 4),
        "why_store_p95_ms": round(pct(lazy, 95) * 1e3, 4),
        "why_store_cpu_p95_ms": round(pct(lazy_cpu, 95) * 1e3, 4),
    }, {"networkx_build_median_s": round(med(t for t, _ in peer), 4),
        "bare_walk_p95_ms": round(pct(bare, 95) * 1e3, 4)},
        {"quick": a.quick, "entities": n, "relations": e, "build_s": round(t_build, 2),
         "bar_met": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
