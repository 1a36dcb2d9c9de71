"""Circuit breaker: state machine, rate window, slow calls, decorator, listeners, threads,
persistence through the registry."""

from __future__ import annotations

import asyncio
import threading

import pytest

import autonomous.self_healing.circuit_breaker as cb_mod
from autonomous.core.clock import FakeClock
from autonomous.core.events import EventBus
from autonomous.self_healing.breakers import BreakerRegistry
from autonomous.self_healing.circuit_breaker import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    circuit_breaker,
)


def boom() -> None:
    raise ValueError("boom")


def _fail(b: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(ValueError, match="boom"):
            b.call(boom)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(clock: FakeClock, **kw) -> CircuitBreaker:
    params = {"failure_threshold": 3, "timeout": 10, "success_threshold": 2, **kw}
    return CircuitBreaker("t", clock=clock, **params)


def test_public_surface():
    assert set(cb_mod.__all__) == {"CircuitState", "CircuitOpenError", "CircuitBreaker",
                                   "circuit_breaker", "Listener"}


def test_opens_after_consecutive_failures_and_refuses(clock):
    b = make(clock)
    _fail(b, 2)
    assert b.get_state() is CircuitState.CLOSED
    _fail(b, 1)
    assert b.get_state() is CircuitState.OPEN
    with pytest.raises(CircuitOpenError, match="'t' is OPEN") as exc:
        b.call(lambda: 1)
    assert exc.value.retry_after == pytest.approx(10)


def test_success_resets_the_streak(clock):
    b = make(clock)
    _fail(b, 2)
    assert b.call(lambda: 7) == 7
    _fail(b, 2)
    assert b.get_state() is CircuitState.CLOSED


def test_half_open_after_timeout_then_closes_after_successes(clock):
    b = make(clock)
    _fail(b, 3)
    clock.advance(9.9)
    assert b.get_state() is CircuitState.OPEN
    clock.advance(0.1)
    assert b.get_state() is CircuitState.HALF_OPEN
    b.call(lambda: 1)
    assert b.get_state() is CircuitState.HALF_OPEN
    b.call(lambda: 1)
    assert b.get_state() is CircuitState.CLOSED


def test_half_open_failure_reopens_with_a_fresh_timeout(clock):
    b = make(clock)
    _fail(b, 3)
    clock.advance(10)
    _fail(b, 1)
    assert b.get_state() is CircuitState.OPEN
    clock.advance(9)
    assert b.get_state() is CircuitState.OPEN
    assert b.opened_count == 2


def test_failure_rate_window_opens_without_a_streak(clock):
    b = make(clock, failure_threshold=100, failure_rate=0.5, window_calls=6, min_calls=6)
    for _ in range(3):
        b.call(lambda: 1)
        _fail(b, 1)
    assert b.get_state() is CircuitState.OPEN


def test_failure_rate_needs_min_calls(clock):
    b = make(clock, failure_threshold=100, failure_rate=0.5, window_calls=10, min_calls=5)
    _fail(b, 4)
    assert b.get_state() is CircuitState.CLOSED


def test_slow_calls_count_as_failures(clock):
    b = make(clock, failure_threshold=2, slow_call_seconds=0.5)

    def slow() -> int:
        clock.advance(0.6)
        return 1

    assert b.call(slow) == 1
    assert b.call(slow) == 1
    assert b.get_state() is CircuitState.OPEN


def test_excluded_exceptions_do_not_count(clock):
    b = make(clock, failure_threshold=1, exclude=(KeyError,))

    def missing() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        b.call(missing)
    assert b.get_state() is CircuitState.CLOSED


def test_reset_and_force_open(clock):
    b = make(clock)
    b.force_open()
    assert b.get_state() is CircuitState.OPEN
    b.reset()
    assert b.get_state() is CircuitState.CLOSED
    assert b.call(lambda: 2) == 2


def test_listeners_see_every_transition(clock):
    seen = []
    b = make(clock, listeners=(lambda br, old, new: seen.append((old.value, new.value)),))
    _fail(b, 3)
    clock.advance(10)
    b.call(lambda: 1)
    b.call(lambda: 1)
    assert seen == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]


def test_decorator_sync(clock):
    @circuit_breaker(failure_threshold=1, timeout=5, clock=clock)
    def f(x: int) -> int:
        if x < 0:
            raise ValueError("boom")
        return x * 2

    assert f(2) == 4
    with pytest.raises(ValueError):
        f(-1)
    with pytest.raises(CircuitOpenError):
        f(2)
    assert f.breaker.get_state() is CircuitState.OPEN


async def test_decorator_async_and_breaker_as_decorator(clock):
    b = make(clock, failure_threshold=1)

    @b
    async def g(ok: bool) -> str:
        await asyncio.sleep(0)
        if not ok:
            raise ValueError("boom")
        return "ok"

    assert await g(True) == "ok"
    with pytest.raises(ValueError):
        await g(False)
    with pytest.raises(CircuitOpenError):
        await g(True)


async def test_half_open_admits_only_success_threshold_trials(clock):
    b = make(clock, success_threshold=2)
    _fail(b, 3)
    clock.advance(10)
    gate = asyncio.Event()

    async def held() -> int:
        await gate.wait()
        return 1

    t1 = asyncio.create_task(b.call_async(held))
    t2 = asyncio.create_task(b.call_async(held))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError, match="HALF_OPEN"):
        await b.call_async(held)
    gate.set()
    assert await asyncio.gather(t1, t2) == [1, 1]
    assert b.get_state() is CircuitState.CLOSED


def test_threads_open_it_exactly_once(clock):
    b = make(clock, failure_threshold=50)
    opened = []
    b.add_listener(lambda br, old, new: opened.append(new))

    def worker() -> None:
        for _ in range(200):
            try:
                b.call(boom)
            except (ValueError, CircuitOpenError):
                pass

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert opened == [CircuitState.OPEN]
    assert b.opened_count == 1


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("x", failure_threshold=0, timeout=1)
    with pytest.raises(ValueError, match="window_calls"):
        CircuitBreaker("x", failure_threshold=1, timeout=1, failure_rate=0.5)


def test_registry_persists_open_state(ctx):
    policy = lambda: ctx.policy()["healing"]
    reg = BreakerRegistry(ctx.store, EventBus(), ctx.clock, policy)
    b = reg.heal("nexus")
    b.force_open()
    ctx.clock.advance(30)
    again = BreakerRegistry(ctx.store, EventBus(), ctx.clock, policy).heal("nexus")
    assert again.get_state() is CircuitState.OPEN
    timeout = policy()["breaker"]["timeout_seconds"]
    assert again.snapshot()["retry_after"] == pytest.approx(timeout - 30)
    ctx.clock.advance(timeout)
    assert again.get_state() is CircuitState.HALF_OPEN


def test_registry_publishes_changes(ctx):
    bus = EventBus()
    sub = bus.subscribe("healing.breaker")
    reg = BreakerRegistry(ctx.store, bus, ctx.clock, lambda: ctx.policy()["healing"])
    reg.service("robot").force_open()
    ev = sub.get_nowait()
    assert ev is not None and ev.data["name"] == "svc:robot" and ev.data["new"] == "OPEN"
