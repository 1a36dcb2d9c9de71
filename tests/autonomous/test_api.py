"""Core API on the real app (TestClient with lifespan) over a fresh SQLite file per test."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from autonomous.api.app import create_app

AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture
def client(ctx):
    with TestClient(create_app(ctx)) as c:
        yield c


def _pending(ctx, generation=1, ttl=60.0):
    return ctx.approvals.request(controller="services", resource="Service/a",
                                 action_kind="rollback", action={"kind": "rollback"},
                                 action_hash="abc", generation=generation, mode="governed",
                                 ttl=ttl)


def test_desired_state_and_policy(client, ctx):
    r = client.get("/api/desired-state").json()
    assert r["generation"] == 1 and len(r["hash"]) == 64 and r["error"] is None
    pol = client.get("/api/policy", params={"mode": "growth"}).json()
    assert pol["policy"]["governance"]["actions"]["rollback"] == "enforce"
    bad = client.get("/api/policy", params={"mode": "nope"})
    assert bad.status_code == 422 and "query.mode" in bad.json()["detail"] \
        and "'governed', 'growth' or 'emergency_stop'" in bad.json()["detail"]


def test_mode_requires_token_and_valid_body(client):
    assert client.put("/api/governance/mode", json={"mode": "growth"}).status_code == 401
    r = client.put("/api/governance/mode", json={"mode": "growth"},
                   headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["detail"] == "invalid bearer token"
    assert client.put("/api/governance/mode", json={}, headers=AUTH).status_code == 422
    r = client.put("/api/governance/mode", json={"mode": "growth", "reason": "test"},
                   headers=AUTH)
    assert r.status_code == 200 and r.json()["mode"] == "growth"


def test_approvals_flow(client, ctx):
    item = _pending(ctx)
    listed = client.get("/api/approvals", params={"state": "pending"}).json()["approvals"]
    assert [a["id"] for a in listed] == [item["id"]]
    assert client.post(f"/api/approvals/{item['id']}/approve").status_code == 401
    r = client.post(f"/api/approvals/{item['id']}/approve", headers=AUTH, json={"reason": "ok"})
    assert r.status_code == 200 and r.json()["state"] == "approved"
    assert r.json()["decided_by"] == "api-token"
    again = client.post(f"/api/approvals/{item['id']}/reject", headers=AUTH)
    assert again.status_code == 409
    assert client.post("/api/approvals/nope/approve", headers=AUTH).status_code == 404


def test_stale_and_expired_approvals(client, ctx):
    stale = _pending(ctx, generation=0)
    r = client.post(f"/api/approvals/{stale['id']}/approve", headers=AUTH)
    assert r.status_code == 409 and "generation 0" in r.json()["detail"]
    expiring = ctx.approvals.request(controller="services", resource="Service/b",
                                     action_kind="rollback", action={}, action_hash="zzz",
                                     generation=1, mode="governed", ttl=10)
    ctx.clock.advance(11)
    r = client.post(f"/api/approvals/{expiring['id']}/approve", headers=AUTH)
    assert r.status_code == 410 and "expired" in r.json()["detail"]


def test_graph_queries_and_404(client, ctx):
    ids = ctx.graph.record_chain([("observation", "seen", {}), ("decision", "do it", {})])
    r = client.get("/api/graph/nodes", params={"type": "decision"}).json()
    assert [n["id"] for n in r["nodes"]] == [ids[1]]
    chain = client.get(f"/api/graph/why/{ids[1]}").json()["chain"]
    assert [c["type"] for c in chain] == ["observation", "decision"]
    assert client.get("/api/graph/why/missing").status_code == 404
    assert client.get("/api/graph/nodes", params={"since": "yesterday"}).status_code == 422


def test_reconcile_endpoints_without_controllers(client):
    assert client.get("/api/reconcile/status").json()["controllers"] == {}
    assert client.post("/api/reconcile/services/trigger", headers=AUTH).status_code == 404
    assert client.get("/api/reconcile/services/why").status_code == 404
    assert client.get("/healthz").json()["status"] == "ok"


def test_latest_why_is_one_bounded_read_across_controllers(client, ctx):
    assert client.get("/api/reconcile/why").json() == {"decisions": [], "total": 0,
                                                       "controllers": []}
    recorded = {}  # (controller, resource) -> decision node, oldest first
    for ctl, res in (("services", "Service/nexus"), ("healing", "Service/robot"),
                     ("services", "Service/robot")):
        ctx.clock.advance(10)
        ids = ctx.graph.record_chain([("observation", f"{res} seen", {}),
                                      ("decision", f"restart {res}", {}),
                                      ("action", f"restarted {res}", {})])
        ctx.status.controller(ctl).last_decisions[res] = ids[-1]
        recorded[(ctl, res)] = ids[1]
    ctx.status.controller("telemetry").last_decisions["Alert/x"] = "gone-from-the-graph"
    body = client.get("/api/reconcile/why").json()
    assert body["controllers"] == ["healing", "services", "telemetry"]
    assert body["total"] == 3  # the pruned node is left out, not a 500
    got = [(d["controller"], d["resource"]) for d in body["decisions"]]
    assert got == list(reversed(recorded))  # newest decision first
    first = body["decisions"][0]
    assert [n["type"] for n in first["chain"]] == ["observation", "decision", "action"]
    assert first["chain"][1]["id"] == recorded[("services", "Service/robot")]
    same = client.get("/api/reconcile/services/why").json()["chains"]["Service/robot"]
    assert first["chain"] == same  # the batched read returns what the per-controller one does
    bounded = client.get("/api/reconcile/why", params={"limit": 1}).json()
    assert bounded["total"] == 3 and len(bounded["decisions"]) == 1
    assert bounded["decisions"][0] == first
    for bad in (0, 201, "x"):
        assert client.get("/api/reconcile/why", params={"limit": bad}).status_code == 422


def test_every_mutating_route_requires_token(client):
    spec = client.get("/openapi.json").json()
    unguarded = []
    for path, ops in spec["paths"].items():
        for method in ops:
            if method in ("post", "put", "patch", "delete"):
                url = path.replace("{", "").replace("}", "")
                r = client.request(method.upper(), url, json={})
                if r.status_code != 401:
                    unguarded.append(f"{method.upper()} {path} → {r.status_code}")
    assert unguarded == []


def test_missing_body_names_the_fields_and_same_mode_records_no_switch(client, ctx):
    r = client.put("/api/governance/mode", headers=AUTH)
    assert r.status_code == 422
    assert "mode (required)" in r.json()["detail"], r.json()
    before = len(ctx.governance.history(50))
    r = client.put("/api/governance/mode", json={"mode": ctx.governance.mode}, headers=AUTH)
    assert r.status_code == 200 and r.json()["previous"] == r.json()["mode"]
    assert len(ctx.governance.history(50)) == before
