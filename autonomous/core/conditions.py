"""Kubernetes-style status: sync and health kept apart, plus conditions."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["Condition", "HealthStatus", "ResourceStatus", "SyncStatus"]


class SyncStatus(str, Enum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"


class HealthStatus(str, Enum):
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    SUSPENDED = "Suspended"
    MISSING = "Missing"
    UNKNOWN = "Unknown"


@dataclass
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str
    last_transition_time: float

    def as_dict(self) -> dict[str, Any]:
        from autonomous.core.clock import iso

        return {
            "type": self.type, "status": self.status, "reason": self.reason,
            "message": self.message, "last_transition_time": iso(self.last_transition_time),
        }


@dataclass
class ResourceStatus:
    kind: str
    name: str
    sync: SyncStatus = SyncStatus.UNKNOWN
    health: HealthStatus = HealthStatus.UNKNOWN
    observed_generation: int | None = None
    conditions: dict[str, Condition] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def set_condition(self, type_: str, status: bool | None, reason: str, message: str,
                      now: float) -> None:
        """Set a condition; ``last_transition_time`` moves only when ``status`` changes."""
        s = "Unknown" if status is None else ("True" if status else "False")
        old = self.conditions.get(type_)
        ts = old.last_transition_time if old is not None and old.status == s else now
        self.conditions[type_] = Condition(type_, s, reason, message, ts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "name": self.name, "sync": self.sync.value,
            "health": self.health.value, "observed_generation": self.observed_generation,
            "conditions": [c.as_dict() for c in self.conditions.values()],
            "details": self.details,
        }
