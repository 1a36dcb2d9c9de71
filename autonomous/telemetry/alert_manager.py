"""AlertManager: rules from policy → alert episodes → grouped, deduplicated notices.

    alerts = AlertManager(store, clock, ts, policy=ctx.policy, channels={...})
    alerts.observe_event("health.anomaly", {...})    # feeds anomaly rules
    alerts.evaluate_rules()                          # transitions + planned notices
    await alerts.dispatch()                          # delivers the outbox (retries, backoff)

Lifecycle of an episode: ``pending`` (condition true, ``for`` not yet elapsed) → ``firing``
→ ``resolved``; a pending episode whose condition stops is closed as ``inactive``. Every
transition, acknowledgement and silence is persisted with who and when. Notices are planned
per group (``group_by`` labels): a new group waits ``group_wait``, later changes wait
``group_interval``, a firing alert nobody acknowledged repeats every ``repeat_interval`` and
escalates (extra receivers) after ``escalation.after_repeats`` repeats, a resolved alert that
was announced gets exactly one resolved notice. Silenced and inhibited alerts are not
announced; an alert changing state too often is announced once as flapping and then kept
quiet until it is stable. Notices go to an outbox in the same transaction that marks the
alerts notified, so a restart never re-sends and never loses one.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from typing import Any

from autonomous.core.clock import Clock
from autonomous.resources.policy.telemetry import AlertingPolicy, AlertRuleSpec
from autonomous.store.db import Store
from autonomous.store.timeseries import TimeSeriesStore
from autonomous.telemetry.alert_channels import (
    Channel,
    LogbookChannel,
    build_payload,
    expand_receivers,
)
from autonomous.telemetry.alert_outbox import Outbox
from autonomous.telemetry.alert_rules import Condition, evaluate, fingerprint
from autonomous.telemetry.alert_store import OPEN_STATES, AlertStore, matches

__all__ = ["AlertManager"]

log = logging.getLogger("atlas.telemetry.alerts")
_SEV = {"info": 0, "warning": 1, "critical": 2}


class AlertManager:
    """Evaluates rules, keeps the alert lifecycle, plans and delivers notifications."""

    def __init__(self, store: Store, clock: Clock, ts: TimeSeriesStore,
                 policy: Callable[[], dict[str, Any]],
                 channels: dict[str, Channel] | None = None) -> None:
        self.store = store
        self.clock = clock
        self.ts = ts
        self.policy = policy
        self.db = AlertStore(store)
        self.channels: dict[str, Channel] = {"logbook": LogbookChannel()}
        self.channels.update(channels or {})
        self._alerting: tuple[Any, AlertingPolicy] | None = None
        self.outbox = Outbox(store, clock, self.channels, self.alerting)

    def alerting(self) -> AlertingPolicy:
        """The alerting policy in force (re-read every call; validated again only when the
        policy section changed)."""
        raw = self.policy()["telemetry"]["alerting"]
        cached = self._alerting
        if cached is not None and cached[0] == raw:
            return cached[1]
        model = AlertingPolicy.model_validate(raw)
        self._alerting = (copy.deepcopy(raw), model)
        return model

    # -- inputs -----------------------------------------------------------------------------
    def observe_event(self, topic: str, data: dict[str, Any]) -> int:
        """Feed an event to anomaly rules; returns how many rules it matched."""
        now, n = self.clock.now(), 0
        for rule in self.alerting().rules:
            if rule.type != "anomaly" or not topic.startswith(rule.event or "\0"):
                continue
            if not all(str(data.get(k)) == v for k, v in rule.match.items()):
                continue
            labels = {k: str(data.get(k, "")) for k in rule.by}
            value = data.get("value")
            self.store.execute(
                "INSERT INTO anomaly_seen VALUES (?,?,?,?,?) ON CONFLICT(rule, fingerprint) "
                "DO UPDATE SET last_ts=excluded.last_ts, value=excluded.value",
                (rule.name, fingerprint(labels), json.dumps(labels), now,
                 value if isinstance(value, (int, float)) else None))
            n += 1
        return n

    def trigger_alert(self, name: str, labels: dict[str, str] | None = None, *,
                      severity: str = "warning", summary: str = "", value: float | None = None,
                      actor: str = "system") -> dict[str, Any]:
        """Fire an alert now (not from a rule, e.g. a healing ALERT_HUMAN); an open episode
        with the same labels is returned unchanged (deduplication)."""
        if severity not in _SEV:
            from autonomous.core.errors import Problem, ValidationFailed
            raise ValidationFailed([Problem("", 0, "severity",
                                            f"{severity!r} is not one of {', '.join(_SEV)}")])
        full = {**{str(k): str(v) for k, v in (labels or {}).items()}, "alertname": name,
                "severity": severity}
        fp, now = fingerprint(full), self.clock.now()
        existing = self.db.open_alerts().get(fp)
        if existing is not None:
            return existing
        with self.store.transaction() as conn:
            alert = self.db.create(conn, fingerprint=fp, rule=name, source="manual", labels=full,
                                   severity=severity, summary=summary, value=value, now=now,
                                   actor=actor, reason="triggered")
            self.db.transition(conn, alert, "firing", now, actor, "triggered")
        return self.db.get(alert["id"])

    def resolve_alert(self, alert_id: int, actor: str, reason: str = "resolved by hand"
                      ) -> dict[str, Any]:
        """Resolve an open episode by hand."""
        alert = self.db.get(alert_id)
        if alert["state"] in OPEN_STATES:
            with self.store.transaction() as conn:
                to = "resolved" if alert["state"] == "firing" else "inactive"
                self.db.transition(conn, alert, to, self.clock.now(), actor, reason)
        return self.db.get(alert_id)

    def acknowledge(self, alert_id: int, actor: str, comment: str = "") -> dict[str, Any]:
        """Acknowledge: repeats stop until the alert resolves."""
        return self.db.acknowledge(alert_id, actor, comment, self.clock.now())

    def add_silence(self, matchers: dict[str, str], *, duration_seconds: float, actor: str,
                    comment: str = "", starts_at: float | None = None) -> dict[str, Any]:
        """Mute notices of alerts whose labels match, for ``duration_seconds``."""
        now = self.clock.now()
        start = now if starts_at is None else starts_at
        return self.db.add_silence(matchers, start, start + duration_seconds, actor, comment,
                                   now)

    def expire_silence(self, silence_id: int, actor: str) -> dict[str, Any]:
        return self.db.expire_silence(silence_id, actor, self.clock.now())

    def silences(self, active_only: bool = False) -> list[dict[str, Any]]:
        return self.db.silences(self.clock.now() if active_only else None)

    # -- evaluation -------------------------------------------------------------------------
    def evaluate_rules(self, now: float | None = None) -> dict[str, Any]:
        """One evaluation cycle: conditions → transitions → flap state → planned notices."""
        now = self.clock.now() if now is None else now
        pol = self.alerting()
        rules = {r.name: r for r in pol.rules}
        open_rule = self.db.open_alerts(source="rule")
        anomalies = [{**dict(r), "labels": json.loads(r["labels"])}
                     for r in self.store.query("SELECT * FROM anomaly_seen")]
        conds = evaluate(pol.rules, self.ts, now, set(open_rule), anomalies)
        changed: list[str] = []
        with self.store.transaction() as conn:
            seen = set()
            for c in conds:
                seen.add(c.fingerprint)
                changed += self._step(conn, rules[c.rule], c, open_rule.get(c.fingerprint), now)
            for fp, alert in open_rule.items():
                if fp not in seen:
                    changed += self._close(conn, alert, now, "rule no longer sees this series")
        self._update_flaps(pol, now, set(changed))
        planned = self._plan(pol, now)
        states = [a["state"] for a in self.db.open_alerts().values()]
        return {"firing": states.count("firing"), "pending": states.count("pending"),
                "transitions": len(changed), "notices": planned}

    def _step(self, conn: Any, rule: AlertRuleSpec, c: Condition, alert: dict[str, Any] | None,
              now: float) -> list[str]:
        if not c.active:
            return self._close(conn, alert, now, "condition cleared") if alert else []
        if alert is None:
            alert = self.db.create(conn, fingerprint=c.fingerprint, rule=rule.name, source="rule",
                                   labels=c.labels, severity=rule.severity,
                                   summary=_summary(rule, c), value=c.value, now=now,
                                   actor="rule", reason=_why(rule, c))
        conn.execute("UPDATE alerts SET value=?, summary=? WHERE id=?",
                     (c.value, _summary(rule, c), alert["id"]))
        if alert["state"] == "pending" and now - alert["pending_since"] >= rule.for_seconds:
            self.db.transition(conn, alert, "firing", now, "rule",
                               f"{_why(rule, c)} for {rule.for_seconds:g}s")
            return [c.fingerprint]
        return []

    def _close(self, conn: Any, alert: dict[str, Any], now: float, reason: str) -> list[str]:
        to = "resolved" if alert["state"] == "firing" else "inactive"
        self.db.transition(conn, alert, to, now, "rule", reason)
        return [alert["fingerprint"]] if to == "resolved" else []

    # -- flapping ---------------------------------------------------------------------------
    def _update_flaps(self, pol: AlertingPolicy, now: float, changed: set[str]) -> None:
        since = now - pol.flapping.window_seconds
        flapping = {r["fingerprint"]: dict(r) for r in
                    self.store.query("SELECT * FROM alert_flaps WHERE flapping=1")}
        for fp in changed - set(flapping):
            if self.db.count_transitions(fp, since) > pol.flapping.max_transitions:
                self.store.execute("INSERT OR REPLACE INTO alert_flaps VALUES (?,1,?,0)",
                                   (fp, now))
                log.warning("alert %s is flapping", fp)
        for fp, row in flapping.items():
            if now - row["since"] >= pol.flapping.window_seconds and \
                    self.db.count_transitions(fp, since) == 0:
                self.store.execute("UPDATE alert_flaps SET flapping=0 WHERE fingerprint=?", (fp,))

    # -- planning ---------------------------------------------------------------------------
    def _plan(self, pol: AlertingPolicy, now: float) -> int:
        """Turn what changed into outbox rows; returns notices planned."""
        flapping = {r["fingerprint"]: r["notified"] for r in
                    self.store.query("SELECT * FROM alert_flaps WHERE flapping=1")}
        silences = self.db.silences(now)
        alerts = self.db.alerts(states=("firing",), limit=100_000) + [
            dict(a) for a in self.db.alerts(states=("resolved",), limit=100_000)
            if a["notified_at"] is not None and not a["resolved_notified"]]
        alerts.sort(key=lambda a: a["id"])  # oldest first: notices keep the order of events
        firing = [a for a in alerts if a["state"] == "firing"]
        items: dict[str, dict[str, list[dict[str, Any]]]] = {}
        flap_once: set[str] = set()
        for a in alerts:
            kind = self._kind(a, pol, now, flapping, silences, firing)
            if kind == "flapping":
                if a["fingerprint"] in flap_once:
                    continue
                flap_once.add(a["fingerprint"])
            if kind:
                items.setdefault(_group_key(pol, a["labels"]), {}).setdefault(kind, []).append(a)
        planned = 0
        with self.store.transaction() as conn:
            for key, kinds in items.items():
                planned += self._flush_group(conn, pol, key, kinds, now)
            self._drop_idle_groups(conn, pol, {_group_key(pol, a["labels"]) for a in alerts})
        return planned

    def _kind(self, a: dict[str, Any], pol: AlertingPolicy, now: float,
              flapping: dict[str, int], silences: list[dict[str, Any]],
              firing: list[dict[str, Any]]) -> str | None:
        fp = a["fingerprint"]
        if fp in flapping:
            return "flapping" if not flapping[fp] else None
        if a["state"] == "resolved":
            return "resolved"
        if any(matches(a["labels"], s["matchers"]) for s in silences):
            return None
        if _inhibited(a, pol, firing):
            return None
        if a["notified_at"] is None:
            return "firing"
        if not a["acked_by"] and now - a["notified_at"] >= pol.repeat_interval_seconds:
            return "repeat"
        return None

    def _flush_group(self, conn: Any, pol: AlertingPolicy, key: str,
                     kinds: dict[str, list[dict[str, Any]]], now: float) -> int:
        group = conn.execute("SELECT * FROM alert_groups WHERE group_key=?", (key,)).fetchone()
        if group is None:
            conn.execute("INSERT INTO alert_groups VALUES (?,?,?,NULL)", (key, key, now))
            group = {"created_at": now, "last_flush": None}
        due = (group["created_at"] + pol.group_wait_seconds if group["last_flush"] is None
               else group["last_flush"] + pol.group_interval_seconds)
        planned = 0
        for kind in ("flapping", "repeat"):  # not held back by the group timers
            for a in kinds.get(kind, []):
                planned += self._enqueue(conn, pol, key, kind, [a], now)
        if now >= due and (kinds.get("firing") or kinds.get("resolved")):
            batch = kinds.get("firing", []) + kinds.get("resolved", [])
            planned += self._enqueue(conn, pol, key, "firing" if kinds.get("firing")
                                     else "resolved", batch, now)
            conn.execute("UPDATE alert_groups SET last_flush=? WHERE group_key=?", (now, key))
        return planned

    def _enqueue(self, conn: Any, pol: AlertingPolicy, key: str, kind: str,
                 alerts: list[dict[str, Any]], now: float) -> int:
        top = max(alerts, key=lambda a: _SEV[a["severity"]])
        repeat = top["notify_count"] if kind == "repeat" else 0
        escalated = kind == "repeat" and repeat >= pol.escalation.after_repeats
        names = list(pol.routes[top["severity"]]) + (pol.escalation.add_receivers
                                                     if escalated else [])
        labels = {k: top["labels"].get(k, "") for k in pol.group_by}
        for ch in expand_receivers(names, self.channels):
            payload = build_payload(receiver=ch.name, group_key=key, group_labels=labels,
                                    alerts=alerts, kind=kind, repeat=repeat, escalated=escalated)
            conn.execute("INSERT INTO alert_notifications(group_key, kind, receiver, alert_ids, "
                         "payload, created_at, state, next_attempt_at) VALUES "
                         "(?,?,?,?,?,?,'pending',?)",
                         (key, kind, ch.name, json.dumps([a["id"] for a in alerts]),
                          json.dumps(payload), now, now))
        for a in alerts:
            if kind == "resolved" or a["state"] == "resolved":
                conn.execute("UPDATE alerts SET resolved_notified=1 WHERE id=?", (a["id"],))
            elif kind == "flapping":
                conn.execute("UPDATE alert_flaps SET notified=1 WHERE fingerprint=?",
                             (a["fingerprint"],))
            else:
                conn.execute("UPDATE alerts SET notified_at=?, notify_count=notify_count+1 "
                             "WHERE id=?", (now, a["id"]))
        return 1

    @staticmethod
    def _drop_idle_groups(conn: Any, pol: AlertingPolicy, live: set[str]) -> None:
        for row in conn.execute("SELECT group_key FROM alert_groups").fetchall():
            if row[0] not in live:
                conn.execute("DELETE FROM alert_groups WHERE group_key=?", (row[0],))

    # -- delivery (the outbox) ---------------------------------------------------------------
    async def dispatch(self, now: float | None = None) -> dict[str, int]:
        """Deliver the due notices (see :meth:`Outbox.dispatch`)."""
        return await self.outbox.dispatch(now)

    def next_due(self) -> float | None:
        """When the next notice is due (for the dispatcher's sleep)."""
        return self.outbox.next_due()

    def notifications(self, limit: int = 200) -> list[dict[str, Any]]:
        """The newest notices with their delivery state."""
        return self.outbox.notifications(limit)

    # -- views / housekeeping -----------------------------------------------------------------
    def active_alerts(self) -> list[dict[str, Any]]:
        """Open episodes with their silenced / inhibited / flapping flags."""
        now, pol = self.clock.now(), self.alerting()
        silences = self.db.silences(now)
        flapping = {r[0] for r in self.store.query(
            "SELECT fingerprint FROM alert_flaps WHERE flapping=1")}
        alerts = self.db.alerts(states=OPEN_STATES, limit=10_000)
        firing = [a for a in alerts if a["state"] == "firing"]
        return [{**a, "silenced": any(matches(a["labels"], s["matchers"]) for s in silences),
                 "inhibited": _inhibited(a, pol, firing),
                 "flapping": a["fingerprint"] in flapping} for a in alerts]

    def history(self, limit: int = 200, since: float | None = None) -> list[dict[str, Any]]:
        return self.db.alerts(limit=limit, since=since)

    def apply_retention(self, keep_seconds: float, now: float | None = None) -> int:
        """Delete closed episodes, their transitions and delivered notices past retention."""
        cutoff = (self.clock.now() if now is None else now) - keep_seconds
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM alert_transitions WHERE alert_id IN (SELECT id FROM alerts "
                         "WHERE state IN ('resolved','inactive') AND updated_at < ?)", (cutoff,))
            n = conn.execute("DELETE FROM alerts WHERE state IN ('resolved','inactive') AND "
                             "updated_at < ?", (cutoff,)).rowcount
            conn.execute("DELETE FROM alert_notifications WHERE state != 'pending' AND "
                         "created_at < ?", (cutoff,))
            conn.execute("DELETE FROM alert_silences WHERE ends_at < ?", (cutoff,))
        return n


def _group_key(pol: AlertingPolicy, labels: dict[str, str]) -> str:
    return json.dumps({k: labels.get(k, "") for k in pol.group_by}, sort_keys=True)


def _inhibited(a: dict[str, Any], pol: AlertingPolicy, firing: list[dict[str, Any]]) -> bool:
    for rule in pol.inhibit_rules:
        if not matches(a["labels"], rule.target):
            continue
        for src in firing:
            if src["id"] != a["id"] and matches(src["labels"], rule.source) and all(
                    src["labels"].get(k) == a["labels"].get(k) for k in rule.equal):
                return True
    return False


def _why(rule: AlertRuleSpec, c: Condition) -> str:
    if rule.type in ("threshold", "rate"):
        return f"{rule.metric} {rule.type} {c.value:.4g} {rule.op} {rule.value:g}"
    return f"{rule.type} rule {rule.name}"


def _summary(rule: AlertRuleSpec, c: Condition) -> str:
    text = rule.summary or f"{rule.name} {_why(rule, c)}"
    for k, v in c.labels.items():
        text = text.replace(f"{{labels.{k}}}", v)
    return text.replace("{value}", "n/a" if c.value is None else f"{c.value:.4g}")

