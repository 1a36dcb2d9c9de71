"""``OperatorConfig``: how the operator itself runs (config/autonomous.yaml)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from autonomous.resources.base import Strict

__all__ = ["KINDS", "SUBSYSTEMS", "ControllerSettings", "ListenSpec", "OperatorConfigSpec",
           "ParseLimitsSpec"]

SUBSYSTEMS = ("services", "health_monitor", "self_healing", "evolution", "telemetry",
              "resilience", "learning")


class ListenSpec(Strict):
    host: str = Field("127.0.0.1", description="API listen address (loopback by default)")
    port: int = Field(8791, ge=0, le=65535, description="API port (PUSH)")


class ParseLimitsSpec(Strict):
    """Bounds on parsing one desired-state file (the next reload uses them)."""

    max_file_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest file read")
    max_nodes: int = Field(200_000, ge=100, description="Most values built per document, "
                           "aliases expanded included")
    max_alias_expansions: int = Field(10_000, ge=0, description="Most alias expansions per "
                                      "document")
    max_depth: int = Field(100, ge=4, le=1000, description="Deepest nesting")


class ControllerSettings(Strict):
    enabled: bool = Field(True, description="Run this subsystem's controller")
    interval_seconds: float = Field(gt=0, description="Reconcile period")


class OperatorConfigSpec(Strict):
    listen: ListenSpec = Field(default_factory=ListenSpec)
    data_dir: str = Field(".atlas-data", description="Data dir, relative to the root")
    reload_debounce_ms: int = Field(50, ge=0, le=1000, description="File watch debounce")
    reload_step_ms: int = Field(100, ge=10, le=1000, description="How often the file watcher "
                                "wakes to gather changes and look for shutdown: lower reacts "
                                "sooner and costs more wake-ups")
    parse_limits: ParseLimitsSpec = Field(default_factory=ParseLimitsSpec,
                                          description="Limits of the desired-state parser")
    controllers: dict[str, ControllerSettings] = Field(description="Per-subsystem settings")
    settings: dict[str, Any] = Field(default_factory=dict,
                                     description="Subsystem sections (see config sections)")

    @field_validator("controllers")
    @classmethod
    def _known(cls, v: dict[str, ControllerSettings]) -> dict[str, ControllerSettings]:
        unknown = sorted(set(v) - set(SUBSYSTEMS))
        if unknown:
            raise ValueError(f"unknown subsystem {unknown[0]!r}; allowed: {', '.join(SUBSYSTEMS)}")
        return v


KINDS = {"OperatorConfig": OperatorConfigSpec}
