"""The probe loop of one supervised service.

Until the first passing probe after a start it probes quickly (every 50 ms, bounded by the
period) so that readiness — and with it dependants' start-up — is seen at once; after that it
probes every ``health.period_seconds`` at a fixed rate on the one tick grid (``tick_delay``:
every service with the same period is probed in the same wake-up; a probe that times out does
not push the next one back; readiness is probed right after a passing liveness probe, in the
same wake-up, and not while liveness fails), so a hung service fails liveness
within ``period × failure_threshold`` (+ one timeout), also inside ``startup_grace_seconds``
once it passed a probe since its start (the grace only covers a process not yet answering).
Transitions are published as events; proven health for ``supervision.healthy_reset_seconds``
resets the crash back-off and marks the revision good.
"""

from __future__ import annotations

import asyncio
from typing import Any

from autonomous.core.clock import tick_delay
from autonomous.supervisor.probes import ProbeResult, http_probe
from autonomous.supervisor.runtime import ServiceRuntime

__all__ = ["probe_loop"]

_FAST = 0.05


async def probe_loop(ctl: Any, d: Any, rt: ServiceRuntime, pid: int) -> None:
    ctx = ctl.ctx
    spec = d.spec
    health = spec.health
    if health is None or spec.port is None:
        # nothing to probe: running counts as live and ready
        rt.probe.live = rt.probe.ready = True
        rt.healthy_event.set()
        rt.ready_event.set()
        ctx.bus.publish("service.ready", service=d.name, pid=pid)
        return
    base = f"http://{spec.host}:{spec.port}"
    ready_path = health.readiness_path or health.path
    try:
        while True:
            now_m = ctx.clock.monotonic()
            # start-up grace covers a process that has not answered yet; once it proved live
            # (live True, or False after failing) liveness counts at once (Kubernetes'
            # startupProbe semantics), so a hang seconds after a restart is seen in
            # period × threshold, not after the grace
            starting = (rt.started_mono is not None and
                        now_m - rt.started_mono < health.startup_grace_seconds)
            in_grace = starting and rt.probe.live is None
            res = await http_probe(ctl.client(), base + health.path, health.timeout_seconds,
                                   ctx.clock.now())
            _liveness(ctl, d, rt, res, in_grace, pid)
            if ready_path != health.path and res.ok:
                res_ready = await http_probe(ctl.client(), base + ready_path,
                                             health.timeout_seconds, ctx.clock.now())
            else:  # same path, or not live: not ready either (no second timeout to wait)
                res_ready = res
            _readiness(ctl, d, rt, res_ready, pid)
            fast = rt.probe.ready is not True and starting
            # fixed rate on the grid: a slow (timed-out) probe does not push the next one back
            await ctx.clock.sleep(tick_delay(ctx.clock, min(_FAST, health.period_seconds)
                                             if fast else health.period_seconds))
    except asyncio.CancelledError:
        pass


def _liveness(ctl: Any, d: Any, rt: ServiceRuntime, res: ProbeResult, in_grace: bool,
              pid: int) -> None:
    ctx = ctl.ctx
    transition = rt.probe.record_liveness(res, in_grace=in_grace)
    ctx.bus.publish("service.probe", service=d.name, pid=pid, **res.as_dict())
    now_m = ctx.clock.monotonic()
    if transition == "healthy":
        rt.healthy_since = now_m
        rt.healthy_event.set()
        ctx.bus.publish("service.healthy", service=d.name, pid=pid)
    elif transition == "unhealthy":
        rt.healthy_since = None
        rt.healthy_event.clear()
        ctx.bus.publish("service.unhealthy", service=d.name, pid=pid, error=res.error,
                        consecutive_failures=rt.probe.consecutive_failures)
    if rt.probe.live and rt.healthy_since is not None:
        reset_after = ctx.policy()["supervision"]["healthy_reset_seconds"]
        if now_m - rt.healthy_since >= reset_after:
            if rt.backoff.failures:
                rt.backoff.record_success()
            ctl.revisions.mark_good(d.name, d.hash)


def _readiness(ctl: Any, d: Any, rt: ServiceRuntime, res: ProbeResult, pid: int) -> None:
    transition = rt.probe.record_readiness(res)
    if transition == "ready":
        rt.ready_event.set()
        ctl.ctx.bus.publish("service.ready", service=d.name, pid=pid)
    elif transition == "not_ready":
        rt.ready_event.clear()
        ctl.ctx.bus.publish("service.not_ready", service=d.name, pid=pid, error=res.error)
