"""The /api/telemetry routes on the real app, the tracing middleware, and a trace that spans
the operator and a real sample service process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from autonomous.api.app import create_app
from autonomous.telemetry.httpx_hooks import event_hooks, traced_client
from autonomous.telemetry.hub import TelemetryHub
from autonomous.testing import free_port, make_context

AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture()
def env(tmp_path):
    ctx = make_context(tmp_path)
    hub = TelemetryHub.from_context(ctx)
    ctx.subsystems["telemetry"] = hub
    app = create_app(ctx)
    with TestClient(app) as client:
        yield ctx, hub, client
    hub.close()
    ctx.store.close()


def test_metrics_catalogue_series_and_aggregation(env):
    ctx, hub, c = env
    t0 = ctx.clock.now()
    for i in range(10):
        hub.metrics.collect_metric("service.probe_latency_ms", 10.0 * (i + 1),
                                   {"service": "nexus"}, t0 + i)
    assert c.get("/api/telemetry/metrics").json()["metrics"][0]["name"] == \
        "service.probe_latency_ms"
    body = c.get("/api/telemetry/metrics", params={"name": "service.probe_latency_ms",
                                                   "labels": "service=nexus", "start": t0,
                                                   "end": t0 + 9, "resolution": "raw"}).json()
    assert [p[1] for p in body["series"][0]["points"]] == [10.0 * (i + 1) for i in range(10)]
    agg = c.get("/api/telemetry/metrics", params={"name": "service.probe_latency_ms",
                                                  "aggregation": "p95", "start": t0,
                                                  "end": t0 + 10, "step": 5}).json()
    assert [round(w["value"], 2) for w in agg["windows"]] == [48.0, 98.0]
    bad = c.get("/api/telemetry/metrics", params={"name": "x", "labels": "service"})
    assert bad.status_code == 422 and "'service' is not key=value" in bad.text
    bad = c.get("/api/telemetry/metrics", params={"name": "x", "aggregation": "median",
                                                  "start": t0})
    assert bad.status_code == 422 and "'median' is not one of" in bad.text
    bad = c.get("/api/telemetry/metrics", params={"aggregation": "avg", "resolution": "5m"})
    assert bad.status_code == 422 and "'5m' is not one of" in bad.text  # catalogue too
    bad = c.get("/api/telemetry/metrics", params={"name": "x", "aggregation": "avg",
                                                  "start": 0, "end": 1e6, "step": 1})
    assert bad.status_code == 422 and "larger step" in bad.text
    last = c.get("/api/telemetry/metrics", params={"name": "service.probe_latency_ms",
                                                   "aggregation": "max"}).json()["windows"]
    assert len(last) == 1 and last[0]["end"] - last[0]["start"] == 300.0  # default lookback


def test_requests_are_traced_and_logs_searchable(env):
    ctx, hub, c = env
    parent = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    r = c.get("/api/telemetry/dashboards", headers={"traceparent": parent})
    assert r.status_code == 200 and r.headers["traceparent"].startswith("00-" + "1" * 32)
    names = {d["name"] for d in r.json()}
    assert names == {"health", "services", "neural-router", "tools", "self-healing", "evolution"}
    trace = c.get(f"/api/telemetry/traces/{'1' * 32}").json()
    (span,) = trace["spans"]
    assert span["name"] == "GET /api/telemetry/dashboards" and span["parent_id"] == "2" * 16
    assert span["attributes"]["http.status_code"] == 200
    assert c.get("/api/telemetry/traces/" + "f" * 32).status_code == 404
    hub.logs.ingest([{"level": "ERROR", "message": "robot camera offline", "service": "robot"}])
    found = c.get("/api/telemetry/logs", params={"q": "camera", "level": "error"}).json()
    assert found["count"] == 1 and found["lines"][0]["service"] == "robot"
    assert c.get("/api/telemetry/logs/errors").json()[0]["count"] == 1


def test_dashboard_panels_render(env):
    ctx, hub, c = env
    hub.metrics.collect_metric("health.score", 87.0)
    hub.metrics.collect_metric("cpu.percent", 12.0)
    body = c.get("/api/telemetry/dashboard/health").json()
    panels = {p["title"]: p for p in body["panels"]}
    assert panels["Health score"]["values"][0]["value"] == 87.0
    assert panels["CPU"]["series"][0]["points"][0][1] == 12.0
    assert panels["RAM"]["reason"].startswith("no data")
    assert c.get("/api/telemetry/dashboard/nope").status_code == 404


def test_alert_ack_and_silences_need_the_token(env):
    ctx, hub, c = env
    a = hub.alerts.trigger_alert("disk_full", {"service": "nexus"}, severity="critical")
    assert c.post(f"/api/telemetry/alerts/ack/{a['id']}").status_code == 401
    r = c.post(f"/api/telemetry/alerts/ack/{a['id']}", headers=AUTH, json={"comment": "mine"})
    assert r.status_code == 200 and r.json()["acked_by"] == "api-token"
    alerts = c.get("/api/telemetry/alerts").json()
    assert alerts["active"][0]["id"] == a["id"]
    detail = c.get(f"/api/telemetry/alerts/{a['id']}").json()
    assert [t["to_state"] for t in detail["transitions"]] == ["pending", "firing", "acknowledged"]
    assert c.post("/api/telemetry/alerts/ack/999", headers=AUTH).status_code == 404
    s = c.post("/api/telemetry/silences", headers=AUTH,
               json={"matchers": {"service": "nexus"}, "duration_seconds": 600})
    assert s.status_code == 201
    assert c.get("/api/telemetry/silences", params={"active": True}).json()[0]["id"] == \
        s.json()["id"]
    assert c.delete(f"/api/telemetry/silences/{s.json()['id']}", headers=AUTH).status_code == 200
    assert c.get("/api/telemetry/silences", params={"active": True}).json() == []
    bad = c.post("/api/telemetry/silences", headers=AUTH, json={"matchers": {},
                                                                  "duration_seconds": 5})
    assert bad.status_code == 422


async def test_one_trace_spans_operator_and_a_real_sample_service(tmp_path):
    ctx = make_context(tmp_path)
    hub = TelemetryHub.from_context(ctx)
    port, log_dir = free_port(), tmp_path / "data" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "nexus.log", "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "autonomous.sample_stack", "--name",
                                 "nexus", "--port", str(port)], stdout=out, stderr=out)
    try:
        async with traced_client(hub.tracing) as client:
            await _wait_up(client, port)
            with hub.tracing.span("heal nexus") as root:
                r = await client.get(f"http://127.0.0.1:{port}/health")
                assert r.status_code == 200
        async with httpx.AsyncClient(event_hooks=event_hooks(hub.tracing)) as hooked:
            with hub.tracing.span("probe nexus") as probe_root:
                await hooked.get(f"http://127.0.0.1:{port}/ready")
        trace = await _collect_trace(hub, root.trace_id)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        hub.close()
        ctx.store.close()
    by_service = {s["service"]: s for s in trace["spans"] if s["kind"] == "server"}
    client_span = next(s for s in trace["spans"] if s["kind"] == "client")
    assert trace["services"] == ["nexus", "operator"]
    assert client_span["parent_id"] == root.span_id
    assert by_service["nexus"]["parent_id"] == client_span["span_id"]
    assert probe_root.trace_id != root.trace_id


async def _wait_up(client, port):
    for _ in range(100):
        try:
            await client.get(f"http://127.0.0.1:{port}/health")
            return
        except httpx.TransportError:
            await asyncio.sleep(0.05)
    raise AssertionError("sample service did not start")


async def _collect_trace(hub, trace_id):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        hub.tail.collect()
        trace = hub.tracing.get_trace(trace_id)
        if len(trace["spans"]) >= 3:
            return trace
        await asyncio.sleep(0.05)
    raise AssertionError(f"service span never arrived: {trace}")
