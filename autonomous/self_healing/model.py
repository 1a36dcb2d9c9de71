"""Vocabulary of the healing engine: error types, strategies, classifications, results.

``ErrorType`` and ``RecoveryStrategy`` are the specification's names; ``STRATEGY_ACTION``
maps each strategy to the governance action kind that gates it (``policy.governance.actions``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

__all__ = [
    "STRATEGY_ACTION",
    "STRATEGY_HELP",
    "Classification",
    "ErrorReport",
    "ErrorType",
    "NotApplicable",
    "RecoveryStrategy",
    "Severity",
    "StrategyResult",
]


class ErrorType(str, Enum):
    TRANSIENT = "TRANSIENT"
    CONFIGURATION = "CONFIGURATION"
    RESOURCE = "RESOURCE"
    DEPENDENCY = "DEPENDENCY"
    FATAL = "FATAL"


class Severity(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class RecoveryStrategy(str, Enum):
    RETRY = "RETRY"
    RESTART_SERVICE = "RESTART_SERVICE"
    RESTART_ALL = "RESTART_ALL"
    ROLLBACK = "ROLLBACK"
    FALLBACK = "FALLBACK"
    DEGRADE = "DEGRADE"
    ISOLATE = "ISOLATE"
    ALERT_HUMAN = "ALERT_HUMAN"


STRATEGY_ACTION: dict[RecoveryStrategy, str] = {
    RecoveryStrategy.RETRY: "retry",
    RecoveryStrategy.RESTART_SERVICE: "restart",
    RecoveryStrategy.RESTART_ALL: "restart_all",
    RecoveryStrategy.ROLLBACK: "rollback",
    RecoveryStrategy.FALLBACK: "fallback",
    RecoveryStrategy.DEGRADE: "degrade",
    RecoveryStrategy.ISOLATE: "isolate",
    RecoveryStrategy.ALERT_HUMAN: "alert_human",
}

STRATEGY_HELP: dict[RecoveryStrategy, str] = {
    RecoveryStrategy.RETRY: "re-check the service with exponential backoff and jitter, within a "
                            "retry budget (a transient glitch that passes needs no action)",
    RecoveryStrategy.RESTART_SERVICE: "graceful stop (SIGTERM), forced after the grace period "
                                      "(SIGKILL), start, wait until the health check passes",
    RecoveryStrategy.RESTART_ALL: "restart every declared service in dependency order",
    RecoveryStrategy.ROLLBACK: "block the service's current revision and run its last "
                               "known-good one (sticks until the desired state changes)",
    RecoveryStrategy.FALLBACK: "route to the fallback service or URL declared in the Service "
                               "spec, after checking that it is healthy",
    RecoveryStrategy.DEGRADE: "turn the service's non-core features off through its "
                              "feature-flag endpoint (restored when it recovers)",
    RecoveryStrategy.ISOLATE: "stop the service and mark it isolated: it is not started again "
                              "until a human or the slow periodic retry clears it",
    RecoveryStrategy.ALERT_HUMAN: "publish alert.human with classification, attempts, logs "
                                  "tail and knowledge-graph link, and keep it in the store",
}


class Classification(NamedTuple):
    """``classify_error`` result; unpacks as ``(error_type, severity, recoverable)`` first."""

    error_type: ErrorType
    severity: Severity
    recoverable: bool
    rule: str = "default"
    strategies: tuple[RecoveryStrategy, ...] = ()
    signature: str = ""
    learned: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"error_type": self.error_type.value, "severity": self.severity.value,
                "recoverable": self.recoverable, "rule": self.rule,
                "strategies": [s.value for s in self.strategies], "signature": self.signature,
                "learned": self.learned}


@dataclass
class ErrorReport:
    """One detected failure: what happened to which service, with the evidence gathered."""

    service: str
    source: str  # exit | unhealthy | unresponsive | slow | errors | memory | manual | exception
    message: str
    exception: BaseException | None = None
    context: dict[str, Any] = field(default_factory=dict)
    detected_at: float = 0.0  # wall clock
    detected_mono: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        ctx = {k: v for k, v in self.context.items() if k != "log_tail"}
        return {"service": self.service, "source": self.source, "message": self.message,
                "exception": type(self.exception).__name__ if self.exception else None,
                "context": ctx}


@dataclass(frozen=True)
class StrategyResult:
    """What a strategy did. ``ok`` means its effect was verified, not merely attempted;
    ``applicable`` False means it could not apply here (nothing declared for it, nothing to
    act on, or only a re-check that did not pass): skipped, not a failed heal attempt."""

    strategy: RecoveryStrategy
    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    applicable: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy.value, "ok": self.ok, "message": self.message,
                "details": self.details, "applicable": self.applicable}


class NotApplicable(Exception):  # noqa: N818 - a verdict, not an error
    """Raised through a ``heal:<service>`` breaker for a strategy that could not apply
    (``StrategyResult.applicable`` False): the breaker excludes it from its count."""

    def __init__(self, result: StrategyResult) -> None:
        super().__init__(result.message)
        self.result = result
