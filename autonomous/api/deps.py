"""Dependencies shared by every route: the operator context and the bearer-token guard."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Annotated, Any, Literal, overload

from fastapi import Depends, Header, Request

from autonomous.context import OperatorContext
from autonomous.core.errors import Unauthorized

if TYPE_CHECKING:
    from autonomous.evolution.facade import EvolutionFacade
    from autonomous.evolution.update_set import UpdateSetFacade
    from autonomous.health_monitor.health_aggregator import HealthAggregator
    from autonomous.learning.facade import LearningFacade
    from autonomous.resilience.facade import ResilienceFacade
    from autonomous.self_healing.facade import HealingFacade
    from autonomous.telemetry.hub import TelemetryHub

__all__ = ["Actor", "Ctx", "get_ctx", "require_token", "subsystem", "token_problem"]


async def get_ctx(request: Request) -> OperatorContext:
    """async: FastAPI runs a plain ``def`` dependency in its thread pool, a hop per request
    for a lookup (issue 14.12)."""
    return request.app.state.atlas_ctx


Ctx = Annotated[OperatorContext, Depends(get_ctx)]


def token_problem(authorization: str | None, token: str) -> str | None:
    """Why ``authorization`` does not carry ``Bearer <token>``; None when it does."""
    if not authorization or not authorization.startswith("Bearer "):
        return ("missing bearer token: send 'Authorization: Bearer <token>' (the token is in "
                "ATLAS_AUTONOMOUS_TOKEN or <data-dir>/api-token)")
    given = authorization[len("Bearer "):].strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        return "invalid bearer token"
    return None


async def require_token(ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> str:
    """Check ``Authorization: Bearer <token>``; returns the actor name used in audit logs."""
    problem = token_problem(authorization, ctx.token)
    if problem is not None:
        raise Unauthorized(problem)
    return "api-token"


Actor = Annotated[str, Depends(require_token)]


@overload
def subsystem(ctx: OperatorContext, name: Literal["evolution"]) -> EvolutionFacade: ...
@overload
def subsystem(ctx: OperatorContext, name: Literal["update_sets"]) -> UpdateSetFacade: ...
@overload
def subsystem(ctx: OperatorContext, name: Literal["health"]) -> HealthAggregator: ...
@overload
def subsystem(ctx: OperatorContext, name: Literal["learning"]) -> LearningFacade: ...
@overload
def subsystem(ctx: OperatorContext, name: Literal["resilience"]) -> ResilienceFacade: ...
@overload
def subsystem(ctx: OperatorContext, name: Literal["healing"]) -> HealingFacade: ...
@overload
def subsystem(ctx: OperatorContext, name: Literal["telemetry"]) -> TelemetryHub: ...


def subsystem(ctx: OperatorContext, name: str) -> Any:
    """The facade a subsystem registered (typed per name: the overloads above), or a 503
    saying how to enable it."""
    from autonomous.core.errors import AtlasError

    facade = ctx.subsystems.get(name)
    if facade is None:
        err = AtlasError(f"subsystem {name!r} is not running: enable it under "
                         f"spec.controllers in config/autonomous.yaml")
        err.status_code = 503
        raise err
    return facade
