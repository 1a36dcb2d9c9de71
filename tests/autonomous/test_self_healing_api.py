"""/api/healing/*: trigger, history, strategies, override, stats; token guard; errors."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from autonomous.api.app import create_app
from autonomous.self_healing.facade import HealingFacade
from tests.autonomous.healing_fakes import drain, healing_context, spec

AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture
def api(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)})
    ctx.subsystems["healing"] = HealingFacade(orch)
    with TestClient(create_app(ctx)) as c:
        yield c, ctx, fake, orch
    ctx.store.close()


def test_trigger_runs_the_pipeline_and_history_shows_it(api):
    c, _ctx, _fake, orch = api
    r = c.post("/api/healing/trigger", json={"service": "nexus", "strategy": "RESTART_SERVICE",
                                             "reason": "looks stuck"}, headers=AUTH)
    assert r.status_code == 200, r.text
    started = r.json()
    assert started["state"] == "open" and started["strategy"] == "RESTART_SERVICE"
    asyncio.run(drain(orch))  # the healing controller's passes verify and settle it
    [body] = c.get("/api/healing/history", params={"service": "nexus"}).json()
    assert body["id"] == started["id"] and body["state"] == "healed"
    assert body["attempts"][0]["strategy"] == "RESTART_SERVICE" and body["mttr_s"] is not None
    rows = c.get("/api/healing/history", params={"service": "nexus", "state": "healed"}).json()
    assert [x["id"] for x in rows] == [body["id"]]
    assert c.get("/api/healing/history", params={"service": "robot"}).json() == []
    assert c.get("/api/healing/history", params={"success": "false"}).json() == []


@pytest.mark.parametrize("path", ["/api/healing/trigger", "/api/healing/override"])
def test_mutations_need_the_token(api, path):
    c = api[0]
    r = c.post(path, json={"service": "nexus", "action": "pause"})
    assert r.status_code == 401 and "bearer token" in r.json()["detail"]


@pytest.mark.parametrize("body,status,text", [
    ({"service": "ghost"}, 404, "'ghost' is not declared; declared services: nexus"),
    ({"service": "nexus", "strategy": "PRAY"}, 422, "strategy"),
    ({"service": "nexus", "bogus": 1}, 422, "bogus"),
])
def test_trigger_bad_input(api, body, status, text):
    r = api[0].post("/api/healing/trigger", json=body, headers=AUTH)
    assert r.status_code == status and text in r.text


def test_strategies_list_every_strategy_with_its_gate(api):
    c, ctx, *_ = api
    data = c.get("/api/healing/strategies").json()
    assert [s["name"] for s in data["strategies"]] == [
        "RETRY", "RESTART_SERVICE", "RESTART_ALL", "ROLLBACK", "FALLBACK", "DEGRADE", "ISOLATE",
        "ALERT_HUMAN"]
    gates = {s["name"]: s["gate"] for s in data["strategies"]}
    assert gates["ROLLBACK"] == "enforce"  # growth
    ctx.governance.set_mode("governed", actor="t")
    gates = {s["name"]: s["gate"] for s in c.get("/api/healing/strategies").json()["strategies"]}
    assert gates["ROLLBACK"] == gates["RESTART_ALL"] == "require_approval"
    assert gates["RESTART_SERVICE"] == "enforce"


def test_override_pause_force_and_bad_actions(api):
    c, ctx, _fake, _orch = api
    r = c.post("/api/healing/override", json={"service": "nexus", "action": "pause"},
               headers=AUTH)
    assert r.status_code == 200 and r.json()["paused_by_human"] is True
    r = c.post("/api/healing/override", json={"service": "nexus", "action": "force_strategy"},
               headers=AUTH)
    assert r.status_code == 422 and "force_strategy needs strategy" in r.text
    r = c.post("/api/healing/override", json={"service": "nexus", "action": "force_strategy",
                                              "strategy": "DEGRADE"}, headers=AUTH)
    assert r.json()["forced_strategy"] == "DEGRADE"
    r = c.post("/api/healing/override", json={"service": "nexus", "action": "explode"},
               headers=AUTH)
    assert r.status_code == 422 and "action" in r.text
    assert ctx.graph.find(type_="decision", label_contains="human override")


def test_stats_alerts_and_recurring(api):
    c, *_ = api
    c.post("/api/healing/trigger", json={"service": "nexus", "strategy": "ALERT_HUMAN"},
           headers=AUTH)
    stats = c.get("/api/healing/stats").json()
    assert stats["total"]["incidents"] == 1 and stats["total"]["escalated"] == 1
    [alert] = c.get("/api/healing/alerts", params={"open_only": True}).json()
    assert alert["service"] == "nexus" and alert["graph_link"].startswith("/api/graph/why/")
    assert set(c.get("/api/healing/recurring").json()) == {"recurring", "preventive_actions"}


def test_503_when_healing_is_not_running(tmp_path):
    ctx, *_ = healing_context(tmp_path, {"nexus": spec()})
    with TestClient(create_app(ctx)) as c:
        r = c.get("/api/healing/strategies")
    assert r.status_code == 503 and "subsystem 'healing' is not running" in r.json()["detail"]
    ctx.store.close()
