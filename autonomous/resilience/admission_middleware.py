"""Admission over ASGI: :class:`AdmissionMiddleware` classifies, acquires (maybe waits), runs
the app and releases; a shed request is answered ``429`` with ``Retry-After`` straight from
the middleware — before any route, body parse or dependency runs."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from autonomous.core.errors import Throttled

if TYPE_CHECKING:
    from autonomous.resilience.admission import Admission

__all__ = ["AdmissionMiddleware", "routes_match"]


class AdmissionMiddleware:
    """Pure ASGI middleware: classify, acquire (maybe wait), run the app, release; a shed
    request gets ``429`` with ``Retry-After`` (whole seconds, rounded up) and a JSON body with
    the exact ``retry_after_seconds``."""

    def __init__(self, app: Any, admission: Admission,
                 routed: Callable[[dict], bool] | None = None) -> None:
        self.app = app
        self.admission = admission
        self.routed = routed

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "/")
        if self.routed is not None and not self.routed(scope):
            await self.app(scope, receive, send)  # route first: an unknown path is a 404
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        priority = self.admission.classify(path, headers, scope.get("method", ""))
        try:
            ticket = await self.admission.acquire(priority, path)
        except Throttled as exc:
            await send_429(send, exc)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.release(ticket)


async def send_429(send: Callable, exc: Throttled) -> None:
    body = json.dumps({"detail": str(exc), "error": "Throttled",
                       "retry_after_seconds": round(exc.retry_after, 3)}).encode()
    await send({"type": "http.response.start", "status": 429, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(max(1, math.ceil(exc.retry_after))).encode())]})
    await send({"type": "http.response.body", "body": body})


_ROUTED_CACHE = 4096


def routes_match(app: Any, scope: dict, cache: dict[str, bool] | None = None) -> bool:
    """Whether any route (or mount) of ``app`` matches the request's path (a method mismatch
    counts: it is a route, answered 405). Unrouted requests skip admission: route first,
    shed after. ``cache``: path → answer (the method does not change it; the route table is
    fixed once the app serves, and scanning it per request cost a twentieth of a request)."""
    from starlette.routing import Match

    routes = app.router.routes
    path = scope.get("path", "/")
    key = f"{len(routes)} {path}"  # a router included since invalidates the answer
    if cache is not None and key in cache:
        return cache[key]
    got = any(route.matches(scope)[0] != Match.NONE for route in routes)
    if cache is not None:
        if len(cache) >= _ROUTED_CACHE:
            cache.clear()
        cache[key] = got
    return got
