"""What the API (and other subsystems) see of self-healing: ``ctx.subsystems["healing"]``."""

from __future__ import annotations

import asyncio
from typing import Any

from autonomous.core.errors import NotFound, Problem, ValidationFailed
from autonomous.self_healing.circuit_breaker import CircuitBreaker
from autonomous.self_healing.healing_orchestrator import HealingOrchestrator
from autonomous.self_healing.model import (
    STRATEGY_ACTION,
    STRATEGY_HELP,
    ErrorType,
    RecoveryStrategy,
)

__all__ = ["OVERRIDE_ACTIONS", "HealingFacade"]

OVERRIDE_ACTIONS = ("pause", "resume", "force_strategy", "clear_strategy", "release", "restore",
                    "reset_breaker")


def _bad(path: str, message: str) -> ValidationFailed:
    return ValidationFailed([Problem("request", 0, path, message)])


class HealingFacade:
    def __init__(self, orch: HealingOrchestrator) -> None:
        self.orch = orch

    def _declared(self, service: str) -> None:
        svc = self.orch.ctx.subsystems.get("services")
        names = sorted(svc.specs()) if svc is not None else []
        if service not in names:
            raise NotFound(f"service {service!r} is not declared; declared services: "
                           f"{', '.join(names) or '(none)'}")

    async def trigger(self, service: str, strategy: str | None, reason: str | None) \
            -> dict[str, Any]:
        """Run the healing pipeline for ``service`` now (optionally forcing a strategy): the
        incident as it stands once its first step started (its verification, and any next
        step, follow on the healing controller's passes — ``heal history`` shows them)."""
        self._declared(service)
        if strategy is not None and strategy not in RecoveryStrategy.__members__:
            raise _bad("strategy", f"{strategy!r} is not one of "
                       f"{', '.join(RecoveryStrategy.__members__)}")
        if strategy is None:
            healthy = self._healthy(service)
            if healthy is not None:
                return {"service": service, "state": "nothing_to_heal", "message":
                        f"{service} is healthy ({healthy}): nothing to heal; to run a strategy "
                        f"anyway: atlas-autonomous heal trigger {service} --strategy "
                        "RESTART_SERVICE (or POST /api/healing/trigger with \"strategy\"; one "
                        f"of {', '.join(RecoveryStrategy.__members__)})"}
        return await self.orch.handle_error(service, source="manual", strategy=strategy,
                                            message=reason or "healing requested by a human")

    def _healthy(self, service: str) -> str | None:
        """How ``service`` is healthy (running, live, last probe answered, no open
        incident, not held), or None when anything is off."""
        orch = self.orch
        obs = (orch.services().observed().get(service) or {})
        last = obs.get("last_probe") or {}
        st = orch.state(service)
        if (not obs.get("running") or obs.get("live") is False or st.phase != "normal"
                or orch.open_incident(service) is not None or st.degraded is not None
                or st.fallback or (last and not last.get("ok", True))):
            return None
        probe = f", last probe HTTP {last['status_code']}" if last.get("status_code") else ""
        return f"running pid {obs.get('pid')}{probe}"

    def history(self, **filters: Any) -> list[dict[str, Any]]:
        return self.orch.history.list(**filters)

    def strategies(self) -> dict[str, Any]:
        """Every strategy with what it does, its action kind and how it is gated now."""
        gov = self.orch.ctx.governance
        p = self.orch.policy()
        out = []
        for s in RecoveryStrategy:
            kind = STRATEGY_ACTION[s]
            gate = gov.action_mode(kind)
            out.append({"name": s.value, "description": STRATEGY_HELP[s], "action_kind": kind,
                        "gate": gate, "used_first_for": [t.value for t in ErrorType
                                                         if p["strategies"][t.value][0] ==
                                                         s.value]})
        return {"mode": gov.mode, "strategies": out, "ladders": p["strategies"],
                "rules": [{"name": r["name"], "type": r["type"], "severity": r["severity"],
                           "strategies": r["strategies"]}
                          for r in p["classification"]["rules"]]}

    async def override(self, service: str, action: str, strategy: str | None,
                       reason: str | None, actor: str) -> dict[str, Any]:
        """Pause/resume auto-healing, force or clear a strategy, release a crash-looping or
        isolated service, restore a degraded one, reset its breakers."""
        self._declared(service)
        if action not in OVERRIDE_ACTIONS:
            raise _bad("action", f"{action!r} is not one of {', '.join(OVERRIDE_ACTIONS)}")
        orch = self.orch
        st = orch.state(service)
        if action == "force_strategy":
            if strategy not in RecoveryStrategy.__members__:
                raise _bad("strategy", f"force_strategy needs strategy, one of "
                           f"{', '.join(RecoveryStrategy.__members__)} (got {strategy!r})")
            st.forced_strategy = strategy
        elif action == "clear_strategy":
            st.forced_strategy = None
        elif action in ("pause", "resume"):
            st.paused_by_human = action == "pause"
        elif action == "release":
            orch.crashloop.release(service)
            orch.alerts.resolve(service, f"released by {actor}")
        elif action == "restore":
            await orch.restore(service)
        else:
            orch.breakers.heal(service).reset()
            orch.breakers.service(service).reset()
        orch.save_state(st)
        g = orch.ctx.graph
        g.record_chain([("decision", f"human override {action} on {service}",
                         {"actor": actor, "strategy": strategy, "reason": reason})],
                       context={"about": g.ensure("resource", f"Service/{service}")})
        orch.ctx.bus.publish("healing.override", service=service, action=action,
                             strategy=strategy, actor=actor, reason=reason)
        return st.as_dict(orch.ctx.clock)

    def stats(self) -> dict[str, Any]:
        return self.orch.get_healing_stats()

    def alerts(self, **filters: Any) -> list[dict[str, Any]]:
        return self.orch.alerts.list(**filters)

    def recurring(self) -> dict[str, Any]:
        m = self.orch.memory
        return {"recurring": m.get_recurring_errors(),
                "preventive_actions": m.generate_preventive_actions()}

    def breaker(self, name: str, section: str = "breaker") -> CircuitBreaker:
        """A named breaker built from policy ``healing.<section>`` (e.g. the NEXUS heartbeat's,
        section ``heartbeat_breaker``); persisted and listed in the stats like the others."""
        return self.orch.breakers.get(name, section)

    def handle_error_soon(self, service: str, *, source: str, message: str,
                          context: dict[str, Any] | None = None) -> asyncio.Task[Any]:
        """Run ``handle_error`` for ``service`` in the background (the engine's task, cancelled
        when it stops); the task's result is the incident row."""
        return self.orch.spawn(self.orch.handle_error(service, context=context, source=source,
                                                      message=message))
