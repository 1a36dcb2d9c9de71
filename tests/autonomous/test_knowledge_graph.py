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


DAY = 86400.0


def _chain(g: KnowledgeGraph, name: str) -> list[str]:
    res = g.ensure("resource", name)
    return g.record_chain([("observation", f"{name} seen", {}), ("decision", f"restart {name}", {}),
                           ("action", f"restart {name}", {}), ("outcome", "ok", {})],
                          context={"about": res})


def test_prune_removes_old_chains_whole_and_keeps_touched_ones(tmp_path):
    clock = FakeClock()
    store = Store(tmp_path / "g.db").open()
    g = KnowledgeGraph(store, clock)
    old = _chain(g, "old")
    touched = _chain(g, "touched")
    clock.advance(10 * DAY)
    assert g.touch(touched[1:2])          # only the decision is seen again
    clock.advance(10 * DAY)
    recent = _chain(g, "recent")
    deleted = g.prune(clock.now() - 15 * DAY)
    assert deleted == {"graph_nodes": 5, "graph_edges": 7}   # old chain + its resource
    assert not any(g.has(n) for n in [*old, "resource:old"])
    # a chain with one recent node stays whole, with the context it points to
    kept = [*touched, *recent, "resource:touched", "resource:recent"]
    assert all(g.has(n) for n in kept)
    assert g.node(touched[1])["attrs"]["repeats"] == 1
    # nothing else is left: 2 chains of 4 and their resources, 7 edges each
    copy = KnowledgeGraph(store, clock).to_networkx()
    assert set(copy.nodes) == set(kept) and copy.number_of_edges() == 14
    assert [s["type"] for s in g.why(touched[-1])] == [
        "observation", "decision", "action", "outcome"]


def test_a_restarted_graph_answers_from_the_store_and_copies_it_to_networkx(tmp_path):
    clock = FakeClock()
    store = Store(tmp_path / "g.db").open()
    first = KnowledgeGraph(store, clock)
    a = _chain(first, "a")
    clock.advance(1)
    _chain(first, "b")
    lazy = KnowledgeGraph(store, clock)  # a restart
    # writes land in the store and dedupe there
    assert lazy.touch(a[1:2]) and not lazy.touch(["decision:none"])
    lazy.add_relation(a[0], "about", "resource:a")  # already there: no second edge
    clock.advance(60)
    extra = lazy.add_entity("observation", "late", id="observation:late")
    lazy.add_relation(extra, "led_to", a[1])
    with pytest.raises(KeyError, match="unknown graph node 'observation:none'"):
        lazy.add_relation("observation:none", "led_to", a[1])
    def answers() -> tuple:
        return (lazy.why(a[-1]), lazy.node(a[1]), lazy.neighbours(a[1]), lazy.stats(),
                lazy.find(type_="decision"), lazy.find(label_contains="B SEEN"),
                lazy.related("resource:a", 2), lazy.visualize_subgraph(a[1], max_nodes=4))

    from_store = answers()
    why, node, _, stats, decisions, b_seen, related, vis = from_store
    assert node["attrs"]["repeats"] == 1
    assert [s["id"] for s in why] == [extra, *a[1:]]  # the newest cause wins
    assert why[0]["context"] == [] and why[1]["context"][0]["rel"] == "about"
    # two chains of 4 + their resource, and the late observation; 3 causal + 4 "about"
    # edges per chain, and the late one
    assert stats["nodes"] == 11 and stats["edges"] == 2 * 7 + 1
    assert [d["label"] for d in decisions] == ["restart b", "restart a"]  # newest first
    assert [d["label"] for d in b_seen] == ["b seen"]
    assert len(related["nodes"]) == 6 and len(related["edges"]) == 8  # chain a + late obs
    assert len(vis["nodes"]) == 4 and vis["truncated"] is True
    copy = lazy.to_networkx()
    assert copy.number_of_nodes() == 11 and copy.number_of_edges() == 15
    assert copy.nodes[a[1]]["attrs"]["repeats"] == 1
    assert set(copy.out_edges(extra, keys=True)) == {(extra, a[1], "led_to")}
    copy.remove_node(a[1])  # a copy: the graph is untouched
    assert answers() == from_store
    with pytest.raises(KeyError):
        KnowledgeGraph(store, clock).why("outcome:none")


def test_a_recording_rolled_back_with_its_transaction_leaves_no_trace(tmp_path):
    """The graph keeps no copy of its own: what a failed transaction wrote is gone from
    every answer, as from the store (a copy in memory kept such nodes until a restart)."""
    store = Store(tmp_path / "g.db").open()
    g = KnowledgeGraph(store, FakeClock())
    a = _chain(g, "a")
    before = (g.stats(), g.to_networkx().number_of_nodes(), g.neighbours("resource:a"))
    with pytest.raises(RuntimeError, match="after recording"):
        with store.transaction():
            b = _chain(g, "b")
            g.add_relation(b[1], "led_to", a[2])
            g.add_entity("resource", "a", id="resource:a", attrs={"owner": "b"})
            raise RuntimeError("after recording")
    assert not any(g.has(n) for n in [*b, "resource:b"])
    with pytest.raises(KeyError):
        g.why(b[-1])
    assert (g.stats(), g.to_networkx().number_of_nodes(), g.neighbours("resource:a")) == before
    assert g.node("resource:a")["attrs"] == {}
    assert [s["id"] for s in g.why(a[-1])] == a


def test_retention_prunes_every_growing_table_from_policy(ctx):
    from autonomous.learning.retention import Retention

    store, clock = ctx.store, ctx.clock
    gen = ctx.desired.current.number
    now = clock.now()
    for i, age in enumerate((40, 1)):
        ts = now - age * DAY
        store.execute("INSERT INTO health_reports(ts, score, report) VALUES (?, 1, '{}')", (ts,))
        store.execute("INSERT INTO health_anomalies(id, metric, start, end_ts, peak_ts, "
                      "peak_value, peak_z, score, severity, last_seen) VALUES "
                      "(?, 'cpu', ?, ?, ?, 1, 1, 1, 'leve', ?)", (f"a{i}", ts, ts, ts, ts))
        for state in ("expired", "pending"):
            store.execute("INSERT INTO approvals(id, controller, resource, action_kind, action, "
                          "action_hash, generation, mode, created_at, expires_at, state) VALUES "
                          "(?, 'c', 'r', 'k', '{}', 'h', 1, 'governed', ?, ?, ?)",
                          (f"{state}{i}", ts, ts, state))
    store.execute("INSERT INTO health_anomalies(id, metric, start, end_ts, peak_ts, peak_value, "
                  "peak_z, score, severity, last_seen) VALUES ('open', 'cpu', ?, NULL, ?, 1, 1, "
                  "1, 'leve', ?)", (now - 60 * DAY, now - 60 * DAY, now - 60 * DAY))
    row = store.query_one("SELECT * FROM generations WHERE generation=?", (gen,))
    for n in range(gen + 1, gen + 6):   # newer rows than the one in force
        store.execute("INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (n, row["hash"], row["commit_sha"], row["created_at"], row["resources"],
                       row["policy"], row["config"]))
    p = ctx.policy()["retention"]
    policy = {"retention": {**p, "generations_keep": 2}}
    r = Retention(store, ctx.graph, clock, lambda: policy, lambda: gen)
    deleted = r.maybe_run()
    assert deleted is not None
    assert {k: deleted[k] for k in ("health_reports", "health_anomalies", "approvals",
                                    "generations")} == {
        "health_reports": 1, "health_anomalies": 1, "approvals": 1, "generations": 3}
    kept = {r["generation"] for r in store.query("SELECT generation FROM generations")}
    assert kept == {gen, gen + 4, gen + 5}
    assert {r["id"] for r in store.query("SELECT id FROM approvals")} == {
        "pending0", "expired1", "pending1"}
    assert {r["id"] for r in store.query("SELECT id FROM health_anomalies")} == {"a1", "open"}
    assert r.maybe_run() is None, "not again before interval_seconds"
    clock.advance(p["interval_seconds"])
    assert r.maybe_run() is not None


def test_recording_inside_a_transaction_while_a_prune_reads_the_store_does_not_deadlock(
        tmp_path):
    """The executor records an outcome inside ``store.transaction()``; retention prunes in a
    worker thread. With a lock of the graph's own beside the store's, the two took them in
    opposite orders and froze the operator (a CI run). Forced into that interleaving — the
    recorder holds the store as the prune starts — both finish: the graph has no lock of its
    own, so the prune waits for the transaction and goes on."""
    import threading

    store = Store(tmp_path / "g.db").open()
    seed = KnowledgeGraph(store, FakeClock())
    seed.ensure("resource", "nexus")
    g = KnowledgeGraph(store, FakeClock())  # a restart: the prune loads it from the store
    has_store, prune_reading = threading.Event(), threading.Event()
    read, read_apart = store.query_tuples, store.read_apart

    def reading(*a, **kw):  # the prune reads the store
        prune_reading.set()
        return read(*a, **kw)

    def reading_apart(*a, **kw):
        prune_reading.set()
        return read_apart(*a, **kw)

    store.query_tuples = reading  # type: ignore[method-assign]
    store.read_apart = reading_apart  # type: ignore[method-assign]

    def record() -> None:
        with store.transaction():
            has_store.set()
            # one lock: the prune cannot get in while we hold it, so this wait times out
            prune_reading.wait(0.5)
            g.ensure("resource", "robot")

    def prune() -> None:
        has_store.wait(10)
        g.prune(before=0.0)

    threads = [threading.Thread(target=f, daemon=True) for f in (record, prune)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads), "deadlock: recorder and prune both stuck"
    assert [g.node(n)["id"] for n in ("resource:nexus", "resource:robot")] == [
        "resource:nexus", "resource:robot"]  # the prune (nothing old) kept both


def test_prune_finds_chains_without_the_lock_and_keeps_what_is_written_meanwhile(
        tmp_path, monkeypatch):
    """The chains are found outside the store's lock (another thread takes it at once), and
    a decision that links to an old chain while they are found keeps that chain."""
    import threading

    from autonomous.learning import knowledge_graph as kg

    clock = FakeClock()
    store = Store(tmp_path / "g.db").open()
    g = KnowledgeGraph(store, clock)
    old, other = _chain(g, "old"), _chain(g, "other")
    clock.advance(20 * DAY)
    found = kg.stale_nodes
    calls: list[bool] = []

    def finding(nodes, edges, before):
        if not calls:  # the first pass: the lock is free, and a new decision links in
            got: list[bool] = []

            def take() -> None:
                got.append(store.lock.acquire(timeout=10))
                if got[-1]:
                    store.lock.release()

            t = threading.Thread(target=take)
            t.start()
            t.join(15)
            assert got == [True]
            new = g.add_entity("decision", "restart old again")
            g.add_relation(new, "led_to", old[0])
        calls.append(True)
        return found(nodes, edges, before)

    monkeypatch.setattr(kg, "stale_nodes", finding)
    deleted = g.prune(clock.now() - 15 * DAY)
    assert len(calls) == 2  # decided again under the lock, on the graph as it is
    assert all(g.has(n) for n in old) and not any(g.has(n) for n in other)
    assert deleted == {"graph_nodes": 5, "graph_edges": 7}  # "other" and its resource


def test_prune_deletes_whole_chains_in_transactions_of_their_own(tmp_path, monkeypatch):
    """A large prune (after a long downtime most of the graph is stale) is short transactions
    of whole chains, each committed before the next (the lock is let go between them), not
    one that holds every store user up; a chain linked to between two of them stays."""
    clock = FakeClock()
    store = Store(tmp_path / "g.db").open()
    g = KnowledgeGraph(store, clock)
    chains = [_chain(g, f"c{i}") for i in range(6)]  # 4 nodes + a resource each
    clock.advance(20 * DAY)
    delete = KnowledgeGraph._delete
    batches: list[list[str]] = []
    linked: list[int] = []  # the chain a decision links to between two batches

    def deleting(self, ids):
        out = delete(self, ids)
        batches.append(ids)
        # committed: another connection sees it, and every chain is there whole or gone whole
        kept = {r[0] for r in store.read_apart("SELECT id FROM graph_nodes")[0]}
        assert not kept & set(ids)
        for c in chains:
            assert len({n in kept for n in c}) == 1, f"chain {c} cut by a batch"
        if len(batches) == 1:  # a decision about a chain still to go, between two batches
            linked.append(next(i for i, c in enumerate(chains) if c[0] in kept))
            new = g.add_entity("decision", "restart it again")
            g.add_relation(new, "led_to", chains[linked[0]][0])
        return out

    monkeypatch.setattr(KnowledgeGraph, "_delete", deleting)
    deleted = g.prune(clock.now() - 15 * DAY, batch=8)
    assert len(batches) >= 3 and all(len(b) <= 8 for b in batches)
    (i,) = linked
    assert all(g.has(n) for n in [*chains[i], f"resource:c{i}"])
    assert not any(g.has(n) for j, c in enumerate(chains) if j != i
                   for n in [*c, f"resource:c{j}"])
    assert deleted == {"graph_nodes": 5 * 5, "graph_edges": 5 * 7}
