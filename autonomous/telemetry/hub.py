"""TelemetryHub: the telemetry subsystem's facade (``ctx.subsystems["telemetry"]``).

Holds the one metrics aggregator, logs collector (with the service-log tailer), tracing
system, alert manager and dashboard engine, all on the operator's store and clock. The
telemetry controller calls :meth:`cycle` on its interval and feeds bus events to
:meth:`record_event`; the API reads through the attributes.

Events become data here: every topic is counted in ``events_total{topic}`` (counted in memory,
one point per changed topic written on each cycle rather than one per event), ``alert.human``
fires an alert and ``alert.resolved`` resolves it, and anomaly rules see every event. Service
metrics (``service.up``, ``service.probe_latency_ms``, ``service.latency_p95_ms``, …) have one
writer, the health monitor (:meth:`HealthAggregator.readings`): it sees a stopped, isolated
or paused service, which sends no probe event, as down.

:meth:`housekeeping` (log tail, flushes, rollups, retention) is a scheduled job
(:mod:`autonomous.core.jobs`); alert rules are decided by the telemetry controller's diff.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

from autonomous.core.clock import Clock
from autonomous.resources.config.telemetry import TelemetrySettings
from autonomous.resources.kinds.telemetry import DashboardSpec
from autonomous.store.db import Store
from autonomous.store.timeseries import Point, TimeSeriesStore, parse_duration
from autonomous.telemetry.alert_channels import Channel, EmailChannel, WebhookChannel
from autonomous.telemetry.alertmanager_channel import AlertmanagerChannel
from autonomous.telemetry.alert_manager import AlertManager
from autonomous.telemetry.dashboard_engine import DashboardEngine
from autonomous.telemetry.log_tail import ServiceLogTailer
from autonomous.telemetry.logs_collector import LogsCollector
from autonomous.telemetry.metrics_aggregator import MetricsAggregator
from autonomous.telemetry.otlp_export import make_exporter
from autonomous.telemetry.tracing_system import TracingSystem
from autonomous.context import OperatorContext

__all__ = ["TelemetryHub", "channels_from_settings", "settings_from_context"]

log = logging.getLogger("atlas.telemetry")
_SEVERITY = {"critical": "critical", "high": "critical", "severa": "critical",
             "medium": "warning", "moderada": "warning", "warning": "warning",
             "low": "info", "leve": "info", "info": "info"}


def settings_from_context(ctx: OperatorContext) -> TelemetrySettings:
    """``spec.settings.telemetry`` of the generation in force, validated."""
    gen = ctx.desired.current
    if gen is None:
        raise RuntimeError("telemetry settings asked for before any desired state was loaded")
    return TelemetrySettings.model_validate(gen.tree.config.settings["telemetry"])


def channels_from_settings(settings: TelemetrySettings) -> dict[str, Channel]:
    """Webhook, email and Alertmanager receivers named in the config."""
    out: dict[str, Channel] = {}
    for w in settings.receivers.webhook:
        out[w.name] = WebhookChannel(w.name, w.url)
    for e in settings.receivers.email:
        out[e.name] = EmailChannel(e.name, e.host, e.port, e.sender, e.to, e.starttls)
    for m in settings.receivers.alertmanager:
        out[m.name] = AlertmanagerChannel(m.name, m.url, m.labels)
    return out


class TelemetryHub:
    """Metrics, logs, traces, alerts and dashboards behind one object."""

    def __init__(self, *, store: Store, clock: Clock, log_dir: Path, settings: TelemetrySettings,
                 policy: Any, dashboards: Any, services: Any = None,
                 channels: dict[str, Channel] | None = None) -> None:
        self.store, self.clock, self.settings = store, clock, settings
        self.policy = policy
        self._services = services
        self.ts = TimeSeriesStore(store, clock)
        self.metrics = MetricsAggregator(self.ts, clock)
        self.tracing = TracingSystem(store, clock, sample_ratio=settings.tracing.sample_ratio)
        self.otlp = make_exporter(settings.tracing.otlp_endpoint)
        if self.otlp is not None:
            self.tracing.exporters.append(self.otlp)
        self.logs = LogsCollector(store, clock, log_dir, max_bytes=settings.logs.max_bytes,
                                  backup_count=settings.logs.backup_count,
                                  batch_size=settings.logs.batch_size,
                                  trace_ids=self.tracing.current_ids,
                                  on_errors=self._count_errors)
        self.tail = ServiceLogTailer(store, clock, log_dir, self._index_service_lines,
                                     on_span=self.tracing.add_span_from_log)
        self.alerts = AlertManager(store, clock, self.ts, policy,
                                   channels if channels is not None
                                   else channels_from_settings(settings))
        self.dashboards = DashboardEngine(self, dashboards)
        self._events: dict[str, int] = {}
        self._events_dirty: set[str] = set()
        self._errors: dict[str, int] = {}
        self.last_cycle: dict[str, Any] = {}

    @classmethod
    def from_context(cls, ctx: OperatorContext) -> TelemetryHub:
        """Build on the operator context (store, clock, data dir, policy, desired state)."""
        def dashboards() -> dict[str, DashboardSpec]:
            gen = ctx.desired.current
            return {} if gen is None else {r.name: cast(DashboardSpec, r.spec)
                                           for r in gen.tree.of_kind("Dashboard")}

        return cls(store=ctx.store, clock=ctx.clock, log_dir=Path(ctx.data_dir) / "logs",
                   settings=settings_from_context(ctx), policy=ctx.policy,
                   dashboards=dashboards, services=lambda: ctx.subsystems.get("services"))

    def services(self) -> Any:
        """The services facade, when the services controller runs."""
        return self._services() if callable(self._services) else self._services

    # -- inputs -----------------------------------------------------------------------------
    def record_event(self, topic: str, data: dict[str, Any]) -> None:
        """Turn one bus event into metrics, alerts and anomaly observations."""
        self._events[topic] = self._events.get(topic, 0) + 1
        self._events_dirty.add(topic)
        if topic == "alert.human":
            self._human_alert(data)
        elif topic == "alert.resolved" and data.get("service"):
            for a in self.alerts.db.open_alerts(source="manual").values():
                if a["labels"].get("service") == data["service"] and \
                        a["labels"].get("source") == data.get("source", a["labels"].get("source")):
                    self.alerts.resolve_alert(a["id"], str(data.get("source", "system")),
                                              str(data.get("message", "resolved")))
        self.alerts.observe_event(topic, data)

    def _human_alert(self, data: dict[str, Any]) -> None:
        labels = {"service": str(data.get("service", "")), "source": str(data.get("source", "")),
                  "reason": str(data.get("reason", ""))}
        self.alerts.trigger_alert(f"{data.get('source', 'human')}_alert", labels,
                                  severity=_SEVERITY.get(str(data.get("severity")), "warning"),
                                  summary=str(data.get("message") or data.get("reason", "")),
                                  actor=str(data.get("source", "system")))

    def _flush_event_counts(self, now: float) -> None:
        """One ``events_total`` point per topic counted since the last cycle."""
        dirty, self._events_dirty = self._events_dirty, set()
        for topic in sorted(dirty):
            self.metrics.collect_metric("events_total", self._events[topic], {"topic": topic},
                                        now)

    def _count_errors(self, per_service: dict[str, int]) -> None:
        now = self.clock.now()
        for svc, n in per_service.items():
            self._errors[svc] = self._errors.get(svc, 0) + n
            self.metrics.collect_metric("log_errors_total", self._errors[svc],
                                        {"service": svc}, now)

    def _index_service_lines(self, lines: list[dict[str, Any]]) -> None:
        self.logs.ingest(lines, write_file=False)
        self.logs.flush()

    # -- the controller's cycle ---------------------------------------------------------------
    def housekeeping(self, now: float | None = None, *, retention: bool = True) -> dict[str, Any]:
        """The scheduled job: tail service logs, flush, roll up and (unless ``retention`` is
        False: the operator applies it on its own, slower cadence) apply retention. Decides
        nothing; returns what it did."""
        now = self.clock.now() if now is None else now
        lines = self.tail.collect() if self.settings.logs.tail_services else 0
        self._flush_event_counts(now)
        self.logs.flush()
        self.tracing.flush()
        self.metrics.flush()
        rolled = self.metrics.rollup(now)
        deleted = self.apply_retention(now) if retention else \
            (self.last_cycle or {}).get("deleted", {})
        self.last_cycle = {"service_lines": lines, "rollups": rolled, "deleted": deleted}
        return self.last_cycle

    def apply_retention(self, now: float | None = None) -> dict[str, int]:
        """Delete telemetry older than its retention (config ``telemetry.retention``): rows
        deleted per kind."""
        now = self.clock.now() if now is None else now
        ret = self.settings.retention
        deleted = {**self.metrics.apply_retention(ret.timeseries(), now),
                   "logs": self.logs.apply_retention(parse_duration(ret.logs), now),
                   "traces": self.tracing.apply_retention(parse_duration(ret.traces), now),
                   "alerts": self.alerts.apply_retention(parse_duration(ret.alerts), now)}
        if self.last_cycle:
            self.last_cycle = {**self.last_cycle, "deleted": deleted}
        return deleted

    def cycle(self, now: float | None = None) -> dict[str, Any]:
        """Housekeeping then one local rule evaluation (tools and tests; the operator runs
        the two apart: the job and the controller)."""
        summary = self.housekeeping(now)
        summary["alerts"] = self.alerts.evaluate_rules(now)
        return summary

    def stats(self) -> dict[str, Any]:
        """Counters for the hub's own Prometheus metrics."""
        open_alerts = self.alerts.db.open_alerts().values()
        firing: dict[str, int] = {}
        for a in open_alerts:
            if a["state"] == "firing":
                firing[a["severity"]] = firing.get(a["severity"], 0) + 1
        return {"points_written_total": self.metrics.written,
                "log_lines_indexed_total": self.logs.indexed,
                "spans_recorded_total": self.tracing.recorded,
                "spans_dropped_total": self.tracing.dropped,
                "spans_exported_total": None if self.otlp is None else self.otlp.exported,
                "alerts_firing": firing}

    def close(self) -> None:
        """Flush everything and release the log handler and file."""
        self._flush_event_counts(self.clock.now())
        self.metrics.flush()
        self.tracing.close()
        if self.otlp is not None:
            self.otlp.close()
        self.logs.uninstall()

    def add_point(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        """Shorthand used by other subsystems: one metric point now."""
        self.metrics.collect_many([Point(name, value, self.clock.now(), dict(labels or {}))])
