"""Heartbeat reports from embedded agents (``autonomous.self_healing.heartbeat_agent``).

``POST /api/healing/heartbeat/{service}`` takes one beat a service measured from inside:
telemetry gets ``heartbeat_ok`` / ``heartbeat_latency_ms`` / ``heartbeat.<metric>`` (service
label), the bus a ``healing.heartbeat`` event, and a failed beat goes to the healer (source
``heartbeat``). Authorised by the API token or that service's heartbeat token (derived from the
API token; it opens this route for that one service and nothing else).
"""

from __future__ import annotations

import hmac
import math
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from autonomous.api.deps import Ctx, subsystem, token_problem
from autonomous.core.errors import NotFound, Unauthorized
from autonomous.self_healing.heartbeat import HeartbeatResult, report, request_heal
from autonomous.self_healing.heartbeat_agent import heartbeat_token

__all__ = ["BeatIn", "BeatOut", "router", "service_may_beat"]

router = APIRouter(prefix="/api/healing/heartbeat", tags=["healing"])

ServiceName = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$",
                                  description="Declared service sending the beat")]


class BeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ok: bool = Field(description="The service's own heartbeat endpoint answered 2xx in time")
    latency_ms: float | None = Field(None, ge=0, le=3.6e6, description="Its answer time; null "
                                     "when it did not answer")
    status_code: int | None = Field(None, ge=100, le=599)
    message: str = Field("", max_length=500, description="What the check saw")
    metrics: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")],
                  float] = Field(default_factory=dict, max_length=50,
                                 description="The process's own measurements (name → value)",
                                 # only names of the pattern: say so, or a client may send others
                                 json_schema_extra={"additionalProperties": False})

    @field_validator("metrics")
    @classmethod
    def _finite(cls, v: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, x in v.items() if not math.isfinite(x))
        if bad:
            raise ValueError(f"not finite numbers: {', '.join(bad)} (leave out what cannot "
                             "be measured)")
        return v


class BeatOut(BaseModel):
    service: str
    received: bool
    healing_requested: bool
    generation: int | None
    heartbeat: dict[str, Any] = Field(description="healing.heartbeat in force (the agent "
                                      "follows an edit from the next beat)")
    heartbeat_breaker: dict[str, Any] = Field(description="healing.heartbeat_breaker in force")


def service_may_beat(authorization: str | None, api_token: str, service: str) -> bool:
    """``Authorization`` carries the API token or ``service``'s heartbeat token."""
    if token_problem(authorization, api_token) is None:
        return True
    given = (authorization or "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), heartbeat_token(api_token, service).encode())


@router.post("/{service}", response_model=BeatOut, openapi_extra={"security": [{"bearer": []}]},
             responses={401: {"description": "Neither the API token nor this service's "
                                             "heartbeat token"}})
async def beat(service: ServiceName, body: BeatIn, ctx: Ctx,
               authorization: Annotated[str | None, Header()] = None) -> BeatOut:
    """One heartbeat of ``service``, measured by the agent inside it."""
    if not service_may_beat(authorization, ctx.token, service):
        raise Unauthorized("send 'Authorization: Bearer <token>' with the API token or the "
                           "service's heartbeat token (ATLAS_HEARTBEAT_TOKEN in its env)")
    healing = subsystem(ctx, "healing")
    services = ctx.subsystems.get("services")
    declared = services.specs() if services is not None else {}
    if service not in declared:
        raise NotFound(f"service {service!r} is not declared; declared: "
                       f"{', '.join(sorted(declared)) or '(none)'}")
    res = HeartbeatResult(service, body.ok, True, body.latency_ms, body.status_code,
                          body.message or ("ok" if body.ok else "heartbeat failed"), "agent")
    asked = False
    if not body.ok:
        request_heal(healing, res, f"agent:{service}")
        res.healing_requested = asked = True
    report(ctx, res, body.metrics)
    gen = ctx.desired.current.number if ctx.desired.current else None
    healing_policy = ctx.policy()["healing"]
    return BeatOut(service=service, received=True, healing_requested=asked, generation=gen,
                   heartbeat=healing_policy["heartbeat"],
                   heartbeat_breaker=healing_policy["heartbeat_breaker"])
