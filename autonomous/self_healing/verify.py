"""Checks the healer makes itself: is a service healthy (and staying so), is a dependency up.

A heal counts as successful only when the service answers its health check, with the same
pid, for ``verify.stable_seconds``; a process that answers once and then dies is a failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import psutil

from autonomous.core.clock import Clock
from autonomous.resources.kinds.service import ServiceSpec
from autonomous.supervisor.probe_client import ProbeClient

if TYPE_CHECKING:
    from autonomous.self_healing.process_intents import ServicesView

__all__ = ["HealthCheck", "Verdict", "process_stopped"]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str
    pid: int | None = None
    elapsed_s: float = 0.0


def process_stopped(pid: int | None) -> bool:
    """Whether the process is in the stopped state (SIGSTOP / job control)."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_STOPPED,
                                                getattr(psutil, "STATUS_TRACING_STOP", "t"))
    except psutil.Error:
        return False


class HealthCheck:
    """``services()`` returns the services facade; ``policy()`` the ``healing`` section."""

    def __init__(self, clock: Clock, services: Callable[[], ServicesView],
                 policy: Callable[[], dict[str, Any]]) -> None:
        self.clock = clock
        self.services = services
        self.policy = policy
        self.probes = ProbeClient()  # health GETs: lean keep-alive, as the service probes
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """Full HTTP client for the strategies' calls (JSON bodies, PUT), built on first use."""
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False)
        return self._client

    async def close(self) -> None:
        await self.probes.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- single checks ---------------------------------------------------------------------------
    async def get(self, url: str, timeout: float) -> tuple[bool, str, int | None, float]:
        """GET a URL: (2xx?, message, status, latency ms). Never raises."""
        t0 = time.perf_counter()
        try:
            resp = await self.probes.get(url, timeout=timeout)
        except httpx.TimeoutException:
            return False, f"timeout after {timeout:g}s", None, (time.perf_counter() - t0) * 1e3
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}: {exc}"[:200], None, 0.0
        ms = (time.perf_counter() - t0) * 1e3
        return 200 <= resp.status_code < 300, f"HTTP {resp.status_code}", resp.status_code, ms

    def health_url(self, spec: ServiceSpec | None) -> str | None:
        if spec is None or spec.port is None or spec.health is None:
            return None
        return f"http://{spec.host}:{spec.port}{spec.health.path}"

    async def probe(self, name: str) -> tuple[bool, str]:
        """One liveness check of a declared service (running + health endpoint)."""
        svc = self.services()
        obs = svc.observed().get(name) or {}
        if not obs.get("running"):
            return False, "process not running"
        spec = svc.specs().get(name)
        url = self.health_url(spec)
        if url is None or spec is None or spec.health is None:
            return True, "running (no health endpoint declared)"
        # never more patient than the service's own liveness probe: an answer its probe calls
        # a timeout is not "healthy again" (a slow service was reported healed every 10 s)
        timeout = min(self.policy()["detection"]["probe_timeout_seconds"],
                      spec.health.timeout_seconds)
        ok, msg, _, _ = await self.get(url, timeout)
        return ok, msg

    # -- verification ------------------------------------------------------------------------------
    async def verify_healthy(self, name: str, *, not_pid: int | None = None,
                             timeout: float | None = None) -> Verdict:
        """Wait until ``name`` runs (with a pid other than ``not_pid``), answers its health
        check and keeps doing so with the same pid for ``stable_seconds``."""
        v = self.policy()["verify"]
        limit = v["timeout_seconds"] if timeout is None else timeout
        start = self.clock.monotonic()
        healthy_since: float | None = None
        pid: int | None = None
        last = "not checked yet"
        while True:
            now = self.clock.monotonic()
            obs = self.services().observed().get(name) or {}
            cur = obs.get("pid") if obs.get("running") else None
            if cur is None and obs.get("pid") not in (None, not_pid):
                return Verdict(False, f"process {obs.get('pid')} exited with code "
                               f"{obs.get('returncode')} before proving healthy",
                               obs.get("pid"), now - start)
            if cur is None or cur == not_pid:
                healthy_since, last = None, ("process not running (exit code "
                                             f"{obs.get('returncode')})" if cur is None
                                             else "old process still running")
            else:
                ok, last = await self.probe(name)
                if ok and cur == pid and healthy_since is not None:
                    if self.clock.monotonic() - healthy_since >= v["stable_seconds"]:
                        return Verdict(True, f"healthy ({last}), pid {cur}", cur,
                                       healthy_since - start)
                elif ok:
                    healthy_since = self.clock.monotonic()
                else:
                    healthy_since = None
                pid = cur
            if now - start >= limit:
                return Verdict(False, f"not healthy within {limit:g}s: {last}", pid, now - start)
            await self.clock.sleep(v["poll_seconds"])

    async def wait_running(self, name: str, timeout: float, *,
                           not_pid: int | None = None) -> int | None:
        """Wait up to ``timeout`` for a process (other than ``not_pid``) to run; its pid."""
        start = self.clock.monotonic()
        while True:
            obs = self.services().observed().get(name) or {}
            if obs.get("running") and obs.get("pid") != not_pid:
                return obs.get("pid")
            if self.clock.monotonic() - start >= timeout:
                return None
            await self.clock.sleep(self.policy()["verify"]["poll_seconds"])

    async def wait_stopped(self, name: str, timeout: float) -> bool:
        """Wait up to ``timeout`` for ``name`` to have no running process."""
        start = self.clock.monotonic()
        while True:
            if not (self.services().observed().get(name) or {}).get("running"):
                return True
            if self.clock.monotonic() - start >= timeout:
                return False
            await self.clock.sleep(self.policy()["verify"]["poll_seconds"])

    # -- dependencies --------------------------------------------------------------------------------
    async def dependencies_down(self, name: str) -> list[str]:
        """Declared dependencies of ``name`` that are down: services it ``depends_on`` that do
        not run or fail their probe, and external ``dependencies`` (http/tcp) that fail."""
        svc = self.services()
        spec = svc.specs().get(name)
        if spec is None:
            return []
        timeout = self.policy()["detection"]["dependency_timeout_seconds"]
        checks = [self._service_up(dep) for dep in spec.depends_on]
        checks += [self._external_up(d, timeout) for d in spec.dependencies]
        labels = list(spec.depends_on) + [d.name for d in spec.dependencies]
        results = await asyncio.gather(*checks)
        return [label for label, up in zip(labels, results) if not up]

    async def _service_up(self, dep: str) -> bool:
        obs = self.services().observed().get(dep) or {}
        if not obs.get("running") or process_stopped(obs.get("pid")):
            return False
        return obs.get("live") is not False

    async def _external_up(self, dep: Any, timeout: float) -> bool:
        if dep.type == "http":
            ok, _, _, _ = await self.get(dep.url, min(timeout, dep.timeout_seconds))
            return ok
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(dep.host, dep.port),
                                               min(timeout, dep.timeout_seconds))
        except (TimeoutError, OSError):
            return False
        writer.close()
        return True
