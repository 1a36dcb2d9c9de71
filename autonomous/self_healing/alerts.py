"""Alerts for humans: what the healer could not fix, with everything needed to act.

``raise_alert`` publishes ``alert.human`` on the bus (the telemetry hub's alert manager routes
it to its channels) and keeps it in ``healing_alerts``; the same service and reason alert once
per ``alerts.dedup_seconds``. ``resolve`` marks a service's open alerts resolved when it
recovers, and publishes ``alert.resolved``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from autonomous.core.clock import Clock, iso
from autonomous.core.events import EventBus
from autonomous.store import Store

__all__ = ["HumanAlerts"]


class HumanAlerts:
    """``policy()`` returns the ``healing`` policy section in force."""

    def __init__(self, store: Store, bus: EventBus, clock: Clock,
                 policy: Callable[[], dict[str, Any]]) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.policy = policy

    def raise_alert(self, service: str, reason: str, context: dict[str, Any]) \
            -> dict[str, Any] | None:
        """Publish and store an alert; None when the same one is still fresh (deduplicated)."""
        now = self.clock.now()
        dedup = self.policy()["alerts"]["dedup_seconds"]
        recent = self.store.query_one(
            "SELECT id FROM healing_alerts WHERE service=? AND reason=? AND resolved_at IS NULL "
            "AND ts > ?", (service, reason, now - dedup))
        if recent is not None:
            return None
        alert = {"id": uuid.uuid4().hex[:12], "service": service, "reason": reason,
                 "severity": context.get("severity", "high"), "ts": iso(now),
                 "source": "self_healing", **context}
        self.store.execute("INSERT INTO healing_alerts(id, service, reason, ts, payload) "
                           "VALUES (?,?,?,?,?)",
                           (alert["id"], service, reason, now, json.dumps(alert, default=str)))
        self.bus.publish("alert.human", **alert)
        return alert

    def resolve(self, service: str, message: str) -> int:
        """Resolve every open alert of ``service``; returns how many."""
        n = self.store.execute("UPDATE healing_alerts SET resolved_at=? WHERE service=? AND "
                               "resolved_at IS NULL", (self.clock.now(), service)).rowcount
        if n:
            self.bus.publish("alert.resolved", service=service, source="self_healing",
                             message=message, count=n)
        return n

    def list(self, *, service: str | None = None, open_only: bool = False,
             limit: int = 100) -> list[dict[str, Any]]:
        """Alerts, newest first."""
        sql = "SELECT * FROM healing_alerts WHERE 1=1"
        args: list[Any] = []
        if service:
            sql += " AND service=?"
            args.append(service)
        if open_only:
            sql += " AND resolved_at IS NULL"
        rows = self.store.query(sql + " ORDER BY ts DESC LIMIT ?", (*args, limit))
        return [{**json.loads(r["payload"]), "resolved_at": iso(r["resolved_at"])} for r in rows]
