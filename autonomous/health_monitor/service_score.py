"""The service score: 0–100 from what was measured of one service, or null with a reason.

Documented formula: 0 when not live; null while not probed yet; otherwise ``100 −
latency_weight·min(1, p95/threshold) − error_weight·error_rate`` (a term whose figure was
not measured is left out, and :func:`score_reason` says so: a missing p95 is not 0 ms, a
missing error rate is not 0 %), capped at 50 when not ready, then multiplied by
``1 − dependency_weight·(share of dependencies down)``. Weights and thresholds: policy
``health.score`` / ``health.thresholds``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["score_reason", "service_score"]


def service_score(m: dict[str, Any], pol: dict[str, Any]) -> float | None:
    if m["live"] is False:
        return 0.0
    if m["live"] is None:
        return None if m["last_probe"] is None else (100.0 if m["last_probe"]["ok"] else 0.0)
    sc, th = pol["score"], pol["thresholds"]
    score = 100.0
    if m["latency_p95_ms"] is not None:  # not measured: no term (not 0 ms)
        score -= sc["latency_weight"] * min(1.0, m["latency_p95_ms"] / th["service_latency_ms"])
    if m["error_rate"] is not None:  # not measured: no term (not 0 % errors)
        score -= sc["error_weight"] * m["error_rate"]
    if m["ready"] is False:
        score = min(score, 50.0)
    deps = list(m["dependencies"].values())
    if deps:
        down = sum(not d["online"] for d in deps) / len(deps)
        score *= 1.0 - sc["dependency_weight"] * down
    return round(max(0.0, score), 2)


def score_reason(m: dict[str, Any]) -> str | None:
    """Why a score is null or left a term out; None when everything was measured."""
    if m["live"] is None and m["last_probe"] is None:
        return "not probed yet"
    missing = [k for k in ("latency_p95_ms", "error_rate") if m[k] is None]
    if m["live"] and missing:
        return f"not measured in the window, left out of the score: {', '.join(missing)}"
    return None
