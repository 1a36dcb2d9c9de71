"""The one time-series implementation: raw points, 1-minute and 1-hour rollups, retention.

    ts = TimeSeriesStore(store, clock)
    ts.write([Point("cpu_percent", 12.5, clock.now(), {"host": "a"})])
    ts.query("cpu_percent", {"host": "a"}, start=t0, end=t1)        # -> [Sample(...)]
    ts.rollup()                                                      # closed buckets only
    ts.apply_retention({"raw": 2 * 86400, "1m": 30 * 86400, "1h": 365 * 86400})

Series are interned: (name, sorted labels) map to an integer id cached in memory, so a batch
of points is one ``executemany`` of (id, ts, value) inside one transaction. Rollups are
computed for closed buckets only (bucket end <= now), 1 m from raw points and 1 h from the
1 m rollups, and are idempotent (``INSERT OR REPLACE`` over a watermark). A point written
late, below a watermark, marks that resolution dirty from its timestamp so the next rollup
recomputes the affected buckets. A query at a rollup resolution reads the rollups up to the
watermark and aggregates the raw tail past it on the fly, so the newest data is never missing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any, NamedTuple

from autonomous.core.clock import Clock
from autonomous.core.errors import Problem, ValidationFailed
from autonomous.store.db import Store

__all__ = ["RESOLUTIONS", "Point", "Sample", "TimeSeriesStore", "parse_duration"]

RESOLUTIONS: dict[str, int] = {"1m": 60, "1h": 3600}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


@dataclass(slots=True)
class Point:
    """One measurement: metric name, value, wall-clock timestamp (s) and string labels."""

    name: str
    value: float
    ts: float
    labels: dict[str, str] = field(default_factory=dict)


class Sample(NamedTuple):
    """A query result row: a raw point (count 1) or an aggregated bucket (value = average)."""

    ts: float
    value: float
    min: float
    max: float
    count: int  # type: ignore[assignment]  # the interface name; shadows tuple.count


def parse_duration(value: float | str) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"15m"``, ``"2h"``, ``"30d"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = _DURATION.match(str(value))
    if m is None:
        raise _invalid("duration", f"{value!r} is not a number of seconds or "
                       "<number><unit> with unit one of ms, s, m, h, d, w")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _invalid(path: str, message: str) -> ValidationFailed:
    return ValidationFailed([Problem("", 0, path, message)])


def _labels_key(labels: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in labels.items())) if labels else ()


class TimeSeriesStore:
    """Batched time-series writes, queries at raw/1m/1h resolution, rollups and retention."""

    def __init__(self, store: Store, clock: Clock, *, auto_min_points: int = 100) -> None:
        self.store = store
        self.clock = clock
        self.auto_min_points = auto_min_points
        self._ids: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}

    # -- writes -----------------------------------------------------------------------------
    def write(self, points: Iterable[Point]) -> int:
        """Write a batch in one transaction; return how many points were stored.

        Points whose value is not a finite number (NaN, ±inf, None) are skipped: a metric the
        platform cannot measure is absent, never a made-up value.
        """
        rows: list[tuple[int, float, float]] = []
        lowest = math.inf
        fresh: list[tuple[str, tuple[tuple[str, str], ...]]] = []
        try:
            with self.store.transaction() as conn:
                for p in points:
                    try:
                        value = float(p.value)
                    except (TypeError, ValueError):
                        continue
                    if not math.isfinite(value):
                        continue
                    key = (p.name, _labels_key(p.labels))
                    sid = self._ids.get(key)
                    if sid is None:
                        sid = self._intern(conn, key)
                        fresh.append(key)
                    ts = float(p.ts)
                    lowest = min(lowest, ts)
                    rows.append((sid, ts, value))
                if rows:
                    conn.executemany("INSERT INTO ts_raw(series_id, ts, value) VALUES (?,?,?)",
                                     rows)
                    conn.execute("UPDATE ts_rollup_state SET dirty_from = "
                                 "MIN(COALESCE(dirty_from, ?), ?) WHERE done_until > ?",
                                 (lowest, lowest, lowest))
        except BaseException:
            for key in fresh:          # ids of a rolled-back transaction do not exist
                self._ids.pop(key, None)
            raise
        return len(rows)

    def _intern(self, conn: Any, key: tuple[str, tuple[tuple[str, str], ...]]) -> int:
        name, labels = key
        text = json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))
        conn.execute("INSERT OR IGNORE INTO ts_series(name, labels, created_at) VALUES (?,?,?)",
                     (name, text, self.clock.now()))
        sid = int(conn.execute("SELECT id FROM ts_series WHERE name=? AND labels=?",
                               (name, text)).fetchone()[0])
        self._ids[key] = sid
        return sid

    # -- catalogue --------------------------------------------------------------------------
    def series(self, name: str | None = None) -> list[tuple[str, dict[str, str]]]:
        """Every known series as (name, labels), optionally for one metric name."""
        if name is None:
            rows = self.store.query("SELECT name, labels FROM ts_series ORDER BY name, labels")
        else:
            rows = self.store.query("SELECT name, labels FROM ts_series WHERE name=? "
                                    "ORDER BY labels", (name,))
        return [(r["name"], json.loads(r["labels"])) for r in rows]

    def names(self) -> list[str]:
        """Distinct metric names."""
        return [r[0] for r in self.store.query("SELECT DISTINCT name FROM ts_series ORDER BY 1")]

    def match(self, name: str, labels: dict[str, str] | None = None
              ) -> list[tuple[int, dict[str, str]]]:
        """Series ids of ``name`` whose labels include every pair of ``labels``."""
        want = {str(k): str(v) for k, v in (labels or {}).items()}
        out = []
        for r in self.store.query("SELECT id, labels FROM ts_series WHERE name=? ORDER BY id",
                                  (name,)):
            have = json.loads(r["labels"])
            if all(have.get(k) == v for k, v in want.items()):
                out.append((int(r["id"]), have))
        return out

    # -- reads ------------------------------------------------------------------------------
    def query(self, name: str, labels: dict[str, str] | None = None, start: float | None = None,
              end: float | None = None, resolution: str = "auto") -> list[Sample]:
        """Samples of the matching series merged per timestamp/bucket, oldest first.

        ``resolution``: ``"raw"``, ``"1m"``, ``"1h"`` or ``"auto"`` (the coarsest resolution
        giving at least ``auto_min_points`` buckets over the range).
        """
        ids = [sid for sid, _ in self.match(name, labels)]
        return self.query_ids(ids, start, end, resolution)

    def query_series(self, name: str, labels: dict[str, str] | None = None,
                     start: float | None = None, end: float | None = None,
                     resolution: str = "auto") -> list[tuple[dict[str, str], list[Sample]]]:
        """Like :meth:`query` but one (labels, samples) entry per matching series."""
        return [(lab, self.query_ids([sid], start, end, resolution))
                for sid, lab in self.match(name, labels)]

    def query_ids(self, ids: Sequence[int], start: float | None, end: float | None,
                  resolution: str = "auto") -> list[Sample]:
        """Samples of the given series ids (see :meth:`query`)."""
        if not ids:
            return []
        end = self.clock.now() if end is None else float(end)
        if start is None:
            start = self._oldest(ids)
            if start is None:
                return []
        res = self.pick_resolution(start, end) if resolution == "auto" else resolution
        if res == "raw":
            return self._raw(ids, start, end)
        if res not in RESOLUTIONS:
            raise _invalid("resolution", f"{resolution!r} is not one of "
                           "'auto', 'raw', '1m', '1h'")
        return self._rolled(ids, RESOLUTIONS[res], start, end)

    def query_many(self, ids: Sequence[int], start: float, end: float,
                   resolution: str = "raw") -> dict[int, tuple[list[float], list[float]]]:
        """Batched read of many series at once: per series id, (timestamps, values) over
        ``[start, end]``, the same as ``query_ids([id], start, end, resolution)`` gives for
        each id alone (values are the bucket averages at ``"1m"`` / ``"1h"``), but in one
        query per table for all ids. Series without data in the range are left out."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        out: dict[int, tuple[list[float], list[float]]] = {}

        def add(rows: list[Any]) -> None:
            for sid, group in groupby(rows, key=itemgetter(0)):
                _, ts, values = zip(*group)
                series = out.setdefault(sid, ([], []))
                series[0].extend(ts)
                series[1].extend(values)

        if resolution == "raw":
            add(self.store.query_tuples(
                f"SELECT series_id, ts, value FROM ts_raw WHERE series_id IN ({marks}) "
                f"AND ts>=? AND ts<=? ORDER BY series_id, ts", [*ids, start, end]))
            return out
        if resolution not in RESOLUTIONS:
            raise _invalid("resolution", f"{resolution!r} is not one of 'raw', '1m', '1h'")
        res = RESOLUTIONS[resolution]
        first = math.floor(start / res) * res
        done = self._done_until(res)
        if done is not None and done > first:
            add(self.store.query_tuples(
                f"SELECT series_id, bucket, sum/count FROM ts_rollup WHERE series_id IN "
                f"({marks}) AND resolution=? AND bucket>=? AND bucket<=? "
                f"ORDER BY series_id, bucket", [*ids, res, first, min(end, done - 1e-9)]))
        tail_from = max(first, done) if done is not None else first
        if end >= tail_from:
            add(self.store.query_tuples(
                f"SELECT series_id, CAST(CAST(ts/{res} AS INTEGER)*{res} AS REAL) b, "
                f"AVG(value) FROM ts_raw WHERE series_id IN ({marks}) AND ts>=? AND ts<=? "
                f"GROUP BY series_id, b ORDER BY series_id, b", [*ids, tail_from, end]))
        return out

    def pick_resolution(self, start: float, end: float) -> str:
        """The coarsest resolution with at least ``auto_min_points`` buckets in the range."""
        span = max(0.0, end - start)
        for name, secs in sorted(RESOLUTIONS.items(), key=lambda kv: -kv[1]):
            if span / secs >= self.auto_min_points:
                return name
        return "raw"

    def latest(self, name: str, labels: dict[str, str] | None = None
               ) -> list[tuple[dict[str, str], float, float]]:
        """The newest raw point of each matching series: (labels, ts, value)."""
        out = []
        for sid, lab in self.match(name, labels):
            row = self.store.query_one("SELECT ts, value FROM ts_raw WHERE series_id=? "
                                       "ORDER BY ts DESC LIMIT 1", (sid,))
            if row is not None:
                out.append((lab, float(row["ts"]), float(row["value"])))
        return out

    def latest_all(self, max_age: float | None = None, now: float | None = None
                   ) -> list[tuple[str, dict[str, str], float, float]]:
        """The newest raw point of every series: (name, labels, ts, value), name-ordered.

        With ``max_age``, series whose newest point is older than ``now - max_age`` are left
        out (stale series disappear from exports instead of repeating an old value).
        """
        rows = self.store.query(
            "SELECT s.name, s.labels, r.ts, r.value FROM ts_series s CROSS JOIN ts_raw r "
            "ON r.rowid = (SELECT rowid FROM ts_raw WHERE series_id=s.id ORDER BY ts DESC "
            "LIMIT 1) ORDER BY s.name, s.labels")
        cutoff = None if max_age is None else (self.clock.now() if now is None else now) - max_age
        return [(r[0], json.loads(r[1]), float(r[2]), float(r[3])) for r in rows
                if cutoff is None or r[2] >= cutoff]

    def _oldest(self, ids: Sequence[int]) -> float | None:
        marks = ",".join("?" * len(ids))
        row = self.store.query_one(
            f"SELECT MIN(t) FROM (SELECT MIN(ts) t FROM ts_raw WHERE series_id IN ({marks}) "
            f"UNION ALL SELECT MIN(bucket) FROM ts_rollup WHERE series_id IN ({marks}))",
            [*ids, *ids])
        return None if row is None or row[0] is None else float(row[0])

    def _raw(self, ids: Sequence[int], start: float, end: float) -> list[Sample]:
        marks = ",".join("?" * len(ids))
        if len(ids) == 1:
            sql = ("SELECT ts, value, value, value, 1 FROM ts_raw WHERE series_id=? "
                   "AND ts>=? AND ts<=? ORDER BY ts")
        else:
            sql = (f"SELECT ts, AVG(value), MIN(value), MAX(value), COUNT(*) FROM ts_raw "
                   f"WHERE series_id IN ({marks}) AND ts>=? AND ts<=? GROUP BY ts ORDER BY ts")
        return [Sample(*r) for r in self.store.query(sql, [*ids, start, end])]

    def _rolled(self, ids: Sequence[int], res: int, start: float, end: float) -> list[Sample]:
        marks = ",".join("?" * len(ids))
        first = math.floor(start / res) * res
        done = self._done_until(res)
        out: list[Sample] = []
        if done is not None and done > first:
            stop = min(end, done - 1e-9)
            rows = self.store.query(
                f"SELECT bucket, SUM(sum)/SUM(count), MIN(min), MAX(max), SUM(count) "
                f"FROM ts_rollup WHERE series_id IN ({marks}) AND resolution=? "
                f"AND bucket>=? AND bucket<=? GROUP BY bucket ORDER BY bucket",
                [*ids, res, first, stop])
            out = [Sample(*r) for r in rows]
        tail_from = max(first, done) if done is not None else first
        if end >= tail_from:
            rows = self.store.query(
                f"SELECT CAST(ts/{res} AS INTEGER)*{res} b, AVG(value), MIN(value), MAX(value), "
                f"COUNT(*) FROM ts_raw WHERE series_id IN ({marks}) AND ts>=? AND ts<=? "
                f"GROUP BY b ORDER BY b", [*ids, tail_from, end])
            out.extend(Sample(float(r[0]), *r[1:]) for r in rows)
        return out

    def _done_until(self, res: int) -> float | None:
        row = self.store.query_one("SELECT done_until FROM ts_rollup_state WHERE resolution=?",
                                   (res,))
        return None if row is None or row[0] is None else float(row[0])

    # -- rollups ----------------------------------------------------------------------------
    def rollup(self, now: float | None = None) -> dict[str, int]:
        """Compute the 1 m and 1 h rollups of every closed bucket; return buckets written."""
        now = self.clock.now() if now is None else float(now)
        with self.store.transaction() as conn:
            return {"1m": self._roll(conn, 60, now, None),
                    "1h": self._roll(conn, 3600, now, 60)}

    def _roll(self, conn: Any, res: int, now: float, source: int | None) -> int:
        row = conn.execute("SELECT done_until, dirty_from FROM ts_rollup_state "
                           "WHERE resolution=?", (res,)).fetchone()
        done, dirty = (row[0], row[1]) if row is not None else (None, None)
        end = math.floor(now / res) * res
        if done is None:
            done = self._source_oldest(conn, source)
            if done is None:
                return 0
        start = math.floor(min(done, dirty if dirty is not None else done) / res) * res
        written = 0
        if start < end:
            written = conn.execute(self._roll_sql(res, source), (start, end)).rowcount
        conn.execute("INSERT INTO ts_rollup_state(resolution, done_until, dirty_from) "
                     "VALUES (?,?,NULL) ON CONFLICT(resolution) DO UPDATE SET "
                     "done_until=excluded.done_until, dirty_from=NULL",
                     (res, max(end, start)))
        return int(written)

    @staticmethod
    def _source_oldest(conn: Any, source: int | None) -> float | None:
        if source is None:
            row = conn.execute("SELECT MIN(ts) FROM ts_raw").fetchone()
        else:
            row = conn.execute("SELECT MIN(bucket) FROM ts_rollup WHERE resolution=?",
                               (source,)).fetchone()
        return None if row[0] is None else float(row[0])

    @staticmethod
    def _roll_sql(res: int, source: int | None) -> str:
        if source is None:
            return (f"INSERT OR REPLACE INTO ts_rollup SELECT r.series_id, {res}, "
                    f"CAST(r.ts/{res} AS INTEGER)*{res} b, AVG(r.value), MIN(r.value), "
                    f"MAX(r.value), SUM(r.value), COUNT(*) FROM ts_series s CROSS JOIN ts_raw r "
                    f"ON r.series_id=s.id AND r.ts>=?1 AND r.ts<?2 GROUP BY r.series_id, b")
        return (f"INSERT OR REPLACE INTO ts_rollup SELECT r.series_id, {res}, "
                f"CAST(r.bucket/{res} AS INTEGER)*{res} b, SUM(r.sum)/SUM(r.count), "
                f"MIN(r.min), MAX(r.max), SUM(r.sum), SUM(r.count) FROM ts_series s "
                f"CROSS JOIN ts_rollup r ON r.series_id=s.id AND r.resolution={source} "
                f"AND r.bucket>=?1 AND r.bucket<?2 GROUP BY r.series_id, b")

    # -- retention --------------------------------------------------------------------------
    def apply_retention(self, retention: dict[str, Any], now: float | None = None
                        ) -> dict[str, int]:
        """Delete raw points / rollup buckets older than ``now - retention[resolution]``.

        ``retention`` maps ``"raw"``, ``"1m"``, ``"1h"`` to seconds or duration strings; a
        point or bucket whose timestamp is strictly below the cutoff is deleted, one at the
        cutoff is kept. Returns the number of rows deleted per resolution.
        """
        unknown = sorted(set(retention) - {"raw", *RESOLUTIONS})
        if unknown:
            raise _invalid("retention", f"keys {unknown} are not among 'raw', '1m', '1h'")
        now = self.clock.now() if now is None else float(now)
        ids = [r[0] for r in self.store.query("SELECT id FROM ts_series")]
        out: dict[str, int] = {}
        with self.store.transaction() as conn:
            for key, keep in retention.items():
                cutoff = now - parse_duration(keep)
                if key == "raw":
                    cur = conn.executemany("DELETE FROM ts_raw WHERE series_id=? AND ts<?",
                                           [(i, cutoff) for i in ids])
                else:
                    cur = conn.executemany(
                        "DELETE FROM ts_rollup WHERE series_id=? AND resolution=? AND bucket<?",
                        [(i, RESOLUTIONS[key], cutoff) for i in ids])
                out[key] = max(0, cur.rowcount)
        return out
