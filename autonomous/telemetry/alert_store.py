"""Persistence of alerts: episodes, transitions (who/when), silences, flaps, the outbox.

Everything the alert manager knows is in these tables, so an operator restart continues
exactly where it stopped: nothing notified twice, nothing pending lost.
"""

from __future__ import annotations

import json
from typing import Any

from autonomous.core.errors import Conflict, NotFound, Problem, ValidationFailed
from autonomous.store.db import Store

__all__ = ["OPEN_STATES", "AlertStore", "matches", "severity_level"]

OPEN_STATES = ("pending", "firing")
_LEVEL = {"critical": "critical", "high": "critical", "severa": "critical",
          "medium": "warning", "moderada": "warning", "warning": "warning",
          "low": "info", "leve": "info", "info": "info"}


def severity_level(text: object) -> str:
    """A subsystem's severity word (critical, high, medium, low…) → an alert severity
    (critical, warning, info); unknown words are warnings."""
    return _LEVEL.get(str(text), "warning")


def matches(labels: dict[str, str], matchers: dict[str, str]) -> bool:
    """Every matcher label equals the alert's label."""
    return all(labels.get(k) == v for k, v in matchers.items())


def _alert(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["labels"] = json.loads(d["labels"])
    if "details" in d:  # context for the human (self-healing: incident, logs tail, graph link)
        d["details"] = json.loads(d["details"]) if d["details"] else None
    return d


class AlertStore:
    """Row-level access to the alert tables (callers hold the transaction)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- alerts -----------------------------------------------------------------------------
    def open_alerts(self, source: str | None = None) -> dict[str, dict[str, Any]]:
        """Fingerprint → the open (pending/firing) episode."""
        sql = "SELECT * FROM alerts WHERE state IN ('pending','firing')"
        rows = self.store.query(sql + (" AND source=?" if source else ""),
                                (source,) if source else ())
        return {r["fingerprint"]: _alert(r) for r in rows}

    def get(self, alert_id: int) -> dict[str, Any]:
        row = self.store.query_one("SELECT * FROM alerts WHERE id=?", (alert_id,))
        if row is None:
            raise NotFound(f"alert {alert_id} not found; list them with 'atlas-autonomous "
                           "alerts' (GET /api/telemetry/alerts)")
        return _alert(row)

    def create(self, conn: Any, *, fingerprint: str, rule: str, source: str,
               labels: dict[str, str], severity: str, summary: str, value: float | None,
               now: float, actor: str, reason: str,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
        cur = conn.execute(
            "INSERT INTO alerts(fingerprint, rule, source, labels, severity, summary, state, "
            "value, pending_since, updated_at, details) VALUES (?,?,?,?,?,?,'pending',?,?,?,?)",
            (fingerprint, rule, source, json.dumps(labels, sort_keys=True), severity, summary,
             value, now, now, None if details is None else json.dumps(details, default=str)))
        self.log(conn, cur.lastrowid, fingerprint, None, "pending", now, actor, reason)
        return _alert(conn.execute("SELECT * FROM alerts WHERE id=?",
                                   (cur.lastrowid,)).fetchone())

    def transition(self, conn: Any, alert: dict[str, Any], to: str, now: float, actor: str,
                   reason: str) -> None:
        """Move an episode to ``to`` and record who and why."""
        sets = {"firing": ", fired_at=?", "resolved": ", resolved_at=?",
                "inactive": ", resolved_at=?"}.get(to, "")
        params: list[Any] = [to, now] + ([now] if sets else []) + [alert["id"]]
        conn.execute(f"UPDATE alerts SET state=?, updated_at=?{sets} WHERE id=?", params)
        self.log(conn, alert["id"], alert["fingerprint"], alert["state"], to, now, actor, reason)
        alert["state"] = to

    @staticmethod
    def log(conn: Any, alert_id: int, fp: str, frm: str | None, to: str, now: float,
            actor: str, reason: str) -> None:
        conn.execute("INSERT INTO alert_transitions(alert_id, fingerprint, ts, from_state, "
                     "to_state, actor, reason) VALUES (?,?,?,?,?,?,?)",
                     (alert_id, fp, now, frm, to, actor, reason))

    def alerts(self, *, states: tuple[str, ...] | None = None, limit: int = 200,
             since: float | None = None) -> list[dict[str, Any]]:
        where: list[str] = ["1=1"]
        params: list[Any] = []
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            params.extend(states)
        if since is not None:
            where.append("updated_at >= ?")
            params.append(since)
        rows = self.store.query(f"SELECT * FROM alerts WHERE {' AND '.join(where)} "
                                "ORDER BY id DESC LIMIT ?", [*params, limit])
        return [_alert(r) for r in rows]

    def transitions(self, alert_id: int | None = None, limit: int = 500
                    ) -> list[dict[str, Any]]:
        if alert_id is None:
            rows = self.store.query("SELECT * FROM alert_transitions ORDER BY id DESC LIMIT ?",
                                    (limit,))
        else:
            rows = self.store.query("SELECT * FROM alert_transitions WHERE alert_id=? "
                                    "ORDER BY id", (alert_id,))
        return [dict(r) for r in rows]

    def count_transitions(self, fp: str, since: float) -> int:
        row = self.store.query_one(
            "SELECT COUNT(*) FROM alert_transitions WHERE fingerprint=? AND ts>=? "
            "AND to_state IN ('firing','resolved')", (fp, since))
        return 0 if row is None else int(row[0])

    # -- acknowledgement ----------------------------------------------------------------------
    def acknowledge(self, alert_id: int, actor: str, comment: str, now: float
                    ) -> dict[str, Any]:
        with self.store.transaction() as conn:
            alert = self.get(alert_id)
            if alert["state"] not in OPEN_STATES:
                raise Conflict(f"alert {alert_id} is {alert['state']}: only pending or firing "
                               "alerts can be acknowledged")
            if alert["acked_by"]:
                return alert
            conn.execute("UPDATE alerts SET acked_by=?, acked_at=?, updated_at=? WHERE id=?",
                         (actor, now, now, alert_id))
            self.log(conn, alert_id, alert["fingerprint"], alert["state"], "acknowledged", now,
                     actor, comment or "acknowledged")
        return self.get(alert_id)

    # -- silences ---------------------------------------------------------------------------
    def add_silence(self, matchers: dict[str, str], starts_at: float, ends_at: float,
                    actor: str, comment: str, now: float) -> dict[str, Any]:
        if not matchers:
            raise ValidationFailed([Problem("", 0, "matchers", "a silence needs at least one "
                                            "label matcher, e.g. {'alertname': 'cpu_high'}")])
        if ends_at <= starts_at:
            raise ValidationFailed([Problem("", 0, "ends_at",
                                            f"{ends_at} must be after starts_at {starts_at}")])
        cur = self.store.execute(
            "INSERT INTO alert_silences(matchers, starts_at, ends_at, created_by, comment, "
            "created_at) VALUES (?,?,?,?,?,?)",
            (json.dumps(matchers, sort_keys=True), starts_at, ends_at, actor, comment, now))
        return self.silence(int(cur.lastrowid or 0))

    def silence(self, silence_id: int) -> dict[str, Any]:
        row = self.store.query_one("SELECT * FROM alert_silences WHERE id=?", (silence_id,))
        if row is None:
            raise NotFound(f"silence {silence_id} not found")
        d = dict(row)
        d["matchers"] = json.loads(d["matchers"])
        return d

    def expire_silence(self, silence_id: int, actor: str, now: float) -> dict[str, Any]:
        self.silence(silence_id)
        self.store.execute("UPDATE alert_silences SET ends_at=MIN(ends_at, ?), expired_by=? "
                           "WHERE id=?", (now, actor, silence_id))
        return self.silence(silence_id)

    def silences(self, now: float | None = None) -> list[dict[str, Any]]:
        """All silences, or only those in force at ``now``."""
        if now is None:
            rows = self.store.query("SELECT id FROM alert_silences ORDER BY id DESC")
        else:
            rows = self.store.query("SELECT id FROM alert_silences WHERE starts_at<=? AND "
                                    "ends_at>? ORDER BY id", (now, now))
        return [self.silence(r["id"]) for r in rows]
