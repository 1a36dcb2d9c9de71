"""Telemetry config (``spec.settings.telemetry``): retention, log files, exporters, receivers.

Where data goes and how long it is kept; thresholds and alert behaviour live in policy.
"""

from __future__ import annotations

from pydantic import Field

from autonomous.resources.base import Strict

__all__ = [
    "SECTIONS",
    "AlertmanagerReceiver",
    "EmailReceiver",
    "ExporterSettings",
    "InfluxSettings",
    "LogSettings",
    "ReceiverSettings",
    "RetentionSettings",
    "TelemetrySettings",
    "TracingSettings",
    "WebhookReceiver",
]


class RetentionSettings(Strict):
    raw: str = Field(description="Raw points kept this long (duration: 90s, 15m, 2h, 30d)")
    rollup_1m: str = Field(alias="1m", description="1-minute rollups kept this long")
    rollup_1h: str = Field(alias="1h", description="1-hour rollups kept this long")
    logs: str = Field(description="Indexed log lines kept this long")
    traces: str = Field(description="Spans kept this long")
    alerts: str = Field(description="Resolved alerts and their history kept this long")

    def timeseries(self) -> dict[str, str]:
        """The retention mapping :meth:`TimeSeriesStore.apply_retention` takes."""
        return {"raw": self.raw, "1m": self.rollup_1m, "1h": self.rollup_1h}


class LogSettings(Strict):
    level: str = Field(description="Lowest level the operator's handler records (INFO, ...)")
    max_bytes: int = Field(gt=0, description="A JSON log file rotates past this size")
    backup_count: int = Field(ge=0, description="Rotated files kept per log")
    tail_services: bool = Field(description="Index the supervised services' stdout/stderr")
    batch_size: int = Field(gt=0, description="Lines buffered before an index write")


class TracingSettings(Strict):
    sample_ratio: float = Field(ge=0, le=1, description="Share of new root traces recorded")
    probe_sample_ratio: float = Field(
        0.0, ge=0, le=1, description="Share of periodic service probes (made outside any "
        "trace) that start a trace; probes inside a trace are always traced")
    otlp_endpoint: str | None = Field(None, description="OTLP/HTTP endpoint; null: no export")


class InfluxSettings(Strict):
    url: str = Field(description="InfluxDB (or VictoriaMetrics) base URL")
    org: str = Field("atlas", description="Organisation (InfluxDB 2)")
    bucket: str = Field("atlas", description="Bucket / database")
    token: str | None = Field(None, description="API token; null for none")


class ExporterSettings(Strict):
    influxdb: InfluxSettings | None = Field(None, description="Line-protocol export; null: off")


class WebhookReceiver(Strict):
    name: str = Field(description="Receiver name used in routes")
    url: str = Field(description="POST target (Alertmanager webhook JSON format)")


class EmailReceiver(Strict):
    name: str = Field(description="Receiver name used in routes")
    host: str = Field(description="SMTP server host")
    port: int = Field(ge=1, le=65535, description="SMTP server port")
    sender: str = Field(description="From address")
    to: list[str] = Field(min_length=1, description="Recipients")
    starttls: bool = Field(False, description="Upgrade the connection with STARTTLS")


class AlertmanagerReceiver(Strict):
    name: str = Field(description="Receiver name used in routes")
    url: str = Field(description="Base URL of a Prometheus Alertmanager (alerts are POSTed to "
                     "<url>/api/v2/alerts)")
    labels: dict[str, str] = Field(default_factory=dict, description="Static labels added to "
                                   "every alert sent there, e.g. {host: robot-1}, so a central "
                                   "Alertmanager can route per host")


class ReceiverSettings(Strict):
    webhook: list[WebhookReceiver] = Field(default_factory=list, description="Webhook targets")
    email: list[EmailReceiver] = Field(default_factory=list, description="SMTP targets")
    alertmanager: list[AlertmanagerReceiver] = Field(
        default_factory=list, description="Central Alertmanagers (v2 API)")


class TelemetrySettings(Strict):
    retention: RetentionSettings
    logs: LogSettings
    tracing: TracingSettings
    exporters: ExporterSettings = Field(default_factory=ExporterSettings)
    receivers: ReceiverSettings = Field(default_factory=ReceiverSettings)


SECTIONS = {"telemetry": TelemetrySettings}
