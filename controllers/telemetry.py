"""The telemetry controller: runs the telemetry hub.

start: builds the :class:`~autonomous.telemetry.hub.TelemetryHub`, installs the log handler,
registers ``ctx.subsystems["telemetry"]``, and starts two tasks: the event pump (every bus
event becomes metrics / alert input) and the notification dispatcher (delivers the alert
outbox, retrying with backoff, never blocking the reconcile loop).
observe: one hub cycle — tail service logs, flush, roll up closed buckets, apply retention,
evaluate alert rules — then the operator's own retention (``retention`` policy: graph,
health, approvals, generations; :mod:`autonomous.learning.retention`). All bookkeeping on
the operator's own store; notifications are the only outside effect and go through the
outbox.
diff (pure): nothing to change in the world: telemetry plans no governed actions.
report: a ``Telemetry/hub`` status with the cycle's figures, one per ``Dashboard``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from autonomous.core.conditions import HealthStatus, SyncStatus
from autonomous.learning.retention import Retention
from autonomous.telemetry.hub import TelemetryHub
from controllers.base import Action, Controller, Outcome

__all__ = ["CONTROLLERS", "TelemetryController"]

log = logging.getLogger("atlas.controllers.telemetry")


class TelemetryController(Controller):
    name = "telemetry"
    subsystem = "telemetry"
    order = 30
    watches: tuple[str, ...] = ()

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.hub: TelemetryHub | None = None
        self._cycled = False
        self._tasks: list[asyncio.Task[None]] = []
        self.retention = Retention(ctx.store, ctx.graph, ctx.clock, ctx.policy,
                                   self._generation)

    def _generation(self) -> int | None:
        gen = self.ctx.desired.current
        return None if gen is None else int(gen.number)

    async def start(self) -> None:
        hub = TelemetryHub.from_context(self.ctx)
        hub.logs.install(level=hub.settings.logs.level)
        self.hub = hub
        self.ctx.subsystems["telemetry"] = hub
        sub = self.ctx.bus.subscribe("")
        self._sub = sub
        self._tasks = [asyncio.create_task(self._pump(hub, sub), name="telemetry-events"),
                       asyncio.create_task(self._dispatcher(hub), name="telemetry-notify")]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        if getattr(self, "_sub", None) is not None:
            self._sub.close()
        if self.hub is not None:
            self.hub.close()
            if self.ctx.subsystems.get("telemetry") is self.hub:
                del self.ctx.subsystems["telemetry"]

    async def _pump(self, hub: TelemetryHub, sub: Any) -> None:
        while True:
            event = await sub.get()
            try:
                hub.record_event(event.topic, dict(event.data))
            except Exception:
                log.exception("telemetry could not record event %s", event.topic)

    async def _dispatcher(self, hub: TelemetryHub) -> None:
        while True:
            try:
                await hub.alerts.dispatch()
            except Exception:
                log.exception("alert dispatch failed")
            due = hub.alerts.next_due()
            wait = 1.0 if due is None else max(0.05, min(1.0, due - self.ctx.clock.now()))
            await self.ctx.clock.sleep(wait)

    async def observe(self) -> dict[str, Any]:
        if self.hub is None:
            return {}
        if not self._cycled:
            # the first pass comes right at start-up, when there is nothing to roll up yet:
            # leave the store to the services being started; the next interval does the work
            self._cycled = True
            return dict(self.hub.last_cycle or {})
        return await asyncio.to_thread(self._cycle, self.hub)

    def _cycle(self, hub: TelemetryHub) -> dict[str, Any]:
        summary = dict(hub.cycle())
        pruned = self.retention.maybe_run()
        if pruned is not None:
            summary["operator_retention"] = pruned
        return summary

    @staticmethod
    def diff(desired: Any, observed: Any) -> tuple[Action, ...]:
        """Telemetry plans no governed actions: its work is bookkeeping done in observe."""
        return ()

    async def act(self, action: Action) -> Outcome:
        return Outcome(action, False, f"telemetry has no action {action.kind!r}", permanent=True)

    def report(self, desired: Any, observed: Any, outcomes: list[Outcome]) -> None:
        now = self.ctx.clock.now()
        st = self.ctx.status.resource(self.name, "Telemetry", "hub")
        st.sync, st.health = SyncStatus.SYNCED, HealthStatus.HEALTHY
        st.details = dict(observed or {})
        st.set_condition("Collecting", True, "CycleDone", "rollups, retention and rules ran", now)
        gen = self.ctx.desired.current
        for r in gen.tree.of_kind("Dashboard") if gen is not None else []:
            d = self.ctx.status.resource(self.name, "Dashboard", r.name)
            d.sync, d.health = SyncStatus.SYNCED, HealthStatus.HEALTHY
            d.observed_generation = gen.number if gen is not None else None


CONTROLLERS = [TelemetryController]
