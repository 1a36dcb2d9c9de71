"""A front with a fallback but no standing fallback intent: Traefik's failover service is
live (enabled) and moves requests to the fallback once the primary's health check fails, and
back when it answers again (the weighted split propagates its servers' health). And what a
document routes (``routing``: what "in force" compares with Traefik's API)."""

from __future__ import annotations

from pathlib import Path

import httpx

from autonomous.gateway.config import Backend, Front, dynamic_config, routing
from autonomous.gateway.process import Traefik
from autonomous.testing import free_port, serve_http, text_handler, wait_for
from tests.conftest import needs_traefik


@needs_traefik
def test_failover_service_enabled_and_moves_traffic_to_the_fallback(tmp_path: Path) -> None:
    primary_port, front = free_port(), free_port()
    with serve_http(text_handler("fallback")) as fb:
        gw = Traefik([Front("nexus", front, (Backend("1", primary_port, 100),), "1",
                            fallback_url=f"http://127.0.0.1:{fb.server_address[1]}")],
                     tmp_path, free_port())
        gw.start()
        try:
            # "in force" covers the failover service: Traefik's API reports it as written
            want = routing(dynamic_config(gw.fronts))
            assert want["service:nexus-failover"] == ["nexus-split", "nexus-fallback"]
            live = gw.live_routing()
            assert live is not None and live["service:nexus-failover"] == \
                want["service:nexus-failover"], live
            assert gw.in_force()
            r = httpx.get(f"http://127.0.0.1:{gw.metrics_port}/api/http/services/"
                          "nexus-failover@file", trust_env=False, timeout=2)
            assert r.status_code == 200 and r.json()["status"] == "enabled", r.text

            def body() -> str:
                try:
                    return httpx.get(f"http://127.0.0.1:{front}/x", trust_env=False,
                                     timeout=2).text
                except httpx.HTTPError:
                    return ""

            # the primary refuses: its health check fails, the failover serves the fallback
            wait_for(lambda: body() == "fallback", "the fallback serving the front", 15)
            with serve_http(text_handler("primary"), primary_port):
                wait_for(lambda: body() == "primary", "back to the primary", 15)
        finally:
            gw.stop()


def test_routing_lists_what_a_document_routes() -> None:
    f = Front("nexus", 9000, (Backend("1", 8000, 90, standby_ports=(8123,)),
                              Backend("2", 8200, 10)), "1", device_paths=("/api/move",))
    assert routing(dynamic_config([f])) == {
        "service:nexus-v1": ["http://127.0.0.1:8000", "http://127.0.0.1:8123"],
        "service:nexus-v2": ["http://127.0.0.1:8200"],
        "service:nexus-split": [["nexus-v1", 90], ["nexus-v2", 10]],
        "router:nexus": "nexus-split", "router:nexus-device": "nexus-v1"}
    moved = Front("nexus", 9000, f.backends, "1", device_paths=("/api/move",),
                  fallback_url="http://127.0.0.1:7000", fallback_active=True)
    r = routing(dynamic_config([moved]))
    assert r["router:nexus"] == r["router:nexus-device"] == "nexus-fallback"
    assert r["service:nexus-fallback"] == ["http://127.0.0.1:7000"]
    standing = Front("nexus", 9000, f.backends, "1", fallback_url="http://127.0.0.1:7000")
    r = routing(dynamic_config([standing]))
    assert r["service:nexus-failover"] == ["nexus-split", "nexus-fallback"]
    assert r["router:nexus"] == "nexus-failover"
