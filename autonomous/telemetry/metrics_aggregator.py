"""MetricsAggregator: collect metrics in batches, query, aggregate over windows, export.

    agg = MetricsAggregator(TimeSeriesStore(store, clock), clock)
    agg.collect_metric("service.probe_latency_ms", 12.0, {"service": "nexus"})
    agg.flush()                                      # also done when the buffer is full
    agg.get_metrics("service.probe_latency_ms", {"service": "nexus"}, start, end)
    agg.aggregate("service.probe_latency_ms", "p95", window=60, start=start, end=end)

Points are buffered and written in one transaction per batch through the one time-series
store (:mod:`autonomous.store.timeseries`). ``export_to_timeseries_db`` renders the Prometheus
exposition (always available) or pushes InfluxDB line protocol (optional extra
``influxdb-client``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from autonomous.core.clock import Clock
from autonomous.core.errors import Problem, ValidationFailed
from autonomous.core.stats import percentile
from autonomous.store.timeseries import RESOLUTIONS, Point, Sample, TimeSeriesStore

__all__ = ["AGGREGATIONS", "READ_RESOLUTIONS", "MetricsAggregator"]

# What a read may ask for: the store's rollups, its raw points, or "auto" (the coarsest that
# covers the range).
READ_RESOLUTIONS = ("auto", "raw", *RESOLUTIONS)
# One answer holds at most this many windows (a step too small for its range is a 422).
MAX_WINDOWS = 10_000
AGGREGATIONS = ("avg", "min", "max", "sum", "count", "rate", "p50", "p95", "p99")


def _bad(path: str, message: str) -> ValidationFailed:
    return ValidationFailed([Problem("", 0, path, message)])


class MetricsAggregator:
    """The metrics pipeline every subsystem writes through."""

    def __init__(self, ts: TimeSeriesStore, clock: Clock, *, batch_size: int = 1000) -> None:
        self.ts = ts
        self.clock = clock
        self.batch_size = batch_size
        self._buffer: list[Point] = []
        self._lock = threading.Lock()
        self.written = 0

    # -- collection -------------------------------------------------------------------------
    def collect_metric(self, name: str, value: float, labels: dict[str, str] | None = None,
                       ts: float | None = None) -> None:
        """Buffer one point (timestamp defaults to now); flushes when the batch is full."""
        p = Point(name, value, self.clock.now() if ts is None else ts, dict(labels or {}))
        with self._lock:
            self._buffer.append(p)
            full = len(self._buffer) >= self.batch_size
        if full:
            self.flush()

    def collect_many(self, points: Sequence[Point]) -> int:
        """Write a prepared batch right away (after anything buffered); returns points stored."""
        self.flush()
        n = self.ts.write(points)
        self.written += n
        return n

    def flush(self) -> int:
        """Write the buffered points in one transaction; returns how many were stored."""
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        n = self.ts.write(batch)
        self.written += n
        return n

    # -- queries ----------------------------------------------------------------------------
    def list_metrics(self) -> list[dict[str, Any]]:
        """Every metric name with its label sets."""
        self.flush()
        out: dict[str, list[dict[str, str]]] = {}
        for name, labels in self.ts.series():
            out.setdefault(name, []).append(labels)
        return [{"name": n, "series": s} for n, s in out.items()]

    def get_metrics(self, name: str, labels: dict[str, str] | None = None,
                    start: float | None = None, end: float | None = None,
                    resolution: str = "auto") -> list[dict[str, Any]]:
        """One entry per matching series: ``{"labels", "samples": [Sample...]}``."""
        self.flush()
        return [{"labels": lab, "samples": samples}
                for lab, samples in self.ts.query_series(name, labels, start, end, resolution)]

    def aggregate(self, name: str, fn: str, *, window: float | None = None,
                  labels: dict[str, str] | None = None, start: float | None = None,
                  end: float | None = None, by_series: bool = False
                  ) -> list[dict[str, Any]]:
        """``fn`` over ``[start, end]`` (or the last ``window`` seconds), optionally per window.

        ``fn`` is one of avg, min, max, sum, count, rate (per second, counter resets
        handled), p50, p95, p99. With ``window`` and ``start`` the range is cut into
        consecutive windows and one value is returned per window. Percentiles and rate use
        raw points; the others use the coarsest resolution that covers the range exactly.
        Returns ``[{"labels", "start", "end", "value"}]`` (value None when there is no data).
        """
        if fn not in AGGREGATIONS:
            raise _bad("aggregation", f"{fn!r} is not one of {', '.join(AGGREGATIONS)}")
        self.flush()
        end = self.clock.now() if end is None else end
        if start is None:
            if window is None:
                raise _bad("window", "give a window (seconds) or a start time")
            start, window = end - window, None
        edges = _windows(start, end, window)
        targets = ([(lab, [sid]) for sid, lab in self.ts.match(name, labels)] if by_series
                   else [(labels or {}, [sid for sid, _ in self.ts.match(name, labels)])])
        out = []
        for lab, ids in targets:
            for a, b in edges:
                out.append({"labels": lab, "start": a, "end": b,
                            "value": self._one(ids, fn, a, b)})
        return out

    def _one(self, ids: list[int], fn: str, start: float, stop: float) -> float | None:
        """``fn`` over ``[start, stop)``."""
        if not ids:
            return None
        end = stop - 1e-6
        if fn in ("rate", "p50", "p95", "p99"):
            raw = self.ts.query_ids(ids, start, end, "raw") if len(ids) == 1 else \
                [s for i in ids for s in self.ts.query_ids([i], start, end, "raw")]
            if fn == "rate":
                return _rate(ids, raw) if len(ids) == 1 else self._multi_rate(ids, start, end)
            return percentile([s.value for s in raw], float(fn[1:]))
        return _combine(fn, self.ts.query_ids(ids, start, end, _exact_resolution(start, stop)))

    def _multi_rate(self, ids: list[int], start: float, end: float) -> float | None:
        rates = [_rate([i], self.ts.query_ids([i], start, end, "raw")) for i in ids]
        known = [r for r in rates if r is not None]
        return sum(known) if known else None

    # -- maintenance ------------------------------------------------------------------------
    def rollup(self, now: float | None = None) -> dict[str, int]:
        """Flush, then compute closed 1 m / 1 h rollups."""
        self.flush()
        return self.ts.rollup(now)

    def apply_retention(self, retention: dict[str, Any], now: float | None = None
                        ) -> dict[str, int]:
        """Delete what is past retention (see :meth:`TimeSeriesStore.apply_retention`)."""
        return self.ts.apply_retention(retention, now)

    def export_to_timeseries_db(self, target: str = "prometheus", **options: Any) -> Any:
        """Export the latest values: ``"prometheus"`` → (body, content_type) exposition text;
        ``"influxdb"`` → points written (needs ``url``; optional ``org``, ``bucket``, ``token``,
        ``start``, ``end``)."""
        self.flush()
        if target == "prometheus":
            from autonomous.telemetry.exposition import render_registry

            return render_registry(self)
        if target == "influxdb":
            from autonomous.telemetry.influx_export import export_influx

            return export_influx(self, **options)
        raise _bad("target", f"{target!r} is not one of 'prometheus', 'influxdb'")


def _windows(start: float, end: float, window: float | None) -> list[tuple[float, float]]:
    if window is None:
        return [(start, end)]
    if window <= 0:
        raise _bad("window", f"{window!r} must be > 0 seconds")
    if (end - start) / window > MAX_WINDOWS:
        raise _bad("window", f"{window!r} s cuts [{start}, {end}] into more than "
                   f"{MAX_WINDOWS} windows: give a larger step or a shorter range")
    edges, a = [], start
    while a < end:
        edges.append((a, min(a + window, end)))
        a += window
    return edges or [(start, end)]


def _exact_resolution(start: float, end: float) -> str:
    """The coarsest resolution whose buckets align with both range ends."""
    for name, secs in (("1h", 3600), ("1m", 60)):
        if start % secs == 0 and end % secs == 0 and end - start >= secs:
            return name
    return "raw"


def _combine(fn: str, samples: list[Sample]) -> float | None:
    if not samples:
        return None
    if fn == "count":
        return float(sum(s.count for s in samples))
    if fn == "min":
        return min(s.min for s in samples)
    if fn == "max":
        return max(s.max for s in samples)
    total = sum(s.value * s.count for s in samples)
    return total if fn == "sum" else total / sum(s.count for s in samples)


def _rate(_: list[int], raw: list[Sample]) -> float | None:
    """Per-second increase of a counter over raw points; a drop is a reset (Prometheus rule)."""
    if len(raw) < 2:
        return None
    inc = 0.0
    for a, b in pairwise(raw):
        inc += b.value - a.value if b.value >= a.value else b.value
    span = raw[-1].ts - raw[0].ts
    return inc / span if span > 0 else None
