"""Second opinions on the streaming detector's alarm candidates: each from past rows only.

The detector (``stream_detector``) raises a candidate; an opinion, updated on every scored
row, says whether it agrees. A candidate the opinion does not back is no detection (and
starts no suppression). Families (policy ``opinion``, its ``opinion_k`` and ``opinion_arg``):

* ``none``: always agrees (the detector alone).
* ``cusum``: two-sided CUSUM on the detector's robust level z, ``S⁺ = max(0, S⁺ + z - drift)``,
  ``S⁻ = max(0, S⁻ - z - drift)`` (``drift`` = ``opinion_arg``); agrees when
  ``max(S⁺, S⁻) ≥ k``: the level has been off for a while, or very far off once.
* ``tail``: windowed Gaussian tail, ``|x - mean| ≥ k · std`` over the last ``window`` values
  (a spike in a series that spikes often has a large std and is not news).
* ``season``: seasonal residual ``r = x - x[t - P]`` (``P`` = ``opinion_arg`` rows), scored as
  a robust z against the last ``window`` residuals; agrees when ``|z_r| ≥ k`` (a value like the
  one a period ago is routine).
* ``shift``: change point, the mean of the last ``m`` values (``m`` = ``opinion_arg``, ``x``
  included) against the mean and std of the ``window`` values before them; agrees when
  ``|Δmean| ≥ k · std / √m``.

Until an opinion has the history it needs it agrees (no veto without evidence). Each update
is O(1) or O(log window).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Protocol

from autonomous.health_monitor.stream_windows import Ring, robust_z

__all__ = ["FAMILIES", "Opinion", "make_opinion"]

FAMILIES = ("none", "cusum", "tail", "season", "shift")
_MIN_HISTORY = 10


class Opinion(Protocol):
    def update(self, x: float, z: float) -> bool: ...

    def state(self) -> dict[str, Any]: ...

    def load(self, state: dict[str, Any]) -> None: ...


class _Agree:
    def update(self, x: float, z: float) -> bool:
        return True

    def state(self) -> dict[str, Any]:
        return {}

    def load(self, state: dict[str, Any]) -> None:
        return None


class _Cusum:
    def __init__(self, k: float, drift: float) -> None:
        self.k, self.drift = k, drift
        self.hi = self.lo = 0.0

    def update(self, x: float, z: float) -> bool:
        self.hi = max(0.0, self.hi + z - self.drift)
        self.lo = max(0.0, self.lo - z - self.drift)
        return max(self.hi, self.lo) >= self.k

    def state(self) -> dict[str, Any]:
        return {"hi": self.hi, "lo": self.lo}

    def load(self, state: dict[str, Any]) -> None:
        self.hi, self.lo = float(state["hi"]), float(state["lo"])


def _load_ring(ring: Ring, values: list[float]) -> None:
    for v in values[-len(ring.buf):]:
        ring.append(float(v))


class _Tail:
    def __init__(self, k: float, window: int) -> None:
        self.k = k
        self.values = Ring(window)

    def update(self, x: float, z: float) -> bool:
        agree = True
        if len(self.values) >= _MIN_HISTORY:
            mean, sd = self.values.mean_std()
            agree = abs(x - mean) >= self.k * sd
        self.values.append(x)
        return agree

    def state(self) -> dict[str, Any]:
        return {"values": self.values.ordered()}

    def load(self, state: dict[str, Any]) -> None:
        _load_ring(self.values, state["values"])


class _Season:
    def __init__(self, k: float, period: int, window: int, min_samples: int) -> None:
        self.k, self.min_samples = k, min_samples
        self.past: deque[float] = deque(maxlen=max(1, period))
        self.residuals = Ring(window, keep_sorted=True)

    def update(self, x: float, z: float) -> bool:
        agree = True
        if len(self.past) == self.past.maxlen:
            r = x - self.past[0]
            zr, _ = robust_z(self.residuals, r, self.min_samples)
            agree = zr is None or abs(zr) >= self.k
            self.residuals.append(r)
        self.past.append(x)
        return agree

    def state(self) -> dict[str, Any]:
        return {"past": list(self.past), "residuals": self.residuals.ordered()}

    def load(self, state: dict[str, Any]) -> None:
        self.past.extend(float(v) for v in state["past"])
        _load_ring(self.residuals, state["residuals"])


class _Shift:
    def __init__(self, k: float, m: int, window: int) -> None:
        self.k, self.m = k, max(1, m)
        self.recent: deque[float] = deque()
        self.recent_sum = 0.0
        self.before = Ring(window)

    def update(self, x: float, z: float) -> bool:
        self.recent.append(x)
        self.recent_sum += x
        if len(self.recent) > self.m:
            old = self.recent.popleft()
            self.recent_sum -= old
            self.before.append(old)
        if len(self.before) < _MIN_HISTORY:
            return True
        mean, sd = self.before.mean_std()
        n = len(self.recent)
        return abs(self.recent_sum / n - mean) >= self.k * sd / math.sqrt(n)

    def state(self) -> dict[str, Any]:
        return {"recent": list(self.recent), "before": self.before.ordered()}

    def load(self, state: dict[str, Any]) -> None:
        self.recent.extend(float(v) for v in state["recent"])
        self.recent_sum = sum(self.recent)
        _load_ring(self.before, state["before"])


def make_opinion(family: str, k: float, arg: float, window: int, min_samples: int) -> Opinion:
    """The opinion of ``family`` (``FAMILIES``) with threshold ``k`` and its ``arg``."""
    if family == "none":
        return _Agree()
    if family == "cusum":
        return _Cusum(k, arg)
    if family == "tail":
        return _Tail(k, window)
    if family == "season":
        return _Season(k, int(arg), window, min_samples)
    if family == "shift":
        return _Shift(k, int(arg), window)
    raise ValueError(f"opinion {family!r}: one of {', '.join(FAMILIES)}")
