"""Fault suite: faults injected into a running sample stack (real processes, real HTTP, real
signals), healed by the real services + healing controllers under the real manager.

crash (SIGKILL) → restarted; hang (SIGSTOP) → restarted; slow → breaker opens → DEGRADE,
restored when the fault stops; errors → FALLBACK, routed back when it stops; errors with no
fallback and a failing /features → RESTART_SERVICE; crash loop →
back-off → isolated + human alerted, restarts bounded; bad configuration → ROLLBACK to the last
good revision; dependency down → DEPENDENCY, dependant degraded, never restarted; memory
growth past the limit → RESOURCE → restarted. Each leaves its chain in graph and memory.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from autonomous.intents import IntentStore
from autonomous.testing import free_port
from tests.autonomous.operator_stack import FAST_POLICY, service

pytestmark = pytest.mark.slow

async def test_crash_sigkill_is_restarted_and_healthy(stack_factory):
    s = await stack_factory({"nexus": service("nexus", free_port())})
    old = s.pid("nexus")
    s.ctx.subsystems["supervisor"].signal("nexus", signal.SIGKILL)
    row = await s.until(lambda: s.incident("nexus", state="healed"), 10, "crash healed")
    assert row["rule"] == "killed" and row["strategy"] == "RESTART_SERVICE"
    assert s.pid("nexus") not in (None, old) and await s.healthy("nexus")
    assert row["mttr_s"] < 5
    s.assert_recorded(row)


async def test_hang_sigstop_is_detected_and_restarted(stack_factory):
    s = await stack_factory({"nexus": service("nexus", free_port())})
    old = s.pid("nexus")
    s.ctx.subsystems["supervisor"].signal("nexus", signal.SIGSTOP)
    row = await s.until(lambda: s.incident("nexus", state="healed"), 12, "hang healed")
    assert row["rule"] == "hang-stopped" and row["strategy"] == "RESTART_SERVICE"
    assert s.pid("nexus") not in (None, old) and await s.healthy("nexus")
    s.assert_recorded(row)


async def test_slow_responses_open_the_breaker_degrade_then_restore(stack_factory):
    more = "  features: {endpoint: /features, core: [motion, heartbeat]}\n"
    s = await stack_factory({"nexus": service("nexus", free_port(), more=more)})
    pid = s.pid("nexus")
    await s.fault("nexus", {"kind": "slow", "delay_ms": 350})
    row = await s.until(lambda: s.incident("nexus", state="healed"), 10, "slow degraded")
    assert row["source"] == "slow" and row["strategy"] == "DEGRADE"
    feats = (await s.http.get(s.url("nexus", "/features"))).json()["features"]
    assert feats == {"motion": True, "heartbeat": True, "planning": False}
    await s.fault("nexus", None)

    async def restored() -> bool:
        f = (await s.http.get(s.url("nexus", "/features"))).json()["features"]
        return f["planning"] is True and s.orch.state("nexus").degraded is None

    await s.until(restored, 10, "features restored after the fault stopped")
    assert s.pid("nexus") == pid  # nothing was restarted
    assert s.orch.state("nexus").degraded is None
    s.assert_recorded(row)


async def test_error_responses_fail_over_then_route_back(stack_factory):
    p1, p2 = free_port(), free_port()
    more = "  fallback: {service: nexus-b}\n"
    s = await stack_factory({"nexus": service("nexus", p1, more=more),
                             "nexus-b": service("nexus-b", p2)})
    intents = IntentStore(s.ctx.store, s.ctx.clock)
    await s.fault("nexus", {"kind": "error", "status": 503})
    row = await s.until(lambda: s.incident("nexus", state="healed"), 15, "healed")
    # the fallback is asked for (an intent the gateway reconciles) but is no heal while
    # the front still answers 503: the ladder goes on to the restart that heals it
    first = row["attempts"][0]
    assert first["strategy"] == "FALLBACK" and not first["ok"], row["attempts"]
    assert "not healed" in first["message"]
    assert row["strategy"] == "RESTART_SERVICE" and row["error_type"] == "TRANSIENT"
    [fb] = [i for i in intents.list("Service/nexus") if i.kind == "fallback"]
    assert fb.params["target"] == "nexus-b" and fb.params["url"].endswith(f":{p2}/health")
    assert fb.incident == row["id"]
    await s.until(lambda: intents.get(fb.id).state == "released", 10, "routed back")
    s.assert_recorded(row)


async def test_error_responses_with_no_fallback_and_failing_features_are_restarted(stack_factory):
    more = "  features: {endpoint: /features, core: [motion, heartbeat]}\n"  # answers 500 too
    s = await stack_factory({"nexus": service("nexus", free_port(), more=more)})
    pid = s.pid("nexus")
    await s.fault("nexus", {"kind": "error", "status": 500})
    row = await s.until(lambda: s.incident("nexus", state="healed"), 15, "restarted")
    assert (row["rule"], row["strategy"]) == ("error-responses", "RESTART_SERVICE")
    assert [a["strategy"] for a in row["attempts"]] == ["FALLBACK", "DEGRADE",
                                                        "RESTART_SERVICE"]
    assert "feature endpoint" in row["attempts"][1]["message"]
    assert s.pid("nexus") not in (None, pid) and await s.healthy("nexus")
    assert s.orch.breakers.heal("nexus").get_state().value == "CLOSED"
    s.assert_recorded(row)


async def test_crash_loop_backs_off_then_isolates_and_alerts(stack_factory):
    alerts = None
    s = await stack_factory({"nexus": service("nexus", free_port())})
    alerts = s.ctx.bus.subscribe("alert.human")
    looper = service("looper", free_port(), extra=("--crash-on-start",), core=False)
    (s.root / "desired_state" / "looper.yaml").write_text(looper)
    assert s.ctx.desired.reload() is not None
    await s.until(lambda: s.orch.state("looper").phase == "isolated", 20, "isolated")
    ev = await asyncio.wait_for(alerts.get(), 5)
    assert ev.data["service"] == "looper" and ev.data["logs_tail"]
    [iso] = IntentStore(s.ctx.store, s.ctx.clock).active("Service/looper", ("isolate",))
    assert iso.requester == "healing" and iso.incident is not None
    log = (s.ctx.data_dir / "logs" / "looper.log").read_text()
    starts = log.count(" starting looper")
    assert 4 <= starts <= 3 + 1 + 2 + 1, starts  # budget + the exit over it + tries (+1 race)
    await asyncio.sleep(1.0)
    assert (s.ctx.data_dir / "logs" / "looper.log").read_text().count(" starting looper") == \
        starts  # no restart storm once isolated
    assert await s.healthy("nexus")
    row = s.incident("looper", state="escalated")
    assert row is not None
    s.assert_recorded(row)


async def test_bad_configuration_is_rolled_back(stack_factory):
    port = free_port()
    s = await stack_factory({"nexus": service("nexus", port)})
    await s.until(lambda: s.services.revisions("nexus")[0]["known_good"], 5, "known good")
    bad = service("nexus", port, extra=("--no-such-flag",), version="2")
    # stop-then-start lets the bad revision replace the process (with the default
    # max_unavailable 0 it is refused before: test_services_rollout.py)
    (s.root / "policies" / "zz-stop-then-start.yaml").write_text(
        FAST_POLICY.split("  policy:")[0].replace("test-fast", "test-stop-then-start")
        + "  policy:\n    supervision:\n      rollout: {max_unavailable: 1}\n")
    (s.root / "desired_state" / "nexus.yaml").write_text(bad)
    assert s.ctx.desired.reload() is not None
    row = await s.until(lambda: s.incident("nexus", state="healed"), 15, "rolled back")
    assert (row["error_type"], row["strategy"]) == ("CONFIGURATION", "ROLLBACK")
    assert await s.healthy("nexus")
    await s.until(lambda: s.ctx.status.resource("services", "Service", "nexus")
                  .conditions["Synced"].reason == "RolledBack", 5, "RolledBack status")
    s.assert_recorded(row)


async def test_dependency_down_degrades_the_dependant_without_restarting_it(stack_factory):
    p1, p2 = free_port(), free_port()
    dep = (f"  depends_on: [nexus]\n  dependencies:\n    - {{name: nexus-api, type: http, "
           f"url: \"http://127.0.0.1:{p1}/health\", timeout_seconds: 0.5}}\n"
           f"  features: {{endpoint: /features, core: [sensors]}}\n")
    s = await stack_factory({
        "nexus": service("nexus", p1),
        "robot": service("robot", p2, core=False,
                         extra=("--depends-on", f"http://127.0.0.1:{p1}/health"), more=dep)})
    robot_pid = s.pid("robot")
    s.services.set_override("nexus", paused=True, reason="test: take the dependency down")
    s.ctx.trigger("services")
    row = await s.until(lambda: s.incident("robot", error_type="DEPENDENCY", state="healed"),
                        10, "robot degraded for its dependency")
    assert row["strategy"] == "DEGRADE"
    feats = (await s.http.get(s.url("robot", "/features"))).json()["features"]
    assert feats == {"sensors": True, "vision": False}
    assert s.pid("robot") == robot_pid
    s.services.set_override("nexus", paused=False, reason="test: dependency back")
    s.ctx.trigger("services")

    async def restored() -> bool:
        f = (await s.http.get(s.url("robot", "/features"))).json()["features"]
        return f["vision"] is True

    await s.until(restored, 10, "robot restored when nexus came back")
    assert s.pid("robot") == robot_pid  # never restarted for its dependency
    s.assert_recorded(row)


async def test_memory_growth_past_the_limit_is_restarted(stack_factory):
    more = "  resources: {memory_mb: 90}\n"
    s = await stack_factory({"nexus": service("nexus", free_port(), more=more)})
    old = s.pid("nexus")
    await s.fault("nexus", {"kind": "memory", "mb_per_s": 400, "max_mb": 150})
    row = await s.until(lambda: s.incident("nexus", state="healed"), 12, "memory healed")
    assert (row["error_type"], row["rule"], row["strategy"]) == ("RESOURCE",
                                                                 "memory-over-limit",
                                                                 "RESTART_SERVICE")
    assert s.pid("nexus") not in (None, old)
    rss = s.ctx.subsystems["supervisor"].memory_rss("nexus")
    assert rss is not None and rss / 2**20 < 90
    s.assert_recorded(row)


ISOLATE_NEEDS_APPROVAL = """apiVersion: atlas.autonomous/v1
kind: PolicySet
metadata: {name: test-isolate-approval}
spec:
  mode: growth
  policy:
    governance:
      actions: {isolate: require_approval}
"""


async def test_a_crash_loop_isolation_awaiting_approval_keeps_the_process_stopped(
        stack_factory):
    """Real processes: the crash loop's last try fails, its isolation waits for a human —
    the failing process is not started again meanwhile (the back-off's pause holds it); once
    approved it is isolated and a human alerted."""
    s = await stack_factory({"nexus": service("nexus", free_port())}, ISOLATE_NEEDS_APPROVAL)
    looper = service("looper", free_port(), extra=("--crash-on-start",), core=False)
    (s.root / "desired_state" / "looper.yaml").write_text(looper)
    assert s.ctx.desired.reload() is not None
    await s.until(lambda: s.ctx.approvals.list(state="pending"), 30, "isolation asked for")
    [req] = s.ctx.approvals.list(state="pending")
    assert (req["action_kind"], req["resource"]) == ("isolate", "Service/looper")
    st = s.orch.state("looper")
    assert st.phase == "backoff" and st.isolate_due is not None  # not isolated: gated
    [held] = IntentStore(s.ctx.store, s.ctx.clock).active("Service/looper", ("pause",))
    assert held.requester == "healing"
    log = s.ctx.data_dir / "logs" / "looper.log"
    starts = log.read_text().count(" starting looper")
    import json

    def repeats() -> int:  # healing re-planned the isolation: the same decision, touched
        row = s.ctx.store.query_one("SELECT attrs FROM graph_nodes WHERE type='decision' "
                                    "AND label='isolate Service/looper' ORDER BY ts DESC")
        return int(json.loads(row["attrs"]).get("repeats", 0)) if row else -1

    for _ in range(3):  # reconcile passes while the human decides: it stays stopped
        seen = repeats()
        s.ctx.trigger("healing")
        await s.until(lambda n=seen: repeats() > n, 20, "isolation re-planned")
        assert not (s.services.observed().get("looper") or {}).get("running")
    assert log.read_text().count(" starting looper") == starts
    assert len(s.ctx.approvals.list(state="pending")) == 1  # one request, not one per pass
    s.ctx.approvals.decide(req["id"], approve=True, actor="alice",
                           current_generation=s.ctx.desired.current.number)
    s.ctx.trigger("healing")
    await s.until(lambda: s.orch.state("looper").phase == "isolated", 20, "isolated")
    [iso] = IntentStore(s.ctx.store, s.ctx.clock).active("Service/looper", ("isolate",))
    assert iso.requester == "healing"
    assert log.read_text().count(" starting looper") == starts
    assert s.orch.alerts.list(service="looper", open_only=True)  # a human is alerted
    assert await s.healthy("nexus")
