"""Staged rollout: [SHADOW →] CANARY → BETA → STABLE → FULL, decided by a pure function.

:func:`decide` is a pure function of (state, observed time, judge's verdict, policy): the
evolution controller's diff calls it. :class:`StagedRollout` applies its decisions to a state
and keeps the quarantine (a version rolled back is never started again for that service until
a new version or a human clears it). :func:`weights` maps a state onto the gateway: the
candidate's share of ordinary traffic, and the one version device paths go to — the old one
until FULL, the new one from FULL on (switched once, never split).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Literal

from autonomous.evolution.metrics_comparator import Comparison, Verdict
from autonomous.resources.policy.evolution import RolloutPolicy

__all__ = ["Action", "Decision", "RolloutState", "StagedRollout", "decide", "weights"]

Status = Literal["running", "rolled_back", "committed"]


class Action(str, Enum):
    HOLD = "hold"
    ADVANCE = "advance"
    ROLLBACK = "rollback"
    COMMIT = "commit"


@dataclass(frozen=True)
class RolloutState:
    service: str
    from_version: str
    to_version: str
    phase_index: int
    phase_started_at: float
    status: Status = "running"
    reason: str = ""


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


def decide(state: RolloutState, now: float, verdict: Comparison | None,
           policy: RolloutPolicy, promotion_asked_at: float | None = None) -> Decision:
    """``promotion_asked_at``: when a human was asked to approve this phase's advance (or the
    commit), still unanswered. The phase is then paused, as an Argo Rollouts pause is: its
    deadline stops counting (the controller decided to promote in time; the wait is the
    human's), the judge keeps watching, and a regression still rolls back (a rejected
    promotion is rolled back by the controller's plan before the judge is asked)."""
    if state.status != "running":
        return Decision(Action.HOLD, f"rollout {state.status}")
    phase = policy.phases[min(state.phase_index, len(policy.phases) - 1)]
    if verdict is not None and verdict.verdict is Verdict.ROLLBACK:
        return Decision(Action.ROLLBACK, f"{phase.name}: {verdict.reason}")
    elapsed = now - state.phase_started_at
    why = verdict.reason if verdict is not None else "no verdict yet"
    passed = verdict is not None and verdict.verdict is Verdict.ADVANCE
    if promotion_asked_at is not None and not passed:
        return Decision(Action.HOLD, f"{phase.name}: promotion awaiting approval for "
                        f"{max(0.0, now - promotion_asked_at):.0f}s, deadline paused ({why})")
    if elapsed >= phase.deadline_seconds and not passed:
        return Decision(Action.ROLLBACK, f"{phase.name}: deadline {phase.deadline_seconds:g}s "
                        f"passed without a passing verdict ({why})")
    if elapsed < phase.min_bake_seconds:
        return Decision(Action.HOLD, f"{phase.name}: baking {elapsed:.0f}/"
                        f"{phase.min_bake_seconds:g}s")
    if not passed:
        return Decision(Action.HOLD, f"{phase.name}: {why}")
    if state.phase_index >= len(policy.phases) - 1:
        return Decision(Action.COMMIT, f"{phase.name}: watch passed, {why}")
    return Decision(Action.ADVANCE, f"{phase.name} → {policy.phases[state.phase_index + 1].name}"
                    f": {why}")


def weights(state: RolloutState, policy: RolloutPolicy) -> tuple[int, str]:
    """(candidate's percent of ordinary traffic, version device paths go to)."""
    if state.status == "rolled_back":
        return 0, state.from_version
    if state.status == "committed":
        return 100, state.to_version
    phase = policy.phases[state.phase_index]
    return phase.weight, state.to_version if phase.name == "FULL" else state.from_version


class StagedRollout:
    """Applies decisions to rollout states; keeps the quarantine of failed versions."""

    def __init__(self, policy: RolloutPolicy, quarantined: set[tuple[str, str]] | None = None
                 ) -> None:
        self.policy = policy
        self.quarantined: set[tuple[str, str]] = set(quarantined or ())

    def start_rollout(self, service: str, from_version: str, to_version: str, now: float
                      ) -> RolloutState:
        if (service, to_version) in self.quarantined:
            raise ValueError(f"{service} {to_version} is quarantined (rolled back earlier); "
                             "clear it or propose a new version")
        if from_version == to_version:
            raise ValueError(f"{service} already runs {to_version}")
        return RolloutState(service, from_version, to_version, 0, now)

    def advance_phase(self, state: RolloutState, now: float) -> RolloutState:
        if state.status != "running":
            raise ValueError(f"rollout is {state.status}")
        if state.phase_index >= len(self.policy.phases) - 1:
            return replace(state, status="committed", reason="committed after FULL watch")
        return replace(state, phase_index=state.phase_index + 1, phase_started_at=now)

    def rollback_phase(self, state: RolloutState, reason: str) -> RolloutState:
        if state.status == "committed":
            raise ValueError("rollout already committed; the old version is retired")
        self.quarantined.add((state.service, state.to_version))
        return replace(state, status="rolled_back", reason=reason)

    def clear_quarantine(self, service: str, version: str) -> None:
        self.quarantined.discard((service, version))

    def apply(self, state: RolloutState, decision: Decision, now: float) -> RolloutState:
        if decision.action is Action.ROLLBACK:
            return self.rollback_phase(state, decision.reason)
        if decision.action in (Action.ADVANCE, Action.COMMIT):
            return self.advance_phase(state, now)
        return state

    def get_rollout_status(self, state: RolloutState, now: float) -> dict[str, Any]:
        weight, device = weights(state, self.policy)
        phase = self.policy.phases[state.phase_index]
        return {"service": state.service, "from_version": state.from_version,
                "to_version": state.to_version, "status": state.status,
                "phase": phase.name, "weight": weight, "device_version": device,
                "phase_elapsed_seconds": round(now - state.phase_started_at, 3),
                "min_bake_seconds": phase.min_bake_seconds,
                "deadline_seconds": phase.deadline_seconds, "reason": state.reason}
