"""App factory: ``create_app(ctx)`` for a standalone operator, ``include_routes(app, ctx)`` to
mount the same routers into an existing FastAPI app (the real PUSH)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from autonomous import __version__
from autonomous.context import OperatorContext
from autonomous.core.errors import AtlasError, Throttled, ValidationFailed

__all__ = ["create_app", "include_routes", "install_middleware", "routers"]


def routers() -> list[Any]:
    from autonomous.api import routes

    found = []
    for info in sorted(pkgutil.iter_modules(routes.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{routes.__name__}.{info.name}")
        if hasattr(mod, "router"):
            found.append(mod.router)
    return found


def include_routes(app: FastAPI, ctx: OperatorContext) -> None:
    """Mount every router and error handler into ``app`` and hand it ``ctx``."""
    app.state.atlas_ctx = ctx
    for r in routers():
        app.include_router(r)
    app.add_exception_handler(AtlasError, _atlas_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_invalid)  # type: ignore[arg-type]
    from starlette.exceptions import HTTPException

    from autonomous.api.method_not_allowed import http_error
    app.add_exception_handler(HTTPException, http_error)


def create_app(ctx: OperatorContext, *,
               lifespan: Callable[[FastAPI], Any] | None = None) -> FastAPI:
    @asynccontextmanager
    async def _noop(_: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(title="ATLAS Autonomous", version=__version__, lifespan=lifespan or _noop,
                  docs_url=None,
                  description="Self-managing operations layer for the ATLAS robot stack.")
    include_routes(app, ctx)
    install_middleware(app, ctx)
    from autonomous.api import openapi

    openapi.install(app)
    return app


def install_middleware(app: FastAPI, ctx: OperatorContext) -> None:
    """W3C trace context (spans reach telemetry once it runs) inside admission control
    (priorities, shedding with 429 + Retry-After): a shed request costs no span."""
    from autonomous.api import body_guard, memdebug
    from autonomous.resilience import admission
    from autonomous.telemetry import tracing_middleware

    memdebug.install_from_env()  # off unless ATLAS_MEMDEBUG_DIR is set

    tracing_middleware.install(app, ctx)
    admission.install(app, ctx)
    body_guard.install(app, ctx)  # outermost: 401 / 413 / 408 before anything reads a body


def _missing_body(request: Request) -> str:
    """'body: Field required' says nothing: name the JSON fields the route expects."""
    route = request.scope.get("route")
    field = getattr(route, "body_field", None)
    model = getattr(getattr(field, "field_info", None), "annotation", None)
    fields = getattr(model, "model_fields", None)
    if not fields:
        return "a JSON request body is required"
    names = ", ".join(f"{n} (required)" if f.is_required() else n for n, f in fields.items())
    return f"a JSON request body is required, with the fields: {names}"


async def _atlas_error(_: Request, exc: AtlasError) -> JSONResponse:
    body: dict[str, Any] = {"detail": str(exc), "error": type(exc).__name__}
    headers = {}
    if isinstance(exc, ValidationFailed):
        body["problems"] = [p.as_dict() for p in exc.problems]
    if isinstance(exc, Throttled):
        headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()))
        msg = err.get("msg", "invalid")
        if tuple(err.get("loc", ())) == ("body",) and err.get("type") == "missing":
            msg = _missing_body(request)
        problems.append({"path": loc, "message": msg})
    text = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
    return JSONResponse({"detail": f"invalid request: {text}", "problems": problems},
                        status_code=422)
