"""Request and response bodies of the core operator API (separate from stored rows)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EPOCH_MAX", "DecisionBody", "DesiredStateOut", "EpochQuery", "LatestWhyOut", "ModeBody", "ModeName", "ModeOut",
           "RowId", "TIME_PATTERN", "TriggerOut", "parse_time", "time_query"]

# Bounded numbers, shared by every route: out-of-range values are a 422 naming the parameter,
# never an OverflowError or an SQLite integer overflow (a 500).
EPOCH_MAX = 32503680000.0  # 3000-01-01T00:00:00Z
ROW_ID_MAX = 2**63 - 1  # SQLite INTEGER
EpochQuery = Annotated[float | None, Query(ge=0, le=EPOCH_MAX, allow_inf_nan=False,
                                           description="Unix time in seconds (0 … year 3000)")]
# The forms ``parse_time`` accepts, as a pattern the OpenAPI document states (epoch seconds up to
# ten digits, or an ISO 8601 date/time from 1980 with days 01-28 only where a pattern cannot know
# the month's length — later days still parse, the pattern just does not promise them).
TIME_PATTERN = (r"^(\d{1,10}(\.\d{1,6})?|(19[89]\d|2\d{3})-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])"
                r"(T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?"
                r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?)?)$")


def time_query(description: str = "Epoch seconds or ISO 8601 (e.g. 2024-05-01T12:00:00Z)"
               ) -> Any:
    """A ``str | None`` query parameter holding a time in one of ``parse_time``'s forms."""
    return Query(None, pattern=TIME_PATTERN, description=description)


RowId = Annotated[int, Path(ge=1, le=ROW_ID_MAX, description="Row id (1 … 2^63-1)")]


def parse_time(text: str, field: str) -> float:
    """Epoch seconds or ISO 8601, within 0 … year 3000; ValueError with a message naming
    ``field`` otherwise."""
    try:
        t = float(text)
    except ValueError:
        try:
            t = datetime.fromisoformat(text).timestamp()
        except (ValueError, OverflowError, OSError):
            raise ValueError(f"{field}: {text!r} is neither epoch seconds nor an ISO 8601 time "
                             "such as 2024-05-01T12:00:00Z") from None
    if not math.isfinite(t) or not 0 <= t <= EPOCH_MAX:
        raise ValueError(f"{field}: {text!r} is out of range: epoch seconds from 0 to "
                         f"{EPOCH_MAX:.0f} (year 3000)")
    return t



ModeName = Literal["governed", "growth", "emergency_stop"]


class ModeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: ModeName = Field(
        description="Governance mode to switch to")
    reason: str | None = Field(None, max_length=2000, description="Why (kept in the audit log)")


class ModeOut(BaseModel):
    mode: ModeName
    previous: ModeName | None = None
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


class ChainStep(BaseModel):
    """One node of a decision's causal chain (oldest first), with its non-causal context."""
    id: str
    type: str
    label: str
    ts: str | None
    attrs: dict[str, Any] = Field(default_factory=dict)
    context: list[dict[str, Any]] = Field(default_factory=list)


class LatestDecision(BaseModel):
    controller: str
    resource: str
    ts: str | None = Field(description="Time of the chain's last decision step (ISO 8601)")
    chain: list[ChainStep]


class LatestWhyOut(BaseModel):
    """The latest decision chain of every controller's resources, newest first, at most
    ``limit`` of them (``total`` says how many there were)."""
    decisions: list[LatestDecision]
    total: int
    controllers: list[str]
