"""The services controller's probe loop against a real sample service: the start-up grace only
covers a process that has not answered yet (issue 14.13: a hang seconds after a (re)start was
blind for the whole ``startup_grace_seconds``)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from autonomous.core.clock import SystemClock
from autonomous.testing import copy_default_tree, free_port, make_context
from controllers.manager import ControllerManager
from controllers.services import ServicesController

GRACE, PERIOD, TIMEOUT, THRESHOLD = 30, 0.2, 0.2, 2

SERVICE_YAML = """apiVersion: atlas.autonomous/v1
kind: Service
metadata: {{name: x}}
spec:
  command: ["{{python}}", "-m", "autonomous.sample_stack", "--name", "x", "--port", "{port}"]
  port: {port}
  health: {{path: /health, readiness_path: /ready, period_seconds: %s,
           timeout_seconds: %s, failure_threshold: %s, startup_grace_seconds: %s}}
  restart: {{policy: never}}
  stop_grace_seconds: 2
""" % (PERIOD, TIMEOUT, THRESHOLD, GRACE)


async def _event(sub, topic: str, timeout: float) -> float:
    """Seconds until ``topic`` arrives on ``sub`` (AssertionError after ``timeout``)."""
    t0 = time.monotonic()
    while True:
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            raise AssertionError(f"no {topic} within {timeout:g}s")
        try:
            ev = await asyncio.wait_for(sub.get(), left)
        except TimeoutError:
            continue
        if ev.topic == topic:
            return time.monotonic() - t0


async def test_hang_inside_startup_grace_after_proving_live_fails_liveness(tmp_path: Path) -> None:
    root = copy_default_tree(tmp_path / "root")
    for f in (root / "desired_state").glob("*.yaml"):
        f.unlink()
    (root / "desired_state" / "x.yaml").write_text(SERVICE_YAML.format(port=free_port()))
    ctx = make_context(tmp_path, root=root, clock=SystemClock())
    assert ctx.desired.current is not None, ctx.desired.error
    sub = ctx.bus.subscribe("service.healthy", "service.unhealthy")
    manager = ControllerManager(ctx, [ServicesController(ctx)])
    await manager.start()
    try:
        await _event(sub, "service.healthy", 15)
        obs = ctx.subsystems["services"].observed()["x"]
        started = time.time() - float(obs["started_at"])
        assert started < GRACE / 3, "the hang must fall inside the start-up grace"
        os.kill(obs["pid"], signal.SIGSTOP)
        try:
            took = await _event(sub, "service.unhealthy", 10)
        finally:
            os.kill(obs["pid"], signal.SIGCONT)
        # period × threshold plus one timeout, with slack for a loaded host; not the grace
        assert took <= PERIOD * THRESHOLD + TIMEOUT + 2.0, took
    finally:
        sub.close()
        await manager.stop()
        ctx.store.close()
