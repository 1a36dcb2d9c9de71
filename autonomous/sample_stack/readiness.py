"""Readiness of a sample service: started, warmed up, and every declared dependency answering.

Dependencies are URLs (``--depends-on http://127.0.0.1:8000/health``, repeatable). A daemon
thread GETs each one every ``interval_s`` (timeout ``timeout_s``); a dependency is up when it
answers 2xx. Until the first check of a dependency has finished, it counts as down.
"""

from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import urlsplit

__all__ = ["Readiness", "check_url", "validate_url"]


def validate_url(url: str) -> str:
    """The URL itself, or ValueError saying what a dependency URL must look like."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"--depends-on: {url!r} must be an http:// URL such as "
                         "http://127.0.0.1:8000/health (the sample stack has no TLS client)")
    return url


def check_url(url: str, timeout_s: float) -> dict[str, object]:
    """GET ``url`` once: ``{"ok", "status", "error", "latency_ms"}``."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    t0 = time.perf_counter()
    try:
        conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        resp = conn.getresponse()
        resp.read()
        status: int | None = resp.status
        error = None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except (OSError, http.client.HTTPException) as e:
        status, error = None, f"{type(e).__name__}: {e}"
    finally:
        conn.close()
    return {"ok": error is None, "status": status, "error": error,
            "latency_ms": round((time.perf_counter() - t0) * 1000, 3)}


class Readiness:
    """Whether the service is ready to take traffic, and why not."""

    def __init__(self, depends_on: list[str], *, ready_delay_s: float = 0.0,
                 interval_s: float = 0.5, timeout_s: float = 0.5) -> None:
        self.depends_on = [validate_url(u) for u in depends_on]
        self.ready_delay_s = ready_delay_s
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._results: dict[str, dict[str, object]] = {}
        self._started_mono: float | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Mark the server as listening and begin checking dependencies."""
        self._started_mono = time.monotonic()
        for url in self.depends_on:
            threading.Thread(target=self._watch, args=(url,), name=f"dep:{url}",
                             daemon=True).start()

    def stop(self) -> None:
        """Stop checking dependencies."""
        self._stop.set()

    def _watch(self, url: str) -> None:
        while not self._stop.is_set():
            self._results[url] = dict(check_url(url, self.timeout_s), checked_at=time.time())
            self._stop.wait(self.interval_s)

    def state(self) -> tuple[bool, list[str], dict[str, dict[str, object]]]:
        """(ready, reasons it is not, last result per dependency)."""
        reasons = []
        if self._started_mono is None:
            reasons.append("not started: the server is not listening yet")
        elif time.monotonic() - self._started_mono < self.ready_delay_s:
            reasons.append(f"warming up: ready {self.ready_delay_s:g} s after start")
        deps = {u: dict(self._results.get(u) or {"ok": False, "error": "not checked yet"})
                for u in self.depends_on}
        reasons += [f"dependency {u} is down: {r.get('error')}" for u, r in deps.items()
                    if not r.get("ok")]
        return not reasons, reasons, deps
