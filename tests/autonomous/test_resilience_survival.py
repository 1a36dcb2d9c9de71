"""Survival mode on a real sample stack (real processes, real HTTP feature flags) under the
real services, features (the one owner of feature flags) and resilience controllers; persistence across an operator restart; the
resilience controller's pure diff (emergency_stop, pressure hysteresis, schedules, retention)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from autonomous.core.clock import SystemClock
from autonomous.backup.manifest import Manifest
from autonomous.intents import IntentStore
from autonomous.testing import copy_default_tree, free_port, make_context
from controllers.features import FeaturesController
from controllers.manager import ControllerManager
from controllers.resilience import PressureTracker, ResilienceController
from controllers.services import ServicesController


def service_yaml(name: str, port: int, *, core: bool, core_features: list[str]) -> str:
    return f"""apiVersion: atlas.autonomous/v1
kind: Service
metadata: {{name: {name}}}
spec:
  command: ["{{python}}", "-m", "autonomous.sample_stack", "--name", "{name}", "--port", "{port}"]
  port: {port}
  core: {str(core).lower()}
  health: {{path: /health, period_seconds: 0.2, timeout_seconds: 0.5, failure_threshold: 2,
           startup_grace_seconds: 3}}
  stop_grace_seconds: 2
  features: {{endpoint: /features, core: {core_features}}}
"""


FAST = """apiVersion: atlas.autonomous/v1
kind: PolicySet
metadata: {name: test-fast}
spec:
  mode: governed
  policy:
    supervision:
      restart_backoff: {initial_seconds: 0.1, factor: 2, max_seconds: 1, jitter: 0.1}
"""


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = copy_default_tree(tmp / "root")
        for f in (self.root / "desired_state").glob("*.yaml"):
            if f.name not in ("survival.yaml", "backups.yaml"):
                f.unlink()
        self.ports = {"nexus": free_port(), "robot": free_port()}
        (self.root / "desired_state" / "nexus.yaml").write_text(
            service_yaml("nexus", self.ports["nexus"], core=True,
                         core_features=["motion", "heartbeat"]))
        (self.root / "desired_state" / "robot.yaml").write_text(
            service_yaml("robot", self.ports["robot"], core=False, core_features=["sensors"]))
        (self.root / "policies" / "zz_fast.yaml").write_text(FAST)
        self.http = httpx.AsyncClient(trust_env=False, timeout=2)
        self.ctx: Any = None
        self.manager: ControllerManager | None = None

    async def start(self) -> None:
        self.ctx = make_context(self.tmp, root=self.root, clock=SystemClock())
        assert self.ctx.desired.current is not None, self.ctx.desired.error
        self.resilience = ResilienceController(self.ctx)
        self.manager = ControllerManager(self.ctx, [ServicesController(self.ctx),
                                                    FeaturesController(self.ctx),
                                                    self.resilience])
        await self.manager.start()

    async def stop(self) -> None:
        if self.manager is not None:
            await self.manager.stop()
            self.manager = None
            self.ctx.store.close()

    @property
    def facade(self) -> Any:
        return self.ctx.subsystems["resilience"]

    async def features(self, name: str) -> dict[str, bool] | None:
        try:
            r = await self.http.get(f"http://127.0.0.1:{self.ports[name]}/features")
            return r.json()["features"]
        except httpx.HTTPError:
            return None

    async def up(self, name: str) -> bool:
        try:
            r = await self.http.get(f"http://127.0.0.1:{self.ports[name]}/health", timeout=0.5)
            return r.status_code == 200
        except httpx.HTTPError:
            return False

    async def until(self, check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
async def stack(tmp_path: Path):
    s = Stack(tmp_path)
    try:
        await s.start()
        for name in ("nexus", "robot"):
            await s.until(lambda n=name: s.up(n), 15, f"{name} healthy")
        yield s
    finally:
        await s.stop()
        await s.http.aclose()


async def down(s: Stack, name: str) -> bool:
    return not await s.up(name)


@pytest.mark.slow
async def test_survival_stops_non_core_and_turns_features_off_then_restores(stack):
    s = stack
    state = await s.facade.enter_survival_mode("operator drill", actor="test")
    assert state["active"] and state["stopped_services"] == ["robot"]
    assert state["kept_services"] == ["nexus"] and state["errors"] == []
    assert {"evolution", "optimizations", "learning"} <= set(s.facade.get_disabled_features())
    # asked of the flags' owner: a degrade intent of survival; the state says what is off
    # only once the owner turned it off
    [it] = IntentStore(s.ctx.store, s.ctx.clock).active("Service/nexus", ("degrade",))
    assert it.requester == "survival" and state["feature_intents"] == {"nexus": it.id}
    await s.until(lambda: _reported_off(s), 10, "survival reports planning off")
    assert await s.features("nexus") == {"motion": True, "heartbeat": True, "planning": False}
    st = s.facade.survival.state()
    assert st["service_features"] == {"nexus": ["planning"]} and st["features_pending"] == {}
    await s.until(lambda: down(s, "robot"), 10, "robot stopped")
    await asyncio.sleep(1.0)  # services controller passes: robot stays down in survival
    assert not await s.up("robot")
    assert s.ctx.store.kv_get("survival")["active"] is True

    state = await s.facade.exit_survival_mode("drill over", actor="test")
    assert not state["active"] and state["exit_errors"] == []
    assert state["features_released"] == ["nexus"]
    assert IntentStore(s.ctx.store, s.ctx.clock).active(kinds=("degrade",)) == []
    await s.until(lambda: _planning_is(s, True), 10, "planning back on")
    await s.until(lambda: s.up("robot"), 15, "robot restarted")
    assert s.facade.get_disabled_features() == []


@pytest.mark.slow
async def test_survival_persists_across_an_operator_restart(stack):
    s = stack
    await s.facade.enter_survival_mode("restart test", actor="test")
    await s.until(lambda: down(s, "robot"), 10, "robot stopped")
    await s.stop()  # operator goes away (its services with it)
    await s.start()
    assert s.facade.is_in_survival()
    await s.until(lambda: s.up("nexus"), 15, "nexus back")
    await asyncio.sleep(1.0)
    assert not await s.up("robot")  # still survival: non-core not started
    # the restarted nexus came back with every feature on: the flags' owner turns them off
    # again, and survival's state says what is really off meanwhile
    await s.until(lambda: _planning_off(s), 15, "planning off again")
    await s.until(lambda: _reported_off(s), 5, "survival reports planning off")
    await s.facade.exit_survival_mode("restart test over", actor="test")
    await s.until(lambda: s.up("robot"), 15, "robot restarted after exit")
    await s.until(lambda: _planning_is(s, True), 10, "planning back on after exit")


async def _planning_is(s: Stack, on: bool) -> bool:
    f = await s.features("nexus")
    return f is not None and f["planning"] is on


async def _planning_off(s: Stack) -> bool:
    return await _planning_is(s, False)


async def _reported_off(s: Stack) -> bool:
    return "nexus/planning" in s.facade.get_disabled_features()


@pytest.mark.slow
async def test_emergency_stop_mode_enters_and_leaving_it_exits(stack):
    s = stack
    s.ctx.governance.set_mode("emergency_stop", actor="test", reason="drill")
    await s.until(lambda: _is(s, True), 10, "survival entered by governance")
    assert s.ctx.store.kv_get("survival")["source"] == "governance"
    await s.until(lambda: down(s, "robot"), 10, "robot stopped")
    s.ctx.governance.set_mode("governed", actor="test")
    await s.until(lambda: _is(s, False), 10, "survival exited")
    await s.until(lambda: s.up("robot"), 15, "robot restarted")


async def _is(s: Stack, active: bool) -> bool:
    return s.facade.is_in_survival() is active


# -- pure diff ---------------------------------------------------------------------------------
AUTO = {"enabled": True, "enter": {"cpu_percent": 95, "ram_percent": 95},
        "enter_after_seconds": 30, "exit": {"cpu_percent": 70, "ram_percent": 80},
        "exit_after_seconds": 60}


def observed(**over: Any) -> dict[str, Any]:
    base = {"mode": "governed", "survival": {"active": False},
            "pressure": {"cpu_percent": 10, "ram_percent": 10, "above_for": None,
                         "below_for": 100.0}, "now": 1000.0, "plans": {}, "up_for": 120.0}
    return {**base, **over}


def kinds(actions) -> list[tuple[str, str]]:
    return [(a.kind, a.params["op"]) for a in actions]


def test_diff_is_empty_when_nothing_is_due():
    assert ResilienceController.diff({"auto": AUTO, "plans": {}}, observed()) == ()


def test_diff_enters_on_emergency_stop_and_exits_when_it_is_left():
    d = {"auto": AUTO, "plans": {}}
    [a] = ResilienceController.diff(d, observed(mode="emergency_stop"))
    assert (a.kind, a.params["op"], a.params["source"]) == ("survival", "enter", "governance")
    active = {"active": True, "source": "governance"}
    assert ResilienceController.diff(d, observed(mode="emergency_stop", survival=active)) == ()
    [a] = ResilienceController.diff(d, observed(survival=active))
    assert a.params["op"] == "exit"
    # entered by a human through the API: only a human leaves it
    assert ResilienceController.diff(d, observed(survival={"active": True, "source": "api"})) \
        == ()


def test_pressure_hysteresis_enters_late_and_exits_later():
    tr = PressureTracker()
    d = {"auto": AUTO, "plans": {}}
    seen = []
    for t, cpu in [(0, 96), (10, 97), (20, 99), (31, 96)]:
        seen.append(kinds(ResilienceController.diff(d, observed(
            pressure=tr.update(t, {"cpu_percent": cpu, "ram_percent": 50}, AUTO)))))
    assert seen == [[], [], [], [("survival", "enter")]]
    active = {"active": True, "source": "auto"}
    seen = []
    for t, cpu in [(40, 80), (50, 60), (100, 65), (105, 90), (110, 60), (171, 60)]:
        seen.append(kinds(ResilienceController.diff(d, observed(
            survival=active, pressure=tr.update(t, {"cpu_percent": cpu, "ram_percent": 50},
                                                AUTO)))))
    # 80 % is between exit (70) and enter (95): neither; a spike resets the exit timer
    assert seen == [[], [], [], [], [], [("survival", "exit")]]
    off = {**AUTO, "enabled": False}
    p = tr.update(300, {"cpu_percent": 99, "ram_percent": 99}, AUTO)
    p = tr.update(400, {"cpu_percent": 99, "ram_percent": 99}, AUTO)
    assert ResilienceController.diff({"auto": off, "plans": {}}, observed(pressure=p)) == ()


def test_diff_leaves_feature_flags_to_their_owner():
    """In survival, flags a restarted service turned on again are the features controller's
    (test_features.py); the resilience controller plans nothing for them."""
    d = {"auto": AUTO, "plans": {}}
    assert ResilienceController.diff(d, observed(survival={"active": True, "source": "api"})) \
        == ()


def manifest(i: int, ts: float) -> Manifest:
    return Manifest(id=f"b{i}", plan="operator", kind="full", parent=None, created_at=ts,
                    sources={}, entries=[], seq=i)


def test_diff_schedules_full_and_incremental_backups_and_prunes():
    spec = {"schedule": {"every_seconds": 3600, "full_every": 3, "first_after_seconds": 60},
            "retention": {"keep_last": 2, "keep_daily": 0, "keep_weekly": 0}}
    d = {"auto": AUTO, "plans": {"operator": spec}}
    plan = {"last": None, "since_full": 0, "has_full": False, "backups": []}
    # never backed up: the first backup waits first_after_seconds from the operator's start
    assert ResilienceController.diff(d, observed(plans={"operator": plan}, up_for=59.0)) == ()
    [a] = ResilienceController.diff(d, observed(plans={"operator": plan}))
    assert a.params == {"op": "backup", "plan": "operator", "kind": "full"}
    plan = {"last": 1000.0 - 100, "since_full": 0, "has_full": True, "backups": []}
    assert ResilienceController.diff(d, observed(plans={"operator": plan})) == ()
    plan = {**plan, "last": 1000.0 - 3600}
    [a] = ResilienceController.diff(d, observed(plans={"operator": plan}))
    assert a.params["kind"] == "incremental"
    plan = {**plan, "since_full": 2, "backups": [manifest(i, 100.0 * i) for i in range(3)]}
    acts = ResilienceController.diff(d, observed(plans={"operator": plan}))
    assert [x.params.get("kind", x.params["op"]) for x in acts] == ["full", "prune"]
    assert acts[1].evidence["forget"] == ["b0"]
