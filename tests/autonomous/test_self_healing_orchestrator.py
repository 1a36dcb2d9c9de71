"""The healing pipeline with a fake services facade: classification → strategy → verify →
memory, history, graph; budget → back-off → isolation → slow retry; governance; breakers."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from typing import Any

import pytest

from autonomous.core.events import Event
from autonomous.self_healing.model import RecoveryStrategy
from autonomous.self_healing.verify import process_stopped
from autonomous.supervisor.revisions import spec_hash
from tests.autonomous.healing_fakes import (drain, exited, heal, healing_context, reconcile,
                                            run_try, spec)

GROWTH_SMALL_BUDGET = """apiVersion: atlas.autonomous/v1
kind: PolicySet
metadata: {name: test-budget}
spec:
  mode: growth
  policy:
    healing:
      restart_budget: {max_restarts: 2, window_seconds: 60, healthy_reset_seconds: 30}
      crashloop:
        backoff: {initial_seconds: 5, factor: 2, max_seconds: 20, jitter: 0.2}
        max_attempts: 2
      isolation: {slow_retry_seconds: 100}
"""


@pytest.fixture
def stack(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True),
                                                 "robot": spec(depends_on=["nexus"])})
    yield ctx, fake, orch
    ctx.store.close()


async def test_crash_is_restarted_verified_and_recorded(stack):
    ctx, fake, orch = stack
    events = ctx.bus.subscribe("healing.", "alert.")
    pid = fake.procs["nexus"]["pid"]
    fake.kill("nexus")
    orch.on_event(exited("nexus", pid))
    await drain(orch)
    [row] = orch.history.list(service="nexus")
    assert (row["state"], row["strategy"], row["rule"]) == ("healed", "RESTART_SERVICE",
                                                            "killed")
    assert row["mttr_s"] is not None and row["success"] is True
    assert fake.calls == [("start", "nexus")] and fake.procs["nexus"]["running"]
    [mem] = orch.memory.get_similar_failures(row["error_signature"])
    assert mem["recovery_used"] == "RESTART_SERVICE" and mem["success"] is True
    chain = ctx.graph.why(row["graph_node"])
    # the incident's error and ladder decision, then the step through the one gate (the
    # Executor's observation → decision (gate, mode, generation) → action → outcome)
    assert [n["type"] for n in chain] == ["error", "decision", "observation", "decision",
                                          "action", "outcome"]
    assert chain[3]["attrs"]["gate"] == "enforce" and chain[3]["attrs"]["mode"] == "growth"
    assert chain[4]["attrs"]["params"]["incident"] == row["id"]
    assert any(c["rel"] == "about" and c["node"]["label"] == "Service/nexus"
               for c in chain[1]["context"])
    topics = []
    while (ev := events.get_nowait()) is not None:
        topics.append(ev.topic)
    assert "healing.completed" in topics and "alert.human" not in topics


async def test_crash_loop_backs_off_isolates_alerts_then_slow_retry_recovers(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)},
                                      policy_edit=GROWTH_SMALL_BUDGET)
    alerts = ctx.bus.subscribe("alert.")
    fake.crash_on_start.add("nexus")
    for _ in range(3):  # third exit within the window is over the budget of 2
        pid = fake.procs["nexus"]["pid"]
        fake.kill("nexus", rc=1)
        orch.on_event(exited("nexus", pid, rc=1))
        await drain(orch)
    st = orch.state("nexus")
    assert st.phase == "backoff" and fake.overrides["nexus"]["paused"] is True
    starts_before = fake.starts
    for _ in range(2):  # max_attempts tries, each after its back-off delay
        ctx.clock.advance(25)
        # the due try: planned by diff, started through the Executor, its verification
        # observed on the following passes, its verdict settled
        await run_try(ctx, fake, orch, "nexus")
    assert st.phase == "isolated" and fake.overrides["nexus"]["isolated"] is True
    assert fake.starts - starts_before == 2  # bounded: one start per try, no storm
    # the isolation the diff planned for the last try's failure is an action of its own
    assert ctx.store.query("SELECT 1 FROM graph_nodes WHERE type='decision' AND "
                           "label='isolate Service/nexus'")
    alert = alerts.get_nowait()
    assert alert is not None and alert.topic == "alert.human"
    assert alert.data["service"] == "nexus" and alert.data["graph_link"].startswith("/api/graph")
    assert "logs_tail" in alert.data and alert.data["classification"]["error_type"]
    await reconcile(ctx, fake)
    await drain(orch)
    assert st.phase == "isolated"  # slow retry not due yet
    fake.crash_on_start.clear()  # the cause went away
    ctx.clock.advance(100)
    outcomes = await run_try(ctx, fake, orch, "nexus")
    assert [o.action.params.get("settle", False) for o in outcomes] == [False, True]
    assert st.phase == "normal" and fake.procs["nexus"]["running"]
    assert fake.overrides["nexus"] == {"isolated": False, "paused": False}
    released = [i for i in fake.intents.list("Service/nexus") if i.kind == "isolate"]
    assert released and all(i.state != "active" for i in released)
    assert released[0].outcome == "self-healing: isolated try 3"
    assert released[0].incident is not None  # bound to the crash-loop incident
    assert orch.alerts.list(service="nexus", open_only=True) == []
    rows = orch.history.list(service="nexus")
    assert rows[0]["state"] == "healed"


async def test_restarts_of_a_hung_service_count_against_the_budget(tmp_path):
    _ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)},
                                      policy_edit=GROWTH_SMALL_BUDGET)
    for _ in range(3):
        await heal(orch, "nexus", source="unhealthy", strategy="RESTART_SERVICE",
                                context={"running": True})
    await drain(orch)  # the CrashLoopBackOff the diff planned, run through the Executor
    assert orch.state("nexus").phase == "backoff"
    # two restarts; the third was refused and the back-off's pause intent stopped it
    assert fake.calls == [("stop", "nexus"), ("start", "nexus")] * 2 + [("stop", "nexus")]


async def test_hung_process_in_stopped_state_is_restarted(stack):
    _ctx, fake, orch = stack
    proc = subprocess.Popen(["sleep", "60"])
    try:
        proc.send_signal(signal.SIGSTOP)
        for _ in range(200):
            if process_stopped(proc.pid):
                break
            await asyncio.sleep(0.01)
        fake.procs["nexus"] = {"pid": proc.pid, "running": True, "returncode": None}
        ev = Event("service.unhealthy", {"service": "nexus", "pid": proc.pid,
                                         "error": "timeout after 1s", "consecutive_failures": 3})
        orch.on_event(ev)
        await drain(orch)
    finally:
        proc.kill()
        proc.wait()
    [row] = orch.history.list(service="nexus")
    assert (row["rule"], row["strategy"], row["state"]) == ("hang-stopped", "RESTART_SERVICE",
                                                            "healed")
    assert fake.calls == [("stop", "nexus"), ("start", "nexus")]


async def test_dependency_down_never_restarts_the_dependant(stack):
    _ctx, fake, orch = stack
    fake.kill("nexus")
    row = await heal(orch, "robot", source="unhealthy", context={"running": True})
    assert row["error_type"] == "DEPENDENCY" and row["state"] == "escalated"
    assert [a["strategy"] for a in row["attempts"]] == ["FALLBACK", "DEGRADE", "ALERT_HUMAN"]
    assert not [c for c in fake.calls if c[1] == "robot"]


async def test_governed_rollback_waits_for_approval_then_runs(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)}, mode="governed")
    good, bad = spec(core=True, version="1"), fake.specs()["nexus"]
    for s, known in ((good, 1), (bad, 0)):
        ctx.store.execute("INSERT INTO service_revisions(service, spec_hash, generation, spec, "
                          "first_seen, known_good) VALUES (?,?,?,?,?,?)",
                          ("nexus", spec_hash(s), 1, s.model_dump_json(), 0, known))
    fake.rollback_ok.add("nexus")
    row = await heal(orch, "nexus", source="exit", context={"exit_code": 1})
    assert (row["error_type"], row["state"]) == ("CONFIGURATION", "awaiting_approval")
    [req] = ctx.approvals.list(state="pending")
    assert req["action_kind"] == "rollback" and req["resource"] == "Service/nexus"
    assert req["action"]["params"]["strategy"] == "ROLLBACK"
    assert req["action"]["params"]["incident"] == row["id"]  # bound to the incident
    assert await reconcile(ctx, fake) == []  # still waiting: nothing to resume
    await drain(orch)
    assert ("rollback", "nexus") not in fake.calls
    board = ctx.status.controller("healing").resources  # the incident is a resource
    res = board[f"Incident/{row['id']}"]
    assert res.conditions["AwaitingApproval"].status == "True"
    assert (res.details["approval"], res.details["approval_state"]) == (req["id"], "pending")
    ctx.approvals.decide(req["id"], approve=True, actor="alice",
                         current_generation=ctx.desired.current.number)
    outcomes = await reconcile(ctx, fake)  # decided: the diff resumes the incident
    assert [(o.action.kind, o.ok) for o in outcomes] == [("resume", True)]
    await drain(orch)
    assert ("rollback", "nexus") in fake.calls
    [done] = orch.history.list(service="nexus")
    assert (done["state"], done["strategy"], done["gate"]) == ("healed", "ROLLBACK", "approved")
    assert await reconcile(ctx, fake) == []
    assert f"Incident/{row['id']}" not in board  # closed: off the board


async def test_rejected_proposal_moves_down_the_ladder(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)}, mode="governed")
    row = await heal(orch, "nexus", strategy="RESTART_ALL")
    [req] = ctx.approvals.list(state="pending")
    assert row["state"] == "awaiting_approval" and req["action_kind"] == "restart_all"
    ctx.approvals.decide(req["id"], approve=False, actor="bob",
                         current_generation=ctx.desired.current.number)
    outcomes = await reconcile(ctx, fake)  # decided: the diff resumes the incident
    assert [(o.action.kind, o.ok) for o in outcomes] == [("resume", True)]
    await drain(orch)
    [done] = orch.history.list(service="nexus")
    assert done["attempts"][0]["gate"] == "rejected"
    assert done["state"] == "healed" and done["strategy"] == "RETRY"
    assert fake.calls == []


async def test_emergency_stop_heals_only_core_services(tmp_path):
    _ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True),
                                                 "robot": spec(core=False)},
                                      mode="emergency_stop")
    for name in ("nexus", "robot"):
        pid = fake.procs[name]["pid"]
        fake.kill(name)
        orch.on_event(exited(name, pid))
    await drain(orch)
    assert orch.history.list(service="nexus")[0]["state"] == "healed"
    assert orch.history.list(service="robot") == []  # a skip is no incident
    assert not fake.procs["robot"]["running"]
    row = await heal(orch, "robot", source="exception", message="boom")
    assert row["state"] == "skipped" and "only core services" in row["message"]
    assert orch.history.list(service="robot") == []


async def test_dry_run_decides_and_records_without_acting(tmp_path):
    edit = """apiVersion: atlas.autonomous/v1
kind: PolicySet
metadata: {name: test-dry}
spec:
  mode: growth
  policy:
    governance:
      actions: {restart: dry_run}
"""
    _ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)}, policy_edit=edit)
    row = await heal(orch, "nexus", strategy="RESTART_SERVICE")
    assert row["state"] == "dry_run" and fake.calls == []


async def test_heal_breaker_stops_hammering_a_service(stack):
    _ctx, fake, orch = stack
    fake.crash_on_start.add("nexus")
    for _ in range(3):  # failure_threshold of healing.breaker
        row = await heal(orch, "nexus", strategy="RESTART_SERVICE")
        assert row["attempts"][0]["ok"] is False
    calls = len(fake.calls)
    row = await heal(orch, "nexus", strategy="RESTART_SERVICE")
    assert "not tried" in row["attempts"][0]["message"] and len(fake.calls) == calls
    assert row["state"] == "escalated"


async def test_paused_by_human_is_skipped_and_forced_strategy_goes_first(stack):
    _ctx, fake, orch = stack
    orch.state("nexus").paused_by_human = True
    pid = fake.procs["nexus"]["pid"]
    fake.kill("nexus")
    for _ in range(3):  # re-detected while paused: no stream of skipped incidents
        orch.on_event(exited("nexus", pid))
        await drain(orch)
    assert orch.history.list(service="nexus") == [] and fake.calls == []
    orch.state("nexus").paused_by_human = False
    orch.state("nexus").forced_strategy = "RESTART_SERVICE"
    row = await heal(orch, "robot", source="unresponsive", context={"running": True})
    assert row["attempts"][0]["strategy"] != "RESTART_SERVICE"  # forced only for nexus
    fake.procs["nexus"]["running"] = True
    row = await heal(orch, "nexus", source="unresponsive", context={"running": True})
    assert row["attempts"][0]["strategy"] == "RESTART_SERVICE"


async def test_measured_outcomes_choose_the_first_step(stack):
    """On the real store: the step outcomes of a signature (healing_knowledge) rank the
    ladder by the lower credible bound; a strategy that failed repeatedly loses to one that
    succeeded, though the rule's ladder puts it first."""
    _ctx, _fake, orch = stack
    first = await heal(orch, "nexus", source="unresponsive",
                                    context={"running": True, "probe_error": "HTTP 418"})
    assert first["attempts"][0]["strategy"] == "RETRY"  # no data: the ladder's order
    cls = orch.classifier
    sig = first["error_signature"]
    for _ in range(4):
        cls.learn_from_error(sig, {"strategy": "RETRY", "success": False})
        cls.learn_from_error(sig, {"strategy": "RESTART_SERVICE", "success": True})
    assert cls.outcomes(sig)[(sig, "RETRY")][1] >= 4
    again = await heal(orch, "nexus", source="unresponsive",
                                    context={"running": True, "probe_error": "HTTP 418"})
    assert again["attempts"][0]["strategy"] == "RESTART_SERVICE"


async def test_memory_over_limit_is_a_resource_fault_and_restarted(tmp_path):
    ctx, fake, orch = healing_context(
        tmp_path, {"nexus": spec(core=True, resources={"memory_mb": 100})})

    class Sup:
        def memory_rss(self, name: str) -> int:
            return 300 * 2**20 if fake.calls == [] else 50 * 2**20  # restart frees it

    ctx.subsystems["supervisor"] = Sup()
    await orch.tick()
    await drain(orch)
    [row] = orch.history.list(service="nexus")
    assert (row["error_type"], row["rule"], row["state"]) == ("RESOURCE", "memory-over-limit",
                                                              "healed")
    assert fake.calls == [("stop", "nexus"), ("start", "nexus")]


async def test_retry_re_checks_with_growing_delays_within_budget(stack, monkeypatch):
    """RETRY in start / observe form: each look re-checks once it is due, the delays grow
    (0.2 then 0.4 s, ±20 % jitter: a stable draw, the same each pass) within the budget."""
    ctx, _fake, orch = stack
    steps = orch.runner.steps
    answers: list[tuple[bool, str]] = []

    async def probe(name: str) -> tuple[bool, str]:
        return answers.pop(0) if answers else (False, "HTTP 503")

    monkeypatch.setattr(orch.check, "probe", probe)

    async def run_retry() -> tuple[Any, list[float]]:
        run = await steps.start(RecoveryStrategy.RETRY, "nexus", "test", incident=None,
                                gate="enforce", decision=None)
        delays = []
        while run.verdict is None:
            before = run.attempt
            await steps.observe(run)
            if run.attempt != before and run.verdict is None:
                delays.append(run.next_at - ctx.clock.monotonic())
            ctx.clock.advance(0.01)
        return run, delays

    answers += [(False, "HTTP 503"), (False, "HTTP 503"), (True, "HTTP 200")]
    run, delays = await run_retry()
    assert run.verdict.ok and run.attempt == 3
    d1, d2 = delays
    assert 0.16 <= d1 <= 0.24 and 0.32 <= d2 <= 0.48
    run, _ = await run_retry()  # never healthy: not a passing glitch, nothing was acted on
    assert not run.verdict.ok and not run.verdict.applicable and run.attempt == 3
    assert "HTTP 503" in run.verdict.message


async def test_state_survives_a_new_orchestrator(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)},
                                      policy_edit=GROWTH_SMALL_BUDGET)
    fake.crash_on_start.add("nexus")
    for _ in range(3):
        pid = fake.procs["nexus"]["pid"]
        fake.kill("nexus", rc=1)
        orch.on_event(exited("nexus", pid, rc=1))
        await drain(orch)
    from autonomous.self_healing.healing_orchestrator import HealingOrchestrator

    again = HealingOrchestrator(ctx)
    st = again.state("nexus")
    assert st.phase == "backoff" and st.next_at is not None
    assert st.next_at - ctx.clock.monotonic() == pytest.approx(
        orch.state("nexus").next_at - ctx.clock.monotonic())


def test_stats_per_type(stack):
    _ctx, _fake, orch = stack
    asyncio.run(heal(orch, "nexus", strategy="RESTART_SERVICE"))
    stats = orch.get_healing_stats()
    t = stats["by_type"]["TRANSIENT"]
    assert t["incidents"] == 1 and t["healed"] == 1 and t["mttr_s"]["max"] >= 0
    assert json.dumps(stats)  # JSON-friendly
    assert stats["total"]["healed"] == 1


async def test_inapplicable_strategies_do_not_open_the_heal_breaker(stack):
    _ctx, fake, orch = stack
    fake.kill("nexus")  # robot's dependency is down: FALLBACK and DEGRADE cannot apply
    for _ in range(4):  # more than healing.breaker.failure_threshold
        row = await heal(orch, "robot", source="exception", message="ConnectionError",
                                      context={"running": True})
        assert row["state"] == "escalated"
        assert [a["applicable"] for a in row["attempts"][:-1]] == [False, False]
    assert orch.breakers.heal("robot").get_state().value == "CLOSED"
    fake.procs["nexus"]["running"] = True
    pid = fake.procs["robot"]["pid"]
    fake.kill("robot")
    orch.on_event(exited("robot", pid))
    await drain(orch)
    row = orch.history.list(service="robot")[0]
    assert (row["state"], row["strategy"]) == ("healed", "RESTART_SERVICE")
    assert ("start", "robot") in fake.calls


async def test_escalation_suppresses_only_the_same_failure(stack):
    _ctx, fake, orch = stack
    fake.kill("nexus")
    first = await heal(orch, "robot", source="unhealthy", context={"running": True})
    assert first["state"] == "escalated"
    again = await heal(orch, "robot", source="unhealthy", context={"running": True})
    assert again["state"] == "skipped"
    assert len(orch.history.list(service="robot")) == 1  # the same failure: no new incident
    fake.procs["nexus"]["running"] = True
    other = await heal(orch, "robot", source="errors", context={
        "running": True, "status_code": 500}, message="5 of 5 probes answered HTTP 500")
    assert other["state"] != "skipped" and other["id"] != first["id"]
    assert other["error_signature"] != first["error_signature"]
    assert len(orch.history.list(service="robot")) == 2


def test_health_check_is_never_more_patient_than_the_services_own_probe():
    """A service answering after its declared probe timeout is not "healthy again" (a slow
    service was reported healed by RETRY every 10 s while its liveness probe timed out)."""
    import asyncio
    import time as _time
    from http.server import BaseHTTPRequestHandler

    from autonomous.core.clock import SystemClock
    from autonomous.resources.kinds.service import HealthSpec, ServiceSpec
    from autonomous.self_healing.verify import HealthCheck
    from autonomous.testing import serve_http

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            _time.sleep(0.4)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with serve_http(Slow) as srv:
        port = srv.server_address[1]

        class View:
            def __init__(self, timeout: float) -> None:
                self.spec = ServiceSpec(command=["x"], port=port,
                                        health=HealthSpec(path="/health", timeout_seconds=timeout))

            def observed(self) -> dict:
                return {"svc": {"running": True, "pid": 1}}

            def specs(self) -> dict:
                return {"svc": self.spec}

        async def check(timeout: float) -> bool:
            view = View(timeout)
            hc = HealthCheck(SystemClock(), lambda: view,  # type: ignore[arg-type, return-value]
                             lambda: {"detection": {"probe_timeout_seconds": 1.0}})
            try:
                ok, _ = await hc.probe("svc")
            finally:
                await hc.close()
            return ok

        assert asyncio.run(check(0.2)) is False  # its own probe would time out at 0.2 s
        assert asyncio.run(check(1.0)) is True
