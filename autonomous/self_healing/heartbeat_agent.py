"""Heartbeat agent: the small module a service embeds (the sample NEXUS does; the real
``modules/nexus_heartbeat.py`` can import it) to beat from inside the process.

Every ``healing.heartbeat.interval_seconds`` (the operator's policy: read from its API at
start, then from each report's answer) a
thread of the service GETs the service's own heartbeat endpoint (``healing.heartbeat.path``)
with the policy's timeout, so a hung or failing request loop is seen from inside, and reports
the beat and the process's own metrics to the operator:
``POST /api/healing/heartbeat/{service}`` (telemetry series ``heartbeat_ok``,
``heartbeat_latency_ms`` and ``heartbeat.<metric>``; a failed beat asks the healer). A metric
named with a unit suffix is exported to Prometheus in the base unit: ``_ms`` / ``_s`` as
seconds, ``_kb`` / ``_mb`` / ``_gb`` as bytes counted in KiB / MiB / GiB, ``_percent`` as a
ratio (``autonomous.telemetry.exposition``), so name them that way. The report
goes through a :class:`CircuitBreaker` built from ``healing.heartbeat_breaker``: once the
operator stops answering, reports stop until the breaker's timeout lets a trial through.

Only the standard library (``http.client``; the import costs milliseconds, so the service's
start is not slowed) and the circuit breaker; no operator context. Credentials: the operator hands each
service it starts ``ATLAS_AUTONOMOUS_URL`` and ``ATLAS_HEARTBEAT_TOKEN`` (a per-service token
derived from the API token that opens only that service's heartbeat route)::

    agent = HeartbeatAgent.from_env("nexus", "http://127.0.0.1:8000", metrics=my_metrics)
    threading.Thread(target=agent.run, args=(stop_event,), daemon=True).start()
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from autonomous.self_healing.circuit_breaker import CircuitBreaker, CircuitOpenError

__all__ = ["AgentBeat", "HeartbeatAgent", "heartbeat_token"]

_PURPOSE = b"heartbeat|"


def heartbeat_token(api_token: str, service: str) -> str:
    """The token that opens ``POST /api/healing/heartbeat/<service>`` and nothing else
    (derived by the operator; rotating the API token voids it)."""
    return hmac.new(api_token.encode(), _PURPOSE + service.encode(), hashlib.sha256).hexdigest()


@dataclass
class AgentBeat:
    """One beat: the self check, and whether its report reached the operator."""

    ok: bool
    latency_ms: float | None
    status_code: int | None
    message: str
    metrics: dict[str, float] = field(default_factory=dict)
    reported: bool = False
    report_error: str | None = None
    healing_requested: bool = False
    breaker: str = "CLOSED"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ReportFailed(Exception):
    """The operator did not take the report (no answer, or not 2xx)."""


def _request(url: str, method: str, timeout: float, body: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One HTTP request on a fresh connection (a beat every few seconds needs no pool)."""
    u = urlsplit(url)
    conn_cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(u.hostname or "127.0.0.1", u.port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {**(headers or {}), **({"Content-Type": "application/json"} if data else {})}
        conn.request(method, (u.path or "/") + (f"?{u.query}" if u.query else ""), data, hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class HeartbeatAgent:
    """Beats of ``service`` (its own endpoint at ``self_url``) reported to the operator API at
    ``api_url`` with ``token`` (its heartbeat token or the API token)."""

    def __init__(self, service: str, self_url: str, api_url: str, token: str, *,
                 metrics: Callable[[], dict[str, float]] | None = None,
                 unreachable_retry_seconds: float = 1.0) -> None:
        self.service = service
        self.self_url = self_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.metrics = metrics or (lambda: {})
        # until the operator's policy is read, the only timing not from it: how soon to ask again
        self.unreachable_retry_seconds = unreachable_retry_seconds
        self._headers = {"Authorization": f"Bearer {token}"}
        self.policy: dict[str, Any] | None = None
        self.breaker: CircuitBreaker | None = None
        self.last: AgentBeat | None = None
        self.beats = 0

    @classmethod
    def from_env(cls, service: str, self_url: str, **kw: Any) -> HeartbeatAgent | None:
        """From ``ATLAS_AUTONOMOUS_URL`` and ``ATLAS_HEARTBEAT_TOKEN`` (or the API token);
        None when the process was not started by an operator that hands them out."""
        url = os.environ.get("ATLAS_AUTONOMOUS_URL")
        token = os.environ.get("ATLAS_HEARTBEAT_TOKEN") or os.environ.get("ATLAS_AUTONOMOUS_TOKEN")
        if not url or not token:
            return None
        return cls(service, self_url, url, token, **kw)

    def load_policy(self) -> dict[str, Any]:
        """``healing.heartbeat`` and ``heartbeat_breaker`` of the operator's policy in force;
        the breaker keeps its state across a reload (a policy edit applies at once)."""
        status, raw = _request(self.api_url + "/api/policy", "GET", 5, headers=self._headers)
        if status != 200:
            raise ReportFailed(f"GET /api/policy answered {status}")
        return self._apply(json.loads(raw)["policy"]["healing"])

    def _apply(self, healing: dict[str, Any]) -> dict[str, Any]:
        hb, br = healing["heartbeat"], healing["heartbeat_breaker"]
        params = {"failure_threshold": br["failure_threshold"], "timeout": br["timeout_seconds"],
                  "success_threshold": br["success_threshold"]}
        if self.breaker is None:
            self.breaker = CircuitBreaker(f"heartbeat-report:{self.service}", **params)
        else:
            self.breaker.configure(**params)
        self.policy = hb
        return hb

    def check(self) -> AgentBeat:
        """GET the service's own heartbeat endpoint within the policy's timeout."""
        assert self.policy is not None
        url, timeout = self.self_url + self.policy["path"], float(self.policy["timeout_seconds"])
        t0 = time.perf_counter()
        try:
            status, _ = _request(url, "GET", timeout)
        except TimeoutError:
            return AgentBeat(False, None, None, f"timeout after {timeout:g}s (GET {url})")
        except (OSError, http.client.HTTPException) as exc:
            return AgentBeat(False, None, None, f"no answer from {url}: {type(exc).__name__}")
        ms = round((time.perf_counter() - t0) * 1e3, 3)
        return AgentBeat(200 <= status < 300, ms, status, f"HTTP {status} in {ms:g} ms")

    def _post(self, beat: AgentBeat) -> dict[str, Any]:
        body = {"ok": beat.ok, "latency_ms": beat.latency_ms, "status_code": beat.status_code,
                "message": beat.message, "metrics": beat.metrics}
        try:
            status, raw = _request(f"{self.api_url}/api/healing/heartbeat/{self.service}",
                                   "POST", 5, body, self._headers)
        except (OSError, http.client.HTTPException) as exc:
            raise ReportFailed(f"no answer from the operator: {type(exc).__name__}: {exc}"
                               ) from None
        if status != 200:
            raise ReportFailed(f"operator answered {status}: {raw[:200]!r}")
        return dict(json.loads(raw))

    def beat(self) -> AgentBeat:
        """One beat: check, collect metrics, report through the breaker."""
        if self.policy is None or self.breaker is None:
            try:
                self.load_policy()
            except (OSError, http.client.HTTPException, ReportFailed, KeyError,
                    ValueError) as exc:
                res = AgentBeat(False, None, None, "operator policy unreadable",
                                report_error=f"{type(exc).__name__}: {exc}"[:300])
                self.last = res
                return res
        assert self.breaker is not None
        res = self.check()
        res.metrics = {k: float(v) for k, v in self.metrics().items()}
        try:
            answer = self.breaker.call(self._post, res)
            res.reported = True
            res.healing_requested = bool(answer.get("healing_requested"))
            if "heartbeat" in answer:  # the policy in force comes back with every report
                self._apply(answer)
        except CircuitOpenError as exc:
            res.report_error = f"not sent: {exc}"
        except ReportFailed as exc:
            res.report_error = str(exc)[:300]
        res.breaker = self.breaker.get_state().value
        self.beats += 1
        self.last = res
        return res

    def run(self, stop: threading.Event) -> None:
        """Beat until ``stop`` is set (one report per beat; its answer carries the policy)."""
        while not stop.is_set():
            self.beat()
            interval = (float(self.policy["interval_seconds"]) if self.policy
                        else self.unreachable_retry_seconds)
            if stop.wait(interval):
                return
