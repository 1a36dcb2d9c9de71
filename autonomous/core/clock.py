"""The one clock.

Durations use ``monotonic()``; timestamps use ``now()`` (wall clock, seconds since the epoch).
Everything that waits takes a :class:`Clock` so that tests can fast-forward a :class:`FakeClock`
and assert exact durations instead of sleeping.

Periodic loops sleep ``tick_delay(clock, period)``: the time to the next multiple of
``period`` on the monotonic clock (the one tick grid). Loops with the same period then wake in
the same event-loop iteration instead of each on its own phase, so an idle operator wakes once
per period, not once per loop; a pass that took part of a period still keeps the fixed rate.
A loop whose wait is not a fixed period (a jittered controller interval) moves its wake-up to
the nearest point of the same grid with ``snap_delay`` so that it, too, shares a wake-up.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock", "iso", "snap_delay", "tick_delay"]


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def now(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Real time."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when told to; ``sleep`` returns once ``advance`` passes its deadline."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._mono = 0.0
        self._wall = start
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> float:
        return self._wall

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._mono + seconds, fut))
        await fut

    def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._wall += seconds
        due = [w for w in self._waiters if w[0] <= self._mono]
        self._waiters = [w for w in self._waiters if w[0] > self._mono]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)


# a wake-up this close to a grid point counts as on it (float rounding, timer resolution):
# the next tick is one period on, never a second pass microseconds later
_ON_GRID = 1e-3


def tick_delay(clock: Clock, period: float) -> float:
    """Seconds from now to the next multiple of ``period`` on ``clock``'s monotonic time.

    Just woken on a grid point (within a millisecond), that is one whole period; a pass that
    overran the period waits for the next grid point (the missed tick is not made up)."""
    if period <= 0:
        return 0.0
    delay = period - clock.monotonic() % period
    return delay + period if delay < min(_ON_GRID, period / 2) else delay


def snap_delay(clock: Clock, delay: float, grid: float = 1.0) -> float:
    """``delay`` moved so that it ends on the nearest multiple of ``grid`` (at most half a
    grid step sooner or later, never before the next grid point from now); a delay shorter
    than one grid step is kept as it is."""
    if grid <= 0 or delay < grid:
        return delay
    now = clock.monotonic()
    at = round((now + delay) / grid) * grid
    return at - now if at - now >= min(_ON_GRID, grid / 2) else tick_delay(clock, grid)


def iso(ts: float | None) -> str | None:
    """Render a wall-clock timestamp as RFC 3339 UTC."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")
