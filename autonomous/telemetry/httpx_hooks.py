"""Tracing for outgoing HTTP calls made with httpx (probes, healing actions).

``TracingTransport`` wraps a transport: every request gets a ``client`` span (child of the
current span, or a new trace), a ``traceparent`` header so the callee joins the trace, and
the status code or the error. ``event_hooks(tracing)`` does the same through httpx event
hooks for clients built elsewhere (a request that fails before any response is closed by
the transport wrapper only, hence ``traced_client`` is preferred).
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["TracingTransport", "event_hooks", "traced_client"]

_EXT = "atlas_span"


def _start(tracing: Any, request: httpx.Request) -> Any:
    span = tracing.start_span(f"{request.method} {request.url.host}{request.url.path}",
                              kind="client",
                              attributes={"http.method": request.method,
                                          "http.url": str(request.url.copy_with(query=None)),
                                          "peer.host": request.url.host})
    request.headers["traceparent"] = span.traceparent()
    request.extensions[_EXT] = span
    return span


def _done(span: Any, code: int | None, error: BaseException | None = None) -> None:
    if code is not None:
        span.set_attribute("http.status_code", code)
    if error is not None:
        span.set_status("error", f"{type(error).__name__}: {error}")
    elif span.status == "unset":
        span.set_status("error" if code is not None and code >= 500 else "ok")
    span.end()


class TracingTransport(httpx.AsyncBaseTransport):
    """An async transport that traces each request it carries."""

    def __init__(self, tracing: Any, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.tracing = tracing
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        span = _start(self.tracing, request)
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException as exc:
            _done(span, None, exc)
            raise
        _done(span, response.status_code)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def traced_client(tracing: Any, **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose requests are traced."""
    inner = kwargs.pop("transport", None)
    return httpx.AsyncClient(transport=TracingTransport(tracing, inner), **kwargs)


def event_hooks(tracing: Any) -> dict[str, list[Any]]:
    """``event_hooks=`` for an ``httpx.AsyncClient``: request → span + header, response →
    status and end."""

    async def on_request(request: httpx.Request) -> None:
        _start(tracing, request)

    async def on_response(response: httpx.Response) -> None:
        span = response.request.extensions.get(_EXT)
        if span is not None:
            _done(span, response.status_code)

    return {"request": [on_request], "response": [on_response]}
