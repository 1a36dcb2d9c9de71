"""What the healing engine's collaborators share, typed: the per-service state, the open
incidents, the policy and services views, and the background tasks they spawn.

``HealingOrchestrator`` builds one :class:`Shared` and hands it to each collaborator (the
intake pipeline, the ladder runner, the recorder, the crash loop, the event loop) instead of
them reaching into one another through ``self``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from autonomous.context import OperatorContext
from autonomous.self_healing.incident import Incident
from autonomous.self_healing.model import ErrorReport
from autonomous.self_healing.process_intents import ServicesView
from autonomous.self_healing.service_state import ServiceState, StateStore

__all__ = ["Shared", "Tasks"]

log = logging.getLogger("atlas.healing")


class Tasks:
    """Background tasks of the engine (cancelled when it stops); failures are logged."""

    def __init__(self) -> None:
        self.running: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.running.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("healing task failed", exc_info=task.exception())

    async def cancel_all(self) -> None:
        for t in list(self.running):
            t.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)


@dataclass
class Shared:
    ctx: OperatorContext
    state_store: StateStore
    states: dict[str, ServiceState]
    tasks: Tasks = field(default_factory=Tasks)
    incidents: dict[str, Incident] = field(default_factory=dict)  # id → open (being worked)
    pending: dict[str, Incident] = field(default_factory=dict)  # id → awaiting approval
    crash_incidents: dict[str, Incident] = field(default_factory=dict)  # service → its own
    # service → the failure whose counted restart exceeded the budget (its back-off incident)
    budget_reports: dict[str, ErrorReport] = field(default_factory=dict)
    # service → (monotonic time, the health controller's latest health.finding about it)
    findings: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    def policy(self) -> dict[str, Any]:
        """The ``healing`` policy section in force (read on every use)."""
        section: dict[str, Any] = self.ctx.policy()["healing"]
        return section

    def services(self) -> ServicesView:
        svc: ServicesView | None = self.ctx.subsystems.get("services")
        if svc is None:
            raise LookupError("the services subsystem is not running: self-healing acts "
                              "through it (enable the services controller)")
        return svc

    def state(self, name: str) -> ServiceState:
        if name not in self.states:
            self.states[name] = ServiceState(name)
        return self.states[name]

    def save_state(self, st: ServiceState) -> None:
        self.state_store.save(st)

    def open_incident(self, service: str, signature: str | None = None) -> Incident | None:
        """The open incident of ``service`` (awaiting approval, or the crash loop's) for
        this failure signature (any, when None): a repeat of its fault updates it."""
        for inc in self.incidents.values():
            if inc.service == service and (signature is None or
                                           inc.classification.signature == signature):
                return inc
        return None

    def in_flight(self, service: str) -> bool:
        """A ladder step of an incident of ``service`` is in flight (started, verified by the
        healing controller's passes): the service is being healed."""
        return any(i.service == service and i.run is not None for i in self.incidents.values())

    def decision_of(self, incident: str | None) -> str | None:
        """The Executor's decision node of the step ``incident`` is running now."""
        inc = self.incidents.get(incident) if incident else None
        return inc.step_decision if inc is not None else None

