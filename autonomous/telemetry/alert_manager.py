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
from autonomous.resources.policy.telemetry import AlertingPolicy
from autonomous.store.db import Store
from autonomous.store.timeseries import TimeSeriesStore
from autonomous.telemetry.alert_channels import (
    Channel,
    LogbookChannel,
    build_payload,
    expand_receivers,
)
from autonomous.telemetry.alert_outbox import Outbox
from autonomous.telemetry.alert_plan import (
    SEV,
    AlertView,
    inhibited,
    plan_notices,
    plan_transitions,
    summary,
)
from autonomous.telemetry.alert_rules import evaluate, fingerprint
from autonomous.telemetry.alert_store import OPEN_STATES, AlertStore, matches

__all__ = ["AlertManager"]

log = logging.getLogger("atlas.telemetry.alerts")


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
            if rule.type != "anomaly" or not all(str(data.get(k)) == v
                                                 for k, v in rule.match.items()):
                continue
            labels = {k: str(data.get(k, "")) for k in rule.by}
            if rule.clear_event and topic.startswith(rule.clear_event):
                self.store.execute("DELETE FROM anomaly_seen WHERE rule=? AND fingerprint=?",
                                   (rule.name, fingerprint(labels)))
                n += 1
                continue
            if not topic.startswith(rule.event or "\0"):
                continue
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
        with the same labels — or carrying all of them, like the one self-healing stored
        itself with its incident label before publishing ``alert.human`` — is returned
        unchanged (deduplication)."""
        if severity not in SEV:
            from autonomous.core.errors import Problem, ValidationFailed
            raise ValidationFailed([Problem("", 0, "severity",
                                            f"{severity!r} is not one of {', '.join(SEV)}")])
        full = {**{str(k): str(v) for k, v in (labels or {}).items()}, "alertname": name,
                "severity": severity}
        fp, now = fingerprint(full), self.clock.now()
        opened = self.db.open_alerts()
        existing = opened.get(fp) or next(
            (a for a in opened.values() if a["rule"] == name and matches(a["labels"], full)),
            None)
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

    # -- evaluation: observe (view) -> plan (pure, alert_plan) -> apply ---------------------
    def view(self, now: float | None = None,
             services: dict[str, dict[str, Any]] | None = None,
             error_rate_threshold: float | None = None) -> AlertView:
        """Everything the next decision reads (rule conditions included), at ``now``.
        ``services``: each service's health figures (the health monitor's), for resolving
        human alerts on recovery; ``None`` when no health monitor runs."""
        now = self.clock.now() if now is None else now
        pol = self.alerting()
        open_all = self.db.open_alerts()
        open_rule = {fp: a for fp, a in open_all.items() if a["source"] == "rule"}
        anomalies = [{**dict(r), "labels": json.loads(r["labels"])}
                     for r in self.store.query("SELECT * FROM anomaly_seen")]
        conds = evaluate(pol.rules, self.ts, now, set(open_rule), anomalies)
        since = now - pol.flapping.window_seconds
        flapping = {r["fingerprint"]: {**dict(r), "transitions": self.db.count_transitions(
            r["fingerprint"], since)} for r in
            self.store.query("SELECT * FROM alert_flaps WHERE flapping=1")}
        notifiable = self.db.alerts(states=("firing",), limit=pol.scan_limit) + [
            a for a in self.db.alerts(states=("resolved",), limit=pol.scan_limit)
            if a["notified_at"] is not None and not a["resolved_notified"]]
        groups = {r["group_key"]: dict(r) for r in
                  self.store.query("SELECT * FROM alert_groups")}
        return AlertView(now=now, conditions=tuple(conds), open_rule=open_rule,
                         open_manual=tuple(a for a in open_all.values()
                                           if a["source"] == "manual"),
                         notifiable=tuple(notifiable), flapping=flapping,
                         silences=tuple(self.db.silences(now)), groups=groups,
                         services=services, error_rate_threshold=error_rate_threshold)

    def refresh_values(self, view: AlertView) -> None:
        """Status of the open episodes: each one's latest value and summary (bookkeeping)."""
        rules = {r.name: r for r in self.alerting().rules}
        with self.store.transaction() as conn:
            for c in view.conditions:
                alert = view.open_rule.get(c.fingerprint)
                if alert is not None and c.active:
                    conn.execute("UPDATE alerts SET value=?, summary=? WHERE id=?",
                                 (c.value, summary(rules[c.rule], c), alert["id"]))

    def evaluate_rules(self, now: float | None = None,
                       services: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        """One local evaluation (no Executor): transitions, then the notices they lead to."""
        pol = self.alerting()
        v = self.view(now, services)
        steps = plan_transitions(pol, v)
        for s in steps:
            self.apply(s.op, s.params, v.now)
        self.refresh_values(v)
        v = self.view(now, services)
        notices = plan_notices(pol, v)
        for s in notices:
            self.apply(s.op, s.params, v.now)
        states = [a["state"] for a in self.db.open_alerts().values()]
        return {"firing": states.count("firing"), "pending": states.count("pending"),
                "transitions": sum(s.op in ("fire", "close", "resolve") or
                                   bool(s.params.get("fire")) for s in steps),
                "notices": sum(s.op == "send" for s in notices)}

    def apply(self, op: str, params: dict[str, Any], now: float | None = None) -> str:
        """Carry out one planned step (see :mod:`alert_plan`); what was done."""
        now = self.clock.now() if now is None else now
        if op in ("open_group", "forget_group", "send"):
            return self._apply_notice(op, params, now)
        if op == "steady":
            self.store.execute("UPDATE alert_flaps SET flapping=0 WHERE fingerprint=?",
                               (params["fingerprint"],))
            return "no longer flapping"
        with self.store.transaction() as conn:
            if op == "open":
                existing = self.db.open_alerts().get(params["fingerprint"])
                if existing is not None:
                    return f"alert {existing['id']} is already {existing['state']}"
                alert = self.db.create(conn, fingerprint=params["fingerprint"],
                                       rule=params["rule"], source="rule",
                                       labels=params["labels"], severity=params["severity"],
                                       summary=params["summary"], value=params["value"],
                                       now=now, actor="rule", reason=params["why"])
                if params.get("fire"):
                    self.db.transition(conn, alert, "firing", now, "rule", params["why"])
                done = f"alert {alert['id']} {alert['state']}"
            else:
                alert = self.db.get(int(params["id"]))
                if alert["state"] not in OPEN_STATES:
                    return f"alert {alert['id']} is already {alert['state']}"
                to = ("firing" if op == "fire" else
                      "resolved" if alert["state"] == "firing" else "inactive")
                actor = "telemetry" if op == "resolve" else "rule"
                self.db.transition(conn, alert, to, now, actor, params["why"])
                done = f"alert {alert['id']} {to}"
        if alert["state"] in ("firing", "resolved"):
            self._flap_check(alert["fingerprint"], now)
        return done

    def _flap_check(self, fp: str, now: float) -> None:
        pol = self.alerting()
        if self.db.count_transitions(fp, now - pol.flapping.window_seconds) > \
                pol.flapping.max_transitions and self.store.query_one(
                    "SELECT 1 FROM alert_flaps WHERE fingerprint=? AND flapping=1", (fp,)) is None:
            self.store.execute("INSERT OR REPLACE INTO alert_flaps VALUES (?,1,?,0)", (fp, now))
            log.warning("alert %s is flapping", fp)

    def _apply_notice(self, op: str, params: dict[str, Any], now: float) -> str:
        key = params["group_key"]
        with self.store.transaction() as conn:
            if op == "open_group":
                conn.execute("INSERT OR IGNORE INTO alert_groups VALUES (?,?,?,NULL)",
                             (key, key, params["created_at"]))
                return "group opened"
            if op == "forget_group":
                conn.execute("DELETE FROM alert_groups WHERE group_key=?", (key,))
                return "group forgotten"
            alerts = [self.db.get(int(i)) for i in params["alert_ids"]]
            n = self._enqueue(conn, params, alerts, now)
            if params.get("flush"):
                conn.execute("UPDATE alert_groups SET last_flush=? WHERE group_key=?",
                             (now, key))
        return f"{params['kind']} notice to {n} receiver(s)"

    def _enqueue(self, conn: Any, params: dict[str, Any], alerts: list[dict[str, Any]],
                 now: float) -> int:
        pol, key, kind = self.alerting(), params["group_key"], params["kind"]
        top = max(alerts, key=lambda a: SEV[a["severity"]])
        labels = {k: top["labels"].get(k, "") for k in pol.group_by}
        sent = 0
        for ch in expand_receivers(list(params["receivers"]), self.channels):
            payload = build_payload(receiver=ch.name, group_key=key, group_labels=labels,
                                    alerts=alerts, kind=kind, repeat=params["repeat"],
                                    escalated=params["escalated"])
            conn.execute("INSERT INTO alert_notifications(group_key, kind, receiver, alert_ids, "
                         "payload, created_at, state, next_attempt_at) VALUES "
                         "(?,?,?,?,?,?,'pending',?)",
                         (key, kind, ch.name, json.dumps([a["id"] for a in alerts]),
                          json.dumps(payload), now, now))
            sent += 1
        for a in alerts:
            if kind == "resolved" or a["state"] == "resolved":
                conn.execute("UPDATE alerts SET resolved_notified=1 WHERE id=?", (a["id"],))
            elif kind == "flapping":
                conn.execute("UPDATE alert_flaps SET notified=1 WHERE fingerprint=?",
                             (a["fingerprint"],))
            else:
                conn.execute("UPDATE alerts SET notified_at=?, notify_count=notify_count+1 "
                             "WHERE id=?", (now, a["id"]))
        return sent

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
        alerts = self.db.alerts(states=OPEN_STATES, limit=pol.scan_limit)
        firing = [a for a in alerts if a["state"] == "firing"]
        return [{**a, "silenced": any(matches(a["labels"], s["matchers"]) for s in silences),
                 "inhibited": inhibited(a, pol, firing),
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
