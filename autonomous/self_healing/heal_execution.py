"""Healing pipeline, second half: gate → execute behind the service's breaker → verify.

Each strategy of an incident's ladder is gated by governance (``action_mode`` and, in
``governed`` mode, ``healing.approval_list``: a gated strategy becomes an approval request
bound to the generation and resumes once approved), then run behind the ``heal:<service>``
circuit breaker; a strategy's ``ok`` means its effect was verified. The first verified
success ends the incident (healed), ALERT_HUMAN ends it escalated.
Mixed into :class:`~autonomous.self_healing.healing_orchestrator.HealingOrchestrator`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from autonomous.self_healing.circuit_breaker import CircuitOpenError
from autonomous.self_healing.heal_pipeline import RESTARTS
from autonomous.self_healing.incident import Incident
from autonomous.self_healing.model import (STRATEGY_ACTION, NotApplicable, RecoveryStrategy,
                                           StrategyResult)

__all__ = ["HealingExecution", "action_hash"]

log = logging.getLogger("atlas.healing")

S = RecoveryStrategy


class HealingExecution:
    """Run an incident's ladder (uses the orchestrator's attributes)."""

    ctx: Any

    async def _run_ladder(self, inc: Incident) -> None:
        while inc.step < len(inc.ladder):
            strategy = inc.ladder[inc.step]
            gate = self._gate(strategy, inc)
            if gate == "pending":
                self.pending[inc.id] = inc
                self._save(inc, "awaiting_approval", f"{strategy.value} awaits approval "
                           f"{inc.pending['id'] if inc.pending else ''}")
                return
            if gate == "dry_run":
                res = StrategyResult(strategy, True, f"dry-run in mode {inc.mode}: decided "
                                     "and recorded, not done")
                self._attempt(inc, res, gate, 0.0)
                self._finish(inc, "dry_run", res.message)
                return
            if gate == "rejected":
                self._attempt(inc, StrategyResult(strategy, False, "rejected by a human"),
                              gate, 0.0)
                inc.step += 1
                continue
            res = await self._execute(strategy, inc, gate)
            if res.ok:
                final = "escalated" if strategy is S.ALERT_HUMAN else "healed"
                self._finish(inc, final, res.message)
                return
            inc.step += 1
        self._finish(inc, "failed", "every strategy failed")

    def _gate(self, strategy: RecoveryStrategy, inc: Incident) -> str:
        """enforce | dry_run | pending | rejected (approved requests count as enforce)."""
        kind = STRATEGY_ACTION[strategy]
        gov = self.ctx.governance
        gate = gov.action_mode(kind)
        if gov.mode == "governed" and strategy.value in self.policy()["approval_list"]:
            gate = "require_approval"
        if gate != "require_approval":
            return gate
        gen = self.ctx.desired.current
        number = gen.number if gen else 0
        key = action_hash(kind, inc.service, strategy, inc.classification.signature)
        approvals = self.ctx.approvals
        if approvals.take_approved(key, number) is not None:
            inc.pending = None
            return "approved"
        if approvals.rejected(key, number):
            inc.pending = None
            return "rejected"
        ttl = self.ctx.policy()["governance"]["approval_ttl_seconds"]
        req = approvals.request(
            controller="healing", resource=f"Service/{inc.service}", action_kind=kind,
            action={"strategy": strategy.value, "service": inc.service, "incident": inc.id,
                    "reason": inc.report.message, "classification":
                    inc.classification.as_dict()},
            action_hash=key, generation=number, mode=gov.mode, ttl=ttl)
        inc.pending = {"id": req["id"], "hash": key, "strategy": strategy.value,
                       "generation": number}
        return "pending"

    async def _execute(self, strategy: RecoveryStrategy, inc: Incident,
                       gate: str) -> StrategyResult:
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
        self._attempt(inc, res, gate, self.ctx.clock.monotonic() - t0)
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


def action_hash(kind: str, service: str, strategy: RecoveryStrategy, signature: str) -> str:
    """The approval key of one strategy for one failure signature of one service."""
    blob = json.dumps([kind, f"Service/{service}", strategy.value, signature])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
