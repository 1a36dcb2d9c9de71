"""Browser pages: the dashboards, their one server-sent-events stream, and offline ``/docs``.

Every asset is served from ``autonomous/api/static`` (no request leaves the host). The pages
read the same JSON API as any client; ``GET /dashboard/events`` turns event-bus topics into
"re-fetch these panels" messages. A stream lives at most ``dashboard.stream_lifetime_seconds``
(policy) and then ends (the browser reconnects after ``retry:``), so a held-open stream never
blocks shutdown. Timings and panel sizes come from the ``dashboard`` policy section, handed
to the page in its ``data-policy`` attribute.

Reads that need the token (``spec.settings.api.authenticated_reads``): the page sends the
bearer token (asked once, kept in ``sessionStorage``) on every fetch, and opens its stream
with a signed short-lived query token from ``POST /dashboard/stream-token``
(``autonomous.api.stream_token``). The page shells and assets carry no data: list
``/dashboard`` in ``public_paths`` to reach them from a browser; the stream still checks.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from autonomous.api import stream_token
from autonomous.api.deps import Actor, Ctx, token_problem
from autonomous.context import OperatorContext
from autonomous.core.errors import NotFound, Unauthorized

__all__ = ["dashboard_policy", "panels_for", "router"]

router = APIRouter(tags=["dashboard"], include_in_schema=False)

PAGES: dict[str, str] = {"overview": "Overview", "health": "Health",
                         "telemetry": "Telemetry", "learning": "Learning"}

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".svg": "image/svg+xml"}
ASSETS = ("dashboard.js", "dashboard-lib.js", "dashboard-charts.js", "dashboard-ops.js",
          "dashboard-learning.js", "dashboard-health.js",
          "dashboard.css", "favicon.svg", "swagger-ui-bundle.js",
          "swagger-ui.css")

# event-bus topic prefix -> panels whose data it changes
_TOPIC_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("service.probe", ()),  # every probe: the state changes come as service.(un)healthy
    ("service.", ("services", "health", "alerts", "decisions")),
    ("healing.heartbeat", ()),  # every beat; a failed one comes as healing.detected
    ("healing.", ("services", "alerts", "decisions", "healing")),
    ("alert.", ("alerts",)),
    ("evolution.", ("rollouts",)),
    ("health.", ("health", "alerts", "resources")),
    ("governance.", ("governance", "services")),
    ("approval.", ("governance", "healing")),
    ("desired.", ("services", "decisions", "governance")),
    ("survival.", ("governance", "health")),
    ("services.", ("services",)),
    ("learning.route", ()),  # every routed query; the panels show proposals and insights
    ("learning.", ("learning", "optimizations")),
)


def panels_for(topic: str) -> tuple[str, ...]:
    """The panels an event on ``topic`` makes stale (empty: none)."""
    for prefix, panels in _TOPIC_PANELS:
        if topic.startswith(prefix):
            return panels
    return ()


def _alert_state(ctx: OperatorContext) -> tuple[Any, ...] | None:
    """What the alerts panel shows, to notice a firing the bus does not carry."""
    hub = ctx.subsystems.get("telemetry")
    if hub is None:
        return None
    return tuple(sorted((a["id"], a["state"], a.get("acked_by")) for a in
                        hub.alerts.active_alerts()))


def _static(name: str) -> bytes:
    return resources.files("autonomous.api").joinpath("static", name).read_bytes()


def dashboard_policy(ctx: OperatorContext) -> dict[str, Any]:
    """The ``dashboard`` policy section in force."""
    return dict(ctx.policy()["dashboard"])


def _reads_need_token(ctx: OperatorContext) -> bool:
    from autonomous.api.body_guard import limits_from_context

    try:
        return limits_from_context(ctx).authenticated_reads
    except (AttributeError, KeyError, LookupError):
        return False


def _page(name: str, ctx: OperatorContext) -> HTMLResponse:
    text = _static("dashboard.html").decode()
    links = []
    for p, t in PAGES.items():
        href = "/dashboard" if p == "overview" else f"/dashboard/{p}"
        current = ' aria-current="page"' if p == name else ""
        links.append(f'<li><a href="{href}"{current}>{t}</a></li>')
    nav = "".join(links)
    policy = html.escape(json.dumps(dashboard_policy(ctx)), quote=True)
    reads_need_token = _reads_need_token(ctx)  # then the shell (maybe public) names no state
    text = (text.replace("{{page}}", name).replace("{{title}}", PAGES[name])
            .replace("{{nav}}", nav).replace("{{policy}}", policy)
            .replace("{{auth_reads}}", "true" if reads_need_token else "false")
            .replace("{{subsystems}}", "null" if reads_need_token else
                     html.escape(json.dumps(sorted(ctx.subsystems)))))
    return HTMLResponse(text, headers={"Cache-Control": "no-store"})


@router.get("/dashboard", response_class=HTMLResponse)
def overview(ctx: Ctx) -> HTMLResponse:
    return _page("overview", ctx)


@router.get("/dashboard/state")
def state(request: Request, ctx: Ctx) -> dict[str, Any]:
    """Which subsystems run now (a page asks before reading a subsystem's routes, so a
    subsystem that is off shows as such instead of a failed request)."""
    if _reads_need_token(ctx):  # also when /dashboard is a public path
        problem = token_problem(request.headers.get("authorization"), ctx.token)
        if problem is not None:
            raise Unauthorized(problem)
    return {"subsystems": sorted(ctx.subsystems)}


@router.post("/dashboard/stream-token")
def new_stream_token(ctx: Ctx, actor: Actor) -> dict[str, Any]:
    """A signed query token that opens ``/dashboard/events`` until it expires."""
    ttl = float(dashboard_policy(ctx)["stream_token_seconds"])
    token, expires = stream_token.issue(ctx.token, ctx.clock.now(), ttl)
    return {"token": token, "expires_at": expires, "ttl_seconds": ttl}


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
    if _reads_need_token(ctx):  # also when /dashboard is a public path: check here too
        bearer = token_problem(request.headers.get("authorization"), ctx.token)
        signed = stream_token.problem(request.query_params.get("st"), ctx.token, ctx.clock.now())
        if bearer is not None and signed is not None:
            raise Unauthorized(signed)
    pol = dashboard_policy(ctx)
    lifetime, keepalive = float(pol["stream_lifetime_seconds"]), float(pol["keepalive_seconds"])
    watch, retry_ms = float(pol["alert_watch_seconds"]), int(pol["retry_ms"])
    sub = ctx.bus.subscribe("", maxsize=1000)

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield f"retry: {retry_ms}\nevent: hello\ndata: {{}}\n\n".encode()
            start = time.monotonic()
            alerts_seen = await asyncio.to_thread(_alert_state, ctx)
            checked = sent = start
            while (left := start + lifetime - time.monotonic()) > 0:
                if await request.is_disconnected():
                    return
                topics: list[str] = []
                panels: set[str] = set()
                try:
                    ev = await asyncio.wait_for(sub.get(), timeout=min(watch, left))
                    topics.append(ev.topic)
                    panels.update(panels_for(ev.topic))
                    while (more := sub.get_nowait()) is not None:  # coalesce a burst
                        topics.append(more.topic)
                        panels.update(panels_for(more.topic))
                except asyncio.TimeoutError:
                    pass
                now = time.monotonic()
                if now - checked >= watch:
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
                elif now - sent >= keepalive:
                    sent = now
                    yield b": keepalive\n\n"
        finally:
            sub.close()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/dashboard/{name}", response_class=HTMLResponse)
def page(name: str, ctx: Ctx) -> HTMLResponse:
    if name not in PAGES or name == "overview":
        raise NotFound(f"no dashboard page {name!r}; pages: "
                       f"{', '.join(p for p in PAGES if p != 'overview')}")
    return _page(name, ctx)


@router.get("/docs", response_class=HTMLResponse)
def docs() -> HTMLResponse:
    """Swagger UI from the vendored swagger-ui-dist files (works offline)."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title="ATLAS Autonomous - API",
                               swagger_js_url="/dashboard/static/swagger-ui-bundle.js",
                               swagger_css_url="/dashboard/static/swagger-ui.css",
                               swagger_favicon_url="/dashboard/static/favicon.svg",
                               swagger_ui_parameters={"validatorUrl": None})
