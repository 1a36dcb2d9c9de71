"""How self-healing asks for changes to processes: intents for their owner.

The services controller owns every process (start, stop, restart, isolation, revisions).
Healing never calls it; it writes an intent (``autonomous.intents``) bound to the incident
and the decision that asked for it, wakes the owner (``trigger``), and then observes what the
owner did (``HealthCheck`` waits for the new pid, the stop, the health).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from autonomous.intents import Intent, IntentStore
from autonomous.resources.kinds.service import ServiceSpec
from autonomous.supervisor.revisions import spec_hash

__all__ = ["ProcessIntents", "ServicesView"]

REQUESTER = "healing"


class ServicesView(Protocol):
    """What healing reads of the services subsystem (never an actuator)."""

    def specs(self) -> dict[str, ServiceSpec]: ...

    def observed(self) -> dict[str, dict[str, Any]]: ...

    def log_tail(self, name: str, n: int = 50) -> list[str]: ...

    def revisions(self, name: str) -> list[dict[str, Any]]: ...


class ProcessIntents:
    def __init__(self, intents: IntentStore, services: Callable[[], ServicesView],
                 trigger: Callable[[], object],
                 decision_of: Callable[[str | None], str | None] = lambda _i: None) -> None:
        self.intents = intents
        self.services = services
        self.trigger = trigger
        self.decision_of = decision_of  # incident id → the decision node asking now

    def _hash(self, name: str) -> str | None:
        spec = self.services().specs().get(name)
        return spec_hash(spec) if spec is not None else None

    def _ask(self, kind: str, name: str, reason: str, incident: str | None,
             decision: str | None, **params: Any) -> Intent:
        intent = self.intents.request(kind, f"Service/{name}", reason=reason,
                                      requester=REQUESTER,
                                      decision=decision or self.decision_of(incident),
                                      incident=incident, params=params)
        self.trigger()
        return intent

    def restart(self, name: str, pid: int | None, reason: str, *, incident: str | None = None,
                decision: str | None = None) -> Intent:
        """Restart process ``pid`` of ``name`` (satisfied at once if it is already gone)."""
        return self._ask("restart_requested", name, reason, incident, decision, pid=pid)

    def isolate(self, name: str, reason: str, *, incident: str | None = None,
                decision: str | None = None) -> Intent:
        return self._ask("isolate", name, reason, incident, decision, spec_hash=self._hash(name))

    def pause(self, name: str, reason: str, *, incident: str | None = None) -> Intent:
        return self._ask("pause", name, reason, incident, None, spec_hash=self._hash(name))

    def held_for(self, name: str, incident: str) -> bool:
        """Healing's pause bound to ``incident`` keeps ``name`` stopped (a hold)."""
        return any(i.kind == "pause" and i.incident == incident for i in self.held(name))

    def unhold(self, name: str, incident: str, reason: str) -> int:
        """Withdraw the pauses bound to ``incident`` (its hold) and no other intent."""
        n = 0
        for it in self.held(name):
            if it.kind == "pause" and it.incident == incident:
                n += int(self.intents.release_one(it.id, reason))
        if n:
            self.trigger()
        return n

    def release(self, name: str, reason: str) -> int:
        """Withdraw healing's isolation and pause of ``name`` (the owner starts it again)."""
        n = self.intents.release("isolate", f"Service/{name}", reason)
        n += self.intents.release("pause", f"Service/{name}", reason)
        if n:
            self.trigger()
        return n

    def held(self, name: str) -> list[Intent]:
        """Healing's standing isolate / pause intents on ``name`` still active."""
        return [i for i in self.intents.active(f"Service/{name}", ("isolate", "pause"))
                if i.requester == REQUESTER]

    def use_revision(self, name: str, reason: str, *, incident: str | None = None,
                     decision: str | None = None) -> Intent:
        return self._ask("use_revision", name, reason, incident, decision, **{
            "from": self._hash(name)})

    def fallback(self, name: str, target: str, url: str | None, reason: str, *,
                 incident: str | None = None) -> Intent:
        return self._ask("fallback", name, reason, incident, None, target=target, url=url)

    def clear_fallback(self, name: str, reason: str) -> int:
        return self.intents.release("fallback", f"Service/{name}", reason)
