"""The healing controller: incidents and crash-loop state as resources, reconciled.

Detection is event-driven (the engine, ``HealingOrchestrator``, opens an incident within the
loop iteration that sees an exit, a failing probe breaker, a ``health.finding``), and each step
of an incident's ladder is an :class:`Action` through the Executor (``attach`` hands the engine
its gate; ``act`` runs the step). The reconcile pass decides the rest from state:

observe: per service the engine's phase (normal / backoff / isolated), crash-loop tries made and
the time of the next, the times of its restarts (unexpected exits and the healer's restarts of
a running process), the revision healing's isolation or pause was made for, open incidents,
breakers — and the clock, as a value.
diff (pure, ``controllers/healing_diff.py``): close the incidents of a Service no longer
desired (nothing is retried for it); release isolation and back-off of a service the generation
in force changed (a new revision gets a fresh start); CrashLoopBackOff (``backoff``) for a
service with more restarts inside ``restart_budget.window_seconds`` than ``max_restarts``; run
a crash-loop try (or the slow retry of an isolated service) once due, deciding in advance what
its failure leads to (another back-off try while ``crashloop.max_attempts`` allows, else
``isolate`` + a human alerted, its own action through the Executor); ``resume`` an incident
whose approval was decided; the global brake — more services in remediation at once than
``healing.brake`` allows — is one escalation to a human (``alert_human`` on ``Healing/brake``,
through the human-alert path the telemetry alert manager routes), released when the count is
back under the limit. The Action of each ladder step is planned by
``controllers/healing_diff.plan_step`` (what can apply; its strategy by the lower credible bound
of success per failure signature; the brake turns remediation into ALERT_HUMAN; a restart over
the restart budget becomes CrashLoopBackOff) from observed outcome counts and restart times:
``_plan`` is the engine's planner, which submits it as planned.
Whether a detected failure opens an incident at all is the pure ``skip_reason`` on observed
facts (``_admit``, handed to the engine's intake: paused by a human, emergency stop or
survival mode for a service that is not core, a crash loop already on it). The diff also
plans the crash-loop delays (a deterministic jitter of service and attempt), the healthy
reset of the restart count (``reset_restarts``), undoing degraded mode / fallback once the
service is observed healthy again (``recover``), and keeps a failing service stopped while
its isolation awaits a human (``hold`` for a ladder step; a crash loop keeps its back-off's
pause and plans ``isolate`` until done or rejected).
A crash-loop try is one step per pass: its act releases the service to its owner and returns;
observe judges the try's verification (``verify.judge``: a new pid healthy for
``verify.stable_seconds``) on the following passes (``requeue_after`` = the poll interval) and
the diff settles the verdict (``retry`` with ``settle``) — nothing waits inside act for it.
So is every step of an incident's ladder (``autonomous/self_healing/ladder_steps.py``): its
act starts it (the intent for the owner) and returns; observe takes one look at each step in
flight per pass (``IncidentView.step_state``); the diff plans ``settle`` once it has a verdict
(healed ends the incident, a failure starts the next step, whose verified failure backs off in
the Executor like a failed act), and closes an incident whose service answered healthy again
while its step awaited approval (``IncidentView.recovered``, its approval cancelled).
act (``controllers/healing_act.py``): the engine carries it out; report (``controllers/healing_status.py``): conditions
(CrashLoopBackOff, Isolated, Degraded, FallbackActive, HealingBreakerOpen) per Service, and
each open incident as ``Incident/<id>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from autonomous.context import OperatorContext
from autonomous.intents import IntentStore
from autonomous.self_healing.alerts import human_alert_open
from autonomous.self_healing.facade import HealingFacade
from autonomous.self_healing.healing_orchestrator import HealingOrchestrator
from autonomous.self_healing.incident import Incident
from autonomous.self_healing.model import StrategyResult
from autonomous.self_healing.service_state import StateStore
from autonomous.supervisor.revisions import spec_hash
from controllers.base import Action, Controller, Outcome
from controllers.execution import Executor
from controllers.healing_diff import (BRAKE, BRAKE_REASON, BRAKE_SERVICE, OPEN_STATES,
                                      HealingDesired, HealingObserved, IncidentView,
                                      ServiceHealing, StepView, budget_step, diff,
                                      in_remediation, plan_step)
from controllers.healing_plan import Intake, Learning, budget_from_policy, skip_reason
from controllers.healing_act import carry_out
from controllers.healing_status import report

__all__ = ["BRAKE", "CONTROLLERS", "HealingController", "HealingDesired", "HealingObserved",
           "IncidentView", "ServiceHealing", "diff", "in_remediation"]

class HealingController(Controller):
    name = "healing"
    subsystem = "self_healing"
    order = 40
    # state changes only: ``service.probe`` (every probe of every service) and
    # ``health.report`` change nothing the diff reads, and woke this controller twice a second
    watches = ("service.exited", "service.unhealthy", "service.healthy", "service.ready",
               "service.not_ready", "service.fallback", "health.finding", "approval.")

    def __init__(self, ctx: OperatorContext) -> None:
        super().__init__(ctx)
        self.orch: HealingOrchestrator | None = None
        self.executor = Executor(ctx)  # the one gate, for the engine's ladder steps

    def attach(self, orch: HealingOrchestrator) -> HealingOrchestrator:
        """Hand the engine its gate: every strategy it runs is an Action through the
        Executor (governance, back-off, Stalled, knowledge graph) whose ``act`` is ours."""
        self.orch = orch
        orch.gate = self._gate
        orch.runner.plan = self._plan
        orch.runner.verdict = self._verdict
        orch.crashloop.plan = self._plan_budget
        orch.pipeline.admit = self._admit
        return orch

    def _admit(self, name: str, manual: bool, source: str, signature: str | None) -> str | None:
        """Whether a detected failure of ``name`` opens an incident: observe its spec, the
        engine's state of it (and, once classified, when a human was last alerted for this
        failure signature), the governance mode and survival mode; the pure
        ``skip_reason`` decides (None: it does)."""
        orch = self.orch
        assert orch is not None
        svc = self.ctx.subsystems.get("services")
        spec = svc.specs().get(name) if svc is not None else None
        st = orch.state(name)
        survival = self.ctx.store.kv_get("survival", {}) or {}
        at = st.escalated.get(signature) if signature is not None else None
        return skip_reason(Intake(
            name, spec is not None, bool(spec is not None and spec.core), manual,
            st.paused_by_human, self.ctx.governance.mode, bool(survival.get("active")),
            st.phase, source, st.degraded is not None or st.fallback,
            None if at is None else self.ctx.clock.monotonic() - at,
            float(orch.policy()["alerts"]["dedup_seconds"])))

    def _plan_budget(self, name: str) -> bool:
        """The engine counted a restart of ``name``: the pure ``budget_step`` on the observed
        restart times decides; a planned CrashLoopBackOff runs through the Executor (True)."""
        orch = self.orch
        assert orch is not None
        st = orch.states.get(name)
        if st is None:
            return False
        sv = ServiceHealing(name, st.phase, st.attempts, st.next_at,
                            restarts=tuple(st.restarts))
        action = budget_step(self.desired(), name, sv, self.ctx.clock.monotonic())
        if action is None:
            return False
        gen = self.ctx.desired.current
        orch.spawn(self.executor.execute(self, action, gen.number if gen else 0))
        return True

    def _plan(self, inc: Incident) -> dict[str, Any] | None:
        """The engine's planner: observe (outcome counts of the incident's signature, the
        services in remediation, its restart times, the policy) and let the pure
        ``plan_step`` plan the next step's Action, which the engine submits as it is."""
        orch = self.orch
        assert orch is not None
        p = orch.policy()
        sig = inc.classification.signature
        busy = {i.service for i in orch.incidents.values()} | \
            {n for n, st in orch.states.items() if st.phase != "normal"}
        st = orch.states.get(inc.service)
        view = StepView(inc.id, inc.service, sig,
                        f"{inc.classification.rule}: {inc.report.message}", inc.step,
                        tuple(s.value for s in inc.ladder[inc.step:]), inc.forced,
                        dict(inc.evidence), orch.classifier.outcomes(sig), tuple(sorted(busy)),
                        tuple(st.restarts) if st is not None else (),
                        bool(inc.evidence.get("running")), inc.report.source == "manual",
                        self.ctx.clock.monotonic(), bool(inc.evidence.get("dependency_down")),
                        st is not None and st.degraded is not None,
                        st is not None and st.fallback)
        planned = plan_step(view, Learning(**p["learning"]),
                            int(p["brake"]["max_services_in_remediation"]), budget_from_policy(p))
        if planned is None:
            return None
        action, choice = planned
        inc.choices.append(choice)  # the values the choice saw (also in its evidence)
        return {"kind": action.kind, "resource": action.resource, "reason": action.reason,
                "params": dict(action.params), "evidence": dict(action.evidence)}

    def _verdict(self, planned: dict[str, Any], res: StrategyResult) -> None:
        """A step's verified result, observed after its ``act`` started it: the Executor's
        per-resource back-off takes it as the action's outcome (what could not apply is no
        failure)."""
        gen = self.ctx.desired.current
        action = Action(**planned)
        self.executor.settled(self, action, Outcome(action, res.ok or not res.applicable,
                                                    res.message), gen.number if gen else 0)

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
        p = self.ctx.policy()["healing"]
        return HealingDesired(gen.number, {n: spec_hash(s) for n, s in specs.items()},
                              int(p["brake"]["max_services_in_remediation"]), budget_from_policy(p),
                              float(p["detection"]["tick_seconds"]),
                              float(p["verify"]["poll_seconds"]))

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
            approval = self._isolation_approval(name) if st and st.isolate_due else None
            mitigated = st is not None and (st.degraded is not None or st.fallback)
            # a heal of it runs: its intake, or a ladder step of it in flight
            busy = bool(st and st.busy) or (orch is not None and orch.shared.in_flight(name))
            trying = None
            if orch is not None and st is not None and st.trying is not None:
                seen = await orch.crashloop.observe_try(name)
                trying = ("verifying", "") if seen is None else \
                    ("healthy" if seen.ok else "failed", seen.message)
            out[name] = ServiceHealing(
                name, st.phase if st else "normal", st.attempts if st else 0,
                st.next_at if st else None, held.get(name), busy,
                bool(st and st.paused_by_human), tuple(sorted(open_rows.get(name, ()))),
                tuple(st.restarts) if st else (), status,
                st.healthy_since if st else None, dict(st.isolate_due)
                if st and st.isolate_due else None,
                approval["id"] if approval else None, approval["state"] if approval else None,
                mitigated, mitigated and orch is not None and not busy
                and await orch.service.recovered(name),
                trying[0] if trying else None, trying[1] if trying else "")
        incidents = await self._incidents(out) if orch is not None else {}
        alerted = human_alert_open(self.ctx.store, BRAKE_SERVICE, BRAKE_REASON)
        return HealingObserved(clock.monotonic(), out, alerted, incidents)

    def _isolation_approval(self, name: str) -> dict[str, Any] | None:
        """The latest approval asked for isolating ``name`` after its crash loop."""
        row = self.ctx.store.query_one(
            "SELECT id, state FROM approvals WHERE controller=? AND resource=? AND "
            "action_kind='isolate' ORDER BY created_at DESC LIMIT 1",
            (self.name, f"Service/{name}"))
        return dict(row) if row is not None else None

    async def _incidents(self, services: Mapping[str, ServiceHealing]) \
            -> dict[str, IncidentView]:
        """The engine's open incidents: the verification of a step in flight (one more look
        each pass); for one awaiting a human, its approval's state, whether its service is
        held stopped meanwhile and whether it answered healthy again since (a crash loop's
        isolation awaiting approval shows on the crash loop's incident)."""
        orch = self.orch
        assert orch is not None
        out: dict[str, IncidentView] = {}
        for inc in [*orch.incidents.values(), *orch.pending.values()]:
            sv = services.get(inc.service)
            approval = inc.pending["id"] if inc.pending else None
            row = None if approval is None else self.ctx.store.query_one(
                "SELECT state FROM approvals WHERE id=?", (approval,))
            crash = orch.crash_incidents.get(inc.service) is inc
            state = "awaiting_approval" if inc.pending else "backoff" if crash else "open"
            strategy = inc.pending["strategy"] if inc.pending else \
                inc.ladder[inc.step].value if inc.step < len(inc.ladder) else None
            approval_state = None if approval is None else row["state"] if row else "missing"
            held = inc.pending is not None and orch.processes.held_for(inc.service, inc.id)
            if (crash and sv is not None and sv.isolate_due is not None
                    and sv.isolation_approval_state == "pending"):
                state, strategy, held = "awaiting_approval", "ISOLATE", True
                approval, approval_state = sv.isolation_approval, "pending"
            step_state, step_message = None, ""
            if inc.run is not None:
                seen = await orch.runner.observe(inc)
                strategy = inc.run.strategy.value
                step_state = "verifying" if seen is None else "healthy" if seen.ok \
                    else "failed"
                step_message = "" if seen is None else seen.message
            st = orch.states.get(inc.service)
            recovered = (inc.pending is not None and inc.pending_at is not None
                         and st is not None and st.healthy_since is not None
                         and st.healthy_since >= inc.pending_at)
            out[inc.id] = IncidentView(inc.id, inc.service, state, inc.step, strategy,
                                       approval, approval_state, held, step_state,
                                       step_message, recovered)
        return out

    @staticmethod
    def diff(desired: HealingDesired, observed: HealingObserved) -> tuple[Action, ...]:
        return diff(desired, observed)

    @staticmethod
    def requeue_after(desired: HealingDesired, observed: HealingObserved) -> float | None:
        waits = [sv.next_at - observed.now for n, sv in observed.services.items()
                 if n in desired.services and sv.phase != "normal" and sv.next_at is not None
                 and sv.next_at > observed.now]
        if desired.poll_seconds is not None and any(
                sv.trying == "verifying" for n, sv in observed.services.items()
                if n in desired.services):
            waits.append(desired.poll_seconds)  # a crash-loop try's verification, observed
        if desired.poll_seconds is not None and any(
                iv.step_state == "verifying" for iv in observed.incidents.values()):
            waits.append(desired.poll_seconds)  # a ladder step's verification, observed
        if desired.recheck_seconds is not None and any(
                sv.mitigated and not sv.recovered for n, sv in observed.services.items()
                if n in desired.services):
            waits.append(desired.recheck_seconds)  # undone once it is healthy again
        reset = desired.budget.healthy_reset_seconds if desired.budget is not None else None
        if reset is not None:  # the healthy reset of a service's counted restarts
            waits += [sv.healthy_since + reset - observed.now
                      for n, sv in observed.services.items()
                      if n in desired.services and sv.phase == "normal" and sv.restarts
                      and sv.healthy_since is not None
                      and sv.healthy_since + reset > observed.now]
        return min(waits) if waits else None

    async def act(self, action: Action) -> Outcome:
        """A step of an incident's ladder (``params.strategy``), or one of diff's actions."""
        return await carry_out(self, action)

    def report(self, desired: HealingDesired, observed: HealingObserved,
               outcomes: list[Outcome]) -> None:
        report(self.ctx, observed)


CONTROLLERS = [HealingController]
