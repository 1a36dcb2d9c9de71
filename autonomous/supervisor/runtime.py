"""Per-service runtime state kept by the services controller: probes, crash counting, timers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from autonomous.core.backoff import Backoff
from autonomous.supervisor.probes import ProbeState

__all__ = ["ServiceRuntime"]


@dataclass
class ServiceRuntime:
    name: str
    probe: ProbeState
    backoff: Backoff
    started_mono: float | None = None
    healthy_since: float | None = None
    restart_at: float | None = None  # monotonic time before which an exited process waits
    restarts: list[float] = field(default_factory=list)  # monotonic times of restarts
    probe_task: asyncio.Task[None] | None = None
    healthy_event: asyncio.Event = field(default_factory=asyncio.Event)
    ready_event: asyncio.Event = field(default_factory=asyncio.Event)

    def on_start(self, now: float) -> None:
        self.started_mono = now
        self.healthy_since = None
        self.restart_at = None
        self.probe.live = None
        self.probe.ready = None
        self.probe.consecutive_failures = self.probe.consecutive_successes = 0
        self.probe.ready_failures = self.probe.ready_successes = 0
        self.healthy_event.clear()
        self.ready_event.clear()

    def on_exit(self, now: float, unexpected: bool) -> None:
        self.healthy_since = None
        self.probe.live = False
        self.probe.ready = False
        self.healthy_event.clear()
        self.ready_event.clear()
        if unexpected:
            delay = self.backoff.delay(self.backoff.failures)
            self.backoff.failures += 1
            self.restart_at = now + delay

    def recent_restarts(self, now: float, window: float) -> int:
        self.restarts = [t for t in self.restarts if now - t <= window]
        return len(self.restarts)
