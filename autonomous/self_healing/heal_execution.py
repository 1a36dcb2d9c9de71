"""Healing pipeline, second half: each step of an incident's ladder goes through the one gate
(the Executor of ``controllers/execution.py``: governance enforce / dry_run / require_approval,
per-resource back-off, ``Stalled``, knowledge-graph record) as the :class:`Action` the healing
controller's pure ``plan_step`` planned for it (``plan``: strategy, evidence, and a restart
over the restart budget planned as CrashLoopBackOff — the runner decides none of it), and
the Executor's ``act`` runs the strategy behind the ``heal:<service>`` circuit breaker; a
strategy's ``ok`` means its effect was verified. The first verified success ends the incident
(healed), ALERT_HUMAN ends it escalated. An approval is bound to the incident (its id is in the
action) and cancelled when the incident closes without it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from autonomous.self_healing.breakers import BreakerRegistry
from autonomous.self_healing.circuit_breaker import CircuitOpenError
from autonomous.self_healing.crashloop import CrashLoop
from autonomous.self_healing.engine_state import Shared
from autonomous.self_healing.heal_recording import IncidentRecorder
from autonomous.self_healing.incident import Incident
from autonomous.self_healing.model import (STRATEGY_ACTION, NotApplicable, RecoveryStrategy,
                                           StrategyResult)
from autonomous.self_healing.recovery_strategies import RecoveryStrategies

__all__ = ["Gate", "LadderRunner", "Planner"]

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


async def _no_gate(action: dict[str, Any]) -> GateOutcome:
    raise LookupError("self-healing acts only through the Executor: the healing controller "
                      "(controllers/healing.py) hands it in")


class LadderRunner:
    """Run an incident's ladder, one gated step at a time."""

    def __init__(self, shared: Shared, rec: IncidentRecorder, breakers: BreakerRegistry,
                 strategies: RecoveryStrategies) -> None:
        self.shared = shared
        self.ctx = shared.ctx
        self.rec = rec
        self.breakers = breakers
        self.strategies = strategies
        self.crashloop: CrashLoop | None = None  # wired by the orchestrator
        self.gate: Gate = _no_gate
        self.plan: Planner | None = None  # handed in by the healing controller

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

    async def run_ladder(self, inc: Incident) -> None:
        held = False  # a step awaited approval: its hold (the diff's ``hold``) ends now
        while inc.step < len(inc.ladder):
            held = held or inc.pending is not None
            # an approved step resumes as it was asked for; otherwise the planner decides
            if inc.pending and inc.planned is not None:
                strategy, planned = inc.ladder[inc.step], inc.planned
            else:
                got = self.next_step(inc)
                if got is None:
                    break
                strategy, planned = got
            self.shared.results.pop(inc.id, None)
            out = await self.gate(planned)
            details = dict(out.details or {})
            inc.graph_link(self.ctx.graph, list(details.pop("chain", ())))
            if details.get("pending"):
                inc.pending = {"id": details["approval"], "strategy": strategy.value}
                self.shared.pending[inc.id] = inc
                self.rec.save(inc, "awaiting_approval", f"{strategy.value} awaits approval "
                              f"{details['approval']}: atlas-autonomous approvals approve "
                              f"{details['approval']}")
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
            result = self.shared.results.pop(inc.id, None)
            if result is None:  # the gate refused it: back-off, Stalled
                refused = StrategyResult(strategy, False, f"not tried: {out.message}",
                                         applicable=False)
                self.rec.attempt(inc, refused, "backoff", 0.0, graph=False)
                inc.step += 1
                continue
            if result.ok:
                final = "escalated" if strategy is S.ALERT_HUMAN else "healed"
                self.rec.finish(inc, final, result.message)
                return
            inc.step += 1
        self.rec.finish(inc, "failed", "every strategy failed")

    def _crashloop(self) -> CrashLoop:
        assert self.crashloop is not None, "the orchestrator wires the crash loop"
        return self.crashloop

    async def run_step(self, strategy: RecoveryStrategy, incident_id: str,
                       decision: str | None = None) -> StrategyResult:
        """The Executor's ``act`` for one ladder step (the gate said enforce / approved);
        ``decision`` is the Executor's decision node (intents written now point to it)."""
        inc = self.shared.incidents.get(incident_id)
        if inc is None:
            return StrategyResult(strategy, False, f"incident {incident_id} is not open",
                                  applicable=False)
        mode = self.ctx.governance.action_mode(STRATEGY_ACTION[strategy])
        inc.step_decision = decision
        try:
            res = await self._execute(strategy, inc, "approved" if mode == "require_approval"
                                      else mode, graph=False)
        finally:
            inc.step_decision = None
        self.shared.results[inc.id] = res
        return res

    async def _execute(self, strategy: RecoveryStrategy, inc: Incident,
                       gate: str, *, graph: bool = True) -> StrategyResult:
        t0 = self.ctx.clock.monotonic()
        if strategy is S.ALERT_HUMAN:
            res = await self.strategies.alert_human(inc.service, self.rec.alert_reason(inc),
                                                    self.rec.alert_context(inc))
        else:
            breaker = self.breakers.heal(inc.service)
            try:
                res = await breaker.call_async(self._checked, strategy, inc)
            except CircuitOpenError as exc:
                res = StrategyResult(strategy, False, f"not tried: {exc} (this service "
                                     "keeps failing to heal)", {"breaker": "OPEN"})
            except (_Failed, NotApplicable) as exc:
                res = exc.result
            except Exception as exc:
                log.exception("%s of %s crashed", strategy.value, inc.service)
                res = StrategyResult(strategy, False, f"{type(exc).__name__}: {exc}")
        self.rec.attempt(inc, res, gate, self.ctx.clock.monotonic() - t0, graph=graph)
        return res

    async def _checked(self, strategy: RecoveryStrategy, inc: Incident) -> StrategyResult:
        res = await self._dispatch(strategy, inc)
        if not res.applicable:
            raise NotApplicable(res)
        if not res.ok:
            raise _Failed(res)
        return res

    async def _dispatch(self, strategy: RecoveryStrategy, inc: Incident) -> StrategyResult:
        name, why = inc.service, f"self-healing {inc.id}: {inc.report.message}"
        st = self.shared.state(name)
        pid = inc.evidence.get("pid") if isinstance(inc.evidence.get("pid"), int) else None
        if strategy in RESTARTS or strategy is S.ROLLBACK:
            self._crashloop().release(name)
        if strategy is S.RESTART_SERVICE:
            if inc.report.source != "manual" and inc.evidence.get("running"):
                self._crashloop().count_restart(name)  # the plan weighed it against the budget
            return await self.strategies.restart_service(name, why, pid=pid, incident=inc.id)
        if strategy is S.RESTART_ALL:
            return await self.strategies.restart_all(why, incident=inc.id)
        if strategy is S.ROLLBACK:
            return await self.strategies.rollback_to_version(name, why, incident=inc.id)
        if strategy is S.RETRY:
            return await self.strategies.retry(name, why)
        if strategy is S.FALLBACK:
            res = await self.strategies.activate_fallback(name, why, incident=inc.id)
            st.fallback = st.fallback or bool(res.details.get("intent"))
        elif strategy is S.DEGRADE:
            res = await self.strategies.enter_degraded_mode(name, why, incident=inc.id)
            if res.ok:
                st.degraded = res.details.get("previous")
        else:  # ISOLATE
            res = await self.strategies.isolate_component(name, why, incident=inc.id)
            if res.ok:
                st.phase, st.next_at = "isolated", (self.ctx.clock.monotonic() +
                                                    self.shared.policy()["isolation"]
                                                    ["slow_retry_seconds"])
        self.shared.save_state(st)
        return res


class _Failed(Exception):
    """A strategy that ran and did not verify: counts as a failure for the breaker."""

    def __init__(self, result: StrategyResult) -> None:
        super().__init__(result.message)
        self.result = result
