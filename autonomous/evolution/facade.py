"""What the API reads and asks of the evolution subsystem (``ctx.subsystems["evolution"]``)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autonomous.core.clock import Clock
from autonomous.core.errors import Conflict, NotFound
from autonomous.evolution.proposals import ProposalStore, rollout_name
from autonomous.evolution.sources import expand_command, from_spec, scan
from autonomous.evolution.staged_rollout import RolloutState
from autonomous.evolution.store import RolloutStore
from autonomous.evolution.vetting import VettingStore
from autonomous.store.db import Store

if TYPE_CHECKING:
    from autonomous.desired import DesiredStateManager

__all__ = ["EvolutionFacade"]


class EvolutionFacade:
    def __init__(self, store: Store, clock: Clock, desired: DesiredStateManager | None = None,
                 root: Path | None = None) -> None:
        self.rollouts = RolloutStore(store)
        self.proposals = ProposalStore(store)
        self.vetting = VettingStore(store)
        self.clock = clock
        self.desired = desired
        self.root = root or Path(".")

    def _services(self) -> tuple[dict[str, Any], list[Any]]:
        gen = self.desired.current if self.desired is not None else None
        if gen is None:
            return {}, []
        return gen.services, gen.tree.of_kind("UpdateSource")

    def scan(self, service: str | None) -> dict[str, Any]:
        """Look in every declared UpdateSource (or ``service``'s); a newer version that is not
        quarantined becomes a proposal (an open one for the same version is reused)."""
        services, sources = self._services()
        if service is not None and not any(r.spec.service == service for r in sources):
            raise NotFound(f"no UpdateSource declares service {service!r}; declare one "
                           "(kind: UpdateSource) in desired_state/")
        quarantined = self.rollouts.quarantined()
        out = []
        for res in sources:
            spec = res.spec
            if service is not None and spec.service != service:
                continue
            svc = services.get(spec.service)
            item: dict[str, Any] = {"service": spec.service, "source": res.name,
                                    "current": svc.version if svc else None, "found": None,
                                    "proposal": None, "new": False, "error": None}
            if svc is None:
                item["error"] = f"service {spec.service!r} is not declared"
                out.append(item)
                continue
            try:
                found = scan(spec.service, svc.version,
                             [from_spec(s, self.root, spec.service) for s in spec.sources],
                             quarantined={v for s, v in quarantined if s == spec.service},
                             prereleases=spec.prereleases)
            except (OSError, subprocess.SubprocessError) as e:
                item["error"] = f"scan failed: {e}"
                out.append(item)
                continue
            if found is not None:
                row, new = self.proposals.add(spec.service, svc.version, found.version,
                                              f"scan: {found.origin}",
                                              expand_command(spec.command, found),
                                              self.clock.now())
                item |= {"found": found.version, "proposal": row.as_dict(), "new": new}
            out.append(item)
        return {"results": out}

    def update(self, service: str, version: str, command: list[str] | None,
               actor: str) -> dict[str, Any]:
        """Ask for ``service`` at ``version`` (a proposal, gated like a found one)."""
        services, _ = self._services()
        svc = services.get(service)
        if svc is None:
            raise NotFound(f"service {service!r} is not declared")
        if svc.version == version:
            raise Conflict(f"{service} already declares version {version}")
        if (service, version) in self.rollouts.quarantined():
            raise Conflict(f"{service} {version} is quarantined (rolled back earlier); clear it "
                           "with POST /api/evolution/quarantine/clear first")
        row, new = self.proposals.add(service, svc.version, version, f"api ({actor})",
                                      command, self.clock.now())
        return {"proposal": row.as_dict(), "new": new}

    def list_proposals(self, limit: int) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.proposals.list(limit)]

    def status(self) -> dict[str, Any]:
        running = self.rollouts.running()
        return {"rollouts": [{"id": rid, "service": s.service, "from_version": s.from_version,
                              "to_version": s.to_version, "phase_index": s.phase_index,
                              "phase_started_at": s.phase_started_at, "status": s.status}
                             for rid, s in sorted(running.items())],
                "quarantined": [{"service": svc, "version": v}
                                for svc, v in sorted(self.rollouts.quarantined())],
                "vetting": self.vetting_status()}

    def vetting_status(self) -> list[dict[str, Any]]:
        """Proposals whose checks run now (phase ``VETTING``), with their progress."""
        now = self.clock.now()
        out = []
        for pid, v in sorted(self.vetting.all().items()):
            try:
                row = self.proposals.get(pid)
            except KeyError:
                continue
            out.append({"rollout": rollout_name(pid), "proposal": pid, "service": row.service,
                        "from_version": row.current, "to_version": row.version,
                        "phase": "VETTING", "step": v.step, "detail": v.detail,
                        "attempt": v.attempt, "elapsed_seconds": round(now - v.started_at, 3),
                        "step_seconds": round(now - v.updated_at, 3)})
        return out

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
