"""The learning controller: reconciles learned proposals with the git-tracked tree.

observe: the open proposals (store), the governance mode, the learning policy, the time (an
observed value) and, for each baking proposal, the feedback in its guard area since it was
applied, and for one whose guard declares constraint limits (the optimizer's) the worst value
of each constraint series (``<metric>{service=<target>}``) measured since it was applied.
diff (pure, :func:`plan`): an evaluated proposal → ``optimization`` apply (the Executor's gate
makes it an approval request in ``governed``, a recorded dry-run in ``emergency_stop``, and
in ``growth`` it is planned only within :func:`proposal_rules.decide`'s bounds: one change per
parameter per bake window, step ≤ the policy cap, at most K baking); a baking proposal past its
bake whose guard interval lies wholly above the bad rate before the change, or one a human
asked to revert → ``rollback`` revert (the inverse patch); an optimizer proposal past its bake
is reverted when a constraint series exceeded its limit since the change, else kept.
act: write the patch (or its inverse), commit it in a git checkout, reload as a generation.
report: proposal status from the outcomes (awaiting approval, rejected, frozen notes, kept).
The learning cycle that creates proposals is the orchestrator's, started here.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from autonomous.learning.feedback_stats import wilson
from autonomous.learning.proposal_apply import ApplyRejected, write_patch
from autonomous.learning.proposal_patch import PatchConflict
from autonomous.learning.proposal_rules import GrowthLimits, decide
from autonomous.learning.proposals import Proposal, ProposalStore
from autonomous.store.timeseries import TimeSeriesStore
from autonomous.context import OperatorContext
from controllers.base import Action, Controller, Outcome

__all__ = ["CONTROLLERS", "LearningController", "LearningObserved", "Transition", "plan"]


@dataclass(frozen=True)
class LearningObserved:
    mode: str
    now: float
    cycle: int
    proposals: tuple[Proposal, ...]
    guard_counts: dict[str, tuple[int, int]]  # proposal id → (bad, total) since applied
    revert_requests: dict[str, str]  # proposal id → who asked and why
    disabled: frozenset[str] = frozenset()  # features survival mode turned off
    # proposal id → constraint metric → (worst value measured since applied, points); for
    # proposals whose guard declares constraints (the optimizer's)
    guard_metrics: dict[str, dict[str, tuple[float | None, int]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    """A status move of a proposal that changes nothing in the world (report writes it)."""

    proposal: str
    to: str | None  # None: a note (same state)
    reason: str


def _resource(p: Proposal) -> str:
    return f"Proposal/{p.id}"


def _apply_action(p: Proposal, reason: str) -> Action:
    return Action("optimization", _resource(p), reason,
                  params={"op": "apply", "file": p.patch.file, "path": list(p.patch.path),
                          "old": p.patch.old, "new": p.patch.new},
                  evidence={"proposal": p.id, "title": p.title, **p.evidence,
                            "evaluation": p.evaluation})


def _revert_action(p: Proposal, reason: str, evidence: dict[str, Any] | None = None) -> Action:
    """The inverse patch, as a ``rollback`` (a write: governed asks a person first)."""
    return Action("rollback", _resource(p), reason,
                  params={"op": "revert", "file": p.patch.file, "path": list(p.patch.path),
                          "old": p.patch.new, "new": p.patch.old},
                  evidence=evidence or {})


def plan(o: LearningObserved, policy: dict[str, Any]) -> tuple[tuple[Action, ...],
                                                                tuple[Transition, ...]]:
    """Pure: the actions and the status moves for the proposals observed."""
    pp = policy["proposals"]
    limits = GrowthLimits(pp["max_step_fraction"], pp["max_baking"], pp["cooldown_cycles"])
    baking = [p for p in o.proposals if p.state == "baking"]
    baking_keys = {p.key for p in baking}
    actions: list[Action] = []
    moves: list[Transition] = []
    for p in baking:
        if p.id in o.revert_requests:
            actions.append(_revert_action(p, f"revert requested: {o.revert_requests[p.id]}"))
            continue
        if p.bake_until is None or o.now < p.bake_until:
            continue
        if p.guard.get("constraints"):
            _constraint_verdict(p, o.guard_metrics.get(p.id, {}), actions, moves)
            continue
        bad, total = o.guard_counts.get(p.id, (0, 0))
        before = float(p.guard.get("bad_rate_before", 0.0))
        low, high = wilson(bad, total, pp["bake_z"])
        if total >= pp["bake_min_samples"] and low > before:
            actions.append(_revert_action(
                p, f"bad bake: {bad}/{total} bad since the change, interval [{low:.2f}, "
                   f"{high:.2f}] above {before:.2f} before it",
                {"bad": bad, "total": total, "low": low, "before": before}))
        else:
            why = (f"{total} feedback since the change (< {pp['bake_min_samples']}): no "
                   "evidence of harm" if total < pp["bake_min_samples"] else
                   f"{bad}/{total} bad, interval [{low:.2f}, {high:.2f}] not above {before:.2f}")
            moves.append(Transition(p.id, "kept", f"bake over: {why}"))
    for p in o.proposals:
        if p.id in o.revert_requests and p.state == "kept":
            actions.append(_revert_action(p, f"revert requested: {o.revert_requests[p.id]}"))
        if p.state not in ("evaluated", "awaiting_approval"):
            continue
        off = sorted(o.disabled & {"learning", "optimizations"})
        if off:
            moves.append(Transition(p.id, None, f"held: survival mode disables {', '.join(off)}"))
            continue
        try:
            old, new = float(p.patch.old), float(p.patch.new)
        except (TypeError, ValueError):
            old, new = 0.0, float("nan")
        d = decide(o.mode, old, new, p.low if p.low is not None else float("-inf"),
                   p.high if p.high is not None else float("inf"), len(baking),
                   frozenset(baking_keys), p.key, limits)
        if d.action == "hold":
            moves.append(Transition(p.id, None, f"held: {d.reason}"))
            continue
        actions.append(_apply_action(p, f"{p.title} ({d.reason})"))
        if d.action == "apply":  # growth: count it, so K and one-per-key hold in this pass
            baking.append(p)
            baking_keys.add(p.key)
    return tuple(actions), tuple(moves)


def _constraint_verdict(p: Proposal, measured: dict[str, tuple[float | None, int]],
                        actions: list[Action], moves: list[Transition]) -> None:
    """Keep or revert a baked change by its constraint series: any limit exceeded by a value
    measured since the change → revert; all held → kept; none measured → kept, saying so."""
    limits = {str(m): float(v) for m, v in dict(p.guard["constraints"]).items()}
    over = {m: (w, limits[m]) for m, (w, _) in sorted(measured.items())
            if m in limits and w is not None and w > limits[m]}
    if over:
        text = ", ".join(f"{m} {w:g} > {lim:g}" for m, (w, lim) in over.items())
        actions.append(_revert_action(
            p, f"bad bake: {text} since the change",
            {"violated": {m: {"worst": w, "max": lim} for m, (w, lim) in over.items()},
             "measured": {m: {"worst": w, "points": n} for m, (w, n) in measured.items()}}))
        return
    seen = {m: v for m, v in measured.items() if v[1] > 0}
    if not seen:
        moves.append(Transition(p.id, "kept", "bake over: constraints "
                                f"{', '.join(sorted(limits))} not measured since the change: "
                                "no evidence of harm"))
        return
    text = ", ".join(f"{m} ≤ {w:g} (max {limits[m]:g}, {n} points)"
                     for m, (w, n) in sorted(seen.items()))
    moves.append(Transition(p.id, "kept", f"bake over: constraints held: {text}"))


class LearningController(Controller):
    name = "learning"
    subsystem = "learning"
    order = 40
    watches: tuple[str, ...] = ("learning.proposal",)  # not learning.route: one per query

    def __init__(self, ctx: OperatorContext) -> None:
        super().__init__(ctx)
        self.proposals = ProposalStore(ctx.store, ctx.clock)
        self.series = TimeSeriesStore(ctx.store, ctx.clock)
        self._task: asyncio.Task[None] | None = None
        self.orchestrator: Any = None

    async def start(self) -> None:
        from autonomous.learning.facade import LearningFacade
        from autonomous.learning.learning_orchestrator import LearningOrchestrator

        self.orchestrator = LearningOrchestrator(self.ctx)
        self.ctx.subsystems["learning"] = LearningFacade(self.ctx, self.orchestrator,
                                                         self.lock)
        self._task = asyncio.create_task(self.orchestrator.start_continuous_learning(),
                                         name="learning-cycle")

    async def stop(self) -> None:
        if self.orchestrator is not None:
            self.orchestrator.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def desired(self) -> Any:
        gen = self.ctx.desired.current
        return None if gen is None else self.ctx.policy()["learning"]

    async def observe(self) -> LearningObserved:
        reverts = dict(self.ctx.store.kv_get("learning.revert_requests", {}) or {})
        open_ = self.proposals.open()
        seen = {p.id for p in open_}
        open_ += [p for p in (self.proposals.find(pid) for pid in reverts if pid not in seen)
                  if p is not None and p.state == "kept"]
        counts: dict[str, tuple[int, int]] = {}
        for p in open_:
            if p.state == "baking" and p.applied_at is not None and p.guard.get("area"):
                r = self.ctx.store.query_one(
                    "SELECT COALESCE(SUM(bad), 0) b, COUNT(*) n FROM learning_feedback WHERE "
                    "area=? AND ts > ?", (p.guard["area"], p.applied_at))
                counts[p.id] = (int(r["b"]), int(r["n"])) if r else (0, 0)
        metrics = {p.id: self._constraint_series(p) for p in open_
                   if p.state == "baking" and p.applied_at is not None
                   and p.guard.get("constraints")}
        resilience = self.ctx.subsystems.get("resilience")
        disabled = frozenset(resilience.get_disabled_features()) if resilience else frozenset()
        return LearningObserved(self.ctx.governance.mode, self.ctx.clock.now(),
                                int(self.ctx.store.kv_get("learning.cycle", 0) or 0),
                                tuple(open_), counts, dict(reverts), disabled, metrics)

    def _constraint_series(self, p: Proposal) -> dict[str, tuple[float | None, int]]:
        """Worst (highest) raw value and point count of each constraint metric of the
        proposal's target (label ``service``) since the change was applied."""
        assert p.applied_at is not None
        target = str(p.guard.get("target", ""))
        out: dict[str, tuple[float | None, int]] = {}
        for m in sorted(dict(p.guard["constraints"])):
            rows = self.series.query(m, {"service": target}, p.applied_at, self.ctx.clock.now(),
                                     "raw")
            vals = [float(r.max) for r in rows if r.ts > p.applied_at]
            out[m] = (max(vals) if vals else None, len(vals))
        return out

    @staticmethod
    def diff(desired: Any, observed: LearningObserved) -> tuple[Action, ...]:
        if desired is None:
            return ()
        return plan(observed, desired)[0]

    async def act(self, action: Action) -> Outcome:
        pid = action.resource.split("/", 1)[1]
        p = self.proposals.get(pid)
        op = action.params.get("op")
        try:
            if op == "apply":
                return self._apply(action, p)
            if op == "revert":
                return self._revert(action, p)
        except PatchConflict as e:
            if op == "apply" and p.state in ("evaluated", "awaiting_approval"):
                cycle = int(self.ctx.store.kv_get("learning.cycle", 0) or 0)
                self.proposals.transition(p.id, "rejected", actor="learning",
                                          reason=f"superseded: {e}", closed_cycle=cycle)
            return Outcome(action, False, f"{op} {pid}: {e}", permanent=True)
        except (ApplyRejected, OSError) as e:
            return Outcome(action, False, f"{op} {pid}: {e}", permanent=True)
        return Outcome(action, False, f"unknown op {op!r}", permanent=True)

    def _apply(self, action: Action, p: Proposal) -> Outcome:
        if p.state not in ("evaluated", "awaiting_approval"):
            return Outcome(action, False, f"{p.id} is {p.state}", permanent=True)
        gated = self.ctx.governance.action_mode("optimization") == "require_approval"
        applied = write_patch(self.ctx.root, self.ctx.desired, p.patch,
                              f"learning: apply proposal {p.id}: {p.title}")
        now = self.ctx.clock.now()
        bake = float(self.ctx.policy()["learning"]["proposals"]["bake_seconds"])
        if gated:
            if p.state == "evaluated":
                self.proposals.transition(p.id, "awaiting_approval", actor="learning",
                                          reason="approval requested")
            p = self.proposals.transition(p.id, "approved", actor="human",
                                          reason="approved; applying")
        self.proposals.transition(p.id, "baking", actor="learning",
                                  reason=f"applied (commit {applied.commit}, generation "
                                         f"{applied.generation}); baking {bake:.0f}s",
                                  applied_at=now, bake_until=now + bake,
                                  apply_commit=applied.commit, generation=applied.generation)
        self.ctx.bus.publish("learning.proposal", id=p.id, state="baking")
        return Outcome(action, True, f"applied {p.id}: {p.patch.file} "
                       f"{'.'.join(map(str, p.patch.path))} {p.patch.old} → {p.patch.new}",
                       details={"commit": applied.commit, "generation": applied.generation})

    def _revert(self, action: Action, p: Proposal) -> Outcome:
        if p.state not in ("baking", "kept"):
            return Outcome(action, False, f"{p.id} is {p.state}", permanent=True)
        applied = write_patch(self.ctx.root, self.ctx.desired, p.patch.inverse(),
                              f"learning: revert proposal {p.id}: {p.title}")
        cycle = int(self.ctx.store.kv_get("learning.cycle", 0) or 0)
        self.proposals.transition(p.id, "reverted", actor="learning", reason=action.reason,
                                  revert_commit=applied.commit, closed_cycle=cycle)
        self._drop_revert_request(p.id)
        self.ctx.bus.publish("learning.proposal", id=p.id, state="reverted")
        return Outcome(action, True, f"reverted {p.id}: {p.patch.new} → {p.patch.old}",
                       details={"commit": applied.commit, "generation": applied.generation})

    def _drop_revert_request(self, pid: str) -> None:
        reqs = dict(self.ctx.store.kv_get("learning.revert_requests", {}) or {})
        if reqs.pop(pid, None) is not None:
            self.ctx.store.kv_set("learning.revert_requests", reqs)

    def report(self, desired: Any, observed: LearningObserved, outcomes: list[Outcome]) -> None:
        if desired is None:
            return
        by_id = {p.id: p for p in self.proposals.open()}
        for o in outcomes:
            pid = o.action.resource.split("/", 1)[1]
            p = by_id.get(pid)
            if p is None:
                continue
            d = dict(o.details or {})
            if d.get("pending") and p.state == "evaluated":
                self.proposals.transition(pid, "awaiting_approval", actor="learning",
                                          reason=o.message, approval_id=d.get("approval"))
            elif d.get("pending") and p.state == "awaiting_approval" \
                    and o.action.params.get("op") == "apply" \
                    and d.get("approval") != p.approval_id:
                self.proposals.set_approval(pid, str(d.get("approval")))
            elif d.get("rejected") and p.state == "awaiting_approval":
                self.proposals.transition(pid, "rejected", actor="human", reason=o.message,
                                          closed_cycle=observed.cycle)
            elif d.get("dry_run"):
                self.proposals.note(pid, "learning", f"frozen in mode {observed.mode}: "
                                    f"{o.action.params.get('op')} recorded, not done")
        for t in plan(observed, desired)[1]:
            p = by_id.get(t.proposal)
            if p is None:
                continue
            if t.to is None:
                self.proposals.note(p.id, "learning", t.reason)
            elif p.state == "baking" and t.to == "kept":
                self.proposals.transition(p.id, "kept", actor="learning", reason=t.reason)
        for p in self.proposals.open():
            res = self.ctx.status.resource(self.name, "Proposal", p.id)
            res.set_condition("Ready", p.state in ("baking", "kept"), p.state, p.reason,
                              self.ctx.clock.now())


CONTROLLERS = [LearningController]
