"""Priority queue (order, aging, shedding, emergency reorder), throttler (GCRA, gates on a fake
reading, AIMD) and the framework-neutral admission core."""

from __future__ import annotations

import threading

import pytest

from autonomous.core.clock import FakeClock
from autonomous.core.errors import Throttled
from autonomous.resilience.admission import Admission
from autonomous.core.stats import percentiles
from autonomous.resilience.priority_queue import Priority, PriorityQueue
from autonomous.resilience.resource_throttler import Gcra, ResourceReading, ResourceThrottler
from autonomous.testing import default_root


def base_policy() -> dict:
    from autonomous.resources.loader import load_tree

    return load_tree(default_root()).tree.policies["governed"]["resilience"]


def policy(**over: dict) -> dict:
    p = base_policy()
    for section, values in over.items():
        p[section] = {**p[section], **values}
    return p


class Reading:
    """A resource reading the test sets by hand."""

    def __init__(self, cpu: float | None = 10.0, ram: float | None = 10.0,
                 gpu: float | None = None) -> None:
        self.cpu, self.ram, self.gpu = cpu, ram, gpu

    def __call__(self) -> ResourceReading:
        return ResourceReading(self.cpu, self.ram, self.gpu,
                               {} if self.gpu is not None else {"gpu_percent": "no GPU"})


def make_queue(depth: int = 10, aging: float = 5.0) -> tuple[PriorityQueue, FakeClock]:
    clock = FakeClock()
    return PriorityQueue(max_depth=depth, aging_seconds=aging, clock=clock), clock


# -- queue -------------------------------------------------------------------------------------
def test_dequeue_order_is_priority_then_fifo():
    q, _ = make_queue()
    for value, prio in [("l1", "LOW"), ("m1", "MEDIUM"), ("c1", "CRITICAL"), ("h1", "HIGH"),
                        ("c2", "CRITICAL"), ("m2", "MEDIUM")]:
        assert q.enqueue(value, prio).accepted
    assert [q.dequeue_nowait().value for _ in range(6)] == ["c1", "c2", "h1", "m1", "m2", "l1"]
    assert q.dequeue_nowait() is None


def test_aging_lets_low_overtake_fresh_high_items():
    q, clock = make_queue(aging=5.0)
    q.enqueue("old-low", Priority.LOW)
    clock.advance(10.0)  # two aging steps: LOW (3) behaves as HIGH (1)
    q.enqueue("new-high", Priority.HIGH)
    q.enqueue("new-medium", Priority.MEDIUM)
    assert q.effective_priority(q._levels[Priority.LOW][0]) == 1
    assert [q.dequeue_nowait().value for _ in range(3)] == ["old-low", "new-high", "new-medium"]


def test_aging_never_starves_low_under_steady_high_load():
    q, clock = make_queue(depth=100, aging=1.0)
    q.enqueue("low", Priority.LOW)
    served = []
    for i in range(10):
        q.enqueue(f"h{i}", Priority.HIGH)
        q.enqueue(f"h{i}b", Priority.HIGH)
        clock.advance(1.0)
        served.append(q.dequeue_nowait().value)
    assert "low" in served and served.index("low") <= 2


def test_aging_never_lifts_an_item_into_critical():
    q, clock = make_queue(aging=1.0)
    q.enqueue("old-high", Priority.HIGH)
    clock.advance(100.0)
    q.enqueue("fresh-critical", Priority.CRITICAL)
    assert q.dequeue_nowait().value == "fresh-critical"


def test_full_queue_sheds_lowest_priority_newest_first():
    q, _ = make_queue(depth=3)
    q.enqueue("low-a", "LOW")
    q.enqueue("low-b", "LOW")
    q.enqueue("med", "MEDIUM")
    r = q.enqueue("high", "HIGH")
    assert r.accepted and [i.value for i in r.shed] == ["low-b"]
    r = q.enqueue("crit", "CRITICAL")
    assert [i.value for i in r.shed] == ["low-a"]
    r = q.enqueue("high2", "HIGH")
    assert [i.value for i in r.shed] == ["med"]
    r = q.enqueue("low-late", "LOW")  # nothing below LOW: the newcomer is shed
    assert not r.accepted and r.shed[0].value == "low-late"
    stats = q.get_queue_stats()
    assert stats["levels"]["LOW"]["shed"] == 3 and stats["levels"]["MEDIUM"]["shed"] == 1
    assert stats["levels"]["CRITICAL"]["shed"] == 0


def test_reorder_on_emergency_promotes_critical_tags_and_drops_disabled():
    q, _ = make_queue()
    q.enqueue("heal", "LOW", tags=["heal"])
    q.enqueue("learn", "MEDIUM", tags=["learning"])
    q.enqueue("other", "HIGH")
    res = q.reorder_on_emergency(critical_tags=["heal"], disabled_tags=["learning"])
    assert res["promoted"] == 1 and [i.value for i in res["dropped"]] == ["learn"]
    assert "survival" in res["dropped"][0].shed_reason
    assert [q.dequeue_nowait().value for _ in range(2)] == ["heal", "other"]


def test_queue_stats_report_wait_percentiles_per_level():
    q, clock = make_queue()
    for i in range(4):
        q.enqueue(i, "HIGH")
    clock.advance(2.0)
    for _ in range(4):
        q.dequeue_nowait()
    s = q.get_queue_stats()["levels"]["HIGH"]
    assert s["wait_seconds"] == {"p50": 2.0, "p90": 2.0, "p99": 2.0}
    assert percentiles([1, 2, 3, 4], (50, 100)) == {"p50": 2.5, "p100": 4}
    assert percentiles([], (50,)) == {"p50": None}


async def test_async_dequeue_waits_for_an_item():
    import asyncio

    q, _ = make_queue()
    task = asyncio.create_task(q.dequeue(timeout=2))
    await asyncio.sleep(0)
    q.enqueue("x", "LOW")
    item = await task
    assert item.value == "x"
    assert await q.dequeue(timeout=0.01) is None


def test_priority_parse_names_the_allowed_values():
    assert Priority.parse("high") is Priority.HIGH
    with pytest.raises(ValueError, match="allowed: CRITICAL, HIGH, MEDIUM, LOW"):
        Priority.parse("urgent")


# -- throttler ---------------------------------------------------------------------------------
def test_gcra_gives_exact_retry_after():
    g = Gcra(rate=10.0, burst=2)  # one every 0.1 s, two back to back
    assert g.check(0.0) == 0.0 and g.check(0.0) == 0.0
    assert g.check(0.0) == pytest.approx(0.1)
    assert g.check(0.05) == pytest.approx(0.05)
    assert g.check(0.1) == 0.0


def test_rate_limit_throttles_per_priority():
    clock = FakeClock()
    t = ResourceThrottler(policy(rate_limits={"LOW": {"per_second": 1, "burst": 1}}),
                          clock=clock, reader=Reading())
    assert not t.should_throttle(Priority.LOW).throttle
    d = t.should_throttle(Priority.LOW)
    assert d.throttle and d.kind == "rate" and d.retry_after == pytest.approx(1.0)
    assert not t.should_throttle(Priority.HIGH).throttle  # its own bucket
    clock.advance(1.0)
    assert not t.should_throttle(Priority.LOW).throttle


def test_gates_react_to_the_resource_reading_and_spare_critical():
    clock, reading = FakeClock(), Reading(cpu=50)
    t = ResourceThrottler(policy(gates={"smoothing_seconds": 0}), clock=clock, reader=reading)
    assert not t.should_throttle(Priority.LOW).throttle
    reading.cpu = 96.0  # LOW gate 95, MEDIUM 98
    assert not t.should_throttle(Priority.LOW).throttle  # reading refreshed once per interval
    clock.advance(1.0)
    d = t.should_throttle(Priority.LOW)
    assert d.throttle and d.kind == "cpu_percent" and "96.0 >= 95" in d.reason
    assert not t.should_throttle(Priority.MEDIUM).throttle
    reading.ram = 99.0
    clock.advance(1.0)
    assert t.should_throttle(Priority.HIGH).kind == "ram_percent"
    assert not t.should_throttle(Priority.CRITICAL).throttle


def test_gate_smoothing_ignores_a_single_spike():
    clock, reading = FakeClock(), Reading(cpu=20)
    t = ResourceThrottler(policy(), clock=clock, reader=reading)  # smoothing 10 s
    t.reading()
    reading.cpu = 100.0
    clock.advance(1.0)
    assert t.reading()["cpu_percent"] < 40
    assert not t.should_throttle(Priority.LOW).throttle


async def test_wait_for_resources_returns_when_the_gate_clears():
    import asyncio

    clock, reading = FakeClock(), Reading(cpu=99)
    t = ResourceThrottler(policy(gates={"smoothing_seconds": 0}), clock=clock, reader=reading)
    task = asyncio.create_task(t.wait_for_resources(Priority.LOW, timeout=10))
    await asyncio.sleep(0)
    reading.cpu = 10
    clock.advance(1.0)
    assert await task is True
    reading.cpu = 99
    clock.advance(1.0)
    task = asyncio.create_task(t.wait_for_resources(Priority.LOW, timeout=2))
    for _ in range(3):
        await asyncio.sleep(0)
        clock.advance(1.0)
    assert await task is False


def test_aimd_shrinks_on_latency_and_grows_when_healthy():
    clock = FakeClock()
    pol = policy(concurrency={"initial": 10, "min": 2, "max": 12},
                 aimd={"target_latency_ms": 100, "min_samples": 3, "interval_seconds": 1,
                       "decrease_factor": 0.5, "increase": 1})
    t = ResourceThrottler(pol, clock=clock, reader=Reading())
    for _ in range(3):
        t.try_acquire()
    clock.advance(1.0)
    for _ in range(3):
        t.release(0.5)  # 500 ms > 100 ms target
    assert t.limit == 5 and t.adjustments[-1]["reason"].startswith("p50 500.0 ms")
    for _ in range(5):
        assert t.try_acquire()
    assert not t.try_acquire()  # limit reached: demand exists
    clock.advance(1.0)
    for _ in range(5):
        t.release(0.01)
    assert t.limit == 6


def test_aimd_shrinks_on_resource_pressure_and_respects_min():
    clock, reading = FakeClock(), Reading(cpu=99)
    pol = policy(concurrency={"initial": 3, "min": 2, "max": 12},
                 aimd={"min_samples": 1, "decrease_factor": 0.5},
                 gates={"smoothing_seconds": 0})
    t = ResourceThrottler(pol, clock=clock, reader=reading)
    for _ in range(2):
        t.try_acquire()
        clock.advance(1.0)
        t.release(0.001)
    assert t.limit == 2


# -- admission core ----------------------------------------------------------------------------
def make_admission(**over: dict) -> tuple[Admission, FakeClock, Reading]:
    clock, reading = FakeClock(), Reading()
    pol = policy(**over)
    return Admission(lambda: pol, clock=clock, reader=reading), clock, reading


def test_classify_uses_header_then_route_map_and_never_sheds_probes():
    adm, _, _ = make_admission()
    assert adm.classify("/healthz") is None
    assert adm.classify("/api/health/comprehensive") is None
    assert adm.classify("/api/approvals/abc/approve") is None
    assert adm.classify("/api/resilience/survival/enter") is None
    assert adm.classify("/api/evolution/rollback", {}, "POST") is None  # the abort button
    assert adm.classify("/api/evolution/update", {}, "POST") is Priority.LOW
    assert adm.classify("/api/healing/trigger") is Priority.HIGH
    assert adm.classify("/api/learning/insights") is Priority.LOW
    assert adm.classify("/somewhere") is Priority.MEDIUM
    assert adm.classify("/api/learning/x", {"x-atlas-priority": "critical"}) is Priority.CRITICAL
    assert adm.classify("/api/learning/x", {"x-atlas-priority": "bogus"}) is Priority.LOW


def test_decide_admits_then_queues_then_sheds_when_full():
    adm, _, _ = make_admission(concurrency={"initial": 1, "min": 1, "max": 4},
                               queue={"max_depth": 1})
    assert adm.decide(Priority.LOW, "/x").action == "admit"
    t = adm.acquire_blocking(Priority.LOW, "/x")
    assert adm.decide(Priority.LOW, "/x").action == "queue"
    waiter = threading.Thread(target=lambda: _swallow(adm, Priority.LOW))
    waiter.start()
    _until(lambda: len(adm.queue) == 1)
    d = adm.decide(Priority.LOW, "/x")
    assert d.action == "shed" and d.retry_after == 1.0 and d.reason == "queue full"
    assert adm.decide(Priority.HIGH, "/x").action == "queue"  # would shed the LOW waiter
    adm.release(t)
    waiter.join(5)
    assert adm.counts["admitted"] == 2


def test_blocking_acquire_sheds_after_max_wait_with_retry_after():
    adm, _, _ = make_admission(concurrency={"initial": 1, "min": 1, "max": 4},
                               admission={"max_wait_seconds": {"CRITICAL": 5, "HIGH": 3,
                                                               "MEDIUM": 2, "LOW": 0.05}})
    held = adm.acquire_blocking(Priority.HIGH, "/x")
    with pytest.raises(Throttled, match="waited 0.05 s in queue") as exc:
        adm.acquire_blocking(Priority.LOW, "/x")
    assert exc.value.retry_after == 1.0
    assert adm.queue.get_queue_stats()["levels"]["LOW"]["shed"] == 1
    adm.release(held)


def test_guard_sheds_rate_limited_requests_for_threaded_servers():
    adm, _, _ = make_admission(rate_limits={"LOW": {"per_second": 2, "burst": 1}})
    with adm.guard("/api/learning/x"):
        pass
    with pytest.raises(Throttled, match="LOW rate limit 2/s") as exc, \
            adm.guard("/api/learning/x"):
        pass
    assert exc.value.retry_after == pytest.approx(0.5)
    with adm.guard("/healthz"):  # never shed
        pass
    assert adm.counts == {"admitted": 1, "queued": 0, "shed": 1, "bypassed": 1,
                          "shed_lag": 0}


def test_survival_prefixes_shed_new_and_waiting_requests():
    adm, _, _ = make_admission(concurrency={"initial": 1, "min": 1, "max": 4})
    held = adm.acquire_blocking(Priority.HIGH, "/x")
    errors: list[Exception] = []
    waiter = threading.Thread(target=lambda: _swallow(adm, Priority.LOW, "/api/learning/a",
                                                      errors))
    waiter.start()
    _until(lambda: len(adm.queue) == 1)
    assert adm.reorder_on_emergency(disabled_prefixes=("/api/learning/",))["dropped"] == 1
    waiter.join(5)
    assert "disabled in survival" in str(errors[0])
    assert adm.decide(Priority.CRITICAL, "/api/learning/b").action == "shed"
    adm.reorder_on_emergency()
    assert adm.decide(Priority.CRITICAL, "/api/learning/b").action == "queue"
    adm.release(held)


def test_reserved_slots_go_only_to_critical():
    adm, _, _ = make_admission(concurrency={"initial": 3, "min": 1, "max": 3,
                                            "critical_reserved": 2})
    t = adm.throttler
    assert (t.cap(Priority.LOW), t.cap(Priority.HIGH), t.cap(Priority.CRITICAL)) == (1, 1, 3)
    held = adm.acquire_blocking(Priority.HIGH, "/x")  # the one shared slot
    assert adm.decide(Priority.LOW, "/x").action == "queue"
    waiter = threading.Thread(target=lambda: _swallow(adm, Priority.LOW))
    waiter.start()
    _until(lambda: len(adm.queue) == 1)
    # CRITICAL does not queue behind the LOW waiter: it takes a reserved slot at once
    assert adm.decide(Priority.CRITICAL, "/x").action == "admit"
    crit = adm.acquire_blocking(Priority.CRITICAL, "/x")
    adm.release(crit)  # a reserved slot frees: the LOW waiter must not get it
    assert len(adm.queue) == 1 and t.in_flight == 1
    adm.release(held)  # the shared slot frees: now it does
    waiter.join(5)
    assert not waiter.is_alive() and len(adm.queue) == 0 and t.in_flight == 0
    # CRITICAL in flight does not eat into the others' share: LOW is still admitted at once
    crit = adm.acquire_blocking(Priority.CRITICAL, "/x")
    assert adm.decide(Priority.LOW, "/x").action == "admit"
    low = adm.acquire_blocking(Priority.LOW, "/x")
    stats = t.get_stats()["concurrency"]
    assert stats["critical_reserved"] == 2 and stats["critical_in_flight"] == 1
    assert stats["in_flight"] == 2
    adm.release(crit)
    adm.release(low)
    assert (t.in_flight, t.critical_in_flight) == (0, 0)


def _swallow(adm: Admission, prio: Priority, path: str = "/x",
             errors: list[Exception] | None = None) -> None:
    try:
        adm.release(adm.acquire_blocking(prio, path))
    except Throttled as exc:
        if errors is not None:
            errors.append(exc)


def _until(check, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.005)
