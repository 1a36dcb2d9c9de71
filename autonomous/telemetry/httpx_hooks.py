"""Tracing for outgoing HTTP calls made with httpx (probes, healing actions).

``TracingTransport`` wraps a transport: every request gets a ``client`` span (child of the
current span, or a new trace), a ``traceparent`` header so the callee joins the trace, and
the status code or the error. ``event_hooks(tracing)`` does the same through httpx event
hooks for clients built elsewhere (a request that fails before any response is closed by
the transport wrapper only, hence ``traced_client`` is preferred).

``root_ratio`` is the share of requests made *outside* any trace that start a new trace of
their own: 1.0 traces every call; the services controller's probe client uses the configured
``tracing.probe_sample_ratio`` so that periodic probes do not each become a trace (and a
service-side span). A request made inside a trace is always traced.
"""

from __future__ import annotations

import random
from typing import Any

import httpx

from autonomous.telemetry.tracing_system import current_span

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

    def __init__(self, tracing: Any, inner: httpx.AsyncBaseTransport | None = None, *,
                 root_ratio: float = 1.0, rng: random.Random | None = None) -> None:
        self.tracing = tracing
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.root_ratio = root_ratio
        self._rng = rng or random.Random()

    def _traced(self) -> bool:
        if self.root_ratio >= 1 or current_span() is not None:
            return True
        return self.root_ratio > 0 and self._rng.random() < self.root_ratio

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self._traced():
            return await self.inner.handle_async_request(request)
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


def traced_client(tracing: Any, *, root_ratio: float = 1.0, **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose requests are traced (``root_ratio``: see the module)."""
    inner = kwargs.pop("transport", None)
    return httpx.AsyncClient(transport=TracingTransport(tracing, inner, root_ratio=root_ratio),
                             **kwargs)


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
