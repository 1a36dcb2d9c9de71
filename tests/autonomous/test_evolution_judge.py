"""The judge (MetricsComparator) and the pure rollout diff, on the shipped policy."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from autonomous.evolution.metrics_comparator import (Comparison, MetricsComparator, Samples,
                                                     Verdict, compare)
from autonomous.evolution.staged_rollout import Action, StagedRollout, decide, weights
from autonomous.resources.policy.evolution import EvolutionPolicy

ROOT = Path(__file__).resolve().parents[2]
POLICY = EvolutionPolicy.model_validate(yaml.safe_load(
    (ROOT / "policies" / "evolution.yaml").read_text())["spec"]["policy"]["evolution"])
JUDGE, ROLL = POLICY.judge, POLICY.rollout


def _lat(n: int, scale: float = 1.0, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [scale * rng.lognormvariate(1.5, 0.3) for _ in range(n)]


latencies = st.lists(st.floats(0.1, 1000, allow_nan=False), min_size=1, max_size=200)


@given(latencies)
@settings(max_examples=60, deadline=None, derandomize=True)
def test_identical_samples_advance_only_with_enough_of_them(lat: list[float]) -> None:
    c = compare(Samples.of(lat), Samples.of(lat), JUDGE)
    if len(lat) < JUDGE.floor_samples:
        assert c.verdict is Verdict.INSUFFICIENT and c.score is None
    elif len(lat) < JUDGE.min_samples:
        assert c.verdict is Verdict.INSUFFICIENT and "to pass" in c.reason
    else:
        assert c.verdict is Verdict.ADVANCE and c.score == 100


@given(latencies, latencies, st.integers(0, 20), st.integers(0, 20))
@settings(max_examples=80, deadline=None, derandomize=True)
def test_advance_needs_min_samples_and_score(b: list[float], c: list[float], eb: int,
                                             ec: int) -> None:
    r = compare(Samples.of(b, eb), Samples.of(c, ec), JUDGE)
    if r.verdict is Verdict.ADVANCE:
        assert min(r.baseline_n, r.candidate_n) >= JUDGE.min_samples
        assert r.score is not None and r.score >= JUDGE.score_advance
    if min(len(b) + eb, len(c) + ec) < JUDGE.floor_samples:
        assert r.verdict is Verdict.INSUFFICIENT


def test_fifty_percent_slower_rolls_back_on_latency() -> None:
    r = compare(Samples.of(_lat(100, seed=1)), Samples.of(_lat(100, 1.5, seed=2)), JUDGE)
    assert r.verdict is Verdict.ROLLBACK and "latency" in r.reason
    assert r.latency_p is not None and r.latency_p < JUDGE.latency_p_value


def test_twice_as_slow_rolls_back_before_min_samples_once_significant() -> None:
    n = JUDGE.immediate_min_samples
    assert n < JUDGE.min_samples
    r = compare(Samples.of(_lat(n, seed=1)), Samples.of(_lat(n, 2.5, seed=1)), JUDGE)
    assert r.verdict is Verdict.ROLLBACK and "immediate" in r.reason
    assert r.latency_p is not None and r.latency_p < JUDGE.immediate_p_value


def test_a_ratio_of_two_at_the_floor_is_not_a_rollback() -> None:
    # the old rule: median ×2 at 5 samples rolled identical versions back (one slow burst)
    k = JUDGE.floor_samples
    r = compare(Samples.of(_lat(k, seed=1)), Samples.of(_lat(k, 2.5, seed=1)), JUDGE)
    assert r.median_ratio is not None and r.median_ratio >= JUDGE.latency_ratio_immediate
    assert r.verdict is Verdict.INSUFFICIENT


def test_latency_fails_only_when_slower_across_paired_rounds() -> None:
    base, slow = Samples.of(_lat(100, seed=1)), Samples.of(_lat(100, 1.5, seed=2))
    # one slow burst (a scheduling hiccup) and the rest alike: not a regression
    mixed = (2.4, 1.0, 0.9, 1.1, 0.95, 1.05, 0.9, 1.0, 1.1, 0.97)
    r = compare(base, slow, JUDGE, mixed)
    assert r.verdict is not Verdict.ROLLBACK and r.round_p is not None
    assert r.round_p >= JUDGE.round_p_value and r.rounds == len(mixed)
    # too few rounds to tell: no latency verdict yet
    few = compare(base, slow, JUDGE, (1.5,) * (JUDGE.min_rounds - 1))
    assert few.verdict is not Verdict.ROLLBACK and few.round_p is None
    # slower in every round: rolls back, with the round evidence in the reason
    steady = compare(base, slow, JUDGE, tuple(1.4 + i / 100 for i in range(10)))
    assert steady.verdict is Verdict.ROLLBACK and "Wilcoxon" in steady.reason
    assert steady.round_p is not None and steady.round_p < JUDGE.round_p_value


def test_latency_or_score_never_roll_back_below_min_samples() -> None:
    n = JUDGE.min_samples - 1
    r = compare(Samples.of(_lat(n, seed=1)), Samples.of(_lat(n, 1.5, seed=2)), JUDGE)
    assert r.verdict is Verdict.INSUFFICIENT and "need" in r.reason


def test_small_slowdown_is_not_a_failure() -> None:
    r = compare(Samples.of(_lat(100, seed=1)), Samples.of(_lat(100, 1.05, seed=2)), JUDGE)
    assert r.verdict is not Verdict.ROLLBACK


def test_significant_slowdown_below_the_fail_ratio_still_passes() -> None:
    # two processes of the same code differ by ~10 %: tolerated, it must not wait forever
    base = Samples.of(_lat(300, seed=1))
    r = compare(base, Samples.of(_lat(300, 1.12, seed=2)), JUDGE, (1.12,) * 30)
    assert r.latency_p is not None and r.latency_p < JUDGE.latency_p_value
    assert r.verdict is Verdict.ADVANCE and r.score is not None and 95 <= r.score < 100


def test_candidate_erring_where_baseline_never_does() -> None:
    base = Samples.of(_lat(100))
    r = compare(base, Samples.of(_lat(90), errors=10), JUDGE)
    assert r.verdict is Verdict.ROLLBACK and "errors" in r.reason
    one = compare(Samples.of(_lat(60)), Samples.of(_lat(59), errors=1), JUDGE)
    assert one.verdict is not Verdict.ADVANCE  # loses points before it is significant


def test_comparator_methods_and_svg_chart() -> None:
    m = MetricsComparator(JUDGE)
    with pytest.raises(ValueError):
        m.compare_metrics()
    m.capture_baseline(Samples.of(_lat(80)))
    m.capture_post_update(Samples.of(_lat(80, 1.5, seed=3)))
    rollback, reason = m.should_rollback()
    assert rollback and "latency" in reason
    svg = ET.fromstring(m.generate_comparison_chart())
    assert svg.tag.endswith("svg") and len(svg.findall("{http://www.w3.org/2000/svg}rect")) == 6


def _verdict(kind: Verdict) -> Comparison:
    if kind is Verdict.ADVANCE:
        return compare(Samples.of(_lat(60)), Samples.of(_lat(60)), JUDGE)
    if kind is Verdict.ROLLBACK:
        return compare(Samples.of(_lat(60)), Samples.of(_lat(60, 3)), JUDGE)
    return compare(Samples.of(_lat(3)), Samples.of(_lat(3)), JUDGE)


def test_good_version_promoted_through_every_phase_device_switched_once_at_full() -> None:
    sr = StagedRollout(ROLL)
    now = 1000.0
    s = sr.start_rollout("nexus", "1", "2", now)
    seen = []
    while s.status == "running":
        seen.append(weights(s, ROLL))
        assert decide(s, now, _verdict(Verdict.ADVANCE), ROLL).action is Action.HOLD or \
            ROLL.phases[s.phase_index].min_bake_seconds == 0
        now += ROLL.phases[s.phase_index].min_bake_seconds
        d = decide(s, now, _verdict(Verdict.ADVANCE), ROLL)
        assert d.action in (Action.ADVANCE, Action.COMMIT)
        s = sr.apply(s, d, now)
    assert s.status == "committed"
    assert seen == [(10, "1"), (25, "1"), (50, "1"), (100, "2")]
    assert weights(s, ROLL) == (100, "2")


@given(st.integers(0, len(ROLL.phases) - 1), st.floats(0, 5000),
       st.sampled_from(list(Verdict)))
@settings(max_examples=200, deadline=None, derandomize=True)
def test_decide_invariants(phase: int, elapsed: float, kind: Verdict) -> None:
    sr = StagedRollout(ROLL)
    s = sr.start_rollout("nexus", "1", "2", 0.0)
    for _ in range(phase):
        s = sr.advance_phase(s, 0.0)
    p = ROLL.phases[phase]
    d = decide(s, elapsed, _verdict(kind), ROLL)
    if kind is Verdict.ROLLBACK:
        assert d.action is Action.ROLLBACK
    elif elapsed >= p.deadline_seconds and kind is not Verdict.ADVANCE:
        assert d.action is Action.ROLLBACK and "deadline" in d.reason
    elif elapsed < p.min_bake_seconds or kind is not Verdict.ADVANCE:
        assert d.action is Action.HOLD
    else:
        assert d.action in (Action.ADVANCE, Action.COMMIT)
    # device endpoints never split: one version, the old one until FULL
    _, device = weights(s, ROLL)
    assert device == ("2" if p.name == "FULL" else "1")


def test_rollback_sticks_until_cleared_or_new_version() -> None:
    sr = StagedRollout(ROLL)
    s = sr.start_rollout("nexus", "1", "2", 0.0)
    s = sr.apply(s, decide(s, 1.0, _verdict(Verdict.ROLLBACK), ROLL), 1.0)
    assert s.status == "rolled_back" and "CANARY" in s.reason
    assert weights(s, ROLL) == (0, "1")
    assert decide(s, 2.0, _verdict(Verdict.ADVANCE), ROLL).action is Action.HOLD
    with pytest.raises(ValueError, match="quarantined"):
        sr.start_rollout("nexus", "1", "2", 3.0)
    assert sr.start_rollout("nexus", "1", "3", 3.0).to_version == "3"
    sr.clear_quarantine("nexus", "2")
    assert sr.start_rollout("nexus", "1", "2", 4.0).phase_index == 0


def test_immediate_rollback_needs_the_regression_in_two_consecutive_windows() -> None:
    n = JUDGE.immediate_min_samples
    k, w = JUDGE.immediate_min_rounds, JUDGE.immediate_windows
    assert w == 2
    base, slow = Samples.of(_lat(n * 3, seed=1)), Samples.of(_lat(n * 3, 2.5, seed=1))
    # a freshly started candidate's first window on a loaded host: ×2.5, one burst
    one = compare(base, slow, JUDGE, (2.5,) * k)
    assert one.verdict is not Verdict.ROLLBACK or "immediate" not in one.reason
    # the burst over, the next window alike: no immediate rollback
    burst = compare(base, slow, JUDGE, (2.5,) * k + (1.3, 0.9, 1.1))
    assert "immediate" not in burst.reason
    # slower in every round of two consecutive windows: immediate
    steady = compare(base, slow, JUDGE, (2.5,) * (k * w))
    assert steady.verdict is Verdict.ROLLBACK and "immediate" in steady.reason
    assert f"last {k * w} rounds" in steady.reason


def test_a_rounds_ratio_is_the_median_of_its_per_pair_ratios() -> None:
    from autonomous.evolution.probes import Round

    both = [(1.0, 1.1), (1.0, 1.1), (1.0, 1.1), (4.0, 4.4), (4.0, 4.4)]  # a burst hits both sides
    r = Round([b for b, _ in both], [c for _, c in both], pairs=both)
    assert r.ratio == pytest.approx(1.1)  # ×1.1 in every pair, whatever the burst
    assert Round([1.0, 2.0], [2.0], 0, 0, [(2.0, 2.0)]).ratio == 1.0  # unpaired ignored
    assert Round([1.0], [], 0, 1).ratio is None
