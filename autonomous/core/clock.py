"""The one clock.

Durations use ``monotonic()``; timestamps use ``now()`` (wall clock, seconds since the epoch).
Everything that waits takes a :class:`Clock` so that tests can fast-forward a :class:`FakeClock`
and assert exact durations instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock", "iso"]


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


def iso(ts: float | None) -> str | None:
    """Render a wall-clock timestamp as RFC 3339 UTC."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")
