"""Health monitor: metrics, scores, anomalies, prediction, rollups, persistence (no processes)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autonomous.core.clock import FakeClock
from autonomous.health_monitor import metrics as hm_metrics
from autonomous.health_monitor.anomaly_detector import AnomalyDetector, severity_of
from autonomous.health_monitor.health_aggregator import HealthAggregator
from autonomous.health_monitor.nab import NabFile, score_corpus
from autonomous.health_monitor.prediction import predict_failure
from autonomous.health_monitor.stream_detector import StreamingDetector, StreamParams
from autonomous.health_monitor.system_metrics import SystemMetrics, usage_score
from autonomous.resources.loader import load_tree
from autonomous.store import Store
from autonomous.store.timeseries import Point

POLICY = load_tree(Path(__file__).resolve().parents[2]).tree.policies["governed"]["health"]


def _aggregator(store: Store, clock: FakeClock, policy: dict | None = None) -> HealthAggregator:
    pol = policy or POLICY
    return HealthAggregator(store, clock, policy=lambda: pol, specs=dict,
                            retention=lambda: {"raw": "7d", "1m": "30d", "1h": "365d"})


async def test_slow_paths_wait_the_startup_delay(store) -> None:
    """py-cpuinfo (a second of CPU in a child) and the process sweep do not compete with the
    stack's start: a started aggregator runs them startup_delay_seconds after start."""
    clock = FakeClock()
    agg = _aggregator(store, clock)
    await agg.start()
    try:
        await agg.cycle()
        snap = agg.system.latest
        assert agg.system.processes is None and agg._cpuinfo is None
        assert "startup_delay_seconds" in snap["unavailable"]["cpu.model"]
        clock.advance(POLICY["sampling"]["startup_delay_seconds"])
        await agg.cycle()
        assert agg.system.processes is not None and agg._cpuinfo is not None
        await agg._cpuinfo
        assert agg.system.cpu_info is not None or agg.system.cpu_info_error
    finally:
        await agg.close()


async def test_score_series_holds_each_samples_own_score(store) -> None:
    """``health.score`` is written after the sample is scored, at that score's time: the
    dashboard's "last" and the API's score are the same number (it used to lag a cycle)."""
    clock = FakeClock()
    agg = _aggregator(store, clock)
    try:
        for _ in range(2):
            g = await agg.cycle()
            assert g.score is not None
            assert agg.ts.latest("health.score") == [({}, g.ts, g.score)]
            clock.advance(10)
    finally:
        await agg.close()


# -- SystemMetrics ------------------------------------------------------------------------------
EXPECTED = ["cpu.percent", "cpu.per_core", "cpu.load", "cpu.frequency_mhz", "cpu.temperature_c",
            "cpu.throttle_count", "memory.ram", "memory.swap", "gpu", "disks", "io.disk",
            "io.network", "network_probe", "processes"]


def _get(snap: dict, path: str) -> object:
    cur: object = snap
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


async def test_metrics_present_or_null_with_reason() -> None:
    m = SystemMetrics(FakeClock())
    m.sample()
    m.sample_processes(3)
    await m.probe_network(["127.0.0.1:1"], timeout=0.5, attempts=1)
    snap = m.sample()
    missing = snap["unavailable"]
    for path in EXPECTED:
        value = _get(snap, path)
        if path == "gpu":
            value = snap["gpu"]["devices"]
        assert value is not None or any(path.startswith(k) or k.startswith(path)
                                        for k in missing), path
    if snap["gpu"]["devices"] is None:
        assert missing["gpu"] == "no GPU" and snap["gpu"]["reason"] == "no GPU"
    else:
        assert all(d["source"] in ("nvml", "gputil") for d in snap["gpu"]["devices"])
    if snap["cpu"]["temperature_c"] is None:
        assert missing["cpu.temperature_c"] == "no sensors"
    if snap["memory"]["swap"]["total_mb"] == 0:  # no swap: no invented 0 %
        assert snap["memory"]["swap"]["percent"] is None
        assert missing["swap.percent"] == "no swap configured"
    else:
        assert snap["memory"]["swap"]["percent"] is not None
    assert 0 <= snap["cpu"]["percent"] <= 100 and snap["disks"]
    assert snap["network_probe"]["targets"]["127.0.0.1:1"]["loss_percent"] == 100.0
    keys = {hm_metrics.metric_key(n, lab) for n, lab, _ in m.flat()}
    assert {"cpu.percent", "ram.percent", "disk.percent{mount=/}"} <= keys
    m.close()


@pytest.mark.parametrize(("use", "expected"), [(0, 100), (40, 100), (60, 75), (80, 50),
                                               (90, 25), (100, 0)])
def test_usage_score_formula(use: float, expected: float) -> None:
    assert usage_score(use, 80, 0.5) == pytest.approx(expected)


@pytest.mark.parametrize(("history", "anomalous"), [([10, 11, 10, 11, 10, 11, 30], True),
                                                    ([10, 11, 10, 11, 10, 11, 11], False)])
def test_detect_anomaly_sigma(history: list[float], anomalous: bool) -> None:
    assert SystemMetrics.detect_anomaly(history, 2.0)["anomalous"] is anomalous


@pytest.mark.parametrize("key", ["cpu.percent", "disk.percent{mount=/}", "x{a=1,b=2}"])
def test_metric_key_round_trip(key: str) -> None:
    assert hm_metrics.metric_key(*hm_metrics.parse_key(key)) == key


def test_metric_key_malformed() -> None:
    with pytest.raises(ValueError, match="must end with"):
        hm_metrics.parse_key("disk.percent{mount=/")


# -- anomalies ----------------------------------------------------------------------------------
def _feed(det: AnomalyDetector, n: int, start: float, spike: dict[str, tuple[int, int, float]],
          rng: np.random.Generator) -> list:
    reports = []
    for i in range(n):
        sample = {"cpu.percent": 30 + rng.normal(0, 1.0), "ram.percent": 50 + rng.normal(0, 1.0)}
        for metric, (lo, hi, size) in spike.items():
            if lo <= i < hi:
                sample[metric] += size
        reports.append(det.detect(sample, start + 10 * i))
    return reports


@pytest.mark.parametrize(("size", "severity"), [(10.0, "moderada"), (40.0, "severa")])
def test_injected_anomaly_detected_with_severity_and_metric(store: Store, size: float,
                                                            severity: str) -> None:
    clock = FakeClock()
    det = AnomalyDetector(store, clock, POLICY["anomaly"], POLICY["anomaly_sigma"])
    reports = _feed(det, 900, clock.now(), {"ram.percent": (600, 630, size)},
                    np.random.default_rng(1))
    first = next(i for i, r in enumerate(reports) if r.detected)
    assert first == 600 and reports[600].metrics_affected == ["ram.percent"]
    events = det.events(0)
    assert [(e.metric, e.severity) for e in events] == [("ram.percent", severity)]
    ev = events[0]
    assert ev.end is not None and 280 <= ev.duration <= 300  # one 5-minute event, not 30
    assert not reports[-1].detected


def test_level_shift_stops_alarming_once_baseline_adapts(store: Store) -> None:
    clock = FakeClock()
    det = AnomalyDetector(store, clock, POLICY["anomaly"], POLICY["anomaly_sigma"])
    reports = _feed(det, 1400, clock.now(), {"cpu.percent": (600, 1400, 20.0)},
                    np.random.default_rng(2))
    assert reports[600].detected and not reports[-1].detected
    events = det.events(0)
    assert len(events) == 1 and events[0].end is not None


def test_severity_thresholds_from_policy() -> None:
    sev = POLICY["anomaly"]["severity_sigma"]
    assert severity_of(sev["moderada"] - 0.1, sev) == "leve"
    assert severity_of(-sev["moderada"], sev) == "moderada"
    assert severity_of(sev["severa"], sev) == "severa"


def test_model_persisted_and_restored(store: Store) -> None:
    clock = FakeClock()
    det = AnomalyDetector(store, clock, POLICY["anomaly"], POLICY["anomaly_sigma"])
    rng = np.random.default_rng(3)
    ts = [clock.now() + 60 * i for i in range(500)]
    hist = {k: (ts, list(50 + rng.normal(0, 1, 500))) for k in ("cpu.percent", "ram.percent")}
    info = det.train(hist)
    assert info["forest_rows"] == 500 and det.forest is not None
    again = AnomalyDetector(store, clock, POLICY["anomaly"], POLICY["anomaly_sigma"])
    assert again.load() and again.columns == ["cpu.percent", "ram.percent"]
    assert again.streams["cpu.percent"].state() == det.streams["cpu.percent"].state()
    x = {"cpu.percent": 50.0, "ram.percent": 50.0}
    assert again.detect(x).isolation_score == pytest.approx(det.detect(x).isolation_score)
    odd = det.detect({"cpu.percent": 50.0, "ram.percent": 90.0}).isolation_score
    assert odd < det.detect(x).isolation_score


def test_fast_forest_matches_sklearn() -> None:
    from sklearn.ensemble import IsolationForest

    from autonomous.health_monitor.forest import FastForest

    x = np.random.default_rng(9).normal(size=(600, 5))
    forest = IsolationForest(n_estimators=30, contamination=0.01, random_state=0).fit(x)
    rows = np.random.default_rng(10).normal(size=(20, 5)) * 3
    fast = FastForest(forest)
    assert [fast.decision(r) for r in rows] == pytest.approx(list(forest.decision_function(rows)))


def test_streaming_detector_uses_past_only() -> None:
    p = StreamParams.from_policy(POLICY["anomaly"]["stream"])
    a, b = StreamingDetector(p), StreamingDetector(p)
    series = np.random.default_rng(4).normal(0, 1, 300)
    ra = [a.update(x).score for x in series]
    rb = [b.update(x).score for x in np.concatenate([series[:200], series[200:] + 100])]
    assert ra[:200] == rb[:200]


def test_streaming_detector_record_scores_one_and_survives_state() -> None:
    p = StreamParams.from_policy(POLICY["anomaly"]["stream"])
    d = StreamingDetector(p)
    for x in np.sin(np.arange(p.window + 2 * p.suppress) / 5):  # a wave: its changes repeat
        d.update(float(x))
    again = StreamingDetector.from_state(p, d.state())
    assert again.state() == d.state()
    again.since_detection = p.suppress + 1  # not inside a suppression (as after ``train``)
    r = again.update(1.1)  # above every value seen: a record, whatever its change
    assert r.score == 1.0 and r.detected
    assert d.update(0.0).score < 1.0  # inside the range: no record


def test_streaming_detector_bigger_event_escapes_suppression() -> None:
    p = StreamParams.from_policy(POLICY["anomaly"]["stream"])
    d = StreamingDetector(p)
    rng = np.random.default_rng(11)
    for x in rng.normal(0, 1, p.window + 50):
        d.update(float(x))
    d.since_detection = p.suppress + 1  # out of any earlier suppression
    small = d.update(float(d.extremes.hi[0][1]) + 0.5)  # a small record: a detection
    assert small.detected
    assert not d.update(float(d.extremes.hi[0][1]) + 0.1).detected  # suppressed
    big = d.update(small.baseline + 4 * p.escalation * abs(small.z))  # a much bigger one
    assert big.detected


def test_streaming_detector_change_near_median_does_not_alarm() -> None:
    p = StreamParams.from_policy(POLICY["anomaly"]["stream"])
    assert p.change_sigma > 0.5
    wave = np.sin(np.arange(p.window + p.likelihood_window + 10) / 20)  # smooth: small changes
    for other in (p, replace(p, change_sigma=0.0)):
        d = StreamingDetector(other)
        for x in wave:
            d.update(float(x))
        d.since_detection = p.suppress + 1
        r = d.update(float(wave[-1] - 0.5 * np.sign(wave[-1])))  # a jump never seen, inwards
        assert abs(r.z) < p.change_sigma
        assert r.detected == (other.change_sigma == 0.0)


def test_streaming_detector_non_record_does_not_escalate() -> None:
    p = StreamParams.from_policy(POLICY["anomaly"]["stream"])
    d = StreamingDetector(p)
    rng = np.random.default_rng(12)
    for x in np.concatenate([rng.normal(0, 1, p.window), [40.0], rng.normal(0, 1, 60)]):
        d.update(float(x))  # one earlier 40σ spike: the record range reaches 40
    d.since_detection = p.suppress + 1
    small = d.update(float(d.extremes.lo[0][1]) - 0.5)  # a small (low) record
    assert small.detected
    r = d.update(small.baseline + 4 * p.escalation * abs(small.z))  # big, below the old 40
    assert r.z < 40 and not r.detected  # same event: no new alarm



def test_streaming_detector_suppression_holds_while_level_is_off() -> None:
    p = replace(StreamParams.from_policy(POLICY["anomaly"]["stream"]), hold=120, suppress=120)
    rng = np.random.default_rng(13)
    d = StreamingDetector(p)
    for x in np.concatenate([rng.normal(0, 1, p.window), [40.0], rng.normal(0, 1, 60)]):
        d.update(float(x))
    old = d.state()
    del old["extended"]  # a model saved before the hold existed still loads
    assert StreamingDetector.from_state(p, old).extended == 0
    d.since_detection = p.suppress + 1
    assert d.update(float(d.extremes.lo[0][1]) - 0.5).detected  # a record opens the event
    held = [d.update(10.0 + 0.1 * (i % 2)) for i in range(p.suppress + 5)]  # ~10σ, under 40
    assert not any(r.detected for r in held) and d.extended > 0  # one event, held open
    for x in rng.normal(0, 1, 2 * p.suppress + 10):  # back to baseline: the hold ends
        d.update(float(x))
    assert d.extended <= p.suppress and d.since_detection > p.suppress



def test_streaming_detector_quiet_ends_the_suppression() -> None:
    """``quiet`` calm samples in a row end the suppression: a second event 60 rows after the
    first alarms; while the level stays off, or with ``quiet`` 0, it is the same event."""
    base = StreamParams.from_policy(POLICY["anomaly"]["stream"])
    assert 0 < base.quiet < 60 < base.suppress
    rng = np.random.default_rng(14)
    lead = rng.normal(0, 1, base.window + 100)

    def second_alarms(p: StreamParams, between: np.ndarray) -> bool:
        d = StreamingDetector(p)
        for x in lead:
            d.update(float(x))
        d.since_detection = p.suppress + 1
        assert d.update(float(d.extremes.hi[0][1]) + 1.0).detected  # the first event
        for x in between:
            d.update(float(x))
        return d.update(float(d.extremes.hi[0][1]) + 0.5).detected  # a record, not bigger

    calm = rng.normal(0, 0.3, 60)  # back at the median: the event is over
    assert second_alarms(base, calm)
    assert not second_alarms(replace(base, quiet=0), calm)
    off = np.full(60, 5.0) + rng.normal(0, 0.1, 60)  # the level stays 5 σ off: same event
    assert not second_alarms(base, off)


def test_streaming_detector_calm_count_round_trips() -> None:
    p = StreamParams.from_policy(POLICY["anomaly"]["stream"])
    d = StreamingDetector(p)
    for x in np.random.default_rng(15).normal(0, 1, p.window + 40):
        d.update(float(x))
    assert d.calm > 0
    again = StreamingDetector.from_state(p, d.state())
    assert again.calm == d.calm and again.state() == d.state()
    old = d.state()
    del old["calm"]  # a model saved before ``quiet`` existed still loads
    assert StreamingDetector.from_state(p, old).calm == 0


def _beats(period: int, count: int, off_beat: int | None = None) -> tuple[np.ndarray, list[int]]:
    """Noise with a 30σ spike every ``period`` rows (``count`` of them), optionally one more
    at ``off_beat``; the spike rows."""
    rng = np.random.default_rng(31)
    x = rng.normal(0, 1, 600 + period * count + 300)
    spikes = [600 + period * k for k in range(count)]
    if off_beat is not None:
        spikes.append(off_beat)
    x[spikes] = 30.0
    return x, spikes


def _alarms(p: StreamParams, x: np.ndarray) -> list[int]:
    """Rows that alarm from the first spike on (a noise record may alarm while warming up)."""
    d = StreamingDetector(p)
    return [i for i, v in enumerate(x) if d.update(float(v)).detected and i >= 600]


def test_streaming_detector_drops_a_spike_that_recurs_on_its_period() -> None:
    p = StreamParams.from_policy(POLICY["anomaly"]["stream"])
    assert p.season_repeats == 3 and p.season_periods[0] <= 288 <= p.season_periods[1]
    x, spikes = _beats(288, 7)  # a daily job's spike (5-minute samples)
    plain = _alarms(replace(p, season_repeats=0), x)
    assert plain == spikes  # without the season check every spike alarms
    seasonal = _alarms(p, x)
    assert seasonal == spikes[:3]  # the 4th onwards follow three beats one period apart
    off = spikes[4] + 100  # the same spike off the beat is news
    x2, spikes2 = _beats(288, 7, off_beat=off)
    assert off in _alarms(p, x2)
    jittered = _beats(288, 7)[0]
    jittered[spikes[3]], jittered[spikes[3] + 40] = jittered[spikes[3] + 40], 30.0
    assert spikes[3] + 40 in _alarms(p, jittered)  # 40 rows off a 288-row beat: not a beat


def test_streaming_detector_season_state_round_trips() -> None:
    p = StreamParams.from_policy(POLICY["anomaly"]["stream"])
    x, spikes = _beats(288, 7)
    cut = spikes[3] - 10  # three onsets seen; the fourth is a beat
    d = StreamingDetector(p)
    for v in x[:cut]:
        d.update(float(v))
    again = StreamingDetector.from_state(p, d.state())
    assert again.state() == d.state()
    beats = [t for t in again.recurrence.onsets if t > 600]  # counts of samples seen
    assert beats == [s + 1 for s in spikes[:3]]
    rest = [r.detected for r in map(again.update, x[cut:])]
    assert rest == [r.detected for r in map(d.update, x[cut:])]
    assert not any(rest)  # the restored detector still knows the beat
    old = d.state()
    del old["onsets"], old["last_onset"]  # a model saved before the season check loads
    assert not StreamingDetector.from_state(p, old).recurrence.onsets


def test_streaming_detector_with_season_check_is_causal() -> None:
    """Score and detection at t depend on rows up to t only, whatever follows (beats, a
    record, a flat line)."""
    p = StreamParams.from_policy(POLICY["anomaly"]["stream"])
    x, spikes = _beats(288, 5)
    past = x[: spikes[3] + 1]
    want = [(r.score, r.detected) for r in map(StreamingDetector(p).update, past)]
    for future in (x[spikes[3] + 1:], np.full(400, 1e9), np.zeros(400)):
        got = [(r.score, r.detected) for r in map(StreamingDetector(p).update,
                                                    np.concatenate([past, future]))]
        assert got[: len(past)] == want
    assert [i for i, (_, det) in enumerate(want) if det and i >= 600] == spikes[:3]


def test_stream_policy_rejects_inverted_season_periods() -> None:
    from pydantic import ValidationError

    from autonomous.resources.policy.health import StreamDetectorPolicy

    good = dict(POLICY["anomaly"]["stream"])
    StreamDetectorPolicy.model_validate(good)
    with pytest.raises(ValidationError, match="season_periods"):
        StreamDetectorPolicy.model_validate({**good, "season_periods": [500, 100]})


def test_prediction_policy_rejects_a_history_longer_than_the_long_horizon() -> None:
    from pydantic import ValidationError

    from autonomous.resources.policy.health import PredictionPolicy

    good = dict(POLICY["prediction"])
    PredictionPolicy.model_validate(good)
    with pytest.raises(ValidationError, match="min_history_seconds must not exceed"):
        PredictionPolicy.model_validate({**good, "min_history_seconds": 1e9})


def test_stream_policy_opinions_are_the_detector_families() -> None:
    from typing import get_args

    from pydantic import ValidationError

    from autonomous.health_monitor.stream_opinion import FAMILIES
    from autonomous.resources.policy.health import StreamDetectorPolicy

    field = StreamDetectorPolicy.model_fields["opinion"]
    assert set(get_args(field.annotation)) == set(FAMILIES)
    good = dict(POLICY["anomaly"]["stream"])
    with pytest.raises(ValidationError, match="opinion"):
        StreamDetectorPolicy.model_validate({**good, "opinion": "vote"})
    with pytest.raises(ValidationError, match="opinion_arg"):
        StreamDetectorPolicy.model_validate({**good, "opinion": "season", "opinion_arg": 0})


# -- prediction ---------------------------------------------------------------------------------
PRED = POLICY["prediction"]


def test_linear_disk_fill_predicted_within_10_percent(store: Store) -> None:
    clock = FakeClock()
    agg = _aggregator(store, clock)
    rate = 4.0 / 3600  # % per second
    rng = np.random.default_rng(5)
    start = clock.now()
    n = int(PRED["long_horizon_seconds"] / 10)
    pts = [Point("disk.percent", 40 + rate * 10 * i + rng.normal(0, 0.2), start + 10 * i,
                 {"mount": "/data"}) for i in range(n)]
    agg.ts.write(pts)
    clock.advance(10 * n)
    agg.ts.rollup()
    now = clock.now()
    true_eta = (POLICY["thresholds"]["disk_percent"] - (40 + rate * (now - start))) / rate
    [p] = agg.update_predictions()
    assert p["metric"] == "disk.percent{mount=/data}"
    assert abs(p["eta_seconds"] - true_eta) <= 0.1 * true_eta
    assert p["eta_low_seconds"] <= p["eta_seconds"] <= p["eta_high_seconds"]
    recs = [r for r in agg._global(POLICY).recommendations if "will reach 90% in" in r["text"]]
    assert recs[0]["metrics"] == ["disk.percent{mount=/data}"]
    assert "free space or raise retention" in recs[0]["text"]


def test_a_short_history_predicts_nothing_however_steep() -> None:
    """Ten minutes after a start RAM rose 2 → 4 %: extrapolated, 85 % in seven hours. No
    prediction until the series spans ``min_history_seconds``; the same trend then does."""
    rate = 12.0 / 3600  # % per second
    for span, predicted in ((600, False), (PRED["min_history_seconds"] - 60, False),
                            (PRED["min_history_seconds"] + 60, True)):
        t = np.arange(0, span, 10.0)
        got = predict_failure("ram.percent", t, 2 + rate * t, 85, PRED, float(t[-1]))
        assert (got is not None) == predicted, (span, got)


@pytest.mark.parametrize("burst", [0.0, 30.0])
def test_flat_series_with_burst_predicts_nothing(burst: float) -> None:
    rng = np.random.default_rng(6)
    t = np.arange(0, PRED["long_horizon_seconds"], 10.0)
    v = 50 + rng.normal(0, 0.2, len(t))
    v[-6:] += burst  # one busy minute
    assert predict_failure("disk.percent", t, v, 90, PRED, float(t[-1])) is None


def test_trend_away_from_threshold_predicts_nothing() -> None:
    t = np.arange(0, PRED["long_horizon_seconds"], 10.0)
    assert predict_failure("m", t, 80 - t / 3600, 90, PRED, float(t[-1])) is None


def test_rising_series_already_past_threshold_predicts_nothing() -> None:
    # "will reach 90 % in ~0 s" while already above is a breach, not a prediction
    t = np.arange(0, PRED["long_horizon_seconds"], 10.0)
    v = 95 + t / 3600
    assert predict_failure("disk.percent", t, v, 90, PRED, float(t[-1])) is None
    below = 80 + t / 3600 * 0.5
    below[-1] = 91.0  # the latest sample already crossed it
    assert predict_failure("disk.percent", t, below, 90, PRED, float(t[-1])) is None


# -- rollups and history ------------------------------------------------------------------------
def test_rollups_match_raw_and_trend_reads_rollups(store: Store) -> None:
    clock = FakeClock(start=1_700_000_000 - 1_700_000_000 % 3600)
    agg = _aggregator(store, clock)
    rng = np.random.default_rng(7)
    start = clock.now()
    values = 40 + 10 * np.sin(np.arange(3 * 360) / 50) + rng.normal(0, 1, 3 * 360)
    agg.ts.write([Point("cpu.percent", float(v), start + 10 * i) for i, v in enumerate(values)])
    clock.advance(3 * 3600)
    agg.ts.rollup()
    minutes = agg.history("cpu.percent", 1, resolution="1m")
    assert len(minutes) == 180
    for k, s in enumerate(minutes):
        chunk = values[6 * k: 6 * k + 6]
        assert s.value == pytest.approx(chunk.mean()) and s.count == 6
        assert (s.min, s.max) == (pytest.approx(chunk.min()), pytest.approx(chunk.max()))
    store.execute("DELETE FROM ts_raw")  # the 7-day trend must come from rollups alone
    trend = agg.get_historical_trend(days=7)
    assert trend["resolution"] == "1h"
    hours = trend["metrics"]["cpu.percent"]["points"]
    assert [h["count"] for h in hours] == [360, 360, 360]
    for k, h in enumerate(hours):
        assert h["avg"] == pytest.approx(values[360 * k: 360 * (k + 1)].mean())


@pytest.mark.parametrize("telemetry_runs", [False, True])
def test_report_leaves_rollups_and_retention_to_telemetry(store: Store,
                                                          telemetry_runs: bool) -> None:
    clock = FakeClock(start=1_700_000_000 - 1_700_000_000 % 3600)
    agg = HealthAggregator(store, clock, policy=lambda: POLICY, specs=dict,
                           retention=lambda: {"raw": "1h", "1m": "30d", "1h": "365d"},
                           telemetry_runs=lambda: telemetry_runs)
    start = clock.now()
    agg.ts.write([Point("cpu.percent", float(i), start + 10 * i) for i in range(3 * 360)])
    clock.advance(3 * 3600)
    agg.report()
    minutes = store.query_one("SELECT COUNT(*) FROM ts_rollup WHERE resolution=60")[0]
    raw = store.query_one("SELECT COUNT(*) FROM ts_raw")[0]
    if telemetry_runs:  # the telemetry controller rolls up and applies the retention
        assert minutes == 0 and raw == 3 * 360
    else:
        assert minutes == 180 and raw < 3 * 360


def test_query_many_equals_query_ids_per_series(store: Store) -> None:
    clock = FakeClock(start=1_700_000_000 - 1_700_000_000 % 3600)
    agg = _aggregator(store, clock)
    start = clock.now()
    rng = np.random.default_rng(3)
    agg.ts.write([Point("m", float(rng.normal()), start + 10 * i + (j % 3), {"k": str(j)})
                  for i in range(2 * 360) for j in range(4)])
    clock.advance(3600)
    agg.ts.rollup()  # rollups for the first hour, the second one only raw (the tail)
    clock.advance(3600)
    ids = [sid for sid, _ in agg.ts.match("m")]
    for res in ("raw", "1m", "1h"):
        got = agg.ts.query_many(ids, start + 25, clock.now(), res)
        assert sorted(got) == ids
        for sid in ids:
            want = agg.ts.query_ids([sid], start + 25, clock.now(), res)
            assert got[sid][0] == [s.ts for s in want], res
            assert got[sid][1] == pytest.approx([s.value for s in want]), res
    assert agg.ts.query_many(ids, clock.now() + 10, clock.now() + 20, "1m") == {}
    assert agg.ts.query_many([], start, clock.now()) == {}


# -- NAB scorer ---------------------------------------------------------------------------------
def test_nab_scorer_perfect_null_and_false_positive() -> None:
    f = NabFile("a.csv", np.arange(1000.0), np.zeros(1000), [(500, 549)])
    perfect = np.zeros(1000)
    perfect[500] = 1
    null = np.zeros(1000)
    fp = perfect.copy()
    fp[300] = 1
    th = np.array([0.5])
    assert score_corpus({"a.csv": perfect}, [f], thresholds=th)["score"] == pytest.approx(100)
    assert score_corpus({"a.csv": null}, [f], thresholds=th)["score"] == pytest.approx(0)
    hurt = score_corpus({"a.csv": fp}, [f], thresholds=th)["raw"]
    assert hurt == pytest.approx(1 - 0.11)


def test_nab_scorer_hand_computed_case() -> None:
    # 1000 rows, probation 150; one window rows 500..549 (width 50). A detection at row 524:
    # TP weight s(-(549-524+1)/50)/s(-1) = s(-0.52)/s(-1), s(y) = 2/(1+e^(5y)) - 1. A false
    # positive at row 574 (25 rows after the window ended, relative 25/49) costs
    # 0.11 · s(25/49); one at row 200 (before any window) costs 0.11 · -1; one at row 100 is in
    # the probation and costs nothing.
    from autonomous.health_monitor.nab import Scorer, scaled_sigmoid

    def s(y: float) -> float:
        return 2 / (1 + math.exp(5 * y)) - 1

    f = NabFile("c/a.csv", np.arange(1000.0), np.zeros(1000), [(500, 549)])
    det = np.zeros(1000)
    det[[100, 200, 524, 530, 574]] = 1  # 530: a second hit in the window adds nothing
    want = s(-26 / 50) / s(-1) - 0.11 + 0.11 * s(25 / 49)
    assert scaled_sigmoid(-0.52) == pytest.approx(s(-0.52))
    sc = Scorer([f])
    raw = sc.raw({"c/a.csv": det}, ["c/a.csv"], 0.5, "standard")
    assert raw == pytest.approx(want)
    assert sc.score({"c/a.csv": det}, ["c/a.csv"], 0.5, "standard") == pytest.approx(
        100 * (want + 1) / 2)
    low_fn = sc.raw({"c/a.csv": np.zeros(1000)}, ["c/a.csv"], 0.5, "reward_low_FN_rate")
    assert low_fn == pytest.approx(-2.0)  # a missed window costs A_FN = 2 on that profile


def test_nab_choose_maximin_against_pooled() -> None:
    # Four files in category "big", one in "small", one window each; a hit at the window's
    # left edge earns 1, a miss costs 1. A hits every "big" window and misses "small" (pooled
    # raw 3, worst category 0); B hits two "big" and "small" (raw 1, worst category 50).
    from autonomous.health_monitor.nab import Scorer, choose

    files = [NabFile(f"big/{i}.csv", np.arange(1000.0), np.zeros(1000), [(500, 549)])
             for i in range(4)] + [NabFile("small/0.csv", np.arange(1000.0), np.zeros(1000),
                                           [(500, 549)])]
    hit, miss = np.zeros(1000), np.zeros(1000)
    hit[500] = 1
    a = {f.key: hit if f.key.startswith("big") else miss for f in files}
    b = {f.key: miss if f.key in ("big/0.csv", "big/1.csv") else hit for f in files}
    sc = Scorer(files)
    keys = [f.key for f in files]
    assert sc.raw(a, keys, 0.5, "standard") == pytest.approx(3.0)
    assert sc.raw(b, keys, 0.5, "standard") == pytest.approx(1.0)
    assert choose(sc, [a, b], keys, "standard", "pooled") == 0
    assert choose(sc, [a, b], keys, "standard", "maximin") == 1
    assert choose(sc, [a, b], keys[:4], "standard") == 0  # one category: the best score
    with pytest.raises(ValueError, match="rule 'median'"):
        choose(sc, [a, b], keys, "standard", "median")


def test_nab_choose_mean_against_maximin() -> None:
    # G hits every "big" window at its left edge (100) and "small" late (55.1): worst 55.1,
    # mean 77.5. H misses one "big" window (75) and hits "small" earlier (73.4): worst 73.4,
    # mean 74.2. The maximin rule takes H, the mean rule G.
    from autonomous.health_monitor.nab import Scorer, choose

    files = [NabFile(f"big/{i}.csv", np.arange(1000.0), np.zeros(1000), [(500, 549)])
             for i in range(4)] + [NabFile("small/0.csv", np.arange(1000.0), np.zeros(1000),
                                           [(500, 549)])]

    def hits(at: int) -> np.ndarray:
        d = np.zeros(1000)
        d[at] = 1
        return d

    g = {f.key: hits(548 if f.key.startswith("small") else 500) for f in files}
    h = {**{f.key: hits(500) for f in files[1:4]}, "big/0.csv": np.zeros(1000),
         "small/0.csv": hits(540)}
    sc = Scorer(files)
    keys = [f.key for f in files]
    big, small = keys[:4], keys[4:]
    assert sc.score(g, big, 0.5, "standard") == pytest.approx(100.0)
    assert sc.score(h, big, 0.5, "standard") == pytest.approx(75.0)
    assert sc.score(g, small, 0.5, "standard") < sc.score(h, small, 0.5, "standard") < 75.0
    assert choose(sc, [g, h], keys, "standard", "maximin") == 1
    assert choose(sc, [g, h], keys, "standard", "mean") == 0
    assert choose(sc, [g, h], keys, "standard") == 0  # the policy's rule is the default


def test_streaming_detector_is_causal_under_any_future() -> None:
    p = StreamParams.from_policy(POLICY["anomaly"]["stream"])
    rng = np.random.default_rng(21)
    past = np.concatenate([rng.normal(0, 1, 700), [25.0], rng.normal(3, 1, 300)])
    want = [(r.score, r.detected) for r in map(StreamingDetector(p).update, past)]
    for future in (rng.normal(0, 1, 200), np.full(200, -1e6), rng.normal(50, 20, 200)):
        d = StreamingDetector(p)
        got = [(r.score, r.detected) for r in map(d.update, np.concatenate([past, future]))]
        assert got[: len(past)] == want
    assert any(det for _, det in want)  # the past itself has a detection to keep


def test_detect_cost_per_sample_is_small(store: Store) -> None:
    det = AnomalyDetector(store, FakeClock(), POLICY["anomaly"], POLICY["anomaly_sigma"])
    rng = np.random.default_rng(8)
    import time

    for _ in range(450):
        det.detect({"cpu.percent": float(rng.normal())})
    t0 = time.perf_counter()
    for _ in range(200):
        det.detect({"cpu.percent": float(rng.normal())})
    per = (time.perf_counter() - t0) / 200
    assert per < 0.01 and not math.isnan(per)


def test_top_process_recommendation_says_how_old_the_sweep_is() -> None:
    from autonomous.health_monitor.recommendations import recommendations
    problem = {"metric": "cpu.percent", "resource": "cpu", "value": 97.0, "threshold": 90.0}
    sweep = {"ts": 1000.0, "count": 1, "by_cpu": [{"name": "burner", "pid": 42}],
             "by_memory": []}
    [rec] = recommendations([problem], {}, [], [], [], sweep, {}, now=1062.0)
    assert "top process in the sweep ~62 s ago: burner pid 42" in rec["text"]
    [fresh] = recommendations([problem], {}, [], [], [], sweep, {}, now=1000.0)
    assert "~0 s ago" in fresh["text"]


@given(st.text(alphabet="ab{}=,\x1f", max_size=12))
@settings(max_examples=3000, deadline=None)
def test_metric_key_pattern_accepts_exactly_what_parse_key_parses(key):
    """The OpenAPI pattern of ``/api/health/history?metric=`` is the parser's grammar: a key
    the schema calls valid is never a 422, and a 422 key is outside the schema."""
    import re

    try:
        hm_metrics.parse_key(key)
        parsed = True
    except ValueError:
        parsed = False
    assert bool(re.fullmatch(hm_metrics.METRIC_KEY_PATTERN, key)) == parsed, key
