"""Resilience routes: admission queue and throttling, survival mode, backups and DR drills."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from autonomous.api.deps import Actor, Ctx, subsystem
from autonomous.core.clock import iso
from autonomous.core.errors import Conflict, NotFound, Refused
from autonomous.governance.approvals import approve_command
from autonomous.backup.manifest import ManifestDamaged
from autonomous.backup.restore import RestoreRefused, UnsafeBackup
from autonomous.backup.target import RestoreTargetRefused

if TYPE_CHECKING:
    from autonomous.context import OperatorContext
    from autonomous.resilience.facade import ResilienceFacade

__all__ = ["BackupBody", "RestoreBody", "SurvivalBody", "router"]

router = APIRouter(prefix="/api/resilience", tags=["resilience"])
T = TypeVar("T")


class SurvivalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("requested through the API", min_length=1, max_length=500)


class BackupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: str = Field("operator", min_length=1, description="BackupPlan to run")
    kind: Literal["full", "incremental"] = "full"


class RestoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str = Field(min_length=1, description="New or empty folder; relative paths land "
                        "under <data_dir>/restores/")


class SurvivalOut(BaseModel):
    active: bool
    reason: str | None = None
    source: str | None = None
    since: str | None = None
    kept_services: list[str] = Field(default_factory=list)
    stopped_services: list[str] = Field(default_factory=list)
    disabled_features: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    history: list[dict[str, Any]] = Field(default_factory=list)


class BackupOut(BaseModel):
    id: str
    plan: str
    kind: str
    parent: str | None
    seq: int
    created_at: str | None
    files: int
    bytes: int
    sources: dict[str, str]
    stats: dict[str, Any]


def _survival(facade: ResilienceFacade) -> SurvivalOut:
    s = facade.survival.state()
    return SurvivalOut(active=s["active"], reason=s.get("reason"), source=s.get("source"),
                       since=iso(s.get("since")) if s["active"] else None,
                       kept_services=s.get("kept_services", []),
                       stopped_services=s.get("stopped_services", []),
                       disabled_features=facade.get_disabled_features(),
                       errors=s.get("errors", []) + s.get("exit_errors", []),
                       history=facade.survival.history(10))


def _backup(b: dict[str, Any]) -> BackupOut:
    return BackupOut(**{**b, "created_at": iso(b["created_at"])})


async def _guarded(op: Awaitable[T]) -> T:
    """Engine errors → API errors that say what to do."""
    try:
        return await op
    except RestoreRefused as exc:
        raise Conflict(str(exc)) from None
    except UnsafeBackup as exc:
        raise Refused(str(exc)) from None
    except (FileExistsError, FileNotFoundError) as exc:
        raise Conflict(str(exc)) from None
    except RestoreTargetRefused as exc:
        raise Refused(str(exc)) from None
    except ManifestDamaged as exc:
        raise Conflict(f"backup manifest is damaged: {exc}") from None
    except OSError as exc:  # e.g. a read-only or pseudo file system under an allowed root
        raise Refused(f"restore failed: {exc.strerror or exc}") from None


@router.get("/queue")
async def queue(ctx: Ctx) -> dict[str, Any]:
    """Admission queue: depth, wait percentiles and shed counts per priority."""
    return subsystem(ctx, "resilience").queue_stats()


@router.get("/throttling")
async def throttling(ctx: Ctx) -> dict[str, Any]:
    """Concurrency limit (AIMD), rate limits, resource gates, readings and throttle counts."""
    return subsystem(ctx, "resilience").throttling_stats()


@router.get("/survival", response_model=SurvivalOut)
async def survival(ctx: Ctx) -> SurvivalOut:
    """Survival mode state and its recent transitions."""
    return _survival(subsystem(ctx, "resilience"))


class SurvivalPending(BaseModel):
    request: str
    state: str
    detail: str
    approval: str | None = None
    approve: str | None = None


_SURVIVAL_202: dict[int | str, dict[str, Any]] = {202: {"model": SurvivalPending, "description": "Recorded; not done (yet): "
                       "awaiting approval (governance.actions.survival is require_approval; "
                       "the body names the approval and the command that approves it), a "
                       "dry-run or rejected, or not settled within intents."
                       "request_wait_seconds"}}


async def _survival_request(ctx: OperatorContext, op: str, body: SurvivalBody,
                            actor: str) -> SurvivalOut | JSONResponse:
    """Survival enter/exit goes through the one governance gate: the resilience controller
    carries out the request as a ``survival`` action."""
    facade: ResilienceFacade = subsystem(ctx, "resilience")
    it = await facade.request_survival(op, body.reason, actor)
    if it is not None and it.state == "consumed":
        return _survival(facade)
    note = (it.outcome if it is not None else None) or "recorded; the resilience controller " \
        "has not settled it yet"
    out = SurvivalPending(request=it.id if it is not None else "", detail=note,
                          state=it.state if it is not None else "missing")
    if note.startswith("awaiting approval "):
        aid = note.split()[-1]
        out.approval, out.approve = aid, approve_command(aid)
        out.state = "awaiting_approval"
    return JSONResponse(status_code=202, content=out.model_dump())


@router.post("/survival/enter", response_model=SurvivalOut, responses=_SURVIVAL_202)
async def survival_enter(body: SurvivalBody, ctx: Ctx, actor: Actor) -> Any:
    """Enter survival mode: stop non-core services, turn non-core features off (through the
    governance gate, action kind ``survival``)."""
    return await _survival_request(ctx, "enter", body, actor)


@router.post("/survival/exit", response_model=SurvivalOut, responses=_SURVIVAL_202)
async def survival_exit(body: SurvivalBody, ctx: Ctx, actor: Actor) -> Any:
    """Leave survival mode: features back on, stopped services started again (through the
    governance gate, action kind ``survival``)."""
    return await _survival_request(ctx, "exit", body, actor)


@router.post("/backup", response_model=BackupOut)
async def backup(body: BackupBody, ctx: Ctx, actor: Actor) -> BackupOut:
    """Take a full or incremental backup of a BackupPlan now."""
    facade = subsystem(ctx, "resilience")
    return _backup(await _guarded(facade.backup(body.plan, body.kind)))


@router.get("/backups", response_model=list[BackupOut])
async def backups(ctx: Ctx, plan: str | None = Query(None)) -> list[BackupOut]:
    """Backups in the plans' repositories, newest first."""
    return [_backup(b) for b in subsystem(ctx, "resilience").list_backups(plan)]


@router.post("/backups/{backup_id}/verify")
async def verify(backup_id: str, ctx: Ctx, actor: Actor,
                 repair: bool = Query(False, description="rewrite damaged chunks from the "
                                      "live data where it still hashes to the chunk name")
                 ) -> dict[str, Any]:
    """Re-hash every chunk of a backup; name the damaged chunks and files."""
    return await subsystem(ctx, "resilience").verify(backup_id, repair)


# a failed restore request's recorded error kind → the API error it is
_FAILED = {"RestoreRefused": Conflict, "FileExistsError": Conflict,
           "FileNotFoundError": Conflict, "UnsafeBackup": Refused,
           "RestoreTargetRefused": Refused, "NotFound": NotFound, "PermissionError": Refused,
           "ManifestDamaged": Conflict}


async def _request(facade: ResilienceFacade, backup_id: str, target: str,
                   actor: str) -> dict[str, Any]:
    return facade.request_restore(backup_id, target, actor)


@router.post("/backups/{backup_id}/restore", responses={
    202: {"description": "Recorded; waiting for approval (the body names the approval and "
          "the command that approves it) or still running"}})
async def restore(backup_id: str, body: RestoreBody, ctx: Ctx, actor: Actor) -> Any:
    """Restore a backup into a new or empty folder (refused when damaged or unsafe).

    The resilience controller carries it out behind the governance gate: where policy says
    ``restore: require_approval`` the answer is 202 and nothing is written until approved."""
    facade = subsystem(ctx, "resilience")
    req = await _guarded(_request(facade, backup_id, body.target, actor))
    row = await facade.wait_restore(req["id"])
    if row["state"] == "done":
        return row["result"]
    if row["state"] == "failed":
        msg = (row["result"] or {}).get("error", "restore failed")
        kind = row["error_kind"] or ""
        if kind == "ManifestDamaged":
            msg = f"backup manifest is damaged: {msg}"
        raise _FAILED.get(kind, Conflict)(msg)
    out: dict[str, Any] = {"request": row["id"], "state": row["state"],
                           "backup": backup_id, "target": body.target}
    if row["state"] == "awaiting_approval":
        out.update(approval=row["approval"],
                   approve=approve_command(row["approval"]),
                   detail=f"restore awaits approval {row['approval']} (policy governance."
                   "actions.restore is require_approval); nothing is written until approved")
    elif row["state"] == "pending":
        out["detail"] = "restore recorded; the resilience controller has not settled it yet"
    else:
        out["detail"] = (row["result"] or {}).get("message", row["state"])
    return JSONResponse(status_code=202, content=out)


@router.post("/backups/{backup_id}/drill")
async def drill(backup_id: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    """DR drill: verify, restore to a temporary place, start the drill service, check health."""
    return await subsystem(ctx, "resilience").drill(backup_id)


@router.post("/prune")
async def prune(body: BackupBody, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    """Apply the plan's retention now and delete unreferenced chunks."""
    return await subsystem(ctx, "resilience").prune(body.plan)
