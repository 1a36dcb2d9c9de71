"""The sample NEXUS's Neural Router endpoint against a real operator: each call is routed by
POST /api/learning/route, answered from replay data, and its outcome comes back as feedback
(decisions with outcomes, router.latency_ms written); no replay data → a clear 503."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from autonomous.testing import free_port, wait_for
from tests.conftest import make_tree, service_yaml

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

HEADER = "benchmark,domain,prompt_sha1,prompt_chars,weak_correct,strong_correct,prompt\n"


def _replay(path: Path) -> Path:
    rows = []
    for i in range(20):  # weak right on algebra, only strong right on gsm8k
        rows.append(f'mmlu,abstract_algebra,{i:040x},10,1,1,"q {i}"\n')
        rows.append(f'gsm8k,gsm8k,{i + 100:040x},10,0,1,"multi\nline {i}"\n')
    path.write_text(HEADER + "".join(rows))
    return path


def _with_env(text: str, env: dict[str, str]) -> str:
    lines = "".join(f"    {k}: {v}\n" for k, v in env.items())
    return text.replace("  restart:", f"  env:\n{lines}  restart:")


def test_router_endpoint_routes_through_the_operator(tmp_path: Path, operator_factory) -> None:
    api_port, nexus_port, robot_port = free_port(), free_port(), free_port()
    replay = _replay(tmp_path / "pairs.csv")
    env = {"ATLAS_ROUTER_REPLAY": str(replay),
           "ATLAS_ROUTER_OPERATOR_URL": f"http://127.0.0.1:{api_port}"}
    root = make_tree(tmp_path / "tree", {
        "nexus": _with_env(service_yaml("nexus", nexus_port), env),
        "robot": _with_env(service_yaml("robot", robot_port),
                           {"ATLAS_ROUTER_REPLAY": str(tmp_path / "absent.csv")})})
    op = operator_factory(root, port=api_port).start(wait=60)
    wait_for(lambda: op.services().get("nexus", {}).get("health") == "Healthy", "nexus healthy",
             timeout=30)
    with httpx.Client(base_url=f"http://127.0.0.1:{nexus_port}", timeout=10,
                      trust_env=False) as nexus:
        answers = [nexus.post("/api/router/route").json() for _ in range(30)]
        one = nexus.post("/api/router/route", json={"prompt_sha1": f"{100:040x}"}).json()
        bad = nexus.post("/api/router/route", json={"prompt_sha1": "nope"})
    assert all(a["model"] in ("weak", "strong") for a in answers), answers[:3]
    for a in answers:
        want = a["model"] == "strong" or a["query_class"] == "mmlu/abstract_algebra"
        assert a["correct"] is want and a["decision_id"].startswith("route-")
        assert 0 < a["propensity"] <= 1 and a["latency_ms"] > 0
    assert one["query_class"] == "gsm8k/gsm8k" and one["correct"] is (one["model"] == "strong")
    assert bad.status_code == 400 and "not in the replay data" in bad.json()["error"]
    with op.client() as c:
        stats = c.get("/api/learning/route/stats").json()
        assert sum(r["decisions"] for r in stats["classes"]) == 31
        answered = sum(r["successes"] + r["failures"] for r in stats["classes"])
        assert answered == 31
        gsm_weak = [r for r in stats["classes"] if r["query_class"] == "gsm8k/gsm8k"
                    and r["model"] == "weak"]
        assert all(r["successes"] == 0 for r in gsm_weak)
        series = c.get("/api/telemetry/metrics", params={
            "name": "router.latency_ms", "start": time.time() - 600,
            "resolution": "raw"}).json()["series"]
        assert sum(len(s["points"]) for s in series) == 31
        # every router.* series the Neural Router dashboard reads is written by this traffic
        docs = yaml.safe_load_all((ROOT / "desired_state" / "dashboards.yaml").read_text())
        board = next(d for d in docs if d["metadata"]["name"] == "neural-router")
        names = {p["metric"] for p in board["spec"]["panels"]
                 if str(p.get("metric", "")).startswith("router.")}
        assert {"router.decisions", "router.success", "router.latency_ms"} <= names
        for name in sorted(names - {"router.errors"}):  # no outage here: no errors written
            got = c.get("/api/telemetry/metrics", params={
                "name": name, "start": time.time() - 600, "resolution": "raw"}).json()
            assert sum(len(s["points"]) for s in got["series"]) == 31, name
    with httpx.Client(base_url=f"http://127.0.0.1:{robot_port}", timeout=10,
                      trust_env=False) as robot:
        wait_for(lambda: robot.get("/health").status_code == 200, "robot up", timeout=30)
        r = robot.post("/api/router/route")
    assert r.status_code == 503 and "router replay data not found" in r.json()["error"]
    assert "absent.csv" in r.json()["error"]


def test_vendored_replay_sample_is_the_default(monkeypatch):
    """A fresh clone has no shared datasets: with ATLAS_ROUTER_REPLAY unset the router replays
    the vendored RouteLLM sample (every domain, both benchmarks)."""
    from autonomous.sample_stack.router import ENV_REPLAY, SAMPLE_REPLAY, NeuralRouter

    monkeypatch.delenv(ENV_REPLAY, raising=False)
    router = NeuralRouter.from_env()
    assert Path(router.replay_path) == SAMPLE_REPLAY
    rows = router.replay().rows
    assert len(rows) > 3000
    assert {r[0] for r in rows} == {"mmlu", "gsm8k"}
    assert len({r[1] for r in rows}) == 58  # 57 MMLU subjects + gsm8k
