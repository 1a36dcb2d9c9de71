"""Fakes for the self-healing unit tests: a services owner over an in-memory process table
that reconciles the intents healing writes (as the services controller does), and a clock whose
``sleep`` moves time forward at once. (End-to-end tests use the real ones.)"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from autonomous.core.clock import FakeClock
from autonomous.core.events import Event
from autonomous.intents import IntentStore
from autonomous.resources.kinds.service import ServiceSpec
from autonomous.self_healing.healing_orchestrator import HealingOrchestrator
from autonomous.testing import make_context

__all__ = ["AutoClock", "FakeServices", "drain", "exited", "heal", "healing_context",
           "reconcile", "run_try", "spec"]

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
    """The services facade's read interface over an in-memory process table, and the owner's
    side of intents (:meth:`reconcile`, wired as the ``services`` trigger).

    ``crash_on_start`` names services whose every start exits at once; ``rollback_ok`` the
    services with a known-good revision; ``calls`` logs every action the owner took."""

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
        self.intents: IntentStore | None = None
        self._held: set[str] = set()
        self.healing: Any = None  # the HealingController wired by healing_context

    def attach(self, ctx: Any) -> None:
        self.intents = IntentStore(ctx.store, ctx.clock)
        ctx.triggers["services"] = self.reconcile

    def reconcile(self) -> None:
        """What the services controller does with the intents: restart the process a
        restart intent names (or start it when it is gone and nothing restarts it), keep
        isolated/paused services stopped, start them once released, block a revision."""
        assert self.intents is not None
        held: dict[str, dict[str, Any]] = {}
        for it in self.intents.active():
            name = it.service
            if name not in self.procs:
                continue
            p = self.procs[name]
            if it.kind == "restart_requested":
                # the outcome says what the owner did, as the services controller's does
                if p["running"] and it.params.get("pid") in (None, p["pid"]):
                    self.calls += [("stop", name), ("start", name)]
                    self._run(name)
                    done = f"restart: restarted {name}"
                elif not p["running"] and name not in self._held:
                    self.calls.append(("start", name))
                    self._run(name)
                    done = f"start: started {name}"
                else:
                    done = f"satisfied: process {it.params.get('pid')} was already replaced"
                self.intents.consume(it.id, done)
            elif it.kind in ("isolate", "pause"):
                flags = held.setdefault(name, {"isolated": False, "paused": False})
                flags["isolated" if it.kind == "isolate" else "paused"] = True
                flags["reason"] = it.reason
            elif it.kind == "use_revision":
                self.rollback(name, it.reason)
                self.intents.consume(it.id, "rolled back")
        for name, flags in held.items():
            self.overrides[name] = flags
            if self.procs[name]["running"]:
                self.calls.append(("stop", name))
                self.procs[name] = {**self.procs[name], "running": False, "returncode": -15}
        for name in self._held - set(held):
            self.overrides[name] = {"isolated": False, "paused": False}
            if not self.procs[name]["running"]:
                self.calls.append(("start", name))
                self._run(name)
        self._held = set(held)

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

    def kill(self, name: str, rc: int = -9) -> None:
        self.procs[name] = {**self.procs[name], "running": False, "returncode": rc}

    def rollback(self, name: str, reason: str) -> dict[str, Any]:
        if name not in self.rollback_ok:
            raise LookupError(f"service {name!r} has no known-good revision to roll back to")
        self.calls.append(("rollback", name))
        self.crash_on_start.discard(name)
        self._run(name)
        self.procs[name]["spec_hash"] = "good"  # the process runs the revision rolled back to
        return {"service": name, "blocked": "bad", "to": "good"}

    def revisions(self, name: str) -> list[dict[str, Any]]:
        return ([{"spec_hash": "good", "known_good": True, "blocked": False}]
                if name in self.rollback_ok else [])

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
    fake.attach(ctx)
    ctx.subsystems["services"] = fake
    from controllers.healing import HealingController

    ctl = HealingController(ctx)
    orch = ctl.attach(HealingOrchestrator(ctx))
    fake.healing = ctl
    return ctx, fake, orch


async def reconcile(ctx: Any, fake: FakeServices) -> list[Any]:
    """One healing-controller pass (observe → diff → Executor → act) under the real manager
    code; the outcomes."""
    from controllers.manager import ControllerManager

    ctl = fake.healing
    return await ControllerManager(ctx, [ctl]).reconcile(ctl)


async def drain(orch: HealingOrchestrator) -> None:
    """Wait for the heals the orchestrator spawned (and those they spawned in turn), and run
    healing-controller passes — the clock moved by the poll interval between them — until no
    ladder step is in flight (each pass observes it; the one with its verdict settles it)."""
    fake = orch.ctx.subsystems["services"]
    for _ in range(400):
        if orch._tasks:
            await asyncio.gather(*list(orch._tasks), return_exceptions=True)
            continue
        if not any(i.run is not None for i in orch.incidents.values()):
            return
        orch.ctx.clock.advance(orch.policy()["verify"]["poll_seconds"])
        await reconcile(orch.ctx, fake)
    raise AssertionError("the ladder steps in flight were not settled")


async def heal(orch: HealingOrchestrator, service: str, error: BaseException | None = None,
               context: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """``handle_error`` (which starts the incident's first step and returns), then the passes
    that settle its steps (:func:`drain`): the incident's row as it ends."""
    row = await orch.handle_error(service, error, context, **kw)
    await drain(orch)
    if "id" not in row:
        return row
    got = [r for r in orch.history.list(service=service) if r["id"] == row["id"]]
    return got[0] if got else row


async def run_try(ctx: Any, fake: FakeServices, orch: HealingOrchestrator, name: str) -> list[Any]:
    """Reconcile passes until the due crash-loop try of ``name`` is settled: one pass starts
    it, later ones observe its verification (the clock moves by the poll interval between
    them) and settle the verdict. The outcomes of every pass."""
    outcomes = list(await reconcile(ctx, fake))
    await drain(orch)
    for _ in range(40):
        if orch.state(name).trying is None:
            return outcomes
        ctx.clock.advance(ctx.policy()["healing"]["verify"]["poll_seconds"])
        outcomes += await reconcile(ctx, fake)
        await drain(orch)
    raise AssertionError(f"the try of {name} was not settled")


def exited(name: str, pid: int, rc: int = -9) -> Event:
    """The supervisor's event for an unexpected exit of ``pid``."""
    return Event("service.exited", {"service": name, "pid": pid, "returncode": rc,
                                    "expected": False})
