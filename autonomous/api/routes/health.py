"""Health routes (``/api/health``): served from the health monitor's latest cycle; a request
never samples the host."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from autonomous.api.deps import Ctx, subsystem
from autonomous.api.schemas import parse_time, time_query
from autonomous.core.clock import iso
from autonomous.core.errors import AtlasError, NotFound, Problem, ValidationFailed
from autonomous.health_monitor.metrics import METRIC_KEY_PATTERN

__all__ = ["router"]

router = APIRouter(prefix="/api/health", tags=["health"])


class ResourceProblem(BaseModel):
    resource: str
    metric: str
    value: float
    threshold: float


class Bottleneck(BaseModel):
    kind: Literal["resource", "latency", "errors", "dependency"]
    subject: str
    value: float | None
    threshold: float | None
    detail: str


class Anomaly(BaseModel):
    id: str
    metric: str = Field(description="Metric key, or 'multivariate' (Isolation Forest)")
    severity: Literal["leve", "moderada", "severa"]
    start: str | None
    end: str | None
    active: bool
    duration_seconds: float
    peak_ts: str | None
    peak_value: float
    peak_z: float = Field(description="Peak deviation from the baseline in robust σ")
    baseline: float | None
    score: float
    metrics_affected: list[str]


class Prediction(BaseModel):
    metric: str
    threshold: float
    level: float = Field(description="Fitted level now")
    slope_per_hour: float
    eta_seconds: float
    eta_low_seconds: float
    eta_high_seconds: float | None
    crossing_at: str | None
    long_slope_per_hour: float


class Recommendation(BaseModel):
    severity: str
    text: str
    metrics: list[str] = Field(description="Metric keys behind it")


class SystemComponent(BaseModel):
    score: float | None = Field(description="null: no resource measured")
    healthy: bool
    problems: list[ResourceProblem]


class ServicesComponent(BaseModel):
    score: float | None = Field(description="Mean of the scored services; null: none scored")
    reason: str | None = Field(None, description="Why the score is null")
    per_service: dict[str, float | None]
    bottlenecks: list[Bottleneck]


class AnomaliesComponent(BaseModel):
    active: int
    penalty: float


class Components(BaseModel):
    system: SystemComponent
    services: ServicesComponent
    anomalies: AnomaliesComponent


class GlobalHealthOut(BaseModel):
    ts: str | None
    score: float | None = Field(ge=0, le=100, description="null: nothing measured")
    components: Components
    anomalies: list[Anomaly]
    recommendations: list[Recommendation]
    predictions: list[Prediction]


class SystemMetricsOut(BaseModel):
    ts: str | None
    healthy: bool = Field(description="CPU, RAM, disk below the policy thresholds")
    score: float | None = Field(ge=0, le=100, description="null: no resource measured")
    cpu: dict[str, Any]
    memory: dict[str, Any]
    gpu: dict[str, Any] = Field(description="devices (each with its source) or null + reason")
    disks: dict[str, dict[str, Any]]
    io: dict[str, Any]
    network_probe: dict[str, Any] | None
    processes: dict[str, Any] | None
    unavailable: dict[str, str] = Field(description="Dotted path of each null value → reason")


class ServiceOut(BaseModel):
    live: bool | None
    ready: bool | None
    score: float | None = Field(description="0-100; null while not probed yet")
    score_reason: str | None = Field(None, description="Why the score is null or which "
                                     "unmeasured figure was left out of it")
    consecutive_failures: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    probe_error_rate: float | None
    request_error_rate: float | None
    error_rate: float | None
    throughput_rps: float | None
    metrics_reason: str | None
    probes_in_window: int
    uptime_seconds: float | None
    last_probe: dict[str, Any] | None
    dependencies: dict[str, dict[str, Any]]


class ServicesOut(BaseModel):
    services: dict[str, ServiceOut]
    bottlenecks: list[Bottleneck]
    dependencies: dict[str, dict[str, dict[str, Any]]]


class AnomaliesOut(BaseModel):
    since: str | None
    anomalies: list[Anomaly]


class PredictionsOut(BaseModel):
    predictions: list[Prediction]


class HistoryPoint(BaseModel):
    ts: str | None
    value: float
    min: float
    max: float
    count: int


class HistoryOut(BaseModel):
    metric: str
    days: float
    points: list[HistoryPoint]


def _not_ready() -> AtlasError:
    err = AtlasError("the health monitor has not completed its first cycle yet: retry in a few "
                     "seconds")
    err.status_code = 503
    return err


def _anomaly(a: dict[str, Any]) -> Anomaly:
    return Anomaly(**{**a, "start": iso(a["start"]), "end": iso(a["end"]),
                      "peak_ts": iso(a["peak_ts"])})


def _prediction(p: dict[str, Any]) -> Prediction:
    return Prediction(**{**p, "crossing_at": iso(p["crossing_at"])})


def _since(text: str | None, now: float) -> float:
    if text is None:
        return now - 86400.0
    try:
        return parse_time(text, "query.since")
    except ValueError as exc:
        raise ValidationFailed([Problem("request", 0, "query.since", str(exc))]) from None


@router.get("/comprehensive", response_model=GlobalHealthOut)
async def comprehensive(ctx: Ctx) -> GlobalHealthOut:
    """GlobalHealth: score 0-100, components, anomalies, recommendations, predictions."""
    gh = subsystem(ctx, "health").comprehensive()
    if gh is None:
        raise _not_ready()
    global _last_comprehensive
    if _last_comprehensive is not None and _last_comprehensive[0] is gh:
        return _last_comprehensive[1]  # the same cycle's answer (a new cycle is a new dict)
    out = GlobalHealthOut(**{**gh, "ts": iso(gh["ts"]),
                             "anomalies": [_anomaly(a) for a in gh["anomalies"]],
                             "predictions": [_prediction(p) for p in gh["predictions"]]})
    _last_comprehensive = (gh, out)
    return out


_last_comprehensive: tuple[dict[str, Any], GlobalHealthOut] | None = None


@router.get("/metrics/system", response_model=SystemMetricsOut)
def metrics_system(ctx: Ctx) -> SystemMetricsOut:
    """The latest host sample; nulls carry a reason in ``unavailable``."""
    snap = subsystem(ctx, "health").system_snapshot()
    if snap is None:
        raise _not_ready()
    cpu = dict(snap["cpu"])
    if isinstance(cpu.get("model"), dict) and "features" in cpu["model"]:
        model = dict(cpu["model"])  # the CPU flags are static: one dedicated route has them
        model["features"] = f"{len(model['features'])} flags: GET /api/health/cpu-features"
        cpu["model"] = model
    return SystemMetricsOut(**{**snap, "cpu": cpu, "ts": iso(snap["ts"])})


@router.get("/cpu-features")
def cpu_features(ctx: Ctx) -> dict[str, Any]:
    """The CPU's feature flags (py-cpuinfo), static for the host; kept out of every
    system-metrics response."""
    snap = subsystem(ctx, "health").system_snapshot()
    model = (snap or {}).get("cpu", {}).get("model")
    if not isinstance(model, dict):  # null with the reason, like every metric not known yet
        reason = (snap or {}).get("unavailable", {}).get("cpu.model") or (
            "the CPU model has not been read yet: it is read once, "
            "health.sampling.startup_delay_seconds after start")
        return {"brand": None, "features": None, "reason": reason}
    return {"brand": model.get("brand"), "features": model.get("features", []),
            "reason": None}


@router.get("/metrics/services", response_model=ServicesOut)
def metrics_services(ctx: Ctx) -> ServicesOut:
    """Per service: probes, latency p50/p95, error rate, throughput, uptime, dependencies."""
    return ServicesOut(**subsystem(ctx, "health").services_snapshot())


@router.get("/anomalies", response_model=AnomaliesOut)
def anomalies(ctx: Ctx, since: str | None = time_query(
        "Epoch seconds or ISO 8601; default: the last 24 h")) -> AnomaliesOut:
    """Anomaly events (start, peak, duration, metric, severity) since a time."""
    t = _since(since, ctx.clock.now())
    return AnomaliesOut(since=iso(t), anomalies=[_anomaly(a) for a in
                                                 subsystem(ctx, "health").anomalies(t)])


@router.get("/predictions", response_model=PredictionsOut)
def predictions(ctx: Ctx) -> PredictionsOut:
    """Predicted threshold crossings (time to failure with an interval)."""
    return PredictionsOut(predictions=[_prediction(p) for p in
                                       subsystem(ctx, "health").predictions])


@router.get("/history", response_model=HistoryOut)
def history(ctx: Ctx, metric: str = Query(description="Metric key, e.g. cpu.percent or "
                                          "disk.percent{mount=/}",
                                          json_schema_extra={"pattern": METRIC_KEY_PATTERN}),
            days: float = Query(1.0, gt=0, le=366)) -> HistoryOut:
    """Stored samples of one metric (rollups for long spans)."""
    agg = subsystem(ctx, "health")
    try:
        samples = agg.history(metric, days)
    except ValueError as exc:
        raise ValidationFailed([Problem("request", 0, "query.metric", str(exc))]) from None
    if not samples and not agg.ts.match(metric.split("{")[0]):
        names = ", ".join(agg.ts.names()[:30])
        raise NotFound(f"no stored metric {metric!r}; known: {names}")
    return HistoryOut(metric=metric, days=days, points=[
        HistoryPoint(ts=iso(s.ts), value=s.value, min=s.min, max=s.max, count=s.count)
        for s in samples])
