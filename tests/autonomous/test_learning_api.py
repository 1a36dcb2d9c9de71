"""/api/learning/*: feedback → cycle → proposal shown with diff and evidence, approved
(governed), applied by the controller, reverted on request; route decisions with propensity,
outcomes through feedback (router.latency_ms written, an outage opens the model's circuit);
the knowledge graph bounded as JSON and SVG; export → import round trip identical."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autonomous.api.app import create_app
from autonomous.core.clock import FakeClock
from autonomous.learning.facade import LearningFacade
from autonomous.learning.learning_orchestrator import LearningOrchestrator
from autonomous.store.timeseries import TimeSeriesStore
from autonomous.testing import calm_gates, copy_default_tree, make_context
from controllers.learning import LearningController
from controllers.manager import ControllerManager

AUTH = {"Authorization": "Bearer test-token"}
RULE = "service_latency_high"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.email=t@example.invalid",
                           "-c", "user.name=t", *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Any, Any]]:
    root = calm_gates(copy_default_tree(tmp_path / "root"))
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "init")
    ctx = make_context(tmp_path, root=root, clock=FakeClock())
    ctx.governance.set_mode("governed", actor="test", reason="test")
    ctx.subsystems["learning"] = LearningFacade(ctx, LearningOrchestrator(ctx))
    ctl = LearningController(ctx)
    with TestClient(create_app(ctx)) as c:
        yield c, ctx, (ControllerManager(ctx, [ctl]), ctl)
    ctx.store.close()


def _label(c: TestClient, value: float, bad: bool) -> None:
    r = c.post("/api/learning/feedback", headers=AUTH, json={
        "area": f"alert:{RULE}", "kind": "alert_label", "bad": bad, "value": value})
    assert r.status_code == 200, r.text


async def test_proposal_flow_over_the_api(api: tuple[TestClient, Any, Any]) -> None:
    c, ctx, (mgr, ctl) = api
    assert c.post("/api/learning/feedback", json={"area": "alert:x", "kind": "k",
                                                  "bad": True}).status_code == 401
    bad = c.post("/api/learning/feedback", headers=AUTH, json={"area": "nocolon", "kind": "k",
                                                               "bad": True})
    assert bad.status_code == 422 and "area" in bad.text
    for i in range(12):
        _label(c, 510.0 + 10 * i, True)
    for i in range(8):
        _label(c, 650.0 + 10 * i, False)
    ins = c.get("/api/learning/insights").json()
    assert [f["verdict"] for f in ins["findings"]] == ["worse"]
    item = ins["action_items"][0]
    assert item["file"] == "policies/telemetry.yaml" and item["rule"].endswith(RULE)
    cyc = c.post("/api/learning/cycle", headers=AUTH).json()
    assert cyc["frozen"] is False and len(cyc["proposed"]) == 1
    pid = cyc["proposed"][0]
    listed = c.get("/api/learning/proposals", params={"state": "evaluated"}).json()
    assert [p["id"] for p in listed] == [pid]
    await mgr.reconcile(ctl)
    shown = c.get(f"/api/learning/proposals/{pid}").json()
    assert shown["state"] == "awaiting_approval" and shown["approval_id"]
    assert "-spec.policy.telemetry.alerting.rules.1.value: 500" in shown["diff"]
    assert "+spec.policy.telemetry.alerting.rules.1.value: 600" in shown["diff"]
    assert shown["evidence"]["sample_size"] == 20
    assert shown["evaluation"]["in_force"]["value"] == 500
    assert c.post(f"/api/learning/proposals/{pid}/approve", json={}).status_code == 401
    assert c.get("/api/learning/proposals/prop-0000000000").status_code == 404
    ok = c.post(f"/api/learning/proposals/{pid}/approve", headers=AUTH,
                json={"reason": "looks right"})
    assert ok.status_code == 200, ok.text
    await mgr.reconcile(ctl)
    shown = c.get(f"/api/learning/proposals/{pid}").json()
    assert shown["state"] == "baking" and shown["apply_commit"]
    again = c.post(f"/api/learning/proposals/{pid}/approve", headers=AUTH, json={})
    assert again.status_code == 409
    opt = c.get("/api/learning/optimizations").json()
    assert [p["id"] for p in opt["applied"]] == [pid] and opt["pending"] == []
    r = c.post(f"/api/learning/proposals/{pid}/revert", headers=AUTH, json={"reason": "no"})
    assert r.status_code == 200
    outcomes = await mgr.reconcile(ctl)  # governed: the revert write asks for approval too
    assert [o.details.get("pending") for o in outcomes] == [True]
    approval = outcomes[0].details["approval"]
    ctx.approvals.decide(approval, approve=True, actor="human",
                         current_generation=ctx.desired.current.number)
    await mgr.reconcile(ctl)
    shown = c.get(f"/api/learning/proposals/{pid}").json()
    assert shown["state"] == "reverted" and shown["revert_commit"]
    assert f"learning: revert proposal {pid}" in _git(ctx.root, "log", "-1", "--format=%s")
    assert [e["to"] for e in shown["events"]][-1] == "reverted"
    assert c.post(f"/api/learning/proposals/{pid}/reject", headers=AUTH,
                  json={}).status_code == 409


def test_route_decisions_outcomes_and_outage(api: tuple[TestClient, Any, Any]) -> None:
    c, ctx, _ = api
    assert c.post("/api/learning/route", json={"query_class": "mmlu/x"}).status_code == 401
    d = c.post("/api/learning/route", headers=AUTH, json={"query_class": "mmlu/x"}).json()
    assert d["model"] in ("weak", "strong") and 0 < d["propensity"] <= 1
    assert d["decision_id"].startswith("route-") and sorted(d["allowed"]) == ["strong", "weak"]
    fb = c.post("/api/learning/feedback", headers=AUTH, json={
        "area": f"route:mmlu/x:{d['model']}", "kind": "route_outcome", "bad": False,
        "decision_id": d["decision_id"], "latency_ms": 42.0})
    assert fb.status_code == 200
    dup = c.post("/api/learning/feedback", headers=AUTH, json={
        "area": "route:mmlu/x:weak", "kind": "route_outcome", "bad": False,
        "decision_id": d["decision_id"]})
    assert dup.status_code == 409
    ts = TimeSeriesStore(ctx.store, ctx.clock)
    pts = ts.query("router.latency_ms", {"model": d["model"]}, ctx.clock.now() - 60,
                   ctx.clock.now() + 1, resolution="raw")
    assert [p.value for p in pts] == [42.0]
    # outage: 'strong' stops answering; its circuit opens, the router stops choosing it
    router = ctx.subsystems["learning"].router
    n = ctx.policy()["learning_routing"]["breaker_failures"]
    failed = 0
    while failed < n:
        dec = router.route("mmlu/x", ["strong"])
        router.record_outcome(dec.decision_id, success=False, error=True)
        failed += 1
    assert "strong" in c.get("/api/learning/route/stats").json()["open_circuits"]
    picks = [router.route("mmlu/x").model for _ in range(50)]
    assert picks.count("strong") == 0
    stats = c.get("/api/learning/route/stats").json()
    strong = [r for r in stats["classes"] if r["model"] == "strong"][0]
    assert strong["errors"] == n and strong["failures"] == 0  # outage kept out of quality
    ctx.clock.advance(ctx.policy()["learning_routing"]["breaker_reset_seconds"] + 1)
    assert router.open_circuits() == {}


def test_knowledge_graph_bounded_json_and_svg(api: tuple[TestClient, Any, Any]) -> None:
    c, ctx, _ = api
    hub = ctx.graph.add_entity("resource", "Service/nexus")
    for i in range(30):
        ctx.graph.add_relation(ctx.graph.add_entity("decision", f"d{i}"), "about", hub)
    g = c.get("/api/learning/knowledge-graph",
              params={"center": hub, "max_nodes": 10}).json()
    assert len(g["nodes"]) == 10 and g["truncated"] is True
    svg = c.get("/api/learning/knowledge-graph",
                params={"center": hub, "max_nodes": 5, "format": "svg"})
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg") and svg.text.count("<circle") == 5
    assert c.get("/api/learning/knowledge-graph",
                 params={"center": "nope"}).status_code == 404


def test_export_import_round_trip_identical(api: tuple[TestClient, Any, Any],
                                            tmp_path: Path) -> None:
    c, ctx, _ = api
    for i in range(12):
        _label(c, 510.0 + 10 * i, i % 3 == 0)
    c.post("/api/learning/cycle", headers=AUTH)
    d = c.post("/api/learning/route", headers=AUTH, json={"query_class": "gsm8k"}).json()
    ctx.subsystems["learning"].router.record_outcome(d["decision_id"], success=True,
                                                     latency_ms=3.5)
    assert c.get("/api/learning/export").status_code == 401
    doc = c.get("/api/learning/export", headers=AUTH).json()
    assert doc["tables"]["learning_feedback"] and doc["tables"]["learning_route_decisions"]
    other = make_context(tmp_path / "other")
    orch = LearningOrchestrator(other)
    counts = orch.import_learned_knowledge(doc)
    assert counts["learning_feedback"] == 12
    assert orch.export_learned_knowledge() == doc
    with pytest.raises(Exception, match="unknown column"):
        orch.import_learned_knowledge({"version": 1, "tables": {
            "learning_feedback": [{"nope": 1}]}})
    assert orch.export_learned_knowledge() == doc  # a failed import changes nothing
    other.store.close()


def _alert(ctx: Any, rule: str, value: float, acked: bool) -> int:
    """An alert row as the telemetry subsystem writes it (fired, maybe acknowledged)."""
    now = ctx.clock.now()
    cur = ctx.store.execute(
        "INSERT INTO alerts(fingerprint, rule, source, labels, severity, summary, state, value, "
        "pending_since, fired_at, acked_by, acked_at, updated_at) VALUES "
        "(?, ?, 'rule', '{}', 'warning', 's', 'firing', ?, ?, ?, ?, ?, ?)",
        (f"fp-{value}", rule, value, now, now, "ops" if acked else None,
         now if acked else None, now))
    return int(cur.lastrowid)


def test_alert_labels_and_acks_become_feedback(api: tuple[TestClient, Any, Any]) -> None:
    c, ctx, _ = api
    fp = [_alert(ctx, RULE, 510.0 + 10 * i, False) for i in range(12)]
    for i in range(8):
        _alert(ctx, RULE, 650.0 + 10 * i, True)
    for aid in fp:
        r = c.post("/api/learning/feedback", headers=AUTH, json={"alert_id": aid, "bad": True})
        assert r.status_code == 200 and r.json()["area"] == f"alert:{RULE}"
        assert r.json()["value"] == 510.0 + 10 * fp.index(aid)
    assert c.post("/api/learning/feedback", headers=AUTH,
                  json={"alert_id": 99999, "bad": True}).status_code == 404
    missing = c.post("/api/learning/feedback", headers=AUTH, json={"bad": True})
    assert missing.status_code == 422 and "area" in missing.text
    cyc = c.post("/api/learning/cycle", headers=AUTH).json()  # harvests the 8 acks
    assert len(cyc["proposed"]) == 1
    p = c.get(f"/api/learning/proposals/{cyc['proposed'][0]}").json()
    assert p["evidence"]["labels"] == 20 and p["evidence"]["false_positive"] == 12
    assert p["new"] == 600
    again = ctx.subsystems["learning"].orchestrator.run_learning_cycle()
    assert again["acks_harvested"] == 0  # each ack is fed back once


def test_retention_prunes_old_feedback_and_route_decisions(tmp_path: Path) -> None:
    from autonomous.learning.retention import Retention

    ctx = make_context(tmp_path)
    p = ctx.policy()["retention"]
    now, day = ctx.clock.now(), 86400.0
    for i, age in enumerate((p["learning_feedback_days"] + 1, 1)):
        ctx.store.execute("INSERT INTO learning_feedback(ts, area, kind, bad, actor) VALUES "
                          "(?, 'alert:x', 'k', 0, 't')", (now - age * day,))
    for i, age in enumerate((p["route_decisions_days"] + 1, 1)):
        ctx.store.execute("INSERT INTO learning_route_decisions(id, ts, query_class, model, "
                          "propensity, allowed) VALUES (?, ?, 'c', 'weak', 1, '[]')",
                          (f"route-{i}", now - age * day))
    deleted = Retention(ctx.store, ctx.graph, ctx.clock, ctx.policy, lambda: None).run()
    assert deleted["learning_feedback"] == 1 and deleted["learning_route_decisions"] == 1
    assert [r["id"] for r in ctx.store.query("SELECT id FROM learning_route_decisions")] == [
        "route-1"]
    ctx.store.close()
