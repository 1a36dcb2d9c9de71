"""Admission middleware on a real ASGI app (429 + Retry-After, priority order of queued
requests, probes never shed) and the /api/resilience routes with the real app."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from autonomous.api.app import create_app
from autonomous.resilience import admission
from autonomous.resilience.resource_throttler import ResourceReading
from autonomous.testing import make_context, wait_for
from controllers.manager import ControllerManager
from controllers.resilience import ResilienceController

AUTH = {"Authorization": "Bearer test-token"}


def overlay(ctx, text: str) -> None:
    """A governed-mode policy overlay for the test, then reload."""
    (ctx.root / "policies" / "zz_test.yaml").write_text(
        "apiVersion: atlas.autonomous/v1\nkind: PolicySet\nmetadata: {name: zz-test}\n"
        "spec:\n  mode: governed\n  policy:\n    resilience:\n" + text)
    ctx.desired.reload()
    assert ctx.desired.error is None, ctx.desired.error


def calm() -> ResourceReading:
    return ResourceReading(5.0, 5.0, None, {"gpu_percent": "no GPU"})


@pytest.fixture()
def ctx(tmp_path):
    c = make_context(tmp_path)
    yield c
    c.store.close()


def test_rate_limited_request_gets_429_with_retry_after(ctx):
    overlay(ctx, "      rate_limits:\n        LOW: {per_second: 0.5, burst: 1}\n")
    app = create_app(ctx)
    admission.install(app, ctx, reader=calm)

    @app.get("/api/learning/ping")
    async def ping() -> dict:
        return {"ok": True}

    with TestClient(app) as c:
        assert c.get("/api/learning/ping").status_code == 200
        r = c.get("/api/learning/ping")
        assert r.status_code == 429
        assert r.headers["retry-after"] == "2"
        assert r.json()["retry_after_seconds"] == pytest.approx(2.0)
        assert "LOW rate limit 0.5/s" in r.json()["detail"]
        # a header can raise the priority; probes and control endpoints are never shed
        assert c.get("/api/learning/ping", headers={"x-atlas-priority": "HIGH"}).status_code \
            == 200
        for _ in range(3):
            assert c.get("/api/health/comprehensive").status_code != 429
    assert ctx.subsystems["admission"].counts["shed"] == 1


async def test_queued_requests_are_served_by_priority(ctx):
    overlay(ctx, "      concurrency: {initial: 1, min: 1, max: 1}\n")
    app = FastAPI()
    gate = asyncio.Event()
    done: list[str] = []

    @app.get("/work/{name}")
    async def work(name: str) -> dict:
        await gate.wait()
        done.append(name)
        return {"name": name}

    adm = admission.install(app, ctx, reader=calm)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        first = asyncio.create_task(c.get("/work/first"))
        while adm.throttler.in_flight < 1:
            await asyncio.sleep(0.001)
        tasks = []
        for prio in ("LOW", "MEDIUM", "CRITICAL", "HIGH"):
            tasks.append(asyncio.create_task(
                c.get(f"/work/{prio}", headers={"x-atlas-priority": prio})))
            while len(adm.queue) < len(tasks):
                await asyncio.sleep(0.001)
        assert adm.queue.get_queue_stats()["depth"] == 4
        gate.set()
        responses = await asyncio.gather(first, *tasks)
    assert [r.status_code for r in responses] == [200] * 5
    assert done == ["first", "CRITICAL", "HIGH", "MEDIUM", "LOW"]


def restore_gate(ctx, gate: str) -> None:
    """governance.actions.restore for the governed mode the tests run in."""
    (ctx.root / "policies" / "zz_restore.yaml").write_text(
        "apiVersion: atlas.autonomous/v1\nkind: PolicySet\nmetadata: {name: zz-restore}\n"
        f"spec:\n  mode: governed\n  policy:\n    governance:\n      actions:\n"
        f"        restore: {gate}\n")
    ctx.desired.reload()
    assert ctx.desired.error is None, ctx.desired.error


@pytest.fixture()
def governed_api(ctx):
    """The real app with the resilience controller run by the real ControllerManager."""
    app = create_app(ctx)
    admission.install(app, ctx, reader=calm)
    with TestClient(app) as c:
        mgr = ControllerManager(ctx, [ResilienceController(ctx)])
        assert c.portal is not None
        c.portal.call(mgr.start)
        try:
            yield ctx, c
        finally:
            c.portal.call(mgr.stop)


@pytest.fixture()
def api(governed_api):
    ctx, c = governed_api
    restore_gate(ctx, "enforce")
    yield ctx, c


def test_queue_and_throttling_endpoints(api):
    _ctx, c = api
    q = c.get("/api/resilience/queue").json()
    assert q["installed"] and set(q["levels"]) == {"CRITICAL", "HIGH", "MEDIUM", "LOW"}
    t = c.get("/api/resilience/throttling").json()
    assert t["concurrency"]["limit"] == 64 and t["readings"]["cpu_percent"] == 5.0
    assert t["readings_missing"] == {"gpu_percent": "no GPU"}


def test_backup_list_verify_restore_drill_through_the_api(api, tmp_path):
    ctx, c = api
    assert c.post("/api/resilience/backup", json={"plan": "operator"}).status_code == 401
    r = c.post("/api/resilience/backup", json={"plan": "operator"}, headers=AUTH)
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["kind"] == "full" and b["files"] > 5
    assert set(b["sources"]) == {"atlas.db", "desired_state", "policies", "config"}
    inc = c.post("/api/resilience/backup", json={"kind": "incremental"}, headers=AUTH).json()
    assert inc["parent"] == b["id"] and inc["stats"]["reused_files"] == inc["files"] - 1
    listed = c.get("/api/resilience/backups").json()
    assert [x["id"] for x in listed] == [inc["id"], b["id"]]
    v = c.post(f"/api/resilience/backups/{b['id']}/verify", headers=AUTH).json()
    assert v["ok"] and v["damaged_chunks"] == {}
    r = c.post(f"/api/resilience/backups/{b['id']}/restore", json={"target": "r1"},
               headers=AUTH)
    assert r.status_code == 200, r.text
    out = Path(r.json()["target"])
    assert out == ctx.data_dir / "restores" / "r1"
    assert (out / "policies" / "resilience.yaml").read_bytes() == \
        (ctx.root / "policies" / "resilience.yaml").read_bytes()
    again = c.post(f"/api/resilience/backups/{b['id']}/restore", json={"target": "r1"},
                   headers=AUTH)
    assert again.status_code == 409 and "not empty" in again.json()["detail"]
    d = c.post(f"/api/resilience/backups/{b['id']}/drill", headers=AUTH).json()
    assert d["ok"], d
    assert [s["step"] for s in d["steps"]] == ["verify", "restore", "sqlite_integrity",
                                               "service"]
    assert d["steps"][-1]["detail"]["body"]["integrity"] == "ok"
    missing = c.post("/api/resilience/backups/nope/verify", headers=AUTH)
    assert missing.status_code == 404 and "atlas-autonomous backups" in missing.text
    unknown = c.post("/api/resilience/backup", json={"plan": "nope"}, headers=AUTH)
    assert unknown.status_code == 404 and "declared: operator" in unknown.text


def test_survival_enter_exit_through_the_api_without_services(api):
    ctx, c = api
    assert c.post("/api/resilience/survival/enter", json={"reason": "x"}).status_code == 401
    r = c.post("/api/resilience/survival/enter", json={"reason": "drill"}, headers=AUTH)
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["active"] and s["reason"] == "drill" and s["kept_services"] == ["nexus"]
    assert s["stopped_services"] == ["robot"]  # not observable: every non-core service
    assert {"evolution", "optimizations", "learning"} <= set(s["disabled_features"])
    assert ctx.store.kv_get("survival")["active"] is True
    adm = ctx.subsystems["admission"]
    assert adm.decide(adm.classify("/api/learning/insights"), "/api/learning/insights").action \
        == "shed"
    r = c.post("/api/resilience/survival/exit", json={"reason": "over"}, headers=AUTH).json()
    assert not r["active"] and r["disabled_features"] == []
    assert [h["event"] for h in r["history"]] == ["exited", "entered"]
    assert adm.survival_disabled == ()


def test_route_first_shed_after_and_reads_of_alerts_never_shed(ctx):
    """With MEDIUM and LOW allowed one request each, an unknown path is a 404 every time
    (not a 429), reads of status and alerts are always answered, and a mutating alert route
    is still shed."""
    overlay(ctx, "      rate_limits:\n        MEDIUM: {per_second: 0.001, burst: 1}\n"
                 "        LOW: {per_second: 0.001, burst: 1}\n")
    app = create_app(ctx)
    admission.install(app, ctx, reader=calm)
    with TestClient(app) as c:
        for _ in range(3):
            for path in ("/no/such/path", "/api/telemetry/no-such-route", "/api/learning/x"):
                r = c.get(path)
                assert r.status_code == 404, (path, r.status_code, r.text)
            assert c.get("/api/telemetry/alerts").status_code != 429  # 503: no telemetry
            assert c.get("/api/reconcile/status").status_code == 200
            assert c.get("/api/health/comprehensive").status_code != 429
        assert c.post("/api/telemetry/alerts/ack/1", headers=AUTH).status_code != 429
        r = c.post("/api/telemetry/alerts/ack/1", headers=AUTH)
        assert r.status_code == 429 and "MEDIUM" in r.json()["detail"]

def test_restore_targets_are_confined_to_the_restores_folder(api, tmp_path):
    ctx, c = api
    b = c.post("/api/resilience/backup", json={"plan": "operator"}, headers=AUTH).json()
    url = f"/api/resilience/backups/{b['id']}/restore"
    outside = tmp_path / "elsewhere"
    (ctx.data_dir / "restores").mkdir(parents=True, exist_ok=True)
    (ctx.data_dir / "restores" / "link").symlink_to(outside, target_is_directory=True)
    outside.mkdir()
    cases = {"../../escape": "'..'", str(tmp_path / "abs"): "outside the allowed",
             "/etc/atlas-restore": "outside the allowed", "/sys/kernel/x": "outside the allowed",
             "link/r": "symlink", "a\x00b": "NUL", "n" * 300: "longer than"}
    for target, why in cases.items():
        r = c.post(url, json={"target": target}, headers=AUTH)
        assert 400 <= r.status_code < 500, (target, r.status_code, r.text)
        assert why in r.json()["detail"], (target, r.text)
    assert not (tmp_path / "abs").exists() and not any(outside.iterdir())
    assert not (tmp_path.parent / "escape").exists()
    ok = c.post(url, json={"target": str(ctx.data_dir / "restores" / "inside")}, headers=AUTH)
    assert ok.status_code == 200, ok.text


def test_damaged_manifest_restore_is_a_4xx(api):
    ctx, c = api
    b = c.post("/api/resilience/backup", json={"plan": "operator"}, headers=AUTH).json()
    manifests = [p for p in ctx.data_dir.rglob(f"{b['id']}*") if p.is_file()
                 and not p.name.endswith(".sha256")]
    assert manifests, list(ctx.data_dir.rglob("*"))[:20]
    manifests[0].write_bytes(manifests[0].read_bytes()[:-7] + b"garbage")
    r = c.post(f"/api/resilience/backups/{b['id']}/restore", json={"target": "dm"},
               headers=AUTH)
    assert 400 <= r.status_code < 500, r.text
    assert "damaged" in r.json()["detail"] or "corrupt" in r.json()["detail"], r.text


def test_governed_restore_waits_for_approval_then_the_controller_restores(governed_api):
    ctx, c = governed_api
    assert ctx.governance.action_mode("restore") == "require_approval"
    b = c.post("/api/resilience/backup", json={"plan": "operator"}, headers=AUTH).json()
    r = c.post(f"/api/resilience/backups/{b['id']}/restore", json={"target": "gated"},
               headers=AUTH)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["state"] == "awaiting_approval"
    assert body["approve"] == f"atlas-autonomous approvals approve {body['approval']}"
    target = ctx.data_dir / "restores" / "gated"
    assert not target.exists()
    # asked again while it waits (a retried call, the CLI run twice): the same request and
    # approval, not a second one for the same restore; another target is another request
    for same in ("gated", "./gated", str(target)):
        again = c.post(f"/api/resilience/backups/{b['id']}/restore", json={"target": same},
                       headers=AUTH)
        assert again.status_code == 202, again.text
        assert (again.json()["request"], again.json()["approval"]) == \
            (body["request"], body["approval"]), (same, again.json())
    other = c.post(f"/api/resilience/backups/{b['id']}/restore", json={"target": "gated2"},
                   headers=AUTH).json()
    assert other["request"] != body["request"] and other["approval"] != body["approval"]
    pending = [a for a in ctx.approvals.list() if a["action_kind"] == "restore"
               and a["state"] == "pending"]
    assert len(pending) == 2, pending
    appr = ctx.approvals.get(body["approval"])
    assert appr["action_kind"] == "restore" and appr["state"] == "pending"
    # approving (the CLI's command calls this route) lets the controller restore it
    ok = c.post(f"/api/approvals/{body['approval']}/approve", json={}, headers=AUTH)
    assert ok.status_code == 200, ok.text
    restores = ctx.subsystems["resilience"].restores
    deadline = time.monotonic() + 30
    while restores.get(body["request"])["state"] == "awaiting_approval" \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    row = restores.get(body["request"])
    assert row["state"] == "done", row
    assert (target / "atlas.db").exists() or any(target.rglob("atlas.db"))
    assert ctx.approvals.get(body["approval"])["state"] == "executed"


def test_restore_roots_policy_allows_another_root(api, tmp_path):
    ctx, c = api
    other = tmp_path / "other-root"
    other.mkdir()
    b = c.post("/api/resilience/backup", json={"plan": "operator"}, headers=AUTH).json()
    url = f"/api/resilience/backups/{b['id']}/restore"
    r = c.post(url, json={"target": str(other / "x")}, headers=AUTH)
    assert 400 <= r.status_code < 500 and "outside the allowed" in r.json()["detail"], r.text
    overlay(ctx, f"      backup:\n        restore_roots: [{str(other)!r}]\n")
    r = c.post(url, json={"target": str(other / "x")}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert any((other / "x").rglob("atlas.db"))


def test_survival_enter_through_the_api_waits_for_approval_when_policy_says_so(api):
    """The survival API goes through the one governance gate (action kind ``survival``)."""
    ctx, c = api
    root = ctx.root / "policies" / "zz_survival_gate.yaml"
    root.write_text("apiVersion: atlas.autonomous/v1\nkind: PolicySet\n"
                    "metadata: {name: zz-survival-gate}\nspec:\n  mode: governed\n  policy:\n"
                    "    governance:\n      actions:\n        survival: require_approval\n")
    ctx.desired.reload()
    assert ctx.desired.error is None, ctx.desired.error
    ctx.governance.set_mode("governed", actor="test")
    r = c.post("/api/resilience/survival/enter", json={"reason": "drill"}, headers=AUTH)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["state"] == "awaiting_approval" and body["approve"].endswith(body["approval"])
    assert ctx.store.kv_get("survival", {}).get("active") is not True  # nothing done yet
    [req] = ctx.approvals.list(state="pending")
    assert req["action_kind"] == "survival" and req["action"]["params"]["op"] == "enter"
    ctx.approvals.decide(req["id"], approve=True, actor="alice",
                         current_generation=ctx.desired.current.number)
    ctx.trigger("resilience")
    wait_for(lambda: (ctx.store.kv_get("survival") or {}).get("active") is True,
             "survival entered once approved", 30)
    state = ctx.store.kv_get("survival")
    assert state["source"] == "api" and state["reason"] == "drill"
