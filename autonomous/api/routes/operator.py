"""Operator routes: reconcile status, desired state, governance, policy, approvals, health."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Response
from fastapi.encoders import jsonable_encoder

from autonomous.api.deps import Actor, Ctx
from autonomous.api.operator_metrics import OperatorCollector
from autonomous.api.schemas import (DecisionBody, DesiredStateOut, LatestDecision, LatestWhyOut,
                                     ModeBody, ModeName, ModeOut, TriggerOut)
from autonomous.core.errors import NotFound
from autonomous.telemetry.exposition import render_metrics

__all__ = ["router"]

router = APIRouter(tags=["operator"])


@router.get("/healthz")
def healthz(ctx: Ctx) -> dict[str, Any]:
    """Liveness of the operator itself."""
    gen = ctx.desired.current
    return {"status": "ok", "generation": gen.number if gen else None,
            "mode": ctx.governance.mode}


@router.get("/metrics", response_class=Response)
def metrics(ctx: Ctx) -> Response:
    """Prometheus exposition of the operator and its subsystems."""
    body, content_type = render_metrics(ctx, extra=(OperatorCollector(ctx),))
    return Response(body, media_type=content_type)


@router.get("/api/reconcile/status")
async def reconcile_status(ctx: Ctx) -> Response:
    """Per controller: last run, duration, errors; per resource: sync, health, conditions.

    The status read that stays answered under overload (never shed): ``async`` and encoded
    with the C ``json`` encoder. A plain ``def`` ran in the thread pool — a hop there and back
    that waits for the GIL twice (the switch interval is 5 ms) behind the sheddable routes'
    threads — and FastAPI's ``jsonable_encoder`` walked the dict in Python first; the board
    is in memory, so neither bought anything. Values ``json`` does not know (none today) go
    through ``jsonable_encoder``, so the body is what the plain route answered."""
    body = {"generation": ctx.desired.current.number if ctx.desired.current else None,
            "mode": ctx.governance.mode, "data_dir": str(ctx.data_dir),
            "controllers": ctx.status.snapshot()}
    return Response(json.dumps(body, ensure_ascii=False, allow_nan=False,
                               separators=(",", ":"), default=jsonable_encoder),
                    media_type="application/json")


@router.post("/api/reconcile/{controller}/trigger", response_model=TriggerOut)
def reconcile_trigger(controller: str, ctx: Ctx, actor: Actor) -> TriggerOut:
    """Run a controller's reconcile now."""
    if not ctx.trigger(controller):
        raise NotFound(f"controller {controller!r} is not running; running: "
                       f"{', '.join(sorted(ctx.triggers)) or '(none)'}")
    return TriggerOut(controller=controller, triggered=True)


@router.get("/api/reconcile/why", response_model=LatestWhyOut,
            responses={422: {"description": "limit out of range"}})
def reconcile_why_latest(ctx: Ctx, limit: int = Query(
        20, ge=1, le=200, description="Most decision chains returned (newest first)")
        ) -> LatestWhyOut:
    """Every controller's latest decision chain per resource in one read (what the dashboard's
    decisions panel shows), newest decision first, bounded by ``limit``."""
    items: list[LatestDecision] = []
    for name, run in sorted(ctx.status.controllers.items()):
        for resource, node in sorted(run.last_decisions.items()):
            try:
                chain = ctx.graph.why(node)
            except KeyError:
                continue
            if not chain:
                continue
            last = next((n for n in reversed(chain) if n["type"] == "decision"), chain[-1])
            items.append(LatestDecision.model_validate(
                {"controller": name, "resource": resource, "ts": last["ts"], "chain": chain}))
    items.sort(key=lambda d: d.ts or "", reverse=True)
    return LatestWhyOut(decisions=items[:limit], total=len(items),
                        controllers=sorted(ctx.status.controllers))


@router.get("/api/reconcile/{controller}/why")
def reconcile_why(controller: str, ctx: Ctx) -> dict[str, Any]:
    """The causal chain behind each of a controller's resources' last decision."""
    run = ctx.status.controllers.get(controller)
    if run is None:
        raise NotFound(f"controller {controller!r} has not run; known: "
                       f"{', '.join(sorted(ctx.status.controllers)) or '(none)'}")
    out = {}
    for resource, node in sorted(run.last_decisions.items()):
        try:
            out[resource] = ctx.graph.why(node)
        except KeyError:
            continue
    conditions = {k: r.as_dict()["conditions"] for k, r in run.resources.items()}
    return {"controller": controller, "chains": out, "conditions": conditions}


@router.get("/api/desired-state", response_model=DesiredStateOut)
def desired_state(ctx: Ctx) -> DesiredStateOut:
    """Generation in force, its content hash and git commit, and the last rejected edit."""
    return DesiredStateOut(**ctx.desired.info(), history=ctx.desired.history())


@router.get("/api/governance/mode", response_model=ModeOut)
def get_mode(ctx: Ctx) -> ModeOut:
    """The governance mode in force and its switch history."""
    return ModeOut.model_validate({"mode": ctx.governance.mode,
                                   "history": ctx.governance.history(20)})


@router.put("/api/governance/mode", response_model=ModeOut)
def put_mode(body: ModeBody, ctx: Ctx, actor: Actor) -> ModeOut:
    """Switch the governance mode (recorded with who and why). Asking for the mode in force
    records nothing and answers with ``previous`` equal to ``mode``."""
    if body.mode == ctx.governance.mode:
        return ModeOut(mode=body.mode, previous=body.mode, history=ctx.governance.history(5))
    res = ctx.governance.set_mode(body.mode, actor=actor, reason=body.reason)
    return ModeOut(mode=res["mode"], previous=res["previous"], history=ctx.governance.history(5))


@router.get("/api/policy")
def effective_policy(ctx: Ctx, mode: ModeName | None = Query(None)) -> dict[str, Any]:
    """The effective policy (base merged with the overlay of the mode)."""
    from autonomous.core.errors import Problem, ValidationFailed
    from autonomous.governance import MODES

    if mode is not None and mode not in MODES:
        raise ValidationFailed([Problem("query", 0, "mode",
                                        f"{mode!r} is not one of {', '.join(MODES)}")])
    if ctx.desired.current is None:
        raise NotFound("no desired-state generation is in force yet")
    return {"mode": mode or ctx.governance.mode, "policy": ctx.governance.policy(mode)}


@router.get("/api/approvals")
def list_approvals(ctx: Ctx, state: str | None = Query(None)) -> dict[str, Any]:
    """Approval requests (pending, approved, rejected, expired, stale, executed)."""
    return {"approvals": [_public(a) for a in ctx.approvals.list(state)]}


@router.post("/api/approvals/{approval_id}/approve")
def approve(approval_id: str, ctx: Ctx, actor: Actor,
            body: DecisionBody | None = None) -> dict[str, Any]:
    """Approve a pending request (409 if made for another generation, 410 if expired)."""
    gen = ctx.desired.current.number if ctx.desired.current else None
    item = ctx.approvals.decide(approval_id, approve=True, actor=actor, current_generation=gen,
                                reason=body.reason if body else None)
    ctl = item["controller"]
    ctx.trigger(ctl)
    return _public(item)


@router.post("/api/approvals/{approval_id}/reject")
def reject(approval_id: str, ctx: Ctx, actor: Actor,
           body: DecisionBody | None = None) -> dict[str, Any]:
    """Reject a pending request."""
    gen = ctx.desired.current.number if ctx.desired.current else None
    return _public(ctx.approvals.decide(approval_id, approve=False, actor=actor,
                                        current_generation=gen,
                                        reason=body.reason if body else None))


def _public(a: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in a.items() if not k.startswith("_")}
