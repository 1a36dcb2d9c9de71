"""ASGI tracing middleware: one ``server`` span per HTTP request to the API.

``install(app, ctx)`` adds it to a FastAPI/Starlette app (call it before the app starts).
The span continues the caller's trace when the request carries a valid ``traceparent``,
is current while the handler runs (so log lines and outgoing calls join the trace), is named
``METHOD /route/template`` once routing is known, and is echoed back as a ``traceparent``
response header. Ending the span only buffers it (see :class:`TracingSystem`), so the
request path does no I/O. Without a running telemetry subsystem the middleware passes requests
through untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autonomous.telemetry.tracing_system import parse_traceparent

if TYPE_CHECKING:
    from autonomous.context import OperatorContext

__all__ = ["TracingMiddleware", "install"]

_SKIP = ("/metrics",)  # scrapes every few seconds would drown real traces


class TracingMiddleware:
    """Pure ASGI middleware (no response buffering, streaming-safe)."""

    def __init__(self, app: Any, ctx: OperatorContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        hub = self.ctx.subsystems.get("telemetry")
        if scope["type"] != "http" or hub is None or scope.get("path", "") in _SKIP:
            await self.app(scope, receive, send)
            return
        tracing = hub.tracing
        incoming = None
        for k, v in scope.get("headers", ()):
            if k == b"traceparent":  # ASGI header names are lower-case bytes
                incoming = v.decode("latin-1")
                break
        method, path = scope.get("method", "GET"), scope.get("path", "")
        attrs = {"http.method": method, "http.target": path}
        if incoming and parse_traceparent(incoming) is not None:
            span = tracing.start_span(f"{method} {path}", kind="server", parent=incoming,
                                      attributes=attrs)
        else:  # a request without trace context starts its own trace
            span = tracing.start_trace(f"{method} {path}", kind="server", attributes=attrs)
        token = tracing.activate(span)
        status = {"code": 500}

        async def traced_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"traceparent", span.traceparent().encode())]}
            await send(message)

        try:
            await self.app(scope, receive, traced_send)
        except BaseException as exc:
            span.set_status("error", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            tracing.deactivate(token)
            _finish(span, scope, status["code"])


def _finish(span: Any, scope: dict, code: int) -> None:
    route = scope.get("route")
    template = getattr(route, "path", None)
    if template:
        span.name = f"{scope.get('method', 'GET')} {template}"
    span.set_attribute("http.status_code", code)
    if span.status == "unset":
        span.status = "error" if code >= 500 else "ok"
    span.end()


def install(app: Any, ctx: OperatorContext) -> None:
    """Add the tracing middleware to ``app`` (spans go to ``ctx.subsystems['telemetry']``)."""
    app.add_middleware(TracingMiddleware, ctx=ctx)
