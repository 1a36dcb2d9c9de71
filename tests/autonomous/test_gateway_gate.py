"""The rollback gate: a candidate reached through a failover to the old version, health-checked
against the gateway's gate, switches back without a document change (real Traefik)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from autonomous.gateway.config import (GATE_INTERVAL, Backend, Front, dynamic_config,
                                       gate_path)
from autonomous.gateway.gate import Gate, parse_path
from autonomous.gateway.process import Traefik
from autonomous.testing import free_port, serve_http, text_handler
from controllers.gateway import GatewayController, GatewayObserved
from tests.conftest import needs_traefik


def _front(port: int, p1: int, p2: int, w2: int, device: str, gate: int | None,
           **kw: object) -> Front:
    return Front(name="nexus", port=port, device_version=device, device_paths=("/motor",),
                 backends=(Backend("1", p1, 100 - w2), Backend("2", p2, w2, gated=True)),
                 gate_port=gate, **kw)  # type: ignore[arg-type]


def test_gated_candidate_goes_through_a_failover_to_the_old_version() -> None:
    doc = dynamic_config([_front(9, 1, 2, 100, "2", 7)])["http"]
    s = doc["services"]
    assert s["nexus-v2-guard"] == {"failover": {"service": "nexus-v2", "fallback": "nexus-v1"}}
    assert s["nexus-v2"]["loadBalancer"]["healthCheck"] == {
        "path": "/gate/nexus/2", "port": 7, "interval": GATE_INTERVAL, "timeout": "3s"}
    assert "healthCheck" not in s["nexus-v1"]["loadBalancer"]
    # FULL: the split and the device paths both enter through the guard: one check of the
    # candidate switches every path back at once
    assert s["nexus-split"]["weighted"]["services"] == [{"name": "nexus-v2-guard",
                                                        "weight": 100}]
    assert doc["routers"]["nexus-device"]["service"] == "nexus-v2-guard"
    # before FULL the device paths stay on the old version, ordinary traffic is split
    doc = dynamic_config([_front(9, 1, 2, 10, "1", 7)])["http"]
    assert doc["routers"]["nexus-device"]["service"] == "nexus-v1"
    assert [x["name"] for x in doc["services"]["nexus-split"]["weighted"]["services"]] == [
        "nexus-v1", "nexus-v2-guard"]
    # no gate running: the candidate is reached directly, as before
    doc = dynamic_config([_front(9, 1, 2, 10, "1", None)])["http"]
    assert "nexus-v2-guard" not in doc["services"]
    assert "healthCheck" not in doc["services"]["nexus-v2"]["loadBalancer"]


def test_gate_under_a_fallback_failover_propagates_health() -> None:
    f = _front(9, 1, 2, 50, "1", 7, fallback_url="http://127.0.0.1:3")
    s = dynamic_config([f])["http"]["services"]
    assert s["nexus-v2-guard"]["failover"]["healthCheck"] == {}  # a WRR child of a failover
    assert s["nexus-v1"]["loadBalancer"]["healthCheck"]["path"] == "/health"
    assert s["nexus-v2"]["loadBalancer"]["healthCheck"]["port"] == 7
    active = dynamic_config([_front(9, 1, 2, 50, "1", 7, fallback_url="http://127.0.0.1:3",
                                    fallback_active=True)])["http"]
    assert "nexus-v2-guard" not in active["services"]
    assert active["routers"]["nexus"]["service"] == "nexus-fallback"


def test_gate_path_round_trips() -> None:
    assert parse_path(gate_path("my front/x", 8123)) == ("my front/x", 8123)
    assert parse_path("/gate/nexus/80?x=1") == ("nexus", 80)
    assert parse_path("/gate/nexus/eighty") is None
    assert parse_path("/health") is None


def test_gate_answers_from_the_data_it_reads() -> None:
    published = {("nexus", 5)}
    gate = Gate(lambda s, p: (s, p) in published)

    async def run() -> list[int]:
        await gate.start()
        try:
            def get() -> list[int]:
                with httpx.Client(timeout=2, trust_env=False) as c:  # one keep-alive
                    base = f"http://127.0.0.1:{gate.port}"
                    codes = [c.get(base + gate_path("nexus", 5)).status_code]
                    published.clear()
                    codes += [c.get(base + gate_path("nexus", 5)).status_code,
                              c.get(base + "/other").status_code]
                    return codes
            return await asyncio.to_thread(get)
        finally:
            await gate.stop()
    assert asyncio.run(run()) == [200, 503, 404]
    assert ("nexus", 5) in gate.closed_at and gate.port == 0


def test_controller_holds_the_rewrite_while_the_gate_switches() -> None:
    f = _front(9, 1, 2, 100, "2", 7)
    obs = GatewayObserved((f,), None, None, "/tmp/d", 5, switching=("nexus",))
    kinds = [a.kind for a in GatewayController.diff(None, obs)]
    assert kinds == ["start"]  # the gate is no reason to leave Traefik down
    from autonomous.gateway.config import static_args
    argv = tuple(static_args([f], Path("/tmp/d"), 5))
    obs = GatewayObserved((f,), argv, "old document", "/tmp/d", 5, switching=("nexus",))
    assert GatewayController.diff(None, obs) == ()
    assert GatewayController.requeue_after(None, obs) is not None
    obs = GatewayObserved((f,), argv, "old document", "/tmp/d", 5)
    assert [a.kind for a in GatewayController.diff(None, obs)] == ["route"]
    assert GatewayController.requeue_after(None, obs) is None


def _until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)  # polling a real condition (answers through Traefik)
    return False


@needs_traefik
def test_closed_gate_switches_every_path_back_without_a_reload(tmp_path: Path) -> None:
    open_ = threading.Event()
    open_.set()
    gate = Gate(lambda s, p: open_.is_set())
    loop = asyncio.new_event_loop()
    loop.run_until_complete(gate.start())
    with serve_http(text_handler("1")) as s1, serve_http(text_handler("2")) as s2:
        p1, p2 = s1.server_address[1], s2.server_address[1]
        port = free_port()
        gw = Traefik([_front(port, p1, p2, 100, "2", gate.port)], tmp_path, free_port())
        gw.start()
        url = f"http://127.0.0.1:{port}"
        doc = tmp_path / "dynamic" / "atlas.yaml"
        try:
            with httpx.Client(timeout=2, trust_env=False) as c:
                assert _until(lambda: {c.get(url + "/api").text for _ in range(5)} == {"2"})
                assert c.get(url + "/motor/move").text == "2"
                before = (doc.read_text(), doc.stat().st_mtime_ns)
                open_.clear()  # the rollback's unpublish: the gate closes
                assert _until(lambda: c.get(url + "/api").text == "1", 5)
                assert {c.get(url + p).text for p in ("/api", "/motor/move", "/") * 5} == {"1"}
                assert ("nexus", p2) in gate.closed_at
                assert (doc.read_text(), doc.stat().st_mtime_ns) == before  # no reload
                open_.set()  # published again: the candidate serves once more
                assert _until(lambda: c.get(url + "/motor/move").text == "2", 5)
        finally:
            gw.stop()
            loop.run_until_complete(gate.stop())
            loop.close()
