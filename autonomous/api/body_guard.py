"""Request guard, outermost ASGI middleware: authentication before the body, a body limit and a
body read deadline (``spec.settings.api`` of the config in force).

* a request to a route that needs the bearer token (``require_token``), or to any route but
  the probe paths when ``authenticated_reads`` is on, without a valid token is answered
  ``401`` before a byte of its body is read, and the connection is closed;
* ``GET /dashboard/events`` also opens with a valid signed stream token in its query
  (``autonomous.api.stream_token``: EventSource cannot send headers), and
  ``POST /api/healing/heartbeat/<service>`` with that service's heartbeat token;
* a declared ``Content-Length`` above ``max_body_bytes`` is ``413`` at once, unread; a chunked
  body is cut off at the limit;
* the body must arrive within ``body_timeout_seconds`` of the first read, else ``408``: a
  request that declares more than it sends cannot hold the connection.

The body is read here (bounded) and replayed to the app, so FastAPI never reads an unbounded
body and no handler waits on a slow client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autonomous.api import stream_token
from autonomous.api.deps import require_token, token_problem

if TYPE_CHECKING:
    from autonomous.context import OperatorContext

__all__ = ["ApiLimits", "RequestGuard", "install", "limits_from_context"]

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class ApiLimits:
    max_body_bytes: int
    body_timeout_seconds: float
    authenticated_reads: bool
    public_paths: tuple[str, ...]


def limits_from_context(ctx: OperatorContext) -> ApiLimits:
    """``spec.settings.api`` of the generation in force."""
    from autonomous.resources.config.api import ApiSettings

    gen = ctx.desired.current
    if gen is None:  # the operator serves only once a generation is in force
        raise RuntimeError("no desired-state generation in force: the API has no limits yet")
    s = ApiSettings.model_validate(gen.tree.config.settings["api"])
    return ApiLimits(s.max_body_bytes, s.body_timeout_seconds, s.authenticated_reads,
                     tuple(s.public_paths))


_PATH_CACHE = 4096


class RequestGuard:
    def __init__(self, app: Any, ctx: OperatorContext, limits: Callable[[], ApiLimits],
                 routes: Callable[[], list[Any]]) -> None:
        self.app, self.ctx, self.limits, self.routes = app, ctx, limits, routes
        self._needs_token: dict[int, bool] = {}
        self._last: ApiLimits | None = None
        self._last_for: object = None  # the generation ``_last`` was read from
        # (method, path) → needs the token: the route table is fixed once the app runs, and a
        # scan of every route per request was a tenth of a request's CPU (issue 14.12)
        self._auth_by_path: dict[tuple[str, str], bool] = {}
        self._routes_n = -1

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self._limits()
        if limits is None:  # no generation in force yet: nothing to enforce from
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        problem = (token_problem(headers.get("authorization"), self.ctx.token)
                   if self._must_authenticate(scope, limits) else None)
        if problem is not None:
            await _reply(send, 401, problem, [(b"www-authenticate", b"Bearer")])
            return
        declared = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if declared is None and not chunked:
            await self.app(scope, receive, send)
            return
        try:
            size = int(declared) if declared is not None else None
        except ValueError:
            await _reply(send, 400, f"invalid Content-Length {declared!r}")
            return
        if size is not None and size > limits.max_body_bytes:
            await _reply(send, 413, f"request body of {size} bytes is over the limit of "
                         f"{limits.max_body_bytes} bytes (spec.settings.api.max_body_bytes)")
            return
        body = await self._read(receive, send, limits)
        if body is None:
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive, send: Send, limits: ApiLimits) -> bytes | None:
        """The whole body within the deadline and the limit; None when answered here."""
        chunks: list[bytes] = []
        total = 0
        try:
            async with asyncio.timeout(limits.body_timeout_seconds):
                while True:
                    msg = await receive()
                    if msg["type"] == "http.disconnect":
                        return None
                    chunk = msg.get("body", b"")
                    total += len(chunk)
                    if total > limits.max_body_bytes:
                        await _reply(send, 413, f"request body over the limit of "
                                     f"{limits.max_body_bytes} bytes "
                                     "(spec.settings.api.max_body_bytes)")
                        return None
                    chunks.append(chunk)
                    if not msg.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            await _reply(send, 408, f"request body not received within "
                         f"{limits.body_timeout_seconds:g} s "
                         "(spec.settings.api.body_timeout_seconds)")
            return None

    def _limits(self) -> ApiLimits | None:
        """The limits of the generation in force (read again only when it changes)."""
        gen = getattr(getattr(self.ctx, "desired", None), "current", None)
        if gen is not None and gen is self._last_for:
            return self._last
        try:
            self._last = self.limits()
            self._last_for = gen
        except (AttributeError, KeyError, LookupError):
            pass  # keep the last limits in force
        return self._last

    def _must_authenticate(self, scope: Message, limits: ApiLimits) -> bool:
        path = scope.get("path", "/")
        if path == stream_token.EVENTS_PATH and stream_token.problem(
                stream_token.from_query(scope.get("query_string", b"")), self.ctx.token,
                self.ctx.clock.now()) is None:
            return False  # EventSource cannot send headers: a signed stream token instead
        if path.startswith(_BEAT_PREFIX):
            # a service's own heartbeat token opens its heartbeat route only; without it the
            # API token is needed, checked (401) before the body is read
            return not _heartbeat_allowed(scope, self.ctx.token, path[len(_BEAT_PREFIX):])
        if limits.authenticated_reads:
            return not any(path == p or path.startswith(p) for p in limits.public_paths)
        routes = self.routes()
        if len(routes) != self._routes_n:  # a router included since: answers may differ
            self._auth_by_path.clear()
            self._routes_n = len(routes)
        key = (scope.get("method", ""), path)
        got = self._auth_by_path.get(key)
        if got is None:
            got = self._scan(scope, routes)
            if len(self._auth_by_path) >= _PATH_CACHE:
                self._auth_by_path.clear()  # ids in paths: bounded, not a leak
            self._auth_by_path[key] = got
        return got

    def _scan(self, scope: Message, routes: list[Any]) -> bool:
        from starlette.routing import Match

        for route in _leaves(routes):
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return self._route_needs_token(route)
        return False

    def _route_needs_token(self, route: Any) -> bool:
        key = id(route)
        if key not in self._needs_token:
            dependant = getattr(route, "dependant", None)
            self._needs_token[key] = dependant is not None and _uses(dependant, require_token)
        return self._needs_token[key]


_BEAT_PREFIX = "/api/healing/heartbeat/"


def _heartbeat_allowed(scope: Message, token: str, service: str) -> bool:
    from autonomous.api.routes.heartbeat import service_may_beat

    auth = next((v.decode("latin-1") for k, v in scope.get("headers", [])
                 if k.lower() == b"authorization"), None)
    return bool(service) and "/" not in service and service_may_beat(auth, token, service)


def _leaves(routes: list[Any]) -> list[Any]:
    """The routes themselves: FastAPI ≥ 0.165 wraps each included router (an included
    router's routes carry their full path when it is included without a prefix)."""
    out: list[Any] = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        ctx = getattr(r, "include_context", None)
        if inner is not None and getattr(ctx, "prefix", "") == "":
            out.extend(_leaves(list(inner.routes)))
        else:
            out.append(r)
    return out


def _uses(dependant: Any, call: Any) -> bool:
    return any(d.call is call or _uses(d, call) for d in dependant.dependencies)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # http.disconnect from the server

    return replay


async def _reply(send: Send, status: int, detail: str,
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """A JSON error that closes the connection (the unread body is never read)."""
    name = {400: "BadRequest", 401: "Unauthorized", 408: "RequestTimeout",
            413: "PayloadTooLarge"}[status]
    body = json.dumps({"detail": detail, "error": name}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


def install(app: Any, ctx: OperatorContext, limits: Callable[[], ApiLimits] | None = None) -> None:
    """Add the guard outermost (call after every other middleware is added)."""
    app.add_middleware(RequestGuard, ctx=ctx, limits=limits or (lambda: limits_from_context(ctx)),
                       routes=lambda: app.router.routes)
