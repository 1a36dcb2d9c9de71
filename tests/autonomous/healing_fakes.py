"""Fakes for the self-healing unit tests: a services facade with the lead's interface and a
clock whose ``sleep`` moves time forward at once. (End-to-end tests use the real ones.)"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from autonomous.core.clock import FakeClock
from autonomous.resources.kinds.service import ServiceSpec
from autonomous.self_healing.healing_orchestrator import HealingOrchestrator
from autonomous.testing import make_context

__all__ = ["AutoClock", "FakeServices", "healing_context", "spec"]

_pids = itertools.count(40000)


class AutoClock(FakeClock):
    """``sleep`` advances the clock immediately (and yields to the loop); sleeps are logged."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


def spec(**kw: Any) -> ServiceSpec:
    """A ServiceSpec without port (health = the process runs) unless given."""
    data = {"command": ["{python}", "-c", "pass"], "health": None, **kw}
    return ServiceSpec.model_validate(data)


class FakeServices:
    """The services facade's interface over an in-memory process table.

    ``crash_on_start`` names services whose every start exits at once; ``rollback_ok`` the
    services with a known-good revision; ``calls`` logs every action."""

    def __init__(self, specs: dict[str, ServiceSpec]) -> None:
        self._specs = specs
        self.procs = {n: {"pid": next(_pids), "running": True, "returncode": None}
                      for n in specs}
        self.overrides: dict[str, dict[str, Any]] = {}
        self.crash_on_start: set[str] = set()
        self.rollback_ok: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.logs: dict[str, list[str]] = {}
        self.starts = 0

    def specs(self) -> dict[str, ServiceSpec]:
        return dict(self._specs)

    def observed(self) -> dict[str, dict[str, Any]]:
        return {n: {**p, "live": p["running"], "ready": p["running"], "last_probe": None}
                for n, p in self.procs.items()}

    def _run(self, name: str) -> None:
        self.starts += 1
        crash = name in self.crash_on_start
        self.procs[name] = {"pid": next(_pids), "running": not crash,
                            "returncode": 1 if crash else None}

    async def restart(self, name: str, reason: str) -> bool:
        self.calls.append(("restart", name))
        self._run(name)
        return True

    async def start(self, name: str, reason: str) -> bool:
        if self.procs[name]["running"]:
            raise RuntimeError(f"service {name!r} is already running")
        self.calls.append(("start", name))
        self._run(name)
        return True

    async def stop(self, name: str, reason: str) -> bool:
        self.calls.append(("stop", name))
        self.procs[name] = {**self.procs[name], "running": False, "returncode": -15}
        return True

    def kill(self, name: str, rc: int = -9) -> None:
        self.procs[name] = {**self.procs[name], "running": False, "returncode": rc}

    def set_override(self, name: str, *, isolated: bool | None = None,
                     paused: bool | None = None, reason: str = "") -> None:
        cur = self.overrides.setdefault(name, {"isolated": False, "paused": False})
        if isolated is not None:
            cur["isolated"] = isolated
        if paused is not None:
            cur["paused"] = paused
        cur["reason"] = reason

    def rollback(self, name: str, reason: str) -> dict[str, Any]:
        if name not in self.rollback_ok:
            raise LookupError(f"service {name!r} has no known-good revision to roll back to")
        self.calls.append(("rollback", name))
        self.crash_on_start.discard(name)
        self._run(name)
        return {"service": name, "blocked": "bad", "to": "good"}

    def log_tail(self, name: str, n: int = 50) -> list[str]:
        return self.logs.get(name, [])[-n:]


def healing_context(tmp_path: Any, specs: dict[str, ServiceSpec], *, mode: str = "growth",
                    policy_edit: str | None = None) -> tuple[Any, FakeServices,
                                                              HealingOrchestrator]:
    """A real context (store, graph, governance, approvals) with fake services."""
    from autonomous.testing import copy_default_tree

    root = copy_default_tree(tmp_path / "root")
    if policy_edit:
        (root / "policies" / "zz_test.yaml").write_text(policy_edit)
    ctx = make_context(tmp_path, root=root, clock=AutoClock())
    assert ctx.desired.current is not None, ctx.desired.error
    ctx.governance.set_mode(mode, actor="test")
    fake = FakeServices(specs)
    ctx.subsystems["services"] = fake
    return ctx, fake, HealingOrchestrator(ctx)
