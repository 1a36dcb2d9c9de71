"""Self-healing policy: classification rules, strategy ladders, breakers, budgets, back-off.

Every number the healing engine uses lives here (values in ``policies/healing.yaml``). Rule
match keys are optional (``null`` = any value); everything else is required.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from autonomous.resources.base import Strict
from autonomous.resources.policy.core import BackoffPolicy

__all__ = [
    "ERROR_TYPES",
    "SECTIONS",
    "SEVERITIES",
    "SOURCES",
    "STRATEGIES",
    "AlertPolicy",
    "BrakePolicy",
    "BreakerPolicy",
    "ClassificationPolicy",
    "ClassificationRule",
    "CrashLoopPolicy",
    "DetectionPolicy",
    "FailureRatePolicy",
    "HealingPolicy",
    "IsolationPolicy",
    "MemoryPolicy",
    "RestartBudgetPolicy",
    "RetryPolicy",
    "RuleMatch",
    "StrategyLearningPolicy",
    "VerifyPolicy",
]

ERROR_TYPES = ("TRANSIENT", "CONFIGURATION", "RESOURCE", "DEPENDENCY", "FATAL")
STRATEGIES = ("RETRY", "RESTART_SERVICE", "RESTART_ALL", "ROLLBACK", "FALLBACK", "DEGRADE",
              "ISOLATE", "ALERT_HUMAN")
SEVERITIES = ("low", "medium", "high", "critical")
SOURCES = ("exit", "unhealthy", "not_ready", "unresponsive", "slow", "errors", "memory",
           "manual", "exception")

ErrorTypeName = Literal["TRANSIENT", "CONFIGURATION", "RESOURCE", "DEPENDENCY", "FATAL"]
StrategyName = Literal["RETRY", "RESTART_SERVICE", "RESTART_ALL", "ROLLBACK", "FALLBACK",
                       "DEGRADE", "ISOLATE", "ALERT_HUMAN"]
SeverityName = Literal["low", "medium", "high", "critical"]
SourceName = Literal["exit", "unhealthy", "not_ready", "unresponsive", "slow", "errors",
                     "memory", "manual", "exception", "heartbeat"]


class FailureRatePolicy(Strict):
    threshold: float = Field(gt=0, le=1, description="Failure fraction that opens the breaker")
    window_calls: int = Field(ge=1, description="Sliding window of the last N calls")
    min_calls: int = Field(ge=1, description="Calls needed in the window before judging")


class BreakerPolicy(Strict):
    failure_threshold: int = Field(ge=1, description="Consecutive failures that open it")
    timeout_seconds: float = Field(gt=0, description="Open → half-open after")
    success_threshold: int = Field(ge=1, description="Half-open successes that close it")
    failure_rate: FailureRatePolicy | None = Field(description="Optional rate window; null = off")
    slow_call_seconds: float | None = Field(gt=0, description="A call slower than this counts "
                                            "as a failure; null = off")


class RuleMatch(Strict):
    """Conditions of a rule; every key given must match (``null`` = any)."""

    source: list[SourceName] | None = None
    text: str | None = Field(None, description="Regex searched in exception, logs tail, probe "
                             "error (case-insensitive)")
    exception: list[str] | None = Field(None, description="Exception class names (MRO)")
    exit_code: list[int] | None = None
    signal: list[int] | None = Field(None, description="Signal that killed the process")
    status_min: int | None = Field(None, description="HTTP status at least")
    status_max: int | None = Field(None, description="HTTP status at most")
    probe_error: str | None = Field(None, description="Regex on the probe's error text")
    running: bool | None = Field(None, description="Process still running")
    stopped: bool | None = Field(None, description="Process in stopped state (SIGSTOP)")
    config_changed: bool | None = Field(None, description="Spec revision newer than the last "
                                        "known-good one")
    dependency_down: bool | None = None
    memory_over_limit: bool | None = None

    @field_validator("text", "probe_error")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
        return v


class ClassificationRule(Strict):
    name: str = Field(min_length=1)
    when: RuleMatch
    type: ErrorTypeName
    severity: SeverityName
    recoverable: bool
    strategies: list[StrategyName] | None = Field(description="Ladder for this rule; null = the "
                                                  "type's ladder")


class DefaultClass(Strict):
    type: ErrorTypeName
    severity: SeverityName
    recoverable: bool


class ClassificationPolicy(Strict):
    rules: list[ClassificationRule] = Field(description="First match wins")
    default: DefaultClass
    learned_min_samples: int = Field(ge=1, description="Resolutions of a signature before "
                                     "learned knowledge overrides the rules")
    log_tail_lines: int = Field(ge=0, description="Lines of the service log read as context")

    @field_validator("rules")
    @classmethod
    def _unique(cls, v: list[ClassificationRule]) -> list[ClassificationRule]:
        names = [r.name for r in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"rule name {dup[0]!r} is used twice; names must be unique")
        return v


class RetryPolicy(Strict):
    backoff: BackoffPolicy
    max_attempts: int = Field(ge=1, description="Retry budget per incident")


class VerifyPolicy(Strict):
    timeout_seconds: float = Field(gt=0, description="Wait this long for health after an action")
    poll_seconds: float = Field(gt=0, description="Health poll interval while verifying")
    stable_seconds: float = Field(ge=0, description="Healthy this long (same pid) = success")
    exit_restart_wait_seconds: float = Field(ge=0, description="After an exit, wait this long "
                                             "for the services controller's own restart")


class RestartBudgetPolicy(Strict):
    max_restarts: int = Field(ge=1, description="Restarts allowed inside the window")
    window_seconds: float = Field(gt=0)
    healthy_reset_seconds: float = Field(gt=0, description="Proven health that resets the count")


class CrashLoopPolicy(Strict):
    backoff: BackoffPolicy = Field(description="Growing, jittered, capped delay between tries")
    max_attempts: int = Field(ge=1, description="Back-off tries before ISOLATE + ALERT_HUMAN")


class IsolationPolicy(Strict):
    slow_retry_seconds: float = Field(gt=0, description="Period of the slow retry when isolated")


class DetectionPolicy(Strict):
    tick_seconds: float = Field(gt=0, description="Healing loop period without events")
    dependency_timeout_seconds: float = Field(gt=0, description="Timeout of dependency checks")
    probe_timeout_seconds: float = Field(gt=0, description="Timeout of the healer's own probes")
    memory_checks: bool = Field(description="Compare RSS with resources.memory_mb each tick")
    finding_window_seconds: float = Field(gt=0, description="A health.finding about a service "
                                          "this recent is linked to the incident opened for it "
                                          "(its evidence and graph chain)")
    evidence_probes: int = Field(16, ge=1, le=1000, description="Latest probe results per "
                                 "service kept as the evidence of why its breaker opened "
                                 "(errors, slow or unanswered: the incident's source)")


class MemoryPolicy(Strict):
    max_records: int = Field(ge=1, description="Failure-memory rows kept (oldest pruned)")
    retention_days: float = Field(gt=0)
    similarity_threshold: float = Field(gt=0, le=1, description="Token Jaccard to be similar")
    min_success_rate: float = Field(ge=0, le=1, description="A recurring failure healed less "
                                    "often than this gets the preventive action 'force "
                                    "another strategy'")
    recurring_window_seconds: float = Field(gt=0)
    recurring_min_count: int = Field(ge=2)


class AlertPolicy(Strict):
    dedup_seconds: float = Field(ge=0, description="Same service+reason alerted once per")
    log_tail_lines: int = Field(ge=0, description="Log lines attached to a human alert")


class StrategyLearningPolicy(Strict):
    """Beta prior and credibility of the per (signature, strategy) success posterior."""

    prior_alpha: float = Field(gt=0, description="Beta prior successes of an unseen pair")
    prior_beta: float = Field(gt=0, description="Beta prior failures of an unseen pair")
    credibility: float = Field(gt=0, lt=1, description="One-sided credible level: a strategy "
                               "is ranked by the lower end of its success-rate interval")


class BrakePolicy(Strict):
    """Global brake: too many services in remediation at once is a human's call."""

    max_services_in_remediation: int = Field(ge=1, description="More services than this with "
                                             "an open incident (or in back-off / isolation) "
                                             "at once: escalate to a human, remediate no more")


class HeartbeatPolicy(Strict):
    """The heartbeat client (``autonomous.self_healing.heartbeat``, e.g. NEXUS's)."""

    path: str = Field(pattern=r"^/", description="Heartbeat endpoint path of the service")
    interval_seconds: float = Field(gt=0, description="Period of ``HeartbeatClient.run``")
    timeout_seconds: float = Field(gt=0, description="A heartbeat slower than this failed")


class HealingPolicy(Strict):
    breaker: BreakerPolicy = Field(description="Breaker around healing actions per service")
    service_breaker: BreakerPolicy = Field(description="Breaker fed by the service's probes "
                                           "(slow or error responses)")
    classification: ClassificationPolicy
    strategies: dict[ErrorTypeName, list[StrategyName]] = Field(description="Ladder per type")
    retry: RetryPolicy
    verify: VerifyPolicy
    restart_budget: RestartBudgetPolicy
    crashloop: CrashLoopPolicy
    isolation: IsolationPolicy
    detection: DetectionPolicy
    memory: MemoryPolicy
    alerts: AlertPolicy
    heartbeat: HeartbeatPolicy
    heartbeat_breaker: BreakerPolicy = Field(description="Breaker around each heartbeat call: "
                                             "open = no heartbeats sent, no heals requested")
    history_max_rows: int = Field(ge=1)
    learning: StrategyLearningPolicy = Field(description="How the next strategy of an "
                                             "incident is chosen from measured outcomes")
    brake: BrakePolicy

    approval_list: None = Field(None, description="Removed: folded into governance.actions "
                                "(set a strategy's action kind to require_approval there)")

    @field_validator("approval_list", mode="before")
    @classmethod
    def _folded(cls, v: object) -> None:
        if v is not None:
            raise ValueError(
                "healing.approval_list was folded into governance.actions (one gate for every "
                "controller): delete it and set the strategies' action kinds to "
                "require_approval in the mode's overlay, e.g. governance.actions.restart_all / "
                ".rollback in policies/governed.yaml (kinds: " + ", ".join(
                    sorted(_STRATEGY_KINDS)) + ")")
        return None

    @model_validator(mode="after")
    def _every_type(self) -> HealingPolicy:
        missing = [t for t in ERROR_TYPES if t not in self.strategies]
        if missing:
            raise ValueError(f"strategies: missing ladder for {', '.join(missing)}; every error "
                             f"type needs one (from {', '.join(STRATEGIES)})")
        return self


_STRATEGY_KINDS = ("retry", "restart", "restart_all", "rollback", "fallback", "degrade",
                   "isolate", "alert_human")

SECTIONS = {"healing": HealingPolicy}
