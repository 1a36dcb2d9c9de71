"""Proposal lifecycle per governance mode on a real git checkout in a temp dir: feedback →
cycle → proposal; growth applies (commit, hot reload as a new generation), a bad bake reverts
(inverse commit) and the change is not proposed again for N cycles; governed writes nothing
until a human approves (or rejects); emergency_stop freezes learning, recorded."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from autonomous.core.clock import FakeClock
from autonomous.learning.learning_orchestrator import LearningOrchestrator
from autonomous.resilience.survival_mode import SurvivalMode
from autonomous.testing import calm_gates, copy_default_tree, make_context
from controllers.learning import LearningController
from controllers.manager import ControllerManager

RULE = "service_latency_high"
TELEMETRY = "policies/telemetry.yaml"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.email=t@example.invalid",
                           "-c", "user.name=t", *args], check=True, capture_output=True,
                          text=True).stdout


def _rule_value(policy: dict[str, Any]) -> float:
    return next(r["value"] for r in policy["telemetry"]["alerting"]["rules"]
                if r["name"] == RULE)


class Rig:
    def __init__(self, tmp_path: Path, mode: str) -> None:
        root = calm_gates(copy_default_tree(tmp_path / "root"))
        _git(root, "init", "-q")
        _git(root, "add", ".")
        _git(root, "commit", "-q", "-m", "init")
        self.root = root
        self.clock = FakeClock()
        self.ctx = make_context(tmp_path, root=root, clock=self.clock)
        self.ctx.governance.set_mode(mode, actor="test", reason="test")
        self.orch = LearningOrchestrator(self.ctx)
        self.ctl = LearningController(self.ctx)
        self.mgr = ControllerManager(self.ctx, [self.ctl])

    def label(self, values: list[float], bad: bool) -> None:
        for v in values:
            self.orch.feedback.record_feedback(area=f"alert:{RULE}", kind="alert_label",
                                               bad=bad, value=v, actor="test")

    def seed(self) -> None:
        # 12 false positives between 510 and 620 ms, 8 real alerts above 650: precision 0.4
        self.label([510.0 + 10 * i for i in range(12)], True)
        self.label([650.0 + 10 * i for i in range(8)], False)

    async def reconcile(self) -> list[Any]:
        return await self.mgr.reconcile(self.ctl)

    def text(self) -> str:
        return (self.root / TELEMETRY).read_text()

    def head(self) -> str:
        return _git(self.root, "rev-parse", "HEAD").strip()


async def test_growth_applies_commits_reloads_then_bad_bake_reverts(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "growth")
    rig.seed()
    gen0 = rig.ctx.desired.current.number
    cycle = rig.orch.run_learning_cycle()
    assert len(cycle["proposed"]) == 1, cycle
    pid = cycle["proposed"][0]
    p = rig.orch.proposals.get(pid)
    assert p.state == "evaluated" and (p.patch.old, p.patch.new) == (500, 600)
    ev = p.evaluation
    assert ev["in_force"]["precision"] == pytest.approx(0.4)
    assert ev["proposed"]["precision"] == pytest.approx(0.8) and ev["proposed"]["recall"] == 1.0
    assert p.evidence["sample_size"] == 20 and p.evidence["graph"]

    outcomes = await rig.reconcile()
    assert [o.ok for o in outcomes] == [True], [o.message for o in outcomes]
    p = rig.orch.proposals.get(pid)
    assert p.state == "baking" and p.apply_commit == rig.head()
    assert f"learning: apply proposal {pid}" in _git(rig.root, "log", "-1", "--format=%s")
    assert _git(rig.root, "status", "--porcelain") == ""
    gen = rig.ctx.desired.current
    assert gen.number == gen0 + 1 and gen.commit == p.apply_commit
    assert _rule_value(rig.ctx.policy()) == 600
    only_value_changed = rig.text().replace("value: 600", "value: 500", 1)
    assert only_value_changed == _git(rig.root, "show", f"{p.apply_commit}~1:{TELEMETRY}")

    # a second pass inside the bake window plans nothing (one change per bake)
    assert await rig.reconcile() == []
    # after the change the rule keeps raising false alarms: 14 of 15 bad
    rig.clock.advance(60)
    rig.label([660.0] * 14, True)
    rig.label([700.0], False)
    rig.clock.advance(rig.ctx.policy()["learning"]["proposals"]["bake_seconds"] + 1)
    outcomes = await rig.reconcile()
    assert [(o.action.kind, o.ok) for o in outcomes] == [("rollback", True)]
    p = rig.orch.proposals.get(pid)
    assert p.state == "reverted" and p.revert_commit == rig.head()
    assert f"learning: revert proposal {pid}" in _git(rig.root, "log", "-1", "--format=%s")
    assert _git(rig.root, "show", f"HEAD:{TELEMETRY}") == \
        _git(rig.root, "show", f"{p.apply_commit}~1:{TELEMETRY}")
    assert _rule_value(rig.ctx.policy()) == 500
    assert rig.ctx.desired.current.number == gen0 + 2

    # not proposed again for cooldown_cycles cycles, then it may be
    cooldown = rig.ctx.policy()["learning"]["proposals"]["cooldown_cycles"]
    for _ in range(cooldown - 1):
        again = rig.orch.run_learning_cycle()
        assert again["proposed"] == [] and "cooldown" in again["skipped"][0]["reason"]
    assert len(rig.orch.run_learning_cycle()["proposed"]) == 1
    states = [e["to"] for e in rig.orch.proposals.events(pid)]
    assert states == ["proposed", "evaluated", "baking", "reverted"]


async def test_growth_keeps_a_good_bake_and_holds_out_of_bounds(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "growth")
    rig.seed()
    pid = rig.orch.run_learning_cycle()["proposed"][0]
    await rig.reconcile()
    rig.clock.advance(60)
    rig.label([700.0 + i for i in range(10)], False)  # only real alerts since the change
    rig.clock.advance(rig.ctx.policy()["learning"]["proposals"]["bake_seconds"] + 1)
    assert await rig.reconcile() == []
    p = rig.orch.proposals.get(pid)
    assert p.state == "kept" and "bake over" in p.reason
    # a proposal outside the declared bounds is held, never applied
    from autonomous.learning.proposal_patch import Patch
    q = rig.orch.proposals.create(
        source="test", title="too far", patch=Patch(TELEMETRY, p.patch.path, 600, 760),
        generation=rig.ctx.desired.current.number, cycle=1, evidence={}, guard={},
        low=200, high=2000)
    rig.orch.proposals.transition(q.id, "evaluated", actor="test", reason="t")
    before = rig.text()
    assert await rig.reconcile() == []
    assert rig.orch.proposals.get(q.id).state == "evaluated" and rig.text() == before
    assert "step 27% > 25%" in rig.orch.proposals.events(q.id)[-1]["reason"]


async def test_governed_writes_nothing_until_approved(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "governed")
    rig.seed()
    pid = rig.orch.run_learning_cycle()["proposed"][0]
    before, head = rig.text(), rig.head()
    for _ in range(2):
        outcomes = await rig.reconcile()
        assert [o.details.get("pending") for o in outcomes] == [True]
    p = rig.orch.proposals.get(pid)
    assert p.state == "awaiting_approval" and p.approval_id
    assert rig.text() == before and rig.head() == head
    assert len(rig.ctx.approvals.list("pending")) == 1
    rig.ctx.approvals.decide(p.approval_id, approve=True, actor="human",
                             current_generation=rig.ctx.desired.current.number)
    outcomes = await rig.reconcile()
    assert [o.ok for o in outcomes] == [True]
    p = rig.orch.proposals.get(pid)
    assert p.state == "baking" and rig.head() == p.apply_commit != head
    assert [e["to"] for e in rig.orch.proposals.events(pid)] == [
        "proposed", "evaluated", "awaiting_approval", "approved", "baking"]
    assert _rule_value(rig.ctx.policy()) == 600


async def test_governed_rejection_closes_and_cools_down(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "governed")
    rig.seed()
    pid = rig.orch.run_learning_cycle()["proposed"][0]
    before, head = rig.text(), rig.head()
    await rig.reconcile()
    p = rig.orch.proposals.get(pid)
    rig.ctx.approvals.decide(p.approval_id, approve=False, actor="human",
                             current_generation=rig.ctx.desired.current.number)
    await rig.reconcile()
    p = rig.orch.proposals.get(pid)
    assert p.state == "rejected" and p.closed_cycle == 1
    assert rig.text() == before and rig.head() == head
    assert rig.orch.run_learning_cycle()["proposed"] == []


async def test_emergency_stop_freezes_learning_recorded_not_done(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "growth")
    rig.seed()
    pid = rig.orch.run_learning_cycle()["proposed"][0]
    rig.ctx.governance.set_mode("emergency_stop", actor="test", reason="test")
    frozen = rig.orch.run_learning_cycle()
    assert frozen["frozen"] and frozen["proposed"] == []
    assert rig.ctx.graph.node(frozen["graph_node"])["attrs"]["frozen"] is True
    before, head = rig.text(), rig.head()
    outcomes = await rig.reconcile()
    assert [o.details.get("dry_run") for o in outcomes] == [True]
    await rig.reconcile()
    assert rig.text() == before and rig.head() == head
    assert rig.orch.proposals.get(pid).state == "evaluated"
    notes = [e for e in rig.orch.proposals.events(pid) if "frozen" in e["reason"]]
    assert len(notes) == 1  # recorded once, not once per pass
    decisions = rig.ctx.graph.query_graph(type_="decision", label_contains=pid)
    assert decisions and decisions[0]["attrs"]["gate"] == "dry_run"


def test_policy_bounds_are_validated(tmp_path: Path) -> None:
    root = copy_default_tree(tmp_path / "root")
    f = root / "policies" / "learning.yaml"
    f.write_text(f.read_text().replace("max_step_fraction: 0.25", "max_step_fraction: 0.5"))
    ctx = make_context(tmp_path, root=root)
    assert ctx.desired.current is None and ctx.desired.error is not None
    text = ctx.desired.error.as_dict()["text"]
    assert "learning.yaml" in text and "max_step_fraction" in text
    assert yaml.safe_load(f.read_text())  # the file itself is still YAML


async def test_a_kept_change_is_reverted_on_request(tmp_path: Path) -> None:
    from autonomous.learning.facade import LearningFacade

    rig = Rig(tmp_path, "growth")
    rig.seed()
    pid = rig.orch.run_learning_cycle()["proposed"][0]
    await rig.reconcile()
    rig.clock.advance(rig.ctx.policy()["learning"]["proposals"]["bake_seconds"] + 1)
    await rig.reconcile()
    assert rig.orch.proposals.get(pid).state == "kept"
    LearningFacade(rig.ctx, rig.orch).revert(pid, "ops", "not wanted")
    outcomes = await rig.reconcile()
    assert [(o.action.kind, o.ok) for o in outcomes] == [("rollback", True)]
    p = rig.orch.proposals.get(pid)
    assert p.state == "reverted" and "not wanted" in p.reason
    assert _rule_value(rig.ctx.policy()) == 500
    assert await rig.reconcile() == []  # the request is consumed


async def test_uncommitted_edits_in_the_file_block_the_apply(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "growth")
    rig.seed()
    pid = rig.orch.run_learning_cycle()["proposed"][0]
    f = rig.root / TELEMETRY
    f.write_text(f.read_text() + "# a human's edit in progress\n")
    head = rig.head()
    outcomes = await rig.reconcile()
    assert [o.ok for o in outcomes] == [False] and "uncommitted" in outcomes[0].message
    assert rig.head() == head and rig.orch.proposals.get(pid).state == "evaluated"
    assert f.read_text().endswith("# a human's edit in progress\n")


async def test_continuous_learning_runs_a_cycle_per_interval(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "growth")
    rig.seed()
    triggered = asyncio.Event()
    rig.ctx.triggers["learning"] = triggered.set
    interval = rig.ctx.desired.current.tree.config.controllers["learning"].interval_seconds
    task = asyncio.create_task(rig.orch.start_continuous_learning())
    try:
        for _ in range(2):
            while not rig.clock._waiters:  # the loop is asleep on the clock
                await asyncio.sleep(0)
            assert not triggered.is_set()
            rig.clock.advance(interval - 1)
            await asyncio.sleep(0)
            assert not triggered.is_set()  # not before the interval
            rig.clock.advance(1)
            await asyncio.wait_for(triggered.wait(), 10)
            triggered.clear()
        assert rig.ctx.store.kv_get("learning.cycle") == 2
        assert len(rig.orch.proposals.all()) == 1  # proposed once; then it is open
    finally:
        rig.orch.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _survival(rig: Rig) -> SurvivalMode:
    """The resilience subsystem's SurvivalMode with a profile that turns learning off (no
    services to stop, no service features touched)."""
    return SurvivalMode(store=rig.ctx.store, bus=rig.ctx.bus, clock=rig.clock,
                        services=lambda: None, specs=dict,
                        profile=lambda: {"core_services": [], "disable_service_features": False,
                                         "disabled_features": ["evolution", "optimizations",
                                                               "learning"]})


async def test_survival_mode_holds_learning(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "growth")
    rig.seed()
    pid = rig.orch.run_learning_cycle()["proposed"][0]
    survival = _survival(rig)
    await survival.enter_survival_mode("test pressure", source="test")
    rig.ctx.subsystems["resilience"] = survival
    assert rig.orch.run_learning_cycle()["frozen"] is True
    head = rig.head()
    assert await rig.reconcile() == []
    assert rig.head() == head and rig.orch.proposals.get(pid).state == "evaluated"
    assert "survival mode disables learning, optimizations" in \
        rig.orch.proposals.events(pid)[-1]["reason"]
    await survival.exit_survival_mode("pressure over")
    assert [o.ok for o in await rig.reconcile()] == [True]


async def test_governed_approval_follows_a_new_generation(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "governed")
    rig.seed()
    pid = rig.orch.run_learning_cycle()["proposed"][0]
    await rig.reconcile()
    first = rig.orch.proposals.get(pid).approval_id
    # someone commits an unrelated edit: a new generation; the old request no longer matches
    f = rig.root / "policies" / "learning.yaml"
    f.write_text(f.read_text().replace("bake_seconds: 3600", "bake_seconds: 3000"))
    _git(rig.root, "commit", "-qam", "shorter bake")
    assert rig.ctx.desired.reload() is not None
    await rig.reconcile()
    p = rig.orch.proposals.get(pid)
    assert p.state == "awaiting_approval" and p.approval_id and p.approval_id != first
    rig.ctx.approvals.decide(p.approval_id, approve=True, actor="human",
                             current_generation=rig.ctx.desired.current.number)
    assert [o.ok for o in await rig.reconcile()] == [True]
    assert rig.orch.proposals.get(pid).state == "baking"


async def test_the_graph_links_the_proposal_to_what_was_done_with_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "growth")
    rig.seed()
    pid = rig.orch.run_learning_cycle()["proposed"][0]
    await rig.reconcile()
    resource = f"resource:Proposal/{pid}"
    about = {n["node"]["id"] for n in rig.ctx.graph.neighbours(resource, direction="in")}
    kinds = {rig.ctx.graph.node(n)["type"] for n in about}
    assert {"decision", "action", "outcome"} <= kinds
    outcome = next(n for n in about if rig.ctx.graph.node(n)["type"] == "outcome"
                   and "applied" in rig.ctx.graph.node(n)["label"])
    chain = [n["type"] for n in rig.ctx.graph.why(outcome)]
    assert chain[-2:] == ["action", "outcome"] and "decision" in chain


async def test_a_proposal_whose_value_changed_is_superseded(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "growth")
    rig.seed()
    pid = rig.orch.run_learning_cycle()["proposed"][0]
    f = rig.root / TELEMETRY
    f.write_text(f.read_text().replace("value: 500", "value: 450", 1))
    _git(rig.root, "commit", "-qam", "a person tuned it")
    rig.ctx.desired.reload()
    head = rig.head()
    outcomes = await rig.reconcile()
    assert [o.ok for o in outcomes] == [False] and "in force 450" in outcomes[0].message
    p = rig.orch.proposals.get(pid)
    assert p.state == "rejected" and p.reason.startswith("superseded")
    assert rig.head() == head and await rig.reconcile() == []
