"""Healing pipeline, second half: each step of an incident's ladder goes through the one gate
(the Executor of ``controllers/execution.py``: governance enforce / dry_run / require_approval,
per-resource back-off, ``Stalled``, knowledge-graph record) as a planned :class:`Action`, and
the Executor's ``act`` runs the strategy behind the ``heal:<service>`` circuit breaker; a
strategy's ``ok`` means its effect was verified. The first verified success ends the incident
(healed), ALERT_HUMAN ends it escalated. An approval is bound to the incident (its id is in the
action) and cancelled when the incident closes without it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from autonomous.self_healing.circuit_breaker import CircuitOpenError
from autonomous.self_healing.heal_pipeline import RESTARTS
from autonomous.self_healing.incident import Incident
from autonomous.self_healing.model import (STRATEGY_ACTION, NotApplicable, RecoveryStrategy,
                                           StrategyResult)

__all__ = ["Gate", "HealingExecution", "strategy_action"]

log = logging.getLogger("atlas.healing")

S = RecoveryStrategy

# the one gate: ``(kind, resource, reason, params, evidence) -> Outcome-like`` (see
# controllers/healing.py, which hands the Executor in)
Gate = Callable[[dict[str, Any]], Awaitable[Any]]


def strategy_action(strategy: RecoveryStrategy, inc: Incident) -> dict[str, Any]:
    """The planned action of one ladder step (bound to the incident: an approval for it is)."""
    return {"kind": STRATEGY_ACTION[strategy], "resource": f"Service/{inc.service}",
            "reason": f"{inc.classification.rule}: {inc.report.message}"[:300],
            "params": {"strategy": strategy.value, "incident": inc.id,
                       "signature": inc.classification.signature},
            "evidence": {k: v for k, v in inc.evidence.items()
                         if k in ("source", "pid", "running", "stopped", "exit_code", "signal",
                                  "status_code", "probe_error", "probes", "errors", "slow",
                                  "unanswered", "max_latency_ms", "rss_mb", "probes_seen")}}


class HealingExecution:
    """Run an incident's ladder (uses the orchestrator's attributes)."""

    ctx: Any

    async def _run_ladder(self, inc: Incident) -> None:
        while inc.step < len(inc.ladder):
            strategy = inc.ladder[inc.step]
            gate = self.ctx.governance.action_mode(STRATEGY_ACTION[strategy])
            self.results.pop(inc.id, None)
            out = await self.gate(strategy_action(strategy, inc))
            details = dict(out.details or {})
            inc.graph_link(self.ctx.graph, list(details.pop("chain", ())))
            if details.get("pending"):
                inc.pending = {"id": details["approval"], "strategy": strategy.value}
                self.pending[inc.id] = inc
                self._save(inc, "awaiting_approval", f"{strategy.value} awaits approval "
                           f"{details['approval']}")
                return
            inc.pending = None
            if details.get("dry_run"):
                res = StrategyResult(strategy, True, out.message)
                self._attempt(inc, res, "dry_run", 0.0, graph=False)
                self._finish(inc, "dry_run", res.message)
                return
            if details.get("rejected"):
                self._attempt(inc, StrategyResult(strategy, False, "rejected by a human"),
                              "rejected", 0.0, graph=False)
                inc.step += 1
                continue
            result = self.results.pop(inc.id, None)
            if result is None:  # the gate refused it: back-off, Stalled
                self._attempt(inc, StrategyResult(strategy, False, f"not tried: {out.message}",
                                                  applicable=False), "backoff", 0.0,
                              graph=False)
                inc.step += 1
                continue
            if result.ok:
                final = "escalated" if strategy is S.ALERT_HUMAN else "healed"
                self._finish(inc, final, result.message)
                return
            inc.step += 1
        self._finish(inc, "failed", "every strategy failed")

    async def run_step(self, strategy: RecoveryStrategy, incident_id: str,
                       decision: str | None = None) -> StrategyResult:
        """The Executor's ``act`` for one ladder step (the gate said enforce / approved);
        ``decision`` is the Executor's decision node (intents written now point to it)."""
        inc = self.incidents.get(incident_id)
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
        self.results[inc.id] = res
        return res

    async def _execute(self, strategy: RecoveryStrategy, inc: Incident,
                       gate: str, *, graph: bool = True) -> StrategyResult:
        t0 = self.ctx.clock.monotonic()
        if strategy is S.ALERT_HUMAN:
            res = await self.strategies.alert_human(inc.service, self._alert_reason(inc),
                                                    self._alert_context(inc))
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
        self._attempt(inc, res, gate, self.ctx.clock.monotonic() - t0, graph=graph)
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
        st = self.state(name)
        pid = inc.evidence.get("pid") if isinstance(inc.evidence.get("pid"), int) else None
        if strategy in RESTARTS or strategy is S.ROLLBACK:
            self.crashloop.release(name)
        if strategy is S.RESTART_SERVICE:
            if inc.report.source != "manual" and self.crashloop.over_budget(
                    name, counting=bool(inc.evidence.get("running"))):
                self.crashloop.enter(name, inc.report, inc)
                return StrategyResult(strategy, False, "restart budget exhausted: "
                                      "CrashLoopBackOff", applicable=False)
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
            res = await self.strategies.enter_degraded_mode(name, why)
            if res.ok:
                st.degraded = res.details.get("previous")
        else:  # ISOLATE
            res = await self.strategies.isolate_component(name, why, incident=inc.id)
            if res.ok:
                st.phase, st.next_at = "isolated", (self.ctx.clock.monotonic() +
                                                    self.policy()["isolation"]
                                                    ["slow_retry_seconds"])
        self.save_state(st)
        return res


class _Failed(Exception):
    """A strategy that ran and did not verify: counts as a failure for the breaker."""

    def __init__(self, result: StrategyResult) -> None:
        super().__init__(result.message)
        self.result = result
