"""Feature flags have one owner (controllers/features.py): its pure diff without I/O, and on a
real sample service under the real services + features controllers: a degrade intent turns
the flags off at the endpoint, a second requester's intent adds up, releasing restores only
what the owner turned off, a restarted service is degraded again; self-healing's DEGRADE and
survival mode go through it."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autonomous.core.clock import SystemClock
from autonomous.feature_flags import FeatureFlags
from autonomous.intents import IntentStore
from autonomous.resilience.survival_mode import SurvivalMode
from autonomous.self_healing.healing_orchestrator import HealingOrchestrator
from autonomous.self_healing.model import RecoveryStrategy
from autonomous.testing import copy_default_tree, free_port, make_context
from controllers.features import (DegradeRequest, DesiredFlags, FeaturesController,
                                  ObservedFlags, plan_service)
from controllers.manager import ControllerManager
from controllers.services import ServicesController

URL = "http://127.0.0.1:1/features"


def desired(*requests: DegradeRequest, core: tuple[str, ...] = ("motion",)) -> DesiredFlags:
    return DesiredFlags("nexus", URL, core, tuple(requests))


def req(intent: str, requester: str = "healing",
        features: tuple[str, ...] | None = None) -> DegradeRequest:
    return DegradeRequest(intent, requester, features, "why", f"decision-{intent}")


FLAGS = {"motion": True, "heartbeat": True, "planning": True}


# -- pure diff ---------------------------------------------------------------------------------
def test_nothing_asked_nothing_held_plans_nothing():
    assert plan_service(desired(), ObservedFlags(FLAGS)) is None
    assert FeaturesController.diff({"nexus": desired()}, {"nexus": ObservedFlags(None)}) == ()


def test_degrade_turns_non_core_features_off_never_core():
    a = plan_service(desired(req("i1")), ObservedFlags(FLAGS))
    assert a is not None and a.kind == "degrade" and a.resource == "Service/nexus"
    assert a.params["set"] == {"heartbeat": False, "planning": False}
    assert a.evidence["caused_by"] == "decision-i1"
    # an explicit list: only those, still never a core one or one the service lacks
    a = plan_service(desired(req("i1", features=("planning", "motion", "nope"))),
                     ObservedFlags(FLAGS))
    assert a is not None and a.params["set"] == {"planning": False}


def test_applied_degrade_plans_nothing_and_release_restores_only_what_the_owner_held():
    off = {**FLAGS, "heartbeat": False, "planning": False}
    assert plan_service(desired(req("i1")), ObservedFlags(off, held=("heartbeat", "planning"))) \
        is None
    # released: back on what the owner holds; heartbeat was off by the service's own config
    a = plan_service(desired(), ObservedFlags(off, held=("planning",)))
    assert a is not None and a.params["set"] == {"planning": True}


def test_requesters_add_up():
    both = desired(req("h", "healing", ("heartbeat",)), req("s", "survival", ("planning",)))
    a = plan_service(both, ObservedFlags(FLAGS))
    assert a is not None and a.params["set"] == {"heartbeat": False, "planning": False}
    off = {**FLAGS, "heartbeat": False, "planning": False}
    held = ("heartbeat", "planning")
    # healing released: only heartbeat back on, survival still wants planning off
    a = plan_service(desired(req("s", "survival", ("planning",))), ObservedFlags(off, held=held))
    assert a is not None and a.params["set"] == {"heartbeat": True}


def test_restarted_service_is_degraded_again_and_unreadable_one_waits():
    a = plan_service(desired(req("i1")), ObservedFlags(FLAGS, held=("heartbeat", "planning")))
    assert a is not None and a.params["set"] == {"heartbeat": False, "planning": False}
    assert plan_service(desired(req("i1")), ObservedFlags(None, "connection refused",
                                                          held=("planning",))) is None


names = st.sampled_from(["motion", "heartbeat", "planning", "vision"])


@given(flags=st.dictionaries(names, st.booleans()),
       reqs=st.lists(st.tuples(st.sampled_from(["healing", "survival"]),
                               st.none() | st.lists(names).map(tuple)), max_size=3),
       held=st.lists(names, unique=True).map(tuple))
def test_diff_is_deterministic_and_applying_it_converges(flags, reqs, held):
    d = desired(*(req(f"i{n}", who, feats) for n, (who, feats) in enumerate(reqs)))
    o = ObservedFlags(dict(flags), held=held)
    a = plan_service(d, o)
    assert a == plan_service(d, ObservedFlags(dict(flags), held=held))
    assert o.flags == flags  # side-effect free
    if a is None:
        return
    after = {**flags, **a.params["set"]}
    new_held = tuple(sorted((set(held) | {f for f, v in a.params["set"].items() if not v})
                            - {f for f, v in a.params["set"].items() if v}))
    assert plan_service(d, ObservedFlags(after, held=new_held)) is None
    assert all(not (f in d.core and v is False) for f, v in a.params["set"].items())


# -- a real sample service -------------------------------------------------------------------
def service_yaml(name: str, port: int, *, core: bool = True, extra: str = "") -> str:
    args = ", ".join(f'"{a}"' for a in ("{python}", "-m", "autonomous.sample_stack", "--name",
                                         name, "--port", str(port)))
    return f"""apiVersion: atlas.autonomous/v1
kind: Service
metadata: {{name: {name}}}
spec:
  command: [{args}{extra}]
  port: {port}
  core: {str(core).lower()}
  health: {{path: /health, period_seconds: 0.2, timeout_seconds: 0.5, failure_threshold: 2,
           startup_grace_seconds: 3}}
  stop_grace_seconds: 2
  features: {{endpoint: /features, core: [motion]}}
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
    def __init__(self, tmp: Path, port: int, extra: str) -> None:
        self.root = copy_default_tree(tmp / "root")
        for f in (self.root / "desired_state").glob("*.yaml"):
            if f.name != "survival.yaml":
                f.unlink()
        (self.root / "desired_state" / "nexus.yaml").write_text(
            service_yaml("nexus", port, extra=extra))
        (self.root / "policies" / "zz_fast.yaml").write_text(FAST)
        self.url = f"http://127.0.0.1:{port}/features"
        self.ctx = make_context(tmp, root=self.root, clock=SystemClock())
        assert self.ctx.desired.current is not None, self.ctx.desired.error
        self.owner = FeaturesController(self.ctx)
        self.manager = ControllerManager(self.ctx, [ServicesController(self.ctx), self.owner])
        self.flags = FeatureFlags(self.ctx.store, self.ctx.clock, self.ctx.bus)
        self.http = httpx.AsyncClient(trust_env=False, timeout=2)

    async def features(self) -> dict[str, bool] | None:
        try:
            return (await self.http.get(self.url)).json()["features"]
        except (httpx.HTTPError, KeyError, ValueError):
            return None

    async def until(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = check()
            if asyncio.iscoroutine(last):
                last = await last
            if last:
                return last
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}: {last!r}; "
                             f"owner state {self.flags.state()}")

    async def is_(self, want: dict[str, bool]) -> bool:
        return await self.features() == want


@pytest.fixture
async def make_stack(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[Stack] = []

    async def make(extra: str = "") -> Stack:
        s = Stack(tmp_path, free_port(), extra)
        made.append(s)
        await s.manager.start()
        await s.until(s.features, 15, "nexus answering /features")
        return s

    yield make
    for s in made:
        await s.manager.stop()
        await s.http.aclose()
        s.ctx.store.close()


ALL_ON = {"motion": True, "heartbeat": True, "planning": True}


@pytest.mark.slow
async def test_degrade_intent_turns_flags_off_at_the_endpoint_and_release_restores(make_stack):
    s = await make_stack()
    assert await s.features() == ALL_ON
    h = s.flags.degrade("nexus", requester="healing", reason="test: slow")
    await s.until(lambda: s.is_({"motion": True, "heartbeat": False, "planning": False}), 10,
                  "non-core features off")
    await s.until(lambda: s.flags.off_for(h.id, "nexus") == ["heartbeat", "planning"], 5,
                  "the owner records the intent applied")
    assert "applied" in (IntentStore(s.ctx.store, s.ctx.clock).get(h.id).outcome or "")
    # a second requester adds up; releasing the first keeps what the second wants off
    sv = s.flags.degrade("nexus", requester="survival", reason="test", features=["planning"])
    await s.until(lambda: s.flags.off_for(sv.id, "nexus") == ["planning"], 5, "survival applied")
    assert s.flags.release("nexus", requester="healing", reason="test: recovered") == 1
    await s.until(lambda: s.is_({"motion": True, "heartbeat": True, "planning": False}), 10,
                  "heartbeat back on, planning still off for survival")
    s.flags.release("nexus", requester="survival", reason="test: over")
    await s.until(lambda: s.is_(ALL_ON), 10, "everything back on")
    assert await s.flags.wait_restored("nexus", [h.id, sv.id], 5, 0.05) is None
    # every change was the owner's action, through the Executor, in the graph
    res = s.ctx.status.resource("features", "Service", "nexus")
    assert res.conditions["FeaturesDegraded"].status == "False"
    decisions = s.ctx.graph.find(type_="decision", label_contains="degrade Service/nexus")
    # off both; (survival's planning was off already: no action); heartbeat on; planning on
    assert len(decisions) == 3, decisions


@pytest.mark.slow
async def test_feature_off_by_the_services_own_config_is_never_turned_on(make_stack):
    s = await make_stack(', "--features", "motion,heartbeat=off,planning"')
    assert await s.features() == {"motion": True, "heartbeat": False, "planning": True}
    s.flags.degrade("nexus", requester="healing", reason="test")
    await s.until(lambda: s.is_({"motion": True, "heartbeat": False, "planning": False}), 10,
                  "planning off")
    s.flags.release("nexus", requester="healing", reason="test")
    await s.until(lambda: s.is_({"motion": True, "heartbeat": False, "planning": True}), 10,
                  "planning back on, heartbeat left as the service configured it")
    assert (s.flags.service_state("nexus") or {}).get("held") == []


@pytest.mark.slow
async def test_a_restarted_service_is_degraded_again(make_stack):
    s = await make_stack()
    h = s.flags.degrade("nexus", requester="survival", reason="test")
    await s.until(lambda: s.flags.off_for(h.id, "nexus") == ["heartbeat", "planning"], 10,
                  "applied")
    old = s.ctx.subsystems["services"].observed()["nexus"]["pid"]
    s.ctx.subsystems["supervisor"].signal("nexus", signal.SIGKILL)
    # it comes back with every feature on; the owner turns them off again
    await s.until(lambda: (s.ctx.subsystems["services"].observed()["nexus"].get("pid")
                           not in (None, old)), 15, "restarted")
    await s.until(lambda: s.is_({"motion": True, "heartbeat": False, "planning": False}), 15,
                  "degraded again after the restart")


@pytest.mark.slow
async def test_healing_degrade_asks_the_owner_and_exit_restores(make_stack):
    s = await make_stack()
    orch = HealingOrchestrator(s.ctx)
    res = await orch.runner.steps.carry(RecoveryStrategy.DEGRADE, "nexus", "test: slow responses")
    assert res.ok, res.message
    assert res.details["turned_off"] == ["heartbeat", "planning"]
    assert await s.features() == {"motion": True, "heartbeat": False, "planning": False}
    [it] = IntentStore(s.ctx.store, s.ctx.clock).active("Service/nexus", ("degrade",))
    assert it.requester == "healing" and it.id == res.details["intent"]
    assert await orch.strategies.exit_degraded_mode("nexus", res.details["previous"]) is True
    assert await s.features() == ALL_ON  # verified from the owner's result before returning
    assert IntentStore(s.ctx.store, s.ctx.clock).active("Service/nexus", ("degrade",)) == []


@pytest.mark.slow
async def test_healing_degrade_on_a_failing_endpoint_is_not_applicable(make_stack):
    s = await make_stack()
    r = await s.http.post(s.url.replace("/features", "/fault"),
                          json={"kind": "error", "status": 500})
    assert r.status_code == 200, r.text
    orch = HealingOrchestrator(s.ctx)
    res = await orch.runner.steps.carry(RecoveryStrategy.DEGRADE, "nexus", "test")
    assert not res.ok and not res.applicable
    assert "feature endpoint" in res.message and "500" in res.message, res.message
    # the request is withdrawn: nothing is left asking for the flags
    assert IntentStore(s.ctx.store, s.ctx.clock).active("Service/nexus", ("degrade",)) == []


@pytest.mark.slow
async def test_survival_and_healing_degrade_one_service_and_each_releases_only_its_own(
        make_stack):
    s = await make_stack()
    specs = lambda: dict(s.ctx.desired.current.services)  # noqa: E731
    survival = SurvivalMode(store=s.ctx.store, bus=s.ctx.bus, clock=s.ctx.clock,
                            services=lambda: s.ctx.subsystems.get("services"), specs=specs,
                            profile=lambda: {"core_services": ["nexus"],
                                             "disable_service_features": True,
                                             "disabled_features": []})
    orch = HealingOrchestrator(s.ctx)
    state = await survival.enter_survival_mode("drill", actor="test")
    assert state["stopped_services"] == [] and list(state["feature_intents"]) == ["nexus"]
    await s.until(lambda: survival.get_disabled_features() == ["nexus/heartbeat",
                                                               "nexus/planning"], 10,
                  "survival reports what the owner turned off")
    res = await orch.runner.steps.carry(RecoveryStrategy.DEGRADE, "nexus", "test: slow")
    assert res.ok and res.details["turned_off"] == ["heartbeat", "planning"]
    await survival.exit_survival_mode("drill over", actor="test")
    # healing still wants them off: the owner keeps them off
    await s.until(lambda: (s.flags.service_state("nexus") or {}).get("intents") ==
                  [res.details["intent"]], 10, "the owner dropped survival's intent")
    assert await s.features() == {"motion": True, "heartbeat": False, "planning": False}
    assert await orch.strategies.exit_degraded_mode("nexus", res.details["previous"])
    assert await s.features() == ALL_ON
