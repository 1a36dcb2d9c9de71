"""Healing pipeline, second half: each step of an incident's ladder goes through the one gate
(the Executor of ``controllers/execution.py``: governance enforce / dry_run / require_approval,
per-resource back-off, ``Stalled``, knowledge-graph record) as the :class:`Action` the healing
controller's pure ``plan_step`` planned for it (``plan``: strategy, evidence, and a restart
over the restart budget planned as CrashLoopBackOff — the runner decides none of it).

One step per pass, nothing awaits its own outcome: the Executor's ``act`` *starts* the step
behind the ``heal:<service>`` circuit breaker (``ladder_steps``: the intent for the owner) and
records it on the incident (``Incident.run``, in its history row and ``step_store``: an
operator restart resumes it); the healing controller's
later passes :meth:`LadderRunner.observe` it (one look each), its pure diff plans ``settle``
once there is a verdict, and :meth:`LadderRunner.settle` records it — healed (ALERT_HUMAN:
escalated) ends the incident, a failure starts the next step. An approval is bound to the
incident (its id is in the action) and cancelled when the incident closes without it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from autonomous.governance.approvals import approve_command
from autonomous.self_healing.breakers import BreakerRegistry
from autonomous.self_healing.circuit_breaker import CircuitState
from autonomous.self_healing.crashloop import CrashLoop
from autonomous.self_healing.engine_state import Shared
from autonomous.self_healing.heal_recording import IncidentRecorder
from autonomous.self_healing.incident import Incident
from autonomous.self_healing.ladder_steps import LadderSteps, StepRun
from autonomous.self_healing.model import STRATEGY_ACTION, RecoveryStrategy, StrategyResult
from autonomous.self_healing.recovery_strategies import RecoveryStrategies

__all__ = ["Gate", "LadderRunner", "Planner", "Verdict"]

log = logging.getLogger("atlas.healing")

S = RecoveryStrategy
RESTARTS = (S.RESTART_SERVICE, S.RESTART_ALL)

class GateOutcome(Protocol):
    """What the gate answers (``controllers.base.Outcome``)."""

    @property
    def ok(self) -> bool: ...

    @property
    def message(self) -> str: ...

    @property
    def details(self) -> Mapping[str, Any]: ...


# the one gate: the planned action's fields (kind, resource, reason, params, evidence) → its
# Outcome (controllers/healing.py hands the Executor in)
Gate = Callable[[dict[str, Any]], Awaitable[GateOutcome]]
# the planned action of an incident's next step (kind, resource, reason, params with its
# ``strategy`` among ``inc.ladder[inc.step:]``, evidence): the healing controller's pure
# ``plan_step`` (controllers/healing_diff.py) from what it observes; the engine submits exactly
# that to the gate. A ``backoff`` action stands for a restart over the restart budget.
# None: no untried step can apply any more
Planner = Callable[[Incident], dict[str, Any] | None]
# the planned action of a step started earlier and its verified result (the gate records it)
Verdict = Callable[[dict[str, Any], StrategyResult], None]


async def _no_gate(action: dict[str, Any]) -> GateOutcome:
    raise LookupError("self-healing acts only through the Executor: the healing controller "
                      "(controllers/healing.py) hands it in")


class LadderRunner:
    """Start an incident's steps, one gated step at a time; settle them once observed."""

    def __init__(self, shared: Shared, rec: IncidentRecorder, breakers: BreakerRegistry,
                 strategies: RecoveryStrategies) -> None:
        self.shared = shared
        self.ctx = shared.ctx
        self.rec = rec
        self.breakers = breakers
        self.strategies = strategies
        self.steps = LadderSteps(strategies)
        self.crashloop: CrashLoop | None = None  # wired by the orchestrator
        self.gate: Gate = _no_gate
        self.plan: Planner | None = None  # handed in by the healing controller
        # a step's verdict observed after its act returned → the gate's back-off of it
        self.verdict: Verdict = lambda _planned, _res: None

    def next_step(self, inc: Incident) -> tuple[RecoveryStrategy, dict[str, Any]] | None:
        """Ask the planner for the next step and move its strategy to ``inc.step`` of the
        ladder (the untried rest keeps its order); None when nothing can apply any more."""
        if self.plan is None:
            raise LookupError("self-healing steps are planned by the healing controller "
                              "(controllers/healing.py hands its planner in)")
        planned = self.plan(inc)
        if planned is None:
            return None
        strategy = RecoveryStrategy(planned["params"]["strategy"])
        rest = inc.ladder[inc.step:]
        if strategy not in rest:  # a planner may only pick from the untried rest
            raise ValueError(f"{strategy.value} is not an untried step of incident {inc.id}")
        rest.remove(strategy)
        inc.ladder[inc.step:] = [strategy, *rest]
        inc.planned = planned
        return strategy, planned

    async def advance(self, inc: Incident) -> None:
        """Start the incident's next step through the gate and return: once it is in flight
        (``inc.run``) its verification is observed on later passes. Steps settled at once
        (refused, not applicable, an alert) lead to the next one here."""
        held = False  # a step awaited approval: its hold (the diff's ``hold``) ends now
        while inc.step < len(inc.ladder) and inc.run is None:
            held = held or inc.pending is not None
            # an approved step resumes as it was asked for; otherwise the planner decides
            if inc.pending and inc.planned is not None:
                strategy, planned = inc.ladder[inc.step], inc.planned
            else:
                got = self.next_step(inc)
                if got is None:
                    break
                strategy, planned = got
            out = await self.gate(planned)
            details = dict(out.details or {})
            inc.graph_link(self.ctx.graph, list(details.pop("chain", ())))
            if details.get("pending"):
                inc.pending = {"id": details["approval"], "strategy": strategy.value}
                inc.pending_at = self.ctx.clock.monotonic()
                self.shared.pending[inc.id] = inc
                self.rec.save(inc, "awaiting_approval", f"{strategy.value} awaits approval "
                              f"{details['approval']}: {approve_command(details['approval'])}")
                return
            inc.pending = None
            if held:
                held = False
                self.strategies.processes.unhold(inc.service, inc.id, "the awaited approval "
                                                 f"was decided: {out.message}"[:300])
            if details.get("dry_run"):
                res = StrategyResult(strategy, True, out.message)
                self.rec.attempt(inc, res, "dry_run", 0.0, graph=False)
                self.rec.finish(inc, "dry_run", res.message)
                return
            if details.get("rejected"):
                self.rec.attempt(inc, StrategyResult(strategy, False, "rejected by a human"),
                                 "rejected", 0.0, graph=False)
                inc.step += 1
                continue
            if planned["kind"] == "backoff" and out.ok:  # over the restart budget
                self.rec.attempt(inc, StrategyResult(strategy, False, "restart budget "
                                                     f"exhausted: {out.message}",
                                                     applicable=False), "budget", 0.0,
                                 graph=False)
                inc.step += 1
                continue
            run = inc.run
            if run is None or run.strategy is not strategy:  # the gate refused it
                inc.run = None
                refused = StrategyResult(strategy, False, f"not tried: {out.message}",
                                         applicable=False)
                self.rec.attempt(inc, refused, "backoff", 0.0, graph=False)
                inc.step += 1
                continue
            if run.verdict is not None:  # nothing to verify: settled at once
                if await self._settled(inc):
                    return
                continue
            self.rec.save(inc, "open", f"step {inc.step + 1}: {strategy.value} started; "
                          "its verification is observed")
            self.ctx.trigger("healing")  # the controller's passes observe it
            return
        if inc.run is None and inc.id in self.shared.incidents:
            self.rec.finish(inc, "failed", "every strategy failed")

    def _crashloop(self) -> CrashLoop:
        assert self.crashloop is not None, "the orchestrator wires the crash loop"
        return self.crashloop

    async def run_step(self, strategy: RecoveryStrategy, incident_id: str,
                       decision: str | None = None) -> StrategyResult | None:
        """The Executor's ``act`` for one ladder step (the gate said enforce / approved):
        start it (``inc.run``); ``decision`` is the Executor's decision node (intents written
        for it point to it). The result when it is settled at once, else None."""
        inc = self.shared.incidents.get(incident_id)
        if inc is None:
            return StrategyResult(strategy, False, f"incident {incident_id} is not open",
                                  applicable=False)
        mode = self.ctx.governance.action_mode(STRATEGY_ACTION[strategy])
        gate = "approved" if mode == "require_approval" else mode
        inc.step_decision = decision
        try:
            inc.run = await self._start(strategy, inc, gate, decision)
        finally:
            inc.step_decision = None
        return inc.run.verdict

    async def _start(self, strategy: RecoveryStrategy, inc: Incident, gate: str,
                     decision: str | None) -> StepRun:
        name, why = inc.service, f"self-healing {inc.id}: {inc.report.message}"
        run = StepRun(strategy, name, self.ctx.clock.monotonic(), gate, decision)
        if strategy is S.ALERT_HUMAN:
            run.verdict = await self.strategies.alert_human(name, self.rec.alert_reason(inc),
                                                            self.rec.alert_context(inc))
            return run
        breaker = self.breakers.heal(name)
        if breaker.get_state() is CircuitState.OPEN:
            run.verdict = StrategyResult(strategy, False, "not tried: the heal breaker of "
                                         f"{name} is open (this service keeps failing to "
                                         "heal)", {"breaker": "OPEN"})
            return run
        if strategy in RESTARTS or strategy is S.ROLLBACK:
            self._crashloop().release(name)
        pid = inc.evidence.get("pid") if isinstance(inc.evidence.get("pid"), int) else None
        try:
            return await self.steps.start(strategy, name, why, incident=inc.id, gate=gate,
                                          decision=decision, pid=pid)
        except Exception as exc:
            log.exception("%s of %s crashed", strategy.value, name)
            run.verdict = StrategyResult(strategy, False, f"{type(exc).__name__}: {exc}")
            return run

    async def observe(self, inc: Incident) -> StrategyResult | None:
        """One look at the incident's step in flight (a pass of the healing controller); its
        result once there is one. A restart that happened is counted here: only then."""
        run = inc.run
        if run is None:
            return None
        try:
            got = await self.steps.observe(run)
        except Exception as exc:
            log.exception("observing %s of %s crashed", run.strategy.value, inc.service)
            got = run.verdict = StrategyResult(run.strategy, False,
                                               f"{type(exc).__name__}: {exc}")
        self._count_restart(inc, run)
        return got

    def _count_restart(self, inc: Incident, run: StepRun) -> None:
        """The restart budget counts a restart the owner made for this step (its intent says
        so), not one satisfied without a restart (the process was already gone)."""
        if run.counted or run.strategy is not S.RESTART_SERVICE or run.intent is None \
                or inc.report.source == "manual":
            return
        it = self.strategies.processes.intents.get(run.intent)
        if it is None or it.state == "active":
            return
        run.counted = True
        if it.state == "consumed" and (it.outcome or "").startswith("restart"):
            self._crashloop().count_restart(inc.service)

    async def settle(self, inc: Incident) -> None:
        """The act of the diff's ``settle``: record the observed verdict of the step in
        flight; healed ends the incident, a failure starts the next step."""
        if inc.run is None or inc.run.verdict is None:
            return
        if inc.planned is not None:  # a failed verification backs off like a failed act
            self.verdict(inc.planned, inc.run.verdict)
        if not await self._settled(inc):
            await self.advance(inc)

    async def _settled(self, inc: Incident) -> bool:
        """Record the verdict of ``inc.run``; True when it ended the incident."""
        run, inc.run = inc.run, None
        assert run is not None and run.verdict is not None
        res = run.verdict
        if run.strategy is not S.ALERT_HUMAN and res.applicable and \
                "breaker" not in res.details:
            breaker = self.breakers.heal(inc.service)
            breaker.record_success() if res.ok else breaker.record_failure()
        self._apply(run, inc)
        self.rec.attempt(inc, res, run.gate, self.ctx.clock.monotonic() - run.started,
                         graph=False)
        if res.ok:
            final = "escalated" if run.strategy is S.ALERT_HUMAN else "healed"
            self.rec.finish(inc, final, res.message)
            return True
        inc.step += 1
        return False

    def _apply(self, run: StepRun, inc: Incident) -> None:
        """What a settled step changes in the engine's state of the service."""
        st = self.shared.state(inc.service)
        res = run.verdict
        assert res is not None
        if run.strategy is S.FALLBACK:
            st.fallback = st.fallback or bool(res.details.get("intent"))
        elif run.strategy is S.DEGRADE and res.ok:
            st.degraded = res.details.get("previous")
        elif run.strategy is S.ISOLATE and res.ok:
            st.phase, st.next_at = "isolated", (self.ctx.clock.monotonic() +
                                                self.shared.policy()["isolation"]
                                                ["slow_retry_seconds"])
        else:
            return
        self.shared.save_state(st)
