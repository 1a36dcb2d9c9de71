"""What the healing engine does besides the ladder's steps (those are started and observed
by :mod:`autonomous.self_healing.ladder_steps`): undoing a fallback and degraded mode once the
service recovered, and alerting a human; and what the steps share (intents, checks, flags).

Processes belong to the services controller: nothing here starts, stops or restarts one; the
intents for their owner are :class:`ProcessIntents`. Feature flags belong to the features
controller (:class:`FeatureFlags`); healing reads the owner's result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autonomous.core.clock import Clock
from autonomous.core.events import EventBus
from autonomous.feature_flags import FeatureFlags
from autonomous.self_healing.alerts import HumanAlerts
from autonomous.self_healing.model import RecoveryStrategy as S
from autonomous.self_healing.model import StrategyResult
from autonomous.self_healing.process_intents import REQUESTER, ProcessIntents, ServicesView
from autonomous.self_healing.verify import HealthCheck
from autonomous.store import Store

__all__ = ["RecoveryStrategies"]


class RecoveryStrategies:
    """``services()`` returns the services facade; ``policy()`` the ``healing`` section."""

    def __init__(self, *, store: Store, bus: EventBus, clock: Clock,
                 services: Callable[[], ServicesView], policy: Callable[[], dict[str, Any]],
                 check: HealthCheck, alerts: HumanAlerts, processes: ProcessIntents) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.services = services
        self.policy = policy
        self.check = check
        self.alerts = alerts
        self.processes = processes
        self.flags = FeatureFlags(store, clock, bus)  # DEGRADE asks the flags' owner

    # -- FALLBACK ------------------------------------------------------------------------------
    def deactivate_fallback(self, name: str) -> bool:
        """Route back to the service itself; True if a fallback was active."""
        if not self.processes.clear_fallback(name, "recovered: route back to the service"):
            return False
        self.bus.publish("service.fallback", active=False, service=name)
        return True

    # -- DEGRADE -------------------------------------------------------------------------------------
    async def exit_degraded_mode(self, name: str, previous: dict[str, bool]) -> bool:
        """Release healing's degrade intent on ``name``; True once the owner turned back on
        what it held off for it (``previous``: the flags before DEGRADE, kept for the record)."""
        released = [i.id for i in self.flags.held_by(REQUESTER) if i.service == name]
        self.flags.release(name, requester=REQUESTER, reason="recovered: full service restored")
        v = self.policy()["verify"]
        why = await self.flags.wait_restored(name, released, v["timeout_seconds"],
                                             v["poll_seconds"])
        return why is None

    # -- ALERT_HUMAN -----------------------------------------------------------------------------------
    async def alert_human(self, name: str, reason: str, context: dict[str, Any]) \
            -> StrategyResult:
        """Publish ``alert.human`` with the full context and keep it in the store."""
        alert = self.alerts.raise_alert(name, reason, context)
        if alert is None:
            return StrategyResult(S.ALERT_HUMAN, True, "a human was already alerted for this "
                                  "recently (deduplicated)", {"deduplicated": True})
        return StrategyResult(S.ALERT_HUMAN, True, f"human alerted ({alert['id']})",
                              {"alert": alert["id"]})
