"""The healing controller's strategy decisions (issue 12 item 6), pure: the next step of an
incident by the lower credible bound of success per (signature, strategy), ladder order for
ties and no data, ALERT_HUMAN last; the global brake as one escalation planned by ``diff``."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from autonomous.learning.strategy_posterior import lower_bound, posterior
from controllers.healing import BRAKE, HealingController, HealingDesired, HealingObserved, \
    ServiceHealing
from controllers.healing_plan import ALERT, Learning, brake, next_step

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


async def test_a_step_carries_the_outcomes_and_restart_budget_its_choice_saw(tmp_path):
    """The choice of a ladder step is made from observed values — the signature's outcome
    counts in healing_knowledge and the service's restarts inside the budget window — and
    those values are the evidence of the step's action in the knowledge graph."""
    import asyncio
    import json

    from autonomous.core.events import Event
    from tests.autonomous.healing_fakes import healing_context, spec

    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)})
    try:
        pid = fake.procs["nexus"]["pid"]
        fake.kill("nexus")
        orch.on_event(Event("service.exited", {"service": "nexus", "pid": pid,
                                               "returncode": -9, "expected": False}))
        for _ in range(50):
            if not orch._tasks:
                break
            await asyncio.gather(*list(orch._tasks), return_exceptions=True)
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
