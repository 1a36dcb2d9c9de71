"""Telemetry policy: alert rules, grouping, repeats, escalation, inhibition, flap detection,
notification retry, and trace analysis. Every number the alert manager uses lives here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from autonomous.resources.base import Strict

__all__ = [
    "SECTIONS",
    "SEVERITIES",
    "AlertRuleSpec",
    "AlertingPolicy",
    "BackoffPolicy",
    "EscalationPolicy",
    "FlapPolicy",
    "InhibitRule",
    "TelemetryPolicy",
    "TracingPolicy",
]

SEVERITIES = ("info", "warning", "critical")
Op = Literal[">", ">=", "<", "<="]


class AlertRuleSpec(Strict):
    """One alert rule. ``type`` picks which fields apply (named in each description)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="alertname label")
    type: Literal["threshold", "rate", "anomaly", "compound"]
    severity: Literal["info", "warning", "critical"]
    for_seconds: float = Field(ge=0, description="Condition must hold this long to fire")
    labels: dict[str, str] = Field(default_factory=dict, description="Added to every alert")
    summary: str = Field("", description="Annotation; {labels.x} and {value} are filled in")
    metric: str | None = Field(None, description="threshold/rate: metric name")
    match: dict[str, str] = Field(default_factory=dict,
                                  description="threshold/rate: series label filter; "
                                  "anomaly: event fields that must equal these values")
    by: list[str] = Field(default_factory=list, description="Labels giving one alert each; "
                          "empty: every series label (threshold/rate), none (compound)")
    op: Op | None = Field(None, description="threshold/rate: comparison that raises")
    value: float | None = Field(None, description="threshold/rate: raise level")
    clear: float | None = Field(None, description="threshold/rate: clear level (hysteresis); "
                                "null: the raise level")
    window_seconds: float | None = Field(None, gt=0, description="threshold/rate: data window")
    reduce: Literal["last", "avg", "min", "max"] = Field(
        "last", description="threshold: how the window becomes one value")
    event: str | None = Field(None, description="anomaly: event topic prefix, e.g. 'health.'")
    hold_seconds: float | None = Field(None, gt=0, description="anomaly: active this long "
                                       "after the last matching event")
    clear_event: str | None = Field(None, description="anomaly: event topic prefix that ends "
                                    "the condition at once when its fields match ``match`` "
                                    "and its ``by`` labels, e.g. 'health.finding_resolved'")
    combine: Literal["and", "or"] | None = Field(None, description="compound: how rules combine")
    rules: list[str] = Field(default_factory=list, description="compound: rule names")

    @model_validator(mode="after")
    def _fields_for_type(self) -> AlertRuleSpec:
        need = {"threshold": ("metric", "op", "value", "window_seconds"),
                "rate": ("metric", "op", "value", "window_seconds"),
                "anomaly": ("event", "hold_seconds"), "compound": ("combine",)}[self.type]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"rule {self.name!r} of type {self.type!r} needs {missing}")
        if self.type == "compound" and len(self.rules) < 2:
            raise ValueError(f"compound rule {self.name!r} needs at least two 'rules'")
        return self


class InhibitRule(Strict):
    source: dict[str, str] = Field(description="Labels of a firing alert that inhibits")
    target: dict[str, str] = Field(description="Labels of the alerts it mutes")
    equal: list[str] = Field(description="Labels that must be equal in source and target")


class FlapPolicy(Strict):
    window_seconds: float = Field(gt=0, description="Transitions are counted over this window")
    max_transitions: int = Field(ge=2, description="More than this in the window is flapping")


class BackoffPolicy(Strict):
    initial_seconds: float = Field(gt=0)
    factor: float = Field(ge=1)
    max_seconds: float = Field(gt=0)
    jitter: float = Field(ge=0, le=1)
    max_retries: int | None = Field(description="Attempts before giving up; null: never")


class EscalationPolicy(Strict):
    after_repeats: int = Field(ge=1, description="Unacknowledged repeats before escalating")
    add_receivers: list[str] = Field(description="Channels added once escalated")


class AlertingPolicy(Strict):
    group_by: list[str] = Field(description="Labels that form a notification group")
    group_wait_seconds: float = Field(ge=0, description="Wait before a new group's first notice")
    group_interval_seconds: float = Field(gt=0, description="Wait between a group's notices")
    repeat_interval_seconds: float = Field(gt=0, description="Re-send a firing, unacked alert")
    escalation: EscalationPolicy
    routes: dict[str, list[str]] = Field(description="severity → receivers ('logbook', "
                                         "'webhook', 'email' or a receiver name)")
    flapping: FlapPolicy
    inhibit_rules: list[InhibitRule]
    notify_backoff: BackoffPolicy
    notify_timeout_seconds: float = Field(gt=0, description="One delivery attempt's timeout")
    scan_limit: int = Field(ge=100, description="Most episodes one evaluation or the open-"
                            "alerts view reads (firing and resolved-unannounced ones)")
    rules: list[AlertRuleSpec]

    @model_validator(mode="after")
    def _check(self) -> AlertingPolicy:
        names = [r.name for r in self.rules]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"rule names must be unique; repeated: {dup}")
        for r in self.rules:
            unknown = [x for x in r.rules if x not in names or x == r.name]
            if unknown:
                raise ValueError(f"compound rule {r.name!r} refers to unknown rules {unknown}")
        missing = [s for s in SEVERITIES if s not in self.routes]
        if missing:
            raise ValueError(f"routes needs an entry for severities {missing}")
        return self


class TracingPolicy(Strict):
    slow_trace_ms: float = Field(gt=0, description="Root spans slower than this are 'slow'")


class TelemetryPolicy(Strict):
    alerting: AlertingPolicy
    tracing: TracingPolicy


SECTIONS = {"telemetry": TelemetryPolicy}
