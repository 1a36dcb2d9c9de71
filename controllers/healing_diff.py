"""The healing controller's pure diff (``controllers/healing.py`` observes and acts).

``diff(desired, observed)``: no clock (the time is ``observed.now``), no store, no I/O. Per
service: close the incidents of a Service no longer desired; release back-off / isolation made
for a revision the desired state no longer has; CrashLoopBackOff once the observed restarts
inside the budget window exceed the budget; a due crash-loop try with what its failure leads
to. Per incident awaiting a human: once its approval is decided (approved, rejected, expired,
cancelled), ``resume`` — the awaited step goes to the Executor again, which takes the approval
or the rejection, and the ladder goes on. And the global brake as one escalation to a human (see ``controllers/healing_plan.py`` for
the decisions themselves).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controllers.base import Action
from controllers.healing_plan import Budget, after_failed_try, brake, over_budget, \
    restarts_in_window

__all__ = ["BRAKE", "BRAKE_REASON", "BRAKE_SERVICE", "OPEN_STATES", "HealingDesired",
           "HealingObserved", "IncidentView", "ServiceHealing", "budget_step", "diff",
           "in_remediation"]

OPEN_STATES = ("awaiting_approval", "backoff")
BRAKE = "Healing/brake"
BRAKE_SERVICE = "*"  # the brake's human alert is about no single service
BRAKE_REASON = "global brake: too many services in remediation at once"


@dataclass(frozen=True)
class HealingDesired:
    generation: int
    services: Mapping[str, str] = field(default_factory=dict)  # name → desired spec hash
    brake_limit: int | None = None  # healing.brake.max_services_in_remediation; None = off
    budget: Budget | None = None  # restart budget + crash-loop tries; None = no crash loop


@dataclass(frozen=True)
class ServiceHealing:
    """What healing holds about one service."""

    name: str
    phase: str = "normal"  # normal | backoff | isolated
    attempts: int = 0
    next_at: float | None = None  # monotonic time of the next crash-loop try
    held_for: str | None = None  # spec hash healing's isolation / pause was made for
    busy: bool = False
    paused_by_human: bool = False
    incidents: tuple[str, ...] = ()  # open incident ids
    restarts: tuple[float, ...] = ()  # monotonic times of its restarts counted by healing
    status: Mapping[str, Any] = field(default_factory=dict)  # for report only


@dataclass(frozen=True)
class IncidentView:
    """One open incident as the engine holds it (a resource with status)."""

    id: str
    service: str
    state: str  # open | awaiting_approval | backoff
    step: int = 0  # index of its current ladder step
    strategy: str | None = None  # the step's strategy (the awaited one while approval pends)
    approval: str | None = None  # the awaited approval's id
    approval_state: str | None = None  # pending | approved | rejected | expired | cancelled …


@dataclass(frozen=True)
class HealingObserved:
    now: float  # the clock (monotonic), observed
    services: Mapping[str, ServiceHealing] = field(default_factory=dict)
    brake_alerted: bool = False  # the brake's human alert is open
    incidents: Mapping[str, IncidentView] = field(default_factory=dict)  # id → view


def diff(desired: HealingDesired, observed: HealingObserved) -> tuple[Action, ...]:
    """Pure: the healing steps the state calls for (see the module docstring)."""
    actions: list[Action] = []
    for name, sv in sorted(observed.services.items()):
        res = f"Service/{name}"
        if name not in desired.services:
            if sv.phase != "normal" or sv.incidents:
                actions.append(Action(
                    "close_incident", res, f"{res} is no longer in the desired state "
                    f"(generation {desired.generation}): its incidents are closed and nothing "
                    "is retried", {"service": name, "incidents": list(sv.incidents)},
                    {"phase": sv.phase, "incidents": list(sv.incidents)}))
            continue
        want = desired.services[name]
        if sv.phase != "normal" and sv.held_for is not None and sv.held_for != want:
            actions.append(Action(
                "release", res, f"generation {desired.generation} changed {res} (revision "
                f"{sv.held_for} → {want}): its {sv.phase} is released and the new revision "
                "starts at once", {"service": name, "from": sv.held_for, "to": want},
                {"phase": sv.phase, "attempts": sv.attempts}))
            continue
        step = (budget_step(desired, name, sv, observed.now)
                or _due_try(desired, name, sv, observed.now))
        if step is not None:
            actions.append(step)
    actions += [a for _, inc in sorted(observed.incidents.items())
                if (a := _resume(desired, observed, inc)) is not None]
    actions += _brake(desired, observed)
    return tuple(actions)


def _resume(desired: HealingDesired, observed: HealingObserved,
            inc: IncidentView) -> Action | None:
    """An incident whose awaited approval was decided goes on (not while a heal of its
    service runs; a Service no longer desired has its incidents closed instead)."""
    sv = observed.services.get(inc.service)
    if (inc.state != "awaiting_approval" or inc.approval is None
            or inc.approval_state in (None, "pending") or inc.service not in desired.services
            or (sv is not None and sv.busy)):
        return None
    return Action("resume", f"Service/{inc.service}", f"approval {inc.approval} is "
                  f"{inc.approval_state}: incident {inc.id} goes on from {inc.strategy}",
                  {"service": inc.service, "incident": inc.id, "approval": inc.approval},
                  {"approval_state": inc.approval_state, "strategy": inc.strategy,
                   "step": inc.step})


def budget_step(desired: HealingDesired, name: str, sv: ServiceHealing,
                now: float) -> Action | None:
    """Pure: CrashLoopBackOff for a desired service in ``normal`` phase whose restarts inside
    the budget window exceed the budget (the engine asks this at each restart it counts)."""
    b = desired.budget
    if b is None or sv.phase != "normal" or name not in desired.services:
        return None
    n = restarts_in_window(sv.restarts, now, b.window_seconds)
    if not over_budget(n, b):
        return None
    res = f"Service/{name}"
    return Action("backoff", res, f"CrashLoopBackOff: {n} restarts within "
                  f"{b.window_seconds:g}s (budget {b.max_restarts}): {res} is kept stopped "
                  "and tried again after a growing delay",
                  {"service": name, "restarts": n, "max_restarts": b.max_restarts},
                  {"restarts_in_window": n, "window_seconds": b.window_seconds, "now": now})


def _due_try(desired: HealingDesired, name: str, sv: ServiceHealing,
             now: float) -> Action | None:
    b = desired.budget
    if (b is None or sv.phase == "normal" or sv.busy or sv.paused_by_human
            or sv.next_at is None or now < sv.next_at):
        return None
    attempt = sv.attempts + 1
    then = after_failed_try(sv.phase, attempt, b)
    return Action("retry", f"Service/{name}", f"{sv.phase}: try {attempt} is due; if it "
                  f"fails: {'another back-off try' if then == 'backoff' else 'isolated'}",
                  {"service": name, "phase": sv.phase, "attempt": attempt,
                   "on_failure": then},
                  {"due_at": sv.next_at, "now": now, "max_attempts": b.max_attempts})


def in_remediation(observed: HealingObserved) -> tuple[str, ...]:
    """Services with an open incident, in back-off or isolated."""
    return tuple(sorted(n for n, sv in observed.services.items()
                        if sv.phase != "normal" or sv.incidents))


def _brake(desired: HealingDesired, observed: HealingObserved) -> list[Action]:
    if desired.brake_limit is None:
        return []
    busy = in_remediation(observed)
    braked = brake(busy, desired.brake_limit)
    if braked and not observed.brake_alerted:
        return [Action("alert_human", BRAKE, f"{len(braked)} services in remediation at once "
                       f"(more than {desired.brake_limit}): {', '.join(braked)}; healing "
                       "escalates to a human instead of remediating more",
                       {"brake": "engage", "services": list(braked),
                        "limit": desired.brake_limit}, {"in_remediation": list(braked)})]
    if not braked and observed.brake_alerted:
        return [Action("alert_human", BRAKE, f"{len(busy)} services in remediation, at most "
                       f"{desired.brake_limit}: the global brake is released",
                       {"brake": "release", "services": list(busy),
                        "limit": desired.brake_limit}, {"in_remediation": list(busy)})]
    return []
