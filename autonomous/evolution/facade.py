"""What the API reads and asks of the evolution subsystem (``ctx.subsystems["evolution"]``)."""

from __future__ import annotations

from typing import Any

from autonomous.core.clock import Clock
from autonomous.core.errors import Conflict, NotFound
from autonomous.evolution.staged_rollout import RolloutState
from autonomous.evolution.store import RolloutStore
from autonomous.store.db import Store

__all__ = ["EvolutionFacade"]


class EvolutionFacade:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.rollouts = RolloutStore(store)
        self.clock = clock

    def status(self) -> dict[str, Any]:
        running = self.rollouts.running()
        return {"rollouts": [{"id": rid, "service": s.service, "from_version": s.from_version,
                              "to_version": s.to_version, "phase_index": s.phase_index,
                              "phase_started_at": s.phase_started_at, "status": s.status}
                             for rid, s in sorted(running.items())],
                "quarantined": [{"service": svc, "version": v}
                                for svc, v in sorted(self.rollouts.quarantined())]}

    def history(self, limit: int) -> list[dict[str, Any]]:
        return self.rollouts.history(limit)

    def rollback(self, service: str, actor: str, reason: str | None) -> dict[str, Any]:
        for rid, s in self.rollouts.running().items():
            if s.service == service:
                why = f"{reason or 'manual rollback'} (by {actor})"
                done = RolloutState(s.service, s.from_version, s.to_version, s.phase_index,
                                    s.phase_started_at, "rolled_back", why)
                self.rollouts.transition(rid, done, "rollback", why, self.clock.now())
                return {"id": rid, "service": service, "status": "rolled_back",
                        "quarantined": s.to_version, "reason": why}
        raise NotFound(f"service {service!r} has no running rollout")

    def clear_quarantine(self, service: str, version: str) -> dict[str, Any]:
        if not self.rollouts.clear_quarantine(service, version):
            raise Conflict(f"{service} {version} is not quarantined")
        return {"service": service, "version": version, "quarantined": False}
