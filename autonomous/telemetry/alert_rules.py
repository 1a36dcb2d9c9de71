"""Alert rule evaluation: threshold, rate of change, anomaly and compound rules.

``evaluate(rules, ts, now, open_fps, anomalies)`` returns one :class:`Condition` per alert
instance a rule can see: its labels (``alertname``, ``severity``, the rule's labels and the
``by`` labels), its fingerprint, the observed value and whether the condition is active.
Hysteresis: an instance raises when the value crosses the raise level and, once open, stays
active until the value crosses the clear level. The ``for`` duration and everything after it
belong to the alert manager.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from autonomous.store.timeseries import Sample, TimeSeriesStore

__all__ = ["Condition", "alert_labels", "evaluate", "fingerprint"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def fingerprint(labels: dict[str, str]) -> str:
    """Stable identity of an alert instance: a hash of its sorted labels."""
    blob = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def alert_labels(rule: Any, by_labels: dict[str, str]) -> dict[str, str]:
    """The labels of one instance of ``rule``."""
    return {**{str(k): str(v) for k, v in by_labels.items()}, **rule.labels,
            "alertname": rule.name, "severity": rule.severity}


@dataclass(frozen=True)
class Condition:
    rule: str
    labels: dict[str, str]
    fingerprint: str
    value: float | None
    active: bool
    detail: dict[str, Any] = field(default_factory=dict)


def evaluate(rules: Sequence[Any], ts: TimeSeriesStore, now: float, open_fps: set[str],
             anomalies: Iterable[dict[str, Any]]) -> list[Condition]:
    """Conditions of every rule; compound rules see their children's results."""
    seen = list(anomalies)
    by_rule: dict[str, list[Condition]] = {}
    for rule in rules:
        if rule.type in ("threshold", "rate"):
            by_rule[rule.name] = _metric_rule(rule, ts, now, open_fps)
        elif rule.type == "anomaly":
            by_rule[rule.name] = _anomaly_rule(rule, now, seen)
    for rule in rules:
        if rule.type == "compound":
            by_rule[rule.name] = _compound_rule(rule, by_rule)
    return [c for rule in rules for c in by_rule.get(rule.name, [])]


def _groups(rule: Any, ts: TimeSeriesStore) -> dict[tuple[tuple[str, str], ...], list[int]]:
    groups: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for sid, labels in ts.match(rule.metric, rule.match):
        keys = rule.by or sorted(labels)
        key = tuple((k, labels.get(k, "")) for k in keys)
        groups.setdefault(key, []).append(sid)
    return groups


def _metric_rule(rule: Any, ts: TimeSeriesStore, now: float, open_fps: set[str]
                 ) -> list[Condition]:
    out = []
    for key, ids in _groups(rule, ts).items():
        labels = alert_labels(rule, dict(key))
        fp = fingerprint(labels)
        samples = ts.query_ids(ids, now - rule.window_seconds, now, "raw")
        value = _reduce(rule, samples)
        if value is None:
            out.append(Condition(rule.name, labels, fp, None, False, {"reason": "no data"}))
            continue
        out.append(Condition(rule.name, labels, fp, value, _active(rule, value, fp in open_fps),
                             {"points": len(samples)}))
    return out


def _reduce(rule: Any, samples: list[Sample]) -> float | None:
    if not samples:
        return None
    if rule.type == "rate":
        if len(samples) < 2 or samples[-1].ts <= samples[0].ts:
            return None
        return (samples[-1].value - samples[0].value) / (samples[-1].ts - samples[0].ts)
    values = [s.value for s in samples]
    return {"last": values[-1], "avg": sum(values) / len(values), "min": min(values),
            "max": max(values)}[rule.reduce]


def _active(rule: Any, value: float, was_active: bool) -> bool:
    """Raise at ``value``; once active, stay until the value passes ``clear`` (hysteresis)."""
    raising = _OPS[rule.op](value, rule.value)
    if raising or not was_active or rule.clear is None:
        return raising
    if rule.op in (">", ">="):
        return value >= rule.clear
    return value <= rule.clear


def _anomaly_rule(rule: Any, now: float, seen: list[dict[str, Any]]) -> list[Condition]:
    out = []
    for row in seen:
        if row["rule"] != rule.name:
            continue
        labels = alert_labels(rule, row["labels"])
        age = now - row["last_ts"]
        out.append(Condition(rule.name, labels, fingerprint(labels), row.get("value"),
                             age <= rule.hold_seconds, {"last_event_age_s": round(age, 3)}))
    return out


def _compound_rule(rule: Any, by_rule: dict[str, list[Condition]]) -> list[Condition]:
    keyed: dict[tuple[str, ...], dict[str, bool]] = {}
    for child in rule.rules:
        for c in by_rule.get(child, []):
            key = tuple(c.labels.get(k, "") for k in rule.by)
            keyed.setdefault(key, {})
            keyed[key][child] = keyed[key].get(child, False) or c.active
    out = []
    for key, states in keyed.items():
        flags = [states.get(child, False) for child in rule.rules]
        active = all(flags) if rule.combine == "and" else any(flags)
        labels = alert_labels(rule, dict(zip(rule.by, key)))
        out.append(Condition(rule.name, labels, fingerprint(labels), None, active,
                             {"children": states}))
    return out
