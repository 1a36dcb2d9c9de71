"""Telemetry API: metrics, logs, traces, dashboards, alerts, silences (``/api/telemetry``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from autonomous.api.deps import Actor, Ctx, subsystem
from autonomous.api.schemas import EpochQuery, RowId
from autonomous.core.errors import Problem, ValidationFailed
from autonomous.telemetry.logs_collector import LEVEL_NAMES
from autonomous.telemetry.metrics_aggregator import AGGREGATIONS
from autonomous.telemetry.metrics_aggregator import READ_RESOLUTIONS as RESOLUTIONS

if TYPE_CHECKING:
    from autonomous.context import OperatorContext
    from autonomous.telemetry.hub import TelemetryHub

# An aggregation asked for with neither start nor step covers the last five minutes, the
# lookback Prometheus gives an instant query.
DEFAULT_AGGREGATION_WINDOW_S = 300.0

# What the log search accepts, stated in the document: a level name or alias (any case), and
# a query holding at least one word (the collector's word characters).
_LEVEL = Query(None, pattern="^(" + "|".join(
    "".join(f"[{c.upper()}{c.lower()}]" for c in n) for n in LEVEL_NAMES) + ")$",
    description="Minimum level: " + ", ".join(LEVEL_NAMES) + " (any case)")
_WORDS = Query(None, pattern=r"[A-Za-z0-9_.:-]", description="Words that must all appear "
               "(word* for a prefix)")

__all__ = ["router"]

router = APIRouter(prefix="/api/telemetry", tags=["telemetry"])


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class SeriesOut(BaseModel):
    labels: dict[str, str]
    points: list[list[float]] = Field(description="[ts, value, min, max, count] per sample")


class MetricsOut(BaseModel):
    name: str | None
    resolution: str | None = None
    aggregation: str | None = None
    series: list[SeriesOut] = Field(default_factory=list)
    windows: list[dict[str, Any]] = Field(default_factory=list)
    metrics: list[dict[str, Any]] = Field(default_factory=list)


class LogsOut(BaseModel):
    count: int
    lines: list[_Open]


class TracesOut(BaseModel):
    traces: list[_Open]


class AlertOut(_Open):
    id: int
    rule: str
    state: str
    severity: str
    labels: dict[str, str]
    summary: str


class AlertsOut(BaseModel):
    active: list[AlertOut]
    history: list[AlertOut]
    silences: list[_Open]


class AckIn(BaseModel):
    comment: str = Field("", max_length=2000, description="Why / what is being done")


class SilenceIn(BaseModel):
    matchers: dict[str, str] = Field(min_length=1, description="Labels an alert must have to "
                                     "be silenced (at least one)")
    duration_seconds: float = Field(ge=1, le=90 * 86400, description="How long (1 s … 90 d)")
    comment: str = Field("", max_length=2000)


def _hub(ctx: OperatorContext) -> TelemetryHub:
    return subsystem(ctx, "telemetry")


# "service=nexus,host=a": each key non-blank, no ',' or '=' in a key. The pattern is stated in
# the document; the check itself is _labels, whose 422 names the malformed pair.
LabelsQuery = Annotated[str | None, Query(
    json_schema_extra={"pattern": r"^\s*[^=,\s][^=,]*=[^,]*(,\s*[^=,\s][^=,]*=[^,]*)*$"},
    description="Label matchers key=value, comma-separated (e.g. service=nexus)")]
AggregationQuery = Annotated[str | None, Query(
    json_schema_extra={"enum": list(AGGREGATIONS)},
    description="Aggregate instead of listing points: one of " + ", ".join(AGGREGATIONS)
    + f". Over [start, end] cut into step-second windows; with neither start nor step, "
    f"over the last {DEFAULT_AGGREGATION_WINDOW_S:.0f} s")]
ResolutionQuery = Annotated[str, Query(
    json_schema_extra={"enum": list(RESOLUTIONS)},
    description="Stored resolution to read: auto (the coarsest covering the range), raw, "
    "1m or 1h")]


def _labels(text: str | None) -> dict[str, str] | None:
    """``"service=nexus,host=a"`` → dict; a malformed pair is a 422 naming it."""
    if text is None:
        return None
    out = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip(" \t"):
            raise ValidationFailed([Problem("", 0, "query.labels",
                                            f"{pair!r} is not key=value (e.g. service=nexus)")])
        out[key.strip(" \t")] = value.strip(" \t")
    return out


@router.get("/metrics", response_model=MetricsOut)
def get_metrics(ctx: Ctx, name: str | None = None, labels: LabelsQuery = None,
                start: EpochQuery = None, end: EpochQuery = None,
                step: Annotated[float | None, Query(gt=0, le=366 * 86400)] = None,
                aggregation: AggregationQuery = None,
                resolution: ResolutionQuery = "auto") -> MetricsOut:
    """Metric series (or windows of an aggregation); without a name, the metric catalogue."""
    lab = _labels(labels)  # every parameter is checked, even where the catalogue ignores it
    if aggregation is not None and aggregation not in AGGREGATIONS:
        raise ValidationFailed([Problem("", 0, "query.aggregation", f"{aggregation!r} is not "
                                        f"one of {', '.join(AGGREGATIONS)}")])
    if resolution not in RESOLUTIONS:
        raise ValidationFailed([Problem("", 0, "query.resolution", f"{resolution!r} is not "
                                        f"one of {', '.join(RESOLUTIONS)}")])
    hub = _hub(ctx)
    if name is None:
        return MetricsOut(name=None, metrics=hub.metrics.list_metrics())
    if aggregation:
        if start is None and step is None:
            step = DEFAULT_AGGREGATION_WINDOW_S
        wins = hub.metrics.aggregate(name, aggregation, window=step, labels=lab, start=start,
                                     end=end, by_series=True)
        return MetricsOut(name=name, aggregation=aggregation, windows=wins)
    rows = hub.metrics.get_metrics(name, lab, start, end, resolution)
    return MetricsOut(name=name, resolution=resolution,
                      series=[SeriesOut(labels=r["labels"],
                                        points=[list(map(float, s)) for s in r["samples"]])
                              for r in rows])


@router.get("/logs", response_model=LogsOut)
def get_logs(ctx: Ctx, q: str | None = _WORDS, level: str | None = _LEVEL,
             service: str | None = None, since: EpochQuery = None,
             until: EpochQuery = None, trace_id: str | None = None,
             limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> LogsOut:
    """Full-text log search with level (minimum), service, time and trace filters."""
    lines = _hub(ctx).logs.search_logs(q, level, service, since, until, limit,
                                       trace_id=trace_id)
    return LogsOut(count=len(lines), lines=[_Open(**line) for line in lines])


@router.get("/logs/errors")
def get_log_errors(ctx: Ctx, since: EpochQuery = None, until: EpochQuery = None,
                   service: str | None = None) -> list[dict[str, Any]]:
    """Error lines grouped by normalised signature, with counts and first/last seen."""
    return _hub(ctx).logs.aggregate_errors(since, until, service)


@router.get("/logs/export", response_class=PlainTextResponse, responses={200: {
    "description": "One JSON log record per line",
    "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}})
def export_logs(ctx: Ctx, q: str | None = _WORDS, level: str | None = _LEVEL,
                service: str | None = None, since: EpochQuery = None,
                until: EpochQuery = None) -> PlainTextResponse:
    """Matching log lines as NDJSON, oldest first."""
    text = _hub(ctx).logs.export_logs(None, query=q, level=level, service=service,
                                      since=since, until=until)
    return PlainTextResponse(str(text), media_type="application/x-ndjson")


@router.get("/traces", response_model=TracesOut)
def get_traces(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
               since: EpochQuery = None, service: str | None = None,
               slowest: bool = False) -> TracesOut:
    """Recent traces, or the slowest ones with the span that dominates each."""
    tracing = _hub(ctx).tracing
    rows = (tracing.analyze_slowest_traces(limit, since) if slowest
            else tracing.list_traces(limit, since, service))
    return TracesOut(traces=[_Open(**r) for r in rows])


@router.get("/traces/{trace_id}")
def get_trace(ctx: Ctx, trace_id: str) -> dict[str, Any]:
    """One trace with all its spans (operator and services)."""
    return _hub(ctx).tracing.get_trace(trace_id)


@router.get("/dashboards")
def get_dashboards(ctx: Ctx) -> list[dict[str, Any]]:
    """Every dashboard defined in the desired state."""
    return _hub(ctx).dashboards.list_dashboards()


@router.get("/dashboard/{name}")
def get_dashboard(ctx: Ctx, name: str, start: EpochQuery = None,
                  end: EpochQuery = None) -> dict[str, Any]:
    """Panel data of one dashboard."""
    return _hub(ctx).dashboards.render(name, start, end)


@router.get("/alerts", response_model=AlertsOut)
def get_alerts(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=5000)] = 200,
               since: EpochQuery = None) -> AlertsOut:
    """Active alerts (with silenced/inhibited/flapping flags), history and silences."""
    alerts = _hub(ctx).alerts
    return AlertsOut(active=[AlertOut(**a) for a in alerts.active_alerts()],
                     history=[AlertOut(**a) for a in alerts.history(limit, since)],
                     silences=[_Open(**s) for s in alerts.silences()])


@router.get("/alerts/{alert_id}")
def get_alert(ctx: Ctx, alert_id: RowId) -> dict[str, Any]:
    """One alert with every transition (who and when)."""
    alerts = _hub(ctx).alerts
    return {**alerts.db.get(alert_id), "transitions": alerts.db.transitions(alert_id)}


@router.post("/alerts/ack/{alert_id}", response_model=AlertOut)
def ack_alert(ctx: Ctx, actor: Actor, alert_id: RowId, body: AckIn | None = None) -> AlertOut:
    """Acknowledge an alert: its repeats stop until it resolves."""
    return AlertOut(**_hub(ctx).alerts.acknowledge(alert_id, actor,
                                                   body.comment if body else ""))


@router.post("/alerts/resolve/{alert_id}", response_model=AlertOut)
def resolve_alert(ctx: Ctx, actor: Actor, alert_id: RowId, body: AckIn | None = None) -> AlertOut:
    """Resolve an open alert by hand (for alerts raised by other subsystems)."""
    return AlertOut(**_hub(ctx).alerts.resolve_alert(alert_id, actor,
                                                     (body.comment if body else "") or
                                                     "resolved by hand"))


@router.get("/silences")
def get_silences(ctx: Ctx, active: bool = False) -> list[dict[str, Any]]:
    """Silences (all, or only those in force)."""
    return _hub(ctx).alerts.silences(active_only=active)


@router.post("/silences", status_code=201)
def add_silence(ctx: Ctx, actor: Actor, body: SilenceIn) -> dict[str, Any]:
    """Silence alerts matching labels for a while."""
    return _hub(ctx).alerts.add_silence(body.matchers, duration_seconds=body.duration_seconds,
                                        actor=actor, comment=body.comment)


@router.delete("/silences/{silence_id}")
def expire_silence(ctx: Ctx, actor: Actor, silence_id: RowId) -> dict[str, Any]:
    """End a silence now."""
    return _hub(ctx).alerts.expire_silence(silence_id, actor)


@router.get("/notifications")
def get_notifications(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=5000)] = 200
                      ) -> list[dict[str, Any]]:
    """The notification outbox: every notice, its receiver and delivery state."""
    return _hub(ctx).alerts.notifications(limit)
