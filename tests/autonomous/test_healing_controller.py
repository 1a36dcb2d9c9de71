"""Healing as a controller: a pure ``diff`` over (desired, observed) — close the incidents of a
Service no longer desired, release isolation / back-off on a new revision, run a due crash-loop
try — and incidents as resources: one per fault, approvals bound to it and cancelled when it
closes; ``heal trigger`` on a healthy service heals nothing."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from autonomous.core.backoff import BackoffSpec
from autonomous.core.events import Event
from autonomous.intents import IntentStore
from controllers.healing import HealingController, HealingDesired, HealingObserved, \
    IncidentView, ServiceHealing
from controllers.healing_plan import Budget
from controllers.services_intents import ServiceIntents
from tests.autonomous.healing_fakes import drain, heal, healing_context, reconcile, spec

BUDGET = """apiVersion: atlas.autonomous/v1
kind: PolicySet
metadata: {name: test-budget}
spec:
  mode: %s
  policy:
    healing:
      restart_budget: {max_restarts: 1, window_seconds: 60, healthy_reset_seconds: 30}
      crashloop:
        backoff: {initial_seconds: 5, factor: 2, max_seconds: 20, jitter: 0.2}
        max_attempts: 2
      isolation: {slow_retry_seconds: 100}
"""

names = st.sampled_from(["nexus", "robot", "push", "gone"])
hashes = st.sampled_from(["h1", "h2", "h3"])
views = st.builds(ServiceHealing, name=st.just("x"),
                  phase=st.sampled_from(["normal", "backoff", "isolated"]),
                  attempts=st.integers(0, 5),
                  next_at=st.one_of(st.none(), st.floats(0, 100)),
                  held_for=st.one_of(st.none(), hashes), busy=st.booleans(),
                  paused_by_human=st.booleans(),
                  incidents=st.lists(st.sampled_from(["i1", "i2"]), max_size=2).map(tuple),
                  restarts=st.lists(st.floats(0, 100), max_size=6).map(tuple),
                  healthy_since=st.one_of(st.none(), st.floats(0, 100)),
                  isolate_due=st.one_of(st.none(), st.just({"was": "backoff",
                                                            "message": "exit 1",
                                                            "attempt": 2})),
                  isolation_approval_state=st.sampled_from([None, "pending", "rejected",
                                                            "executed"]),
                  mitigated=st.booleans(), recovered=st.booleans(),
                  trying=st.sampled_from([None, "verifying", "healthy", "failed"]))
budgets = st.one_of(st.none(), st.builds(
    Budget, max_restarts=st.integers(0, 4), window_seconds=st.floats(1, 60),
    max_attempts=st.integers(1, 4),
    backoff=st.one_of(st.none(), st.builds(BackoffSpec, initial=st.floats(0, 10),
                                           factor=st.floats(1, 3), max_delay=st.floats(1, 60),
                                           jitter=st.floats(0, 1))),
    healthy_reset_seconds=st.one_of(st.none(), st.floats(1, 60))))
desireds = st.builds(HealingDesired, generation=st.integers(1, 9),
                     services=st.dictionaries(names, hashes, max_size=4), budget=budgets)
incident_views = st.builds(
    IncidentView, id=st.sampled_from(["i1", "i2", "i3"]), service=names,
    state=st.sampled_from(["open", "awaiting_approval", "backoff"]), step=st.integers(0, 3),
    strategy=st.sampled_from(["RETRY", "ROLLBACK", "ISOLATE", None]),
    approval=st.one_of(st.none(), st.just("a1")),
    approval_state=st.sampled_from([None, "pending", "approved", "rejected", "expired"]),
    held=st.booleans())
observeds = st.builds(HealingObserved, now=st.floats(0, 100),
                      services=st.dictionaries(names, views, max_size=4),
                      incidents=st.lists(incident_views, max_size=3).map(
                          lambda xs: {x.id: x for x in xs}))


@settings(max_examples=300, deadline=None)
@given(desireds, observeds)
def test_diff_is_pure_and_deterministic(desired, observed):
    before = (copy.deepcopy(desired), copy.deepcopy(observed))
    first = HealingController.diff(desired, observed)
    assert HealingController.diff(desired, observed) == first
    assert (desired, observed) == before  # side-effect free
    for a in first:
        name = a.params["service"]
        assert a.resource == f"Service/{name}"
        if a.kind == "close_incident":
            assert name not in desired.services
        elif a.kind == "resume":  # an incident whose approval a human decided goes on
            inc = observed.incidents[a.params["incident"]]
            assert inc.service == name in desired.services
            assert inc.state == "awaiting_approval" and inc.approval_state not in (None,
                                                                                  "pending")
            assert not (name in observed.services and observed.services[name].busy)
        elif a.kind == "backoff":  # the restart budget, from the observed restart times
            assert desired.budget is not None and observed.services[name].phase == "normal"
            assert a.evidence["restarts_in_window"] > desired.budget.max_restarts
        elif a.kind == "reset_restarts":  # proven health forgives the counted restarts
            sv = observed.services[name]
            b = desired.budget
            assert b is not None and b.healthy_reset_seconds is not None
            assert sv.phase == "normal" and sv.restarts and sv.healthy_since is not None
            assert observed.now - sv.healthy_since >= b.healthy_reset_seconds
        elif a.kind == "hold":  # a failing service kept stopped while ISOLATE awaits a human
            inc = observed.incidents[a.params["incident"]]
            assert inc.service == name in desired.services and not inc.held
            assert (inc.state, inc.strategy) == ("awaiting_approval", "ISOLATE")
            assert inc.approval_state in (None, "pending")
        elif a.kind == "retry" and a.params.get("settle"):  # a try's observed verdict
            assert observed.services[name].trying in ("healthy", "failed")
        elif a.kind == "retry":  # a due try starts only when none is in flight
            assert observed.services[name].trying is None
            assert name in desired.services and observed.services[name].phase != "normal"
        elif a.kind == "recover":  # degraded mode / fallback undone once healthy again
            sv = observed.services[name]
            assert name in desired.services and sv.mitigated and sv.recovered and not sv.busy
        elif a.kind == "isolate":  # a failed crash-loop try led to it; not if rejected
            sv = observed.services[name]
            assert sv.isolate_due is not None and sv.isolation_approval_state != "rejected"
            assert name in desired.services and sv.phase != "normal"
        else:
            assert name in desired.services and observed.services[name].phase != "normal"


@settings(max_examples=200, deadline=None)
@given(desireds, st.floats(0, 100))
def test_diff_is_empty_when_observed_matches_desired(desired, now):
    observed = HealingObserved(now, {n: ServiceHealing(n, held_for=h)
                                     for n, h in desired.services.items()})
    assert HealingController.diff(desired, observed) == ()


async def crash_loop(ctx, fake, orch, name: str) -> None:
    fake.crash_on_start.add(name)
    for _ in range(2):  # over the budget of 1
        pid = fake.procs[name]["pid"]
        fake.kill(name, rc=1)
        orch.on_event(Event("service.exited", {"service": name, "pid": pid, "returncode": 1,
                                               "expected": False}))
        await drain(orch)
    assert orch.state(name).phase == "backoff"


async def test_removed_service_with_an_open_incident_is_closed_and_never_retried(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True), "robot": spec()},
                                      policy_edit=BUDGET % "growth")
    await crash_loop(ctx, fake, orch, "robot")
    [open_row] = orch.history.list(service="robot", state="backoff")
    (ctx.root / "desired_state" / "robot.yaml").unlink()
    del fake._specs["robot"]
    assert ctx.desired.reload() is not None
    outcomes = await reconcile(ctx, fake)
    assert [(o.action.kind, o.ok) for o in outcomes] == [("close_incident", True)]
    row = orch.history.list(service="robot", state="closed")[0]
    assert row["id"] == open_row["id"] and "no longer in the desired state" in row["message"]
    assert "robot" not in orch.states
    assert not ctx.store.query("SELECT 1 FROM healing_service_state WHERE service='robot'")
    starts = fake.starts
    for _ in range(3):  # long past every back-off: nothing is tried for it
        ctx.clock.advance(60)
        assert await reconcile(ctx, fake) == []
        await drain(orch)
    assert fake.starts == starts
    run = ctx.status.controller("healing")
    assert run.last_error is None and run.errors == 0
    ctx.store.close()


async def test_the_status_board_says_what_healing_is_doing_for_a_service(tmp_path):
    """Healing's rows carry its own sync / health, not Unknown: OutOfSync + Progressing
    while a crash loop is in back-off, Synced + Healthy once it is released."""
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)},
                                      policy_edit=BUDGET % "growth")

    def row() -> tuple[str, str]:
        r = ctx.status.resource("healing", "Service", "nexus")
        return r.sync.value, r.health.value

    await crash_loop(ctx, fake, orch, "nexus")
    await reconcile(ctx, fake)
    assert row() == ("OutOfSync", "Progressing")
    fake.crash_on_start.clear()
    fake._specs["nexus"] = spec(core=True, version="2")
    await reconcile(ctx, fake)  # released: a new revision
    await reconcile(ctx, fake)
    assert row() == ("Synced", "Healthy")
    ctx.store.close()


async def test_a_new_revision_releases_backoff_and_starts_at_once(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)},
                                      policy_edit=BUDGET % "growth")
    await crash_loop(ctx, fake, orch, "nexus")
    intents = IntentStore(ctx.store, ctx.clock)
    assert intents.active("Service/nexus", ("pause",))
    assert not fake.procs["nexus"]["running"]
    # the fix: a new revision of the service (the next try would be seconds away)
    fake.crash_on_start.clear()
    fake._specs["nexus"] = spec(core=True, version="2")
    outcomes = await reconcile(ctx, fake)
    assert [o.action.kind for o in outcomes] == ["release"]
    assert orch.state("nexus").phase == "normal"
    assert not intents.active("Service/nexus")
    assert fake.procs["nexus"]["running"]  # started by the owner once released
    assert orch.history.list(service="nexus")[0]["state"] == "closed"
    ctx.store.close()


def test_the_owner_expires_isolation_made_for_another_revision(tmp_path):
    ctx, _fake, _orch = healing_context(tmp_path, {"nexus": spec(core=True)})
    store = IntentStore(ctx.store, ctx.clock)
    it = store.request("isolate", "Service/nexus", reason="crash loop", requester="healing",
                       params={"spec_hash": "old"})
    owner = ServiceIntents(ctx)
    assert owner.for_service("nexus", "old", None) == ("isolated", None)
    assert owner.for_service("nexus", "new", None) == (None, None)  # a new generation
    got = store.get(it.id)
    assert got.state == "expired" and "released by the new generation" in got.outcome
    ctx.store.close()


async def test_one_incident_per_fault_and_its_approval_is_cancelled_on_recovery(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)}, mode="governed")
    fake.rollback_ok.add("nexus")
    fake.logs["nexus"] = ["ModuleNotFoundError: No module named 'brain'"]
    for _ in range(6):  # a crash-on-start: every exit is the same fault
        pid = fake.procs["nexus"]["pid"]
        fake.kill("nexus", rc=1)
        await orch.handle_report(orch.detector.from_exit(Event(
            "service.exited", {"service": "nexus", "pid": pid, "returncode": 1})))
        fake.procs["nexus"]["pid"] += 1  # the owner restarted it (and it exited again)
    rows = orch.history.list(service="nexus")
    assert len(rows) == 1 and rows[0]["state"] == "awaiting_approval", rows
    assert "seen again 5x" in rows[0]["message"]
    [req] = ctx.approvals.list(state="pending")
    assert req["action"]["params"]["incident"] == rows[0]["id"]
    orch.on_event(Event("service.healthy", {"service": "nexus"}))  # fixed meanwhile
    assert orch.history.list(service="nexus")[0]["state"] == "awaiting_approval"
    await reconcile(ctx, fake)  # observed healthy again: the diff closes it
    [row] = orch.history.list(service="nexus")
    assert row["state"] == "closed" and "approval is cancelled" in row["message"]
    assert ctx.approvals.get(req["id"])["state"] == "cancelled"
    assert ctx.approvals.list(state="pending") == []
    ctx.store.close()


async def test_trigger_on_a_healthy_service_has_nothing_to_heal(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)})
    from autonomous.self_healing.facade import HealingFacade

    out = await HealingFacade(orch).trigger("nexus", None, None)
    assert out["state"] == "nothing_to_heal" and "--strategy RESTART_SERVICE" in out["message"]
    assert orch.history.list() == [] and fake.calls == []
    forced = await HealingFacade(orch).trigger("nexus", "RESTART_SERVICE", None)
    assert forced["state"] == "open" and forced["strategy"] == "RESTART_SERVICE"  # started
    await drain(orch)  # the controller's passes observe it and settle it
    [row] = orch.history.list(service="nexus")
    assert row["state"] == "healed" and fake.calls == [("stop", "nexus"), ("start", "nexus")]
    ctx.store.close()


async def test_a_health_finding_leads_to_the_incident_in_the_graph(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)})
    g = ctx.graph
    about = g.ensure("resource", "Service/nexus")
    obs, finding = g.record_chain(
        [("observation", "health: nexus", {"evidence": {"latency_p95_ms": 950.0}}),
         ("error", "nexus is unhealthy", {"finding": "unhealthy_service"})],
        context={"about": about})
    orch.on_event(Event("health.finding", {"type": "unhealthy_service", "service": "nexus",
                                           "severity": "high", "message": "nexus is unhealthy",
                                           "graph_node": finding}))
    row = await heal(orch, "nexus", strategy="RESTART_SERVICE", message="stuck")
    chain = [n["id"] for n in g.why(row["graph_node"])]
    assert chain[:2] == [obs, finding]  # why walks back to what the health controller saw
    ctx.store.close()


async def test_plan_shows_healings_would_be_actions(tmp_path):
    """``plan`` of a proposed tree: healing would close the removed service's incidents and
    release the back-off of the service whose revision changes (nothing is done)."""
    from autonomous.supervisor.revisions import spec_hash
    from autonomous.testing import copy_default_tree, make_context
    from controllers.plan import plan_actions

    ctx = make_context(tmp_path)
    nexus = ctx.desired.current.services["nexus"]
    for name in ("nexus", "robot"):
        ctx.store.execute("INSERT INTO healing_service_state(service, phase, attempts, "
                          "next_at, paused_by_human, forced_strategy, degraded, fallback, "
                          "reason, updated_at) VALUES (?, 'backoff', 1, ?, 0, NULL, NULL, 0, "
                          "'CrashLoopBackOff', 0)", (name, ctx.clock.now() + 3600))
    IntentStore(ctx.store, ctx.clock).request(
        "pause", "Service/nexus", reason="crash loop", requester="healing",
        params={"spec_hash": spec_hash(nexus)})
    ctx.store.close()
    proposed = copy_default_tree(tmp_path / "proposed")
    (proposed / "desired_state" / "robot.yaml").unlink()
    text = (proposed / "desired_state" / "nexus.yaml").read_text()
    (proposed / "desired_state" / "nexus.yaml").write_text(
        text.replace('version: "1.0.0"', 'version: "1.0.1"'))
    _mode, actions = await plan_actions(proposed, ctx.data_dir)
    healing = sorted((a["kind"], a["resource"]) for a in actions
                     if a["controller"] == "healing")
    assert healing == [("close_incident", "Service/robot"), ("release", "Service/nexus")]


BRAKE_EDIT = BUDGET.replace("      isolation: {slow_retry_seconds: 100}\n",
                            "      isolation: {slow_retry_seconds: 100}\n"
                            "      brake: {max_services_in_remediation: 1}\n")


async def test_global_brake_escalates_to_a_human_instead_of_remediating(tmp_path):
    ctx, fake, orch = healing_context(
        tmp_path, {"nexus": spec(core=True), "robot": spec(), "push": spec()},
        policy_edit=BRAKE_EDIT % "growth")
    sub = ctx.bus.subscribe("alert.human")
    await crash_loop(ctx, fake, orch, "robot")
    await crash_loop(ctx, fake, orch, "push")  # two services in remediation, limit 1
    outcomes = await reconcile(ctx, fake)
    brake = [o for o in outcomes if o.action.resource == "Healing/brake"]
    assert [(o.action.kind, o.action.params["brake"], o.ok) for o in brake] == \
        [("alert_human", "engage", True)]
    assert brake[0].action.params["services"] == ["push", "robot"]
    alerts = []
    while (ev := sub.get_nowait()) is not None:
        alerts.append(ev.data)
    assert [a for a in alerts if a["service"] == "*" and a["severity"] == "critical"]
    sub.close()
    assert [o for o in await reconcile(ctx, fake) if o.action.resource == "Healing/brake"] == []
    # while braked, a new failure is escalated, not remediated
    row = await heal(orch, "nexus", source="unresponsive", context={"running": True})
    assert [a["strategy"] for a in row["attempts"]] == ["ALERT_HUMAN"]
    assert row["state"] == "escalated"
    ctx.store.close()


GATED_BACKOFF = BUDGET.replace("  policy:\n", "  policy:\n    governance:\n      actions: "
                               "{backoff: require_approval}\n") % "growth"


async def test_a_gated_back_off_is_one_approval_however_many_restarts(tmp_path):
    """CrashLoopBackOff is an action like any other: under require_approval the restarts over
    the budget ask once (the same decision each time), and the approval puts it into
    back-off on the next pass."""
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)},
                                      policy_edit=GATED_BACKOFF)
    fake.crash_on_start.add("nexus")
    for _ in range(4):  # a budget of 1: the second, third and fourth exits are over it
        pid = fake.procs["nexus"]["pid"]
        fake.kill("nexus", rc=1)
        orch.on_event(Event("service.exited", {"service": "nexus", "pid": pid,
                                               "returncode": 1, "expected": False}))
        await drain(orch)
    assert orch.state("nexus").phase == "normal"  # not yet: a human decides
    [req] = [a for a in ctx.approvals.list(state="pending") if a["action_kind"] == "backoff"]
    assert req["resource"] == "Service/nexus"
    ctx.approvals.decide(req["id"], approve=True, actor="alice",
                         current_generation=ctx.desired.current.number)
    outcomes = await reconcile(ctx, fake)
    await drain(orch)
    assert [(o.action.kind, o.ok) for o in outcomes if o.action.kind == "backoff"] == [
        ("backoff", True)]
    assert orch.state("nexus").phase == "backoff"
    assert IntentStore(ctx.store, ctx.clock).active("Service/nexus", ("pause",))
    ctx.store.close()
