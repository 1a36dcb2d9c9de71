"""RouteOptimizer: allowed models, propensity log, errors kept out of quality, rules and
stats; the replay and outage figures of bench/bench_router.py checked loosely on a slice."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from autonomous.learning.route_optimizer import RouteOptimizer
from autonomous.resources.policy.learning_tuning import RoutingPolicy

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import bench_router  # noqa: E402

WEAK, STRONG = bench_router.WEAK, bench_router.STRONG


def _policy(**over: object) -> RoutingPolicy:
    return bench_router.policy().model_copy(update=over)


def _feed(r: RouteOptimizer, qc: str, rates: dict[str, float], n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    for i in range(n):
        d = r.suggest_model_for_query(qc, list(rates), now=float(i))
        assert d is not None
        r.record_outcome(d.decision_id, success=rng.random() < rates[d.model],
                         latency_ms=100.0 if d.model == STRONG else 20.0)


def test_allowed_models_and_propensity_logged() -> None:
    r = RouteOptimizer(_policy(), seed=1)
    only = r.suggest_model_for_query("math", [WEAK], now=0.0)
    assert only is not None and only.model == WEAK and only.allowed == (WEAK,)
    assert only.propensity > 0.95
    assert r.suggest_model_for_query("math", [], now=1.0) is None
    _feed(r, "math", {STRONG: 0.95, WEAK: 0.3}, 300)
    log = r.decision_log()
    assert len(log) == 301 and all(0 < d.propensity <= 1 for d in log)
    assert len({d.decision_id for d in log}) == 301
    stats = r.get_routing_stats()
    assert stats["decisions"] == 301 and stats["pending"] == 1  # the first got no outcome
    share = stats["share"]
    assert isinstance(share, dict) and share[STRONG] > 0.8  # strong is worth its cost here


def test_cheap_model_wins_when_as_good() -> None:
    r = RouteOptimizer(_policy(), seed=2)
    _feed(r, "trivia", {STRONG: 0.9, WEAK: 0.9}, 400)
    rules = r.optimize_routing_rules()
    assert [(x["query_class"], x["model"]) for x in rules] == [("trivia", WEAK)]
    assert float(rules[0]["p_best"]) > 0.9  # type: ignore[arg-type]
    perf = {row["model"]: row for row in r.analyze_model_performance()}
    assert perf[WEAK]["latency_p50_ms"] == 20.0 and perf[WEAK]["cost"] == 0.05
    lo, hi = perf[WEAK]["success_ci95"]  # type: ignore[misc]
    assert lo < 0.9 < hi


def test_errors_do_not_poison_quality() -> None:
    r = RouteOptimizer(_policy(), seed=3)
    _feed(r, "law", {STRONG: 0.9, WEAK: 0.5}, 200)
    before = {row["model"]: row["success_rate"] for row in r.analyze_model_performance()}
    for i in range(50):  # an outage: the strong model does not answer
        d = r.suggest_model_for_query("law", [STRONG], now=1000.0 + i)
        assert d is not None
        r.record_outcome(d.decision_id, success=False, error=True)
    after = {row["model"]: row for row in r.analyze_model_performance()}
    assert after[STRONG]["success_rate"] == before[STRONG] and after[STRONG]["errors"] == 50


def test_bad_input_is_refused() -> None:
    r = RouteOptimizer(_policy(), seed=0)
    with pytest.raises(ValueError, match="model\\(s\\) gpt-5 have no cost"):
        r.suggest_model_for_query("x", ["gpt-5"], now=0.0)
    with pytest.raises(ValueError, match="query_class must not be empty"):
        r.suggest_model_for_query("", [WEAK], now=0.0)
    with pytest.raises(KeyError, match="unknown or already answered"):
        r.record_outcome("route-0-9", success=True)
    small = RouteOptimizer(_policy(max_pending=2), seed=0)
    ids = [d.decision_id for d in (small.suggest_model_for_query("x", [WEAK], now=float(i))
                                   for i in range(3)) if d is not None]
    with pytest.raises(KeyError):
        small.record_outcome(ids[0], success=True)  # dropped: only the newest 2 wait
    small.record_outcome(ids[2], success=True)


def test_snapshot_round_trip_is_identical() -> None:
    r = RouteOptimizer(_policy(), seed=5)
    _feed(r, "math", {STRONG: 0.9, WEAK: 0.4}, 120)
    snap = r.snapshot()
    back = RouteOptimizer.restore(_policy(), snap)
    assert back.snapshot() == snap
    assert back.analyze_model_performance() == r.analyze_model_performance()
    assert back.optimize_routing_rules() == r.optimize_routing_rules()
    d = back.suggest_model_for_query("math", [STRONG, WEAK], now=0.0)
    assert d is not None and d.decision_id == "route-5-121"  # ids continue, never reused
    with pytest.raises(ValueError, match="route snapshot needs"):
        RouteOptimizer.restore(_policy(), {"seed": "x"})


def test_replay_and_outage_figures_on_a_slice() -> None:
    queries = bench_router.load()
    rng = random.Random(0)
    part = rng.sample(queries, 5000)
    p = bench_router.policy()
    ours = bench_router.run_ours(p, part, seed=0)
    ucb = bench_router.run_peer(p, part, seed=0, kind="ucb1")
    assert ours.regret_per_1k < 30 and ours.regret_per_1k < ucb.regret_per_1k
    gated = bench_router.run_outage(p, part, seed=0, breaker=True)
    plain = bench_router.run_outage(p, part, seed=0, breaker=False)
    assert gated.share_at_200 < 0.05 and gated.back_after is not None
    assert plain.share_at_200 > 0.2
