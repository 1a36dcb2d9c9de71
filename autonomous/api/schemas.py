"""Request and response bodies of the core operator API (separate from stored rows)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DecisionBody", "DesiredStateOut", "ModeBody", "ModeOut", "TriggerOut"]


class ModeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["governed", "growth", "emergency_stop"] = Field(
        description="Governance mode to switch to")
    reason: str | None = Field(None, max_length=2000, description="Why (kept in the audit log)")


class ModeOut(BaseModel):
    mode: str
    previous: str | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=2000)


class DesiredStateOut(BaseModel):
    generation: int | None
    hash: str | None
    commit: str | None
    created_at: str | None
    error: dict[str, Any] | None
    root: str
    history: list[dict[str, Any]] = Field(default_factory=list)


class TriggerOut(BaseModel):
    controller: str
    triggered: bool
