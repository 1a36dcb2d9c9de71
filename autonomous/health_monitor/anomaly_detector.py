"""AnomalyDetector: streaming robust z-score per metric plus an Isolation Forest over all of
them, turned into anomaly *events* (start, peak, duration, metric, severity).

* Per metric, a :class:`StreamingDetector` (change surprise → anomaly likelihood) opens an
  event when it fires while the level is at least ``open_sigma`` robust σ from its rolling
  median (a surprising wiggle inside the normal range is not an anomaly). The event stays open while the metric's robust ``|z|`` is
  above ``anomaly_sigma`` and closes after ``event_gap_seconds`` of quiet, so a five-minute
  spike is one anomaly; the rolling baseline adapts, so a metric stuck at a new level stops
  alarming once the window has moved on.
* An Isolation Forest (scikit-learn, fitted in a child process and scored in array form, see
  ``forest``) trained on the stored history (``history_days``) scores
  the vector of all watched metrics; ``consecutive`` outlier samples in a row open a
  ``multivariate`` event naming the metrics that deviate most.
* Severity from the peak ``|z|``: ``severa`` at ``severity_sigma.severa``, ``moderada`` at
  ``severity_sigma.moderada``, else ``leve``.

``train`` warms the streams and fits the forest; the model (forest, columns, stream states) is
persisted in ``health_models`` and restored by ``load`` after a restart. Events are kept in
``health_anomalies``.
"""

from __future__ import annotations

import pickle
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from autonomous.core.clock import Clock
from autonomous.health_monitor.forest import FastForest, ForestFitter
from autonomous.health_monitor.prediction import Prediction, predict_failure
from autonomous.health_monitor.stream_detector import StreamingDetector, StreamParams
from autonomous.store import Store

__all__ = ["SEVERITIES", "AnomalyDetector", "AnomalyEvent", "AnomalyReport", "severity_of"]

SEVERITIES = ("leve", "moderada", "severa")
_MODEL = "anomaly"
Series = tuple[list[float] | np.ndarray, list[float] | np.ndarray]


def severity_of(z: float, severity_sigma: dict[str, float]) -> str:
    """leve / moderada / severa from a peak deviation in robust σ."""
    z = abs(z)
    if z >= severity_sigma["severa"]:
        return "severa"
    return "moderada" if z >= severity_sigma["moderada"] else "leve"


@dataclass
class AnomalyEvent:
    """One anomaly: a metric (or ``multivariate``) out of its baseline from start to end."""

    id: str
    metric: str
    start: float
    peak_ts: float
    peak_value: float
    peak_z: float
    baseline: float | None
    score: float
    severity: str
    last_seen: float
    end: float | None = None
    metrics_affected: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.end is None

    @property
    def duration(self) -> float:
        return (self.end if self.end is not None else self.last_seen) - self.start

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "active": self.active, "duration_seconds": self.duration}


@dataclass(frozen=True)
class AnomalyReport:
    """The outcome of one ``detect``: any open anomaly, its worst severity, metrics, score."""

    detected: bool
    severity: str | None
    metrics_affected: list[str]
    score: float
    new_events: list[AnomalyEvent] = field(default_factory=list)
    isolation_score: float | None = None


class AnomalyDetector:
    """Streaming + Isolation Forest anomaly detection with persisted model and events."""

    def __init__(self, store: Store, clock: Clock, policy: dict[str, Any], sigma: float) -> None:
        self.store, self.clock = store, clock
        self.streams: dict[str, StreamingDetector] = {}
        self.open: dict[str, AnomalyEvent] = {}
        self.forest: FastForest | None = None
        self.columns: list[str] = []
        self.trained_at: float | None = None
        self._if_streak = 0
        self.configure(policy, sigma)

    def configure(self, policy: dict[str, Any], sigma: float) -> None:
        """Apply the policy in force (stream parameters changed → streams keep their data)."""
        self.policy, self.sigma = policy, sigma
        params = StreamParams.from_policy(policy["stream"])
        for key, d in list(self.streams.items()):
            if d.p != params:
                self.streams[key] = StreamingDetector.from_state(params, d.state())
        self.params = params

    # -- training ---------------------------------------------------------------------------
    def train(self, history: dict[str, Series], recent: dict[str, Series] | None = None,
              fitter: ForestFitter | None = None) -> dict[str, Any]:
        """Fit the forest (in ``fitter``'s child process, or a new one) while the streams are
        warmed from ``recent`` (default ``history``) here; persist."""
        cfg = self.policy["isolation_forest"]
        columns, matrix = _align(history)
        matrix = matrix[-int(cfg["max_samples"]):]
        with ExitStack() as stack:
            pending = None
            if len(matrix) >= cfg["min_samples"] and columns:
                fitter = fitter or stack.enter_context(ForestFitter())
                pending = fitter.submit(matrix, int(cfg["n_estimators"]),
                                        float(cfg["contamination"]))
            for key, (_, values) in (recent or history).items():
                d = StreamingDetector(self.params)
                for x in list(values)[-(self.params.window + self.params.likelihood_window):]:
                    d.update(float(x))
                d.since_detection = self.params.suppress + 1
                self.streams[key] = d
            self.forest = pending.result() if pending is not None else None
        self.columns = columns if pending is not None else []
        self.trained_at = self.clock.now()
        self.save()
        return {"metrics": len(self.streams), "forest_rows": len(matrix),
                "columns": len(self.columns), "trained_at": self.trained_at}

    # -- detection --------------------------------------------------------------------------
    def detect(self, current: dict[str, float], ts: float | None = None) -> AnomalyReport:
        """Feed one sample of every watched metric; open, extend and close events."""
        ts = self.clock.now() if ts is None else ts
        new: list[AnomalyEvent] = []
        zs: dict[str, float] = {}
        best = 0.0
        for key, value in current.items():
            d = self.streams.get(key)
            if d is None:
                d = self.streams[key] = StreamingDetector(self.params)
            r = d.update(float(value))
            zs[key] = r.z
            best = max(best, r.score)
            ev = self._track(key, float(value), r.z, r.baseline, r.score, r.detected, ts)
            if ev is not None:
                new.append(ev)
        iso = self._isolation(current, zs, ts, new)
        self._close_quiet(ts)
        active = list(self.open.values())
        worst = max((SEVERITIES.index(e.severity) for e in active), default=None)
        return AnomalyReport(bool(active), None if worst is None else SEVERITIES[worst],
                             sorted({m for e in active for m in (e.metrics_affected or [e.metric])}),
                             best, new, iso)

    def _track(self, key: str, value: float, z: float, baseline: float | None, score: float,
               fired: bool, ts: float) -> AnomalyEvent | None:
        ev = self.open.get(key)
        if ev is None:
            if not fired or abs(z) < self.policy["open_sigma"]:
                return None
            ev = AnomalyEvent(uuid.uuid4().hex[:12], key, ts, ts, value, z, baseline, score,
                              severity_of(z, self.policy["severity_sigma"]), ts)
            self.open[key] = ev
            self._persist(ev)
            return ev
        if abs(z) >= self.sigma or fired:
            ev.last_seen = ts
            if abs(z) > abs(ev.peak_z):
                ev.peak_ts, ev.peak_value, ev.peak_z = ts, value, z
                ev.severity = max(ev.severity, severity_of(z, self.policy["severity_sigma"]),
                                  key=SEVERITIES.index)
                self._persist(ev)
        return None

    def _isolation(self, current: dict[str, float], zs: dict[str, float], ts: float,
                   new: list[AnomalyEvent]) -> float | None:
        if self.forest is None or any(c not in current for c in self.columns):
            return None
        score = self.forest.decision(np.array([current[c] for c in self.columns]))
        self._if_streak = self._if_streak + 1 if score < 0 else 0
        if self._if_streak >= int(self.policy["isolation_forest"]["consecutive"]):
            top = sorted(self.columns, key=lambda c: -abs(zs.get(c, 0.0)))[:3]
            ev = self.open.get("multivariate")
            if ev is None:
                z = max((zs.get(c, 0.0) for c in top), key=abs, default=0.0)
                ev = AnomalyEvent(uuid.uuid4().hex[:12], "multivariate", ts, ts, score, z, None,
                                  -score, severity_of(z, self.policy["severity_sigma"]), ts,
                                  metrics_affected=top)
                self.open["multivariate"] = ev
                self._persist(ev)
                new.append(ev)
            ev.last_seen = ts
        return score

    def _close_quiet(self, ts: float) -> None:
        gap = float(self.policy["event_gap_seconds"])
        for key, ev in list(self.open.items()):
            if ts - ev.last_seen > gap:
                ev.end = ev.last_seen
                del self.open[key]
                self._persist(ev)

    def predict_failure(self, metric: str, trend: Series, threshold: float,
                        policy: dict[str, Any], now: float | None = None) -> Prediction | None:
        """Time until ``metric`` crosses ``threshold`` from its trend (see ``prediction``)."""
        ts, values = trend
        return predict_failure(metric, ts, values, threshold, policy,
                               self.clock.now() if now is None else now)

    # -- persistence ------------------------------------------------------------------------
    def _persist(self, ev: AnomalyEvent) -> None:
        self.store.execute(
            "INSERT INTO health_anomalies(id, metric, start, end_ts, peak_ts, peak_value, "
            "peak_z, baseline, score, severity, last_seen, metrics) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
            "end_ts=excluded.end_ts, peak_ts=excluded.peak_ts, peak_value=excluded.peak_value, "
            "peak_z=excluded.peak_z, severity=excluded.severity, last_seen=excluded.last_seen",
            (ev.id, ev.metric, ev.start, ev.end, ev.peak_ts, ev.peak_value, ev.peak_z,
             ev.baseline, ev.score, ev.severity, ev.last_seen,
             ",".join(ev.metrics_affected)))

    def events(self, since: float, limit: int = 500) -> list[AnomalyEvent]:
        """Anomalies that started or were still open after ``since``, newest first."""
        rows = self.store.query(
            "SELECT * FROM health_anomalies WHERE start >= ? OR end_ts IS NULL OR end_ts >= ? "
            "ORDER BY start DESC LIMIT ?", (since, since, limit))
        return [AnomalyEvent(r["id"], r["metric"], r["start"], r["peak_ts"], r["peak_value"],
                             r["peak_z"], r["baseline"], r["score"], r["severity"],
                             r["last_seen"], r["end_ts"],
                             [m for m in r["metrics"].split(",") if m]) for r in rows]

    def save(self) -> None:
        """Persist forest, columns and stream states (survives a restart)."""
        blob = pickle.dumps({"forest": self.forest, "columns": self.columns,
                             "streams": {k: d.state() for k, d in self.streams.items()},
                             "open": {k: asdict(e) for k, e in self.open.items()},
                             "trained_at": self.trained_at})
        self.store.execute(
            "INSERT INTO health_models(name, trained_at, saved_at, blob) VALUES (?,?,?,?) "
            "ON CONFLICT(name) DO UPDATE SET trained_at=excluded.trained_at, "
            "saved_at=excluded.saved_at, blob=excluded.blob",
            (_MODEL, self.trained_at, self.clock.now(), blob))

    def load(self) -> bool:
        """Restore the persisted model; False when none was saved."""
        row = self.store.query_one("SELECT blob FROM health_models WHERE name=?", (_MODEL,))
        if row is None:
            return False
        data = pickle.loads(row["blob"])
        self.forest, self.columns = data["forest"], data["columns"]
        self.trained_at = data["trained_at"]
        self.streams = {k: StreamingDetector.from_state(self.params, s)
                        for k, s in data["streams"].items()}
        self.open = {k: AnomalyEvent(**e) for k, e in data["open"].items()}
        return True


def _align(history: dict[str, Series]) -> tuple[list[str], np.ndarray]:
    """Rows (timestamps) where every metric has a value; columns sorted by key (a repeated
    timestamp keeps its last value)."""
    columns = sorted(k for k, (ts, _) in history.items() if len(ts))
    if not columns:
        return [], np.empty((0, 0))
    series = []
    for k in columns:
        ts, values = np.asarray(history[k][0], float), np.asarray(history[k][1], float)
        order = np.argsort(ts, kind="stable")
        series.append((ts[order], values[order]))
    common = series[0][0]
    for ts, _ in series[1:]:
        common = np.intersect1d(common, ts)
    common = np.unique(common)
    if not common.size:
        return columns, np.empty((0, len(columns)))
    return columns, np.column_stack(
        [values[np.searchsorted(ts, common, side="right") - 1] for ts, values in series])
