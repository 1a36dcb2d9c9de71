"""Pure decisions of the healing controller about strategies (issue 12 item 6).

``next_step``: the strategy of an incident's next step — the untried strategy of its ladder
with the highest lower credible bound of success for the incident's failure signature (a Beta
posterior over the outcome counts observed in the failure memory; prior and credibility from
``healing.learning``); the ladder's order breaks ties, so pairs without data keep the rule's
order. ALERT_HUMAN stays the ladder's last resort, never ranked against remediations.

``brake``: the global brake — more than ``healing.brake.max_services_in_remediation`` services
in remediation at once (an open incident, back-off, isolation) means something wider than one
service is wrong; the next step of every incident is then ALERT_HUMAN, and the diff plans one
escalation for the whole (see ``controllers/healing.py``).

``restarts_in_window`` / ``over_budget`` / ``after_failed_try``: the restart budget and the
crash-loop decisions (``healing.restart_budget``, ``healing.crashloop.max_attempts``) — more
restarts inside the window than the budget allows is CrashLoopBackOff; a failed back-off try
leads to another, later try while tries are left, else to isolation (and its slow retry). The
healing controller's ``diff`` plans them from the restart times and tries it observes; the
engine only records those observations and carries out what was planned.

``crashloop_delay``: the back-off delay before crash-loop try ``attempt`` of a service, its
jitter derived from the service and the attempt (the one backoff formula, a stable draw):
the same observed values plan the same delay. ``healthy_reset``: proven health for
``restart_budget.healthy_reset_seconds`` forgives the counted restarts. ``skip_reason``:
whether a detected failure opens an incident at all (paused by a human, emergency stop or
survival mode for a service that is not core, a crash loop already handling it, slow or
failing responses of a service already mitigated, a failure a human was alerted for within
``alerts.dedup_seconds``) — observed facts in, the reason to drop it (or None) out.

No clock, no store, no I/O: values in, decisions out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from autonomous.core.backoff import BackoffSpec, stable_draw
from autonomous.learning.strategy_posterior import choose_strategy

__all__ = ["ALERT", "RESTARTS", "Budget", "Intake", "Learning", "Outcomes", "Step",
           "after_failed_try", "applicable", "brake", "budget_from_policy", "crashloop_delay",
           "healthy_reset",
           "next_step", "over_budget", "restarts_in_window", "skip_reason"]

ALERT = "ALERT_HUMAN"
RESTARTS = ("RESTART_SERVICE", "RESTART_ALL")

# (signature, strategy) → (successes, failures)
Outcomes = Mapping[tuple[str, str], tuple[int, int]]


@dataclass(frozen=True)
class Learning:
    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    credibility: float = 0.8


@dataclass(frozen=True)
class Step:
    strategy: str
    bound: float | None  # lower credible bound of success; None for ALERT_HUMAN / forced
    why: str


@dataclass(frozen=True)
class Budget:
    """``healing.restart_budget`` and ``healing.crashloop.max_attempts``, as values."""

    max_restarts: int
    window_seconds: float
    max_attempts: int  # crash-loop tries before the service is isolated
    backoff: BackoffSpec | None = None  # crashloop.backoff; None: no delay planned here
    healthy_reset_seconds: float | None = None  # proven health that forgives the restarts


def budget_from_policy(p: Mapping[str, Any]) -> Budget:
    """``healing.restart_budget`` and ``healing.crashloop`` (a ``healing`` policy section)
    as the diff's value."""
    rb, cl = p["restart_budget"], p["crashloop"]
    return Budget(int(rb["max_restarts"]), float(rb["window_seconds"]),
                  int(cl["max_attempts"]), BackoffSpec.from_policy(cl["backoff"]),
                  float(rb["healthy_reset_seconds"]))


def crashloop_delay(budget: Budget, service: str, attempt: int) -> float | None:
    """Seconds before crash-loop try ``attempt`` (1-based) of ``service``: exponential and
    capped from ``crashloop.backoff``, its jitter a stable draw of ``service/attempt`` (so
    that services do not retry in step, and one service's plan is the same each pass)."""
    if budget.backoff is None:
        return None
    return budget.backoff.delay(attempt, stable_draw(f"{service}/{attempt}"))


def healthy_reset(restarts: tuple[float, ...], healthy_since: float | None, now: float,
                  budget: Budget) -> bool:
    """Counted restarts are forgiven: the service has answered healthy since
    ``healthy_since`` for at least ``healthy_reset_seconds``."""
    return (bool(restarts) and healthy_since is not None
            and budget.healthy_reset_seconds is not None
            and now - healthy_since >= budget.healthy_reset_seconds)


@dataclass(frozen=True)
class Intake:
    """What is observed about a service when one of its failures is detected."""

    service: str
    declared: bool  # a Service of the desired state (an undeclared one is recorded, skipped)
    core: bool = False
    manual: bool = False  # a human asked (heal trigger, a forced strategy)
    paused_by_human: bool = False
    mode: str = "growth"  # the governance mode in force
    survival: bool = False  # survival mode is active
    phase: str = "normal"  # normal | backoff | isolated
    source: str = "manual"  # exit | unhealthy | slow | errors | memory | heartbeat | manual …
    mitigated: bool = False  # degraded or on its fallback already
    escalated_ago: float | None = None  # seconds since a human was alerted for this failure
    dedup_seconds: float = 0.0  # healing.alerts.dedup_seconds


def skip_reason(i: Intake) -> str | None:
    """Why the failure of a declared service opens no incident now (None: it does). Such a
    failure is dropped, not recorded: a paused service probed every few seconds is not a
    stream of incidents."""
    if not i.declared:
        return None  # recorded as skipped by the engine: it is its only trace
    if i.paused_by_human and not i.manual:
        return (f"auto-healing of {i.service} is paused by a human (resume: "
                f"'atlas-autonomous heal resume {i.service}')")
    if i.mode == "emergency_stop" and not i.core:
        return f"emergency_stop: only core services are healed and {i.service} is not core"
    if i.survival and not i.core:
        return f"survival mode: {i.service} is not core and is kept stopped"
    if i.phase != "normal" and not i.manual:
        return f"{i.service} is in {i.phase}: the crash-loop back-off handles it"
    if i.mitigated and i.source in ("slow", "errors") and not i.manual:
        return (f"{i.service} is degraded or on its fallback already: slow or failing "
                "responses are expected until it recovers")
    if (i.escalated_ago is not None and i.escalated_ago < i.dedup_seconds and not i.manual
            and i.source not in ("exit", "exception", "manual")):
        return (f"a human was alerted for this failure of {i.service} {i.escalated_ago:.0f}s "
                f"ago (alerts.dedup_seconds {i.dedup_seconds:g}): not a new incident")
    return None


def restarts_in_window(times: Iterable[float], now: float, window: float) -> int:
    """The restarts (monotonic times) at most ``window`` seconds before ``now``."""
    return sum(1 for t in times if now - t <= window)


def over_budget(restarts: int, budget: Budget) -> bool:
    """More restarts inside the window than the budget allows: CrashLoopBackOff."""
    return restarts > budget.max_restarts


def after_failed_try(phase: str, attempt: int, budget: Budget) -> str:
    """What the failure of crash-loop try number ``attempt`` (1-based) leads to: ``backoff``
    (another try after a longer delay) while a back-off has tries left, else ``isolate`` (an
    isolated service's slow retry that fails stays isolated)."""
    return "backoff" if phase == "backoff" and attempt < budget.max_attempts else "isolate"


def applicable(remaining: tuple[str, ...], *, forced: str | None, dependency_down: bool,
               degraded: bool, fallback: bool) -> tuple[tuple[str, ...], dict[str, str]]:
    """The untried steps that can apply now (in order) and why each other one cannot: no
    restart while a dependency is down (unless a human forced a strategy), no DEGRADE of a
    degraded service nor FALLBACK of one already failed over (unless that is the forced one)."""
    out: list[str] = []
    why: dict[str, str] = {}
    for s in remaining:
        if s in RESTARTS and dependency_down and forced is None:
            why[s] = "a dependency is down: restarting the dependant does not help"
        elif s == "DEGRADE" and degraded and s != forced:
            why[s] = "its features are already degraded"
        elif s == "FALLBACK" and fallback and s != forced:
            why[s] = "its fallback is already active"
        else:
            out.append(s)
    return tuple(out), why


def brake(in_remediation: Iterable[str], limit: int) -> tuple[str, ...]:
    """The services in remediation when there are more than ``limit`` of them, else ()."""
    names = tuple(sorted(set(in_remediation)))
    return names if len(names) > limit else ()


def next_step(signature: str, remaining: tuple[str, ...], outcomes: Outcomes,
              learning: Learning, *, forced: str | None = None,
              braked: tuple[str, ...] = ()) -> Step:
    """The strategy to try next among ``remaining`` (the untried rest of the ladder, in its
    order). ``forced`` (a human's choice, still untried) goes first; the brake turns every
    remaining remediation into ALERT_HUMAN."""
    if braked:
        return Step(ALERT, None, f"global brake: {len(braked)} services in remediation at "
                    f"once ({', '.join(braked)}): a human decides, healing remediates no more")
    if forced is not None and forced in remaining:
        return Step(forced, None, f"{forced} forced by a human")
    candidates = [s for s in remaining if s != ALERT]
    if not candidates:
        return Step(ALERT, None, "every remediation of the ladder was tried")
    best = choose_strategy(signature, candidates, outcomes, learning.prior_alpha,
                           learning.prior_beta, learning.credibility)
    assert best is not None  # candidates is not empty
    strategy, bound = best
    s, f = outcomes.get((signature, strategy), (0, 0))
    return Step(strategy, bound, f"{strategy}: lower {learning.credibility:.0%} credible bound "
                f"of success {bound:.3f} for this signature ({s} healed, {f} failed) — the "
                f"highest of {', '.join(candidates)}")
