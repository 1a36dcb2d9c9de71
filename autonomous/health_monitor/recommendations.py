"""Concrete recommendations, each linked to the metrics behind it.

``recommendations(...)`` turns what the health monitor sees (resources over threshold,
services failing, predicted crossings, active anomalies, bottlenecks) into short sentences
that say what is wrong, how much, and what to do, e.g. ``disk / will be full in ~3 h at the
current rate (+4.9 %/h): free space or raise retention``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["human_duration", "recommendations"]

_ACTIONS = {
    "cpu": "find the busiest process or throttle low-priority work",
    "ram": "restart the service whose memory grows, or lower its load",
    "swap": "free memory: swapping slows every service",
    "disk": "free space or raise retention",
    "gpu": "queue or shed GPU work",
    "vram": "unload idle models or lower batch sizes",
}


def human_duration(seconds: float) -> str:
    """``~45 s``, ``~12 min``, ``~3 h``, ``~2 d``."""
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 5400:
        return f"~{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"~{seconds / 3600:.0f} h"
    return f"~{seconds / 86400:.0f} d"


def _subject(metric: str) -> str:
    if metric.startswith("disk.percent{mount="):
        return "disk " + metric[len("disk.percent{mount="):-1]
    return metric


def recommendations(problems: list[dict[str, Any]], services: dict[str, dict[str, Any]],
                    predictions: list[dict[str, Any]], anomalies: list[dict[str, Any]],
                    bottlenecks: list[dict[str, Any]], processes: dict[str, Any] | None,
                    thresholds: dict[str, float], *, now: float) -> list[dict[str, Any]]:
    """Recommendations, most urgent first, each ``{severity, text, metrics}``.

    The top process comes from the slower process sweep: the text says how old that sweep is
    (``now`` minus its ``ts``) instead of presenting it as the current top process.
    """
    out: list[dict[str, Any]] = []
    for p in problems:
        text = (f"{_subject(p['metric'])} at {p['value']:.0f} %, already above its threshold "
                f"{p['threshold']:.0f} %: {_ACTIONS.get(p['resource'], 'reduce the load')}")
        top = (processes or {}).get("by_cpu" if p["resource"] == "cpu" else "by_memory") or []
        if top and p["resource"] in ("cpu", "ram"):
            age = max(0.0, now - float((processes or {}).get("ts", now)))
            text += (f" (top process in the sweep {human_duration(age)} ago: "
                     f"{top[0]['name']} pid {top[0]['pid']})")
        out.append({"severity": "severa", "text": text, "metrics": [p["metric"]]})
    for name, m in services.items():
        if m["live"] is False:
            out.append({"severity": "severa", "metrics": [f"service.up{{service={name}}}"],
                        "text": f"service {name} fails liveness ({m['consecutive_failures']} "
                                f"consecutive failures, last: {(m['last_probe'] or {}).get('error')}"
                                f"): restart it or read its log"})
        elif m["live"] and m["ready"] is False:
            out.append({"severity": "moderada", "metrics": [f"service.up{{service={name}}}"],
                        "text": f"service {name} is alive but not ready: check its "
                                "dependencies and readiness endpoint"})
    for p in predictions:
        unit = "%" if "percent" in p["metric"] else ""
        if p.get("level") is not None and p["level"] >= p["threshold"]:
            out.append({"severity": "severa", "metrics": [p["metric"]],
                        "text": f"{_subject(p['metric'])} is already above {p['threshold']:.0f}"
                                f"{unit} ({p['level']:.1f}{unit}): "
                                f"{_ACTIONS.get(p['metric'].split('.')[0], 'act now')}"})
            continue
        out.append({"severity": "moderada", "metrics": [p["metric"]],
                    "text": f"{_subject(p['metric'])} will reach {p['threshold']:.0f}{unit} in "
                            f"{human_duration(p['eta_seconds'])} at the current rate "
                            f"({p['slope_per_hour']:+.2f}{unit}/h): "
                            f"{_ACTIONS.get(p['metric'].split('.')[0], 'act before it does')}"})
    for b in bottlenecks:
        if b["kind"] in ("latency", "errors", "dependency"):
            metric = {"latency": "service.latency_p95_ms", "errors": "service.error_rate",
                      "dependency": "service.dependency"}[b["kind"]]
            out.append({"severity": "moderada",
                        "metrics": [f"{metric}{{service={b['subject'].split('/')[0]}}}"],
                        "text": f"{b['subject']}: {b['detail']}: look at its log and recent "
                                "changes; healing may restart or degrade it"})
    for a in anomalies:
        out.append({"severity": a["severity"], "metrics": a["metrics_affected"] or [a["metric"]],
                    "text": f"anomaly on {a['metric']} ({a['severity']}, peak {a['peak_value']:.4g}"
                            f", {abs(a['peak_z']):.1f}σ from its baseline) for "
                            f"{human_duration(a['duration_seconds'])}: check what changed"})
    order = {"severa": 0, "moderada": 1, "leve": 2}
    return sorted(out, key=lambda r: order.get(r["severity"], 3))
