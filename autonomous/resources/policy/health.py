"""Health monitor policy: thresholds, scoring, anomaly detection, prediction, cadences.

Every number the health monitor uses lives here (values in ``policies/health.yaml``); the
controller reads ``ctx.policy()["health"]`` on every cycle, so an edit applies on the next one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from autonomous.resources.base import Strict

__all__ = [
    "SECTIONS",
    "AnomalyPolicy",
    "HealthPolicy",
    "HealthThresholds",
    "IsolationForestPolicy",
    "PredictionPolicy",
    "SamplingPolicy",
    "ScorePolicy",
    "ServiceHealthPolicy",
    "StreamDetectorPolicy",
]


class HealthThresholds(Strict):
    cpu_percent: float = Field(gt=0, le=100, description="Healthy below this CPU use")
    ram_percent: float = Field(gt=0, le=100, description="Healthy below this RAM use")
    disk_percent: float = Field(gt=0, le=100, description="Healthy below this disk use")
    swap_percent: float = Field(gt=0, le=100, description="Healthy below this swap use")
    gpu_percent: float = Field(gt=0, le=100, description="Healthy below this GPU utilisation")
    vram_percent: float = Field(gt=0, le=100, description="Healthy below this VRAM use")
    temperature_c: float = Field(gt=0, description="Healthy below this CPU/GPU temperature")
    service_latency_ms: float = Field(gt=0, description="Probe p95 above this is a bottleneck")
    service_error_rate: float = Field(ge=0, le=1, description="Error fraction (5 min) above "
                                      "this makes a service unhealthy")


class ScorePolicy(Strict):
    knee: float = Field(gt=0, lt=1, description="Use up to knee×threshold scores 100; the "
                        "threshold scores 50; 100 % use scores 0 (piecewise linear)")
    weights: dict[str, float] = Field(description="System score weights per resource "
                                      "(cpu, ram, disk, swap, gpu, vram)")
    global_weights: dict[str, float] = Field(description="GlobalHealth weights: system, services")
    anomaly_penalty: dict[str, float] = Field(description="Points off the global score per "
                                              "active anomaly, by severity")
    latency_weight: float = Field(ge=0, le=100, description="Service score points lost when "
                                  "p95 latency reaches the threshold")
    error_weight: float = Field(ge=0, le=100, description="Service score points lost at 100 %% "
                                "error rate")
    dependency_weight: float = Field(ge=0, le=1, description="Share of the service score lost "
                                     "when every declared dependency is down")


class StreamDetectorPolicy(Strict):
    window: int = Field(ge=10, description="Samples in the rolling baseline (median / MAD)")
    min_samples: int = Field(ge=2, description="Samples before any score is produced")
    short_window: int = Field(ge=1, description="Samples averaged into the short-term surprise")
    likelihood_window: int = Field(ge=10, description="Samples of surprise history compared "
                                   "against (anomaly likelihood)")
    threshold: float = Field(gt=0, lt=1, description="Anomaly likelihood counted as anomalous")
    suppress: int = Field(ge=0, description="Samples after a detection during which it does "
                          "not alarm again (one event, not one flag per sample)")
    hold: int = Field(ge=0, description="Samples the suppression may be held past suppress "
                      "while the level stays change_sigma off (0: never held)")
    quiet: int = Field(default=0, ge=0, description="A suppression ends once this many "
                       "samples in a row stay within change_sigma of the rolling median "
                       "(the event is over: the next one alarms); 0: it runs its full length")
    record_window: int = Field(ge=10, description="Samples whose max and min a value must "
                               "exceed to be a record (scored 1, an anomaly outright)")
    escalation: float = Field(gt=1, description="Inside the suppression a record still "
                              "alarms when its level deviation is this many times that of "
                              "the detection that started it (a bigger event is not hidden)")
    change_sigma: float = Field(ge=0, description="Level deviation (robust σ from the rolling "
                                "median) a change needs to score; records score regardless")
    season_repeats: int = Field(ge=0, description="An alarm candidate is dropped when earlier "
                                "candidates started this many periods back in a row, one "
                                "period apart (a daily job's spike is routine); 0: off")
    season_tolerance: float = Field(ge=0, lt=0.5, description="How far (share of the period) "
                                    "an earlier candidate may sit from its beat")
    season_periods: tuple[int, int] = Field(description="Shortest and longest period, samples")
    opinion: Literal["none", "cusum", "tail", "season", "shift"] = Field(
        default="none", description="Second opinion an alarm candidate needs to alarm "
        "(health_monitor.stream_opinion): none, CUSUM of the level z, windowed Gaussian "
        "tail, seasonal residual, mean shift")
    opinion_k: float = Field(default=0.0, ge=0, description="The opinion's threshold: CUSUM "
                             "height, std (tail), robust σ of the residual (season), standard "
                             "errors (shift)")
    opinion_arg: float = Field(default=0.0, ge=0, description="CUSUM drift (robust σ), season "
                               "period (samples) or shift's recent samples; unused by tail")

    @model_validator(mode="after")
    def _periods(self) -> StreamDetectorPolicy:
        lo, hi = self.season_periods
        if not 2 <= lo <= hi:
            raise ValueError("season_periods must be [shortest, longest] with 2 <= shortest "
                             "<= longest")
        if self.opinion in ("season", "shift") and self.opinion_arg < 1:
            raise ValueError(f"opinion {self.opinion}: opinion_arg (samples) must be >= 1")
        return self


class IsolationForestPolicy(Strict):
    n_estimators: int = Field(ge=10)
    contamination: float = Field(gt=0, le=0.5, description="Expected anomalous fraction")
    min_samples: int = Field(ge=10, description="Rows needed before training")
    max_samples: int = Field(ge=100, description="Rows used per training (newest)")
    consecutive: int = Field(ge=1, description="Outlier samples in a row that open a "
                             "multivariate anomaly")


class AnomalyPolicy(Strict):
    history_days: float = Field(gt=0, description="Stored history the detector trains on")
    retrain_interval_seconds: float = Field(gt=0, description="Retrain and persist the model")
    severity_sigma: dict[str, float] = Field(description="Peak deviation (robust σ) at which "
                                             "an anomaly is moderada / severa; leve below")
    open_sigma: float = Field(gt=0, description="Level deviation (robust σ) the detector must "
                              "also see to open an event; it stays open while above "
                              "anomaly_sigma")
    event_gap_seconds: float = Field(gt=0, description="Anomalous samples closer than this are "
                                     "one event; an event ends after this much quiet")
    stream: StreamDetectorPolicy
    isolation_forest: IsolationForestPolicy
    metrics: list[str] = Field(description="Metric-name prefixes the detector watches")

    @model_validator(mode="after")
    def _severities(self) -> AnomalyPolicy:
        if set(self.severity_sigma) != {"moderada", "severa"}:
            raise ValueError("severity_sigma needs exactly 'moderada' and 'severa'")
        if self.severity_sigma["severa"] <= self.severity_sigma["moderada"]:
            raise ValueError("severity_sigma.severa must be above severity_sigma.moderada")
        return self


class PredictionPolicy(Strict):
    short_horizon_seconds: float = Field(gt=0, description="Recent window of the robust fit")
    long_horizon_seconds: float = Field(gt=0, description="Longer window; both must agree")
    min_samples: int = Field(ge=3, description="Samples per horizon before predicting")
    max_eta_seconds: float = Field(gt=0, description="Crossings further away are not reported")
    confidence: float = Field(gt=0, lt=1, description="Slope interval confidence (Theil-Sen)")
    agreement: float = Field(gt=1, description="Max ratio between the two horizons' slopes")
    metrics: list[str] = Field(description="Metric names (or prefixes) watched for failure")
    min_history_seconds: float = Field(
        ge=0, description="No prediction before the series spans this long within the long "
        "horizon: past the short horizon, the two fits see different data (the first minutes "
        "after a start, services warming up, are not a trend to extrapolate for hours)")

    @model_validator(mode="after")
    def _history_fits(self) -> PredictionPolicy:
        if self.min_history_seconds > self.long_horizon_seconds:
            raise ValueError("min_history_seconds must not exceed long_horizon_seconds (no "
                             "series could ever span it: nothing would be predicted)")
        return self


class SamplingPolicy(Strict):
    startup_delay_seconds: float = Field(ge=0, description="The CPU model read (py-cpuinfo: "
                                         "about a second of CPU in a child process) and the "
                                         "first top-process sweep wait this long after start, "
                                         "so they do not compete with starting the stack")
    process_interval_seconds: float = Field(gt=0, description="Top-process sweep cadence "
                                            "(slow path: about ten times a full sample)")
    top_processes: int = Field(ge=1, description="Processes listed by CPU and by memory")
    network_interval_seconds: float = Field(gt=0, description="TCP latency/loss probe cadence")
    network_timeout_seconds: float = Field(gt=0, description="TCP connect timeout")
    network_attempts: int = Field(ge=1, description="Connects per target per probe (loss %)")
    network_targets: list[str] = Field(description="host:port targets; empty = the declared "
                                       "services' ports")
    report_interval_seconds: float = Field(gt=0, description="GlobalHealth report cadence")
    history_keep: int = Field(ge=10, description="Snapshots kept in memory per metric")
    resample_tolerance: float = Field(gt=0, le=1, description="A health pass takes a full "
                                      "system sample when this share of the controller "
                                      "interval passed since the last one (the pass comes "
                                      "with jitter); passes in between refresh the services")
    fallback_interval_seconds: float = Field(gt=0, description="Sample interval assumed when "
                                             "the config names no health_monitor interval")
    trend_hourly_from_days: float = Field(gt=0, description="Historical trends of this many "
                                          "days or more use hourly rollups, per-minute below")
    trend_metrics: list[str] = Field(min_length=1, description="Metric names the historical "
                                     "trend reports")


class ServiceHealthPolicy(Strict):
    window_seconds: float = Field(gt=0, description="Error rate / latency window")
    dependency_interval_seconds: float = Field(gt=0, description="Dependency check cadence")
    metrics_interval_seconds: float = Field(gt=0, description="Prometheus /metrics scrape "
                                            "cadence (throughput, error counters)")
    probe_history_keep: int = Field(ge=10, description="Own probe results kept per service "
                                    "(only without a services controller)")
    scrape_history_keep: int = Field(ge=2, description="/metrics scrapes kept per service")


class HealthPolicy(Strict):
    thresholds: HealthThresholds
    anomaly_sigma: float = Field(gt=0, description="z-score beyond which a sample is anomalous")
    score: ScorePolicy
    anomaly: AnomalyPolicy
    prediction: PredictionPolicy
    sampling: SamplingPolicy
    services: ServiceHealthPolicy


SECTIONS = {"health": HealthPolicy}
