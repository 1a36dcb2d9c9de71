"""The healing controller's strategy decisions (issue 12 item 6), pure: the next step of an
incident by the lower credible bound of success per (signature, strategy), ladder order for
ties and no data, ALERT_HUMAN last; the global brake as one escalation planned by ``diff``;
the restart budget and the crash loop (back-off, its tries, isolation) decided in ``diff``
from observed restart times and tries (issue 10 item 2)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from autonomous.learning.strategy_posterior import lower_bound, posterior
from controllers.healing import BRAKE, HealingController, HealingDesired, HealingObserved, \
    ServiceHealing
from controllers.healing_plan import ALERT, Budget, Learning, after_failed_try, brake, \
    next_step, over_budget, restarts_in_window

L = Learning(1.0, 1.0, 0.8)
REMEDIES = ["RETRY", "RESTART_SERVICE", "FALLBACK", "DEGRADE", "ROLLBACK"]
ladders = st.lists(st.sampled_from(REMEDIES), min_size=1, max_size=5, unique=True) \
    .map(lambda xs: (*xs, ALERT))
counts = st.tuples(st.integers(0, 30), st.integers(0, 30))


@settings(max_examples=200, deadline=None)
@given(ladders, st.dictionaries(st.sampled_from(REMEDIES), counts))
def test_next_step_has_the_highest_lower_bound_and_ladder_order_breaks_ties(ladder, seen):
    outcomes = {("sig", s): c for s, c in seen.items()}
    step = next_step("sig", ladder, outcomes, L)
    assert step.strategy in ladder and step.strategy != ALERT
    bounds = {s: lower_bound(posterior("sig", s, *outcomes.get(("sig", s), (0, 0)), 1.0, 1.0),
                             0.8) for s in ladder if s != ALERT}
    assert step.bound == bounds[step.strategy] == max(bounds.values())
    first_best = next(s for s in ladder if bounds[s] == max(bounds.values()))
    assert step.strategy == first_best  # ties keep the ladder's order
    assert next_step("sig", ladder, outcomes, L) == step  # deterministic


def test_no_data_keeps_the_ladder_and_failures_lose_to_successes():
    ladder = ("RETRY", "RESTART_SERVICE", ALERT)
    assert next_step("s", ladder, {}, L).strategy == "RETRY"
    learned = {("s", "RETRY"): (0, 6), ("s", "RESTART_SERVICE"): (6, 0)}
    assert next_step("s", ladder, learned, L).strategy == "RESTART_SERVICE"
    # another signature's outcomes do not count
    assert next_step("other", ladder, learned, L).strategy == "RETRY"
    assert next_step("s", (ALERT,), learned, L).strategy == ALERT
    assert next_step("s", ladder, learned, L, forced="RETRY").strategy == "RETRY"


@given(st.lists(st.sampled_from(["a", "b", "c", "d", "e"])), st.integers(1, 4))
def test_brake_engages_only_above_the_limit(names, limit):
    got = brake(names, limit)
    assert got == (tuple(sorted(set(names))) if len(set(names)) > limit else ())
    step = next_step("s", ("RETRY", ALERT), {}, L, braked=got)
    assert (step.strategy == ALERT) == bool(got)


def _obs(n: int, alerted: bool) -> HealingObserved:
    return HealingObserved(0.0, {f"s{i}": ServiceHealing(f"s{i}", incidents=(f"i{i}",))
                                 for i in range(n)}, alerted)


@given(st.integers(0, 6), st.booleans(), st.integers(1, 4))
def test_diff_plans_one_brake_escalation_and_its_release(n, alerted, limit):
    desired = HealingDesired(1, {f"s{i}": "h" for i in range(n)}, limit)
    acts = [a for a in HealingController.diff(desired, _obs(n, alerted)) if a.resource == BRAKE]
    if n > limit and not alerted:
        assert [(a.kind, a.params["brake"]) for a in acts] == [("alert_human", "engage")]
        assert len(acts[0].params["services"]) == n
    elif n <= limit and alerted:
        assert [(a.kind, a.params["brake"]) for a in acts] == [("alert_human", "release")]
    else:
        assert acts == []
    assert [a for a in HealingController.diff(HealingDesired(1, desired.services),
                                              _obs(n, alerted)) if a.resource == BRAKE] == []


times = st.lists(st.floats(0, 200, allow_nan=False), max_size=12).map(tuple)
budgets = st.builds(Budget, max_restarts=st.integers(0, 5), window_seconds=st.floats(1, 120),
                    max_attempts=st.integers(1, 5))


@settings(max_examples=300, deadline=None)
@given(times, st.floats(0, 200), budgets)
def test_restart_budget_counts_the_window_and_backs_off_only_over_it(restarts, now, budget):
    """The restart budget is the diff's: CrashLoopBackOff is planned for a desired service in
    normal phase exactly when its observed restarts inside the window exceed the budget."""
    n = restarts_in_window(restarts, now, budget.window_seconds)
    assert n == len([t for t in restarts if now - t <= budget.window_seconds])
    assert over_budget(n, budget) == (n > budget.max_restarts)
    desired = HealingDesired(3, {"nexus": "h"}, None, budget)
    for phase in ("normal", "backoff", "isolated"):
        sv = ServiceHealing("nexus", phase, restarts=restarts, held_for="h")
        acts = [a for a in HealingController.diff(desired, HealingObserved(now, {"nexus": sv}))
                if a.kind == "backoff"]
        if phase == "normal" and n > budget.max_restarts:
            [a] = acts
            assert a.resource == "Service/nexus" and a.evidence["restarts_in_window"] == n
            # the same decision from one restart to the next (one approval, one dry-run node)
            more = ServiceHealing("nexus", phase, restarts=(*restarts, now), held_for="h")
            [again] = [x for x in HealingController.diff(
                desired, HealingObserved(now, {"nexus": more})) if x.kind == "backoff"]
            assert again.key() == a.key()
        else:
            assert acts == []
    # no budget in the desired state, or the service is not desired: no crash loop planned
    sv = ServiceHealing("nexus", restarts=restarts)
    assert HealingController.diff(HealingDesired(3, {"nexus": "h"}),
                                  HealingObserved(now, {"nexus": sv})) == ()
    assert HealingController.diff(HealingDesired(3, {}, None, budget),
                                  HealingObserved(now, {"nexus": sv})) == ()


@given(budgets, st.floats(0, 100))
def test_within_budget_nothing_is_planned(budget, now):
    inside = tuple(now - budget.window_seconds * i / 10 for i in range(budget.max_restarts))
    sv = ServiceHealing("nexus", held_for="h", restarts=inside)
    assert HealingController.diff(HealingDesired(1, {"nexus": "h"}, 2, budget),
                                  HealingObserved(now, {"nexus": sv})) == ()


@settings(max_examples=200, deadline=None)
@given(budgets, st.sampled_from(["backoff", "isolated"]), st.integers(0, 6),
       st.floats(0, 50), st.floats(0, 50))
def test_a_due_try_says_what_its_failure_leads_to(budget, phase, attempts, next_at, now):
    """A due crash-loop try is planned with its consequence: another back-off try while
    ``max_attempts`` allows, else isolation; an isolated service's slow retry stays isolated."""
    sv = ServiceHealing("nexus", phase, attempts, next_at, held_for="h")
    acts = HealingController.diff(HealingDesired(1, {"nexus": "h"}, None, budget),
                                  HealingObserved(now, {"nexus": sv}))
    if now < next_at:
        assert acts == ()
        return
    [a] = acts
    assert a.kind == "retry" and a.params["attempt"] == attempts + 1
    want = "backoff" if phase == "backoff" and attempts + 1 < budget.max_attempts else "isolate"
    assert a.params["on_failure"] == want == after_failed_try(phase, attempts + 1, budget)


def test_a_crash_loop_runs_max_attempts_tries_then_isolates():
    """The whole episode, decided by the pure functions alone: tries 1..max_attempts-1 fail
    into another back-off try, the last into isolation."""
    b = Budget(max_restarts=2, window_seconds=60, max_attempts=3)
    assert [after_failed_try("backoff", k, b) for k in (1, 2, 3)] == \
        ["backoff", "backoff", "isolate"]
    assert after_failed_try("isolated", 9, b) == "isolate"
    assert not over_budget(restarts_in_window((1.0, 2.0), 3.0, 60), b)
    assert over_budget(restarts_in_window((1.0, 2.0, 3.0), 3.0, 60), b)
    assert not over_budget(restarts_in_window((1.0, 2.0, 3.0), 62.5, 60), b)  # aged out


async def test_a_step_carries_the_outcomes_and_restart_budget_its_choice_saw(tmp_path):
    """The choice of a ladder step is made from observed values — the signature's outcome
    counts in healing_knowledge and the service's restarts inside the budget window — and
    those values are the evidence of the step's action in the knowledge graph."""
    import json

    from autonomous.core.events import Event
    from tests.autonomous.healing_fakes import drain, healing_context, spec

    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)})
    try:
        pid = fake.procs["nexus"]["pid"]
        fake.kill("nexus")
        orch.on_event(Event("service.exited", {"service": "nexus", "pid": pid,
                                               "returncode": -9, "expected": False}))
        await drain(orch)  # the heal, and the passes that verify and settle its step
        [row] = orch.history.list(service="nexus")
        assert row["state"] == "healed", row
        seen = [json.loads(r["attrs"])["evidence"] for r in ctx.store.query(
            "SELECT attrs FROM graph_nodes WHERE type='observation' AND label LIKE "
            "'Service/nexus:%'")]
        choices = [e["choice"] for e in seen if "choice" in e]
        assert choices, seen
        c = choices[0]
        assert c["strategy"] == row["strategy"]
        assert c["outcomes"] == {} and c["max_restarts"] >= 1
        assert c["restarts_in_window"] >= 0
    finally:
        ctx.store.close()


def test_an_incident_resumes_once_its_approval_is_decided():
    """Pure: the incident awaiting a human is resumed (its step goes to the Executor again,
    which takes the approval or the rejection) once the approval is decided — not while it
    pends, not while a heal of the service runs, never for a Service no longer desired."""
    from controllers.healing import IncidentView

    desired = HealingDesired(2, {"nexus": "h"})

    def plan(state: str | None, *, busy: bool = False, svc: str = "nexus") -> list[str]:
        inc = IncidentView("i1", svc, "awaiting_approval", 1, "ROLLBACK", "a1", state)
        obs = HealingObserved(5.0, {svc: ServiceHealing(svc, held_for="h", busy=busy,
                                                        incidents=("i1",))}, False,
                              {"i1": inc})
        return [a.kind for a in HealingController.diff(desired, obs)]

    assert plan("pending") == [] and plan(None) == []
    for decided in ("approved", "rejected", "expired", "cancelled", "missing"):
        assert plan(decided) == ["resume"]
        assert plan(decided, busy=True) == []
    assert plan("approved", svc="gone") == ["close_incident"]  # closed, not resumed
    [a] = [a for a in HealingController.diff(desired, HealingObserved(
        0.0, {}, False, {"i1": IncidentView("i1", "nexus", "awaiting_approval", 1, "ROLLBACK",
                                            "a1", "approved")})) if a.kind == "resume"]
    assert a.params == {"service": "nexus", "incident": "i1", "approval": "a1"}
    assert a.evidence["approval_state"] == "approved"


@settings(max_examples=200, deadline=None)
@given(ladders, st.dictionaries(st.sampled_from(REMEDIES), counts), times, st.booleans(),
       st.booleans(), st.floats(0, 200), budgets)
def test_plan_step_is_the_action_the_engine_submits(ladder, seen, restarts, running, manual,
                                                    now, budget):
    """Pure: the next step's Action from observed values — the strategy ``next_step`` picks,
    bound to the incident (an approval is), its evidence the observed failure and the choice;
    a restart that would exceed the restart budget is planned as CrashLoopBackOff instead
    (not for a human's manual heal)."""
    from autonomous.self_healing.model import STRATEGY_ACTION, RecoveryStrategy
    from controllers.healing_diff import StepView, plan_step

    outcomes = {("sig", s): c for s, c in seen.items()}
    view = StepView("i1", "nexus", "sig", "rule: boom", 0, ladder, None,
                    {"pid": 7, "running": running, "log_tail": ["x"]}, outcomes, ("nexus",),
                    restarts, running, manual, now)
    action, choice = plan_step(view, L, 3, budget)
    assert plan_step(view, L, 3, budget) == (action, choice)  # deterministic
    want = next_step("sig", ladder, outcomes, L).strategy
    assert choice["strategy"] == want and action.evidence["choice"] == choice
    assert "log_tail" not in action.evidence and action.evidence["pid"] == 7
    n = restarts_in_window(restarts, now, budget.window_seconds)
    assert choice["restarts_in_window"] == n
    if want == "RESTART_SERVICE" and not manual and n + running > budget.max_restarts:
        assert action.kind == "backoff" and action.params["incident"] == "i1"
        assert action.evidence["restarts_with_this_one"] == n + running
    else:
        assert action.kind == STRATEGY_ACTION[RecoveryStrategy(want)]
        assert action.params == {"strategy": want, "incident": "i1", "signature": "sig"}


def test_plan_step_forced_brake_and_budget():
    from controllers.healing_diff import StepView, plan_step

    b = Budget(max_restarts=2, window_seconds=60, max_attempts=3)
    ladder = ("RESTART_SERVICE", "ROLLBACK", ALERT)
    base = StepView("i1", "nexus", "sig", "rule: hung", 0, ladder, None, {}, {}, ("nexus",),
                    (1.0, 2.0), True, False, 3.0)
    assert plan_step(base, L, 3, b)[0].kind == "backoff"  # the third restart in 60 s
    not_running = StepView(**{**base.__dict__, "running": False})
    assert plan_step(not_running, L, 3, b)[0].kind == "restart"  # its exit was counted
    later = StepView(**{**base.__dict__, "now": 70.0})
    assert plan_step(later, L, 3, b)[0].kind == "restart"  # aged out of the window
    forced = StepView(**{**base.__dict__, "forced": "ROLLBACK"})
    assert plan_step(forced, L, 3, b)[0].params["strategy"] == "ROLLBACK"
    braked = StepView(**{**base.__dict__, "in_remediation": ("a", "b", "c", "d")})
    assert plan_step(braked, L, 3, b)[0].kind == "alert_human"


@given(ladders, st.one_of(st.none(), st.sampled_from(REMEDIES)), st.booleans(), st.booleans(),
       st.booleans())
def test_only_what_can_apply_is_planned(ladder, forced, dependency_down, degraded, fallback):
    """Pure: no restart while a dependency is down (unless a human forced a strategy), no
    DEGRADE / FALLBACK already in effect (unless forced); the rest keeps its order; the step
    planned is one of what can apply, and nothing is planned when nothing can."""
    from controllers.healing_diff import StepView, plan_step
    from controllers.healing_plan import RESTARTS, applicable

    if forced is not None and forced not in ladder:
        ladder = (forced, *ladder)
    rest, why = applicable(ladder, forced=forced, dependency_down=dependency_down,
                           degraded=degraded, fallback=fallback)
    assert [s for s in ladder if s in rest] == list(rest) and set(rest) | set(why) == set(ladder)
    for s in ladder:
        cut = ((s in RESTARTS and dependency_down and forced is None)
               or (s == "DEGRADE" and degraded and s != forced)
               or (s == "FALLBACK" and fallback and s != forced))
        assert (s in why) == cut
    view = StepView("i1", "robot", "sig", "rule: dep", 0, ladder, forced, {}, {}, (), (),
                    True, False, 0.0, dependency_down, degraded, fallback)
    got = plan_step(view, L, 3, None)
    assert got is not None and got[1]["strategy"] in rest  # ALERT_HUMAN always can
    assert got[1].get("not_applicable", {}) == why
    only_cut = tuple(why) or ("RESTART_SERVICE",)
    view = StepView("i1", "robot", "sig", "rule: dep", 1, only_cut, None, {}, {}, (), (),
                    True, False, 0.0, True, True, True)
    assert plan_step(view, L, 3, None) is None  # nothing can apply: the incident failed
