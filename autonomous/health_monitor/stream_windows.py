"""The windows the streaming detector keeps: rolling values, running extremes, alarm onsets.

* ``Ring``: a fixed-size float buffer with running sums and (optionally) its values kept
  sorted, for an exact rolling median; ``robust_z`` scores a value against it
  (``(x - median) / (1.4826 · MAD)``, the MAD refreshed every ``REFRESH`` appends).
* ``Extremes``: running max and min of the last ``size`` values (a record is news).
* ``Recurrence``: onsets of alarm candidates, and whether a new one is the next beat of a
  periodic series of them (a daily job's spike).

All O(1) or O(log n) per sample, so an update stays within the detector's budget.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from typing import Any

import numpy as np

__all__ = ["Extremes", "Recurrence", "Ring", "median", "robust_z"]

_MAD_TO_SIGMA = 1.4826
_REFRESH = 10
_ONSET_GAP = 10  # rows between alarm candidates that start a new onset (Recurrence)
_MAX_ONSETS = 256


class Ring:
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


class Extremes:
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


class Recurrence:
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


def robust_z(window: Ring, x: float, min_samples: int) -> tuple[float | None, float | None]:
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
        mad = median(np.abs(w - med)) * _MAD_TO_SIGMA
        window.scale = max(mad, 1e-3 * (srt[-1] - srt[0]), 1e-9 * max(abs(med), 1.0))
        window.age = 0
    return (x - med) / window.scale, med


def median(w: np.ndarray) -> float:
    """Median by partition (several times faster than ``np.median`` on small arrays)."""
    k = len(w) // 2
    if len(w) % 2:
        return float(np.partition(w, k)[k])
    part = np.partition(w, (k - 1, k))
    return 0.5 * (float(part[k - 1]) + float(part[k]))
