"""The evolution controller's report: each Rollout on the status board (``Rollout/<name>``).

What ``atlas-autonomous status`` and ``rollout status`` show of a rollout, beside its row in
the store: the phase by name and its traffic weight, how long it has baked against its bake
and deadline, the judge's latest verdict (samples per version, paired rounds, score), and
what the controller decided from it this pass — ``CANARY: baking 40/60s``, ``not enough
samples (12/50)`` — so a rollout that holds says why. Conditions: ``Progressing`` (running),
``Completed`` (committed), ``RolledBack`` (with the reason; the version is quarantined),
``AwaitingApproval`` (governed mode holds this pass's action for a human: the approval id).
A Rollout no longer desired leaves the board.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autonomous.context import OperatorContext
from autonomous.core.conditions import HealthStatus, SyncStatus
from autonomous.evolution.metrics_comparator import compare
from autonomous.evolution.staged_rollout import decide, weights
from autonomous.governance.approvals import approve_command
from autonomous.resources.policy.evolution import EvolutionPolicy
from controllers.base import Outcome
from controllers.evolution_plan import RolloutObserved, rollout_policy

__all__ = ["details", "report_rollouts"]


def _summary(o: RolloutObserved) -> tuple[SyncStatus, HealthStatus]:
    if o.state is None:
        return (SyncStatus.SYNCED, HealthStatus.DEGRADED) if o.quarantined else \
            (SyncStatus.OUT_OF_SYNC, HealthStatus.MISSING)
    if o.state.status == "running":
        return SyncStatus.OUT_OF_SYNC, HealthStatus.PROGRESSING
    if o.state.status == "committed":
        return SyncStatus.SYNCED, HealthStatus.HEALTHY
    return SyncStatus.SYNCED, HealthStatus.DEGRADED


def details(o: RolloutObserved, policy: EvolutionPolicy) -> dict[str, Any]:
    """Pure: the figures and the decision shown for one observed Rollout."""
    out: dict[str, Any] = {"service": o.spec.service, "from_version": o.spec.from_version,
                           "to_version": o.spec.to_version, "rollout_id": o.rollout_id,
                           "quarantined": o.quarantined}
    if o.state is None:
        out["decision"] = (f"{o.spec.to_version} is quarantined (rolled back earlier)"
                           if o.quarantined else "not started")
        return out
    rp = rollout_policy(o.spec, policy)
    phase = rp.phases[min(o.state.phase_index, len(rp.phases) - 1)]
    weight, device = weights(o.state, rp)
    out |= {"status": o.state.status, "phase": phase.name, "phase_index": o.state.phase_index,
            "phases": len(rp.phases), "weight": weight, "device_version": device,
            "phase_elapsed_seconds": round(o.now - o.state.phase_started_at, 1),
            "min_bake_seconds": phase.min_bake_seconds,
            "deadline_seconds": phase.deadline_seconds,
            "candidate_running": o.candidate_running}
    if o.state.status != "running":
        out["decision"] = o.state.reason
        return out
    if o.abort is not None:  # its update set fails: plan rolls it back, whatever the judge
        out["decision"] = f"{phase.name}: rolling back for its update set: {o.abort}"
        return out
    if o.promotion_rejected is not None:  # plan rolls it back, whatever the judge
        out["decision"] = f"{phase.name}: promotion rejected by {o.promotion_rejected}; " \
            "rolling back"
        return out
    if not o.candidate_running:
        out["decision"] = f"{phase.name}: candidate {o.spec.to_version} not running"
        return out
    verdict = compare(o.baseline, o.candidate, policy.judge, o.rounds)
    out |= {"verdict": verdict.verdict.value, "score": verdict.score,
            "baseline_n": verdict.baseline_n, "candidate_n": verdict.candidate_n,
            "rounds": verdict.rounds, "median_ratio": verdict.median_ratio,
            "deadline_paused": o.promotion_asked_at is not None,
            "decision": decide(o.state, o.now, verdict, rp, o.promotion_asked_at).reason}
    return out


def report_rollouts(ctx: OperatorContext, observed: Sequence[RolloutObserved],
                    policy: EvolutionPolicy, outcomes: Sequence[Outcome]) -> None:
    """Write each observed Rollout's status; drop the rows of Rollouts no longer observed."""
    now = ctx.clock.now()
    gated = {o.action.resource: o.details["approval"] for o in outcomes
             if o.details.get("pending") and "approval" in o.details}
    seen = set()
    for o in observed:
        key = f"Rollout/{o.name}"
        seen.add(key)
        st = ctx.status.resource("evolution", "Rollout", o.name)
        st.sync, st.health = _summary(o)
        st.details = details(o, policy)
        status = o.state.status if o.state is not None else None
        running = status == "running"
        st.set_condition("Progressing", running, st.details.get("phase", "NotStarted")
                         if running else (status or "NotStarted"),
                         st.details["decision"] if running else "", now)
        st.set_condition("Completed", status == "committed", "Committed" if status ==
                         "committed" else "NotCommitted", "", now)
        st.set_condition("RolledBack", status == "rolled_back", "RolledBack" if status ==
                         "rolled_back" else "NotRolledBack",
                         o.state.reason if o.state is not None and status == "rolled_back"
                         else "", now)
        approval = gated.get(key)
        st.details["awaiting_approval"] = approval
        st.set_condition("AwaitingApproval", approval is not None,
                         "Pending" if approval else "NotGated",
                         approve_command(approval) if approval else "",
                         now)
    run = ctx.status.controller("evolution")
    for key in [k for k in run.resources if k.startswith("Rollout/") and k not in seen]:
        ctx.status.drop_resource("evolution", key)
