"""Browser pages: the dashboards, their one server-sent-events stream, and offline ``/docs``.

Every asset is served from ``autonomous/api/static`` (no request leaves the host). The pages
read the same JSON API as any client; ``GET /dashboard/events`` turns event-bus topics into
"re-fetch these panels" messages. A stream lives at most ``STREAM_LIFETIME_S`` and then ends
(the browser reconnects after ``retry:``), so a held-open stream never blocks shutdown.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from autonomous.api.deps import Ctx
from autonomous.core.errors import NotFound

__all__ = ["router", "panels_for"]

router = APIRouter(tags=["dashboard"], include_in_schema=False)

STREAM_LIFETIME_S = 30.0
KEEPALIVE_S = 10.0
ALERT_WATCH_S = 2.0  # the alert manager publishes no bus event when an alert fires
RETRY_MS = 1000

PAGES: dict[str, str] = {"overview": "Overview", "health": "Health",
                         "telemetry": "Telemetry", "learning": "Learning"}

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".svg": "image/svg+xml"}
ASSETS = ("dashboard.js", "dashboard.css", "favicon.svg", "swagger-ui-bundle.js",
          "swagger-ui.css")

# event-bus topic prefix -> panels whose data it changes
_TOPIC_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("service.probe", ()),  # every probe: the state changes come as service.(un)healthy
    ("service.", ("services", "health", "alerts", "decisions")),
    ("healing.", ("services", "alerts", "decisions")),
    ("alert.", ("alerts",)),
    ("health.", ("health", "alerts")),
    ("governance.", ("governance", "services")),
    ("approval.", ("governance",)),
    ("desired.", ("services", "decisions", "governance")),
    ("survival.", ("governance", "health")),
    ("services.", ("services",)),
)


def panels_for(topic: str) -> tuple[str, ...]:
    """The panels an event on ``topic`` makes stale (empty: none)."""
    for prefix, panels in _TOPIC_PANELS:
        if topic.startswith(prefix):
            return panels
    return ()


def _alert_state(ctx: Any) -> tuple[Any, ...] | None:
    """What the alerts panel shows, to notice a firing the bus does not carry."""
    hub = ctx.subsystems.get("telemetry")
    if hub is None:
        return None
    return tuple(sorted((a["id"], a["state"], a.get("acked_by")) for a in
                        hub.alerts.active_alerts()))


def _static(name: str) -> bytes:
    return resources.files("autonomous.api").joinpath("static", name).read_bytes()


def _page(name: str) -> HTMLResponse:
    html = _static("dashboard.html").decode()
    links = []
    for p, t in PAGES.items():
        href = "/dashboard" if p == "overview" else f"/dashboard/{p}"
        current = ' aria-current="page"' if p == name else ""
        links.append(f'<li><a href="{href}"{current}>{t}</a></li>')
    nav = "".join(links)
    html = (html.replace("{{page}}", name).replace("{{title}}", PAGES[name])
            .replace("{{nav}}", nav))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/dashboard", response_class=HTMLResponse)
def overview() -> HTMLResponse:
    return _page("overview")


@router.get("/dashboard/static/{name}")
def asset(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound(f"no dashboard asset {name!r}; assets: {', '.join(ASSETS)}")
    suffix = name[name.rfind("."):]
    return Response(_static(name), media_type=_TYPES[suffix],
                    headers={"Cache-Control": "max-age=300"})


@router.get("/dashboard/events")
async def events(request: Request, ctx: Ctx) -> StreamingResponse:
    """One SSE stream per page: ``event: refresh`` with ``{"panels": [...], "topic": ...}``."""
    sub = ctx.bus.subscribe("", maxsize=1000)

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield f"retry: {RETRY_MS}\nevent: hello\ndata: {{}}\n\n".encode()
            start = time.monotonic()
            alerts_seen = await asyncio.to_thread(_alert_state, ctx)
            checked = sent = start
            while (left := start + STREAM_LIFETIME_S - time.monotonic()) > 0:
                if await request.is_disconnected():
                    return
                topics: list[str] = []
                panels: set[str] = set()
                try:
                    ev = await asyncio.wait_for(sub.get(), timeout=min(ALERT_WATCH_S, left))
                    topics.append(ev.topic)
                    panels.update(panels_for(ev.topic))
                    while (more := sub.get_nowait()) is not None:  # coalesce a burst
                        topics.append(more.topic)
                        panels.update(panels_for(more.topic))
                except asyncio.TimeoutError:
                    pass
                now = time.monotonic()
                if now - checked >= ALERT_WATCH_S:
                    checked = now
                    current = await asyncio.to_thread(_alert_state, ctx)
                    if current != alerts_seen:
                        alerts_seen = current
                        panels.add("alerts")
                if panels:
                    sent = now
                    data: dict[str, Any] = {"topics": sorted(set(topics)),
                                            "panels": sorted(panels)}
                    yield f"event: refresh\ndata: {json.dumps(data)}\n\n".encode()
                elif now - sent >= KEEPALIVE_S:
                    sent = now
                    yield b": keepalive\n\n"
        finally:
            sub.close()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/dashboard/{name}", response_class=HTMLResponse)
def page(name: str) -> HTMLResponse:
    if name not in PAGES or name == "overview":
        raise NotFound(f"no dashboard page {name!r}; pages: "
                       f"{', '.join(p for p in PAGES if p != 'overview')}")
    return _page(name)


@router.get("/docs", response_class=HTMLResponse)
def docs() -> HTMLResponse:
    """Swagger UI from the vendored swagger-ui-dist files (works offline)."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title="ATLAS Autonomous - API",
                               swagger_js_url="/dashboard/static/swagger-ui-bundle.js",
                               swagger_css_url="/dashboard/static/swagger-ui.css",
                               swagger_favicon_url="/dashboard/static/favicon.svg",
                               swagger_ui_parameters={"validatorUrl": None})
