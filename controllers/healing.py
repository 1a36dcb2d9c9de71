"""The healing controller: runs the self-healing engine and reports what it is doing.

The engine (``HealingOrchestrator.start_healing_service``) is event-driven — it reacts to a
process exit or a failing probe within the same loop iteration — and gates its own actions
through governance and approvals, because the same pipeline also serves API triggers and
other subsystems. So ``diff`` plans nothing for the manager; the reconcile pass observes the
engine's per-service state and writes it as conditions (CrashLoopBackOff, Isolated, Degraded,
FallbackActive, HealingBreakerOpen).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from autonomous.self_healing.facade import HealingFacade
from autonomous.self_healing.healing_orchestrator import HealingOrchestrator
from autonomous.self_healing.model import STRATEGY_ACTION, RecoveryStrategy
from controllers.base import Action, Controller, Outcome
from controllers.execution import Executor

__all__ = ["CONTROLLERS", "HealingController"]


class HealingController(Controller):
    name = "healing"
    subsystem = "self_healing"
    order = 40
    watches = ("service.", "health.")

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.orch: HealingOrchestrator | None = None
        self.executor = Executor(ctx)  # the one gate, for the engine's ladder steps

    def attach(self, orch: HealingOrchestrator) -> HealingOrchestrator:
        """Hand the engine its gate: every strategy it runs is an Action through the
        Executor (governance, back-off, Stalled, knowledge graph) whose ``act`` is ours."""
        self.orch = orch
        orch.gate = self._gate
        return orch

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

    async def observe(self) -> dict[str, dict[str, Any]]:
        """Per service: the engine's state and its breakers (no changes)."""
        if self.orch is None:
            return {}
        out = {}
        for name, st in sorted(self.orch.states.items()):
            out[name] = {**st.as_dict(self.ctx.clock),
                         "heal_breaker": self.orch.breakers.heal(name).get_state().value,
                         "service_breaker": self.orch.breakers.service(name).get_state().value}
        return out

    @staticmethod
    def diff(desired: Any, observed: Any) -> tuple[Action, ...]:
        """Pure: nothing to plan (the engine acts on events and gates itself)."""
        return ()

    async def act(self, action: Action) -> Outcome:
        """One step of an incident's ladder (the strategy named in the action)."""
        assert self.orch is not None
        strategy = RecoveryStrategy(action.params["strategy"])
        if STRATEGY_ACTION[strategy] != action.kind:
            return Outcome(action, False, f"{strategy.value} is not a {action.kind} action",
                           permanent=True)
        chain = self.executor.chain_of(self, action)
        res = await self.orch.run_step(strategy, str(action.params["incident"]),
                                       chain[1] if len(chain) > 1 else None)
        if not res.applicable:  # skipped, not failed: no back-off for what could not apply
            return Outcome(action, True, f"not applicable: {res.message}", details={
                "strategy": strategy.value, "applicable": False, "ok": res.ok})
        return Outcome(action, res.ok, res.message, details={"strategy": strategy.value,
                                                             "applicable": True})

    def report(self, desired: Any, observed: dict[str, dict[str, Any]],
               outcomes: list[Outcome]) -> None:
        now = self.ctx.clock.now()
        for name, o in observed.items():
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
            st.details = o


CONTROLLERS = [HealingController]
