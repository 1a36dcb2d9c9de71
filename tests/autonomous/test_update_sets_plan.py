"""Update sets: the pure diff (order, all-or-nothing, reverse rollback), the store's
ordering/validation, and the evolution controller's hold/abort hook."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autonomous.core.errors import Conflict, NotFound
from autonomous.evolution.metrics_comparator import Samples
from autonomous.evolution.staged_rollout import RolloutState
from autonomous.evolution.update_set import MemberRow, SetRow, UpdateSetStore, order_members
from autonomous.resources.kinds.evolution import RolloutSpec
from autonomous.resources.loader import load_tree
from autonomous.resources.policy.evolution import EvolutionPolicy
from autonomous.testing import make_context
from controllers.evolution import RolloutObserved, plan
from controllers.evolution_sets import MemberObserved, SetObserved, plan_set

FULL = 3
ROOT = Path(__file__).resolve().parents[2]


def member(i: int, status: str = "pending", abort: str | None = None) -> MemberRow:
    return MemberRow(1, i, f"s{i}", "1.0.0", "2.0.0", None, status,  # type: ignore[arg-type]
                     i + 10 if status != "pending" else None, abort, False)


def row(state: str, idx: int, members: list[MemberRow], reason: str = "") -> SetRow:
    return SetRow(1, state, idx, None, reason, "test", 0.0, 0.0,  # type: ignore[arg-type]
                  tuple(members))


def ob(r: SetRow, ms: list[MemberObserved]) -> SetObserved:
    return SetObserved(r, tuple(ms), FULL)


NONE = MemberObserved(None, None, None)
FULLM = MemberObserved("rolling_out", "running", FULL)
CANARY = MemberObserved("rolling_out", "running", 0)
BAD = MemberObserved("rolling_out", "rolled_back", 0, "CANARY: errors 40%")


def ops(o: SetObserved) -> list[tuple[str, int | None]]:
    return [(str(a.params["op"]), a.params.get("index")) for a in plan_set(o)]


def test_members_start_in_order_only_after_the_previous_reached_full() -> None:
    ms = [member(0), member(1)]
    assert ops(ob(row("pending", 0, ms), [NONE, NONE])) == [("member", 0)]
    ms[0] = member(0, "rolling")
    assert ops(ob(row("rolling", 0, ms), [CANARY, NONE])) == []
    assert ops(ob(row("rolling", 0, ms), [FULLM, NONE])) == [("member", 1)]
    ms[1] = member(1, "rolling")
    assert ops(ob(row("rolling", 1, ms), [FULLM, CANARY])) == []
    assert ops(ob(row("rolling", 1, ms), [FULLM, FULLM])) == [("commit", None)]
    done = MemberObserved("applied", "committed", FULL)
    assert ops(ob(row("committing", 1, ms), [done, FULLM])) == []
    assert ops(ob(row("committing", 1, ms), [done, done])) == [("done", None)]


def test_governed_asks_at_the_sets_start_and_commit_point_only() -> None:
    """The set's start (naming every member) and the release of its commits are decisions
    (``update``: governed asks), and so is rolling it back (``rollback``); the next member,
    ``done`` and ``finish`` carry them out or record them (``proceed``)."""
    ms = [member(0), member(1)]

    def kinds(o: SetObserved) -> list[str]:
        return [a.kind for a in plan_set(o)]

    (start,) = plan_set(ob(row("pending", 0, ms), [NONE, NONE]))
    assert start.kind == "update"
    assert start.reason.startswith("start update set 1 (s0 1.0.0 → 2.0.0, s1 1.0.0 → 2.0.0)")
    ms[0] = member(0, "rolling")
    assert kinds(ob(row("rolling", 0, ms), [FULLM, NONE])) == ["proceed"]
    ms[1] = member(1, "rolling")
    assert kinds(ob(row("rolling", 1, ms), [FULLM, FULLM])) == ["update"]
    done = MemberObserved("applied", "committed", FULL)
    assert kinds(ob(row("committing", 1, ms), [done, done])) == ["proceed"]
    assert kinds(ob(row("rolling", 1, ms), [FULLM, BAD])) == ["rollback"]  # the set's no
    back = row("rolling_back", 1, ms, "member 1 rolled back")
    gone = MemberObserved("rolled_back", "rolled_back", FULL)
    assert kinds(ob(back, [FULLM, BAD])) == ["rollback"]  # a promoted member rolled back
    assert kinds(ob(back, [gone, BAD])) == ["proceed"]  # the set closed: a record
    modes = {m: p["governance"]["actions"] for m, p in load_tree(ROOT).tree.policies.items()}
    assert (modes["governed"]["update"], modes["governed"]["proceed"]) == \
        ("require_approval", "enforce")
    assert modes["emergency_stop"]["proceed"] == "dry_run"  # frozen, like update


def test_a_failing_member_rolls_back_the_promoted_ones_in_reverse_order() -> None:
    ms = [member(0, "rolling"), member(1, "rolling"), member(2, "rolling")]
    o = ob(row("rolling", 2, ms), [FULLM, FULLM, BAD])
    (a,) = plan_set(o)
    assert a.params == {"op": "fail", "index": 2} and "s2 2.0.0" in a.reason
    assert "errors 40%" in a.reason
    ms[2] = member(2, "rolled_back")
    back = row("rolling_back", 2, ms, a.reason)
    assert ops(ob(back, [FULLM, FULLM, BAD])) == [("abort", 1)]
    ms[1] = member(1, "rolling", abort="x")
    assert ops(ob(row("rolling_back", 2, ms), [FULLM, FULLM, BAD])) == []  # waits for it
    gone = MemberObserved("rolled_back", "rolled_back", FULL)
    assert ops(ob(row("rolling_back", 2, ms), [FULLM, gone, BAD])) == [("abort", 0)]
    assert ops(ob(row("rolling_back", 2, ms), [gone, gone, BAD])) == [("finish", None)]


@st.composite
def observed_sets(draw: st.DrawFn) -> SetObserved:
    n = draw(st.integers(1, 4))
    state = draw(st.sampled_from(["pending", "rolling", "committing", "rolling_back",
                                  "done", "rolled_back"]))
    ms = [member(i, draw(st.sampled_from(["pending", "rolling", "rolled_back"])),
                 draw(st.sampled_from([None, "x"]))) for i in range(n)]
    obs = [draw(st.sampled_from([NONE, FULLM, CANARY, BAD,
                                 MemberObserved("applied", "committed", FULL)]))
           for _ in range(n)]
    return ob(row(state, draw(st.integers(0, n - 1)), ms), obs)


@given(observed_sets())
def test_plan_is_deterministic_at_most_one_action_and_empty_when_finished(o: SetObserved
                                                                         ) -> None:
    a, b = plan_set(o), plan_set(o)
    assert a == b and len(a) <= 1
    if o.row.state in ("done", "rolled_back"):
        assert a == ()


@dataclass
class Svc:
    depends_on: list[str] = field(default_factory=list)
    version: str = "1.0.0"


def test_order_follows_dependencies_and_rejects_unknown_duplicate_and_cycles() -> None:
    svcs = {"robot": Svc(["nexus"]), "nexus": Svc(), "ui": Svc(["robot"])}
    assert order_members(["ui", "robot", "nexus"], svcs) == ["nexus", "robot", "ui"]
    with pytest.raises(NotFound, match="'ghost' is not declared"):
        order_members(["ghost"], svcs)
    with pytest.raises(Conflict, match="twice"):
        order_members(["nexus", "nexus"], svcs)
    with pytest.raises(Conflict, match="cycle"):
        order_members(["a", "b"], {"a": Svc(["b"]), "b": Svc(["a"])})


def test_store_intents_hold_until_released_and_carry_abort(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    try:
        s = UpdateSetStore(ctx.store)
        sid = s.create([("nexus", "1.0.0", "2.0.0", None), ("robot", "1.0.0", "2.0.0", None)],
                       "test", 0.0)
        with pytest.raises(Conflict, match="open update set"):
            s.create([("robot", "1.0.0", "3.0.0", None)], "test", 0.0)
        assert s.intents() == {}
        s.start_member(sid, 0, 7, 1.0)
        assert s.intents() == {("nexus", "2.0.0"): (True, None)}
        s.release_commits(sid, 2.0)
        assert s.intents() == {("nexus", "2.0.0"): (False, None)}
        s.set_member(sid, 0, abort_reason="robot failed")
        assert s.intents()[("nexus", "2.0.0")] == (False, "robot failed")
        assert s.get(sid).state == "committing" and s.get(sid).members[0].proposal_id == 7
    finally:
        ctx.store.close()


SPEC = RolloutSpec(service="nexus", from_version="1.0.0", to_version="2.0.0",
                   command=["{python}", "-c", "pass"])
POLICY = EvolutionPolicy.model_validate({
    "judge": {"min_samples": 20, "floor_samples": 5, "latency_p_value": 0.01,
              "latency_ratio_fail": 1.2, "latency_ratio_immediate": 2.0,
              "immediate_p_value": 0.001, "immediate_min_samples": 20, "min_rounds": 3,
              "immediate_min_rounds": 3, "round_p_value": 0.05,
              "error_p_value": 0.01, "score_rollback": 75, "score_advance": 95},
    "rollout": {"phases": [
        {"name": "FULL", "weight": 100, "min_bake_seconds": 5, "deadline_seconds": 60}]}})


def test_evolution_plan_holds_a_set_members_commit_and_obeys_an_abort() -> None:
    state = RolloutState("nexus", "1.0.0", "2.0.0", 0, 0.0)
    same = Samples.of([10.0] * 30)
    base = RolloutObserved("r", SPEC, 9000, 1, state, False, True, same, same, 10.0,
                           (1.0, 1.0, 1.0))
    (free,) = plan(base, POLICY)
    assert (free.kind, free.params["op"]) == ("update", "commit")  # its own commit point
    (released,) = plan(replace(base, in_set=True), POLICY)  # the set's release decided it
    assert (released.kind, released.params["op"]) == ("proceed", "commit")
    assert plan(replace(base, hold_commit=True), POLICY) == ()
    (ab,) = plan(replace(base, hold_commit=True, abort="update set 1: robot failed"), POLICY)
    assert ab.kind == "rollback" and ab.params["quarantine"] is False
    assert ab.reason == "update set 1: robot failed"
