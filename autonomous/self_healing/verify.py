"""Checks the healer makes itself: is a service healthy (and staying so), is a dependency up.

A heal counts as successful only when the service answers its health check, with the same
pid, for ``verify.stable_seconds``; a process that answers once and then dies is a failure.
That rule is the pure :func:`judge` (what was seen so far + one observation → verdict or
"observe again"), applied by :meth:`HealthCheck.look` once per observation, so that a
verification is observed across reconcile passes (nothing here waits for its verdict).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import httpx
import psutil

from autonomous.core.clock import Clock
from autonomous.resources.kinds.service import ServiceSpec
from autonomous.supervisor.probe_client import ProbeClient

if TYPE_CHECKING:
    from autonomous.self_healing.process_intents import ServicesView

__all__ = ["HealthCheck", "Seen", "Verdict", "Watch", "judge", "process_stopped"]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str
    pid: int | None = None
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class Watch:
    """What a verification has seen so far: when it began, the pid it must not be, the
    revision the new process must run (None: any), the pid it watches and since when that one
    answers healthy."""

    start: float
    not_pid: int | None = None
    want_hash: str | None = None
    pid: int | None = None
    healthy_since: float | None = None
    last: str = "not checked yet"


@dataclass(frozen=True)
class Seen:
    """One observation: the owner's process of the service, and a probe of it (None: not
    probed — no new process runs)."""

    pid: int | None
    running: bool
    returncode: int | None = None
    probe_ok: bool | None = None
    probe_message: str = ""
    spec_hash: str | None = None


def judge(w: Watch, seen: Seen, now: float, stable: float,
          limit: float) -> tuple[Watch, Verdict | None]:
    """Pure: the verification after one more observation — healthy once a new process (not
    ``not_pid``) answered its probe with the same pid for ``stable`` seconds; failed when a
    new process exited before that, or after ``limit`` seconds; else None (observe again)."""
    cur = seen.pid if seen.running else None
    # a process of another revision (the owner's crash restart of the one being replaced) is
    # not the one asked for: it neither proves nor fails the verification
    other = w.want_hash is not None and seen.pid is not None and seen.spec_hash != w.want_hash
    if not other and cur is None and seen.pid not in (None, w.not_pid):
        return w, Verdict(False, f"process {seen.pid} exited with code {seen.returncode} "
                                 "before proving healthy", seen.pid, now - w.start)
    if other:
        w = replace(w, healthy_since=None, pid=None,
                    last=f"process {seen.pid} runs another revision")
    elif cur is None or cur == w.not_pid:
        w = replace(w, healthy_since=None, last=f"process not running (exit code "
                    f"{seen.returncode})" if cur is None else "old process still running")
    elif seen.probe_ok and cur == w.pid and w.healthy_since is not None:
        if now - w.healthy_since >= stable:
            return w, Verdict(True, f"healthy ({seen.probe_message}), pid {cur}", cur,
                              w.healthy_since - w.start)
        w = replace(w, last=seen.probe_message)
    else:
        w = replace(w, pid=cur, healthy_since=now if seen.probe_ok else None,
                    last=seen.probe_message)
    if now - w.start >= limit:
        return w, Verdict(False, f"not healthy within {limit:g}s: {w.last}", w.pid,
                          now - w.start)
    return w, None


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
    async def look(self, name: str, watch: Watch, *,
                   limit: float | None = None) -> tuple[Watch, Verdict | None]:
        """One observation of a verification in flight (the owner's process, a probe of a
        new one) judged by the pure :func:`judge`: the watch so far and the verdict once
        there is one (None: observe again later)."""
        v = self.policy()["verify"]
        obs = self.services().observed().get(name) or {}
        pid, running = obs.get("pid"), bool(obs.get("running"))
        h = obs.get("spec_hash")
        ours = watch.want_hash is None or h == watch.want_hash
        probed = await self.probe(name) if running and pid != watch.not_pid and ours else None
        return judge(watch, Seen(pid, running, obs.get("returncode"),
                                 None if probed is None else probed[0],
                                 "" if probed is None else probed[1], h),
                     self.clock.monotonic(), float(v["stable_seconds"]),
                     float(v["timeout_seconds"] if limit is None else limit))

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
