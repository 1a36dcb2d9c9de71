"""Resilience kinds: ``BackupPlan`` (what to back up, when, how long to keep it, how to drill a
restore) and ``SurvivalProfile`` (what stays up in survival mode)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from autonomous.resources.base import Strict

__all__ = [
    "KINDS",
    "BackupPlanSpec",
    "DrillSpec",
    "RetentionSpec",
    "ScheduleSpec",
    "SurvivalProfileSpec",
]


class ScheduleSpec(Strict):
    every_seconds: float = Field(gt=0, description="Seconds between scheduled backups")
    full_every: int = Field(ge=1, description="Every Nth scheduled backup is full, the others "
                            "incremental (1 = always full)")
    first_after_seconds: float = Field(ge=0, description="A plan with no backup yet gets its "
                                       "first this long after the operator starts (the stack's "
                                       "start-up goes first; 0 = at once)")


class RetentionSpec(Strict):
    keep_last: int = Field(ge=1, description="Always keep the newest N backups of the plan")
    keep_daily: int = Field(ge=0, description="Keep the newest backup of each of the last N days")
    keep_weekly: int = Field(ge=0, description="Keep the newest backup of each of the last N "
                             "ISO weeks")


class DrillSpec(Strict):
    command: list[str] = Field(min_length=1, description="argv started from the restored tree; "
                               "'{python}', '{restore_dir}' and '{port}' are expanded")
    health_path: str = Field(description="GET path that must answer 2xx once the service is up")
    timeout_seconds: float = Field(gt=0, description="Time allowed to become healthy")

    @field_validator("health_path")
    @classmethod
    def _abs(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"{v!r} must start with '/' (for example '/health')")
        return v


class BackupPlanSpec(Strict):
    paths: list[str] = Field(min_length=1, description="Files or folders to back up, relative "
                             "to the root; '{data_dir}' is the operator data dir")
    exclude: list[str] = Field(default_factory=list, description="Glob patterns (matched on the "
                               "path inside the backup) left out")
    repository: str = Field("{data_dir}/backups", description="Backup repository folder")
    encryption: Literal["auto", "on", "off"] = Field(
        "auto", description="Seal the repository (AES-256-GCM, authenticated): 'auto' does "
        "when the repository is outside the data dir (another disk, a mounted share)")
    key_file: str | None = Field(None, description="Key of a sealed repository, created 0600 "
                                 "on first use; null: {data_dir}/keys/backup-<plan>.key. Keep "
                                 "a copy elsewhere: without it the backups cannot be read")
    schedule: ScheduleSpec | None = Field(None, description="Omitted: only on demand")
    retention: RetentionSpec
    drill: DrillSpec | None = Field(None, description="Service started from a restored copy by "
                                    "the DR drill; omitted: built-in checks only")

    @field_validator("paths")
    @classmethod
    def _rel(cls, v: list[str]) -> list[str]:
        for p in v:
            if not p.strip():
                raise ValueError("an empty path backs up nothing: name a file or folder")
        return v


class SurvivalProfileSpec(Strict):
    core_services: list[str] = Field(default_factory=list, description="Services kept running "
                                     "besides those declared core: true")
    disabled_features: list[str] = Field(default_factory=list, description="Operator features "
                                         "frozen in survival (evolution, optimizations, ...)")
    disable_service_features: bool = Field(True, description="Turn off every non-core feature "
                                           "of the services kept running")

    def service_refs(self) -> list[tuple[tuple, str]]:
        """References to declared Services (checked by the loader)."""
        return [(("spec", "core_services", i), s) for i, s in enumerate(self.core_services)]


KINDS = {"BackupPlan": BackupPlanSpec, "SurvivalProfile": SurvivalProfileSpec}
