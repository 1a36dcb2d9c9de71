"""The healing service: the event loop and the periodic scheduling of the engine.

``start_healing_service`` subscribes to the bus (``service.``, ``approval.``, ``desired.``,
``governance.``) and runs one loop that turns events into heals at once (exits, unhealthy
services, failing probes, dependencies down) and, every ``detection.tick_seconds``, does the
periodic work: policy sync of the breakers, memory-limit checks (the crash-loop tries, their
delays, the back-off itself, the healthy reset of the restart count, undoing degraded mode and
fallback once the service is healthy again — ``recover`` — the resumption of an incident
whose approval was decided, the close of one whose service is healthy again meanwhile, and the
settling of each ladder step are planned by the healing controller's diff). One collaborator
of :class:`~autonomous.self_healing.healing_orchestrator.HealingOrchestrator`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from autonomous.core.aio import wait_or_timeout
from autonomous.core.events import Event, Subscription
from autonomous.self_healing.alerts import HumanAlerts
from autonomous.self_healing.breakers import BreakerRegistry
from autonomous.self_healing.circuit_breaker import CircuitState
from autonomous.self_healing.crashloop import CrashLoop
from autonomous.self_healing.detection import Detector
from autonomous.self_healing.engine_state import Shared
from autonomous.self_healing.heal_execution import LadderRunner
from autonomous.self_healing.heal_pipeline import HealingPipeline
from autonomous.self_healing.heal_recording import IncidentRecorder
from autonomous.self_healing.incident import Incident
from autonomous.self_healing.model import ErrorReport, RecoveryStrategy, StrategyResult
from autonomous.self_healing.recovery_strategies import RecoveryStrategies
from autonomous.self_healing.verify import HealthCheck

__all__ = ["HealingService"]

log = logging.getLogger("atlas.healing")


class HealingService:
    """The engine's event loop and periodic tick."""

    def __init__(self, shared: Shared, *, pipeline: HealingPipeline, runner: LadderRunner,
                 rec: IncidentRecorder, detector: Detector, crashloop: CrashLoop,
                 breakers: BreakerRegistry, check: HealthCheck,
                 strategies: RecoveryStrategies, alerts: HumanAlerts) -> None:
        self.shared = shared
        self.ctx = shared.ctx
        self.pipeline = pipeline
        self.runner = runner
        self.rec = rec
        self.detector = detector
        self.crashloop = crashloop
        self.breakers = breakers
        self.check = check
        self.strategies = strategies
        self.alerts = alerts
        self._sub: Subscription | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._last_tick = float("-inf")

    async def start_healing_service(self) -> None:
        """Listen to the bus and tick periodically until ``stop``."""
        if self._loop_task is not None:
            return
        self._sub = self.ctx.bus.subscribe("service.", "approval.", "desired.", "governance.",
                                           "health.finding")
        self._loop_task = asyncio.create_task(self._run(), name="healing-service")

    async def stop(self) -> None:
        """Stop the loop and every heal in flight."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._sub is not None:
            self._sub.close()
        await self.shared.tasks.cancel_all()
        await self.check.close()

    async def _run(self) -> None:
        sub = self._sub
        assert sub is not None
        while True:
            tick = self.shared.policy()["detection"]["tick_seconds"]
            got = await wait_or_timeout(sub.get(), tick)
            ev = got if isinstance(got, Event) else None
            try:
                while ev is not None:
                    self.on_event(ev)
                    ev = sub.get_nowait()
                if self.ctx.clock.monotonic() - self._last_tick >= tick:
                    await self.tick()
            except Exception:
                log.exception("healing loop iteration failed")

    def on_event(self, ev: Event) -> None:
        """Turn one bus event into heals (spawned as tasks)."""
        topic, d = ev.topic, ev.data
        if topic == "service.exited":
            report = self.detector.from_exit(ev)
            if report is not None and not self.crashloop.on_exit(report):
                self.shared.tasks.spawn(self.pipeline.handle_report(report))
        elif topic == "service.unhealthy":
            self.shared.tasks.spawn(self.pipeline.handle_report(self.detector.from_unhealthy(ev)))
        elif topic == "service.not_ready":
            self.shared.tasks.spawn(self._if_dependency_down(self.detector.from_not_ready(ev)))
        elif topic == "service.probe":
            self._on_probe(ev)
        elif topic == "health.finding" and d.get("service"):
            self.shared.findings[d["service"]] = (self.ctx.clock.monotonic(), dict(d))
        elif topic == "service.healthy":
            st = self.shared.state(d["service"])
            st.healthy_since = self.ctx.clock.monotonic()
            st.open_incident = None
            st.escalated.clear()  # an incident awaiting approval meanwhile: the diff closes it

    def _on_probe(self, ev: Event) -> None:
        verdict, report = self.detector.feed_probe(ev)
        name = ev.data["service"]
        st = self.shared.state(name)
        if report is not None:  # whether it opens an incident is the controller's decision
            self.shared.tasks.spawn(self.pipeline.handle_report(report))
        elif verdict == "closed":
            st.open_incident = None
            st.escalated.clear()
            if st.degraded is not None or st.fallback:
                self.ctx.trigger("healing")  # the diff plans ``recover`` once it is healthy

    async def _if_dependency_down(self, report: ErrorReport) -> None:
        with contextlib.suppress(LookupError):
            if await self.check.dependencies_down(report.service):
                await self.pipeline.handle_report(report)

    async def tick(self) -> None:
        """Periodic work: policy sync, memory limits."""
        self._last_tick = self.ctx.clock.monotonic()
        self.breakers.sync_policy()
        for report in self.detector.memory_reports():
            if not self.shared.state(report.service).busy:
                self.shared.tasks.spawn(self.pipeline.handle_report(report))

    async def resume(self, inc: Incident) -> None:
        """Continue an incident whose strategy awaited approval once it is decided (the
        healing controller's diff plans it: ``resume``)."""
        st = self.shared.state(inc.service)
        if st.busy or inc.pending is None:
            return
        row = self.ctx.store.query_one("SELECT state FROM approvals WHERE id=?",
                                       (inc.pending["id"],))
        state = row["state"] if row else "missing"
        if state == "pending":
            return
        st.busy = True
        try:
            if state in ("expired", "stale", "missing", "cancelled"):
                self.rec.attempt(inc, StrategyResult(RecoveryStrategy(inc.pending["strategy"]),
                                                  False, f"approval {state}"), state, 0.0)
                inc.pending = None
                inc.step += 1
                self.strategies.processes.unhold(inc.service, inc.id, f"approval {state}")
            await self.runner.advance(inc)
        finally:
            st.busy = False

    async def recovered(self, name: str) -> bool:
        """Observed: ``name`` is healthy again — its service breaker closed, no dependency
        down, its probe answers (the healing controller's diff then plans ``recover``)."""
        if self.breakers.service(name).get_state() is not CircuitState.CLOSED:
            return False
        try:
            if await self.check.dependencies_down(name):
                return False
            ok, _ = await self.check.probe(name)
        except LookupError:
            return False
        return ok

    async def restore(self, name: str) -> dict[str, Any]:
        """Undo DEGRADE and FALLBACK (the act of the diff's ``recover``, or a human's)."""
        st = self.shared.state(name)
        if st.busy:
            return {"restored": False}
        st.busy = True
        try:
            done = {}
            if st.degraded is not None:
                done["features"] = await self.strategies.exit_degraded_mode(name, st.degraded)
                if done["features"]:
                    st.degraded = None
            if st.fallback:
                done["fallback"] = self.strategies.deactivate_fallback(name)
                st.fallback = False
            self.shared.save_state(st)
            self.alerts.resolve(name, "recovered: full service restored")
            about = self.ctx.graph.ensure("resource", f"Service/{name}")
            label = f"{name} recovered: degraded mode and fallback undone"
            self.ctx.graph.record_chain([("outcome", label, done)], context={"about": about})
            self.ctx.bus.publish("healing.restored", service=name, **done)
            return {"restored": True, **done}
        finally:
            st.busy = False
