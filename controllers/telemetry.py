"""The telemetry controller: alerting decided in a pure diff, carried out through the Executor.

start: builds the :class:`~autonomous.telemetry.hub.TelemetryHub`, installs the log handler,
registers ``ctx.subsystems["telemetry"]``, starts the event pump (bus events become metrics /
alert input) and the notification dispatcher (delivers the alert outbox, retrying with
backoff, never blocking the reconcile loop), and registers two scheduled jobs
(:mod:`autonomous.core.jobs`) for the housekeeping that decides nothing: telemetry's
(``telemetry.housekeeping``: log tail, flushes, rollups, every controller interval) and
retention (``operator.retention``: telemetry's by ``telemetry.retention``, and the operator's
own tables — graph, health, approvals, generations; :mod:`autonomous.learning.retention` —
every ``retention.interval_seconds``, and at once under disk pressure).
observe: one :class:`~autonomous.telemetry.alert_plan.AlertView` — rule conditions, open
episodes, flaps, silences, groups, every service's health figures and the time.
diff (pure): :func:`~autonomous.telemetry.alert_plan.plan` — open / fire / close / resolve
(a human alert whose service recovered by any path) / steady episodes (kind ``alert``) and
open-group / send (notify, escalate) / forget-group notices (kind ``notify``), each with its
evidence. act: the alert manager applies the one step.
report: a ``Telemetry/hub`` status, open episodes' values, one status per ``Dashboard``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from autonomous.core.conditions import HealthStatus, SyncStatus
from autonomous.core.clock import tick_delay
from autonomous.core.jobs import Job
from autonomous.learning.retention import Retention
from autonomous.store.timeseries import TimeSeriesStore
from autonomous.telemetry.alert_manager import AlertManager
from autonomous.telemetry.alert_plan import AlertView, plan
from autonomous.telemetry.hub import TelemetryHub
from controllers.base import Action, Controller, Outcome

if TYPE_CHECKING:
    from autonomous.context import OperatorContext

__all__ = ["CONTROLLERS", "TelemetryController", "to_actions"]

log = logging.getLogger("atlas.controllers.telemetry")
JOBS = ("telemetry.housekeeping", "operator.retention")


def to_actions(desired: dict[str, Any], view: AlertView) -> tuple[Action, ...]:
    """Pure: the alerting plan as governed actions."""
    return tuple(Action(s.kind, s.resource, s.reason, {"op": s.op, **s.params}, s.evidence)
                 for s in plan(desired["alerting"], view))


class TelemetryController(Controller):
    name = "telemetry"
    subsystem = "telemetry"
    order = 30
    watches: tuple[str, ...] = ()

    def __init__(self, ctx: OperatorContext) -> None:
        super().__init__(ctx)
        self.hub: TelemetryHub | None = None
        self._offline: AlertManager | None = None
        self._changed = False  # an episode changed in this pass (see requeue_after)
        self._tasks: list[asyncio.Task[None]] = []
        self.retention = Retention(ctx.store, ctx.graph, ctx.clock, ctx.policy,
                                   self._generation)

    def _generation(self) -> int | None:
        gen = self.ctx.desired.current
        return None if gen is None else int(gen.number)

    def _interval(self) -> float:
        gen = self.ctx.desired.current
        s = gen.tree.config.controllers.get(self.subsystem) if gen else None
        return float(s.interval_seconds) if s else 15.0

    async def start(self) -> None:
        hub = TelemetryHub.from_context(self.ctx)
        hub.logs.install(level=hub.settings.logs.level)
        self.hub = hub
        self.ctx.subsystems["telemetry"] = hub
        sub = self.ctx.bus.subscribe("")
        self._sub = sub
        self._tasks = [asyncio.create_task(self._pump(hub, sub), name="telemetry-events"),
                       asyncio.create_task(self._dispatcher(hub), name="telemetry-notify")]
        now = self.ctx.clock.monotonic()
        # the first run waits one interval: at start-up there is nothing to roll up yet, and
        # the store belongs to the services being started
        self.ctx.jobs.add(Job(JOBS[0], every=self._interval,
                              run=lambda: hub.housekeeping(retention=False),
                              next_at=now + self._interval()))

        def retention() -> dict[str, Any]:  # telemetry's and the operator's tables
            return {"telemetry": hub.apply_retention(), "operator": self.retention.run()}

        # deleting rows every 15 s found almost nothing to delete and cost idle CPU: retention
        # runs on the policy's cadence (policies/retention.yaml interval_seconds)
        self.ctx.jobs.add(Job(JOBS[1], every=lambda: float(
            self.ctx.policy()["retention"]["interval_seconds"]), run=retention,
            next_at=now + self._interval()))

    async def stop(self) -> None:
        for name in JOBS:
            self.ctx.jobs.remove(name)
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
            # once a second on the tick grid (with the probes), sooner for a notification due
            wait = tick_delay(self.ctx.clock, 1.0)
            if due is not None:
                wait = max(0.05, min(wait, due - self.ctx.clock.now()))
            await self.ctx.clock.sleep(wait)

    def _alerts(self) -> AlertManager:
        """The hub's alert manager; before start (``plan``), one on the store, read only."""
        if self.hub is not None:
            return self.hub.alerts
        if self._offline is None:
            self._offline = AlertManager(self.ctx.store, self.ctx.clock,
                                         TimeSeriesStore(self.ctx.store, self.ctx.clock),
                                         self.ctx.policy)
        return self._offline

    def desired(self) -> dict[str, Any]:
        pol = self.ctx.policy()
        return {"alerting": self._alerts().alerting(),
                "error_rate_threshold": pol["health"]["thresholds"]["service_error_rate"]}

    def _services(self) -> dict[str, dict[str, Any]] | None:
        health = self.ctx.subsystems.get("health")
        return None if health is None or health.latest is None else dict(
            health.latest_services)

    async def observe(self) -> dict[str, Any]:
        thr = self.ctx.policy()["health"]["thresholds"]["service_error_rate"]
        view = await asyncio.to_thread(self._alerts().view, None, self._services(), thr)
        return {"view": view}

    @staticmethod
    def diff(desired: dict[str, Any], observed: dict[str, Any]) -> tuple[Action, ...]:
        """Pure: the alerting decisions of this pass (see the module docstring)."""
        view = observed.get("view") if observed else None
        if view is None or desired.get("alerting") is None:
            return ()
        return to_actions(desired, view)

    def requeue_after(self, desired: dict[str, Any], observed: dict[str, Any]) -> float | None:
        """An episode changed this pass: the next pass (its notices) comes at once. Only
        after a change was made (a failing step backs off in the Executor, never spins)."""
        changed, self._changed = self._changed, False
        return 0.01 if changed else None

    async def act(self, action: Action) -> Outcome:
        if self.hub is None:
            return Outcome(action, False, "telemetry is not started")
        if action.kind not in ("alert", "notify"):
            return Outcome(action, False, f"telemetry has no action {action.kind!r}",
                           permanent=True)
        params = {k: v for k, v in action.params.items() if k != "op"}
        done = await asyncio.to_thread(self.hub.alerts.apply, str(action.params["op"]),
                                       params)
        self._changed |= action.kind == "alert"
        return Outcome(action, True, done)

    def report(self, desired: Any, observed: Any, outcomes: list[Outcome]) -> None:
        now = self.ctx.clock.now()
        view = (observed or {}).get("view")
        if self.hub is not None and view is not None:
            self.hub.alerts.refresh_values(view)
        st = self.ctx.status.resource(self.name, "Telemetry", "hub")
        st.sync, st.health = SyncStatus.SYNCED, HealthStatus.HEALTHY
        st.details = {"housekeeping": dict(self.hub.last_cycle or {}) if self.hub else {},
                      "jobs": self.ctx.jobs.snapshot(),
                      "alert_actions": [o.action.as_dict()["params"].get("op")
                                        for o in outcomes]}
        st.set_condition("Collecting", True, "RulesEvaluated",
                         "alert rules evaluated; housekeeping runs as scheduled jobs", now)
        gen = self.ctx.desired.current
        for r in gen.tree.of_kind("Dashboard") if gen is not None else []:
            d = self.ctx.status.resource(self.name, "Dashboard", r.name)
            d.sync, d.health = SyncStatus.SYNCED, HealthStatus.HEALTHY
            d.observed_generation = gen.number if gen is not None else None


CONTROLLERS = [TelemetryController]
