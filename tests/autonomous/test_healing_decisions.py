"""Decisions the healing engine used to make itself, now the controller's pure diff (issue 10
item 2): whether a failure opens an incident, the crash-loop delays (deterministic jitter),
the healthy reset of the restart count; and an isolation awaiting approval keeps the failing
service stopped (crash loop and ladder), released once the approval is decided."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
import pytest

from autonomous.core.backoff import BackoffSpec, stable_draw
from autonomous.core.events import Event
from controllers.healing import HealingController
from controllers.healing_diff import (HealingDesired, HealingObserved, IncidentView,
                                      ServiceHealing, budget_step, diff)
from controllers.healing_plan import Budget, Intake, crashloop_delay, skip_reason
from tests.autonomous.healing_fakes import (drain, exited, heal, healing_context, reconcile,
                                            run_try, spec)

SPEC = BackoffSpec(initial=5, factor=2, max_delay=20, jitter=0.2)
BUDGET = Budget(2, 60, 2, SPEC, 30)

ISOLATE_GATED = """apiVersion: atlas.autonomous/v1
kind: PolicySet
metadata: {name: test-isolate-gated}
spec:
  mode: growth
  policy:
    governance:
      actions: {isolate: require_approval}
    healing:
      restart_budget: {max_restarts: 2, window_seconds: 60, healthy_reset_seconds: 30}
      crashloop:
        backoff: {initial_seconds: 5, factor: 2, max_seconds: 20, jitter: 0.2}
        max_attempts: 2
      isolation: {slow_retry_seconds: 100}
"""


# -- pure ------------------------------------------------------------------------------------
intakes = st.builds(Intake, service=st.sampled_from(["a", "b"]), declared=st.booleans(),
                    core=st.booleans(), manual=st.booleans(), paused_by_human=st.booleans(),
                    mode=st.sampled_from(["growth", "governed", "emergency_stop"]),
                    survival=st.booleans(),
                    phase=st.sampled_from(["normal", "backoff", "isolated"]),
                    source=st.sampled_from(["exit", "unhealthy", "slow", "errors", "manual"]),
                    mitigated=st.booleans(),
                    escalated_ago=st.one_of(st.none(), st.floats(0, 100)),
                    dedup_seconds=st.sampled_from([0.0, 30.0]))


@given(intakes)
def test_skip_reason_is_pure_and_follows_the_observed_facts(i):
    got = skip_reason(i)
    assert got == skip_reason(i)
    if not i.declared:
        assert got is None  # recorded (skipped) by the engine: its only trace
        return
    blocked = ((i.paused_by_human and not i.manual)
               or (not i.core and (i.mode == "emergency_stop" or i.survival))
               or (i.phase != "normal" and not i.manual)
               or (i.mitigated and i.source in ("slow", "errors") and not i.manual)
               or (i.escalated_ago is not None and i.escalated_ago < i.dedup_seconds
                   and not i.manual and i.source not in ("exit", "exception", "manual")))
    assert (got is not None) == blocked


def test_skip_reasons_say_why():
    assert "paused by a human" in skip_reason(Intake("a", True, paused_by_human=True))
    assert skip_reason(Intake("a", True, paused_by_human=True, manual=True)) is None
    assert "emergency_stop" in skip_reason(Intake("a", True, mode="emergency_stop"))
    assert skip_reason(Intake("a", True, core=True, mode="emergency_stop")) is None
    assert "survival" in skip_reason(Intake("a", True, survival=True))
    assert "crash-loop back-off" in skip_reason(Intake("a", True, core=True, phase="backoff"))
    assert "fallback already" in skip_reason(Intake("a", True, source="slow", mitigated=True))
    assert skip_reason(Intake("a", True, source="exit", mitigated=True)) is None
    alerted = Intake("a", True, source="unhealthy", escalated_ago=5.0, dedup_seconds=30.0)
    assert "human was alerted" in skip_reason(alerted)
    assert skip_reason(Intake("a", True, source="exit", escalated_ago=5.0,
                              dedup_seconds=30.0)) is None  # an exit still counts


@given(st.text(min_size=1, max_size=12), st.integers(1, 8))
def test_crashloop_delay_is_deterministic_and_inside_its_jitter(name, attempt):
    d = crashloop_delay(BUDGET, name, attempt)
    assert d == crashloop_delay(BUDGET, name, attempt)
    base = min(20.0, 5 * 2 ** (attempt - 1))
    assert d is not None and base * 0.8 - 1e-9 <= d <= min(20.0, base * 1.2) + 1e-9
    assert 0.0 <= stable_draw(f"{name}/{attempt}") < 1.0


def test_services_do_not_back_off_in_step():
    delays = {crashloop_delay(BUDGET, f"svc{i}", 1) for i in range(20)}
    assert len(delays) > 10  # derived from the service: spread, yet the same each pass


def test_backoff_plan_carries_its_delay_and_is_the_same_each_exit():
    desired = HealingDesired(1, {"a": "h"}, None, BUDGET)
    sv = ServiceHealing("a", restarts=(1.0, 2.0, 3.0))
    one, two = budget_step(desired, "a", sv, 3.0), budget_step(desired, "a", sv, 4.0)
    assert one is not None and two is not None and one.key() == two.key()
    assert one.params["delay_seconds"] == crashloop_delay(BUDGET, "a", 1)


def test_a_due_try_plans_the_delay_its_failure_leads_to():
    desired = HealingDesired(1, {"a": "h"}, None, BUDGET)
    sv = ServiceHealing("a", "backoff", attempts=0, next_at=5.0)
    [a] = diff(desired, HealingObserved(6.0, {"a": sv}))
    assert (a.kind, a.params["on_failure"]) == ("retry", "backoff")
    assert a.params["next_delay_seconds"] == crashloop_delay(BUDGET, "a", 2)
    [last] = diff(desired, HealingObserved(6.0, {"a": ServiceHealing("a", "backoff", 1, 5.0)}))
    assert last.params["on_failure"] == "isolate" and last.params["next_delay_seconds"] is None


def test_healthy_reset_is_planned_once_health_is_proven_long_enough():
    desired = HealingDesired(1, {"a": "h"}, None, BUDGET)
    sv = ServiceHealing("a", restarts=(1.0, 2.0), healthy_since=10.0)
    assert diff(desired, HealingObserved(39.0, {"a": sv})) == ()
    assert HealingController.requeue_after(desired, HealingObserved(39.0, {"a": sv})) == 1.0
    [a] = diff(desired, HealingObserved(40.0, {"a": sv}))
    assert a.kind == "reset_restarts" and a.evidence["restarts"] == 2
    assert diff(desired, HealingObserved(40.0, {"a": ServiceHealing("a", restarts=(1.0,))})) \
        == ()  # not healthy: nothing is forgiven


def test_isolation_due_is_planned_until_done_unless_rejected():
    desired = HealingDesired(1, {"a": "h"}, None, BUDGET)
    due = {"was": "backoff", "message": "exit 1", "attempt": 2}
    sv = ServiceHealing("a", "backoff", 2, 100.0, isolate_due=due,
                        isolation_approval="ap1", isolation_approval_state="pending")
    [a] = diff(desired, HealingObserved(200.0, {"a": sv}))  # not the due try: isolation
    assert (a.kind, a.params) == ("isolate", {"service": "a", "crashloop": True})
    rejected = ServiceHealing("a", "backoff", 2, 100.0, isolate_due=due,
                              isolation_approval="ap1", isolation_approval_state="rejected")
    [b] = diff(desired, HealingObserved(200.0, {"a": rejected}))
    assert b.kind == "retry"  # the human said no: the slow tries go on, it stays stopped


def test_an_isolation_awaiting_approval_holds_the_service_stopped():
    desired = HealingDesired(1, {"a": "h"})
    inc = IncidentView("i1", "a", "awaiting_approval", 0, "ISOLATE", "ap1", "pending")
    [a] = diff(desired, HealingObserved(0.0, {}, incidents={"i1": inc}))
    assert a.kind == "hold" and a.params == {"service": "a", "incident": "i1",
                                             "approval": "ap1"}
    held = IncidentView("i1", "a", "awaiting_approval", 0, "ISOLATE", "ap1", "pending", True)
    assert diff(desired, HealingObserved(0.0, {}, incidents={"i1": held})) == ()
    other = IncidentView("i1", "a", "awaiting_approval", 0, "RESTART_ALL", "ap1", "pending")
    assert diff(desired, HealingObserved(0.0, {}, incidents={"i1": other})) == ()
    decided = IncidentView("i1", "a", "awaiting_approval", 0, "ISOLATE", "ap1", "approved",
                           True)
    [r] = diff(desired, HealingObserved(0.0, {}, incidents={"i1": decided}))
    assert r.kind == "resume"


# -- the engine carries out what was planned ---------------------------------------------------
async def _crash_loop_to_isolation(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)},
                                      policy_edit=ISOLATE_GATED)
    fake.crash_on_start.add("nexus")
    for _ in range(3):  # over the budget of 2: CrashLoopBackOff
        pid = fake.procs["nexus"]["pid"]
        fake.kill("nexus", rc=1)
        orch.on_event(exited("nexus", pid, rc=1))
        await drain(orch)
    assert orch.state("nexus").phase == "backoff"
    for _ in range(2):  # max_attempts failed tries; the last one leads to isolation
        ctx.clock.advance(25)
        await run_try(ctx, fake, orch, "nexus")
    return ctx, fake, orch


async def test_crash_loop_isolation_awaiting_approval_keeps_the_service_stopped(tmp_path):
    ctx, fake, orch = await _crash_loop_to_isolation(tmp_path)
    st_ = orch.state("nexus")
    [req] = ctx.approvals.list(state="pending")
    assert (req["action_kind"], req["resource"]) == ("isolate", "Service/nexus")
    assert st_.phase == "backoff" and st_.isolate_due is not None  # not isolated: gated
    assert fake.overrides["nexus"]["paused"] is True and not fake.procs["nexus"]["running"]
    board = ctx.status.controller("healing").resources
    [key] = [k for k in board if k.startswith("Incident/")]
    assert board[key].conditions["AwaitingApproval"].status == "True"
    assert board[key].details["approval"] == req["id"]
    starts = fake.starts
    ctx.clock.advance(150)  # past the slow retry: still no try while the human decides
    outcomes = await reconcile(ctx, fake)
    await drain(orch)
    assert [o.action.kind for o in outcomes] == ["isolate"] and fake.starts == starts
    assert len(ctx.approvals.list(state="pending")) == 1  # one request, not one per pass
    ctx.approvals.decide(req["id"], approve=True, actor="alice",
                         current_generation=ctx.desired.current.number)
    outcomes = await reconcile(ctx, fake)
    await drain(orch)
    assert [(o.action.kind, o.ok) for o in outcomes] == [("isolate", True)]
    assert st_.phase == "isolated" and st_.isolate_due is None
    assert fake.overrides["nexus"]["isolated"] is True and fake.starts == starts
    assert orch.alerts.list(service="nexus", open_only=True)  # a human is alerted


async def test_a_rejected_crash_loop_isolation_keeps_backing_off(tmp_path):
    ctx, fake, orch = await _crash_loop_to_isolation(tmp_path)
    [req] = ctx.approvals.list(state="pending")
    ctx.approvals.decide(req["id"], approve=False, actor="bob",
                         current_generation=ctx.desired.current.number)
    assert await reconcile(ctx, fake) == []  # the slow retry is not due yet
    assert orch.state("nexus").phase == "backoff"
    assert fake.overrides["nexus"] == {"isolated": False, "paused": True,
                                       "reason": fake.overrides["nexus"]["reason"]}
    starts = fake.starts
    ctx.clock.advance(100)
    outcomes = await run_try(ctx, fake, orch, "nexus")
    assert [o.action.kind for o in outcomes] == ["retry", "retry"]  # started; settled
    assert fake.starts == starts + 1
    assert not fake.procs["nexus"]["running"]  # failed again: kept stopped, not isolated
    assert fake.overrides["nexus"]["paused"] is True
    assert fake.overrides["nexus"]["isolated"] is False and orch.state("nexus").phase == "backoff"


async def _ladder_isolate_pending(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)},
                                      policy_edit=ISOLATE_GATED)
    row = await heal(orch, "nexus", source="unhealthy", strategy="ISOLATE",
                                  context={"running": True})
    assert row["state"] == "awaiting_approval" and fake.procs["nexus"]["running"]
    outcomes = await reconcile(ctx, fake)
    assert [(o.action.kind, o.ok) for o in outcomes] == [("hold", True)]
    assert fake.overrides["nexus"]["paused"] is True and not fake.procs["nexus"]["running"]
    assert await reconcile(ctx, fake) == []  # held: nothing more until the human decides
    [req] = ctx.approvals.list(state="pending")
    return ctx, fake, orch, row, req


async def test_ladder_isolation_awaiting_approval_holds_then_isolates(tmp_path):
    ctx, fake, orch, row, req = await _ladder_isolate_pending(tmp_path)
    ctx.approvals.decide(req["id"], approve=True, actor="alice",
                         current_generation=ctx.desired.current.number)
    outcomes = await reconcile(ctx, fake)
    await drain(orch)
    assert [(o.action.kind, o.ok) for o in outcomes] == [("resume", True)]
    kinds = {i.kind: i.state for i in fake.intents.list("Service/nexus")
             if i.incident == row["id"]}
    assert kinds == {"isolate": "active", "pause": "released"}  # the hold ends, isolation holds
    assert fake.overrides["nexus"]["isolated"] is True and not fake.procs["nexus"]["running"]


async def test_a_rejected_ladder_isolation_releases_the_hold(tmp_path):
    ctx, fake, orch, row, req = await _ladder_isolate_pending(tmp_path)
    ctx.approvals.decide(req["id"], approve=False, actor="bob",
                         current_generation=ctx.desired.current.number)
    outcomes = await reconcile(ctx, fake)
    await drain(orch)
    assert [(o.action.kind, o.ok) for o in outcomes] == [("resume", True)]
    assert fake.overrides["nexus"]["paused"] is False and fake.procs["nexus"]["running"]
    [done] = orch.history.list(service="nexus")
    assert done["attempts"][0]["gate"] == "rejected"


async def test_proven_health_forgives_the_counted_restarts(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)},
                                      policy_edit=ISOLATE_GATED)
    for _ in range(2):  # inside the budget of 2
        pid = fake.procs["nexus"]["pid"]
        fake.kill("nexus")
        orch.on_event(exited("nexus", pid))
        await drain(orch)
    assert len(orch.state("nexus").restarts) == 2
    orch.on_event(Event("service.healthy", {"service": "nexus"}))
    ctl = fake.healing
    assert await reconcile(ctx, fake) == []
    # the fake clock moved by the poll interval while the restarts' steps were verified
    wait = ctl.requeue_after(ctl.desired(), await ctl.observe())
    assert wait == pytest.approx(30.0)
    ctx.clock.advance(wait + 1e-9)
    outcomes = await reconcile(ctx, fake)
    assert [(o.action.kind, o.ok) for o in outcomes] == [("reset_restarts", True)]
    assert orch.state("nexus").restarts == []
    pid = fake.procs["nexus"]["pid"]
    fake.kill("nexus")
    orch.on_event(exited("nexus", pid))  # a new crash starts a new count: no back-off
    await drain(orch)
    assert orch.state("nexus").phase == "normal" and fake.procs["nexus"]["running"]


def test_a_mitigated_service_is_recovered_once_observed_healthy():
    desired = HealingDesired(1, {"a": "h"}, recheck_seconds=1.0)
    sick = ServiceHealing("a", mitigated=True, recovered=False)
    assert diff(desired, HealingObserved(0.0, {"a": sick})) == ()
    assert HealingController.requeue_after(desired, HealingObserved(0.0, {"a": sick})) == 1.0
    [a] = diff(desired, HealingObserved(0.0, {"a": ServiceHealing("a", mitigated=True,
                                                                  recovered=True)}))
    assert (a.kind, a.params) == ("recover", {"service": "a"})
    busy = ServiceHealing("a", busy=True, mitigated=True, recovered=True)
    assert diff(desired, HealingObserved(0.0, {"a": busy})) == ()  # a heal of it runs


async def test_an_isolation_awaiting_approval_survives_an_operator_restart(tmp_path):
    from autonomous.self_healing.healing_orchestrator import HealingOrchestrator

    ctx, fake, orch = await _crash_loop_to_isolation(tmp_path)
    [req] = ctx.approvals.list(state="pending")
    ctl = HealingController(ctx)  # a new operator: its engine loads the stored state
    again = ctl.attach(HealingOrchestrator(ctx))
    fake.healing = ctl
    assert again.state("nexus").isolate_due == orch.state("nexus").isolate_due is not None
    outcomes = await reconcile(ctx, fake)
    assert [o.action.kind for o in outcomes] == ["isolate"]  # planned again, still gated
    assert [r["id"] for r in ctx.approvals.list(state="pending")] == [req["id"]]
    assert not fake.procs["nexus"]["running"]
