"""The tools registry (what NEXUS's tools_registry needs to be observed) and the Tools
dashboard fed for real: tool calls on the running sample NEXUS are scraped by the operator's
health monitor from its /metrics and stored as tools.calls_total / tools.errors_total /
tools.latency_ms; a failed call's ERROR log line reaches the dashboard's log panel."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from autonomous.health_monitor.prom import tool_totals
from autonomous.sample_stack.tools import BUILTIN, ToolError, ToolsRegistry, UnknownTool
from autonomous.testing import free_port, wait_for
from tests.conftest import make_tree, service_yaml


def test_registry_counts_times_and_exposes_what_the_scraper_reads() -> None:
    logged: list[tuple[str, dict[str, object]]] = []
    reg = ToolsRegistry(BUILTIN, log_error=lambda msg, **f: logged.append((msg, f)))
    assert reg.lines() == []  # nothing called yet: no counters, not zeros
    out, seconds = reg.call("checksum", {"text": "abc"})
    assert out["sha256"].startswith("ba7816bf") and seconds >= 0
    assert reg.call("word_count", {"text": "two words\nthree"})[0] == {
        "words": 3, "lines": 2, "chars": 15}
    with pytest.raises(ToolError, match="not JSON"):
        reg.call("json_validate", {"text": "{"})
    with pytest.raises(ToolError, match='string "text"'):
        reg.call("checksum", 42)
    with pytest.raises(UnknownTool):
        reg.call("rm", {})
    assert [m for m, _ in logged] == [m for m, _ in logged if m.startswith("tool ")]
    assert logged[0][1]["tool"] == "json_validate" and len(logged) == 2
    totals = tool_totals("\n".join(reg.lines()))
    assert set(totals) == {"checksum", "word_count", "json_validate"}
    calls, errors, spent = totals["checksum"]
    assert (calls, errors) == (2.0, 1.0) and spent > 0
    assert totals["word_count"][:2] == (1.0, 0.0)
    assert tool_totals("sample_http_requests_total 3\n") == {}


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_tool_calls_reach_the_tools_dashboard(tmp_path: Path, operator_factory) -> None:
    api_port, nexus_port = free_port(), free_port()
    root = make_tree(tmp_path / "tree", {"nexus": service_yaml("nexus", nexus_port)})
    health = root / "policies" / "health.yaml"  # scrape every second instead of 10 s
    text = health.read_text()
    assert "metrics_interval_seconds: 10" in text
    health.write_text(text.replace("metrics_interval_seconds: 10", "metrics_interval_seconds: 1"))
    op = operator_factory(root, port=api_port).start(wait=60)
    wait_for(lambda: op.services().get("nexus", {}).get("health") == "Healthy", "nexus healthy",
             timeout=30)
    with httpx.Client(base_url=f"http://127.0.0.1:{nexus_port}", timeout=10,
                      trust_env=False) as nexus:
        assert nexus.get("/api/tools").json()["tools"] == sorted(BUILTIN)
        for i in range(5):
            r = nexus.post("/api/tools/call", json={"tool": "checksum",
                                                    "input": {"text": f"payload {i}"}})
            assert r.status_code == 200 and r.json()["ms"] >= 0
        bad = nexus.post("/api/tools/call", json={"tool": "json_validate",
                                                  "input": {"text": "{oops"}})
        assert bad.status_code == 422 and "not JSON" in bad.json()["error"]
        assert nexus.post("/api/tools/call", json={"tool": "nope"}).status_code == 404

    def counters() -> dict[str, float]:
        with op.client() as c:
            body = c.get("/api/telemetry/metrics", params={"name": "tools.calls_total"}).json()
        newest: dict[str, float] = {}
        for s in body["series"]:
            if s["points"]:
                newest[s["labels"]["tool"]] = s["points"][-1][1]
        return newest

    got = wait_for(lambda: counters() if counters().get("checksum") == 5.0 else None,
                   "tools.calls_total{tool=checksum} = 5 stored", timeout=30)
    assert got.get("json_validate") == 1.0
    with op.client() as c:
        errs = c.get("/api/telemetry/metrics", params={"name": "tools.errors_total"}).json()
        lat = c.get("/api/telemetry/metrics", params={"name": "tools.latency_ms"}).json()
    by_tool = {s["labels"]["tool"]: s["points"][-1][1] for s in errs["series"] if s["points"]}
    assert by_tool == {"checksum": 0.0, "json_validate": 1.0}
    checksum_lat = [p[1] for s in lat["series"] if s["labels"]["tool"] == "checksum"
                    for p in s["points"]]
    assert checksum_lat and all(0 < v < 1000 for v in checksum_lat)

    def panels() -> dict[str, dict]:
        with op.client() as c:
            return {p["title"]: p for p in c.get("/api/telemetry/dashboard/tools").json()["panels"]}

    calls = panels()["Tool calls"]
    assert any(s["points"] for s in calls["series"]), calls
    wait_for(lambda: any("tool json_validate failed" in line["message"]
                         for line in panels()["Tool errors"]["lines"]),
             "the failed call's ERROR line in the Tools dashboard's log panel", timeout=30)
