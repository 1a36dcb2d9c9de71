"""One owner per process: healing asks the services controller through intents
(``autonomous.intents``) and never starts, stops or restarts a process itself.

Real ServicesController + HealingController under the real manager, real sample processes,
real signals."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from autonomous.core.clock import FakeClock
from autonomous.intents import IntentStore
from autonomous.store import Store
from autonomous.testing import free_port
from tests.autonomous.operator_stack import service

pytestmark = pytest.mark.slow

BIG_BUDGET = """apiVersion: atlas.autonomous/v1
kind: PolicySet
metadata: {name: test-big-budget}
spec:
  mode: growth
  policy:
    healing:
      restart_budget: {max_restarts: 100, window_seconds: 300, healthy_reset_seconds: 5}
"""


def drain(sub: Any) -> list[Any]:
    out = []
    while (ev := sub.get_nowait()) is not None:
        out.append(ev)
    return out


async def test_twenty_kills_are_twenty_restarts_by_the_owner(stack_factory):  # noqa: F811
    s = await stack_factory({"nexus": service("nexus", free_port())}, BIG_BUDGET)
    sub = s.ctx.bus.subscribe("service.started", "service.exited")
    store = IntentStore(s.ctx.store, s.ctx.clock)
    pids = [s.pid("nexus")]
    for i in range(1, 21):
        s.ctx.subsystems["supervisor"].signal("nexus", signal.SIGKILL)

        def recovered(n: int = i) -> bool:
            healed = [r for r in s.orch.history.list(service="nexus", limit=100)
                      if r["state"] == "healed"]
            pid = s.pid("nexus")
            return len(healed) == n and pid is not None and pid != pids[-1]

        await s.until(recovered, 15, f"recovery {i}")
        await s.until(lambda: s.healthy("nexus"), 10, f"nexus healthy after kill {i}")
        pids.append(s.pid("nexus"))
    # every heal finished and every intent settled: nothing left that could restart it
    await s.until(lambda: not store.active("Service/nexus"), 10, "intents settled")
    events = [e for e in drain(sub) if e.data["service"] == "nexus"]
    starts = [e for e in events if e.topic == "service.started"]
    exits = [e for e in events if e.topic == "service.exited"]
    assert len(starts) == 20, [(e.topic, e.data) for e in events]
    assert len(exits) == 20 and all(e.data["returncode"] == -9 for e in exits)  # no -15
    assert len(set(pids)) == 21
    restarts = [i for i in store.list("Service/nexus", limit=100)
                if i.kind == "restart_requested"]
    assert len(restarts) == 20 and all(i.state == "consumed" for i in restarts)
    rows = {r["id"]: r for r in s.orch.history.list(service="nexus", limit=100)}
    # healing never restarted a live process itself: each intent was satisfied by the owner's
    # crash restart, or (its probes saw the dead process before the owner reaped it) carried
    # out as that one restart: 20 starts, 20 exits, all by SIGKILL (no -15) above
    killed = {e.data.get("pid") for e in exits}
    assert all((i.outcome or "").startswith("satisfied") or
               ((i.outcome or "").startswith("restart: started") and i.params.get("pid") in killed)
               for i in restarts), [
        (i.outcome, i.params, rows.get(i.incident, {}).get("source")) for i in restarts
        if not (i.outcome or "").startswith("satisfied")]
    assert all(i.incident for i in restarts)  # each bound to its incident


async def test_sigstop_restart_is_done_by_the_owner_once(stack_factory):  # noqa: F811
    s = await stack_factory({"nexus": service("nexus", free_port())})
    sub = s.ctx.bus.subscribe("service.started", "service.exited")
    old = s.pid("nexus")
    s.ctx.subsystems["supervisor"].signal("nexus", signal.SIGSTOP)
    row = await s.until(lambda: s.incident("nexus", state="healed"), 12, "hang healed")
    assert row["strategy"] == "RESTART_SERVICE"
    store = IntentStore(s.ctx.store, s.ctx.clock)
    [intent] = [i for i in store.list("Service/nexus") if i.kind == "restart_requested"]
    assert intent.state == "consumed" and intent.params["pid"] == old
    assert intent.outcome.startswith("restart: started pid"), intent.outcome
    assert intent.incident == row["id"]
    events = [e for e in drain(sub) if e.data["service"] == "nexus"]
    assert [e.topic for e in events] == ["service.exited", "service.started"]
    # why was it restarted? from the owner's restart back to the probes healing saw
    outcome = s.ctx.status.controller("services").last_decisions["Service/nexus"]
    chain = s.ctx.graph.why(outcome)
    types = [n["type"] for n in chain]
    assert types[0] == "error" and types[-1] == "outcome", types
    error = chain[0]["attrs"]
    assert error["incident"] == row["id"] and error["stopped"] is True
    probes = error["probes_seen"]
    assert probes and all("latency_ms" in p or "error" in p for p in probes), probes
    owner = [n for n in chain if n["type"] == "observation"
             and n["attrs"].get("controller") == "services"]
    assert owner and owner[0]["attrs"]["evidence"]["intent"] == intent.id
    healer = [n for n in chain if n["type"] == "decision" and n["attrs"].get("gate")]
    assert len(healer) == 2  # healing's restart through the gate, then the owner's


def test_intent_store_lifecycle_and_retention(tmp_path):
    clock = FakeClock()
    store = Store(tmp_path / "db.sqlite").open()
    intents = IntentStore(store, clock)
    a = intents.request("restart_requested", "Service/x", reason="r", requester="healing",
                        params={"pid": 1})
    assert intents.request("restart_requested", "Service/x", reason="r", requester="healing",
                           params={"pid": 1}).id == a.id  # not duplicated for the same pid
    iso = intents.request("isolate", "Service/x", reason="bad", requester="healing")
    iso2 = intents.request("isolate", "Service/x", reason="worse", requester="healing")
    assert intents.get(iso.id).state == "released" and intents.get(iso2.id).state == "active"
    with pytest.raises(ValueError, match="intent kind 'reboot' is not one of"):
        intents.request("reboot", "Service/x", reason="r", requester="t")
    clock.advance(200)
    assert intents.expire_due(120) == 1 and intents.get(a.id).state == "expired"
    assert intents.release("isolate", "Service/x", "fixed") == 1
    clock.advance(8 * 86400)
    assert intents.prune(7) == 3 and intents.list() == []
    store.close()
