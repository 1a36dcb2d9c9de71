"""The streaming anomaly detector: one per metric, each score from past samples only.

For every new value ``x``:

1. **Surprise.** The change ``d = x - previous`` is scored against the last ``window``
   changes: ``z_d = (d - median) / (1.4826 · MAD)``; the surprise is ``log(1 + |z_d|)``. A
   step, a spike or a sudden change of rhythm surprises; a metric that stays at its new level
   stops surprising at once. (Scoring changes rather than levels won on the NAB corpus:
   52 against 41 for the level, standard profile.)
2. **Anomaly likelihood** (after Numenta's post-processing): the mean surprise of the last
   ``short_window`` samples is compared with the mean and standard deviation of the surprises
   of the ``likelihood_window`` samples before; the score is the normal CDF of that
   standardised difference, in [0, 1]. A series that is always noisy needs a bigger surprise
   than a quiet one.
3. **One alarm per event.** A score at or above ``threshold`` is a detection; the next
   ``suppress`` samples score 0, so a five-minute spike is one alarm, not thirty.

The same class runs in the product (per metric, parameters from policy
``health.anomaly.stream``) and in ``bench/nab_eval.py`` on the NAB corpus.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["StreamParams", "StreamingDetector", "StreamResult"]

_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class StreamParams:
    """Detector parameters (policy ``health.anomaly.stream``)."""

    window: int
    min_samples: int
    short_window: int
    likelihood_window: int
    threshold: float
    suppress: int

    @classmethod
    def from_policy(cls, p: dict[str, Any]) -> "StreamParams":
        return cls(int(p["window"]), int(p["min_samples"]), int(p["short_window"]),
                   int(p["likelihood_window"]), float(p["threshold"]), int(p["suppress"]))


@dataclass(frozen=True)
class StreamResult:
    """One update: likelihood ``score`` in [0, 1], ``detected``, signed robust ``z``."""

    score: float
    detected: bool
    z: float
    baseline: float | None


class StreamingDetector:
    """Change surprise → anomaly likelihood → detection with suppression.

    Each result also carries ``z``, the level's robust deviation from the rolling median of the
    last ``window`` values: the health monitor uses it for severity and to tell when an event
    is over (the baseline adapts, so a metric stuck at a new level stops alarming).
    """

    def __init__(self, params: StreamParams) -> None:
        self.p = params
        self.values: deque[float] = deque(maxlen=params.window)
        self.changes: deque[float] = deque(maxlen=params.window)
        self.surprises: deque[float] = deque(maxlen=params.likelihood_window
                                             + params.short_window)
        self.since_detection = params.suppress + 1
        self.seen = 0

    def update(self, x: float) -> StreamResult:
        """Score ``x`` against the past, then add it to the history."""
        z, base = _robust_z(self.values, x, self.p.min_samples)
        d = x - self.values[-1] if self.values else None
        zd = None if d is None else _robust_z(self.changes, d, self.p.min_samples)[0]
        self.values.append(x)
        if d is not None:
            self.changes.append(d)
        self.seen += 1
        if z is None or zd is None:
            return StreamResult(0.0, False, z or 0.0, base)
        self.surprises.append(math.log1p(abs(zd)))
        score = self._likelihood()
        self.since_detection += 1
        if self.since_detection <= self.p.suppress:
            return StreamResult(0.0, False, z, base)
        detected = score >= self.p.threshold
        if detected:
            self.since_detection = 0
        return StreamResult(score, detected, z, base)

    def _likelihood(self) -> float:
        k = self.p.short_window
        s = self.surprises
        if len(s) < k + 10:
            return 0.0
        arr = np.fromiter(s, float, len(s))
        hist, recent = arr[:-k], arr[-k:]
        sd = float(hist.std())
        if sd < 1e-6:
            sd = 1e-6
        return 0.5 * math.erfc(-(float(recent.mean()) - float(hist.mean())) / sd / math.sqrt(2))

    # -- persistence ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain-data state (for the persisted model)."""
        return {"values": list(self.values), "changes": list(self.changes),
                "surprises": list(self.surprises),
                "since_detection": self.since_detection, "seen": self.seen}

    @classmethod
    def from_state(cls, params: StreamParams, state: dict[str, Any]) -> "StreamingDetector":
        d = cls(params)
        d.values.extend(state["values"])
        d.changes.extend(state["changes"])
        d.surprises.extend(state["surprises"])
        d.since_detection = int(state["since_detection"])
        d.seen = int(state["seen"])
        return d


def _robust_z(window: deque[float], x: float, min_samples: int
              ) -> tuple[float | None, float | None]:
    """``(x - median) / (1.4826 · MAD)`` over ``window`` (floored so a flat window works)."""
    if len(window) < min_samples:
        return None, None
    w = np.fromiter(window, float, len(window))
    med = float(np.median(w))
    mad = float(np.median(np.abs(w - med))) * _MAD_TO_SIGMA
    span = float(w.max() - w.min())
    scale = max(mad, 1e-3 * span, 1e-9 * max(abs(med), 1.0))
    return (x - med) / scale, med
