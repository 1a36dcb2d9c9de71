"""405 answers whose ``Allow`` header lists every method the path really has.

Starlette answers a wrong method with the ``Allow`` of the *first* route whose path matched,
so a path served by two routes (``GET`` and ``PUT /api/governance/mode``, ``GET`` and
``POST /api/telemetry/silences``) advertised only one of them. This handler recomputes
``Allow`` from every route of the application that matches the request's path.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

__all__ = ["allowed_methods", "http_error"]


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Sorted methods for which some route of the app fully matches the request's path.

    Asks each top-level route with only the public ``matches`` (nested included routers
    answer for their own routes), once per method.
    """
    routes = request.app.router.routes
    return [m for m in _METHODS
            if any(r.matches(dict(request.scope, type="http", method=m))[0] == Match.FULL
                   for r in routes)]


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own HTTPException answer, with a complete ``Allow`` on a 405."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allow = allowed_methods(request)
        if allow:
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allow)}
    return await http_exception_handler(request, exc)
