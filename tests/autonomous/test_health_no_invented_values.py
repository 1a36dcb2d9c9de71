"""No invented health values: a service not probed yet has no score (not 50), a missing p95 is
left out of the score (not 0 ms), no services scored means a null services score with its
reason (not 100), and the constants that were in the code come from the policy."""

from __future__ import annotations

import copy
from pathlib import Path

from autonomous.core.clock import FakeClock
from autonomous.health_monitor.health_aggregator import HealthAggregator
from autonomous.health_monitor.service_health import ServiceHealth
from autonomous.resources.kinds.service import ServiceSpec
from autonomous.resources.loader import load_tree
from autonomous.store import Store

ROOT = Path(__file__).resolve().parents[2]
POLICY = copy.deepcopy(load_tree(ROOT).tree.policies["governed"]["health"])


def _spec() -> ServiceSpec:
    return ServiceSpec.model_validate({"command": ["true"], "port": 1, "health": {
        "path": "/health", "period_seconds": 1, "timeout_seconds": 0.2,
        "failure_threshold": 1, "startup_grace_seconds": 0}})


def _metrics(**over: object) -> dict:
    m = {"live": True, "ready": True, "latency_p95_ms": None, "error_rate": None,
         "last_probe": {"ok": True}, "dependencies": {}}
    return {**m, **over}


def test_service_scores_are_measured_or_null() -> None:
    sh = ServiceHealth(FakeClock(), specs=lambda: {"x": _spec()}, policy=lambda: POLICY,
                       observed=lambda: {})
    unprobed = sh.service_metrics("x")
    assert unprobed["live"] is None and unprobed["last_probe"] is None
    assert sh.calculate_service_score("x", unprobed) is None
    assert sh.score_reason(unprobed) == "not probed yet"
    # live with no latency / error figure in the window: terms left out, said so
    m = _metrics()
    assert sh.calculate_service_score("x", m) == 100.0
    assert "latency_p95_ms" in sh.score_reason(m)
    slow = _metrics(latency_p95_ms=POLICY["thresholds"]["service_latency_ms"], error_rate=0.0)
    assert sh.calculate_service_score("x", slow) == 100.0 - POLICY["score"]["latency_weight"]
    assert sh.score_reason(slow) is None


async def test_no_service_scored_is_null_with_reason(tmp_path: Path) -> None:
    store = Store(tmp_path / "atlas.db").open()
    clock = FakeClock()
    pol = copy.deepcopy(POLICY)
    pol["sampling"]["trend_metrics"] = ["cpu.percent"]
    specs: dict = {}
    agg = HealthAggregator(store, clock, policy=lambda: pol, specs=lambda: specs,
                           retention=lambda: None, observed=lambda: {}, interval=lambda: 7.0)
    try:
        gh = await agg.cycle()
        services = gh.components["services"]
        assert services["score"] is None and services["reason"] == "no service declared"
        assert gh.score == gh.components["system"]["score"]  # the measured component only
        specs["x"] = _spec()
        gh = await agg.cycle()
        assert gh.components["services"]["reason"] == "no service probed yet"
        assert gh.components["services"]["per_service"] == {"x": None}
        assert agg.sample_interval() == 7.0
        assert list(agg.get_historical_trend(1)["metrics"]) == ["cpu.percent"]
        assert agg.get_historical_trend(1)["resolution"] == "1m"
        pol["sampling"]["trend_hourly_from_days"] = 0.5
        assert agg.get_historical_trend(1)["resolution"] == "1h"
    finally:
        await agg.close()
        store.close()
