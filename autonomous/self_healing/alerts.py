"""Alerts for humans: what the healer could not fix, with everything needed to act.

There is one human-alert store: the telemetry alerts (``alerts`` table, API
``/api/telemetry/alerts``, CLI ``atlas-autonomous alerts``; ack, silences, notification
channels and retention all theirs). ``raise_alert`` fires an episode there — rule
``self_healing_alert``, labels ``service``, ``source=self_healing``, ``reason``, ``severity``
and ``incident`` when there is one, the context for the human (logs tail, graph link…) as its
``details`` — and publishes ``alert.human`` (the telemetry hub finds the episode already open
and adds none); the same service and reason alert once per ``alerts.dedup_seconds``.
``resolve`` resolves a service's open ones when it recovers and publishes ``alert.resolved``.
``list`` is the thin read behind ``GET /api/healing/alerts``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autonomous.core.clock import Clock, iso
from autonomous.core.events import EventBus
from autonomous.store import Store
from autonomous.telemetry.alert_rules import fingerprint
from autonomous.telemetry.alert_store import OPEN_STATES, AlertStore, severity_level

__all__ = ["RULE", "SOURCE", "HumanAlerts", "human_alert_open"]

RULE = "self_healing_alert"
SOURCE = "self_healing"
_OURS = ("rule=? AND json_extract(labels, '$.source')=?", (RULE, SOURCE))


def _open_rows(store: Store, service: str | None = None,
               reason: str | None = None) -> list[Any]:
    sql, args = (f"SELECT * FROM alerts WHERE {_OURS[0]} AND state IN "
                 f"({','.join('?' * len(OPEN_STATES))})", [*_OURS[1], *OPEN_STATES])
    for key, value in (("service", service), ("reason", reason)):
        if value is not None:
            sql += f" AND json_extract(labels, '$.{key}')=?"
            args.append(value)
    return store.query(sql + " ORDER BY id", args)


def human_alert_open(store: Store, service: str, reason: str) -> bool:
    """Whether self-healing's alert for (service, reason) is open in the alert store."""
    return bool(_open_rows(store, service, reason))


class HumanAlerts:
    """``policy()`` returns the ``healing`` policy section in force."""

    def __init__(self, store: Store, bus: EventBus, clock: Clock,
                 policy: Callable[[], dict[str, Any]]) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.policy = policy
        self.db = AlertStore(store)

    def raise_alert(self, service: str, reason: str, context: dict[str, Any]) \
            -> dict[str, Any] | None:
        """Fire and publish an alert; None when the same one is still fresh (deduplicated)."""
        now = self.clock.now()
        dedup = self.policy()["alerts"]["dedup_seconds"]
        rows = _open_rows(self.store, service, reason)
        if any(r["pending_since"] > now - dedup for r in rows):
            return None
        severity = context.get("severity", "high")
        labels = {"alertname": RULE, "service": service, "source": SOURCE, "reason": reason,
                  "severity": severity_level(severity)}
        if context.get("incident"):
            labels["incident"] = str(context["incident"])
        fp = fingerprint(labels)
        if any(r["fingerprint"] == fp for r in rows):
            return None  # the same episode is still open: its notices repeat (telemetry)
        summary = str(context.get("message") or reason)
        payload = {"service": service, "reason": reason, "severity": severity, "ts": iso(now),
                   "source": SOURCE, **context}
        with self.store.transaction() as conn:
            row = self.db.create(conn, fingerprint=fp,
                                 rule=RULE, source="manual", labels=labels,
                                 severity=labels["severity"], summary=summary, value=None,
                                 now=now, actor=SOURCE, reason=reason, details=payload)
            self.db.transition(conn, row, "firing", now, SOURCE, reason)
        alert = {**payload, "id": row["id"]}
        self.bus.publish("alert.human", **alert)
        return alert

    def resolve(self, service: str, message: str) -> int:
        """Resolve every open alert of ``service``; returns how many."""
        now, n = self.clock.now(), 0
        with self.store.transaction() as conn:
            for r in _open_rows(self.store, service):
                alert = self.db.get(int(r["id"]))
                self.db.transition(conn, alert, "resolved" if alert["state"] == "firing"
                                   else "inactive", now, SOURCE, message)
                n += 1
        if n:
            self.bus.publish("alert.resolved", service=service, source=SOURCE,
                             message=message, count=n)
        return n

    def list(self, *, service: str | None = None, open_only: bool = False,
             limit: int = 100) -> list[dict[str, Any]]:
        """Self-healing's alerts in the alert store, newest first (the old
        ``/api/healing/alerts`` shape: the context, plus id, state and resolved_at)."""
        sql, args = f"SELECT * FROM alerts WHERE {_OURS[0]}", list(_OURS[1])
        if service:
            sql += " AND json_extract(labels, '$.service')=?"
            args.append(service)
        if open_only:
            sql += f" AND state IN ({','.join('?' * len(OPEN_STATES))})"
            args += list(OPEN_STATES)
        out = []
        for r in self.store.query(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)):
            a = self.db.get(int(r["id"]))
            out.append({**(a.get("details") or {}), "id": a["id"], "state": a["state"],
                        "labels": a["labels"], "acked_by": a["acked_by"],
                        "resolved_at": iso(a["resolved_at"])})
        return out
