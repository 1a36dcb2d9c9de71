"""The healing controller's pure diff (``controllers/healing.py`` observes and acts).

``diff(desired, observed)``: no clock (the time is ``observed.now``), no store, no I/O. Per
service: close the incidents of a Service no longer desired; release back-off / isolation made
for a revision the desired state no longer has; CrashLoopBackOff once the observed restarts
inside the budget window exceed the budget; a due crash-loop try with what its failure leads
to. Per incident awaiting a human: once its approval is decided (approved, rejected, expired,
cancelled), ``resume`` — the awaited step goes to the Executor again, which takes the approval
or the rejection, and the ladder goes on; an incident whose service is healthy again meanwhile
is closed instead (``close_incident`` of that incident, its approval cancelled). Per incident
with a step in flight: once its verification has a verdict, ``settle`` it (healed ends the
incident; failed leads to the next step, planned by ``plan_step``). And the global brake as one escalation to a human
(see ``controllers/healing_plan.py`` for the decisions themselves).

``plan_step(view, …)``: the planned Action of an incident's next ladder step, from what was
observed about it (the untried rest of its ladder, the signature's outcome counts, the services
in remediation, its restart times, a dependency down, a mitigation already active): what can
apply (``applicable``), the strategy among it by ``next_step``; a restart that would exceed
the restart budget is planned as CrashLoopBackOff (``backoff``) instead. The engine submits
exactly that Action to the Executor and carries it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autonomous.self_healing.model import STRATEGY_ACTION, RecoveryStrategy
from controllers.base import Action
from controllers.healing_plan import Budget, Learning, Outcomes, after_failed_try, \
    applicable, brake, crashloop_delay, healthy_reset, next_step, over_budget, \
    restarts_in_window

__all__ = ["BRAKE", "BRAKE_REASON", "BRAKE_SERVICE", "OPEN_STATES", "HealingDesired",
           "HealingObserved", "IncidentView", "ServiceHealing", "StepView", "budget_step",
           "diff", "in_remediation", "isolate_action", "plan_step"]

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
    recheck_seconds: float | None = None  # how often a mitigated service is looked at again
    poll_seconds: float | None = None  # how often a try's verification is observed


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
    healthy_since: float | None = None  # monotonic time it answers healthy since
    # a failed crash-loop try led to isolation (was, message, attempt): planned until done
    isolate_due: Mapping[str, Any] | None = None
    isolation_approval: str | None = None  # the latest approval asked for isolating it
    isolation_approval_state: str | None = None  # pending | rejected | executed | …
    mitigated: bool = False  # its features are degraded or its traffic on its fallback
    recovered: bool = False  # observed healthy again: breaker closed, dependencies up, probe ok
    trying: str | None = None  # a crash-loop try in flight: verifying | healthy | failed
    try_message: str = ""  # its verdict's message


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
    held: bool = False  # its service is kept stopped (healing's pause bound to it) meanwhile
    # its step in flight: verifying (observed again next pass) | healthy | failed
    step_state: str | None = None
    step_message: str = ""  # the step's verdict
    # awaiting approval: its service answered healthy again since the approval was asked for
    recovered: bool = False


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
        step = _settle(name, sv) if sv.trying is not None else (
            _isolate(name, sv) or _reset(desired, name, sv, observed.now)
            or budget_step(desired, name, sv, observed.now)
            or _due_try(desired, name, sv, observed.now))
        if step is not None:
            actions.append(step)
        if sv.mitigated and sv.recovered and not sv.busy:
            actions.append(Action(
                "recover", res, f"{res} is healthy again (its breaker closed, its "
                "dependencies up, its probe answers): degraded mode and fallback are undone",
                {"service": name}, {"mitigated": True, "recovered": True}))
    for _, inc in sorted(observed.incidents.items()):
        got = (_settle_step(desired, inc) or _close_recovered(desired, observed, inc)
               or _resume(desired, observed, inc) or _hold(desired, inc))
        if got is not None:
            actions.append(got)
    actions += _brake(desired, observed)
    return tuple(actions)


def isolate_action(name: str, due: Mapping[str, Any]) -> Action:
    """Isolation + a human alerted after a failed crash-loop try (its params stay the same
    from pass to pass: an approval asked for it is one decision)."""
    return Action("isolate", f"Service/{name}", f"{due.get('was')}: still failing after try "
                  f"{due.get('attempt')} ({due.get('message')}): isolated, a human alerted, "
                  "retried slowly", {"service": name, "crashloop": True},
                  {"was": due.get("was"), "message": due.get("message"),
                   "attempt": due.get("attempt")})


def _settle(name: str, sv: ServiceHealing) -> Action | None:
    """A crash-loop try in flight: nothing while its verification is observed; once there is
    a verdict, settle it (what a failure leads to was planned with the try)."""
    if sv.trying not in ("healthy", "failed"):
        return None
    return Action("retry", f"Service/{name}", f"{sv.phase} try {sv.attempts + 1}: "
                  f"{'healthy again' if sv.trying == 'healthy' else 'still failing'}",
                  {"service": name, "settle": True},
                  {"verdict": sv.trying, "message": sv.try_message})


def _settle_step(desired: HealingDesired, inc: IncidentView) -> Action | None:
    """A ladder step in flight with an observed verdict: settle it — healed ends the
    incident, failed leads to its next step (nothing while it is still verified)."""
    if inc.step_state not in ("healthy", "failed") or inc.service not in desired.services:
        return None
    healed = inc.step_state == "healthy"
    return Action("settle", f"Service/{inc.service}", f"incident {inc.id} step {inc.step + 1} "
                  f"({inc.strategy}): {'healed' if healed else 'failed, the next step'}",
                  {"service": inc.service, "incident": inc.id, "step": inc.step,
                   "strategy": inc.strategy},
                  {"verdict": inc.step_state, "message": inc.step_message})


def _close_recovered(desired: HealingDesired, observed: HealingObserved,
                     inc: IncidentView) -> Action | None:
    """Healthy again while a step still awaits approval: the incident is closed and its
    approval cancelled (not left for a human to approve for a healthy service)."""
    sv = observed.services.get(inc.service)
    if (inc.state != "awaiting_approval" or not inc.recovered or inc.approval is None
            or inc.approval_state not in (None, "pending")
            or inc.service not in desired.services or (sv is not None and sv.busy)):
        return None
    return Action("close_incident", f"Service/{inc.service}", f"{inc.service} is healthy "
                  f"again without {inc.strategy}; the approval is cancelled ({inc.approval}, "
                  f"incident {inc.id} closed)", {"service": inc.service, "incident": inc.id},
                  {"recovered": True, "approval": inc.approval})


def _isolate(name: str, sv: ServiceHealing) -> Action | None:
    """A failed try led to isolation: planned (it is kept stopped meanwhile) until done —
    unless a human rejected it, then the back-off's slow tries go on."""
    if (sv.phase == "normal" or sv.isolate_due is None
            or sv.isolation_approval_state == "rejected"):
        return None
    return isolate_action(name, sv.isolate_due)


def _reset(desired: HealingDesired, name: str, sv: ServiceHealing,
           now: float) -> Action | None:
    """Proven health for ``healthy_reset_seconds`` forgives the counted restarts."""
    b = desired.budget
    if b is None or sv.phase != "normal" or not healthy_reset(sv.restarts, sv.healthy_since,
                                                              now, b):
        return None
    assert sv.healthy_since is not None
    return Action("reset_restarts", f"Service/{name}", f"healthy for "
                  f"{now - sv.healthy_since:.0f}s (at least {b.healthy_reset_seconds:g}s): "
                  f"its {len(sv.restarts)} counted restart(s) are forgiven",
                  {"service": name}, {"restarts": len(sv.restarts),
                                      "healthy_since": sv.healthy_since, "now": now})


def _hold(desired: HealingDesired, inc: IncidentView) -> Action | None:
    """An isolation awaiting a human's approval does not leave the failing service running:
    it is kept stopped (a pause, released when the approval is decided or the incident
    ends) — the gate decides the isolation, not whether a failing process runs meanwhile."""
    if (inc.state != "awaiting_approval" or inc.strategy != RecoveryStrategy.ISOLATE.value
            or inc.held or inc.approval_state not in (None, "pending")
            or inc.service not in desired.services):
        return None
    return Action("hold", f"Service/{inc.service}", f"incident {inc.id}: ISOLATE awaits "
                  f"approval {inc.approval}; the failing service is kept stopped meanwhile",
                  {"service": inc.service, "incident": inc.id, "approval": inc.approval},
                  {"approval_state": inc.approval_state, "step": inc.step})


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
                  # params stay the same from one exit to the next (an approval or a dry-run
                  # of it is one decision, not one per restart); the count is evidence
                  {"service": name, "max_restarts": b.max_restarts,
                   "delay_seconds": crashloop_delay(b, name, 1)},
                  {"restarts_in_window": n, "window_seconds": b.window_seconds, "now": now})


def _due_try(desired: HealingDesired, name: str, sv: ServiceHealing,
             now: float) -> Action | None:
    b = desired.budget
    if (b is None or sv.phase == "normal" or sv.busy or sv.paused_by_human
            or sv.next_at is None or now < sv.next_at):
        return None
    attempt = sv.attempts + 1
    then = after_failed_try(sv.phase, attempt, b)
    nxt = crashloop_delay(b, name, attempt + 1) if then == "backoff" else None
    return Action("retry", f"Service/{name}", f"{sv.phase}: try {attempt} is due; if it "
                  f"fails: {'another back-off try' if then == 'backoff' else 'isolated'}",
                  {"service": name, "phase": sv.phase, "attempt": attempt,
                   "on_failure": then, "next_delay_seconds": nxt},
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


# the evidence of a ladder step: the observed values of the failure that its action carries
STEP_EVIDENCE = ("source", "pid", "running", "stopped", "exit_code", "signal", "status_code",
                 "probe_error", "probes", "errors", "slow", "unanswered", "max_latency_ms",
                 "rss_mb", "probes_seen")


@dataclass(frozen=True)
class StepView:
    """What the next step of one incident is planned from (all observed)."""

    incident: str
    service: str
    signature: str
    reason: str  # the classification rule and the failure's message
    step: int  # index of the step in the incident's ladder
    remaining: tuple[str, ...]  # the untried rest of its ladder, in order
    forced: str | None = None  # a human's strategy, still untried
    evidence: Mapping[str, Any] = field(default_factory=dict)
    outcomes: Outcomes = field(default_factory=dict)  # (signature, strategy) → (healed, failed)
    in_remediation: tuple[str, ...] = ()  # services with an open incident / back-off / isolation
    restarts: tuple[float, ...] = ()  # the service's restart times (monotonic)
    running: bool = False  # its process runs: a restart now counts against the budget
    manual: bool = False  # a human asked: the restart budget does not hold it back
    now: float = 0.0
    dependency_down: bool = False  # a dependency of the service is down (its evidence)
    degraded: bool = False  # its features are turned off already
    fallback: bool = False  # its traffic goes to its fallback already


def plan_step(view: StepView, learning: Learning, brake_limit: int,
              budget: Budget | None) -> tuple[Action, dict[str, Any]] | None:
    """Pure: the planned Action of the incident's next step and the choice behind it; None
    when no untried step can apply (the incident has failed)."""
    rest, excluded = applicable(view.remaining, forced=view.forced,
                                dependency_down=view.dependency_down, degraded=view.degraded,
                                fallback=view.fallback)
    if not rest:
        return None
    step = next_step(view.signature, rest, view.outcomes, learning,
                     forced=view.forced if view.step == 0 else None,
                     braked=brake(view.in_remediation, brake_limit))
    if step.strategy not in rest:  # the ladder's ALERT_HUMAN was tried already
        return None
    n = restarts_in_window(view.restarts, view.now, budget.window_seconds) \
        if budget is not None else 0
    choice: dict[str, Any] = {
        "step": view.step, "strategy": step.strategy,
        "bound": None if step.bound is None else round(step.bound, 4), "why": step.why,
        "outcomes": {s: list(v) for (_, s), v in sorted(view.outcomes.items())},
        "restarts_in_window": n,
        "max_restarts": budget.max_restarts if budget is not None else None,
        **({"not_applicable": excluded} if excluded else {})}
    res = f"Service/{view.service}"
    evidence = {**{k: v for k, v in view.evidence.items() if k in STEP_EVIDENCE},
                "choice": choice}
    would = n + (1 if view.running else 0)
    if (step.strategy == RecoveryStrategy.RESTART_SERVICE.value and budget is not None
            and not view.manual and over_budget(would, budget)):
        choice["budget"] = "exhausted"
        return Action("backoff", res, f"CrashLoopBackOff: restart {would} of {res} within "
                      f"{budget.window_seconds:g}s would exceed the budget "
                      f"({budget.max_restarts}): kept stopped and tried again after a growing "
                      "delay", {"service": view.service, "incident": view.incident,
                                "strategy": step.strategy,
                                "max_restarts": budget.max_restarts,
                                "delay_seconds": crashloop_delay(budget, view.service, 1)},
                      {**evidence, "restarts_with_this_one": would}), choice
    return Action(STRATEGY_ACTION[RecoveryStrategy(step.strategy)], res, view.reason[:300],
                  {"strategy": step.strategy, "incident": view.incident,
                   "signature": view.signature}, evidence), choice
