"""FALLBACK that really moves traffic: the sample stack behind the real Traefik gateway, the
primary made unhealthy (5xx fault mode), the healing ladder's FALLBACK step writes its
``fallback`` intent, the gateway's owner switches the front's router to the fallback, the
step's verify (the front answers) passes, requests to the front are counted at the fallback's
own counter; clearing the fault routes the front back to the primary."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from autonomous.gateway.config import Backend, Front, dynamic_config
from autonomous.intents import Intent, IntentStore
from autonomous.testing import free_port
from controllers.gateway import GatewayController, fallback_routes
from controllers.healing import HealingController
from controllers.services import ServicesController
from tests.autonomous.operator_stack import service
from tests.conftest import needs_traefik

pytestmark = [needs_traefik, pytest.mark.timeout(90)]


def _intent(target: str, url: str | None, service: str = "nexus") -> Intent:
    return Intent("i1", "fallback", f"Service/{service}", "r", "healing", None, None,
                  {"target": target, "url": url})


def test_fallback_routes_and_config_are_pure() -> None:
    class S:
        def __init__(self, port: int | None) -> None:
            self.host, self.port = "127.0.0.1", port

    services: dict[str, Any] = {"nexus": S(1), "nexus-b": S(2)}
    got = fallback_routes([_intent("nexus-b", "http://127.0.0.1:2/health")], services)
    assert got == {"nexus": ("http://127.0.0.1:2", "i1")}
    url = fallback_routes([_intent("http://10.0.0.5:81/x", "http://10.0.0.5:81/x")], services)
    assert url == {"nexus": ("http://10.0.0.5:81", "i1")}
    assert fallback_routes([_intent("nexus-b", None, service="gone")], services) == {}
    assert fallback_routes([_intent("nowhere", "not a url")], services) == {}
    front = Front("nexus", 9000, (Backend("1", 1, 100),), "1", ("/api/move",),
                  fallback_url="http://127.0.0.1:2", fallback_active=True)
    doc = dynamic_config([front])["http"]
    assert doc["routers"]["nexus"]["service"] == "nexus-fallback"
    assert doc["routers"]["nexus-device"]["service"] == "nexus-fallback"
    assert doc["services"]["nexus-fallback"] == {
        "loadBalancer": {"servers": [{"url": "http://127.0.0.1:2"}]}}


def _served(metrics: str, path: str) -> int:
    """Requests the sample service answered 200 on ``path`` (its own counter)."""
    total = 0
    for line in metrics.splitlines():
        m = re.match(r'sample_http_requests_total\{(.*)\} (\d+)', line)
        if m and f'path="{path}"' in m.group(1) and 'code="200"' in m.group(1):
            total += int(m.group(2))
    return total


@pytest.fixture
def gateway_stack(operator_stack: Callable[..., Any]) -> Callable[..., Any]:
    """``gateway_stack(services)``: the operator with healing and the gateway."""
    def make(services: dict[str, str]) -> Any:
        return operator_stack(services, (ServicesController, HealingController,
                                         GatewayController))
    return make


async def test_error_responses_fail_over_at_the_gateway_then_route_back(gateway_stack):
    p1, p2, front = free_port(), free_port(), free_port()
    more = f"  fallback: {{service: nexus-b}}\n  traffic: {{port: {front}}}\n"
    s = await gateway_stack({"nexus": service("nexus", p1, more=more),
                             "nexus-b": service("nexus-b", p2)})
    intents = IntentStore(s.ctx.store, s.ctx.clock)
    front_url = f"http://127.0.0.1:{front}"

    async def front_ok() -> bool:
        try:
            return (await s.http.get(f"{front_url}/health", timeout=1)).status_code == 200
        except httpx.HTTPError:
            return False

    await s.until(front_ok, 20, "the gateway serves the front")
    await s.fault("nexus", {"kind": "error", "status": 503})
    row = await s.until(lambda: s.incident("nexus", state="healed"), 20, "healed")
    first = row["attempts"][0]
    assert first["strategy"] == "FALLBACK" and first["ok"], row["attempts"]
    assert row["strategy"] == "FALLBACK"
    [fb] = [i for i in intents.active("Service/nexus") if i.kind == "fallback"]
    before = _served((await s.http.get(s.url("nexus-b", "/metrics"))).text, "/api/work")
    for _ in range(20):  # the primary still answers 503 directly; the front does not
        r = await s.http.get(f"{front_url}/api/work?ms=0")
        assert r.status_code == 200, r.text
    assert (await s.http.get(s.url("nexus", "/api/work?ms=0"))).status_code == 503
    after = _served((await s.http.get(s.url("nexus-b", "/metrics"))).text, "/api/work")
    assert after - before == 20  # every front request was answered by the fallback
    # recovery: the fault stops, healing releases the intent, the gateway routes back
    await s.fault("nexus", None)
    await s.until(lambda: intents.get(fb.id).state == "released", 20, "intent released")

    async def routed_back() -> bool:
        text = (await s.http.get(s.url("nexus", "/metrics"))).text
        n0 = _served(text, "/api/work")
        if (await s.http.get(f"{front_url}/api/work?ms=0")).status_code != 200:
            return False
        return _served((await s.http.get(s.url("nexus", "/metrics"))).text,
                       "/api/work") == n0 + 1

    await s.until(routed_back, 10, "the front routes to the primary again")
