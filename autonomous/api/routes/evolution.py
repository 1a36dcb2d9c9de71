"""Evolution routes: scan for updates, ask for one, rollout status, history, manual rollback,
quarantine clearing, update proposals.

Mutating routes need the bearer token. ``/scan`` and ``/update`` only record proposals: the
evolution controller applies them through the governance gate (growth: applied; governed: an
approval; emergency_stop: recorded only), a Service behind the gateway by a staged rollout.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from autonomous.api.deps import Actor, Ctx, subsystem

__all__ = ["ClearBody", "ProposalOut", "RollbackBody", "ScanBody", "ScanOut", "UpdateBody",
           "UpdateOut", "UpdateSetBody", "UpdateSetOut", "router"]

router = APIRouter(prefix="/api/evolution", tags=["evolution"])


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1, description="Service whose running rollout to roll back")
    reason: str | None = Field(None, max_length=500, description="Why (kept in the history)")


class ClearBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1)
    version: str = Field(min_length=1, description="Quarantined version to allow again")


class ScanBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str | None = Field(None, min_length=1, description="Only this service's "
                                "UpdateSource (default: every one)")


class UpdateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1, description="Declared service to update")
    version: str = Field(min_length=1, max_length=100, description="Version to run")
    command: list[str] | None = Field(None, min_length=1, max_length=200,
                                      description="Its argv (default: the Service's own)")


class SetMemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1, description="Declared service (with spec.traffic)")
    version: str = Field(min_length=1, max_length=100, description="Version to run")
    command: list[str] | None = Field(None, min_length=1, max_length=200,
                                      description="Its argv (default: the Service's own)")


class UpdateSetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    services: list[SetMemberIn] = Field(min_length=1, max_length=50, description=(
        "Members of one all-or-nothing set; rolled out in dependency order (depends_on), "
        "each after the previous reached FULL, committed together"))


class SetMemberOut(BaseModel):
    index: int
    service: str
    from_version: str
    to_version: str
    command: list[str] | None
    status: str = Field(description="pending, rolling, committed, rolled_back, aborted, "
                        "skipped")
    proposal_id: int | None
    abort_reason: str | None
    commit_released: bool


class UpdateSetOut(BaseModel):
    id: int
    state: str = Field(description="pending, rolling, committing, done, rolling_back, "
                       "rolled_back")
    current_index: int
    failed_member: str | None = Field(description="The member whose rollback failed the set")
    reason: str
    origin: str
    created_at: float
    updated_at: float
    members: list[SetMemberOut]


class ProposalOut(BaseModel):
    id: int
    service: str
    current: str
    version: str
    origin: str
    command: list[str] | None
    state: str = Field(description="proposed, rolling_out, applied, rolled_back or failed")
    reason: str
    created_at: float
    updated_at: float


class ScanItem(BaseModel):
    service: str
    source: str = Field(description="The UpdateSource resource")
    current: str | None
    found: str | None = Field(description="Newest newer version (None: up to date)")
    proposal: ProposalOut | None
    new: bool = Field(description="False when an open proposal for it existed")
    error: str | None


class ScanOut(BaseModel):
    results: list[ScanItem]


class UpdateOut(BaseModel):
    proposal: ProposalOut
    new: bool


@router.post("/scan", response_model=ScanOut)
def scan(body: ScanBody, ctx: Ctx, actor: Actor) -> ScanOut:
    """Look for updates in the declared UpdateSources; each newer, non-quarantined version
    becomes a proposal (applied per governance mode)."""
    return ScanOut.model_validate(subsystem(ctx, "evolution").scan(body.service))


_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "A service is not declared"},
    409: {"description": "Quarantined, already declared, a duplicate, a dependency cycle, "
                         "no spec.traffic, or already in an open set"},
    503: {"description": "The evolution subsystem is not running"}}


@router.post("/update", response_model=UpdateOut | UpdateSetOut, responses=_ERRORS)
def update(body: UpdateBody | UpdateSetBody, ctx: Ctx, actor: Actor
           ) -> UpdateOut | UpdateSetOut:
    """Ask for a service at a version: a proposal like a found one (409 when quarantined or
    already declared). ``{"services": [...]}``: an update set, all or nothing."""
    if isinstance(body, UpdateSetBody):
        made = UpdateSetOut.model_validate(subsystem(ctx, "update_sets").create(
            [(m.service, m.version, m.command) for m in body.services], actor))
        ctx.trigger("evolution_sets")  # its owner takes it up now, not at its next interval
        return made
    out = UpdateOut.model_validate(subsystem(ctx, "evolution").update(
        body.service, body.version, body.command, actor))
    ctx.trigger("evolution")
    return out


@router.get("/sets", response_model=list[UpdateSetOut], responses={503: _ERRORS[503]})
def sets(ctx: Ctx, limit: int = Query(100, ge=1, le=1000)) -> list[UpdateSetOut]:
    """Update sets, newest first: state, members in order, the failing member and reason."""
    return [UpdateSetOut.model_validate(r)
            for r in subsystem(ctx, "update_sets").recent(limit)]


@router.get("/proposals", response_model=list[ProposalOut])
def proposals(ctx: Ctx, limit: int = Query(100, ge=1, le=1000)) -> list[ProposalOut]:
    """Update proposals, newest first, with what became of them."""
    return [ProposalOut.model_validate(r)
            for r in subsystem(ctx, "evolution").list_proposals(limit)]


_LIVE = ("phase", "weight", "device_version", "min_bake_seconds", "deadline_seconds",
         "verdict", "score", "baseline_n", "candidate_n", "rounds", "decision",
         "deadline_paused")


@router.get("/status")
def status(ctx: Ctx) -> dict[str, Any]:
    """Running rollouts (each with the evolution controller's last report: ``phase`` by name,
    ``weight``, the judge's ``verdict`` and samples, the ``decision`` taken from it;
    ``deadline_paused`` while its promotion waits for an approval),
    quarantined versions, open update sets (``sets``) and the approval
    requests that hold any of them (``awaiting_approval``: id, resource, action, reason,
    expires_at; governed mode asks before a rollout starts, advances or rolls back)."""
    out: dict[str, Any] = subsystem(ctx, "evolution").status()
    board = {r["details"].get("rollout_id"): r["details"]
             for r in ctx.status.resources_of("evolution", "Rollout")}
    for r in out["rollouts"]:  # the controller's last word on each: phase, verdict, decision
        r.update({k: v for k, v in board.get(r["id"], {}).items() if k in _LIVE})
    facade = ctx.subsystems.get("update_sets")
    out["sets"] = facade.open() if facade is not None else []
    out["awaiting_approval"] = [
        {"id": a["id"], "resource": a["resource"], "action": a["action_kind"],
         "reason": a["action"].get("reason", ""), "expires_at": a["expires_at"]}
        for a in ctx.approvals.list("pending", limit=1000)
        if a["controller"] in ("evolution", "evolution_sets")]
    return out


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
