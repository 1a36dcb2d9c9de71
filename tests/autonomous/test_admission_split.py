"""Admission split by responsibility: classify (pure on the policy), decide (pure on what is
observed: throttler, queue, survival prefixes; fake clock), and the ASGI middleware over real
HTTP (uvicorn on loopback): a shed request is a cheap 429 that never reaches the route."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest

from autonomous.core.clock import FakeClock
from autonomous.resilience.admission import Admission
from autonomous.resilience.admission_classify import classify, never_shed
from autonomous.resilience.admission_decide import ahead_of, decide
from autonomous.resilience.priority_queue import Priority, PriorityQueue
from autonomous.resilience.resource_throttler import ResourceReading, ResourceThrottler
from autonomous.testing import default_root, free_port, wait_for


def base_policy(**over: dict) -> dict:
    from autonomous.resources.loader import load_tree

    tree = load_tree(default_root()).tree
    assert tree is not None
    p = tree.policies["governed"]["resilience"]
    for section, values in over.items():
        p[section] = {**p[section], **values}
    return p


def quiet() -> ResourceReading:
    return ResourceReading(10.0, 10.0, None)


def state(**over: dict) -> tuple[dict, ResourceThrottler, PriorityQueue, FakeClock]:
    clock = FakeClock()
    pol = base_policy(**over)
    q = pol["queue"]
    queue = PriorityQueue(max_depth=q["max_depth"], aging_seconds=q["aging_seconds"],
                          clock=clock, stats_window=q["stats_window"])
    return pol, ResourceThrottler(pol, clock=clock, reader=quiet), queue, clock


def test_classify_is_pure_on_the_policy_section():
    adm = base_policy()["admission"]
    assert classify(adm, "/api/reconcile/status", {"x-atlas-priority": "LOW"}, "GET") is None
    assert classify(adm, "/api/telemetry/alerts", {}, "GET") is None  # a GET never-shed read
    assert classify(adm, "/api/telemetry/alerts", {}, "POST") is Priority.MEDIUM
    assert classify(adm, "/api/evolution/proposals", {"x-atlas-priority": "critical"},
                    "GET") is Priority.CRITICAL
    assert classify(adm, "/api/evolution/proposals", {"x-atlas-priority": "nope"},
                    "GET") is Priority.LOW
    assert never_shed("GET /x", "/x/y", "HEAD") and not never_shed("GET /x", "/x", "PUT")


def test_decide_reads_state_and_changes_nothing():
    pol, throttler, queue, _ = state(concurrency={"initial": 2, "min": 1, "max": 2,
                                                  "critical_reserved": 1})
    adm = pol["admission"]
    assert decide(adm, throttler, queue, (), None).action == "admit"
    assert decide(adm, throttler, queue, (), Priority.LOW, "/x").action == "admit"
    assert throttler.in_flight == 0 and len(queue) == 0  # a decision takes no slot
    throttler.force_acquire(Priority.LOW)  # the one shared slot is busy
    assert decide(adm, throttler, queue, (), Priority.LOW, "/x").action == "queue"
    queue.enqueue(object(), Priority.LOW)
    queue.enqueue(object(), Priority.HIGH)
    # CRITICAL never waits behind others: only CRITICAL waiters are ahead of it
    assert ahead_of(queue, Priority.CRITICAL) == 0 and ahead_of(queue, Priority.LOW) == 2
    assert decide(adm, throttler, queue, (), Priority.CRITICAL, "/x").action == "admit"
    d = decide(adm, throttler, queue, ("/api/learning/",), Priority.CRITICAL,
               "/api/learning/x")
    assert (d.action, d.retry_after) == ("shed", 1.0)
    assert len(queue) == 2 and throttler.in_flight == 1


def test_decide_sheds_low_on_its_rate_limit_with_exact_retry_after():
    pol, throttler, queue, clock = state(rate_limits={"LOW": {"per_second": 4, "burst": 1}})
    adm = pol["admission"]
    assert decide(adm, throttler, queue, (), Priority.LOW).action == "admit"
    d = decide(adm, throttler, queue, (), Priority.LOW)
    assert d.action == "shed" and d.retry_after == pytest.approx(0.25)
    assert decide(adm, throttler, queue, (), Priority.CRITICAL).action == "admit"
    clock.advance(0.25)
    assert decide(adm, throttler, queue, (), Priority.LOW).action == "admit"


# -- the middleware over real HTTP -----------------------------------------------------------
@pytest.fixture
def served() -> Iterator[tuple[str, Admission, dict[str, int], threading.Event]]:
    """A FastAPI app with admission installed the way the operator does (uvicorn, loopback):
    ``/slow`` holds its slot until the test sets the event; hits counts calls per route."""
    import uvicorn
    from fastapi import FastAPI

    from autonomous.resilience.admission import AdmissionMiddleware, routes_match

    pol = base_policy(concurrency={"initial": 1, "min": 1, "max": 1, "critical_reserved": 0},
                      queue={"max_depth": 1},
                      admission={"max_wait_seconds": {"CRITICAL": 5, "HIGH": 3, "MEDIUM": 2,
                                                      "LOW": 5}})
    adm = Admission(lambda: pol, reader=quiet)
    app = FastAPI()
    hits = {"slow": 0, "work": 0}
    release = threading.Event()

    @app.get("/api/evolution/slow")
    async def slow() -> dict:
        hits["slow"] += 1
        await asyncio.to_thread(release.wait, 10)
        return {"ok": True}

    @app.post("/api/evolution/work")
    async def work(body: dict) -> dict:
        hits["work"] += 1
        return body

    cache: dict[str, bool] = {}
    app.add_middleware(AdmissionMiddleware, admission=adm,
                       routed=lambda scope: routes_match(app, scope, cache))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="error"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    wait_for(lambda: server.started, "uvicorn started")
    try:
        yield f"http://127.0.0.1:{port}", adm, hits, release
    finally:
        release.set()
        server.should_exit = True
        t.join(10)
        assert not t.is_alive()


def test_middleware_sheds_low_with_429_before_the_route_or_body(served):
    base, adm, hits, release = served
    with httpx.Client(base_url=base, trust_env=False, timeout=10) as c:
        holder = threading.Thread(target=lambda: c.get(
            "/api/evolution/slow", headers={"x-atlas-priority": "LOW"}))
        holder.start()
        wait_for(lambda: adm.throttler.in_flight == 1, "the slow LOW request holds the slot")
        queued = threading.Thread(target=lambda: c.get(
            "/api/evolution/slow", headers={"x-atlas-priority": "LOW"}))
        queued.start()
        wait_for(lambda: len(adm.queue) == 1, "a second LOW request waits in the queue")
        # queue full of LOW: a LOW request with a broken body is shed before any body parse
        r = c.post("/api/evolution/work", content=b"{not json",
                   headers={"x-atlas-priority": "LOW", "content-type": "application/json"})
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["error"] == "Throttled" and hits["work"] == 0
        # a HIGH request evicts the waiting LOW one instead of waiting behind it
        got: list[int] = []
        high = threading.Thread(target=lambda: got.append(c.post(
            "/api/evolution/work", json={"a": 1}, headers={"x-atlas-priority": "HIGH"}
        ).status_code))
        high.start()
        queued.join(10)
        assert adm.queue.get_queue_stats()["levels"]["LOW"]["shed"] == 1
        release.set()
        high.join(10)
        holder.join(10)
        assert got == [200] and hits == {"slow": 1, "work": 1}
        # the middleware releases once the response is sent: wait for that, not a sleep
        wait_for(lambda: adm.throttler.in_flight == 0, "every slot released")


def test_classify_cache_answers_like_classify_and_stays_bounded():
    from autonomous.resilience.admission_classify import ClassifyCache

    adm = base_policy()["admission"]
    cache = ClassifyCache(size=3)
    cases = [("/api/reconcile/status", {"x-atlas-priority": "LOW"}, "GET"),
             ("/api/telemetry/alerts", {}, "GET"), ("/api/telemetry/alerts", {}, "POST"),
             ("/api/evolution/proposals", {"x-atlas-priority": "critical"}, "GET"),
             ("/api/evolution/proposals", {"x-atlas-priority": "nope"}, "GET"),
             ("/api/evolution/proposals", {}, "GET"), ("/somewhere", {}, "PUT")]
    for _ in range(2):  # the second round answers from the cache
        for path, headers, method in cases:
            assert cache.classify(adm, path, headers, method) == \
                classify(adm, path, headers, method), (path, headers, method)
    assert len(cache._paths) <= 3
    changed = {**adm, "default_priority": "HIGH"}  # a new policy section: nothing stale
    assert cache.classify(changed, "/somewhere", {}, "PUT") is Priority.HIGH


def test_a_waiter_is_woken_by_a_release_on_its_loop_or_from_a_thread():
    pol = base_policy(concurrency={"initial": 1, "min": 1, "max": 1, "critical_reserved": 0})
    adm = Admission(lambda: pol, reader=quiet)

    async def main() -> None:
        held = await adm.acquire(Priority.HIGH, "/x")
        waiting = asyncio.create_task(adm.acquire(Priority.HIGH, "/x"))
        while len(adm.queue) == 0:  # the second request is queued behind the held slot
            await asyncio.sleep(0)
        adm.release(held)  # on the waiter's loop: call_soon, no self-pipe
        second = await asyncio.wait_for(waiting, 5)
        waiting = asyncio.create_task(adm.acquire(Priority.HIGH, "/x"))
        while len(adm.queue) == 0:
            await asyncio.sleep(0)
        t = threading.Thread(target=adm.release, args=(second,))
        t.start()  # from another thread: call_soon_threadsafe
        third = await asyncio.wait_for(waiting, 5)
        t.join(5)
        adm.release(third)

    asyncio.run(main())
    assert adm.throttler.in_flight == 0 and adm.counts["admitted"] == 3


def test_a_finished_wait_leaves_no_cyclic_garbage():
    """Granted, timed out or cancelled: once ``acquire`` is over, its waiter and queue entry
    are freed by reference counting — no cycle left for the collector (under 3x load one per
    queued request was)."""
    import gc

    from autonomous.resilience.admission_queue import Waiter

    pol = base_policy(concurrency={"initial": 1, "min": 1, "max": 1, "critical_reserved": 0},
                      admission={"max_wait_seconds": {"CRITICAL": 5, "HIGH": 5, "MEDIUM": 5,
                                                      "LOW": 0.01}})
    adm = Admission(lambda: pol, reader=quiet)

    async def main() -> None:
        held = await adm.acquire(Priority.HIGH, "/x")
        granted = asyncio.create_task(adm.acquire(Priority.HIGH, "/x"))
        cancelled = asyncio.create_task(adm.acquire(Priority.MEDIUM, "/x"))
        while len(adm.queue) < 2:
            await asyncio.sleep(0)
        with pytest.raises(Exception, match="waited"):  # LOW waits 0.01 s, then is shed
            await adm.acquire(Priority.LOW, "/x")
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        adm.release(held)
        adm.release(await asyncio.wait_for(granted, 5))

    gc.collect()
    gc.disable()
    try:
        asyncio.run(main())
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, Waiter)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert adm.counts["queued"] == 3 and adm.throttler.in_flight == 0
    assert left == []
