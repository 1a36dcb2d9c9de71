"""The gateway controller through the manager's Executor: a Service with spec.traffic is
served by a real Traefik on its front port; its device paths route to one version."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from pathlib import Path

import asyncio

import httpx
import pytest

from autonomous.testing import free_port, make_context, serve_http
from controllers.gateway import GatewayController, GatewayObserved
from controllers.manager import ControllerManager
from tests.conftest import make_tree, needs_traefik, service_yaml

pytestmark = [needs_traefik, pytest.mark.timeout(60)]


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = f"direct {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a: object) -> None:
        pass


def test_diff_is_pure_and_quiet_without_traffic() -> None:
    empty = GatewayObserved((), None, None, "/x", 0)
    assert GatewayController.diff(None, empty) == ()
    running = GatewayObserved((), ("a",), None, "/x", 0)
    assert [a.kind for a in GatewayController.diff(None, running)] == ["stop"]


async def test_service_with_traffic_is_served_through_traefik(tmp_path: Path) -> None:
    with serve_http(Hello) as srv:
        port, front = srv.server_address[1], free_port()
        text = service_yaml("nexus", port) + (
            f"  traffic: {{port: {front}, device_paths: [/motor]}}\n")
        ctx = make_context(tmp_path, root=make_tree(tmp_path / "root", {"nexus": text}))
        c = GatewayController(ctx)
        m = ControllerManager(ctx, [c])
        try:
            outcomes = await m.reconcile(c)
            assert [(o.action.kind, o.ok) for o in outcomes] == [("start", True)], outcomes
            async with httpx.AsyncClient(timeout=2, trust_env=False) as h:
                r = await h.get(f"http://127.0.0.1:{front}/api/x")
                assert r.text == "direct /api/x"
                assert (await h.get(f"http://127.0.0.1:{front}/motor/1")).status_code == 200
            assert await m.reconcile(c) == []  # converged: nothing more to do
            assert "gateway" in ctx.subsystems
        finally:
            await c.stop()
            ctx.store.close()


async def test_gateway_is_supervised_restarted_when_killed(tmp_path: Path) -> None:
    import os
    import signal

    from autonomous.testing import wait_for

    with serve_http(Hello) as srv:
        port, front = srv.server_address[1], free_port()
        text = service_yaml("nexus", port) + f"  traffic: {{port: {front}}}\n"
        ctx = make_context(tmp_path, root=make_tree(tmp_path / "root", {"nexus": text}))
        c = GatewayController(ctx)
        m = ControllerManager(ctx, [c])
        sub = ctx.bus.subscribe("evolution.gateway.exited")
        try:
            await c.start()
            assert [o.ok for o in await m.reconcile(c)] == [True]
            first = c.traefik
            assert first is not None and first.pid is not None
            os.kill(first.pid, signal.SIGKILL)
            ev = await asyncio.wait_for(sub.get(), 10)  # the exit wakes the controller
            assert ev.data["pid"] == first.pid and ev.data["returncode"] == -signal.SIGKILL
            outcomes = await m.reconcile(c)
            assert [(o.action.kind, o.ok) for o in outcomes] == [("start", True)], outcomes
            assert c.traefik is not None and c.traefik.pid != first.pid
            wait_for(lambda: httpx.get(f"http://127.0.0.1:{front}/x", timeout=1,
                                       trust_env=False).status_code == 200,
                     "the front answers again", errors=(httpx.HTTPError,))
            pid = c.traefik.pid
            await c.stop()  # a wanted stop publishes nothing
            assert sub.get_nowait() is None
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        finally:
            await c.stop()
            ctx.store.close()


def test_default_stack_is_served_through_the_gateway(tmp_path: Path) -> None:
    """A new user's tree: NEXUS and Robot declare fronts; device paths on one version."""
    from controllers.gateway import fronts_for

    ctx = make_context(tmp_path)  # the shipped desired state
    try:
        gen = ctx.desired.current
        assert gen is not None
        fronts = {f.name: f for f in fronts_for(gen.services)}
        assert set(fronts) == {"nexus", "robot"}
        assert (fronts["nexus"].port, fronts["nexus"].device_paths) == (8100, ("/api/move",))
        assert fronts["robot"].device_paths == ("/api/sensors", "/api/vision")
        for name, f in fronts.items():
            assert [(b.port, b.weight) for b in f.backends] == [(gen.services[name].port, 100)]
    finally:
        ctx.store.close()
