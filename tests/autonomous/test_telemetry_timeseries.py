"""The time-series store: batched writes, rollups against raw data, auto resolution, retention."""

from __future__ import annotations

import random
import statistics

import pytest

from autonomous.core.clock import FakeClock
from autonomous.core.errors import ValidationFailed
from autonomous.store import Store
from autonomous.store.timeseries import Point, TimeSeriesStore, parse_duration

H0 = 1_699_999_200.0  # on an hour boundary


@pytest.fixture()
def ts(tmp_path):
    store = Store(tmp_path / "ts.db").open()
    clock = FakeClock(H0)
    yield TimeSeriesStore(store, clock)
    store.close()


def _fill(ts, seconds, step, labels=None, seed=1):
    rng = random.Random(seed)
    pts = [Point("cpu", rng.uniform(0, 100), H0 + i * step, labels or {"host": "a"})
           for i in range(int(seconds / step))]
    assert ts.write(pts) == len(pts)
    return pts


def test_write_interns_series_and_skips_non_finite(ts):
    n = ts.write([Point("m", 1.0, H0, {"b": "2", "a": "1"}), Point("m", 2.0, H0 + 1,
                  {"a": "1", "b": "2"}), Point("m", float("nan"), H0 + 2), Point("m", None, H0)])
    assert n == 2
    assert ts.series() == [("m", {"a": "1", "b": "2"})]
    assert [s.value for s in ts.query("m", start=H0, end=H0 + 10, resolution="raw")] == [1, 2]


def test_rollups_match_raw_data(ts):
    pts = _fill(ts, 2 * 3600 + 130, 7)
    written = ts.rollup(now=H0 + 2 * 3600 + 130)
    assert written["1h"] == 2
    minute = H0 + 37 * 60
    raw = [p.value for p in pts if minute <= p.ts < minute + 60]
    (bucket,) = [s for s in ts.query("cpu", start=minute, end=minute, resolution="1m")]
    assert bucket.ts == minute and bucket.count == len(raw)
    assert bucket.value == pytest.approx(statistics.fmean(raw))
    assert (bucket.min, bucket.max) == (min(raw), max(raw))
    hour = [p.value for p in pts if H0 + 3600 <= p.ts < H0 + 7200]
    h = ts.query("cpu", start=H0 + 3600, end=H0 + 3600, resolution="1h")[0]
    assert h.count == len(hour) and h.value == pytest.approx(statistics.fmean(hour))
    assert (h.min, h.max) == (min(hour), max(hour))


def test_rollup_only_closed_buckets_and_idempotent(ts):
    _fill(ts, 150, 1)
    assert ts.rollup(now=H0 + 150) == {"1m": 2, "1h": 0}
    assert ts.rollup(now=H0 + 150) == {"1m": 0, "1h": 0}
    before = ts.store.query("SELECT * FROM ts_rollup ORDER BY bucket")
    ts.rollup(now=H0 + 170)
    assert [tuple(r) for r in ts.store.query("SELECT * FROM ts_rollup ORDER BY bucket")] == \
        [tuple(r) for r in before]


def test_late_point_recomputes_its_bucket(ts):
    _fill(ts, 120, 10)
    ts.rollup(now=H0 + 120)
    ts.write([Point("cpu", 1000.0, H0 + 5, {"host": "a"})])
    ts.rollup(now=H0 + 125)
    first = ts.query("cpu", start=H0, end=H0, resolution="1m")[0]
    assert first.max == 1000.0 and first.count == 7


def test_query_tail_past_watermark_comes_from_raw(ts):
    _fill(ts, 300, 10)
    ts.rollup(now=H0 + 120)
    samples = ts.query("cpu", start=H0, end=H0 + 299, resolution="1m")
    assert [s.ts for s in samples] == [H0 + 60 * i for i in range(5)]
    assert sum(s.count for s in samples) == 30


def test_query_merges_series_and_filters_labels(ts):
    ts.write([Point("lat", 10, H0, {"svc": "a"}), Point("lat", 30, H0, {"svc": "b"})])
    assert ts.query("lat", start=H0, end=H0, resolution="raw")[0][:5] == (H0, 20, 10, 30, 2)
    assert ts.query("lat", {"svc": "b"}, start=H0, end=H0, resolution="raw")[0].value == 30
    assert ts.query("lat", {"svc": "zzz"}) == []
    assert ts.latest("lat", {"svc": "a"}) == [({"svc": "a"}, H0, 10.0)]


@pytest.mark.parametrize(("span", "expected"), [(3600, "raw"), (86400, "1m"), (7 * 86400, "1h")])
def test_auto_resolution(ts, span, expected):
    assert ts.pick_resolution(H0, H0 + span) == expected


def test_retention_deletes_exactly_what_is_past_it(ts):
    _fill(ts, 7200, 10)
    ts.rollup(now=H0 + 7200)
    now = H0 + 7200
    keep_raw = sum(1 for i in range(720) if H0 + i * 10 >= now - 1000)
    keep_min = sum(1 for i in range(120) if H0 + i * 60 >= now - 3000)
    deleted = ts.apply_retention({"raw": 1000, "1m": "50m", "1h": "1d"}, now=now)
    assert deleted == {"raw": 720 - keep_raw, "1m": 120 - keep_min, "1h": 0}
    left = ts.store.query_one("SELECT MIN(ts), COUNT(*) FROM ts_raw")
    assert tuple(left) == (now - 1000, keep_raw)
    assert ts.apply_retention({"raw": 1000}, now=now) == {"raw": 0}


def test_bad_resolution_and_retention_keys_are_named(ts):
    ts.write([Point("x", 1, H0)])
    with pytest.raises(ValidationFailed, match="'5m' is not one of"):
        ts.query("x", resolution="5m")
    with pytest.raises(ValidationFailed, match=r"\['5m'\] are not among"):
        ts.apply_retention({"5m": 10})
    with pytest.raises(ValidationFailed, match="'soon' is not a number"):
        parse_duration("soon")
    assert parse_duration("2h") == 7200 and parse_duration(5) == 5.0
