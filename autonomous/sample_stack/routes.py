"""The endpoints of a sample service: a table of (method, path) → handler and guarding feature.

A handler takes ``(service, body, query)`` and returns ``(status, payload)`` or
``(status, payload, after)`` where ``after`` runs once the answer is sent (a crash exits there).
A payload is JSON-able, or a ``str`` sent as Prometheus text.
"""

from __future__ import annotations

import os
import sys

from autonomous.sample_stack.errors import BadRequest
from autonomous.sample_stack.faults import KINDS, FaultError, num, validate
from autonomous.sample_stack.metrics import Gauge, render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeAlias

    from autonomous.sample_stack.server import Service

    After: TypeAlias = Callable[[], None]
    Answer: TypeAlias = tuple[int, object] | tuple[int, object, After]
    Full: TypeAlias = tuple[int, object, After | None]

__all__ = ["ROUTES", "Reply", "Route", "call", "find", "not_found"]


class Reply:
    """A ready answer (used for bodies that could not be read)."""

    __slots__ = ("payload", "status")

    def __init__(self, status: int, payload: object) -> None:
        self.status = status
        self.payload = payload


class Route:
    """A handler and the feature (if any) that must be declared and on to reach it."""

    __slots__ = ("feature", "fn")

    def __init__(self, fn: Callable[[Service, object, dict[str, str]], Answer],
                 feature: str | None = None) -> None:
        self.fn = fn
        self.feature = feature


def _health(svc: Service, body: object, q: dict[str, str]) -> Answer:
    off = sorted(k for k, v in svc.features.snapshot().items() if not v)
    return 200, {"status": "ok", "name": svc.name, "uptime_s": svc.uptime_s(),
                 "version": svc.version, "pid": os.getpid(), "degraded": bool(off),
                 "features_off": off}


def _ready(svc: Service, body: object, q: dict[str, str]) -> Answer:
    ok, reasons, deps = svc.readiness.state()
    return (200 if ok else 503), {"ready": ok, "name": svc.name, "reasons": reasons,
                                  "dependencies": deps}


def _gauges(svc: Service) -> list[Gauge]:
    feats = svc.features.snapshot()
    active = svc.faults.snapshot()
    return [
        ("sample_info", "Which sample service this is.",
         [({"name": svc.name, "version": svc.version}, 1)]),
        ("sample_uptime_seconds", "Seconds since the service started.", [({}, svc.uptime_s())]),
        ("sample_ready", "1 when /ready answers 200.", [({}, int(svc.readiness.state()[0]))]),
        ("sample_feature_enabled", "1 when the feature flag is on.",
         [({"feature": f}, int(on)) for f, on in sorted(feats.items())]),
        ("sample_fault_active", "1 while a fault of that kind is injected.",
         [({"kind": k}, int(k in active)) for k in KINDS if k != "crash"]),
        ("sample_memory_ballast_bytes", "Bytes held by the memory fault.",
         [({}, svc.faults.ballast_bytes())]),
        ("sample_requests_in_flight", "Requests being handled now.", [({}, svc.inflight())]),
    ]


def _metrics(svc: Service, body: object, q: dict[str, str]) -> Answer:
    tools = svc.tools.lines()
    return 200, render(svc.metrics, _gauges(svc)) + ("\n".join(tools) + "\n" if tools else "")


def _tools_list(svc: Service, body: object, q: dict[str, str]) -> Answer:
    return 200, {"tools": svc.tools.names()}


def _tools_call(svc: Service, body: object, q: dict[str, str]) -> Answer:
    from autonomous.sample_stack.tools import ToolError, UnknownTool

    if not isinstance(body, dict) or not isinstance(body.get("tool"), str):
        raise BadRequest('body must be a JSON object with a string "tool" (see GET /api/tools) '
                         'and its "input"')
    name = body["tool"]
    try:
        out, seconds = svc.tools.call(name, body.get("input"))
    except UnknownTool:
        return 404, {"error": f"no tool {name!r}; known: {', '.join(svc.tools.names())}"}
    except ToolError as exc:
        return 422, {"tool": name, "error": str(exc)}
    return 200, {"tool": name, "output": out, "ms": round(seconds * 1e3, 3)}


def _features_get(svc: Service, body: object, q: dict[str, str]) -> Answer:
    return 200, {"features": svc.features.snapshot()}


def _features_put(svc: Service, body: object, q: dict[str, str]) -> Answer:
    feats = svc.features.update(body)
    svc.log.info("features changed", features=feats)
    return 200, {"features": feats}


def _fault_get(svc: Service, body: object, q: dict[str, str]) -> Answer:
    return 200, {"faults": svc.faults.snapshot(), "kinds": list(KINDS)}


def _exit_now(code: int) -> After:
    def go() -> None:
        sys.stdout.flush()
        os._exit(code)
    return go


def _fault_post(svc: Service, body: object, q: dict[str, str]) -> Answer:
    fault = validate(body)
    svc.log.warning("fault injected", fault=fault)
    if fault["kind"] == "crash":
        code = int(num(fault, "exit_code"))
        return 202, {"crashing": True, "exit_code": code}, _exit_now(code)
    svc.faults.activate(fault)
    return 200, {"faults": svc.faults.snapshot()}


def _fault_clear(svc: Service, body: object, q: dict[str, str]) -> Answer:
    kind = body.get("kind") if isinstance(body, dict) else None
    if body is not None and (not isinstance(body, dict) or set(body) - {"kind"}
                             or kind not in (*KINDS, None)):
        raise FaultError(f'body: expected nothing or {{"kind": one of {", ".join(KINDS)}}}')
    cleared = svc.faults.clear(kind)
    svc.log.info("faults cleared", cleared=cleared)
    return 200, {"cleared": cleared, "faults": svc.faults.snapshot()}


def _work(svc: Service, body: object, q: dict[str, str]) -> Answer:
    from autonomous.sample_stack.work import burn_cpu

    return 200, burn_cpu(q.get("ms"))


def _echo(svc: Service, body: object, q: dict[str, str]) -> Answer:
    return 200, {"echo": body, "name": svc.name}


def _move(svc: Service, body: object, q: dict[str, str]) -> Answer:
    return 200, svc.motion().move(body, smooth=svc.features.enabled("planning"))


def _heartbeat(svc: Service, body: object, q: dict[str, str]) -> Answer:
    svc.heartbeats += 1
    motion = svc.motion()
    return 200, {"name": svc.name, "seq": svc.heartbeats, "uptime_s": svc.uptime_s(),
                 "position": list(motion.position), "moves": motion.moves}


def _sensors(svc: Service, body: object, q: dict[str, str]) -> Answer:
    from autonomous.sample_stack.work import read_sensors

    return 200, read_sensors()


def _detect(svc: Service, body: object, q: dict[str, str]) -> Answer:
    from autonomous.sample_stack.work import detect_edges

    return 200, detect_edges(body)


def _router(svc: Service, body: object, q: dict[str, str]) -> Answer:
    from autonomous.sample_stack.router import handle

    return handle(svc, body, q)


def _index(svc: Service, body: object, q: dict[str, str]) -> Answer:
    return 200, {"name": svc.name, "endpoints": sorted(f"{m} {p}" for m, p in ROUTES)}


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/"): Route(_index),
    ("GET", "/health"): Route(_health),
    ("GET", "/ready"): Route(_ready),
    ("GET", "/metrics"): Route(_metrics),
    ("GET", "/features"): Route(_features_get),
    ("PUT", "/features"): Route(_features_put),
    ("GET", "/fault"): Route(_fault_get),
    ("POST", "/fault"): Route(_fault_post),
    ("POST", "/fault/clear"): Route(_fault_clear),
    ("GET", "/api/work"): Route(_work),
    ("POST", "/api/echo"): Route(_echo),
    ("POST", "/api/move"): Route(_move, "motion"),
    ("GET", "/api/heartbeat"): Route(_heartbeat, "heartbeat"),
    ("GET", "/api/sensors"): Route(_sensors, "sensors"),
    ("POST", "/api/vision/detect"): Route(_detect, "vision"),
    ("POST", "/api/router/route"): Route(_router),
    ("GET", "/api/tools"): Route(_tools_list),
    ("POST", "/api/tools/call"): Route(_tools_call),
}
_PATHS = {p for _, p in ROUTES}


def find(method: str, path: str) -> tuple[Route | None, str]:
    """The route for ``method path`` (or None) and the path label used in metrics."""
    return ROUTES.get((method, path)), (path if path in _PATHS else "other")


def not_found(svc: Service, method: str, path: str) -> Full:
    """404 for an unknown path, 405 (with the allowed methods) for a known one."""
    allowed = sorted(m for m, p in ROUTES if p == path)
    if allowed:
        return 405, {"error": f"{method} {path}: method not allowed; allowed: "
                              f"{', '.join(allowed)}"}, None
    return 404, {"error": f"{path}: no such endpoint on {svc.name}; see GET /"}, None


def call(route: Route, svc: Service, body: object, query: dict[str, str]) -> Full:
    """Run a route behind its feature guard; input errors become 400 answers."""
    if route.feature and not svc.features.declared(route.feature):
        return 404, {"error": f"no such endpoint on {svc.name}: it needs feature "
                              f"{route.feature!r}, which this service does not declare"}, None
    if route.feature and not svc.features.enabled(route.feature):
        return 503, {"error": "feature disabled", "feature": route.feature}, None
    try:
        out = route.fn(svc, body, query)
    except BadRequest as e:
        return 400, {"error": str(e)}, None
    if len(out) == 2:
        return out[0], out[1], None
    return out
