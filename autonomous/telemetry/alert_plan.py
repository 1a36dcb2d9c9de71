"""Alerting decided in a pure function: ``plan(pol, view)`` → the steps to take.

The alert manager reads everything a decision needs into one :class:`AlertView` (rule
conditions, open episodes, flapping state, silences, notification groups, each service's
health figures and the time, ``now``, as an observed value). :func:`plan_transitions` and
:func:`plan_notices` turn it into :class:`AlertStep` s — open (pending, or firing at once when
the rule has no ``for``), fire, close, resolve a human alert whose service recovered by any
path, mark a flapping alert steady again, open / forget a notification group, send (notify;
``escalated`` when the repeat passed ``escalation.after_repeats``) — with the evidence behind
each. No I/O, no clock: the same view gives the same steps. The telemetry controller runs them
through the Executor (:mod:`controllers.telemetry`); ``AlertManager.evaluate_rules`` runs the
same plan locally (tests, tools).

Notices are planned from the states in the view: an alert fired in one pass is announced by
the next (the controller asks for that pass at once).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autonomous.resources.policy.telemetry import AlertingPolicy, AlertRuleSpec
from autonomous.telemetry.alert_rules import Condition
from autonomous.telemetry.alert_store import matches

__all__ = ["AlertStep", "AlertView", "group_key", "inhibited", "plan", "plan_notices",
           "plan_transitions", "recovered", "summary", "why"]

SEV = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class AlertView:
    """Everything one alerting decision reads, read at ``now``."""

    now: float
    conditions: tuple[Condition, ...] = ()
    open_rule: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # fp -> episode
    open_manual: tuple[dict[str, Any], ...] = ()
    notifiable: tuple[dict[str, Any], ...] = ()  # firing + resolved and not yet announced
    flapping: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # fp -> flap row
    silences: tuple[dict[str, Any], ...] = ()
    groups: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # key -> group row
    services: Mapping[str, Mapping[str, Any]] | None = None  # health figures; None: unknown
    error_rate_threshold: float | None = None


@dataclass(frozen=True)
class AlertStep:
    """One planned step: ``kind`` ``alert`` (an episode's lifecycle) or ``notify``."""

    kind: str
    op: str
    resource: str
    reason: str
    params: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)


def plan(pol: AlertingPolicy, view: AlertView) -> list[AlertStep]:
    """Transitions then notices (see the module docstring)."""
    return plan_transitions(pol, view) + plan_notices(pol, view)


# -- episodes -------------------------------------------------------------------------------
def plan_transitions(pol: AlertingPolicy, view: AlertView) -> list[AlertStep]:
    rules = {r.name: r for r in pol.rules}
    out: list[AlertStep] = []
    seen: set[str] = set()
    for c in view.conditions:
        seen.add(c.fingerprint)
        rule = rules[c.rule]
        alert = view.open_rule.get(c.fingerprint)
        ev = {"value": c.value, "labels": dict(c.labels), **c.detail}
        res = f"Alert/{c.fingerprint}"
        if not c.active:
            if alert is not None:
                out.append(_close(alert, "condition cleared", ev))
            continue
        if alert is None:
            fire = rule.for_seconds <= 0
            out.append(AlertStep("alert", "open", res,
                                 f"{rule.name}: {why(rule, c)}" + (" (no for: firing)"
                                                                  if fire else ""),
                                 {"fingerprint": c.fingerprint, "rule": rule.name,
                                  "labels": dict(c.labels), "severity": rule.severity,
                                  "summary": summary(rule, c), "value": c.value,
                                  "why": why(rule, c), "fire": fire}, ev))
        elif alert["state"] == "pending" and \
                view.now - alert["pending_since"] >= rule.for_seconds:
            out.append(AlertStep("alert", "fire", res,
                                 f"{rule.name}: {why(rule, c)} for {rule.for_seconds:g}s",
                                 {"id": alert["id"], "fingerprint": c.fingerprint,
                                  "why": f"{why(rule, c)} for {rule.for_seconds:g}s"},
                                 {**ev, "pending_since": alert["pending_since"]}))
    for fp, alert in sorted(view.open_rule.items()):
        if fp not in seen:
            out.append(_close(alert, "rule no longer sees this series", {}))
    out += _recoveries(view)
    for fp, row in sorted(view.flapping.items()):
        if view.now - row["since"] >= pol.flapping.window_seconds and not row["transitions"]:
            out.append(AlertStep("alert", "steady", f"Alert/{fp}",
                                 f"no transition for {pol.flapping.window_seconds:g}s: "
                                 "no longer flapping", {"fingerprint": fp},
                                 {"flapping_since": row["since"]}))
    return out


def _close(alert: dict[str, Any], reason: str, ev: dict[str, Any]) -> AlertStep:
    to = "resolved" if alert["state"] == "firing" else "inactive"
    return AlertStep("alert", "close", f"Alert/{alert['fingerprint']}",
                     f"{alert['rule']}: {reason} ({alert['state']} -> {to})",
                     {"id": alert["id"], "fingerprint": alert["fingerprint"], "why": reason},
                     ev)


def recovered(h: Mapping[str, Any], error_rate_threshold: float | None
              ) -> tuple[bool, str]:
    """Whether a service's health figures say it is fine now, and why (or why not)."""
    if h.get("live") is not True or h.get("ready") is not True:
        return False, f"live={h.get('live')} ready={h.get('ready')}"
    rate = h.get("error_rate")
    if rate is not None and error_rate_threshold is not None and rate > error_rate_threshold:
        return False, f"error rate {rate:.0%} > {error_rate_threshold:.0%}"
    down = sorted(n for n, d in (h.get("dependencies") or {}).items() if not d.get("online"))
    if down:
        return False, f"dependencies down: {', '.join(down)}"
    return True, "live, ready, errors under the threshold, dependencies up"


def _recoveries(view: AlertView) -> list[AlertStep]:
    """A human alert about a service resolves once the service is fine again, whoever fixed
    it (supervisor restart, a human, a new generation): probed fine after the alert opened."""
    if view.services is None:
        return []
    out = []
    for a in sorted(view.open_manual, key=lambda a: a["id"]):
        svc = a["labels"].get("service")
        h = view.services.get(svc) if svc else None
        if h is None:
            continue
        ok, detail = recovered(h, view.error_rate_threshold)
        probe_ts = (h.get("last_probe") or {}).get("ts")
        if not ok or probe_ts is None or probe_ts <= a["pending_since"]:
            continue
        out.append(AlertStep("alert", "resolve", f"Alert/{a['fingerprint']}",
                             f"{svc} recovered: {detail}",
                             {"id": a["id"], "fingerprint": a["fingerprint"],
                              "why": f"{svc} recovered ({detail}; probed at {probe_ts:.3f})"},
                             {"service": svc, "live": h.get("live"), "ready": h.get("ready"),
                              "error_rate": h.get("error_rate"), "last_probe": h.get(
                                  "last_probe"), "alert_opened_at": a["pending_since"]}))
    return out


# -- notices ------------------------------------------------------------------------------
def plan_notices(pol: AlertingPolicy, view: AlertView) -> list[AlertStep]:
    """Group notices (group_wait / group_interval), repeats, escalation, flapping notices."""
    alerts = sorted(view.notifiable, key=lambda a: a["id"])  # oldest first: order of events
    firing = [a for a in alerts if a["state"] == "firing"]
    items: dict[str, dict[str, list[dict[str, Any]]]] = {}
    flap_once: set[str] = set()
    for a in alerts:
        kind = _kind(a, pol, view, firing)
        if kind == "flapping":
            if a["fingerprint"] in flap_once:
                continue
            flap_once.add(a["fingerprint"])
        if kind:
            items.setdefault(group_key(pol, a["labels"]), {}).setdefault(kind, []).append(a)
    out: list[AlertStep] = []
    for key, kinds in items.items():
        out += _group(pol, view, key, kinds)
    live = {group_key(pol, a["labels"]) for a in alerts}
    for key in sorted(view.groups):
        if key not in live:
            out.append(AlertStep("notify", "forget_group", f"AlertGroup/{key}",
                                 "no alert left in the group", {"group_key": key}))
    return out


def _kind(a: dict[str, Any], pol: AlertingPolicy, view: AlertView,
          firing: list[dict[str, Any]]) -> str | None:
    fp = a["fingerprint"]
    if fp in view.flapping:
        return "flapping" if not view.flapping[fp]["notified"] else None
    if a["state"] == "resolved":
        return "resolved"
    if any(matches(a["labels"], s["matchers"]) for s in view.silences):
        return None
    if inhibited(a, pol, firing):
        return None
    if a["notified_at"] is None:
        return "firing"
    if not a["acked_by"] and view.now - a["notified_at"] >= pol.repeat_interval_seconds:
        return "repeat"
    return None


def _group(pol: AlertingPolicy, view: AlertView, key: str,
           kinds: dict[str, list[dict[str, Any]]]) -> list[AlertStep]:
    out: list[AlertStep] = []
    group = view.groups.get(key)
    if group is None:
        out.append(AlertStep("notify", "open_group", f"AlertGroup/{key}",
                             f"first alert in the group; notices wait "
                             f"{pol.group_wait_seconds:g}s", {"group_key": key,
                                                               "created_at": view.now}))
        group = {"created_at": view.now, "last_flush": None}
    due = (group["created_at"] + pol.group_wait_seconds if group["last_flush"] is None
           else group["last_flush"] + pol.group_interval_seconds)
    for kind in ("flapping", "repeat"):  # not held back by the group timers
        for a in kinds.get(kind, []):
            out.append(_send(pol, key, kind, [a], flush=False))
    if view.now >= due and (kinds.get("firing") or kinds.get("resolved")):
        batch = kinds.get("firing", []) + kinds.get("resolved", [])
        out.append(_send(pol, key, "firing" if kinds.get("firing") else "resolved", batch,
                         flush=True))
    return out


def _send(pol: AlertingPolicy, key: str, kind: str, alerts: list[dict[str, Any]], *,
          flush: bool) -> AlertStep:
    top = max(alerts, key=lambda a: SEV[a["severity"]])
    repeat = top["notify_count"] if kind == "repeat" else 0
    escalated = kind == "repeat" and repeat >= pol.escalation.after_repeats
    receivers = list(pol.routes[top["severity"]]) + (list(pol.escalation.add_receivers)
                                                     if escalated else [])
    names = ", ".join(a["labels"].get("alertname", a["rule"]) for a in alerts)
    verb = "escalate" if escalated else "notify"
    return AlertStep("notify", "send", f"AlertGroup/{key}",
                     f"{verb} {kind}: {names} -> {', '.join(receivers)}",
                     {"group_key": key, "kind": kind, "alert_ids": [a["id"] for a in alerts],
                      "repeat": repeat, "escalated": escalated, "receivers": receivers,
                      "flush": flush},
                     {"alerts": [{"id": a["id"], "state": a["state"], "severity": a["severity"],
                                  "notify_count": a["notify_count"]} for a in alerts]})


# -- shared helpers ---------------------------------------------------------------------------
def group_key(pol: AlertingPolicy, labels: dict[str, str]) -> str:
    return json.dumps({k: labels.get(k, "") for k in pol.group_by}, sort_keys=True)


def inhibited(a: dict[str, Any], pol: AlertingPolicy, firing: list[dict[str, Any]]) -> bool:
    for rule in pol.inhibit_rules:
        if not matches(a["labels"], rule.target):
            continue
        for src in firing:
            if src["id"] != a["id"] and matches(src["labels"], rule.source) and all(
                    src["labels"].get(k) == a["labels"].get(k) for k in rule.equal):
                return True
    return False


def why(rule: AlertRuleSpec, c: Condition) -> str:
    if rule.type in ("threshold", "rate"):
        value = "n/a" if c.value is None else f"{c.value:.4g}"
        return f"{rule.metric} {rule.type} {value} {rule.op} {rule.value:g}"
    return f"{rule.type} rule {rule.name}"


def summary(rule: AlertRuleSpec, c: Condition) -> str:
    text = rule.summary or f"{rule.name} {why(rule, c)}"
    for k, v in c.labels.items():
        text = text.replace(f"{{labels.{k}}}", v)
    return text.replace("{value}", "n/a" if c.value is None else f"{c.value:.4g}")
