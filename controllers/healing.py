"""The healing controller: incidents and crash-loop state as resources, reconciled.

Detection is event-driven (the engine, ``HealingOrchestrator``, opens an incident within the
loop iteration that sees an exit, a failing probe breaker, a ``health.finding``), and each step
of an incident's ladder is an :class:`Action` through the Executor (``attach`` hands the engine
its gate; ``act`` runs the step). The reconcile pass decides the rest from state:

observe: per service the engine's phase (normal / backoff / isolated), crash-loop tries made and
the time of the next, the revision healing's isolation or pause was made for, open incidents,
breakers — and the clock, as a value.
diff (pure): close the incidents of a Service no longer desired (nothing is retried for it);
release isolation and back-off of a service the generation in force changed (a new revision
gets a fresh start); run a crash-loop try (or the slow retry of an isolated service) once due;
the global brake — more services in remediation at once than ``healing.brake`` allows — is one
escalation to a human (``alert_human`` on ``Healing/brake``, through the human-alert path the
telemetry alert manager routes), released when the count is back under the limit. The
strategy of each ladder step is chosen by ``controllers/healing_plan.next_step`` (lower
credible bound of success per failure signature; the brake turns remediation into
ALERT_HUMAN) from observed outcome counts: ``_choose`` is the engine's chooser.
act: the engine carries it out; report: conditions (CrashLoopBackOff, Isolated, Degraded,
FallbackActive, HealingBreakerOpen).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from autonomous.context import OperatorContext
from autonomous.intents import IntentStore
from autonomous.self_healing.alerts import human_alert_open
from autonomous.self_healing.facade import HealingFacade
from autonomous.self_healing.healing_orchestrator import HealingOrchestrator
from autonomous.self_healing.incident import Incident
from autonomous.self_healing.model import STRATEGY_ACTION, RecoveryStrategy
from autonomous.self_healing.service_state import StateStore
from autonomous.supervisor.revisions import spec_hash
from controllers.base import Action, Controller, Outcome
from controllers.execution import Executor
from controllers.healing_plan import Learning, brake, next_step

__all__ = ["CONTROLLERS", "HealingController", "HealingDesired", "HealingObserved",
           "ServiceHealing"]

OPEN_STATES = ("awaiting_approval", "backoff")
BRAKE = "Healing/brake"
BRAKE_SERVICE = "*"  # the brake's human alert is about no single service
BRAKE_REASON = "global brake: too many services in remediation at once"


@dataclass(frozen=True)
class HealingDesired:
    generation: int
    services: Mapping[str, str] = field(default_factory=dict)  # name → desired spec hash
    brake_limit: int | None = None  # healing.brake.max_services_in_remediation; None = off


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
    status: Mapping[str, Any] = field(default_factory=dict)  # for report only


@dataclass(frozen=True)
class HealingObserved:
    now: float  # the clock (monotonic), observed
    services: Mapping[str, ServiceHealing] = field(default_factory=dict)
    brake_alerted: bool = False  # the brake's human alert is open


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
        if (sv.phase != "normal" and not sv.busy and not sv.paused_by_human
                and sv.next_at is not None and observed.now >= sv.next_at):
            actions.append(Action(
                "retry", res, f"{sv.phase}: try {sv.attempts + 1} is due",
                {"service": name, "phase": sv.phase, "attempt": sv.attempts + 1},
                {"due_at": sv.next_at, "now": observed.now}))
    actions += _brake(desired, observed)
    return tuple(actions)


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


class HealingController(Controller):
    name = "healing"
    subsystem = "self_healing"
    order = 40
    # state changes only: ``service.probe`` (every probe of every service) and
    # ``health.report`` change nothing the diff reads, and woke this controller twice a second
    watches = ("service.exited", "service.unhealthy", "service.healthy", "service.ready",
               "service.not_ready", "service.fallback", "health.finding")

    def __init__(self, ctx: OperatorContext) -> None:
        super().__init__(ctx)
        self.orch: HealingOrchestrator | None = None
        self.executor = Executor(ctx)  # the one gate, for the engine's ladder steps

    def attach(self, orch: HealingOrchestrator) -> HealingOrchestrator:
        """Hand the engine its gate: every strategy it runs is an Action through the
        Executor (governance, back-off, Stalled, knowledge graph) whose ``act`` is ours."""
        self.orch = orch
        orch.gate = self._gate
        orch.runner.choose = self._choose
        return orch

    def _choose(self, inc: Incident) -> RecoveryStrategy:
        """The engine's chooser: observe (outcome counts of the incident's signature, the
        services in remediation, the policy) and let the pure ``next_step`` decide."""
        orch = self.orch
        assert orch is not None
        p = orch.policy()
        sig = inc.classification.signature
        busy = {i.service for i in orch.incidents.values()} | \
            {n for n, st in orch.states.items() if st.phase != "normal"}
        step = next_step(sig, tuple(s.value for s in inc.ladder[inc.step:]),
                         orch.classifier.outcomes(sig), Learning(**p["learning"]),
                         forced=inc.forced if inc.step == 0 else None,
                         braked=brake(busy, p["brake"]["max_services_in_remediation"]))
        inc.choices.append({"step": inc.step, "strategy": step.strategy,
                            "bound": None if step.bound is None else round(step.bound, 4),
                            "why": step.why})
        return RecoveryStrategy(step.strategy)

    async def _gate(self, planned: dict[str, Any]) -> Outcome:
        gen = self.ctx.desired.current
        action = Action(**planned)
        out = await self.executor.execute(self, action, gen.number if gen else 0)
        return replace(out, details={**out.details,
                                     "chain": self.executor.chain_of(self, action)})

    @staticmethod
    def retry_key(action: Action) -> str:
        return f"{action.resource}:{action.kind}"

    async def start(self) -> None:
        orch = self.attach(HealingOrchestrator(self.ctx))
        self.ctx.subsystems["healing"] = HealingFacade(orch)
        await orch.start_healing_service()

    async def stop(self) -> None:
        if self.orch is not None:
            await self.orch.stop()
        self.ctx.subsystems.pop("healing", None)

    # -- observe -> diff -> act ----------------------------------------------------------------
    def desired(self) -> HealingDesired:
        gen = self.ctx.desired.current
        if gen is None:
            return HealingDesired(0)
        svc = self.ctx.subsystems.get("services")  # the owner's view of the generation
        specs = svc.specs() if svc is not None else gen.services
        limit = self.ctx.policy()["healing"]["brake"]["max_services_in_remediation"]
        return HealingDesired(gen.number, {n: spec_hash(s) for n, s in specs.items()},
                              int(limit))

    async def observe(self) -> HealingObserved:
        """The engine's state (or, when it is not running — ``plan`` — what the store holds)."""
        clock = self.ctx.clock
        intents = IntentStore(self.ctx.store, clock)
        held: dict[str, str | None] = {}
        for it in reversed(intents.list(limit=500)):  # oldest first: the newest wins
            if it.requester == "healing" and it.kind in ("isolate", "pause"):
                held[it.service] = it.params.get("spec_hash")
        open_rows: dict[str, list[str]] = {}
        for r in self.ctx.store.query("SELECT id, service FROM healing_history WHERE state IN "
                                      f"({','.join('?' * len(OPEN_STATES))})", OPEN_STATES):
            open_rows.setdefault(r["service"], []).append(r["id"])
        orch = self.orch
        states = orch.states if orch is not None else StateStore(self.ctx.store, clock).load()
        if orch is not None:
            for inc in orch.incidents.values():
                ids = open_rows.setdefault(inc.service, [])
                if inc.id not in ids:
                    ids.append(inc.id)
        out: dict[str, ServiceHealing] = {}
        for name in sorted(set(states) | set(open_rows)):
            st = states.get(name)
            status: dict[str, Any] = {}
            if orch is not None and st is not None:
                status = {**st.as_dict(clock),
                          "heal_breaker": orch.breakers.heal(name).get_state().value,
                          "service_breaker": orch.breakers.service(name).get_state().value}
            out[name] = ServiceHealing(
                name, st.phase if st else "normal", st.attempts if st else 0,
                st.next_at if st else None, held.get(name), bool(st and st.busy),
                bool(st and st.paused_by_human), tuple(sorted(open_rows.get(name, ()))),
                status)
        alerted = human_alert_open(self.ctx.store, BRAKE_SERVICE, BRAKE_REASON)
        return HealingObserved(clock.monotonic(), out, alerted)

    @staticmethod
    def diff(desired: HealingDesired, observed: HealingObserved) -> tuple[Action, ...]:
        return diff(desired, observed)

    @staticmethod
    def requeue_after(desired: HealingDesired, observed: HealingObserved) -> float | None:
        waits = [sv.next_at - observed.now for n, sv in observed.services.items()
                 if n in desired.services and sv.phase != "normal" and sv.next_at is not None
                 and sv.next_at > observed.now]
        return min(waits) if waits else None

    async def act(self, action: Action) -> Outcome:
        """A step of an incident's ladder (``params.strategy``), or one of diff's actions."""
        if self.orch is None:
            return Outcome(action, False, "the healing engine is not running", permanent=True)
        orch = self.orch
        name = str(action.params.get("service", action.resource.split("/", 1)[-1]))
        if action.kind == "close_incident":
            n = orch.close_service(name, action.reason)
            return Outcome(action, True, f"closed {n} incident(s) of {name}: {action.reason}")
        if action.kind == "alert_human" and "brake" in action.params:
            if action.params["brake"] == "release":
                n = orch.alerts.resolve(BRAKE_SERVICE, action.reason)
                return Outcome(action, True, f"global brake released ({n} alert resolved)")
            alert = orch.alerts.raise_alert(BRAKE_SERVICE, BRAKE_REASON, {
                "severity": "critical", "message": action.reason,
                "services": action.params["services"], "limit": action.params["limit"]})
            return Outcome(action, True, f"a human is alerted: {action.reason}",
                           details={"alert": alert["id"] if alert else None})
        if action.kind == "release":
            n = orch.release_for_revision(name, action.reason)
            return Outcome(action, True, f"released {name}; closed {n} incident(s)")
        if action.kind == "retry" and "strategy" not in action.params:
            healthy = await orch.crashloop.try_once(name)
            # the try was made; whether it healed is the crash-loop's verdict (its own
            # growing delay schedules the next), not a failed action to back off
            return Outcome(action, True, f"{action.params.get('phase')} try of {name}: "
                           f"{'healthy again' if healthy else 'still failing'}",
                           details={"healthy": healthy})
        strategy = RecoveryStrategy(action.params["strategy"])
        if STRATEGY_ACTION[strategy] != action.kind:
            return Outcome(action, False, f"{strategy.value} is not a {action.kind} action",
                           permanent=True)
        chain = self.executor.chain_of(self, action)
        res = await orch.run_step(strategy, str(action.params["incident"]),
                                  chain[1] if len(chain) > 1 else None)
        if not res.applicable:  # skipped, not failed: no back-off for what could not apply
            return Outcome(action, True, f"not applicable: {res.message}", details={
                "strategy": strategy.value, "applicable": False, "ok": res.ok})
        return Outcome(action, res.ok, res.message, details={"strategy": strategy.value,
                                                             "applicable": True})

    def report(self, desired: HealingDesired, observed: HealingObserved,
               outcomes: list[Outcome]) -> None:
        now = self.ctx.clock.now()
        for name, sv in observed.services.items():
            o = sv.status
            if not o:
                continue
            st = self.ctx.status.resource("healing", "Service", name)
            st.set_condition("CrashLoopBackOff", o["phase"] == "backoff",
                             "BackOff" if o["phase"] == "backoff" else "NoBackOff",
                             o["reason"], now)
            st.set_condition("Isolated", o["phase"] == "isolated", "Isolated"
                             if o["phase"] == "isolated" else "NotIsolated", o["reason"], now)
            st.set_condition("Degraded", o["degraded"], "FeaturesOff" if o["degraded"]
                             else "FullService", "", now)
            st.set_condition("FallbackActive", o["fallback_active"], "Fallback"
                             if o["fallback_active"] else "Direct", "", now)
            st.set_condition("HealingBreakerOpen", o["heal_breaker"] != "CLOSED",
                             o["heal_breaker"], "", now)
            st.details = dict(o)


CONTROLLERS = [HealingController]
