"""Heartbeat client: the integration point for ATLAS's ``modules/nexus_heartbeat.py``.

Each beat GETs the service's heartbeat endpoint (``healing.heartbeat.path``, e.g. NEXUS's
``/api/heartbeat``) through a named circuit breaker of the healing engine
(``ctx.subsystems["healing"].breaker(name, "heartbeat_breaker")``), sends its measurements to
telemetry (``heartbeat_ok`` 1/0 and ``heartbeat_latency_ms`` per service, when the telemetry
hub runs) and as a ``healing.heartbeat`` event, and hands a failed beat to the healer
(``handle_error`` with source ``heartbeat``). Once the breaker is OPEN no beats are sent and no
heals are requested until its timeout lets a trial through: a dead service is not hammered.

Use from the existing heartbeat module::

    hb = HeartbeatClient(ctx, "nexus", "http://127.0.0.1:8000")
    await hb.run(stop_event)          # or: result = await hb.beat() on your own schedule
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import httpx

from autonomous.core.aio import TIMED_OUT, wait_or_timeout
from autonomous.self_healing.circuit_breaker import CircuitBreaker, CircuitOpenError
from autonomous.supervisor.probe_client import ProbeClient

if TYPE_CHECKING:
    from autonomous.context import OperatorContext
    from autonomous.self_healing.facade import HealingFacade

__all__ = ["HeartbeatClient", "HeartbeatResult", "report", "request_heal"]


@dataclass
class HeartbeatResult:
    """One beat. ``sent`` is False when the open breaker kept it from being sent;
    ``latency_ms`` is None when no answer came (with the reason in ``message``)."""

    service: str
    ok: bool
    sent: bool
    latency_ms: float | None
    status_code: int | None
    message: str
    breaker: str
    healing_requested: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _BeatFailed(Exception):
    """A beat that was sent and failed: counts as a failure for the breaker."""

    def __init__(self, result: HeartbeatResult) -> None:
        super().__init__(result.message)
        self.result = result


class HeartbeatClient:
    """Heartbeats of one service at ``base_url`` (scheme://host:port), behind the breaker
    ``breaker_name`` (default ``heartbeat:<service>``). ``ctx`` is the OperatorContext."""

    def __init__(self, ctx: OperatorContext, service: str, base_url: str, *,
                 breaker_name: str | None = None,
                 client: httpx.AsyncClient | ProbeClient | None = None) -> None:
        self.ctx = ctx
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.breaker_name = breaker_name or f"heartbeat:{service}"
        # a beat is a periodic GET: the lean keep-alive probe client unless one is handed in
        self.client = client or ProbeClient()
        self._own_client = client is None
        self.last: HeartbeatResult | None = None
        self.last_heal: asyncio.Task[Any] | None = None

    # -- plumbing ------------------------------------------------------------------------------
    def policy(self) -> dict[str, Any]:
        """The ``healing.heartbeat`` policy in force (read on every beat)."""
        return self.ctx.policy()["healing"]["heartbeat"]

    def _healing(self) -> HealingFacade:
        healing = self.ctx.subsystems.get("healing")
        if healing is None:
            raise LookupError("the healing subsystem is not running: heartbeats go through its "
                              "breakers and failures to its engine (enable the healing "
                              "controller)")
        return healing

    def breaker(self) -> CircuitBreaker:
        """This client's breaker (from policy ``healing.heartbeat_breaker``)."""
        return self._healing().breaker(self.breaker_name, "heartbeat_breaker")

    @property
    def url(self) -> str:
        return self.base_url + self.policy()["path"]

    async def close(self) -> None:
        """Close the HTTP client it made (heals in flight belong to the healing engine)."""
        if self._own_client:
            await self.client.aclose()

    # -- beats ---------------------------------------------------------------------------------
    async def beat(self) -> HeartbeatResult:
        """One heartbeat: send (unless the breaker is open), measure, report, heal on failure."""
        breaker = self.breaker()
        try:
            res = await breaker.call_async(self._send)
        except CircuitOpenError as exc:
            res = HeartbeatResult(self.service, False, False, None, None,
                                  f"not sent: {exc}", "OPEN")
        except _BeatFailed as exc:
            res = exc.result
            res.healing_requested = True
            self.last_heal = request_heal(self._healing(), res, self.url)
        res.breaker = breaker.get_state().value
        self._report(res)
        self.last = res
        return res

    async def _send(self) -> HeartbeatResult:
        url, timeout = self.url, self.policy()["timeout_seconds"]
        t0 = time.perf_counter()
        try:
            resp = await self.client.get(url, timeout=timeout)
        except httpx.TimeoutException:
            raise _BeatFailed(self._result(False, None, None, f"timeout after {timeout:g}s "
                                           f"(GET {url})")) from None
        except httpx.HTTPError as exc:
            raise _BeatFailed(self._result(False, None, None, f"no answer from {url}: "
                                           f"{type(exc).__name__}: {exc}"[:300])) from None
        ms = round((time.perf_counter() - t0) * 1e3, 3)
        ok = 200 <= resp.status_code < 300
        res = self._result(ok, ms, resp.status_code, f"HTTP {resp.status_code} in {ms:g} ms")
        if not ok:
            raise _BeatFailed(res)
        return res

    def _result(self, ok: bool, ms: float | None, code: int | None, msg: str) -> HeartbeatResult:
        return HeartbeatResult(self.service, ok, True, ms, code, msg, "")

    def _report(self, res: HeartbeatResult) -> None:
        report(self.ctx, res)

    async def run(self, stop: asyncio.Event) -> None:
        """Beat every ``healing.heartbeat.interval_seconds`` until ``stop`` is set."""
        while not stop.is_set():
            await self.beat()
            got = await wait_or_timeout(stop.wait(), self.policy()["interval_seconds"])
            if got is not TIMED_OUT:
                return


def report(ctx: OperatorContext, res: HeartbeatResult,
           metrics: dict[str, float] | None = None) -> None:
    """A beat's measurements to telemetry (only what was measured; ``metrics`` a beating
    process reported about itself as ``heartbeat.<name>``) and the ``healing.heartbeat`` event.
    Shared by this client and the API route the embedded agent reports to."""
    telemetry = ctx.subsystems.get("telemetry")
    if telemetry is not None and res.sent:
        labels = {"service": res.service}
        telemetry.metrics.collect_metric("heartbeat_ok", 1.0 if res.ok else 0.0, labels)
        if res.latency_ms is not None:
            telemetry.metrics.collect_metric("heartbeat_latency_ms", res.latency_ms, labels)
        for name, value in (metrics or {}).items():
            telemetry.metrics.collect_metric(f"heartbeat.{name}", value, labels)
    ctx.bus.publish("healing.heartbeat", **res.as_dict())


def request_heal(healing: Any, res: HeartbeatResult, url: str) -> asyncio.Task[Any]:
    """Hand a failed beat to the healer (source ``heartbeat``), in the background."""
    return healing.handle_error_soon(
        res.service, source="heartbeat", message=f"heartbeat failed: {res.message}",
        context={"heartbeat_url": url, "status_code": res.status_code,
                 "probe_error": res.message, "latency_ms": res.latency_ms})
