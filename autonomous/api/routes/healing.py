"""Self-healing routes: trigger a heal, history, strategies, human overrides, stats.

Approvals of gated strategies are served by the operator routes (``/api/approvals``).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from autonomous.api.deps import Actor, Ctx, subsystem
from autonomous.api.schemas import EpochQuery
from autonomous.core.clock import iso

__all__ = ["OverrideBody", "TriggerBody", "router"]

router = APIRouter(prefix="/api/healing", tags=["healing"])

StrategyName = Literal["RETRY", "RESTART_SERVICE", "RESTART_ALL", "ROLLBACK", "FALLBACK",
                       "DEGRADE", "ISOLATE", "ALERT_HUMAN"]
OverrideAction = Literal["pause", "resume", "force_strategy", "clear_strategy", "release",
                         "restore", "reset_breaker"]


class TriggerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1, description="Declared service to heal")
    strategy: StrategyName | None = Field(None, description="Force this strategy first")
    reason: str | None = Field(None, max_length=500, description="Why (kept in the history)")


class OverrideBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1)
    action: OverrideAction = Field(description="pause/resume auto-healing, force_strategy "
                                   "(with strategy), clear_strategy, release (leave back-off or "
                                   "isolation), restore (undo degrade/fallback), reset_breaker")
    strategy: StrategyName | None = None
    reason: str | None = Field(None, max_length=500)


class IncidentOut(BaseModel):
    id: str | None = None
    service: str
    state: str
    message: str
    source: str | None = None
    error_type: str | None = None
    severity: str | None = None
    rule: str | None = None
    error_signature: str | None = None
    strategy: str | None = None
    gate: str | None = None
    success: bool | None = None
    detected_at: str | None = None
    finished_at: str | None = None
    mttr_s: float | None = None
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    graph_node: str | None = None
    mode: str | None = None
    generation: int | None = None


def _incident(row: dict[str, Any]) -> IncidentOut:
    data = dict(row)
    for k in ("detected_at", "finished_at"):
        if isinstance(data.get(k), (int, float)):
            data[k] = iso(data[k])
    return IncidentOut(**data)


@router.post("/trigger", response_model=IncidentOut)
async def trigger(body: TriggerBody, ctx: Ctx, actor: Actor) -> IncidentOut:
    """Heal a service now: classify, choose (or force) a strategy, run it, verify."""
    facade = subsystem(ctx, "healing")
    row = await facade.trigger(body.service, body.strategy,
                               f"{body.reason or 'healing requested'} (by {actor})")
    return _incident(row)


@router.get("/history", response_model=list[IncidentOut])
def history(ctx: Ctx, service: str | None = None, error_type: str | None = None,
            strategy: str | None = None, state: str | None = None,
            success: bool | None = None,
            since: EpochQuery = None,
            limit: int = Query(100, ge=1, le=1000)) -> list[IncidentOut]:
    """Healing incidents, newest first, filtered."""
    rows = subsystem(ctx, "healing").history(service=service, error_type=error_type,
                                             strategy=strategy, state=state, success=success,
                                             since=since, limit=limit)
    return [_incident(r) for r in rows]


@router.get("/strategies")
def strategies(ctx: Ctx) -> dict[str, Any]:
    """Every strategy: what it does, its action kind, its gate in the mode in force."""
    return subsystem(ctx, "healing").strategies()


@router.post("/override")
async def override(body: OverrideBody, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    """Force a strategy, pause or resume auto-healing, release or restore a service."""
    return await subsystem(ctx, "healing").override(body.service, body.action, body.strategy,
                                                    body.reason, actor)


@router.get("/stats")
def stats(ctx: Ctx) -> dict[str, Any]:
    """Attempts, successes and MTTR per error type; breakers; per-service phases."""
    return subsystem(ctx, "healing").stats()


@router.get("/alerts")
def alerts(ctx: Ctx, service: str | None = None, open_only: bool = False,
           limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
    """Self-healing's alerts for humans, newest first: a read of the one alert store (the
    telemetry alerts, rule ``self_healing_alert``; ack and silence them there:
    ``/api/telemetry/alerts``, ``atlas-autonomous alerts``)."""
    return subsystem(ctx, "healing").alerts(service=service, open_only=open_only, limit=limit)


@router.get("/recurring")
def recurring(ctx: Ctx) -> dict[str, Any]:
    """Recurring errors from failure memory and the preventive actions they suggest."""
    return subsystem(ctx, "healing").recurring()
