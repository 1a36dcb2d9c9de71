"""ServiceHealth: liveness, readiness, latency, error rate, throughput, uptime and dependency
health of every declared service.

One way to probe: when the services controller runs (``observed()`` returns its facade's
``observed()``), liveness, readiness, consecutive failures and the probe results (its
``probe_history``) are taken from it, and ServiceHealth sends no probe of its own. Only when no
services controller is there (``observed()`` returns ``None``, or no ``observed`` is given)
does ServiceHealth probe each service itself on ``spec.health.period_seconds``: a liveness
``GET`` of ``health.path`` and, when declared, a readiness ``GET`` of ``health.readiness_path``
(``check_service``). Either way a probe fails on a non-2xx answer, a refused connection or no
answer within ``health.timeout_seconds`` (a SIGSTOPped process accepts the connection and never
answers), so a hung service is seen failing liveness within ``period × failure_threshold``.
Latency p50/p95 and the probe error rate are over the last ``window_seconds`` (policy
``health.services``); throughput and the request error rate come from the service's Prometheus
``/metrics`` request counters when it exposes them (scraped every
``metrics_interval_seconds``). Dependencies (HTTP or TCP, declared in the Service spec) are
checked every ``dependency_interval_seconds``.

Service score (``calculate_service_score``): :mod:`~autonomous.health_monitor.service_score`
(null while not probed yet; an unmeasured figure is left out, not counted as 0).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from autonomous.core.clock import Clock
from autonomous.health_monitor.network import tcp_connect
from autonomous.health_monitor.prom import request_totals, tool_totals
from autonomous.health_monitor.service_figures import (after_startup, bottlenecks, pct,
                                                       probe_view, request_rates, uptime)
from autonomous.health_monitor.service_score import score_reason, service_score
from autonomous.supervisor.probe_client import ProbeClient
from autonomous.supervisor.probes import ProbeResult, ProbeState

__all__ = ["ServiceHealth", "ServiceStatus"]


@dataclass(frozen=True)
class ServiceStatus:
    """One check: ``online`` (2xx), ``latency`` (ms, when it answered), ``errors``."""

    online: bool
    latency: float | None
    errors: list[str] = field(default_factory=list)
    status_code: int | None = None


def _result(s: ServiceStatus, now: float) -> ProbeResult:
    return ProbeResult(s.online, s.latency, s.status_code, s.errors[0] if s.errors else None,
                       now)


@dataclass
class _State:
    # own probes (only without a services controller), shaped like its ``probe_history``
    probes: deque[dict[str, Any]] = field(default_factory=deque)  # sized from policy
    # their live / ready verdicts: the same threshold semantics as the services controller's
    state: ProbeState = field(default_factory=lambda: ProbeState(1, 1))
    last: dict[str, Any] | None = None
    scrapes: deque[tuple[float, float, float]] = field(default_factory=deque)  # from policy
    metrics_reason: str | None = "not scraped yet"
    last_scrape_mono: float = -1e18
    # tool counters of the newest scrape: (time, {tool: (calls, errors, seconds)})
    tools: tuple[float, dict[str, tuple[float, float, float]]] | None = None
    dependencies: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_dep_mono: float = -1e18


class ServiceHealth:
    """The declared services' health, from the services controller's probes (or its own)."""

    def __init__(self, clock: Clock, *, specs: Callable[[], dict[str, Any]],
                 policy: Callable[[], dict[str, Any]],
                 observed: Callable[[], dict[str, dict[str, Any]] | None] | None = None
                 ) -> None:
        """``observed``: the services facade's ``observed()``, returning ``None`` while no
        services controller runs (then ServiceHealth probes by itself)."""
        self.clock = clock
        self._specs, self._policy, self._observed = specs, policy, observed
        self.states: dict[str, _State] = {}
        # lean keep-alive GETs (no redirects followed); its httpx fallback is built on first use
        self._http = ProbeClient()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._side_tasks: dict[str, asyncio.Task[None]] = {}

    def _state(self, name: str) -> _State:
        """The service's state, created with the history sizes of the policy in force."""
        st = self.states.get(name)
        if st is None:
            pol = self._policy()["services"]
            st = self.states[name] = _State(
                probes=deque(maxlen=int(pol["probe_history_keep"])),
                scrapes=deque(maxlen=int(pol["scrape_history_keep"])))
        return st

    def _client(self) -> ProbeClient:
        return self._http

    # -- the specification's check --------------------------------------------------------
    async def check_service(self, url: str, timeout: float = 5) -> ServiceStatus:
        """GET ``url``: online when it answers 2xx within ``timeout`` seconds."""
        t0 = time.perf_counter()
        try:
            r = await self._client().get(url, timeout=timeout)
        except httpx.TimeoutException:
            return ServiceStatus(False, None, [f"no answer within {timeout}s"])
        except httpx.HTTPError as exc:
            return ServiceStatus(False, None, [f"{type(exc).__name__}: {exc}"])
        ms = (time.perf_counter() - t0) * 1000.0
        ok = 200 <= r.status_code < 300
        return ServiceStatus(ok, ms, [] if ok else [f"HTTP {r.status_code}"], r.status_code)

    # -- probing --------------------------------------------------------------------------
    async def probe(self, name: str, spec: Any) -> None:
        """One liveness (+ readiness) probe of ``name``; updates live / ready."""
        st = self._state(name)
        hc = spec.health
        if hc is None or spec.port is None:
            return
        base = f"http://{spec.host}:{spec.port}"
        ps = st.state
        ps.failure_threshold, ps.success_threshold = hc.failure_threshold, hc.success_threshold
        live = await self.check_service(base + hc.path, hc.timeout_seconds)
        now = self.clock.now()
        self._record(st, "liveness", live, now)
        ps.record_liveness(_result(live, now),
                           in_grace=self._in_grace(name, hc.startup_grace_seconds, now))
        if hc.readiness_path and hc.readiness_path != hc.path and live.online:
            ready = await self.check_service(base + hc.readiness_path, hc.timeout_seconds)
            self._record(st, "readiness", ready, now)
            ps.record_readiness(_result(ready, now))
        else:  # same path, or not live: not ready either
            ps.record_readiness(_result(live, now))

    def _services_observed(self) -> dict[str, dict[str, Any]] | None:
        """The services controller's observed state, or ``None`` when it is not running."""
        return self._observed() if self._observed is not None else None

    def _in_grace(self, name: str, grace: float, now: float) -> bool:
        """Failures right after a (re)start are ignored for ``startup_grace_seconds``."""
        obs = (self._services_observed() or {}).get(name) or {}
        started = obs.get("started_at")
        return started is not None and now - float(started) < grace

    @staticmethod
    def _record(st: _State, kind: str, s: ServiceStatus, now: float) -> None:
        p = {"ok": s.online, "latency_ms": s.latency, "status_code": s.status_code,
             "error": s.errors[0] if s.errors else None, "ts": now, "kind": kind}
        st.probes.append(p)
        if kind == "liveness":
            st.last = p

    async def scrape(self, name: str, spec: Any) -> None:
        """Read the request counters from ``/metrics`` (throughput, request errors)."""
        st = self._state(name)
        st.last_scrape_mono = self.clock.monotonic()
        try:
            timeout = spec.health.timeout_seconds if spec.health else 2.0
            r = await self._client().get(f"http://{spec.host}:{spec.port}/metrics", timeout=timeout)
        except httpx.HTTPError as exc:
            st.metrics_reason = f"/metrics unreachable: {type(exc).__name__}: {exc}"[:200]
            return
        totals = request_totals(r.text) if r.status_code == 200 else None
        if r.status_code == 200:
            tools = tool_totals(r.text)
            if tools:
                st.tools = (self.clock.now(), tools)
        if totals is None:
            st.metrics_reason = ("no request counters in /metrics" if r.status_code == 200
                                 else f"/metrics answered HTTP {r.status_code}")
            return
        st.metrics_reason = None
        st.scrapes.append((self.clock.now(), *totals))

    async def check_dependencies(self, name: str, spec: Any) -> None:
        """Check each declared dependency (HTTP GET or TCP connect)."""
        st = self._state(name)
        st.last_dep_mono = self.clock.monotonic()
        for dep in spec.dependencies:
            if dep.type == "http":
                s = await self.check_service(dep.url, dep.timeout_seconds)
                res = {"online": s.online, "latency_ms": s.latency,
                       "error": s.errors[0] if s.errors else None}
            else:
                ms, err = await tcp_connect(dep.host, dep.port, dep.timeout_seconds)
                res = {"online": ms is not None, "latency_ms": ms, "error": err}
            st.dependencies[dep.name] = {"type": dep.type, **res, "checked_at": self.clock.now()}

    async def _loop(self, name: str) -> None:
        """Scrape and check dependencies on their cadences; probe (on a fixed period, a slow
        probe not pushing the next one back) only when no services controller probes."""
        while True:
            spec = self._specs().get(name)
            if spec is None:
                return
            t0 = self.clock.monotonic()
            pol = self._policy()["services"]
            own = self._services_observed() is None
            if own:
                await self.probe(name, spec)
            mono = self.clock.monotonic()
            st = self._state(name)
            if spec.port and mono - st.last_scrape_mono >= pol["metrics_interval_seconds"]:
                self._side(f"scrape-{name}", self.scrape(name, spec))
            if mono - st.last_dep_mono >= pol["dependency_interval_seconds"]:
                self._side(f"deps-{name}", self.check_dependencies(name, spec))
            period = spec.health.period_seconds if spec.health else 5.0
            if not own:
                period = min(pol["metrics_interval_seconds"], pol["dependency_interval_seconds"])
            await self.clock.sleep(max(0.0, period - (self.clock.monotonic() - t0)))

    def _side(self, key: str, coro: Any) -> None:
        """Run a scrape / dependency check beside the probe loop (one at a time per key)."""
        running = self._side_tasks.get(key)
        if running is not None and not running.done():
            coro.close()
            return
        self._side_tasks[key] = asyncio.create_task(coro, name=key)

    def ensure_running(self) -> None:
        """Start a probe loop for each declared service; drop the undeclared ones."""
        specs = self._specs()
        for name in list(self._tasks):
            if name not in specs or self._tasks[name].done():
                self._tasks.pop(name).cancel()
                if name not in specs:
                    self.states.pop(name, None)
        for name in specs:
            if name not in self._tasks:
                self._tasks[name] = asyncio.create_task(self._loop(name), name=f"probe-{name}")

    async def close(self) -> None:
        tasks = [*self._tasks.values(), *self._side_tasks.values()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._side_tasks.clear()
        await self._http.aclose()

    # -- derived figures ------------------------------------------------------------------
    def service_metrics(self, name: str, observed: dict[str, dict[str, Any]] | None = None
                        ) -> dict[str, Any]:
        """Live/ready, p50/p95 latency, error rates, throughput, uptime, dependencies.

        ``observed``: the services controller's observed state when the caller already read
        it (one read per snapshot); read here otherwise."""
        st = self.states.get(name) or _State()
        now = self.clock.now()
        pol = self._policy()["services"]
        obs = observed if observed is not None else self._services_observed()
        probe = probe_view(st.state, st.probes, st.last, None if obs is None else obs.get(name) or {})
        spec = self._specs().get(name)
        grace = spec.health.startup_grace_seconds if spec is not None and spec.health else 0.0
        recent = after_startup([p for p in probe["history"]
                                 if now - p["ts"] <= pol["window_seconds"]],
                                (obs or {}).get(name, {}).get("started_at"), grace)
        lat = sorted(p["latency_ms"] for p in recent if p["latency_ms"] is not None
                     and p.get("kind", "liveness") == "liveness")
        probe_err = (sum(not p["ok"] for p in recent) / len(recent)) if recent else None
        req = request_rates(st.scrapes, now, pol["window_seconds"])
        rates = [r for r in (probe_err, req["error_rate"]) if r is not None]
        last = probe["last"]
        return {
            "live": probe["live"], "ready": probe["ready"],
            "consecutive_failures": probe["failures"], "probe_source": probe["source"],
            "latency_p50_ms": pct(lat, 50), "latency_p95_ms": pct(lat, 95),
            "probe_error_rate": probe_err, "request_error_rate": req["error_rate"],
            "error_rate": max(rates) if rates else None,
            "throughput_rps": req["throughput"], "metrics_reason": st.metrics_reason,
            "probes_in_window": len(recent),
            "uptime_seconds": uptime(None if obs is None else obs.get(name), now),
            "last_probe": None if last is None else {
                k: last.get(k) for k in ("ts", "ok", "latency_ms", "status_code", "error")},
            "dependencies": dict(st.dependencies)}

    def tool_counters(self, name: str) -> tuple[float, dict[str, tuple[float, float, float]]] | None:
        """The newest scrape's tool counters of ``name``: (its time, {tool: (calls, errors,
        seconds)}), or None when its ``/metrics`` has shown none."""
        st = self.states.get(name)
        return None if st is None else st.tools

    def probe_history(self, name: str) -> list[dict[str, Any]]:
        """The liveness / readiness probe results kept for ``name`` (oldest first), from the
        services controller or the own probes."""
        obs = self._services_observed()
        st = self.states.get(name) or _State()
        view = probe_view(st.state, st.probes, st.last,
                          None if obs is None else obs.get(name) or {})
        return list(view["history"])

    def calculate_service_score(self, name: str, metrics: dict[str, Any] | None = None
                                ) -> float | None:
        """0–100 for one service (:func:`service_score`); None while not probed yet."""
        m = metrics if metrics is not None else self.service_metrics(name)
        return service_score(m, self._policy())

    score_reason = staticmethod(score_reason)

    def get_bottlenecks(self, resource_problems: list[dict[str, Any]] | None = None,
                        metrics: dict[str, dict[str, Any]] | None = None
                        ) -> list[dict[str, Any]]:
        """What limits the stack now (:func:`~autonomous.health_monitor.service_figures.
        bottlenecks`). ``metrics``: per-service figures already computed (``snapshot()``),
        else computed."""
        if metrics is None:
            obs = self._services_observed()
            metrics = {n: self.service_metrics(n, obs) for n in self._specs()}
        return bottlenecks(metrics, resource_problems or [], self._policy()["thresholds"])

    def get_dependency_health(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per service, each declared dependency's last check."""
        return {name: dict(st.dependencies) for name, st in self.states.items()}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every declared service's figures and score (the services' state read once)."""
        obs = self._services_observed()
        out = {}
        for n in self._specs():
            m = self.service_metrics(n, obs)
            out[n] = {**m, "score": self.calculate_service_score(n, m),
                      "score_reason": self.score_reason(m)}
        return out
