"""Liveness and readiness probes (HTTP GET, 2xx = pass) with Kubernetes threshold semantics.

``ProbeState`` turns a stream of results into ``live`` / ``ready`` booleans: a probe flips to
failing after ``failure_threshold`` consecutive failures and back after ``success_threshold``
consecutive successes; failures inside the start-up grace period do not count for liveness.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["ProbeResult", "ProbeState", "http_probe"]


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency_ms: float | None
    status_code: int | None
    error: str | None
    ts: float

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "latency_ms": self.latency_ms, "status_code": self.status_code,
                "error": self.error, "ts": self.ts}


async def http_probe(client: httpx.AsyncClient, url: str, timeout: float, now: float) \
        -> ProbeResult:
    """GET ``url``; 2xx within ``timeout`` passes. Never raises."""
    t0 = time.perf_counter()
    try:
        resp = await client.get(url, timeout=timeout)
    except httpx.TimeoutException:
        return ProbeResult(False, None, None, f"timeout after {timeout:g}s", now)
    except httpx.HTTPError as exc:
        return ProbeResult(False, None, None, f"{type(exc).__name__}: {exc}"[:200], now)
    ms = (time.perf_counter() - t0) * 1000
    ok = 200 <= resp.status_code < 300
    return ProbeResult(ok, round(ms, 3), resp.status_code,
                       None if ok else f"HTTP {resp.status_code}", now)


@dataclass
class ProbeState:
    failure_threshold: int
    success_threshold: int
    live: bool | None = None
    ready: bool | None = None
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    ready_failures: int = 0
    ready_successes: int = 0
    last: ProbeResult | None = None
    history: deque[ProbeResult] = field(default_factory=lambda: deque(maxlen=512))

    def record_liveness(self, result: ProbeResult, *, in_grace: bool) -> str | None:
        """Update from a liveness result; returns "healthy"/"unhealthy" on a transition."""
        self.last = result
        self.history.append(result)
        if result.ok:
            self.consecutive_failures = 0
            self.consecutive_successes += 1
            if self.live is not True and self.consecutive_successes >= self.success_threshold:
                self.live = True
                return "healthy"
            return None
        self.consecutive_successes = 0
        if in_grace:
            return None
        self.consecutive_failures += 1
        if self.live is not False and self.consecutive_failures >= self.failure_threshold:
            self.live = False
            return "unhealthy"
        return None

    def record_readiness(self, result: ProbeResult) -> str | None:
        if result.ok:
            self.ready_failures = 0
            self.ready_successes += 1
            if self.ready is not True and self.ready_successes >= self.success_threshold:
                self.ready = True
                return "ready"
            return None
        self.ready_successes = 0
        self.ready_failures += 1
        if self.ready is not False and (self.ready is None or
                                        self.ready_failures >= self.failure_threshold):
            self.ready = False
            return "not_ready"
        return None
