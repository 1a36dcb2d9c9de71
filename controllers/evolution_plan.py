"""The evolution controller's pure part: what was observed of one Rollout, and ``plan``.

``plan`` decides from (observed, policy) alone — time comes in as ``RolloutObserved.now`` —
and returns the actions for the controller's ``act``: start, (re)start the candidate, stop a
candidate a killed operator left behind, resume or roll back after an operator restart
(``rollout.on_operator_restart``), advance, commit, roll back (the judge's verdict, a
deadline, or a human who rejected the promotion), and retire the candidate after a rollback
or past the commit point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autonomous.evolution.metrics_comparator import Samples, compare
from autonomous.evolution.proposals import proposal_of
from autonomous.evolution.staged_rollout import Action as Step
from autonomous.evolution.staged_rollout import RolloutState, decide
from autonomous.resources.kinds.evolution import RolloutSpec
from autonomous.resources.policy.evolution import EvolutionPolicy, RolloutPolicy
from controllers.base import Action

__all__ = ["RolloutObserved", "plan", "rollout_policy"]


@dataclass(frozen=True)
class RolloutObserved:
    name: str
    spec: RolloutSpec
    baseline_port: int | None
    rollout_id: int | None
    state: RolloutState | None
    quarantined: bool
    candidate_running: bool
    baseline: Samples
    candidate: Samples
    now: float
    rounds: tuple[float, ...] = ()  # per paired probe round: candidate / baseline median
    # the candidate on record was started by another operator process: this one restarted
    # mid-rollout; orphan_pid: that candidate still runs (identity: pid, create time, argv)
    resumed: bool = False
    orphan_pid: int | None = None
    candidate_recorded: bool = False  # a candidate process of this rollout is on record
    # committed: the Service's own process runs to_version and is ready (None: no Service
    # owner in this operator to observe)
    successor_ready: bool | None = None
    retiring: bool = False  # left the gateway, its process not yet stopped
    drained: bool = False  # ... and the gateway no longer routes to it
    hold_commit: bool = False  # a member of an update set: commits when the set releases it
    abort: str | None = None  # its update set asks for a rollback (another member failed)
    in_set: bool = False  # a rolling member of an open update set (its set releases commits)
    # governed: when a human was first asked to approve this phase's advance or commit, not
    # yet answered (a rejection clears it): the phase's deadline is paused meanwhile
    promotion_asked_at: float | None = None
    # ... and who rejected it, why: the rollout is rolled back (the human said no to going
    # on; staying in the phase for ever is not an outcome)
    promotion_rejected: str | None = None



def rollout_policy(spec: RolloutSpec, policy: EvolutionPolicy) -> RolloutPolicy:
    if spec.phases is None:
        return policy.rollout
    return RolloutPolicy(phases=spec.phases,
                         on_operator_restart=policy.rollout.on_operator_restart)


def plan(o: RolloutObserved, policy: EvolutionPolicy) -> tuple[Action, ...]:
    """Pure: the actions for one Rollout from what was observed."""
    res = f"Rollout/{o.name}"
    ev: dict[str, Any] = {"baseline_n": o.baseline.requests, "candidate_n": o.candidate.requests}
    if o.state is None:
        if o.quarantined:
            return ()
        if o.baseline_port is None:
            return ()
        # a proposal's rollout carries out the proposal that was let through (proceed); a
        # Rollout declared in the desired state is a decision of its own (update)
        kind = "proceed" if proposal_of(o.name) is not None else "update"
        return (Action(kind, res, f"start rollout {o.spec.service} {o.spec.from_version} "
                       f"→ {o.spec.to_version}", params={"op": "start"}),)
    if o.state.status != "running":
        return _after_end(o, res)
    if o.abort is not None:
        return (Action("rollback", res, o.abort, params={"op": "rollback", "quarantine": False,
                                                         "phase": o.state.phase_index}),)
    rp = rollout_policy(o.spec, policy)
    phase = rp.phases[min(o.state.phase_index, len(rp.phases) - 1)].name
    if o.promotion_rejected is not None:
        # proceed, not rollback: the human who rejected the promotion decided this already
        return (Action("proceed", res, f"{phase}: promotion rejected by "
                       f"{o.promotion_rejected}", params={"op": "rollback",
                                                          "phase": o.state.phase_index},
                       evidence=ev),)
    if o.resumed and rp.on_operator_restart == "rollback":
        return (Action("rollback", res, f"{phase}: the operator restarted mid-rollout "
                       "(policy rollout.on_operator_restart: rollback)",
                       params={"op": "rollback", "phase": o.state.phase_index}, evidence=ev),)
    if o.orphan_pid is not None:
        return (Action("stop", res, f"{phase}: candidate pid {o.orphan_pid} was left by the "
                       "killed operator; stopping it (a fresh candidate resumes the phase)",
                       params={"op": "orphan", "pid": o.orphan_pid}),)
    if not o.candidate_running:
        why = "resuming after an operator restart" if o.resumed else "not running"
        # kind restart, not update: the rollout and its phase were decided (and, governed,
        # approved) already; bringing its candidate back after a crash or an operator
        # restart changes nothing that was decided, like a supervisor's restart
        return (Action("restart", res, f"{phase}: candidate {o.spec.to_version} {why}; "
                       f"starting it (phase {o.state.phase_index})", params={"op": "candidate"}),)
    verdict = compare(o.baseline, o.candidate, policy.judge, o.rounds)
    d = decide(o.state, o.now, verdict, rp, o.promotion_asked_at)
    ev |= {"verdict": verdict.verdict.value, "score": verdict.score,
           "median_ratio": verdict.median_ratio, "rounds": verdict.rounds,
           "round_p": verdict.round_p, "reason": verdict.reason}
    if d.action is Step.ROLLBACK:
        return (Action("rollback", res, d.reason, params={"op": "rollback",
                                                          "phase": o.state.phase_index},
                       evidence=ev),)
    if d.action is Step.COMMIT and o.hold_commit:
        return ()
    if d.action in (Step.ADVANCE, Step.COMMIT):
        # each promotion is a decision (governed: approving it is the promotion); a set
        # member's commit was decided when its set released the commits
        kind = "proceed" if d.action is Step.COMMIT and o.in_set else "update"
        return (Action(kind, res, d.reason, params={"op": d.action.value,
                                                        "phase": o.state.phase_index},
                       evidence=ev),)
    return ()


def _after_end(o: RolloutObserved, res: str) -> tuple[Action, ...]:
    """An ended rollout's candidate. After a rollback it leaves the gateway at once (the old
    version never stopped serving); past the commit point it serves 100 % until the Service's
    own process runs the new version and is ready, then leaves the gateway. Its process is
    stopped (retired) only once the gateway no longer routes to it: no request lands on a
    stopped candidate."""
    assert o.state is not None
    st = o.state.status
    why = (f"committed: the Service itself serves {o.spec.to_version}" if st == "committed"
           else f"{st}: the old version serves")
    if o.candidate_running:
        if st == "committed" and o.successor_ready is False:
            return ()  # the Service's owner is still switching it to the new version
        return (Action("stop", res, f"{why}; the gateway stops routing to the candidate",
                       params={"op": "unpublish"}),)
    if o.retiring and not o.drained:
        return ()  # the gateway has not yet loaded the configuration without it
    if o.retiring or o.candidate_recorded:
        return (Action("stop", res, f"{why}; the candidate is retired", params={"op": "retire"}),)
    return ()
