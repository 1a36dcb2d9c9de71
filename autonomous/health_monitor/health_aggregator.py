"""HealthAggregator: system metrics + service health + anomalies → GlobalHealth, persisted.

``cycle()`` is one step of the 10-s loop (run by the health controller): sample the host (the
process sweep and TCP probe on their own slower cadences), read the services' figures (their
probes run in their own loops), write every reading to the time-series store, feed the anomaly
detector, and build :class:`GlobalHealth`. Every ``report_interval_seconds`` it also predicts
failures, stores a report row and, unless the telemetry controller does it already
(``telemetry_runs()`` true), rolls the series up and applies the retention from config
(``settings.telemetry.retention``); the model is retrained every
``retrain_interval_seconds``. The API reads only what the last cycle left (``latest``): a
request never samples.

Global score, documented formula: ``(w_sys·system + w_svc·services) / (w_sys + w_svc)`` over
the components that were measured (``services`` is the mean score of the services scored so
far; null, with its reason, when none is declared or none was probed yet), minus
``anomaly_penalty[severity]`` per active anomaly, clamped to 0–100; null when nothing was
measured.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from autonomous.core.clock import Clock
from autonomous.health_monitor.anomaly_detector import AnomalyDetector, Series
from autonomous.health_monitor.forest import ForestFitter
from autonomous.health_monitor.metrics import matches, metric_key, parse_key, resource_usage
from autonomous.health_monitor.recommendations import recommendations
from autonomous.health_monitor.service_health import ServiceHealth
from autonomous.health_monitor.service_points import ServicePoints, service_readings
from autonomous.health_monitor.system_metrics import SystemMetrics
from autonomous.store import Store
from autonomous.store.timeseries import Point, TimeSeriesStore

__all__ = ["THRESHOLD_OF", "GlobalHealth", "HealthAggregator"]

THRESHOLD_OF = {"cpu.percent": "cpu_percent", "ram.percent": "ram_percent",
                "swap.percent": "swap_percent", "disk.percent": "disk_percent",
                "gpu.utilization_percent": "gpu_percent", "gpu.vram_percent": "vram_percent"}


@dataclass
class GlobalHealth:
    """The whole picture: score 0–100, per-component detail, anomalies, recommendations."""

    ts: float
    score: float | None  # None: nothing measured (no resource, no service scored)
    components: dict[str, Any]
    anomalies: list[dict[str, Any]]
    recommendations: list[dict[str, Any]]
    predictions: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class HealthAggregator:
    """Owns SystemMetrics, ServiceHealth and AnomalyDetector; serves their latest state."""

    def __init__(self, store: Store, clock: Clock, *, policy: Callable[[], dict[str, Any]],
                 specs: Callable[[], dict[str, Any]], retention: Callable[[], dict | None],
                 observed: Callable[[], dict[str, dict[str, Any]] | None] | None = None,
                 system: SystemMetrics | None = None,
                 telemetry_runs: Callable[[], bool] | None = None,
                 interval: Callable[[], float | None] | None = None) -> None:
        """``observed``: the services controller's observed state (``None`` while it does not
        run); ``telemetry_runs``: true while the telemetry controller rolls up and applies the
        retention (the aggregator then leaves both to it); ``interval``: the configured
        seconds between full samples (None: the policy's fallback)."""
        self.store, self.clock = store, clock
        self._interval = interval or (lambda: None)
        self._telemetry_runs = telemetry_runs or (lambda: False)
        self._policy, self._specs, self._retention = policy, specs, retention
        pol = policy()
        self.system = system or SystemMetrics(clock)
        self.services = ServiceHealth(clock, specs=specs, policy=policy, observed=observed)
        self.detector = AnomalyDetector(store, clock, pol["anomaly"], pol["anomaly_sigma"])
        self.ts = TimeSeriesStore(store, clock)
        self.latest: GlobalHealth | None = None
        self.latest_services: dict[str, Any] = {}
        self.predictions: list[dict[str, Any]] = []
        self.bottlenecks: list[dict[str, Any]] = []
        self.points = ServicePoints(self.services)
        # standalone, cycle() also runs report() on its cadence; under the operator the
        # health controller turns this off and runs report() as a scheduled job
        self.report_in_cycle = True
        self._due: dict[str, float] = {}
        self.cycles = 0
        self._started_mono: float | None = None
        self._cpuinfo: asyncio.Future[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Restore (or train) the anomaly model and start the probes. The CPU model is read
        once, ``sampling.startup_delay_seconds`` after this (see ``_slow_paths``)."""
        self._started_mono = self.clock.monotonic()
        if not self.detector.load() and self.ts.names():
            # nothing stored yet (first start): nothing to learn from, no child to spawn
            await asyncio.to_thread(self.train)
        self._due["retrain"] = self.clock.monotonic()
        self.services.ensure_running()

    def _read_cpu_info(self) -> None:
        try:
            self.system.load_cpu_info()
        except Exception as exc:  # noqa: BLE001 - the model stays null with the reason
            self.system.cpu_info_error = f"py-cpuinfo failed: {type(exc).__name__}: {exc}"

    async def close(self) -> None:
        self.detector.save()
        await self.services.close()
        self.system.close()

    def sample_interval(self) -> float:
        """Seconds between full samples: the health controller's configured interval
        (``interval()``), else ``sampling.fallback_interval_seconds``."""
        got = self._interval()
        return float(got) if got else float(
            self._policy()["sampling"]["fallback_interval_seconds"])

    def _is_due(self, what: str, every: float) -> bool:
        now = self.clock.monotonic()
        if now - self._due.get(what, -1e18) >= every:
            self._due[what] = now
            return True
        return False

    # -- the loop step ----------------------------------------------------------------------
    async def cycle(self, *, sample: bool = True) -> GlobalHealth:
        """One step (see module docstring); ``sample=False`` refreshes services only."""
        pol = self._policy()
        self.detector.configure(pol["anomaly"], pol["anomaly_sigma"])
        self.services.ensure_running()
        sampled = sample or self.system.latest is None
        if sampled:
            await self._slow_paths(pol["sampling"])
            snap = self.system.sample()
            self.latest_services = self.services.snapshot()
            self._record(snap, pol)
        else:  # a service event in between: its figures are written at once
            self.latest_services = self.services.snapshot()
            self.ts.write(self.points.since_last(self.latest_services, self.clock.now()))
        if self.report_in_cycle and self._is_due("report",
                                                  pol["sampling"]["report_interval_seconds"]):
            self.report(pol)
        self.bottlenecks = self.services.get_bottlenecks(
            self.system.problems(pol["thresholds"]), self.latest_services)
        self.latest = self._global(pol)
        if sampled and self.latest.score is not None:  # this sample's score, at its time
            self.ts.write([Point("health.score", self.latest.score, self.latest.ts, {})])
        self.cycles += 1
        return self.latest

    async def _slow_paths(self, sampling: dict[str, Any]) -> None:
        started = self._started_mono
        if started is not None:  # running (start() was called)
            if self.clock.monotonic() - started < sampling["startup_delay_seconds"]:
                return  # the stack is starting: the slow paths wait (network probe included)
            if self._cpuinfo is None:  # once, off the loop
                self._cpuinfo = asyncio.get_running_loop().run_in_executor(
                    None, self._read_cpu_info)
        if self._is_due("processes", sampling["process_interval_seconds"]):
            await asyncio.to_thread(self.system.sample_processes, sampling["top_processes"])
        if self._is_due("network", sampling["network_interval_seconds"]):
            targets = sampling["network_targets"] or [
                f"{s.host}:{s.port}" for s in self._specs().values() if s.port]
            await self.system.probe_network(targets, timeout=sampling["network_timeout_seconds"],
                                            attempts=sampling["network_attempts"])

    def readings(self, snap: dict[str, Any]) -> list[tuple[str, dict[str, str], float]]:
        """System readings plus each service's figures, as (name, labels, value)."""
        return self.system.flat(snap) + self.service_readings()

    def service_readings(self) -> list[tuple[str, dict[str, str], float]]:
        """Each service's figures of the last cycle (:func:`service_readings`)."""
        return service_readings(self.latest_services)

    def _record(self, snap: dict[str, Any], pol: dict[str, Any]) -> None:
        now = snap["ts"]
        readings = self.readings(snap)
        points = [Point(n, v, now, lab) for n, lab, v in self.system.flat(snap)]
        points += self.points.since_last(self.latest_services, now)
        self.ts.write(points)
        watched = {metric_key(n, lab): v for n, lab, v in readings
                   if matches(metric_key(n, lab), pol["anomaly"]["metrics"])}
        self.detector.detect(watched, now)

    # -- slower cadence ---------------------------------------------------------------------
    def report(self, pol: dict[str, Any] | None = None) -> None:
        """Predict, store a report row, roll up and apply retention (unless telemetry does),
        save / retrain the model."""
        pol = pol or self._policy()
        self.update_predictions(pol)
        if self.latest is not None and self.latest.score is not None:
            self.store.execute("INSERT OR REPLACE INTO health_reports VALUES (?, ?, ?)",
                               (self.clock.now(), self.latest.score,
                                json.dumps(self.latest.as_dict(), default=str)))
        if not self._telemetry_runs():
            self.ts.rollup()
            retention = self._retention()
            if retention:
                self.ts.apply_retention(retention)
        if self._is_due("retrain", pol["anomaly"]["retrain_interval_seconds"]):
            self.train(pol)
        else:
            self.detector.save()

    def update_predictions(self, pol: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Predicted threshold crossings of the watched metrics (robust trend, two horizons)."""
        pol = pol or self._policy()
        pred, now = pol["prediction"], self.clock.now()
        out = []
        for name, key in THRESHOLD_OF.items():
            if not matches(name, pred["metrics"]):
                continue
            for labels, samples in self.ts.query_series(
                    name, start=now - pred["long_horizon_seconds"], end=now, resolution="1m"):
                if not samples:
                    continue
                p = self.detector.predict_failure(
                    metric_key(name, labels), ([s.ts + 30 for s in samples],
                                               [s.value for s in samples]),
                    pol["thresholds"][key], pred, now)
                if p is not None:
                    out.append(p.as_dict())
        self.predictions = sorted(out, key=lambda p: p["eta_seconds"])
        return self.predictions

    def train(self, pol: dict[str, Any] | None = None) -> dict[str, Any]:
        """Fit the anomaly model on the stored history (1-min rollups over ``history_days``)."""
        pol = pol or self._policy()
        an, now = pol["anomaly"], self.clock.now()
        history: dict[str, Series] = {}
        recent: dict[str, Series] = {}
        span = (an["stream"]["window"] + an["stream"]["likelihood_window"]) * \
            self.sample_interval()
        keys = {sid: key for name in self.ts.names() for sid, labels in self.ts.match(name)
                if matches(key := metric_key(name, labels), an["metrics"])}
        with ForestFitter() as fitter:  # the child starts while the history is read
            ids = sorted(keys)
            rolled = self.ts.query_many(ids, now - an["history_days"] * 86400, now, "1m")
            raw = self.ts.query_many(ids, now - span, now, "raw")
            for sid, key in keys.items():
                history[key] = rolled.get(sid, ([], []))
                recent[key] = raw.get(sid, ([], []))
            return self.detector.train(history, recent, fitter=fitter)

    # -- the picture ------------------------------------------------------------------------
    def _global(self, pol: dict[str, Any]) -> GlobalHealth:
        th, sc = pol["thresholds"], pol["score"]
        sys_score = self.system.get_health_score(th, sc)
        svc_scores = {n: m["score"] for n, m in self.latest_services.items()}
        scored = [v for v in svc_scores.values() if v is not None]
        svc = float(np.mean(scored)) if scored else None
        svc_reason = None if scored else ("no service declared" if not svc_scores
                                          else "no service probed yet")
        w = sc["global_weights"]
        parts = [(w["system"], sys_score), (w["services"], svc)]
        weight = sum(wt for wt, v in parts if v is not None)
        base = (sum(wt * v for wt, v in parts if v is not None) / weight) if weight else None
        active = [e.as_dict() for e in self.detector.open.values()]
        penalty = sum(sc["anomaly_penalty"][e["severity"]] for e in active)
        problems = self.system.problems(th)
        components = {
            "system": {"score": sys_score, "healthy": not problems, "problems": problems},
            "services": {"score": None if svc is None else round(svc, 2),
                         "reason": svc_reason, "per_service": svc_scores,
                         "bottlenecks": self.bottlenecks},
            "anomalies": {"active": len(active), "penalty": penalty}}
        recs = recommendations(problems, self.latest_services, self.predictions, active,
                               self.bottlenecks, self.system.processes, th,
                               now=self.clock.now())
        score = None if base is None else round(min(100.0, max(0.0, base - penalty)), 2)
        return GlobalHealth(self.clock.now(), score, components, active, recs,
                            list(self.predictions))

    # -- what the API serves ----------------------------------------------------------------
    def comprehensive(self) -> dict[str, Any] | None:
        """The latest GlobalHealth as a dict: the same (read-only) dict until the next cycle
        replaces ``latest`` (a deep ``asdict`` per API request was a sixth of its CPU)."""
        latest = self.latest
        if latest is None:
            return None
        cached = getattr(self, "_dict_of_latest", None)
        if cached is None or cached[0] is not latest:
            cached = (latest, latest.as_dict())
            self._dict_of_latest = cached
        return cached[1]

    def usage(self) -> dict[str, tuple[float | None, str]]:
        """Resource use per metric key with the policy threshold key it is held against."""
        snap = self.system.latest
        if snap is None:
            return {}
        keys = {"cpu": "cpu_percent", "ram": "ram_percent", "swap": "swap_percent",
                "disk": "disk_percent", "gpu": "gpu_percent", "vram": "vram_percent"}
        return {metric: (value, keys[res]) for res, metrics in resource_usage(snap).items()
                for metric, value in metrics.items()}

    def system_snapshot(self) -> dict[str, Any] | None:
        snap = self.system.latest
        if snap is None:
            return None
        pol = self._policy()
        return {**snap, "healthy": self.system.is_healthy(pol["thresholds"]),
                "score": self.system.get_health_score(pol["thresholds"], pol["score"])}

    def services_snapshot(self) -> dict[str, Any]:
        return {"services": self.latest_services, "bottlenecks": self.bottlenecks,
                "dependencies": self.services.get_dependency_health()}

    def anomalies(self, since: float) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.detector.events(since)]

    def history(self, metric: str, days: float, resolution: str = "auto") -> list[Any]:
        """Samples of one metric key over the last ``days`` (rollups when the span is long)."""
        name, labels = parse_key(metric)
        now = self.clock.now()
        return self.ts.query(name, labels or None, start=now - days * 86400, end=now,
                             resolution=resolution)

    def get_historical_trend(self, days: float = 7) -> dict[str, Any]:
        """Hourly (per-minute under ``sampling.trend_hourly_from_days``) rollups of the
        ``sampling.trend_metrics``, with slopes."""
        sampling = self._policy()["sampling"]
        res = "1h" if days >= sampling["trend_hourly_from_days"] else "1m"
        now = self.clock.now()
        out: dict[str, Any] = {}
        for name in sampling["trend_metrics"]:
            for labels, samples in self.ts.query_series(name, start=now - days * 86400, end=now,
                                                        resolution=res):
                out[metric_key(name, labels)] = _trend(samples)
        return {"days": days, "resolution": res, "metrics": out}


def _trend(samples: list[Any]) -> dict[str, Any]:
    pts = [{"ts": s.ts, "avg": s.value, "min": s.min, "max": s.max, "count": s.count}
           for s in samples]
    slope = None
    if len(samples) >= 3:
        t = np.array([s.ts for s in samples])
        v = np.array([s.value for s in samples])
        slope = float(np.polyfit((t - t[0]) / 86400.0, v, 1)[0])
    return {"points": pts, "slope_per_day": slope}
