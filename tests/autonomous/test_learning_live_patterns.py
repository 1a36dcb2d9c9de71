"""/api/learning/patterns and /insights on real history: the Neural Router's requests (daily
peak hours), telemetry series and decision sequences from the knowledge graph, read by the
facade and analysed by the pure PatternAnalyzer, each insight citing what it rests on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autonomous.api.app import create_app
from autonomous.core.clock import FakeClock
from autonomous.learning.facade import LearningFacade
from autonomous.learning.learning_orchestrator import LearningOrchestrator
from autonomous.testing import calm_gates, copy_default_tree, make_context

AUTH = {"Authorization": "Bearer test-token"}
PEAK = (9, 10, 11)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    root = calm_gates(copy_default_tree(tmp_path / "root"))
    ctx = make_context(tmp_path, root=root, clock=FakeClock(start=86400.0 * 20000))
    ctx.subsystems["learning"] = LearningFacade(ctx, LearningOrchestrator(ctx))
    with TestClient(create_app(ctx)) as c:
        yield c, ctx
    ctx.store.close()


def test_patterns_from_requests_and_graph_decisions(api: tuple[TestClient, Any]) -> None:
    c, ctx = api
    empty = c.get("/api/learning/patterns").json()
    assert empty["patterns"] == [] and empty["next_action"] is None and empty["reason"]

    for _ in range(3 * 24):  # three days of router traffic, busy 09:00-11:59 UTC
        hour = int(ctx.clock.now() // 3600) % 24
        for _ in range(8 if hour in PEAK else 1):
            r = c.post("/api/learning/route", headers=AUTH, json={"query_class": "mmlu/x"})
            assert r.status_code == 200, r.text
        ctx.clock.advance(3600)
    for i in range(10):  # each service: probe, restart, probe, restart ...
        svc = ctx.graph.ensure("resource", f"svc{i}")
        for step in ("probe", "restart", "probe", "restart", "probe"):
            ctx.graph.add_relation(ctx.graph.add_entity("decision", step), "about", svc)
            ctx.clock.advance(1)

    out = c.get("/api/learning/patterns").json()
    req = [p for p in out["patterns"] if p["series"] == "router.requests"]
    assert len(req) == 1 and req[0]["stated"] and req[0]["daily"], out["patterns"]
    assert set(req[0]["peak_hours"]) == set(PEAK)
    assert out["sources"]["request_buckets"] == 72 and out["sources"]["decision_sequences"] == 10
    nxt = out["next_action"]
    assert nxt["prefix"] == ["restart", "probe"] and nxt["action"] == "restart"
    assert nxt["accuracy"] == 1.0 and nxt["accuracy"] > nxt["baseline_accuracy"]
    assert out["reason"] is None

    ins = c.get("/api/learning/insights").json()["patterns"]
    kinds = {i["kind"]: i for i in ins}
    assert "router.requests" in kinds["seasonality"]["cites"]
    assert "router.requests" in kinds["peak_hours"]["cites"]
    assert kinds["next_action"]["cites"] and all(
        ctx.graph.node(n)["type"] == "resource" for n in kinds["next_action"]["cites"])
