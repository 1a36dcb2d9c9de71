"""Health controller (findings, conditions, policy edits) and the /api/health routes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from autonomous.api.app import create_app
from autonomous.testing import free_port, make_context
from controllers.base import Action
from controllers.health import HealthController, findings
from controllers.manager import ControllerManager

SERVICE = """\
apiVersion: atlas.autonomous/v1
kind: Service
metadata: {{name: ghost}}
spec:
  command: ["{{python}}", "-c", "pass"]
  port: {port}
  health: {{path: /health, period_seconds: 2, timeout_seconds: 0.5, failure_threshold: 3,
           startup_grace_seconds: 0}}
"""


@pytest.fixture
async def setup(tmp_path: Path):
    ctx = make_context(tmp_path, load=False)
    for f in (ctx.root / "desired_state").glob("*.yaml"):
        f.unlink()
    (ctx.root / "desired_state" / "ghost.yaml").write_text(SERVICE.format(port=free_port()))
    assert ctx.desired.reload() is not None, ctx.desired.error
    ctl = HealthController(ctx)
    await ctl.start()
    try:
        yield ctx, ctl
    finally:
        await ctl.stop()
        ctx.store.close()


async def _cycle(ctx, ctl, advance: float = 10.0) -> list:
    """Advance, then one observe → diff → act (through the Executor) → report pass."""
    for _ in range(int(advance / 2)):
        ctx.clock.advance(2)
        await asyncio.sleep(0.02)  # let the probe loops run their (refused) probes
    return await ControllerManager(ctx, [ctl]).reconcile(ctl)


def _drain(sub) -> list:
    out = []
    while (ev := sub.get_nowait()) is not None:
        out.append(ev)
    return out


async def test_unhealthy_service_finding_condition_and_graph(setup) -> None:
    ctx, ctl = setup
    sub = ctx.bus.subscribe("health.")
    await _cycle(ctx, ctl)
    st = ctx.status.resource("health", "Service", "ghost")
    assert st.conditions["Healthy"].status == "False"
    assert st.conditions["Healthy"].reason == "LivenessFailed"
    assert st.conditions["Ready"].status == "False"
    events = [e for e in _drain(sub) if e.topic == "health.finding"]
    ghost = [e for e in events if e.data["type"] == "unhealthy_service"]
    assert ghost and ghost[0].data["service"] == "ghost" and ghost[0].data["severity"] == "severa"
    chain = ctx.graph.why(ghost[0].data["graph_node"])
    assert [c["type"] for c in chain] == ["observation", "error"]
    assert any(x["node"]["label"] == "Service/ghost" for x in chain[-1]["context"])
    await _cycle(ctx, ctl)  # still failing: not published twice
    assert not [e for e in _drain(sub) if e.data.get("type") == "unhealthy_service"]
    # the decision went through the Executor: observation → decision → action → outcome
    outcome = ctx.status.controller("health").last_decisions["Service/ghost"]
    assert [n["type"] for n in ctx.graph.why(outcome)][-4:] == [
        "observation", "decision", "action", "outcome"]


async def test_threshold_policy_edit_applies_next_cycle(setup) -> None:
    ctx, ctl = setup
    sub = ctx.bus.subscribe("health.")
    await _cycle(ctx, ctl)
    assert "threshold_exceeded:ram.percent" not in ctl.active
    path = ctx.root / "policies" / "health.yaml"
    original = path.read_text()
    path.write_text(original.replace("ram_percent: 85", "ram_percent: 0.01"))
    assert ctx.desired.reload() is not None
    await _cycle(ctx, ctl)
    assert "threshold_exceeded:ram.percent" in ctl.active
    assert ctx.subsystems["health"].latest.components["system"]["healthy"] is False
    found = [e for e in _drain(sub) if e.topic == "health.finding"
             and e.data["type"] == "threshold_exceeded" and e.data["metric"] == "ram.percent"]
    assert found and found[0].data["evidence"]["threshold"] == 0.01
    path.write_text(original)
    assert ctx.desired.reload() is not None
    await _cycle(ctx, ctl)
    assert "threshold_exceeded:ram.percent" not in ctl.active
    assert any(e.topic == "health.finding_resolved" for e in _drain(sub))


_POLICY = {"thresholds": {"service_error_rate": 0.05, "ram_percent": 85, "disk_percent": 90}}
_OK = {"live": True, "ready": True, "consecutive_failures": 0, "latency_p95_ms": 3.0,
       "error_rate": 0.0, "last_probe": None}


@pytest.mark.parametrize(("observed", "types"), [
    ({}, []),
    ({"services": {"a": {**_OK, "live": False}}}, ["unhealthy_service"]),
    ({"services": {"a": {**_OK, "error_rate": 0.2}}}, ["unhealthy_service"]),
    ({"usage": {"disk.percent{mount=/}": (95.0, "disk_percent")}}, ["threshold_exceeded"]),
    ({"usage": {"ram.percent": (None, "ram_percent")}}, []),
    ({"anomalies": [{"metric": "cpu.percent", "severity": "leve", "peak_z": 5.0}]}, ["anomaly"]),
    ({"predictions": [{"metric": "disk.percent{mount=/}", "threshold": 90.0,
                       "eta_seconds": 3600.0}]}, ["predicted_failure"]),
], ids=["nothing", "down", "errors", "disk", "null-metric", "anomaly", "prediction"])
def test_findings_pure(observed: dict, types: list[str]) -> None:
    obs = {"services": {"a": _OK}, "usage": {}, "anomalies": [], "predictions": [], **observed}
    desired = {"policy": _POLICY, "services": {"a": object()}}
    assert [f.type for f in findings(desired, obs)] == types
    assert findings(desired, obs) == findings(desired, obs)
    planned = HealthController.diff(desired, obs)
    assert [a.params["type"] for a in planned if a.params["op"] == "raise"] == types
    assert {a.kind for a in planned} <= {"incident", "alert", "housekeeping"}
    # every finding already published: nothing to do
    active = {f.key: f.as_dict() for f in findings(desired, obs)}
    assert HealthController.diff(desired, {**obs, "active": active}) == ()


async def test_act_refuses(setup) -> None:
    _, ctl = setup
    out = await ctl.act(Action("alert_human", "Service/ghost", "test"))
    assert not out.ok and out.permanent


PATHS = ["/api/health/comprehensive", "/api/health/metrics/system",
         "/api/health/metrics/services", "/api/health/anomalies", "/api/health/predictions",
         "/api/health/history"]


async def test_routes_schemas_and_answers(setup) -> None:
    ctx, ctl = setup
    app = create_app(ctx)
    spec = app.openapi()
    for p in PATHS:
        ok = spec["paths"][p]["get"]["responses"]["200"]["content"]["application/json"]
        assert "$ref" in ok["schema"], p
    assert "GlobalHealthOut" in spec["components"]["schemas"]
    with TestClient(app) as c:
        r = c.get("/api/health/comprehensive")
        assert r.status_code == 503 and "first cycle" in r.json()["detail"]
        await _cycle(ctx, ctl)
        body = c.get("/api/health/comprehensive").json()
        assert 0 <= body["score"] <= 100 and "ghost" in body["components"]["services"]["per_service"]
        sysm = c.get("/api/health/metrics/system").json()
        assert sysm["cpu"]["percent"] is not None and isinstance(sysm["unavailable"], dict)
        svc = c.get("/api/health/metrics/services").json()
        assert svc["services"]["ghost"]["live"] is False
        assert c.get("/api/health/anomalies", params={"since": "2020-01-01T00:00:00Z"}
                     ).status_code == 200
        r = c.get("/api/health/anomalies", params={"since": "yesterday"})
        assert r.status_code == 422 and "query.since" in r.text
        assert c.get("/api/health/predictions").json() == {"predictions": []}
        h = c.get("/api/health/history", params={"metric": "cpu.percent", "days": 1}).json()
        assert h["points"] and h["points"][0]["count"] >= 1
        r = c.get("/api/health/history", params={"metric": "nope.metric"})
        assert r.status_code == 404 and "known:" in r.json()["detail"]
        r = c.get("/api/health/history", params={"metric": "cpu{x", "days": 1})
        assert r.status_code == 422


async def test_system_metrics_keep_cpu_flags_in_their_own_route(setup) -> None:
    ctx, ctl = setup
    app = create_app(ctx)
    with TestClient(app) as c:
        await _cycle(ctx, ctl)
        ctl.aggregator.system.cpu_info = {"brand": "test cpu", "features": ["avx", "sse2"]}
        await _cycle(ctx, ctl)
        sysm = c.get("/api/health/metrics/system").json()
        assert "avx" not in str(sysm) and "GET /api/health/cpu-features" in str(sysm)
        assert c.get("/api/health/cpu-features").json() == {"brand": "test cpu",
                                                            "features": ["avx", "sse2"],
                                                            "reason": None}
