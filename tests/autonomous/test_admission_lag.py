"""Admission on the measured event-loop lag and a latency target that follows the unloaded
latency: the pure verdicts on given times / lags (deterministic, fake clock), the sampler's
measurement of a really blocked loop, and over real HTTP a loop kept busy sheds LOW with a 429
while CRITICAL is served."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from autonomous.core.clock import FakeClock
from autonomous.core.errors import Throttled
from autonomous.resilience.admission import Admission
from autonomous.resilience.admission_decide import decide
from autonomous.resilience.admission_lag import LagSampler, lag_verdict, shed_fraction
from autonomous.resilience.priority_queue import Priority
from autonomous.resilience.resource_throttler import ResourceThrottler, latency_target_ms
from autonomous.testing import free_port, wait_for
from tests.autonomous.test_admission_split import base_policy, quiet, state

LAG = {"enabled": True, "sample_interval_ms": 20, "smoothing_seconds": 0.25,
       "idle_stop_seconds": 5, "shed_from_ms": {"HIGH": 8, "MEDIUM": 4, "LOW": 2},
       "shed_all_ms": {"HIGH": 40, "MEDIUM": 20, "LOW": 10}}


def test_shed_fraction_is_linear_between_thresholds_and_never_critical():
    assert shed_fraction(LAG, Priority.LOW, 0.002) == 0.0
    assert shed_fraction(LAG, Priority.LOW, 0.006) == pytest.approx(0.5)
    assert shed_fraction(LAG, Priority.LOW, 0.010) == 1.0
    assert shed_fraction(LAG, Priority.MEDIUM, 0.006) == pytest.approx(2 / 16)
    assert shed_fraction(LAG, Priority.HIGH, 0.006) == 0.0
    assert shed_fraction(LAG, Priority.CRITICAL, 10.0) == 0.0
    assert shed_fraction(LAG, None, 10.0) == 0.0
    assert shed_fraction(LAG, Priority.LOW, None) == 0.0
    assert shed_fraction({**LAG, "enabled": False}, Priority.LOW, 1.0) == 0.0


def test_lag_verdict_sheds_exactly_the_fraction_by_error_diffusion():
    credit, shed = 0.0, 0
    for _ in range(100):  # 6 ms on LOW: half of them
        s, credit, f = lag_verdict(LAG, Priority.LOW, 0.006, credit)
        shed += s
        assert f == pytest.approx(0.5)
    assert shed == 50
    credit, shed = 0.0, 0
    for _ in range(100):  # 5 ms on LOW: 3/8 of them
        s, credit, _ = lag_verdict(LAG, Priority.LOW, 0.005, credit)
        shed += s
    assert shed == 37  # floor(100 * 0.375): the credit carried never sheds one too many
    # below the threshold the credit is dropped: a past spike sheds nothing later
    assert lag_verdict(LAG, Priority.LOW, 0.001, 0.9) == (False, 0.0, 0.0)


def test_sampler_smooths_falls_but_counts_a_rise_at_once():
    s = LagSampler(LAG)
    assert s.lag() is None
    assert s.observe(1.0, 1.001) == pytest.approx(0.001)
    assert s.observe(1.02, 1.051) == pytest.approx(0.031)  # a rise counts at once
    after = s.observe(1.3, 1.3)  # 0.249 s later, on time: exp decay with tau 0.25
    assert after == pytest.approx(0.031 * math.exp(-(1.3 - 1.051) / 0.25))
    assert s.peak == pytest.approx(0.031) and s.samples == 3


def test_sampler_reports_an_overdue_tick_and_stops_when_idle():
    s = LagSampler(LAG)
    s._due = 10.0  # a tick due at loop time 10 s that has not run yet
    assert s.lag(10.05) == pytest.approx(0.05)  # at least that late, before it runs
    assert s.lag(9.0) is None


def test_sampler_measures_a_really_blocked_loop():
    s = LagSampler(LAG)

    async def main() -> tuple[float | None, float | None, bool]:
        s.touch()
        await asyncio.sleep(0.05)  # a few idle ticks: small lag
        calm = s.lag(asyncio.get_running_loop().time())
        time.sleep(0.1)  # the loop itself is blocked 100 ms: the pending tick runs late
        busy = s.touch()
        await asyncio.sleep(0.03)  # the late tick runs and is observed
        sampling = s.stats()["sampling"]
        s.stop()
        return calm, busy, sampling

    calm, busy, sampling = asyncio.run(main())
    assert calm is not None and calm < 0.05
    assert busy is not None and busy >= 0.07  # overdue by ~80 ms at the touch
    assert s.peak >= 0.07 and sampling
    assert s.touch() is None  # off a loop: nothing measured


def test_sampler_stops_waking_an_idle_loop():
    s = LagSampler({**LAG, "idle_stop_seconds": 0.05, "sample_interval_ms": 10})

    async def main() -> None:
        s.touch()
        await asyncio.sleep(0)
        for _ in range(200):  # polls a real condition; the sampler stops itself
            if not s.stats()["sampling"]:
                return
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert not s.stats()["sampling"] and s.lag() is None


def test_decide_sheds_on_the_observed_lag_before_rate_or_queue():
    pol, throttler, queue, _ = state()
    adm = pol["admission"]
    d = decide(adm, throttler, queue, (), Priority.LOW, "/x", lag_policy=LAG,
               lag_seconds=0.02, lag_credit=0.0)
    assert d.action == "shed" and "event loop 20.0 ms late" in d.reason
    assert d.retry_after == 1.0
    # the same lag: CRITICAL and HIGH admitted; MEDIUM at 20 ms is all shed
    assert decide(adm, throttler, queue, (), Priority.CRITICAL, "/x", lag_policy=LAG,
                  lag_seconds=0.02).action == "admit"
    d = decide(adm, throttler, queue, (), Priority.HIGH, "/x", lag_policy=LAG,
               lag_seconds=0.02)
    assert d.action == "admit" and d.lag_credit == pytest.approx(12 / 32)
    assert decide(adm, throttler, queue, (), Priority.MEDIUM, "/x", lag_policy=LAG,
                  lag_seconds=0.02).action == "shed"
    assert throttler.in_flight == 0  # nothing taken


def test_admission_carries_the_lag_credit_per_priority():
    pol = base_policy(loop_lag=LAG)
    adm = Admission(lambda: pol, clock=FakeClock(), reader=quiet)
    outcomes = []
    for _ in range(4):  # 6 ms: every second LOW request shed
        try:
            ticket = adm._admit_now(Priority.LOW, "/x", 0.006)
        except Throttled as exc:
            outcomes.append(f"shed: {exc}")
            continue
        assert ticket is not None
        outcomes.append("admit")
        adm.release(ticket)
    assert outcomes[0::2] == ["admit", "admit"]
    assert all(o.startswith("shed: LOW shed: event loop 6.0 ms late") for o in outcomes[1::2])
    assert adm.counts["shed_lag"] == 2 and adm.counts["shed"] == 2
    assert adm.decide(Priority.MEDIUM, "/x", 0.006).action == "admit"  # its own credit


# -- the latency target follows the unloaded latency -------------------------------------
AIMD = {"target_latency_ms": 1000, "baseline_tolerance": 2, "baseline_window_seconds": 10,
        "min_target_ms": 5, "increase": 1, "decrease_factor": 0.5, "interval_seconds": 1,
        "min_samples": 3}


def test_latency_target_is_a_multiple_of_the_baseline_within_bounds():
    assert latency_target_ms(AIMD, None) == 1000
    assert latency_target_ms(AIMD, 0.004) == pytest.approx(8)
    assert latency_target_ms(AIMD, 0.001) == 5  # min_target_ms
    assert latency_target_ms(AIMD, 2.0) == 1000  # the ceiling


def test_limit_shrinks_when_p50_leaves_twice_the_unloaded_p50():
    clock = FakeClock()
    pol = base_policy(aimd=AIMD, concurrency={"initial": 8, "min": 2, "max": 16,
                                              "critical_reserved": 0})
    t = ResourceThrottler(pol, clock=clock, reader=quiet)

    def interval(latency: float, n: int = 3) -> None:
        for _ in range(n):
            assert t.try_acquire()
        clock.advance(1.0)
        for _ in range(n):
            t.release(latency)

    interval(0.004)  # unloaded: p50 4 ms becomes the baseline (target 8 ms)
    assert t.baseline == pytest.approx(0.004) and t.limit == 8
    interval(0.007)  # within 2x: no change (the limit was not reached)
    assert t.limit == 8
    interval(0.050)  # 50 ms: far below the fixed 1000 ms ceiling, but 12x the baseline
    assert t.limit == 4 and t.adjustments[-1]["target_ms"] == pytest.approx(8)
    clock.advance(20.0)  # the baseline ages out of its window: the next interval sets it
    interval(0.050)
    assert t.baseline == pytest.approx(0.050) and t.limit == 4


# -- over real HTTP: a busy loop sheds LOW, serves CRITICAL ------------------------------
@pytest.fixture
def served() -> Iterator[tuple[str, Admission, threading.Event]]:
    import uvicorn
    from fastapi import FastAPI

    from autonomous.resilience.admission import AdmissionMiddleware, routes_match

    pol = base_policy(loop_lag=LAG)
    adm = Admission(lambda: pol, reader=quiet)
    app = FastAPI()
    stop = threading.Event()

    @app.get("/api/evolution/work")
    async def work() -> dict:
        return {"ok": True}

    @app.post("/api/evolution/hog")
    async def hog() -> dict:
        """Keeps the serving loop busy: 30 ms blocked, yield, again, until told to stop."""
        async def burn() -> None:
            while not stop.is_set():
                time.sleep(0.03)
                await asyncio.sleep(0)
        asyncio.get_running_loop().create_task(burn())
        return {"ok": True}

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
        yield f"http://127.0.0.1:{port}", adm, stop
    finally:
        stop.set()
        server.should_exit = True
        t.join(10)
        assert not t.is_alive()


def test_busy_loop_sheds_low_with_429_and_serves_critical(served):
    base, adm, stop = served
    with httpx.Client(base_url=base, trust_env=False, timeout=10) as c:
        assert c.get("/api/evolution/work", headers={"x-atlas-priority": "LOW"}
                     ).status_code == 200  # calm loop: admitted
        assert c.post("/api/evolution/hog",
                      headers={"x-atlas-priority": "CRITICAL"}).status_code == 200
        codes: list[int] = []

        def low_shed() -> bool:
            codes.append(c.get("/api/evolution/work",
                               headers={"x-atlas-priority": "LOW"}).status_code)
            return codes[-1] == 429

        wait_for(low_shed, "a LOW request shed on the measured lag")
        r = c.get("/api/evolution/work", headers={"x-atlas-priority": "CRITICAL"})
        assert r.status_code == 200  # never shed by lag
        assert adm.counts["shed_lag"] >= 1 and adm.stats()["loop_lag"]["peak_ms"] >= 10
        stop.set()

        def low_admitted() -> bool:
            return c.get("/api/evolution/work",
                         headers={"x-atlas-priority": "LOW"}).status_code == 200

        wait_for(low_admitted, "LOW admitted again once the loop is calm")


def test_loop_lag_policy_rejects_thresholds_out_of_order():
    from pydantic import ValidationError

    from autonomous.resources.policy.resilience import LoopLagPolicy

    assert LoopLagPolicy.model_validate(LAG).shed_all_ms.LOW == 10
    bad = {**LAG, "shed_all_ms": {"HIGH": 40, "MEDIUM": 20, "LOW": 2}}
    with pytest.raises(ValidationError, match="shed_all_ms.LOW must be above shed_from_ms.LOW"):
        LoopLagPolicy.model_validate(bad)
    with pytest.raises(ValidationError, match="sample_interval_ms"):
        LoopLagPolicy.model_validate({**LAG, "sample_interval_ms": 0})
