"""Issue 10: every ladder step is started by one pass and settled by a later one.

Pure: the diff plans ``settle`` for a step in flight once its verification has a verdict (and
nothing while it is verified), closes an incident whose service is healthy again while its
step awaits approval, and asks to be woken by the poll interval while a step is verified.
Engine (fake services, real store, real Executor): the act only starts a step — no task
waits for its outcome — the passes observe and settle it; a failed step leads to the next
one on the pass that settles it; the restart budget counts a restart the owner made, not
one satisfied without a restart.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controllers.healing import HealingController
from controllers.healing_diff import (HealingDesired, HealingObserved, IncidentView,
                                      ServiceHealing, diff)
from tests.autonomous.healing_fakes import drain, healing_context, reconcile, spec

DESIRED = HealingDesired(1, {"a": "h1"}, poll_seconds=0.1)


def _observed(*incidents: IncidentView) -> HealingObserved:
    return HealingObserved(10.0, {"a": ServiceHealing("a", incidents=tuple(
        i.id for i in incidents))}, False, {i.id: i for i in incidents})


# -- pure ------------------------------------------------------------------------------------
def test_a_step_in_flight_is_settled_once_its_verification_has_a_verdict():
    verifying = IncidentView("i1", "a", "open", 0, "RESTART_SERVICE", step_state="verifying")
    assert diff(DESIRED, _observed(verifying)) == ()
    assert HealingController.requeue_after(DESIRED, _observed(verifying)) == 0.1
    for verdict in ("healthy", "failed"):
        seen = IncidentView("i1", "a", "open", 2, "ROLLBACK", step_state=verdict,
                            step_message="new pid healthy" if verdict == "healthy" else "exit 1")
        [act] = diff(DESIRED, _observed(seen))
        assert act.kind == "settle" and act.params == {"service": "a", "incident": "i1",
                                                        "step": 2, "strategy": "ROLLBACK"}
        assert act.evidence["verdict"] == verdict
        assert diff(DESIRED, _observed(seen)) == (act,)  # deterministic
    gone = HealingDesired(2, {}, poll_seconds=0.1)  # a Service no longer desired: closed
    kinds = [a.kind for a in diff(gone, _observed(IncidentView(
        "i1", "a", "open", 0, "RESTART_SERVICE", step_state="failed")))]
    assert kinds == ["close_incident"]


def test_healthy_again_while_awaiting_approval_closes_that_incident():
    waiting = IncidentView("i1", "a", "awaiting_approval", 1, "ROLLBACK", "ap1", "pending")
    assert diff(DESIRED, _observed(waiting)) == ()
    recovered = IncidentView("i1", "a", "awaiting_approval", 1, "ROLLBACK", "ap1", "pending",
                             recovered=True)
    [act] = diff(DESIRED, _observed(recovered))
    assert act.kind == "close_incident" and act.params == {"service": "a", "incident": "i1"}
    assert "the approval is cancelled" in act.reason
    # decided meanwhile: it goes on (resume) — the approval is not cancelled under it
    decided = IncidentView("i1", "a", "awaiting_approval", 1, "ROLLBACK", "ap1", "approved",
                           recovered=True)
    assert [a.kind for a in diff(DESIRED, _observed(decided))] == ["resume"]


@given(st.sampled_from([None, "verifying", "healthy", "failed"]), st.booleans(),
       st.sampled_from(["open", "awaiting_approval"]), st.sampled_from([None, "pending"]))
def test_the_incident_plan_is_pure(step_state, recovered, state, approval_state):
    inc = IncidentView("i1", "a", state, 0, "RESTART_SERVICE", "ap1" if approval_state else None,
                       approval_state, step_state=step_state, recovered=recovered)
    got = diff(DESIRED, _observed(inc))
    assert got == diff(DESIRED, _observed(inc))
    kinds = [a.kind for a in got]
    assert ("settle" in kinds) == (step_state in ("healthy", "failed"))
    assert ("close_incident" in kinds) == (state == "awaiting_approval" and recovered
                                           and approval_state == "pending"
                                           and step_state not in ("healthy", "failed"))


# -- engine ----------------------------------------------------------------------------------
async def test_the_act_only_starts_a_step_and_the_passes_settle_it(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)})
    row = await orch.handle_error("nexus", strategy="RESTART_SERVICE", message="stuck")
    assert row["state"] == "open" and row["strategy"] == "RESTART_SERVICE"
    [inc] = orch.incidents.values()
    assert inc.run is not None and inc.run.verdict is None and not orch._tasks
    assert fake.calls == [("stop", "nexus"), ("start", "nexus")]  # the owner restarted it
    kinds: list[str] = []
    for _ in range(40):  # each pass takes one look; the one that sees a verdict settles it
        if inc.id not in orch.incidents:
            break
        ctx.clock.advance(ctx.policy()["healing"]["verify"]["poll_seconds"])
        kinds += [o.action.kind for o in await reconcile(ctx, fake)]
    assert kinds == ["settle"]
    [done] = orch.history.list(service="nexus")
    assert done["state"] == "healed" and [a["strategy"] for a in done["attempts"]] == [
        "RESTART_SERVICE"]


async def test_a_failed_step_leads_to_the_next_on_the_pass_that_settles_it(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)})
    fake.crash_on_start.add("nexus")  # every restart exits at once: RESTART fails
    await orch.handle_error("nexus", source="unresponsive", context={"running": True},
                            strategy="RESTART_SERVICE")
    [inc] = orch.incidents.values()
    assert inc.run.strategy.value == "RESTART_SERVICE" and inc.attempts == []
    ctx.clock.advance(0.1)
    outcomes = await reconcile(ctx, fake)  # its new process exited: failed → the next steps
    assert [o.action.kind for o in outcomes] == ["settle"]
    [row] = orch.history.list(service="nexus")
    # RETRY cannot apply (nothing runs to re-check), ALERT_HUMAN needs no verification
    assert [(a["strategy"], a["ok"], a["applicable"]) for a in row["attempts"]] == [
        ("RESTART_SERVICE", False, True), ("RETRY", False, False), ("ALERT_HUMAN", True, True)]
    assert row["state"] == "escalated" and inc.run is None


async def test_the_budget_counts_only_restarts_that_happen(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)})
    ctx.triggers["services"] = lambda: None  # the owner gets to the intent later
    await orch.handle_error("nexus", source="unresponsive", context={"running": True},
                            strategy="RESTART_SERVICE")
    fake.kill("nexus")  # meanwhile the process died and its owner started a new one
    fake._run("nexus")
    ctx.triggers["services"] = fake.reconcile
    fake.reconcile()  # the restart intent names a process already gone: satisfied
    await drain(orch)
    [row] = orch.history.list(service="nexus")
    assert row["state"] == "healed" and row["attempts"][-1]["strategy"] == "RESTART_SERVICE"
    assert ("stop", "nexus") not in fake.calls  # the intent was satisfied: no restart
    assert orch.state("nexus").restarts == []  # … so none counted against the budget
    await orch.handle_error("nexus", source="unresponsive", context={"running": True},
                            strategy="RESTART_SERVICE")
    await drain(orch)
    assert fake.calls[-2:] == [("stop", "nexus"), ("start", "nexus")]
    assert len(orch.state("nexus").restarts) == 1  # a restart the owner made: counted


async def test_an_operator_restart_resumes_the_step_in_flight(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)})
    ctx.triggers["services"] = lambda: None  # the owner has not acted on it yet
    old = fake.procs["nexus"]["pid"]
    row = await orch.handle_error("nexus", source="unresponsive", context={"running": True},
                                  strategy="RESTART_SERVICE")
    assert row["state"] == "open"
    # the operator stops here; a new one (same store) starts its engine
    from autonomous.self_healing.healing_orchestrator import HealingOrchestrator
    from controllers.healing import HealingController

    ctl = HealingController(ctx)
    new = ctl.attach(HealingOrchestrator(ctx))
    fake.healing = ctl
    assert new.resume_in_flight() == 1
    [inc] = new.incidents.values()
    assert inc.id == row["id"] and inc.run.strategy.value == "RESTART_SERVICE"
    assert inc.run.watch.not_pid == old  # verified again: a new process, not the old one
    ctx.triggers["services"] = fake.reconcile
    fake.reconcile()  # the owner restarts the process the intent names
    await drain(new)
    [done] = new.history.list(service="nexus")
    assert done["id"] == row["id"] and done["state"] == "healed"
    assert fake.calls == [("stop", "nexus"), ("start", "nexus")]  # one restart, not two
    assert new.resume_in_flight() == 0 and HealingOrchestrator(ctx).resume_in_flight() == 0
