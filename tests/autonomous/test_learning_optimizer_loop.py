"""PerformanceOptimizer in the learning loop, per governance mode, on a real git checkout: a
target declared in learning_tuning.yaml (box around the last good value, constraints) turns
its measured trial into a proposal clamped to the proposal step limit (<= 25 %); growth
applies it (commit), governed waits for a person, emergency_stop freezes; unmeasured metrics
propose nothing and say so."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from autonomous.core.clock import FakeClock
from autonomous.learning.learning_orchestrator import LearningOrchestrator
from autonomous.learning.optimizer_proposals import clamp_step
from autonomous.store.timeseries import Point, TimeSeriesStore
from autonomous.testing import calm_gates, copy_default_tree, make_context
from controllers.learning import LearningController
from controllers.manager import ControllerManager

TARGET = """      targets:
        nexus:
          objective: {metric: throughput_rps, direction: maximize}
          constraints: {latency_p95_ms: {max: 250}, error_rate: {max: 0.01}}
          parameters:
            workers: {lower: 1, upper: 64, integer: true, box_fraction: 0.5,
                      file: tuning/nexus.yaml, path: spec.workers}
"""


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.email=t@example.invalid",
                           "-c", "user.name=t", *args], check=True, capture_output=True,
                          text=True).stdout


def _rig(tmp_path: Path, mode: str, measured: bool = True) -> tuple[Any, Any, Any, Path]:
    root = calm_gates(copy_default_tree(tmp_path / "root"))
    pol = root / "policies" / "learning_tuning.yaml"
    pol.write_text(pol.read_text().replace("      targets: {}\n", TARGET))
    (root / "tuning").mkdir()
    (root / "tuning" / "nexus.yaml").write_text("spec:\n  workers: 8  # tuned\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "init")
    ctx = make_context(tmp_path, root=root, clock=FakeClock())
    ctx.governance.set_mode(mode, actor="test", reason="test")
    if measured:
        now = ctx.clock.now()
        TimeSeriesStore(ctx.store, ctx.clock).write([
            Point(m, v, now, {"service": "nexus"})
            for m, v in (("throughput_rps", 100.0), ("latency_p95_ms", 120.0),
                         ("error_rate", 0.001))])
    ctl = LearningController(ctx)
    return ctx, LearningOrchestrator(ctx), (ControllerManager(ctx, [ctl]), ctl), root


def _workers(root: Path) -> int:
    return int((root / "tuning" / "nexus.yaml").read_text().split("workers:")[1].split()[0])


def test_clamp_step_keeps_the_step_limit() -> None:
    assert clamp_step(8, 30, 1, 64, 0.25, True) == 10
    assert clamp_step(8, 2, 1, 64, 0.25, True) == 6
    assert clamp_step(100.0, 110.0, 0, 105.0, 0.25, False) == 105.0


@pytest.mark.parametrize("mode", ["growth", "governed"])
async def test_optimizer_trial_becomes_a_bounded_proposal(tmp_path: Path, mode: str) -> None:
    ctx, orch, (mgr, ctl), root = _rig(tmp_path, mode)
    cyc = orch.run_learning_cycle()
    assert len(cyc["proposed"]) == 1, cyc["skipped"]
    p = orch.proposals.get(cyc["proposed"][0])
    assert p.source == "performance_optimizer" and p.patch.path == ("spec", "workers")
    assert p.patch.old == 8 and p.patch.new != 8 and abs(p.patch.new - 8) / 8 <= 0.25
    assert (p.low, p.high) == (1, 64) and p.evidence["trials"] == 1
    trials = ctx.store.kv_get("learning.optimizer.trials")
    assert [t["values"] for t in trials] == [{"workers": 8.0}] and trials[0]["safe"]
    head = _git(root, "rev-parse", "HEAD")
    await mgr.reconcile(ctl)
    p = orch.proposals.get(p.id)
    if mode == "growth":
        assert p.state == "baking" and _workers(root) == p.patch.new
        assert _git(root, "rev-parse", "HEAD") != head
    else:
        assert p.state == "awaiting_approval" and _workers(root) == 8
        assert _git(root, "rev-parse", "HEAD") == head
    again = orch.run_learning_cycle()  # one change to the parameter at a time
    assert again["proposed"] == [] and any(s["reason"] == "a change to it is open"
                                           for s in again["skipped"])


def test_emergency_stop_and_unmeasured_propose_nothing(tmp_path: Path) -> None:
    ctx, orch, _, root = _rig(tmp_path / "a", "emergency_stop")
    cyc = orch.run_learning_cycle()
    assert cyc["frozen"] is True and cyc["proposed"] == [] and _workers(root) == 8
    ctx2, orch2, _, _ = _rig(tmp_path / "b", "growth", measured=False)
    cyc2 = orch2.run_learning_cycle()
    assert cyc2["proposed"] == []
    assert any(s["key"] == "optimizer:nexus" and "not measured: throughput_rps" in s["reason"]
               for s in cyc2["skipped"])


def _measure(ctx: Any, latency: float, errors: float) -> None:
    TimeSeriesStore(ctx.store, ctx.clock).write([
        Point(m, v, ctx.clock.now(), {"service": "nexus"})
        for m, v in (("throughput_rps", 110.0), ("latency_p95_ms", latency),
                     ("error_rate", errors))])


@pytest.mark.parametrize("bad", [True, False])
async def test_optimizer_bake_verdict_from_the_constraint_series(tmp_path: Path,
                                                                 bad: bool) -> None:
    """growth: the applied trial bakes; the constraint series measured since the change decide
    it — latency over its limit reverts it (the inverse patch, committed) and the parameter is
    not proposed again for cooldown_cycles cycles; within the limits it is kept."""
    ctx, orch, (mgr, ctl), root = _rig(tmp_path, "growth")
    pid = orch.run_learning_cycle()["proposed"][0]
    await mgr.reconcile(ctl)
    p = orch.proposals.get(pid)
    assert p.state == "baking" and p.guard["constraints"] == {"error_rate": 0.01,
                                                             "latency_p95_ms": 250.0}
    applied = _workers(root)
    ctx.clock.advance(60)
    _measure(ctx, 120.0, 0.002)
    ctx.clock.advance(60)
    _measure(ctx, 400.0 if bad else 180.0, 0.003)  # one sample over the limit is enough
    assert await mgr.reconcile(ctl) == []  # inside the bake window: no verdict yet
    assert orch.proposals.get(pid).state == "baking"
    ctx.clock.advance(ctx.policy()["learning"]["proposals"]["bake_seconds"] + 1)
    outcomes = await mgr.reconcile(ctl)
    p = orch.proposals.get(pid)
    _history_says(ctx, orch, pid, "reverted" if bad else "kept", applied)
    if not bad:
        assert outcomes == [] and p.state == "kept" and _workers(root) == applied
        events = orch.proposals.events(pid)
        assert "constraints held" in events[-1]["reason"] and "latency_p95_ms" in \
            events[-1]["reason"]
        return
    assert [(o.action.kind, o.ok) for o in outcomes] == [("rollback", True)], \
        [o.message for o in outcomes]
    assert p.state == "reverted" and _workers(root) == 8
    assert f"learning: revert proposal {pid}" in _git(root, "log", "-1", "--format=%s")
    assert _git(root, "status", "--porcelain") == ""
    assert "latency_p95_ms 400 > 250" in outcomes[0].action.reason
    cooldown = ctx.policy()["learning"]["proposals"]["cooldown_cycles"]
    for _ in range(cooldown - 1):
        again = orch.run_learning_cycle()
        assert again["proposed"] == [], again
        assert any("cooldown" in s["reason"] for s in again["skipped"]), again["skipped"]


def _history_says(ctx: Any, orch: Any, pid: str, verdict: str, proposed: int) -> None:
    """GET /api/learning/optimizations' history (its response model): the proposal with the
    value in force beside the value proposed, its verdict and the target's trials."""
    from autonomous.api.routes.learning import OptimizationsOut
    from autonomous.learning.facade import LearningFacade

    out = OptimizationsOut.model_validate(LearningFacade(ctx, orch).optimizations())
    [h] = out.history
    assert (h.proposal_id, h.target, h.parameter) == (pid, "nexus", "workers")
    assert (h.value_in_force, h.proposed, h.verdict, h.state) == (8, proposed, verdict, verdict)
    assert [t.values for t in h.trials] == [{"workers": 8.0}] and h.trials[0].safe
    assert h.apply_commit and (h.revert_commit is not None) == (verdict == "reverted")
