"""Resilience policy: admission (priority route map, never-shed paths, queue waits), the
priority queue, adaptive concurrency (AIMD), rate limits, resource gates, automatic survival
with hysteresis, and the backup engine's chunking and compression parameters.

Every number lives in ``policies/resilience.yaml``; nothing here has a default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from autonomous.resources.base import Strict

__all__ = [
    "PRIORITY_NAMES",
    "SECTIONS",
    "AdmissionPolicy",
    "AimdPolicy",
    "AutoSurvivalPolicy",
    "BackupEnginePolicy",
    "ConcurrencyPolicy",
    "GateLevels",
    "GatesPolicy",
    "LoopLagPolicy",
    "QueuePolicy",
    "RateLimit",
    "RateLimits",
    "ResiliencePolicy",
    "RouteRule",
    "SurvivalPolicy",
    "SurvivalThresholds",
]

PRIORITY_NAMES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
PriorityName = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]


class RouteRule(Strict):
    prefix: str = Field(description="Path prefix; the longest matching prefix wins")
    priority: PriorityName

    @field_validator("prefix")
    @classmethod
    def _abs(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"{v!r} must start with '/'")
        return v


class PerPriorityFloat(Strict):
    CRITICAL: float = Field(gt=0)
    HIGH: float = Field(gt=0)
    MEDIUM: float = Field(gt=0)
    LOW: float = Field(gt=0)


class AdmissionPolicy(Strict):
    priority_header: str = Field(description="Request header naming the priority")
    default_priority: PriorityName = Field(description="Priority of unmapped paths")
    routes: list[RouteRule] = Field(description="Route map: path prefix → priority")
    never_shed: list[str] = Field(description="Path prefixes always admitted (probes, operator "
                                  "control endpoints)")
    max_wait_seconds: PerPriorityFloat = Field(description="Longest queue wait, then 429")
    shed_retry_after_seconds: float = Field(gt=0, description="Retry-After when the queue is "
                                            "full or a wait timed out")
    policy_refresh_seconds: float = Field(gt=0, description="How often the hot path re-reads "
                                          "the policy in force")
    survival_shed: list[str] = Field(description="Path prefixes shed while in survival mode")
    survival_promote: list[str] = Field(description="Path prefixes whose waiting requests are "
                                        "promoted to CRITICAL when survival mode starts")


class QueuePolicy(Strict):
    max_depth: int = Field(ge=1, description="Waiting requests, all priorities together")
    aging_seconds: float = Field(gt=0, description="A waiting item gains one level per interval")
    stats_window: int = Field(ge=10, description="Recent waits kept per level for percentiles")


class ConcurrencyPolicy(Strict):
    initial: int = Field(ge=1, description="In-flight limit at start")
    min: int = Field(ge=1, description="AIMD never goes below")
    max: int = Field(ge=1, description="AIMD never goes above")
    critical_reserved: int = Field(ge=0, description="In-flight slots only CRITICAL may use: "
                                   "other priorities stop at limit - critical_reserved (never "
                                   "below 1), so a CRITICAL request finds a free slot instead "
                                   "of waiting for one to finish")

    @model_validator(mode="after")
    def _order(self) -> ConcurrencyPolicy:
        if not self.min <= self.initial <= self.max:
            raise ValueError(f"need min <= initial <= max, got {self.min}, {self.initial}, "
                             f"{self.max}")
        return self


class AimdPolicy(Strict):
    target_latency_ms: float = Field(gt=0, description="p90 above this shrinks the limit (the "
                                     "ceiling of the target that follows the baseline)")
    baseline_tolerance: float = Field(gt=1, description="Target = this x the baseline (the "
                                      "lowest interval p50 in baseline_window_seconds), "
                                      "gradient style, capped by target_latency_ms")
    baseline_window_seconds: float = Field(gt=0, description="How long a low interval p50 "
                                           "stays the baseline")
    min_target_ms: float = Field(gt=0, description="The target never goes below this")
    increase: int = Field(ge=1, description="Additive increase per interval when healthy")
    decrease_factor: float = Field(gt=0, lt=1, description="Multiplicative decrease on pressure")
    interval_seconds: float = Field(gt=0, description="Seconds between adjustments")
    min_samples: int = Field(ge=1, description="Completed requests needed to judge latency")


class SheddablePerPriority(Strict):
    HIGH: float = Field(gt=0)
    MEDIUM: float = Field(gt=0)
    LOW: float = Field(gt=0)


class LoopLagPolicy(Strict):
    """Shedding on the measured lag of the serving event loop (CRITICAL is never shed by it)."""

    enabled: bool
    sample_interval_ms: float = Field(gt=0, description="Period of the lag-measuring callback")
    smoothing_seconds: float = Field(ge=0, description="EWMA time constant of a falling lag "
                                     "(a rise counts at once)")
    idle_stop_seconds: float = Field(gt=0, description="No request this long stops sampling")
    shed_from_ms: SheddablePerPriority = Field(description="Lag above which a priority starts "
                                               "to be shed")
    shed_all_ms: SheddablePerPriority = Field(description="Lag from which all of it is shed "
                                              "(linear in between)")

    @model_validator(mode="after")
    def _order(self) -> LoopLagPolicy:
        for p in ("HIGH", "MEDIUM", "LOW"):
            if getattr(self.shed_all_ms, p) <= getattr(self.shed_from_ms, p):
                raise ValueError(f"shed_all_ms.{p} must be above shed_from_ms.{p}")
        return self


class RateLimit(Strict):
    per_second: float = Field(gt=0, description="Sustained rate (GCRA emission interval 1/rate)")
    burst: int = Field(ge=1, description="Requests allowed back to back")


class RateLimits(Strict):
    CRITICAL: RateLimit
    HIGH: RateLimit
    MEDIUM: RateLimit
    LOW: RateLimit


class GateLevels(Strict):
    """Reading (percent) at or above which a priority is shed; null = never for that level.
    CRITICAL is never gated."""

    HIGH: float | None = Field(ge=0, le=100)
    MEDIUM: float | None = Field(ge=0, le=100)
    LOW: float | None = Field(ge=0, le=100)


class GatesPolicy(Strict):
    sample_interval_seconds: float = Field(gt=0, description="Resource reading refresh period")
    smoothing_seconds: float = Field(ge=0, description="EWMA time constant of the readings")
    retry_after_seconds: float = Field(gt=0, description="Retry-After of a gated request")
    cpu_percent: GateLevels
    ram_percent: GateLevels
    gpu_percent: GateLevels


class SurvivalThresholds(Strict):
    cpu_percent: float = Field(ge=0, le=100)
    ram_percent: float = Field(ge=0, le=100)


class AutoSurvivalPolicy(Strict):
    enabled: bool
    enter: SurvivalThresholds = Field(description="Pressure at or above any of these …")
    enter_after_seconds: float = Field(ge=0, description="… sustained this long enters survival")
    exit: SurvivalThresholds = Field(description="Every reading below these …")
    exit_after_seconds: float = Field(ge=0, description="… sustained this long leaves it")

    @model_validator(mode="after")
    def _hysteresis(self) -> AutoSurvivalPolicy:
        for f in ("cpu_percent", "ram_percent"):
            if getattr(self.exit, f) >= getattr(self.enter, f):
                raise ValueError(f"exit.{f} must be below enter.{f} (hysteresis), got "
                                 f"{getattr(self.exit, f)} >= {getattr(self.enter, f)}")
        return self


class SurvivalPolicy(Strict):
    profile: str = Field(description="SurvivalProfile resource used")
    auto: AutoSurvivalPolicy


class BackupEnginePolicy(Strict):
    """Used when a repository is created; an existing repository keeps its own chunking."""

    chunk_min_bytes: int = Field(ge=64)
    chunk_avg_bytes: int = Field(ge=256)
    chunk_max_bytes: int = Field(ge=1024)
    compression_level: int = Field(ge=-7, le=22, description="zstd level")
    incompressible_ratio: float = Field(gt=0, le=1, description="Store raw when compressed/raw "
                                        "size is above this")
    sample_bytes: int = Field(ge=1024, description="Prefix compressed first to detect "
                              "incompressible chunks cheaply")
    workers: int = Field(ge=1, description="Threads hashing/compressing/writing")
    fsync: bool = Field(description="fsync chunks and manifests before a backup counts")
    drill_port_start: int = Field(ge=1024, le=65535, description="Drill services listen on a free "
                                  "port at or above this")
    restore_roots: list[str] = Field(description="Absolute folders a restore may write into "
                                     "besides <data_dir>/restores")
    restore_wait_seconds: float = Field(gt=0, description="How long POST .../restore waits for "
                                        "the resilience controller to settle the request before "
                                        "answering 202 with its state")
    restore_history_keep: int = Field(ge=1, description="Settled restore requests kept")
    verify_every_seconds: float | None = Field(gt=0, description="Re-hash each plan's latest "
                                               "backup this often (alert 'backup_damaged' "
                                               "while damaged); null = never")

    @field_validator("restore_roots")
    @classmethod
    def _absolute_roots(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if not r.startswith("/")]
        if bad:
            raise ValueError(f"restore roots must be absolute paths: {', '.join(bad)}")
        return v

    @model_validator(mode="after")
    def _sizes(self) -> BackupEnginePolicy:
        if not self.chunk_min_bytes <= self.chunk_avg_bytes <= self.chunk_max_bytes:
            raise ValueError("need chunk_min_bytes <= chunk_avg_bytes <= chunk_max_bytes")
        return self


class ResiliencePolicy(Strict):
    admission: AdmissionPolicy
    queue: QueuePolicy
    concurrency: ConcurrencyPolicy
    aimd: AimdPolicy
    loop_lag: LoopLagPolicy
    rate_limits: RateLimits
    gates: GatesPolicy
    survival: SurvivalPolicy
    backup: BackupEnginePolicy


SECTIONS = {"resilience": ResiliencePolicy}
