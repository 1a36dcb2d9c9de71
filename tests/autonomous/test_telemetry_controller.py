"""The telemetry controller: registers the hub, turns bus events into data, runs its cycle."""

from __future__ import annotations

import asyncio
import logging

from autonomous.testing import make_context
from controllers.manager import ControllerManager
from controllers.registry import controller_classes
from controllers.telemetry import TelemetryController


async def _drain():
    for _ in range(20):
        await asyncio.sleep(0)


async def test_controller_runs_the_hub(tmp_path):
    ctx = make_context(tmp_path)
    assert TelemetryController in controller_classes()
    ctl = TelemetryController(ctx)
    await ctl.start()
    try:
        hub = ctx.subsystems["telemetry"]
        assert set(ctx.jobs.jobs) == {"telemetry.housekeeping", "operator.retention"}
        ctx.bus.publish("service.probe", service="nexus", ok=False, latency_ms=7.5)
        ctx.bus.publish("alert.human", service="robot", reason="restart budget spent",
                        severity="high", source="self_healing", message="robot keeps dying")
        logging.getLogger("atlas.test.ctl").error("controller saw a failure in robot")
        await _drain()
        assert await ctx.jobs.run_due(ctx.clock) == {}  # the first run waits one interval
        ctx.clock.advance(61)
        done = await ctx.jobs.run_due(ctx.clock)
        assert set(done) == {"telemetry.housekeeping", "operator.retention"}
        # service metrics have one writer, the health monitor: a probe event writes none
        assert hub.ts.latest("service.up") == []
        assert hub.ts.latest("events_total", {"topic": "service.probe"})[0][2] == 1.0
        (human,) = [a for a in hub.alerts.active_alerts() if a["source"] == "manual"]
        assert human["severity"] == "critical" and human["labels"]["service"] == "robot"
        assert hub.logs.search_logs("failure robot")[0]["logger"] == "atlas.test.ctl"
        outcomes = await ControllerManager(ctx, [ctl]).reconcile(ctl)
        # the group of the human alert is opened (its notice waits group_wait)
        assert [o.action.params["op"] for o in outcomes] == ["open_group"]
        status = ctx.status.snapshot()["telemetry"]["resources"]
        assert {r["kind"] for r in status} == {"Telemetry", "Dashboard"}
        ctx.bus.publish("alert.resolved", service="robot", source="self_healing",
                        message="back")
        await _drain()
        assert not [a for a in hub.alerts.active_alerts() if a["source"] == "manual"]
    finally:
        await ctl.stop()
        ctx.store.close()
    assert "telemetry" not in ctx.subsystems
    assert not any(type(h).__name__ == "TelemetryLogHandler"
                   for h in logging.getLogger().handlers)
