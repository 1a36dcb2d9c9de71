"""Failure prediction: when will a metric cross its threshold at the current rate?

``predict_failure(ts, values, threshold, policy, now)`` fits a robust line (Theil-Sen: the
median of pairwise slopes, so a short burst moves it little) over two horizons, the recent one
(``short_horizon_seconds``) and a longer one (``long_horizon_seconds``). A prediction is made
only when both slopes head towards the threshold and agree within the ``agreement`` ratio; one
busy minute tilts neither fit much, and a burst that does tilt the short one disagrees with the
long one, so it does not predict a full disk. Nor does a short history: the series must
span ``min_history_seconds`` within the long horizon first (a start's warm-up, RAM rising
while the services load, is not extrapolated for hours). The estimate uses the recent fit:
the level now is the fitted value at ``now`` (median of ``v - slope·(t - now)``),
``eta = (threshold - level) / slope``; the interval comes from the slope's confidence
interval. Series are binned to at most ``_MAX_POINTS`` per horizon so a
fit costs milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = ["Prediction", "predict_failure", "robust_fit"]

_MAX_POINTS = 240


@dataclass(frozen=True)
class Prediction:
    """A metric expected to reach ``threshold`` in ``eta_seconds`` (interval ``[low, high]``)."""

    metric: str
    threshold: float
    level: float
    slope_per_hour: float
    eta_seconds: float
    eta_low_seconds: float
    eta_high_seconds: float | None
    crossing_at: float
    long_slope_per_hour: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Fit:
    slope: float
    level: float  # fitted value at ``now``
    slope_low: float
    slope_high: float


def _bin(t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(t) <= _MAX_POINTS:
        return t, v
    edges = np.linspace(t[0], t[-1], _MAX_POINTS + 1)
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, _MAX_POINTS - 1)
    counts = np.bincount(idx, minlength=_MAX_POINTS)
    keep = counts > 0
    tb = np.bincount(idx, weights=t, minlength=_MAX_POINTS)[keep] / counts[keep]
    vb = np.bincount(idx, weights=v, minlength=_MAX_POINTS)[keep] / counts[keep]
    return tb, vb


def robust_fit(t: np.ndarray, v: np.ndarray, now: float, confidence: float) -> _Fit:
    """Theil-Sen slope (per second), its interval and the fitted level at ``now``."""
    tb, vb = _bin(t, v)
    slope, low, high = _theil_sen(tb - now, vb, confidence)
    level = float(np.median(vb - slope * (tb - now)))
    return _Fit(slope, level, low, high)


def _theil_sen(x: np.ndarray, y: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Median pairwise slope and its confidence interval (Sen 1968; as ``scipy.stats``
    ``theilslopes``, without importing SciPy into the operator)."""
    i, j = np.triu_indices(len(x), 1)
    dx = x[j] - x[i]
    keep = dx != 0
    slopes = np.sort((y[j] - y[i])[keep] / dx[keep])
    n, m = len(x), len(slopes)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    sigma = math.sqrt(n * (n - 1) * (2 * n + 5) / 18.0)
    ru = min(m - 1, round((m + z * sigma) / 2.0))
    rl = max(0, round((m - z * sigma) / 2.0) - 1)
    return float(np.median(slopes)), float(slopes[rl]), float(slopes[ru])


def predict_failure(metric: str, ts: list[float] | np.ndarray, values: list[float] | np.ndarray,
                    threshold: float, policy: dict[str, Any], now: float) -> Prediction | None:
    """The crossing of ``threshold`` (rising) predicted from the trend, or None (see module)."""
    t, v = np.asarray(ts, float), np.asarray(values, float)
    recent = t[t >= now - policy["long_horizon_seconds"]]
    if len(recent) == 0 or np.ptp(recent) < policy["min_history_seconds"]:
        return None  # too short a history: both fits would see the same few minutes
    fits = []
    for horizon in (policy["short_horizon_seconds"], policy["long_horizon_seconds"]):
        sel = t >= now - horizon
        if int(sel.sum()) < policy["min_samples"] or np.ptp(t[sel]) <= 0:
            return None
        fits.append(robust_fit(t[sel], v[sel], now, policy["confidence"]))
    short, long_ = fits
    if short.slope <= 0 or long_.slope <= 0:
        return None
    if max(short.slope, long_.slope) / min(short.slope, long_.slope) > policy["agreement"]:
        return None
    gap = threshold - short.level
    if gap <= 0 or float(v[int(np.argmax(t))]) >= threshold:
        return None  # already there: a threshold breach, not a prediction ("in ~0 s")
    eta = gap / short.slope
    if eta > policy["max_eta_seconds"]:
        return None
    low = max(0.0, gap / short.slope_high) if short.slope_high > 0 else eta
    high = gap / short.slope_low if short.slope_low > 0 else None
    return Prediction(metric, threshold, round(short.level, 4), short.slope * 3600.0,
                      round(eta, 1), round(min(low, eta), 1),
                      None if high is None else round(max(high, eta), 1), now + eta,
                      long_.slope * 3600.0)
