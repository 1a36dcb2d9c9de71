"""The streaming anomaly detector: one per metric, each score from past samples only.

For every new value ``x``:

1. **Surprise.** The change ``d = x - previous`` is scored against the last ``window``
   changes: ``z_d = (d - median) / (1.4826 · MAD)``; the surprise is ``log(1 + |z_d|)``. A
   step, a spike or a sudden change of rhythm surprises; a metric that stays at its new level
   stops surprising at once. (Scoring changes rather than levels scored higher on the NAB
   corpus in our runs: about 50 against 41-44 for the level, standard profile.)
2. **Anomaly likelihood** (after Numenta's post-processing): the mean surprise of the last
   ``short_window`` samples is compared with the mean and standard deviation of the surprises
   of the ``likelihood_window`` samples before; the score is the normal CDF of that
   standardised difference, in [0, 1]. A series that is always noisy needs a bigger surprise
   than a quiet one. A change that leaves the level within ``change_sigma`` robust σ of the
   rolling median scores 0 (the product opens no event for it, and its alarm would only start
   a suppression that hides what follows).
3. **Records.** A value above the max or below the min of the last ``record_window`` values
   (once ``window`` values are in) scores 1 outright, like the "spatial anomaly" of Numenta's
   NAB detector: a level never seen in hours is news even when its change is not.
4. **One alarm per event.** A score at or above ``threshold`` is a detection; the next
   ``suppress`` samples score 0, so a five-minute spike is one alarm, not thirty, unless the
   sample is a record whose level deviation ``|z|`` reaches ``escalation`` times that of the
   detection (a bigger event is not hidden behind a small one). The suppression lasts until
   the level is back within ``change_sigma`` robust σ of the median (for at most another
   ``suppress`` samples): an event that outlasts it is still one alarm.

NAB, first subset (24 server-metric files, standard / low-FP / low-FN): 66.7 / 52.9 /
73.7 with the policy parameters (suppress 100 without the hold until the level is back: 65.7 /
51.0 / 73.1; with the hold: 66.1 / 51.7 / 73.3; suppress 120 without it: 66.4; suppress 135
and 140 with it: 64.7 and 62.7, a cliff; change likelihood alone, before records: 50.2 / 28.8 / 60.0;
records without any escalation: 65.4 / 50.0 / 72.9, but a noise record hid a later spike;
escalation on any detection's |z| instead of records only: 63.2 / 45.4 / 71.4, as growing
spikes and near-flat series, whose robust σ is tiny, escalated outside the labelled windows;
``change_sigma`` 1.5-2.5 scores 65.6-65.8, 0 scores 65.1, 3 drops to 62.2).

37 NAB files in four categories (``bench/nab_eval.py``, one scorer for ours and the published
result files; ours scored on its own detections, theirs at their best corpus threshold):
standard 68.5 overall with the pooled search's pick (threshold 0.99995, suppress 60,
change_sigma 1.5, likelihood_window 2000: realAWSCloudwatch 62.7, realAdExchange 66.3,
realKnownCause 70.5, realTraffic 80.5) beside HTM 71.3 and ARTime 72.4; low-FP 58.1, low-FN
74.2 (the policy now holds the maximin pick, below). Before the 37-file search (the 24-file policy: threshold 0.9997, suppress 120, change_sigma 2, likelihood_window
800): 67.8. Leave-one-category-out (54 settings of threshold × suppress × change_sigma ×
likelihood_window, chosen on three categories, scored on the fourth): mean 65.7 beside HTM 70.4
and ARTime 70.4 (their thresholds chosen the same way) — below the bar; we win on
realKnownCause (70.5 vs 55.5 / 63.1) and lose on realAWSCloudwatch (59.1 vs 73.4 / 69.5),
realAdExchange (66.3 vs 70.2; ARTime 61.9) and realTraffic (67.0 vs 82.4 / 87.2). Tried on the
37 files and not kept: ``window`` 150 / 600 (67.4 / 65.2), ``record_window`` 2000 / 8000
(66.8 / 68.1), ``short_window`` 3 (62.3), ``escalation`` 3 (68.5, no change), a record margin
of 2-20 % of the window's range (53.6-68.8: 2 % helps realTraffic, +6, and hurts
realKnownCause, -6). The losses are spread over files (missed windows in ec2_cpu 24ae8d /
fe7f93, ec2_network_in 5abac7, exchange-2_cpc, speed_7578; extra alarms on drifting AWS
series), not one failure mode.

Second round (LOCO standard mean is the figure that decides; 65.7 before it):

- **Ensemble with an HTM-style likelihood on prediction error** (exponential smoothing,
  α 0.1 / 0.5 / 1; error over the mean absolute error of the last 300 rows, log; mean of the
  last 10 against the 2000 before, normal tail), OR-ed into our detections with its own
  suppression (120 / 400 rows), thresholds 0.9999-0.999999999 in the search: alone it scores
  6-14; the LOCO search never picks it (65.7, no change), on all 37 files 68.4-68.5.
- **Ensemble with a sustained-shift channel** (mean of the last 6 / 24 rows against mean and
  σ of the 2000 before, |z| 4 / 6 / 9, suppression 300): 67.4-68.5 on all 37 files, never
  above the detector alone.
- **Selection rule of the search** (same 54 settings): the pooled raw score of the three
  training categories lets realAWSCloudwatch (the most windows) decide, and its pick falls to
  67.0 on held-out realTraffic; choosing the setting with the best *worst-category* score
  (maximin) instead: LOCO standard 68.1 (realAWSCloudwatch 60.6, realAdExchange 72.7,
  realKnownCause 72.1, realTraffic 67.0), low-FP 57.0 → 59.1, low-FN 71.8 → 72.9; the mean
  of the category scores instead of the minimum: 65.7. Kept: the policy is the maximin pick
  on all 37 files (threshold 0.9997, suppress 120, change_sigma 2, likelihood_window 800,
  the 24-file values): 67.8 overall (62.7 → 63.2, 66.3 → 72.7, 70.5 → 72.1, 80.5 → 67.0)
  against 68.5 for the pooled pick (low-FP 56.4, low-FN 73.8 against 58.1 / 74.2), the price
  of a setting that does not lean on one category. The rule was one of three compared on the held-out folds, so 68.1 is not a fully
  unseen figure. Both are still below HTM (70.4 LOCO, 71.3 overall).
- Not tried: river (not installed; its HalfSpaceTrees runs in Python well above 50 µs per
  row), stumpy / ruptures (batch methods: a causal discord or change-point score needs a
  re-run per row).

The same class runs in the product (per metric, parameters from policy
``health.anomaly.stream``) and in ``bench/nab_eval.py`` on the NAB corpus.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["StreamParams", "StreamResult", "StreamingDetector"]

_MAD_TO_SIGMA = 1.4826
_REFRESH = 10
_ONSET_GAP = 10  # rows between alarm candidates that start a new onset (_Recurrence)
_MAX_ONSETS = 256


@dataclass(frozen=True)
class StreamParams:
    """Detector parameters (policy ``health.anomaly.stream``)."""

    window: int
    min_samples: int
    short_window: int
    likelihood_window: int
    threshold: float
    suppress: int
    record_window: int
    escalation: float
    change_sigma: float
    hold: int = 0
    season_repeats: int = 0
    season_tolerance: float = 0.03
    season_periods: tuple[int, int] = (24, 2100)

    @classmethod
    def from_policy(cls, p: dict[str, Any]) -> StreamParams:
        lo, hi = p["season_periods"]
        return cls(int(p["window"]), int(p["min_samples"]), int(p["short_window"]),
                   int(p["likelihood_window"]), float(p["threshold"]), int(p["suppress"]),
                   int(p["record_window"]), float(p["escalation"]), float(p["change_sigma"]),
                   int(p["hold"]), int(p["season_repeats"]), float(p["season_tolerance"]),
                   (int(lo), int(hi)))


@dataclass(frozen=True)
class StreamResult:
    """One update: likelihood ``score`` in [0, 1], ``detected``, signed robust ``z``."""

    score: float
    detected: bool
    z: float
    baseline: float | None


class _Ring:
    """A fixed-size float buffer (numpy): append is O(1); order is kept only for ``ordered``."""

    def __init__(self, size: int, *, keep_sorted: bool = False) -> None:
        self.buf = np.empty(max(1, size))
        self.keep_sorted = keep_sorted
        self.sorted: list[float] = []  # the same values, sorted (exact rolling median)
        self.scale: float | None = None  # cached robust σ, refreshed every ``_REFRESH`` appends
        self.age = 0
        self.n = 0
        self.i = 0
        self.sum = 0.0
        self.sumsq = 0.0

    def __len__(self) -> int:
        return self.n

    def append(self, x: float) -> None:
        if self.n == len(self.buf):
            old = float(self.buf[self.i])
            self.sum -= old
            self.sumsq -= old * old
            if self.keep_sorted:
                del self.sorted[bisect_left(self.sorted, old)]
        if self.keep_sorted:
            insort(self.sorted, x)
        self.buf[self.i] = x
        self.sum += x
        self.sumsq += x * x
        self.i = (self.i + 1) % len(self.buf)
        self.n = min(self.n + 1, len(self.buf))
        if self.i == 0:  # once per lap: recompute, so rounding never accumulates
            self.sum = float(self.buf[: self.n].sum())
            self.sumsq = float(np.dot(self.buf[: self.n], self.buf[: self.n]))

    def mean_std(self) -> tuple[float, float]:
        mean = self.sum / self.n
        return mean, math.sqrt(max(0.0, self.sumsq / self.n - mean * mean))

    def view(self) -> np.ndarray:
        return self.buf[: self.n]

    def last(self) -> float:
        return float(self.buf[(self.i - 1) % len(self.buf)])

    def ordered(self) -> list[float]:
        if self.n < len(self.buf):
            return self.buf[: self.n].tolist()
        return np.concatenate([self.buf[self.i:], self.buf[: self.i]]).tolist()


class _Extremes:
    """Running max and min of the last ``size`` values (monotonic deques: O(1) amortised)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hi: deque[tuple[int, float]] = deque()  # (sequence number, value), values falling
        self.lo: deque[tuple[int, float]] = deque()  # values rising
        self.n = 0

    def is_record(self, x: float) -> bool:
        """``x`` above the max or below the min of the window (needs a non-flat window)."""
        if not self.hi or self.hi[0][1] == self.lo[0][1]:
            return False
        return x > self.hi[0][1] or x < self.lo[0][1]

    def append(self, x: float) -> None:
        while self.hi and self.hi[-1][1] <= x:
            self.hi.pop()
        while self.lo and self.lo[-1][1] >= x:
            self.lo.pop()
        self.hi.append((self.n, x))
        self.lo.append((self.n, x))
        self.n += 1
        for q in (self.hi, self.lo):
            if q[0][0] <= self.n - 1 - self.size:
                q.popleft()

    def state(self) -> dict[str, Any]:
        return {"n": self.n, "hi": [list(e) for e in self.hi], "lo": [list(e) for e in self.lo]}

    def load(self, state: dict[str, Any]) -> None:
        self.n = int(state["n"])
        cut = self.n - self.size
        self.hi = deque((int(i), float(v)) for i, v in state["hi"] if i >= cut)
        self.lo = deque((int(i), float(v)) for i, v in state["lo"] if i >= cut)


class _Recurrence:
    """Onsets of alarm candidates; is a new one the next beat of a periodic series of them?

    An onset is a row scoring at or above the threshold with none in the ``_ONSET_GAP`` rows
    before it (a spike several rows long is one onset). A candidate at ``t`` recurs when, for
    some period ``P`` in ``periods``, onsets sit at ``t - P``, ``t - 2P`` … ``t - repeats·P``
    (each within ``tolerance · P`` rows): a daily job's spike, not news.
    """

    def __init__(self, repeats: int, tolerance: float, periods: tuple[int, int]) -> None:
        self.repeats, self.tolerance, self.periods = repeats, tolerance, periods
        self.onsets: deque[int] = deque(maxlen=_MAX_ONSETS)
        self.last = -(1 << 62)

    def recurs(self, t: int) -> bool:
        lo, hi = self.periods
        for a in self.onsets:
            period = t - a
            if not lo <= period <= hi:
                continue
            tol = max(2.0, self.tolerance * period)
            if all(any(abs(b - (a - r * period)) <= tol for b in self.onsets)
                   for r in range(1, self.repeats)):
                return True
        return False

    def add(self, t: int) -> None:
        if t - self.last > _ONSET_GAP:
            self.onsets.append(t)
            while self.onsets[0] < t - (self.repeats + 1) * self.periods[1]:
                self.onsets.popleft()
        self.last = t


class StreamingDetector:
    """Change surprise → anomaly likelihood → detection with suppression.

    Each result also carries ``z``, the level's robust deviation from the rolling median of the
    last ``window`` values: the health monitor uses it for severity and to tell when an event
    is over (the baseline adapts, so a metric stuck at a new level stops alarming).
    """

    def __init__(self, params: StreamParams) -> None:
        self.p = params
        self.values = _Ring(params.window, keep_sorted=True)
        self.changes = _Ring(params.window, keep_sorted=True)
        self.history = _Ring(params.likelihood_window)  # older surprises
        self.recent: deque[float] = deque()  # the last ``short_window`` surprises
        self.extremes = _Extremes(params.record_window)
        self.since_detection = params.suppress + 1
        self.detected_z = 0.0  # |z| of the last detection (a record escalates past it)
        self.extended = 0  # samples the current suppression has been held past ``suppress``
        self.seen = 0
        self.recurrence = _Recurrence(params.season_repeats, params.season_tolerance,
                                      params.season_periods)

    def update(self, x: float) -> StreamResult:
        """Score ``x`` against the past, then add it to the history."""
        z, base = _robust_z(self.values, x, self.p.min_samples)
        d = x - self.values.last() if len(self.values) else None
        zd = None if d is None else _robust_z(self.changes, d, self.p.min_samples)[0]
        record = self.extremes.n >= self.p.window and self.extremes.is_record(x)
        self.extremes.append(x)
        self.values.append(x)
        if d is not None:
            self.changes.append(d)
        self.seen += 1
        if z is None or zd is None:
            return StreamResult(0.0, False, z or 0.0, base)
        self.recent.append(math.log1p(abs(zd)))
        if len(self.recent) > self.p.short_window:
            self.history.append(self.recent.popleft())
        if record:
            score = 1.0
        elif abs(z) < self.p.change_sigma:  # a change that leaves the level near its median
            score = 0.0
        else:
            score = self._likelihood()
        recurs = False
        if self.p.season_repeats and score >= self.p.threshold:
            recurs = self.recurrence.recurs(self.seen)
            self.recurrence.add(self.seen)
        self.since_detection += 1
        if (self.since_detection == self.p.suppress and abs(z) >= self.p.change_sigma
                and self.extended < self.p.hold):  # the event is not over: hold
            self.since_detection -= 1
            self.extended += 1
        if (self.since_detection <= self.p.suppress
                and not (record and abs(z) >= self.p.escalation * self.detected_z)):
            return StreamResult(0.0, False, z, base)
        detected = score >= self.p.threshold and not recurs
        if detected:
            self.since_detection = 0
            self.extended = 0
            self.detected_z = max(abs(z), 1.0)  # in robust σ: at least one
        return StreamResult(score, detected, z, base)

    def _likelihood(self) -> float:
        if len(self.history) < 10:
            return 0.0
        mean, sd = self.history.mean_std()
        recent = sum(self.recent) / len(self.recent)
        return 0.5 * math.erfc(-(recent - mean) / max(sd, 1e-6) / math.sqrt(2))

    # -- persistence ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain-data state (for the persisted model)."""
        return {"values": self.values.ordered(), "changes": self.changes.ordered(),
                "history": self.history.ordered(), "recent": list(self.recent),
                "since_detection": self.since_detection, "seen": self.seen,
                "detected_z": self.detected_z, "extended": self.extended,
                "extremes": self.extremes.state(),
                "onsets": list(self.recurrence.onsets), "last_onset": self.recurrence.last}

    @classmethod
    def from_state(cls, params: StreamParams, state: dict[str, Any]) -> StreamingDetector:
        d = cls(params)
        for ring, key in ((d.values, "values"), (d.changes, "changes"), (d.history, "history")):
            for x in state[key][-len(ring.buf):]:
                ring.append(x)
        d.recent.extend(state["recent"][-params.short_window:])
        d.since_detection = int(state["since_detection"])
        d.seen = int(state["seen"])
        d.detected_z = float(state.get("detected_z", 0.0))
        d.extended = int(state.get("extended", 0))
        if "extremes" in state:  # a model saved before records were scored has none
            d.extremes.load(state["extremes"])
        d.recurrence.onsets.extend(int(t) for t in state.get("onsets", []))
        d.recurrence.last = int(state.get("last_onset", d.recurrence.last))
        return d


def _robust_z(window: _Ring, x: float, min_samples: int) -> tuple[float | None, float | None]:
    """``(x - median) / (1.4826 · MAD)`` over ``window`` (floored so a flat window works).

    The median is exact (kept sorted); the MAD scale is recomputed every ``_REFRESH`` samples
    (it moves slowly over a window of hundreds), which keeps an update near 30 µs.
    """
    n = len(window)
    if n < min_samples:
        return None, None
    srt = window.sorted
    med = srt[n // 2] if n % 2 else 0.5 * (srt[n // 2 - 1] + srt[n // 2])
    window.age += 1
    if window.scale is None or window.age >= _REFRESH:
        w = window.view()
        mad = _median(np.abs(w - med)) * _MAD_TO_SIGMA
        window.scale = max(mad, 1e-3 * (srt[-1] - srt[0]), 1e-9 * max(abs(med), 1.0))
        window.age = 0
    return (x - med) / window.scale, med


def _median(w: np.ndarray) -> float:
    """Median by partition (several times faster than ``np.median`` on small arrays)."""
    k = len(w) // 2
    if len(w) % 2:
        return float(np.partition(w, k)[k])
    part = np.partition(w, (k - 1, k))
    return 0.5 * (float(part[k - 1]) + float(part[k]))
