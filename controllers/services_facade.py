"""The face the services controller shows other subsystems (healing, resilience, the API)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from controllers.base import Action

if TYPE_CHECKING:
    from controllers.services import ServicesController

__all__ = ["ServicesFacade"]


class ServicesFacade:
    def __init__(self, ctl: ServicesController) -> None:
        self._ctl = ctl

    def specs(self) -> dict[str, Any]:
        cur = self._ctl.ctx.desired.current
        return dict(cur.services) if cur else {}

    def observed(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, info in self._ctl.supervisor.procs.items():
            rt = self._ctl.runtimes.get(name)
            last = rt.probe.last if rt else None
            out[name] = {
                "pid": info.pid, "running": info.running, "returncode": info.returncode,
                "spec_hash": info.spec_hash or None,
                "started_at": info.started_at, "restarts": len(rt.restarts) if rt else 0,
                "crash_count": rt.backoff.failures if rt else 0,
                "live": rt.probe.live if rt and info.running else None,
                "ready": rt.probe.ready if rt and info.running else None,
                "last_probe": last.as_dict() if last else None,
                "consecutive_failures": rt.probe.consecutive_failures if rt else 0,
                "probe_history": [r.as_dict() for r in rt.probe.history] if rt else [],
            }
        return out

    def standby_ports(self, name: str) -> tuple[int, ...]:
        """Backend ports of ``name``'s standby instances that run and are ready now (the
        gateway lists only these in the front's load balancer)."""
        from controllers.services_standby import instances

        return tuple(i["port"] for i in instances(self._ctl, name) if i["ready"])

    def standby_instances(self, name: str) -> list[dict[str, Any]]:
        from controllers.services_standby import instances

        return instances(self._ctl, name)

    async def _do(self, kind: str, name: str, reason: str) -> bool:
        ctl = self._ctl
        if name not in ctl._desired:
            ctl.desired()
        d = ctl._desired.get(name)
        if d is None:
            raise LookupError(f"service {name!r} is not declared")
        async with ctl.lock:
            outcome = await ctl.act(Action(kind, f"Service/{name}", reason,
                                           {"service": name, "spec_hash": d.hash}))
        return outcome.ok

    async def restart(self, name: str, reason: str, wait_healthy: float | None = None) -> bool:
        ok = await self._do("restart", name, reason)
        if ok and wait_healthy:
            return await self.wait_healthy(name, wait_healthy)
        return ok

    async def start(self, name: str, reason: str) -> bool:
        return await self._do("start", name, reason)

    async def stop(self, name: str, reason: str) -> bool:
        return await self._do("stop", name, reason)

    async def wait_healthy(self, name: str, timeout: float) -> bool:
        rt = self._ctl.runtimes.get(name)
        if rt is None:
            return False
        try:
            await asyncio.wait_for(rt.healthy_event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def set_override(self, name: str, *, isolated: bool | None = None,
                     paused: bool | None = None, reason: str = "") -> None:
        store = self._ctl.ctx.store
        row = store.query_one("SELECT isolated, paused FROM service_overrides WHERE service=?",
                              (name,))
        iso = int(isolated if isolated is not None else (row["isolated"] if row else 0))
        pau = int(paused if paused is not None else (row["paused"] if row else 0))
        store.execute("INSERT OR REPLACE INTO service_overrides VALUES (?, ?, ?, ?, ?)",
                      (name, iso, pau, reason, self._ctl.ctx.clock.now()))
        self._ctl.ctx.bus.publish("services.override", service=name, isolated=bool(iso),
                                  paused=bool(pau), reason=reason)

    def overrides(self) -> dict[str, dict[str, Any]]:
        rows = self._ctl.ctx.store.query("SELECT * FROM service_overrides")
        return {r["service"]: {"isolated": bool(r["isolated"]), "paused": bool(r["paused"]),
                               "reason": r["reason"]} for r in rows}

    def rollback(self, name: str, reason: str) -> dict[str, Any]:
        """Block the desired revision and run the last known-good one. Sticks (see Revisions)."""
        ctl = self._ctl
        spec = self.specs().get(name)
        if spec is None:
            raise LookupError(f"service {name!r} is not declared")
        from autonomous.supervisor.revisions import spec_hash

        h = spec_hash(spec)
        good = ctl.revisions.last_good(name, exclude=h)
        if good is None:
            raise LookupError(f"service {name!r} has no known-good revision to roll back to")
        ctl.revisions.block(name, h)
        ctl.ctx.bus.publish("services.override", service=name, rollback_from=h, to=good[0],
                            reason=reason)
        return {"service": name, "blocked": h, "to": good[0]}

    def clear_block(self, name: str) -> int:
        n = self._ctl.revisions.clear_block(name)
        self._ctl.ctx.bus.publish("services.override", service=name, cleared=n)
        return n

    def revisions(self, name: str) -> list[dict[str, Any]]:
        return self._ctl.revisions.list(name)

    def log_tail(self, name: str, n: int = 50) -> list[str]:
        return self._ctl.supervisor.log_tail(name, n)
