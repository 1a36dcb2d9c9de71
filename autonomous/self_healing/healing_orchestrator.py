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

The pipeline lives in ``heal_pipeline`` (detect, classify, memory, choose), ``heal_execution``
(gate, execute behind the breaker, verify) and ``heal_recording`` (memory, history, graph,
notify); the event loop and scheduling in ``heal_service``. This module wires them together.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from autonomous.intents import IntentStore
from autonomous.self_healing.alerts import HumanAlerts
from autonomous.self_healing.breakers import BreakerRegistry
from autonomous.self_healing.crashloop import CrashLoop
from autonomous.self_healing.detection import Detector
from autonomous.self_healing.error_classifier import ErrorClassifier
from autonomous.self_healing.failure_memory import FailureMemory
from autonomous.self_healing.heal_execution import Gate, HealingExecution
from autonomous.self_healing.heal_pipeline import HealingPipeline
from autonomous.self_healing.heal_recording import IncidentRecording
from autonomous.self_healing.heal_service import HealingService
from autonomous.self_healing.history import HealingHistory
from autonomous.self_healing.incident import Incident
from autonomous.self_healing.model import StrategyResult
from autonomous.self_healing.process_intents import ProcessIntents
from autonomous.self_healing.recovery_strategies import RecoveryStrategies
from autonomous.self_healing.service_state import ServiceState, StateStore
from autonomous.self_healing.verify import HealthCheck

__all__ = ["HealingOrchestrator"]

log = logging.getLogger("atlas.healing")


async def _no_gate(action: dict[str, Any]) -> Any:
    raise LookupError("self-healing acts only through the Executor: the healing controller "
                      "(controllers/healing.py) hands it in")


class HealingOrchestrator(HealingPipeline, HealingExecution, IncidentRecording, HealingService):
    """The self-healing engine of one operator. ``ctx`` is the OperatorContext."""

    def __init__(self, ctx: Any, *, rng: random.Random | None = None) -> None:
        self.ctx = ctx
        clock, store, bus = ctx.clock, ctx.store, ctx.bus
        self.memory = FailureMemory(store, clock, lambda: self.policy()["memory"])
        self.classifier = ErrorClassifier(store, clock, self.policy)
        self.breakers = BreakerRegistry(store, bus, clock, self.policy)
        self.history = HealingHistory(store, clock, lambda: self.policy()["history_max_rows"])
        self.alerts = HumanAlerts(store, bus, clock, self.policy)
        self.check = HealthCheck(clock, self._services, self.policy)
        self.processes = ProcessIntents(IntentStore(store, clock, bus), self._services,
                                        lambda: ctx.trigger("services"), self._decision_of)
        self.strategies = RecoveryStrategies(store=store, bus=bus, clock=clock,
                                             services=self._services, policy=self.policy,
                                             check=self.check, alerts=self.alerts,
                                             processes=self.processes, rng=rng)
        self.detector = Detector(clock, self.breakers, lambda: ctx.subsystems.get("services"),
                                 lambda: ctx.subsystems.get("supervisor"), self.policy)
        self.state_store = StateStore(store, clock)
        self.states: dict[str, ServiceState] = self.state_store.load()
        self.crashloop = CrashLoop(self)
        self.pending: dict[str, Incident] = {}  # incident id → awaiting approval
        self.incidents: dict[str, Incident] = {}  # incident id → open (being worked)
        # service → (monotonic time, the health controller's latest health.finding about it)
        self.findings: dict[str, tuple[float, dict[str, Any]]] = {}
        self.results: dict[str, StrategyResult] = {}  # incident id → its step's result
        self.gate: Gate = _no_gate
        self.crash_incidents: dict[str, Incident] = {}  # service → its crash-loop incident
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sub: Any = None
        self._loop_task: asyncio.Task[None] | None = None
        self._last_tick = float("-inf")

    # -- plumbing ------------------------------------------------------------------------------
    def policy(self) -> dict[str, Any]:
        """The ``healing`` policy section in force (read on every use)."""
        return self.ctx.policy()["healing"]

    def _services(self) -> Any:
        svc = self.ctx.subsystems.get("services")
        if svc is None:
            raise LookupError("the services subsystem is not running: self-healing acts "
                              "through it (enable the services controller)")
        return svc

    def _decision_of(self, incident: str | None) -> str | None:
        inc = self.incidents.get(incident) if incident else None
        return inc.step_decision if inc is not None else None

    def state(self, name: str) -> ServiceState:
        if name not in self.states:
            self.states[name] = ServiceState(name)
        return self.states[name]

    def save_state(self, st: ServiceState) -> None:
        self.state_store.save(st)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("healing task failed", exc_info=task.exception())

    # -- what the healing controller's diff decided ----------------------------------------------
    def _close_incidents(self, name: str, reason: str) -> int:
        open_ = [i for i in self.incidents.values() if i.service == name]
        crash = self.crash_incidents.pop(name, None)
        if crash is not None and crash not in open_:
            open_.append(crash)
        for inc in open_:
            self._finish(inc, "closed", reason)
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
