"""Scheduled jobs: housekeeping that decides nothing (rollups, retention, log ingestion).

A controller's ``observe`` only reads the world; work that must simply happen on a cadence
(and plans no governed action) is a job. Whoever owns the data registers the job
(``ctx.jobs.add(Job(...))``, usually in its controller's ``start``) and removes it on stop; the
operator runs the one scheduler (:meth:`JobScheduler.run_forever`) on the one clock, so a
FakeClock drives jobs in tests exactly as it drives controllers (or a test calls
:meth:`JobScheduler.run_due`).

    ctx.jobs.add(Job("telemetry.housekeeping", every=lambda: 15.0, run=hub.housekeeping))

A job whose ``run`` raises is logged and kept (its error in ``last_error``); the next run is
one period later either way. ``run`` is called in a worker thread (jobs touch the store, not
the event loop), or on the loop with ``thread=False`` (state shared with the loop's code).
``trigger(name)`` makes a job due now (a controller's action asking for "retention now", for
example).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from autonomous.core.clock import Clock

__all__ = ["Job", "JobScheduler"]

log = logging.getLogger("atlas.jobs")


@dataclass
class Job:
    name: str
    every: Callable[[], float]  # seconds between runs, read each time (policy may change)
    run: Callable[[], Any]
    next_at: float | None = None  # clock.monotonic() when due; None: at the first look
    thread: bool = True  # False: run on the event loop (work sharing state with it)
    runs: int = 0
    last_result: Any = None
    last_error: str | None = None
    last_run_at: float | None = None


@dataclass
class JobScheduler:
    jobs: dict[str, Job] = field(default_factory=dict)
    _wake: asyncio.Event | None = None

    def add(self, job: Job) -> Job:
        self.jobs[job.name] = job
        self._poke()
        return job

    def remove(self, name: str) -> None:
        self.jobs.pop(name, None)

    def trigger(self, name: str) -> bool:
        """Make ``name`` due now; False when no such job is registered."""
        job = self.jobs.get(name)
        if job is None:
            return False
        job.next_at = None
        self._poke()
        return True

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def due(self, clock: Clock) -> list[Job]:
        now = clock.monotonic()
        return [j for j in self.jobs.values() if j.next_at is None or j.next_at <= now]

    async def run_due(self, clock: Clock) -> dict[str, Any]:
        """Run every due job once (in a worker thread); their results by name."""
        out: dict[str, Any] = {}
        for job in self.due(clock):
            job.next_at = clock.monotonic() + max(0.01, float(job.every()))
            try:
                job.last_result = (await asyncio.to_thread(job.run) if job.thread
                                   else job.run())
                job.last_error = None
            except Exception as exc:  # noqa: BLE001 - one job failing never stops the others
                job.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("job %s failed", job.name)
            job.runs += 1
            job.last_run_at = clock.now()
            out[job.name] = job.last_result
        return out

    def next_wait(self, clock: Clock) -> float:
        now = clock.monotonic()
        waits = [0.0 if j.next_at is None else j.next_at - now for j in self.jobs.values()]
        return max(0.0, min(waits)) if waits else 60.0

    async def run_forever(self, clock: Clock) -> None:
        """Run jobs as they fall due until cancelled (started by the operator)."""
        self._wake = asyncio.Event()
        while True:
            await self.run_due(clock)
            self._wake.clear()
            sleeper = asyncio.ensure_future(clock.sleep(self.next_wait(clock)))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (sleeper, waker):
                    t.cancel()

    def snapshot(self) -> list[dict[str, Any]]:
        return [{"name": j.name, "runs": j.runs, "last_run_at": j.last_run_at,
                 "last_error": j.last_error} for j in self.jobs.values()]
