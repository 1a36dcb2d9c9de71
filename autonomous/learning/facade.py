"""The learning subsystem's facade for the API: proposals (list, show with diff and evidence,
approve, reject, revert as intent the controller reconciles), feedback, insights, the
knowledge graph and the Neural Router's decisions. Registered as ``ctx.subsystems["learning"]``."""

from __future__ import annotations

import asyncio
from typing import Any

from autonomous.context import OperatorContext
from autonomous.core.errors import Conflict, NotFound, Problem, ValidationFailed
from autonomous.learning.graph_view import render_svg
from autonomous.learning.learning_orchestrator import LearningOrchestrator
from autonomous.learning.optimization_history import optimization_history
from autonomous.learning.optimizer_proposals import KV as OPTIMIZER_KV
from autonomous.learning.pattern_source import live_patterns
from autonomous.learning.proposals import Proposal
from autonomous.learning.router_service import RouteService
from autonomous.resources.policy.learning_tuning import PatternPolicy

__all__ = ["LearningFacade", "unified_diff"]


def unified_diff(p: Proposal) -> str:
    """The proposal as a one-line YAML diff (the patch edits one scalar)."""
    path = ".".join(map(str, p.patch.path))
    return (f"--- a/{p.patch.file}\n+++ b/{p.patch.file}\n@@ {path} @@\n"
            f"-{path}: {p.patch.old!r}\n+{path}: {p.patch.new!r}\n")


class LearningFacade:
    def __init__(self, ctx: OperatorContext, orchestrator: LearningOrchestrator,
                 lock: asyncio.Lock | None = None) -> None:
        self.ctx = ctx
        self.lock = lock or asyncio.Lock()  # the learning controller's: no decision races a pass
        self.orchestrator = orchestrator
        self.proposals = orchestrator.proposals
        self.feedback = orchestrator.feedback
        self.router = RouteService(ctx)

    def _policy(self) -> dict[str, Any]:
        return self.ctx.policy()["learning"]

    # -- proposals --------------------------------------------------------------------------
    def list_proposals(self, state: str | None, limit: int) -> list[dict[str, Any]]:
        return [p.as_dict() for p in self.proposals.recent(state, limit)]

    def show(self, pid: str) -> dict[str, Any]:
        p = self.proposals.get(pid)
        return {**p.as_dict(), "diff": unified_diff(p), "events": self.proposals.events(pid)}

    async def decide(self, verb: str, pid: str, actor: str, reason: str | None
                     ) -> dict[str, Any]:
        """approve / reject / revert, while the learning controller is not reconciling."""
        fn = {"approve": self.approve, "reject": self.reject, "revert": self.revert}[verb]
        async with self.lock:
            return fn(pid, actor, reason)

    def approve(self, pid: str, actor: str, reason: str | None) -> dict[str, Any]:
        p = self.proposals.get(pid)
        if p.state != "awaiting_approval" or not p.approval_id:
            raise Conflict(f"proposal {pid} is {p.state}; only one awaiting approval can be "
                           "approved")
        gen = self.ctx.desired.current
        self.ctx.approvals.decide(p.approval_id, approve=True, actor=actor,
                                  current_generation=gen.number if gen else None, reason=reason)
        self.ctx.trigger("learning")
        return self.show(pid)

    def reject(self, pid: str, actor: str, reason: str | None) -> dict[str, Any]:
        p = self.proposals.get(pid)
        if p.state not in ("evaluated", "awaiting_approval"):
            raise Conflict(f"proposal {pid} is {p.state}; only an unapplied one can be rejected")
        if p.approval_id:
            approval = self.ctx.approvals.get(p.approval_id)
            if approval["state"] == "pending":
                gen = self.ctx.desired.current
                self.ctx.approvals.decide(p.approval_id, approve=False, actor=actor,
                                          current_generation=gen.number if gen else None,
                                          reason=reason)
        cycle = int(self.ctx.store.kv_get("learning.cycle", 0) or 0)
        self.proposals.transition(pid, "rejected", actor=actor,
                                  reason=f"rejected by {actor}: {reason or 'no reason given'}",
                                  closed_cycle=cycle)
        return self.show(pid)

    def revert(self, pid: str, actor: str, reason: str | None) -> dict[str, Any]:
        """Ask the controller to revert an applied change (intent; the controller owns it)."""
        p = self.proposals.get(pid)
        if p.state not in ("baking", "kept"):
            raise Conflict(f"proposal {pid} is {p.state}; only an applied one can be reverted")
        reqs = dict(self.ctx.store.kv_get("learning.revert_requests", {}) or {})
        reqs[pid] = f"{actor}: {reason or 'no reason given'}"
        self.ctx.store.kv_set("learning.revert_requests", reqs)
        self.proposals.note(pid, actor, f"revert requested: {reason or 'no reason given'}")
        self.ctx.trigger("learning")
        return self.show(pid)

    # -- feedback, insights, graph ------------------------------------------------------------
    def record_feedback(self, *, area: str | None, kind: str, bad: bool, value: float | None,
                        ref: str | None, comment: str | None, decision_id: str | None,
                        alert_id: int | None, latency_ms: float | None, error: bool,
                        actor: str) -> dict[str, Any]:
        """Feedback; with ``alert_id`` a label of that alert (area and value from it), with
        ``decision_id`` the outcome of a route decision (``error``: the model did not
        answer, kept out of its quality estimate)."""
        if alert_id is not None:
            return self.feedback.label_alert(alert_id, false_positive=bad, actor=actor,
                                             comment=comment)
        if decision_id is not None:
            d = self.router.record_outcome(decision_id, success=not bad, error=error,
                                           latency_ms=latency_ms)
            area = area or f"route:{d['query_class']}:{d['model']}"
        if area is None:
            raise ValidationFailed([Problem("", 0, "body.area", "required unless alert_id or "
                                            "decision_id names what the feedback is about")])
        return self.feedback.record_feedback(area=area, kind=kind, bad=bad, value=value,
                                             ref=ref, comment=comment, actor=actor)

    async def run_cycle(self) -> dict[str, Any]:
        out = await asyncio.to_thread(self.orchestrator.run_learning_cycle)
        self.ctx.trigger("learning")
        return {k: out.get(k) for k in ("cycle", "mode", "frozen", "proposed", "reason")}

    def _pattern_policy(self) -> PatternPolicy:
        return PatternPolicy.model_validate(self.ctx.policy()["learning_patterns"])

    def patterns(self) -> dict[str, Any]:
        return live_patterns(self.ctx, self._pattern_policy())

    def optimizations(self) -> dict[str, Any]:
        props = self.proposals.all()
        rows = [p.as_dict() for p in props]
        trials = list(self.ctx.store.kv_get(OPTIMIZER_KV, []) or [])
        return {"applied": [r for r in rows if r["state"] in ("baking", "kept", "reverted")],
                "pending": [r for r in rows if r["state"] in ("evaluated", "awaiting_approval")],
                "trials": trials, "history": optimization_history(props, trials)}

    def insights(self) -> dict[str, Any]:
        """The orchestrator's insights plus the pattern analyzer's (each with its citations)."""
        return {**self.orchestrator.get_learning_insights(),
                "patterns": live_patterns(self.ctx, self._pattern_policy())["insights"]}

    def knowledge_graph(self, center: str | None, depth: int, max_nodes: int,
                        fmt: str) -> dict[str, Any] | str:
        """A bounded subgraph around ``center`` (default: the newest node), JSON or SVG."""
        g = self.ctx.graph
        if center is None:
            newest = g.query_graph(limit=1)
            if not newest:
                empty: dict[str, Any] = {"nodes": [], "edges": [], "truncated": False}
                return render_svg(empty) if fmt == "svg" else empty
            center = str(newest[0]["id"])
        if not g.has(center):
            raise NotFound(f"no graph node {center!r}")
        return g.visualize_subgraph(center, depth=depth, max_nodes=max_nodes, fmt=fmt)
