"""The heartbeat client against a real sample-stack process: beats measured and sent to
telemetry, a crash reaches the healing engine, the breaker opens after the policy's threshold
and then keeps the dead service from being hammered."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from autonomous.self_healing.facade import HealingFacade
from autonomous.self_healing.healing_orchestrator import HealingOrchestrator
from autonomous.self_healing.heartbeat import HeartbeatClient
from controllers.healing import HealingController
from autonomous.telemetry.hub import TelemetryHub
from autonomous.testing import free_port, make_context

ROOT = Path(__file__).resolve().parents[2]


def _spawn(log_path: Path, port: int) -> tuple[subprocess.Popen[bytes], Any]:
    log = open(log_path, "wb")  # noqa: SIM115 - closed by the fixture
    argv = [sys.executable, "-m", "autonomous.sample_stack", "--name", "nexus", "--port",
            str(port)]
    return subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log


@pytest.fixture
async def nexus(tmp_path):
    port = free_port()
    proc, log = _spawn(tmp_path / "nexus.log", port)
    try:
        async with httpx.AsyncClient(trust_env=False) as http:
            for _ in range(200):
                assert proc.poll() is None, (tmp_path / "nexus.log").read_text()
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            yield proc, f"http://127.0.0.1:{port}", http
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
async def engine(tmp_path):
    ctx = make_context(tmp_path / "op")
    # the engine's decisions (whether to open an incident, each step) are its controller's
    orch = HealingController(ctx).attach(HealingOrchestrator(ctx))
    hub = TelemetryHub.from_context(ctx)
    ctx.subsystems["healing"] = HealingFacade(orch)
    ctx.subsystems["telemetry"] = hub
    try:
        yield ctx, orch, hub
    finally:
        await orch.stop()
        hub.close()


async def test_heartbeat_ok_then_crash_heals_and_opens_breaker(nexus, engine):
    proc, base, http = nexus
    ctx, orch, hub = engine
    hb = HeartbeatClient(ctx, "nexus", base)
    try:
        ok = await hb.beat()
        assert ok.ok and ok.sent and ok.status_code == 200 and ok.breaker == "CLOSED"
        assert ok.latency_ms is not None and ok.latency_ms > 0
        assert not ok.healing_requested and orch.history.list(service="nexus") == []

        await http.post(f"{base}/fault", json={"kind": "crash"})
        await asyncio.to_thread(proc.wait, 10)
        threshold = ctx.policy()["healing"]["heartbeat_breaker"]["failure_threshold"]
        for i in range(threshold):
            r = await hb.beat()
            assert r.sent and not r.ok and r.latency_ms is None and r.healing_requested
            assert "no answer" in r.message
            row = await hb.last_heal  # the failure went through the healing pipeline
            assert row["service"] == "nexus" and row["source"] == "heartbeat"
            assert r.breaker == ("OPEN" if i == threshold - 1 else "CLOSED")
        assert len(orch.history.list(service="nexus")) == threshold
        remembered = orch.memory.stats()
        assert sum(n for by in remembered.values() for n in by.values()) == threshold

        before = hb.last_heal
        shut = await hb.beat()  # breaker open: not sent, no new heal requested
        assert not shut.sent and not shut.healing_requested and shut.breaker == "OPEN"
        assert hb.last_heal is before
        assert len(orch.history.list(service="nexus")) == threshold

        # after the policy's timeout one trial beat goes out; still dead → open again
        ctx.clock.advance(ctx.policy()["healing"]["heartbeat_breaker"]["timeout_seconds"])
        trial = await hb.beat()
        assert trial.sent and not trial.ok and trial.breaker == "OPEN"
        await hb.last_heal

        oks = hub.metrics.get_metrics("heartbeat_ok", {"service": "nexus"})
        values = [s.value for s in oks[0]["samples"]]
        assert values == [1.0] + [0.0] * (threshold + 1)
        lat = hub.metrics.get_metrics("heartbeat_latency_ms", {"service": "nexus"})
        assert len(lat[0]["samples"]) == 1  # only measured latencies are sent
        names = [b["name"] for b in orch.get_healing_stats()["breakers"]]
        assert "heartbeat:nexus" in names
    finally:
        await hb.close()


async def test_heartbeat_run_stops_and_needs_the_healing_engine(nexus, tmp_path):
    _, base, _ = nexus
    ctx = make_context(tmp_path / "bare")
    hb = HeartbeatClient(ctx, "nexus", base)
    with pytest.raises(LookupError, match="healing subsystem is not running"):
        await hb.beat()
    orch = HealingOrchestrator(ctx)
    ctx.subsystems["healing"] = HealingFacade(orch)
    stop = asyncio.Event()
    stop.set()
    try:
        await asyncio.wait_for(hb.run(stop), 5)  # nothing to do: stopped before the first beat
        assert hb.last is None
        stop.clear()
        task = asyncio.create_task(hb.run(stop))
        while hb.last is None:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)
        assert hb.last.ok
    finally:
        await hb.close()
        await orch.stop()
