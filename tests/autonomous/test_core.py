"""Store, governance, approvals, knowledge graph, backoff, clock, events."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3

import pytest

from autonomous.core.backoff import Backoff, BackoffSpec
from autonomous.core.clock import FakeClock, snap_delay, tick_delay
from autonomous.core.errors import Conflict, Gone, NotFound, ValidationFailed
from autonomous.core.events import EventBus
from autonomous.learning.knowledge_graph import KnowledgeGraph
from autonomous.store import Store


def test_store_wal_and_migrations(tmp_path):
    s = Store(tmp_path / "a.db").open()
    assert s.query_one("PRAGMA journal_mode")[0] == "wal"
    versions = s.schema_versions()
    assert versions["core"] >= 3 and versions["graph"] >= 1
    s.close()
    again = Store(tmp_path / "a.db").open()
    assert again.schema_versions() == versions  # nothing re-applied
    again.close()


def test_store_transaction_rolls_back(tmp_path):
    s = Store(tmp_path / "a.db").open()
    with pytest.raises(RuntimeError), s.transaction():
        s.kv_set("k", 1)
        raise RuntimeError("half-done")
    assert s.kv_get("k") is None
    s.close()


def test_store_read_apart_does_not_wait_for_the_lock_and_sees_one_committed_state(tmp_path):
    """Bulk reads on their own connection: answered while another thread holds the store
    (inside a transaction), with what was committed; inside this thread's own transaction,
    with what it wrote."""
    import threading

    s = Store(tmp_path / "a.db").open()
    s.kv_set("a", 1)
    holding, done = threading.Event(), threading.Event()

    def writer() -> None:
        with s.transaction():
            s.kv_set("b", 2)  # not committed while we read
            holding.set()
            done.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert holding.wait(10)
        got: list = []
        reader = threading.Thread(target=lambda: got.append(
            s.read_apart("SELECT key FROM kv ORDER BY key", "SELECT COUNT(*) FROM kv")))
        reader.start()
        reader.join(10)
        assert got == [[[("a",)], [(1,)]]], "read_apart waited for the lock or saw a dirty write"
    finally:
        done.set()
        t.join(10)
    with s.transaction():
        s.kv_set("c", 3)
        assert s.read_apart("SELECT key FROM kv ORDER BY key") == [[("a",), ("b",), ("c",)]]
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        s.read_apart("DELETE FROM kv")
    assert s.kv_get("a") == 1
    s.close()


def test_store_survives_sigkill(tmp_path):
    """A child writes and is SIGKILLed mid-stream: committed rows are all there."""
    db = tmp_path / "k.db"
    pid = os.fork()
    if pid == 0:  # child
        st = Store(db).open()
        for i in range(200):
            st.kv_set(f"k{i}", i)
        os.kill(os.getpid(), 9)
    os.waitpid(pid, 0)
    s = Store(db).open()
    assert s.kv_get("k199") == 199
    assert s.query_one("PRAGMA integrity_check")[0] == "ok"
    s.close()


def test_store_online_backup(tmp_path):
    s = Store(tmp_path / "a.db").open()
    s.kv_set("x", {"y": 1})
    s.backup_to(tmp_path / "b.db")
    con = sqlite3.connect(tmp_path / "b.db")
    assert con.execute("SELECT value FROM kv WHERE key='x'").fetchone()[0] == '{"y": 1}'
    con.close()
    s.close()


def test_governance_mode_switch_logged(ctx):
    assert ctx.governance.mode == "governed"
    ctx.governance.set_mode("growth", actor="alice", reason="more speed")
    assert ctx.governance.mode == "growth"
    h = ctx.governance.history()[0]
    assert (h["old_mode"], h["new_mode"], h["actor"], h["reason"]) == \
        ("governed", "growth", "alice", "more speed")
    with pytest.raises(ValidationFailed, match="'chaos' is not one of governed, growth"):
        ctx.governance.set_mode("chaos", actor="x")
    assert ctx.governance.action_mode("rollback", "governed") == "require_approval"
    assert ctx.governance.action_mode("rollback", "growth") == "enforce"
    assert ctx.governance.action_mode("optimization", "emergency_stop") == "dry_run"


def _request(ctx, generation=1, ttl=60.0):
    return ctx.approvals.request(controller="c", resource="Service/a", action_kind="rollback",
                                 action={"kind": "rollback"}, action_hash="h1",
                                 generation=generation, mode="governed", ttl=ttl)


def test_approval_bound_to_generation_and_expires(ctx):
    req = _request(ctx)
    assert _request(ctx)["id"] == req["id"], "same action+generation → same request"
    with pytest.raises(Conflict, match="made for generation 1 but generation 2 is in force"):
        ctx.approvals.decide(req["id"], approve=True, actor="bob", current_generation=2)
    fresh = _request(ctx, generation=2)
    ctx.clock.advance(61)
    with pytest.raises(Gone, match="expired"):
        ctx.approvals.decide(fresh["id"], approve=True, actor="bob", current_generation=2)
    with pytest.raises(NotFound):
        ctx.approvals.get("nope")


def test_approval_approve_then_take_once(ctx):
    req = _request(ctx)
    ctx.approvals.decide(req["id"], approve=True, actor="bob", current_generation=1)
    assert ctx.approvals.take_approved("h1", 1)["id"] == req["id"]
    assert ctx.approvals.take_approved("h1", 1) is None
    with pytest.raises(Conflict, match="already executed"):
        ctx.approvals.decide(req["id"], approve=False, actor="bob", current_generation=1)


def test_knowledge_graph_chain_persists(tmp_path):
    clock = FakeClock()
    s = Store(tmp_path / "g.db").open()
    g = KnowledgeGraph(s, clock)
    res = g.ensure("resource", "Service/nexus")
    ids = g.record_chain([("observation", "exit -9", {"rc": -9}), ("decision", "restart", {}),
                          ("action", "restart nexus", {}), ("outcome", "ok", {})],
                         context={"about": res})
    s.close()
    g2 = KnowledgeGraph(Store(tmp_path / "g.db").open(), clock)
    chain = g2.why(ids[-1])
    assert [c["type"] for c in chain] == ["observation", "decision", "action", "outcome"]
    assert chain[0]["attrs"] == {"rc": -9}
    assert {n["node"]["id"] for n in g2.neighbours(res)} == set(ids)
    assert g2.find(type_="decision")[0]["label"] == "restart"
    assert len(g2.related(ids[0], depth=1)["nodes"]) >= 2
    with pytest.raises(KeyError):
        g2.why("missing")


def test_backoff_exponential_capped_jittered_and_reset():
    b = Backoff(BackoffSpec(initial=1, factor=2, max_delay=5, jitter=0, max_retries=4))
    assert [b.record_failure() for _ in range(4)] == [1, 2, 4, 5]
    assert b.exhausted
    b.record_success()
    assert b.failures == 0 and b.delay() == 0
    j = Backoff(BackoffSpec(initial=10, factor=1, max_delay=100, jitter=0.5),
                rng=random.Random(1))
    delays = {j.record_failure() for _ in range(20)}
    assert all(5 <= d <= 15 for d in delays) and len(delays) > 1


async def test_fake_clock_sleep_and_event_bus():
    clock = FakeClock()
    woke = []

    async def sleeper():
        await clock.sleep(5)
        woke.append(clock.monotonic())

    t = asyncio.create_task(sleeper())
    await asyncio.sleep(0)
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(0.1)
    await t
    assert woke == [5.0]
    bus = EventBus()
    sub = bus.subscribe("service.")
    bus.publish("service.exited", service="a")
    bus.publish("other.topic")
    ev = await sub.get()
    assert ev.topic == "service.exited" and ev.data == {"service": "a"}
    assert sub.get_nowait() is None


def test_tick_delay_aligns_to_multiples_of_the_period():
    clock = FakeClock()
    assert tick_delay(clock, 1.0) == 1.0  # on a grid point: the next one, a period on
    clock.advance(0.3)
    assert tick_delay(clock, 1.0) == pytest.approx(0.7)
    assert tick_delay(clock, 0.25) == pytest.approx(0.2)
    assert tick_delay(clock, 0.05) == pytest.approx(0.05)  # 0.3 is on the 50 ms grid
    clock.advance(0.7 - 1e-9)  # float rounding just short of 1.0 counts as on it
    assert tick_delay(clock, 1.0) == pytest.approx(1.0)
    clock.advance(2.6)  # a pass that overran: the missed ticks are not made up
    assert tick_delay(clock, 1.0) == pytest.approx(0.4)
    assert tick_delay(clock, 0.0) == 0.0


def test_snap_delay_ends_on_the_nearest_grid_point():
    clock = FakeClock()
    clock.advance(0.25)
    assert snap_delay(clock, 4.6) == pytest.approx(4.75)  # 4.85 -> 5.0
    assert snap_delay(clock, 4.1) == pytest.approx(3.75)  # 4.35 -> 4.0
    assert snap_delay(clock, 1.2) == pytest.approx(0.75)  # 1.45 -> 1.0
    assert snap_delay(clock, 0.3) == 0.3  # shorter than a grid step: unchanged
    assert snap_delay(clock, 4.6, grid=0) == 4.6


async def test_loops_on_the_tick_grid_wake_together():
    """Two fixed-rate loops started at different phases (one also spends time per pass)
    wake at the same instants: the multiples of their period."""
    clock = FakeClock()
    wakes: dict[str, list[float]] = {"a": [], "b": []}

    async def loop(name: str, work: float) -> None:
        while True:
            wakes[name].append(round(clock.monotonic(), 6))
            if work:
                await clock.sleep(work)
            await clock.sleep(tick_delay(clock, 1.0))

    async def step(dt: float, n: int) -> None:
        for _ in range(n):
            clock.advance(dt)
            for _ in range(5):
                await asyncio.sleep(0)

    a = asyncio.create_task(loop("a", 0.0))
    await asyncio.sleep(0)
    await step(0.125, 3)
    b = asyncio.create_task(loop("b", 0.25))
    await asyncio.sleep(0)
    await step(0.125, 22)
    a.cancel()
    b.cancel()
    await asyncio.gather(a, b, return_exceptions=True)
    assert wakes["a"] == [0.0, 1.0, 2.0, 3.0]
    assert wakes["b"] == [0.375, 1.0, 2.0, 3.0]


def test_event_bus_routes_follow_subscriptions():
    bus = EventBus()
    a = bus.subscribe("service.")
    bus.publish("service.probe", n=1)
    b = bus.subscribe("service.probe")  # a new subscriber gets the next event of a known topic
    bus.publish("service.probe", n=2)
    a.close()  # a closed one gets no more
    bus.publish("service.probe", n=3)
    got_a = [a.get_nowait(), a.get_nowait(), a.get_nowait()]
    got_b = [b.get_nowait(), b.get_nowait(), b.get_nowait()]
    assert [e.data["n"] for e in got_a[:2]] == [1, 2] and got_a[2] is None
    assert [e.data["n"] for e in got_b[:2]] == [2, 3] and got_b[2] is None


def test_data_dir_and_database_files_are_private(tmp_path):
    import os
    import stat as st

    from autonomous.store import Store

    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    store = Store(data / "atlas.db").open()
    try:
        store.kv_set("env", {"DB_PASSWORD": "x"})
        assert st.S_IMODE(os.stat(data).st_mode) == 0o700
        for name in ("atlas.db", "atlas.db-wal", "atlas.db-shm"):
            assert (data / name).exists(), name
            assert st.S_IMODE(os.stat(data / name).st_mode) == 0o600, name
    finally:
        store.close()


def test_a_shared_sticky_data_dir_keeps_its_modes(tmp_path):
    """A data dir such as /tmp (sticky, everyone's) is not tightened to 0700 — the database
    files in it still are 0600."""
    import os
    import stat as st

    from autonomous.store import Store

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    store = Store(shared / "atlas.db").open()
    try:
        store.kv_set("k", {"v": 1})
        assert st.S_IMODE(os.stat(shared).st_mode) == 0o1777
        assert st.S_IMODE(os.stat(shared / "atlas.db").st_mode) == 0o600
    finally:
        store.close()


def test_one_signature_normaliser_for_logs_and_healing():
    """A failure seen in a log line and in a healing report normalises to the same text."""
    from autonomous.core.signature import normalise
    from autonomous.self_healing.signatures import error_signature as healing_signature
    from autonomous.telemetry.logs_collector import error_signature as log_signature

    text = ("timeout after 250 ms calling 10.0.0.7:8000 for job "
            "3f2a9c1e-0b4d-4c7e-9a1f-2b3c4d5e6f70 at /var/lib/atlas/jobs.db (0xdeadbeef)")
    other = ("timeout after 9 ms calling 127.0.0.1:8002 for job "
             "00000000-1111-2222-3333-444444444444 at /tmp/x/y.db (0x1)")
    assert normalise(text) == normalise(other)
    assert log_signature("nexus", text) == f"nexus: {normalise(text)}"
    assert healing_signature("nexus", "log", "", text).endswith("|" + normalise(text))
    assert "250" not in normalise(text) and "<ip>" in normalise(text)


def test_one_percentile_definition():
    from autonomous.core.stats import percentile, percentiles

    assert percentile([], 50) is None
    assert percentile([4, 1, 3, 2], 50) == 2.5  # linear between closest ranks
    assert percentile([1, 2, 3, 4], 100) == 4 and percentile([7], 99) == 7
    assert percentiles([10, 20], (0, 50)) == {"p0": 10, "p50": 15.0}
    with pytest.raises(ValueError):
        percentile([1], 101)
