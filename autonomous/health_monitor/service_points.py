"""The services' figures as time-series points: the one writer of service metrics.

:func:`service_readings` turns each service's figures of a cycle into (name, labels, value)
readings; :class:`ServicePoints` adds, per cycle, what arrived since the previous write — one
``service.probe_latency_ms`` point per liveness probe answered (at the probe's own time) and
the tool counters of a new scrape — keeping, per service, a cursor of what it has written so
nothing is written twice.
"""

from __future__ import annotations

from typing import Any

from autonomous.health_monitor.service_health import ServiceHealth
from autonomous.store.timeseries import Point

__all__ = ["ServicePoints", "service_readings"]

ToolCounters = tuple[float, dict[str, tuple[float, float, float]]]


def service_readings(latest: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, str], float]]:
    """Each service's figures. ``service.up`` is the liveness verdict — 0 for a service that
    is stopped, isolated or paused (declared, supervised and not running: no probe runs, and
    no probe is not "up"); none while a service has not been probed yet (unknown is not
    written as a value)."""
    out = []
    for name, m in latest.items():
        lab = {"service": name}
        if m["live"] is not None:
            out.append(("service.up", lab, 1.0 if m["live"] else 0.0))
        for k in ("latency_p95_ms", "error_rate", "throughput_rps"):
            if m[k] is not None:
                out.append((f"service.{k}", lab, float(m[k])))
    return out


class ServicePoints:
    """Points to write for the services at each cycle (readings plus what is new since)."""

    def __init__(self, services: ServiceHealth) -> None:
        self.services = services
        self._probes_written: dict[str, float] = {}  # service -> newest probe ts written
        # service -> the newest tool counters written: (scrape time, {tool: (calls, errors, s)})
        self._tools_written: dict[str, ToolCounters] = {}

    def since_last(self, latest: dict[str, dict[str, Any]], now: float) -> list[Point]:
        """Service figures at ``now`` plus one ``service.probe_latency_ms`` point per
        liveness probe answered since the last write (at the probe's own time)."""
        points = [Point(n, v, now, lab) for n, lab, v in service_readings(latest)]
        for name in latest:
            since = self._probes_written.get(name, -1e18)
            newest = since
            for p in self.services.probe_history(name):
                if p["ts"] is None or p["ts"] <= since:
                    continue
                newest = max(newest, p["ts"])
                if p.get("kind", "liveness") == "liveness" and p["latency_ms"] is not None:
                    points.append(Point("service.probe_latency_ms", float(p["latency_ms"]),
                                        p["ts"], {"service": name}))
            self._probes_written[name] = newest
            points += self._tool_points(name)
        return points

    def _tool_points(self, name: str) -> list[Point]:
        """Per tool of a newly scraped service: ``tools.calls_total`` and
        ``tools.errors_total`` (the counters, at the scrape's time) and ``tools.latency_ms``
        (mean over the calls since the previous scrape, or since the service started; none
        when there were none)."""
        got = self.services.tool_counters(name)
        if got is None:
            return []
        ts, tools = got
        prev = self._tools_written.get(name)
        if prev is not None and prev[0] >= ts:
            return []
        self._tools_written[name] = got
        out: list[Point] = []
        for tool, (calls, errors, seconds) in sorted(tools.items()):
            lab = {"service": name, "tool": tool}
            out.append(Point("tools.calls_total", calls, ts, lab))
            out.append(Point("tools.errors_total", errors, ts, lab))
            before = prev[1].get(tool) if prev is not None else None
            n0, s0 = (before[0], before[2]) if before is not None else (0.0, 0.0)
            if calls < n0:  # the service restarted: its counters began again
                n0 = s0 = 0.0
            if calls > n0:
                out.append(Point("tools.latency_ms", (seconds - s0) / (calls - n0) * 1e3, ts, lab))
        return out
