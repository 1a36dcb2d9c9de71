"""The embedded heartbeat agent: the sample NEXUS started by a real operator beats through it
(metrics reach telemetry through the API, a failed beat triggers healing), its reports go
through a circuit breaker, and its token opens its own heartbeat route only."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from autonomous.api.app import create_app
from autonomous.self_healing.heartbeat_agent import HeartbeatAgent, heartbeat_token
from autonomous.testing import free_port, make_context, serve_http, wait_for
from tests.conftest import make_tree, service_yaml

FAST = "heartbeat: {path: /api/heartbeat, interval_seconds: 0.3, timeout_seconds: 0.5}"


def _tree(root: Path, port: int) -> Path:
    make_tree(root, {"nexus": service_yaml("nexus", port)})
    pol = root / "policies" / "healing.yaml"
    text = pol.read_text()
    old = "heartbeat: {path: /api/heartbeat, interval_seconds: 5, timeout_seconds: 2}"
    assert old in text, "the default heartbeat policy line changed: update this test"
    pol.write_text(text.replace(old, FAST))
    return root


def _series(c: Any, name: str) -> list[dict[str, Any]]:
    return c.get("/api/telemetry/metrics", params={"name": name,
                                                   "labels": "service=nexus"}).json()["series"]


def test_sample_nexus_beats_through_the_agent_and_a_failed_beat_heals(
        tmp_path: Path, operator_factory: Any) -> None:
    port = free_port()
    op = operator_factory(_tree(tmp_path / "tree", port)).start(40)
    op.wait_for(lambda: op.services()["nexus"]["health"] == "Healthy", 30, "nexus healthy")
    with op.client() as c:
        # the agent inside NEXUS reported its beats and its own metrics through the API
        op.wait_for(lambda: any(p[1] == 1.0 for s in _series(c, "heartbeat_ok")
                                for p in s["points"]), 20, "heartbeat_ok=1 from the agent")
        rss = _series(c, "heartbeat.rss_mb")
        assert rss and all(p[1] > 1 for p in rss[0]["points"])
        assert _series(c, "heartbeat.uptime_s")
        log = (op.data_dir / "logs" / "nexus.log").read_text()
        assert "heartbeat agent on" in log
        # only the heartbeat path hangs: /health keeps passing, so only the beat sees it
        import httpx
        r = httpx.post(f"http://127.0.0.1:{port}/fault", json={
            "kind": "hang", "paths": ["/api/heartbeat"], "duration_s": 3}, timeout=5)
        assert r.status_code == 200, r.text
        inc = op.wait_for(lambda: [i for i in c.get("/api/healing/history").json()
                                   if i["source"] == "heartbeat"], 30,
                          "a healing incident from the failed heartbeat")
        assert inc[0]["service"] == "nexus" and inc[0]["error_type"]
        assert any(p[1] == 0.0 for s in _series(c, "heartbeat_ok") for p in s["points"])


class _Operator(BaseHTTPRequestHandler):
    """A stand-in operator API: serves a policy and refuses every heartbeat report."""
    reports = 0
    policy = {"policy": {"healing": {
        "heartbeat": {"path": "/api/heartbeat", "interval_seconds": 0.05,
                      "timeout_seconds": 0.5},
        "heartbeat_breaker": {"failure_threshold": 2, "timeout_seconds": 3600,
                              "success_threshold": 1}}}}

    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps(self.policy if self.path == "/api/policy" else {}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        type(self).reports += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_reports_go_through_a_breaker_that_opens_when_the_operator_fails() -> None:
    with serve_http(_Operator) as srv:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        agent = HeartbeatAgent("nexus", url, url, "t")
        stop = threading.Event()
        t = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        t.start()
        try:
            wait_for(lambda: agent.beats >= 6, "six beats", 10)
        finally:
            stop.set()
            t.join(5)
    assert _Operator.reports == 2  # failure_threshold: then OPEN, nothing more sent
    assert agent.last is not None and agent.last.breaker == "OPEN"
    assert agent.last.ok and not agent.last.reported
    assert "not sent" in (agent.last.report_error or "")


def test_a_heartbeat_token_opens_only_its_own_route(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    try:
        beat = {"ok": True, "latency_ms": 1.5, "metrics": {"rss_mb": 40.0}}
        nexus = {"Authorization": f"Bearer {heartbeat_token(ctx.token, 'nexus')}"}
        with TestClient(create_app(ctx)) as c:
            assert c.post("/api/healing/heartbeat/nexus", json=beat).status_code == 401
            r = c.post("/api/healing/heartbeat/robot", json=beat, headers=nexus)
            assert r.status_code == 401
            assert c.put("/api/governance/mode", json={"mode": "growth"},
                         headers=nexus).status_code == 401
            r = c.post("/api/healing/heartbeat/nexus", json=beat, headers=nexus)
            assert r.status_code == 503 and "healing" in r.json()["detail"]  # not running here
            bad = c.post("/api/healing/heartbeat/nexus", headers=nexus,
                         json={"ok": True, "metrics": {"Bad Name": 1.0}})
            assert bad.status_code == 422
    finally:
        ctx.store.close()


class _Accepting(_Operator):
    """Takes reports; its answer carries an edited policy (a longer timeout)."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        healing = self.policy["policy"]["healing"]
        body = json.dumps({"service": "nexus", "received": True, "healing_requested": False,
                           "generation": 2, "heartbeat": {**healing["heartbeat"],
                                                          "timeout_seconds": 0.75},
                           "heartbeat_breaker": healing["heartbeat_breaker"]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_the_agent_follows_the_policy_each_report_answers_with() -> None:
    with serve_http(_Accepting) as srv:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        agent = HeartbeatAgent("nexus", url, url, "t")
        first = agent.beat()
        assert first.reported and first.breaker == "CLOSED"
        assert agent.policy is not None and agent.policy["timeout_seconds"] == 0.75
