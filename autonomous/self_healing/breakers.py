"""The breakers of the healing engine, built from policy, persisted, and exposed.

Two per service: ``heal:<service>`` wraps the healing actions (a service that keeps failing to
heal stops being hammered), ``svc:<service>`` is fed by the service's probes (slow or error
answers open it). Other code (the NEXUS heartbeat, clients) may ask for its own by name.
State changes are written to ``healing_breakers`` and published as ``healing.breaker``; an
OPEN breaker is restored as OPEN (with the time it has left) after an operator restart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autonomous.core.clock import Clock, iso
from autonomous.core.events import EventBus
from autonomous.self_healing.circuit_breaker import CircuitBreaker, CircuitState
from autonomous.self_healing.model import NotApplicable
from autonomous.store import Store

__all__ = ["BreakerRegistry", "breaker_params"]


def breaker_params(p: dict[str, Any]) -> dict[str, Any]:
    """CircuitBreaker keyword arguments from a ``BreakerPolicy`` dict."""
    rate = p.get("failure_rate") or {}
    return {"failure_threshold": p["failure_threshold"], "timeout": p["timeout_seconds"],
            "success_threshold": p["success_threshold"],
            "failure_rate": rate.get("threshold"), "window_calls": rate.get("window_calls"),
            "min_calls": rate.get("min_calls"), "slow_call_seconds": p["slow_call_seconds"]}


class BreakerRegistry:
    """``policy()`` returns the ``healing`` policy section in force."""

    def __init__(self, store: Store, bus: EventBus, clock: Clock,
                 policy: Callable[[], dict[str, Any]]) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.policy = policy
        self._breakers: dict[str, tuple[CircuitBreaker, str]] = {}

    def get(self, name: str, section: str = "breaker") -> CircuitBreaker:
        """The breaker called ``name`` (created from policy ``healing.<section>``)."""
        found = self._breakers.get(name)
        if found is not None:
            return found[0]
        # a strategy that could not apply is no attempt: heal breakers count real ones only
        exclude = (NotApplicable,) if name.startswith("heal:") else ()
        b = CircuitBreaker(name, clock=self.clock, exclude=exclude,
                           **breaker_params(self.policy()[section]))
        row = self.store.query_one("SELECT * FROM healing_breakers WHERE name=?", (name,))
        if row is not None and row["state"] != CircuitState.CLOSED.value:
            ago = max(0.0, self.clock.now() - (row["opened_at"] or self.clock.now()))
            b.restore(CircuitState.OPEN, opened_ago=ago)
            b.opened_count = row["opened_count"]
        b.add_listener(self._changed)
        self._breakers[name] = (b, section)
        return b

    def heal(self, service: str) -> CircuitBreaker:
        return self.get(f"heal:{service}", "breaker")

    def service(self, service: str) -> CircuitBreaker:
        return self.get(f"svc:{service}", "service_breaker")

    def sync_policy(self) -> None:
        """Apply the policy in force to every breaker (state kept)."""
        p = self.policy()
        for b, section in self._breakers.values():
            b.configure(**breaker_params(p[section]))

    def _changed(self, b: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        now = self.clock.now()
        self.store.execute(
            "INSERT INTO healing_breakers(name, state, opened_at, opened_count, updated_at) "
            "VALUES (?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET state=excluded.state, "
            "opened_at=COALESCE(excluded.opened_at, opened_at), "
            "opened_count=excluded.opened_count, updated_at=excluded.updated_at",
            (b.name, new.value, now if new is CircuitState.OPEN else None, b.opened_count, now))
        self.bus.publish("healing.breaker", name=b.name, old=old.value, new=new.value,
                         ts=iso(now))

    def snapshot(self) -> list[dict[str, Any]]:
        """Every breaker's state and counters."""
        return [b.snapshot() for b, _ in sorted(self._breakers.values(),
                                                 key=lambda x: x[0].name)]
