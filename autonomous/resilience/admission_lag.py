"""Admission, event-loop lag: how late the serving event loop runs its callbacks, measured, and
the pure verdict that sheds sheddable priorities in proportion to it.

Why: a request on a never-shed or CRITICAL route skips the queue, but it shares the event loop
with every other request. Under overload the loop's ready queue, not the admission queue, is
what delays it; the in-flight limit cannot see that (a handler's latency includes its own wait
for the loop only after the fact). The lag is the direct measure: a periodic callback scheduled
for ``t`` that runs at ``t + lag``.

* :class:`LagSampler` — schedules a callback every ``sample_interval_ms`` on the running loop
  while requests arrive (``touch``), smooths each observed lag (EWMA, ``smoothing_seconds``)
  and stops by itself after ``idle_stop_seconds`` without a request, so an idle operator pays
  nothing. ``observe(scheduled, actual)`` is the measurement itself (tests feed it times).
  ``lag(now)`` is the smoothed lag, or the overdue time of the pending tick when that is larger
  (a loop too busy to run the tick is at least that late).
* :func:`shed_fraction` / :func:`lag_verdict` — pure: the share of a priority's requests to shed
  at an observed lag (0 below ``shed_from_ms``, 1 from ``shed_all_ms``, linear between; CRITICAL
  never), and the per-request verdict by error diffusion (a credit carried from one request to
  the next, so a fraction 0.25 sheds exactly every fourth request — deterministic, no random).

Thresholds live in ``policies/resilience.yaml`` (``resilience.loop_lag``).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Mapping
from typing import Any

from autonomous.resilience.priority_queue import Priority

__all__ = ["LagSampler", "lag_verdict", "shed_fraction"]


def shed_fraction(lag_policy: Mapping[str, Any], priority: Priority | None,
                  lag_seconds: float | None) -> float:
    """Share of ``priority``'s requests to shed when the loop runs ``lag_seconds`` late.
    0.0 for CRITICAL, never-shed requests (None), an unmeasured lag or a disabled policy."""
    if (priority is None or priority == Priority.CRITICAL or lag_seconds is None
            or not lag_policy["enabled"]):
        return 0.0
    start = lag_policy["shed_from_ms"][priority.name] / 1000.0
    full = lag_policy["shed_all_ms"][priority.name] / 1000.0
    if lag_seconds <= start:
        return 0.0
    if lag_seconds >= full or full <= start:
        return 1.0
    return (lag_seconds - start) / (full - start)


def lag_verdict(lag_policy: Mapping[str, Any], priority: Priority | None,
                lag_seconds: float | None, credit: float) -> tuple[bool, float, float]:
    """``(shed, new_credit, fraction)`` for one request: ``credit`` accumulates the fraction
    per request and a request is shed each time it reaches 1 (error diffusion). The credit
    resets to 0 when nothing is to be shed, so a past spike does not shed later requests."""
    f = shed_fraction(lag_policy, priority, lag_seconds)
    if f <= 0.0:
        return False, 0.0, 0.0
    credit += f
    if credit >= 1.0:
        return True, credit - 1.0, f
    return False, credit, f


class LagSampler:
    """Measured lag of the event loop requests are served on (see the module docstring).
    Thread-safe reads; ``touch`` must be called on the loop being measured."""

    def __init__(self, lag_policy: Mapping[str, Any]) -> None:
        self._lock = threading.Lock()
        self.configure(lag_policy)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due: float | None = None  # loop time the pending tick is scheduled for
        self._last_touch = -math.inf
        self._last_obs: float | None = None
        self.smoothed: float | None = None
        self.peak = 0.0  # largest single observation since the sampler was created
        self.samples = 0

    def configure(self, lag_policy: Mapping[str, Any]) -> None:
        with self._lock:
            self.policy = dict(lag_policy)
            self.interval = float(lag_policy["sample_interval_ms"]) / 1000.0
            self.tau = float(lag_policy["smoothing_seconds"])
            self.idle_stop = float(lag_policy["idle_stop_seconds"])

    # -- measurement (pure arithmetic on the times given) --------------------------------
    def observe(self, scheduled: float, actual: float) -> float:
        """Record one tick that was due at ``scheduled`` and ran at ``actual``; returns the
        smoothed lag."""
        lag = max(0.0, actual - scheduled)
        with self._lock:
            self.samples += 1
            self.peak = max(self.peak, lag)
            if self.smoothed is None or self._last_obs is None or self.tau <= 0:
                self.smoothed = lag
            else:
                dt = max(0.0, actual - self._last_obs)
                alpha = 1.0 - math.exp(-dt / self.tau) if dt > 0 else 0.0
                # a rise counts at once: a late loop must be seen before the next spike
                self.smoothed = lag if lag > self.smoothed else \
                    self.smoothed + alpha * (lag - self.smoothed)
            self._last_obs = actual
            return self.smoothed

    def lag(self, now: float | None = None) -> float | None:
        """The lag to decide on: the smoothed lag, or how overdue the pending tick is at
        ``now`` (loop time) when that is larger; None before the first tick."""
        with self._lock:
            overdue = 0.0 if now is None or self._due is None else max(0.0, now - self._due)
            if self.smoothed is None:
                return overdue if overdue > 0 else None
            return max(self.smoothed, overdue)

    # -- the periodic callback on the serving loop ----------------------------------------
    def touch(self) -> float | None:
        """A request arrived on the running loop: keep (or start) sampling it; returns the
        lag to decide on. Off the loop (a thread-per-request server) returns None."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        if not self.policy["enabled"]:
            return None
        now = loop.time()
        self._last_touch = now
        if self._loop is not loop or self._handle is None:
            self._arm(loop, now)
        return self.lag(now)

    def _arm(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if self._loop is not loop:  # a new loop: its lag starts from nothing
            with self._lock:
                self.smoothed, self._last_obs = None, None
        self._loop = loop
        self._due = now + self.interval
        self._handle = loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        loop, due = self._loop, self._due
        if loop is None or due is None:
            return
        now = loop.time()
        self.observe(due, now)
        if now - self._last_touch > self.idle_stop:
            self._handle, self._due = None, None  # idle: stop waking the loop
            with self._lock:
                self.smoothed, self._last_obs = None, None
            return
        self._due = now + self.interval
        self._handle = loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._due, self._loop = None, None, None

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"smoothed_ms": None if self.smoothed is None else
                    round(self.smoothed * 1000, 3), "peak_ms": round(self.peak * 1000, 3),
                    "samples": self.samples, "sampling": self._due is not None}
