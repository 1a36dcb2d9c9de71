"""The figures :class:`~autonomous.health_monitor.service_health.ServiceHealth` derives from
what it has seen: pure functions of probe results, scrapes and the services controller's
observed state (no I/O, time passed in), so each is tested on plain values.

* :func:`probe_view`: live / ready / failures / history from the services controller when it
  runs, else from ServiceHealth's own probes; a supervised process that is not running is not
  live, with the reason (held, or its exit code).
* :func:`after_startup`: a start-up's failures inside the grace are dropped.
* :func:`request_rates`: throughput and request error rate between the oldest and newest scrape
  of the window (null with fewer than two, or with no requests).
* :func:`uptime`, :func:`pct`, :func:`bottlenecks`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from autonomous.core.stats import percentile
from autonomous.supervisor.probes import ProbeState

__all__ = ["after_startup", "bottlenecks", "pct", "probe_view", "request_rates", "uptime"]


def probe_view(own: ProbeState, own_history: Iterable[dict[str, Any]],
               own_last: dict[str, Any] | None, obs: dict[str, Any] | None) -> dict[str, Any]:
    """Probe state from the services controller (``obs``, its observed entry of the service)
    or, when it does not run (``obs is None``), from the own probes."""
    if obs is None:
        return {"source": "service_health", "live": own.live, "ready": own.ready,
                "failures": own.consecutive_failures, "history": own_history, "last": own_last}
    running = obs.get("running")
    if obs and running is False:  # declared, supervised and not running
        why = (f"not running ({obs['held']}: {obs.get('reason') or 'no reason given'})"
               if obs.get("held") else f"not running (exit code {obs.get('returncode')})")
        last = {**(obs.get("last_probe") or {"ok": False, "latency_ms": None,
                                              "status_code": None, "ts": None}),
                "error": why}
        return {"source": "services", "live": False, "ready": False,
                "failures": obs.get("consecutive_failures", 0),
                "history": obs.get("probe_history") or [], "last": last}
    return {"source": "services", "live": obs.get("live"), "ready": obs.get("ready"),
            "failures": obs.get("consecutive_failures", 0),
            "history": obs.get("probe_history") or [], "last": obs.get("last_probe")}


def request_rates(scrapes: Iterable[tuple[float, float, float]], now: float, window: float
                  ) -> dict[str, float | None]:
    """Throughput (req/s) and request error rate over the scrapes (time, requests, errors)
    of the last ``window`` seconds."""
    inside = [s for s in scrapes if now - s[0] <= window]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return {"throughput": None, "error_rate": None}
    (t0, n0, e0), (t1, n1, e1) = inside[0], inside[-1]
    dn, de = max(0.0, n1 - n0), max(0.0, e1 - e0)  # a restart resets the counters
    return {"throughput": dn / (t1 - t0),
            "error_rate": min(1.0, de / dn) if dn else None}  # no requests: no rate


def uptime(obs: dict[str, Any] | None, now: float) -> float | None:
    """Seconds since the running process started (None when unknown or not running)."""
    obs = obs or {}
    started = obs.get("started_at")
    if started is not None and obs.get("running", True):
        return max(0.0, now - float(started))
    return None


def after_startup(probes: list[dict[str, Any]], started_at: float | None,
                   grace: float) -> list[dict[str, Any]]:
    """Drop the failures of a start-up: after ``started_at`` and before the first passing
    probe, inside ``startup_grace_seconds`` (they do not count for liveness either)."""
    if started_at is None or grace <= 0:
        return probes
    first_ok = next((p["ts"] for p in probes if p["ok"] and p["ts"] >= started_at), None)
    end = min(started_at + grace, first_ok if first_ok is not None else float("inf"))
    return [p for p in probes if p["ok"] or not started_at <= p["ts"] < end]



def pct(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (the one percentile: linear interpolation), to 3 decimals."""
    p = percentile(sorted_values, q)
    return None if p is None else round(p, 3)


def bottlenecks(metrics: dict[str, dict[str, Any]], resource_problems: list[dict[str, Any]],
                thresholds: dict[str, Any]) -> list[dict[str, Any]]:
    """What limits the stack now: resources at their limit, the dominant probe latency, error
    rates over the threshold, dependencies down (``metrics``: per-service figures)."""
    th = thresholds
    out = [{"kind": "resource", "subject": p["metric"], "value": p["value"],
           "threshold": p["threshold"], "detail": f"{p['resource']} at its limit"}
           for p in resource_problems]
    lat = {n: m["latency_p95_ms"] for n, m in metrics.items() if m["latency_p95_ms"]}
    if lat:
        worst = max(lat, key=lambda n: lat[n])
        share = lat[worst] / sum(lat.values())
        if lat[worst] >= th["service_latency_ms"]:
            out.append({"kind": "latency", "subject": worst, "value": lat[worst],
                        "threshold": th["service_latency_ms"],
                        "detail": f"p95 {lat[worst]:.0f} ms, {share:.0%} of the stack's "
                                  "probe latency"})
    for n, m in metrics.items():
        if (m["error_rate"] or 0.0) > th["service_error_rate"]:
            out.append({"kind": "errors", "subject": n, "value": m["error_rate"],
                        "threshold": th["service_error_rate"],
                        "detail": f"{m['error_rate']:.0%} errors over the window"})
        for dep, d in m["dependencies"].items():
            if not d["online"]:
                out.append({"kind": "dependency", "subject": f"{n}/{dep}", "value": None,
                            "threshold": None, "detail": d["error"] or "down"})
    return out

