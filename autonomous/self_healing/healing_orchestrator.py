"""The healing orchestrator: detect → classify → consult memory → choose strategy → execute
behind the service's breaker → verify → record (memory, history, knowledge graph) → notify.

``handle_error`` runs that pipeline for one failure (from the API, another subsystem, or the
detector); ``start_healing_service`` runs the detector on the event bus plus a periodic tick
(memory checks, crash-loop tries, slow retries of isolated services, approvals, restoring
degraded services); ``get_healing_stats`` gives attempts, successes and MTTR per type.

Governance: every strategy is a planned action through the one gate (``gate``: the Executor,
handed in by ``controllers/healing.py``) — ``governance.actions`` says enforce, dry_run or
require_approval per action kind; an approval is bound to the incident and the generation and
the incident resumes once it is decided. In ``emergency_stop`` only core services are healed.

Composed of small typed collaborators sharing one :class:`Shared` (state, open incidents,
tasks): ``HealingPipeline`` (detect, classify, memory, choose), ``LadderRunner`` (each step
through the gate, behind the breaker, started, then settled once observed), ``IncidentRecorder``
(memory, history, graph, notify), ``CrashLoop`` (budget, back-off, isolation) and
``HealingService`` (event loop, tick). This module wires them together and is the engine's one face.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from autonomous.context import OperatorContext
from autonomous.core.events import Event
from autonomous.intents import IntentStore
from autonomous.self_healing.alerts import HumanAlerts
from autonomous.self_healing.breakers import BreakerRegistry
from autonomous.self_healing.crashloop import CrashLoop
from autonomous.self_healing.detection import Detector
from autonomous.self_healing.engine_state import Shared
from autonomous.self_healing.error_classifier import ErrorClassifier
from autonomous.self_healing.failure_memory import FailureMemory
from autonomous.self_healing.heal_execution import Gate, LadderRunner
from autonomous.self_healing.heal_pipeline import HealingPipeline
from autonomous.self_healing.heal_recording import IncidentRecorder
from autonomous.self_healing.heal_service import HealingService
from autonomous.self_healing.history import HealingHistory
from autonomous.self_healing.incident import Incident
from autonomous.self_healing.model import ErrorReport, RecoveryStrategy, StrategyResult
from autonomous.self_healing.process_intents import ProcessIntents, ServicesView
from autonomous.self_healing.recovery_strategies import RecoveryStrategies
from autonomous.self_healing.service_state import ServiceState, StateStore
from autonomous.self_healing.step_store import StepStore
from autonomous.self_healing.verify import HealthCheck
from autonomous.supervisor.revisions import Revisions

__all__ = ["HealingOrchestrator"]


class HealingOrchestrator:
    """The self-healing engine of one operator."""

    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        clock, store, bus = ctx.clock, ctx.store, ctx.bus
        state_store = StateStore(store, clock)
        self.shared = sh = Shared(ctx, state_store, state_store.load())
        self.state_store = state_store
        self.memory = FailureMemory(store, clock, lambda: self.policy()["memory"])
        self.classifier = ErrorClassifier(store, clock, self.policy)
        self.breakers = BreakerRegistry(store, bus, clock, self.policy)
        self.history = HealingHistory(store, clock, lambda: self.policy()["history_max_rows"])
        self.alerts = HumanAlerts(store, bus, clock, self.policy)
        self.check = HealthCheck(clock, sh.services, self.policy)
        self.processes = ProcessIntents(IntentStore(store, clock, bus), sh.services,
                                        lambda: ctx.trigger("services"), sh.decision_of)
        self.strategies = RecoveryStrategies(store=store, bus=bus, clock=clock,
                                             services=sh.services, policy=self.policy,
                                             check=self.check, alerts=self.alerts,
                                             processes=self.processes)
        self.detector = Detector(clock, self.breakers, lambda: ctx.subsystems.get("services"),
                                 lambda: ctx.subsystems.get("supervisor"), self.policy)
        self.step_store = StepStore(store, clock)
        self.rec = IncidentRecorder(sh, self.memory, self.history, self.classifier, self.alerts,
                                    self.step_store)
        self.runner = LadderRunner(sh, self.rec, self.breakers, self.strategies)
        self.pipeline = HealingPipeline(sh, self.rec, self.runner, self.memory,
                                        self.classifier, self.check, Revisions(store, clock))
        self.crashloop = CrashLoop(sh, self.rec, self.processes, self.strategies, self.check,
                                   self.alerts, self.pipeline.open_classified)
        self.runner.crashloop = self.crashloop
        self.service = HealingService(sh, pipeline=self.pipeline, runner=self.runner,
                                      rec=self.rec, detector=self.detector,
                                      crashloop=self.crashloop, breakers=self.breakers,
                                      check=self.check, strategies=self.strategies,
                                      alerts=self.alerts)

    # -- shared state ------------------------------------------------------------------------
    @property
    def gate(self) -> Gate:
        return self.runner.gate

    @gate.setter
    def gate(self, gate: Gate) -> None:
        self.runner.gate = gate

    @property
    def states(self) -> dict[str, ServiceState]:
        return self.shared.states

    @property
    def incidents(self) -> dict[str, Incident]:
        return self.shared.incidents

    @property
    def pending(self) -> dict[str, Incident]:
        return self.shared.pending

    @property
    def crash_incidents(self) -> dict[str, Incident]:
        return self.shared.crash_incidents

    @property
    def _tasks(self) -> set[asyncio.Task[Any]]:
        return self.shared.tasks.running

    def policy(self) -> dict[str, Any]:
        """The ``healing`` policy section in force (read on every use)."""
        return self.shared.policy()

    def services(self) -> ServicesView:
        return self.shared.services()

    def state(self, name: str) -> ServiceState:
        return self.shared.state(name)

    def save_state(self, st: ServiceState) -> None:
        self.shared.save_state(st)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        return self.shared.tasks.spawn(coro)

    def open_incident(self, service: str, signature: str | None = None) -> Incident | None:
        return self.shared.open_incident(service, signature)

    # -- the engine's face ----------------------------------------------------------------------
    async def handle_error(self, service: str, error: BaseException | None = None,
                           context: dict[str, Any] | None = None, *, source: str | None = None,
                           strategy: str | None = None, message: str | None = None) \
            -> dict[str, Any]:
        return await self.pipeline.handle_error(service, error, context, source=source,
                                                strategy=strategy, message=message)

    async def handle_report(self, report: ErrorReport, *,
                            forced: RecoveryStrategy | None = None) -> Incident | None:
        return await self.pipeline.handle_report(report, forced=forced)

    async def run_step(self, strategy: RecoveryStrategy, incident_id: str,
                       decision: str | None = None) -> StrategyResult | None:
        return await self.runner.run_step(strategy, incident_id, decision)

    def on_event(self, ev: Event) -> None:
        self.service.on_event(ev)

    async def tick(self) -> None:
        await self.service.tick()

    async def start_healing_service(self) -> None:
        self.resume_in_flight()
        await self.service.start_healing_service()

    def resume_in_flight(self) -> int:
        """The incidents whose step was in flight when the last engine stopped come back
        open with it; the healing controller's passes verify and settle it (how many)."""
        n = 0
        for inc in self.step_store.load():
            if inc.id not in self.incidents:
                self.incidents[inc.id] = inc
                n += 1
        if n:
            self.ctx.trigger("healing")
        return n

    async def stop(self) -> None:
        await self.service.stop()

    async def restore(self, name: str) -> dict[str, Any]:
        return await self.service.restore(name)

    # -- what the healing controller's diff decided ----------------------------------------------
    def _close_incidents(self, name: str, reason: str) -> int:
        open_ = [i for i in self.incidents.values() if i.service == name]
        crash = self.crash_incidents.pop(name, None)
        if crash is not None and crash not in open_:
            open_.append(crash)
        for inc in open_:
            self.rec.finish(inc, "closed", reason)
        return len(open_) + self.history.close_open(name, reason, self.ctx.clock.now())

    def close_service(self, name: str, reason: str) -> int:
        """``name`` left the desired state: close its incidents (cancelling their approvals),
        forget its state and withdraw healing's intents on it; nothing is retried."""
        n = self._close_incidents(name, reason)
        self.processes.release(name, reason)
        self.states.pop(name, None)
        self.state_store.delete(name)
        self.ctx.bus.publish("healing.closed", service=name, incidents=n, reason=reason)
        return n

    def release_for_revision(self, name: str, reason: str) -> int:
        """A new desired revision of ``name``: leave back-off / isolation, close the
        crash-loop incident (its revision is gone), let the owner start the new one."""
        n = self._close_incidents(name, reason)
        self.crashloop.release(name)
        self.alerts.resolve(name, reason)
        self.ctx.bus.publish("healing.released", service=name, reason=reason)
        return n

    # -- facade -----------------------------------------------------------------------------------------
    def get_healing_stats(self) -> dict[str, Any]:
        """Attempts, successes, MTTR per error type; breakers; phases; memory."""
        return {**self.history.stats(), "breakers": self.breakers.snapshot(),
                "services": [st.as_dict(self.ctx.clock) for _, st in sorted(self.states.items())],
                "memory": self.memory.stats(),
                "pending_approvals": [inc.pending for inc in self.pending.values()]}
