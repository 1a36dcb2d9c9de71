"""Evolution routes: rollout status, history, manual rollback, quarantine clearing.

Mutating routes need the bearer token. (``/scan`` and ``/update`` come with the evolution
controller; they are not served yet.)
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from autonomous.api.deps import Actor, Ctx, subsystem

__all__ = ["ClearBody", "RollbackBody", "router"]

router = APIRouter(prefix="/api/evolution", tags=["evolution"])


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1, description="Service whose running rollout to roll back")
    reason: str | None = Field(None, max_length=500, description="Why (kept in the history)")


class ClearBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1)
    version: str = Field(min_length=1, description="Quarantined version to allow again")


@router.get("/status")
def status(ctx: Ctx) -> dict[str, Any]:
    """Running rollouts and quarantined versions."""
    return subsystem(ctx, "evolution").status()


@router.get("/history")
def history(ctx: Ctx, limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
    """Rollout events (start, advance, rollback, commit) with their evidence, newest first."""
    return subsystem(ctx, "evolution").history(limit)


@router.post("/rollback")
def rollback(body: RollbackBody, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    """Roll a running rollout back now; its candidate version is quarantined."""
    return subsystem(ctx, "evolution").rollback(body.service, actor, body.reason)


@router.post("/quarantine/clear")
def clear(body: ClearBody, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    """Allow a quarantined version again (a human decision)."""
    return subsystem(ctx, "evolution").clear_quarantine(body.service, body.version)
