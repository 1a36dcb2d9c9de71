"""Failure memory: every failure the healer saw, what it tried and whether it worked.

Rows live in the operator store (``healing_failures``): ``error_signature`` (normalised, see
``signatures``), ``timestamp``, ``context`` (JSON), ``recovery_used``, ``success``, ``notes``.
From them: similar failures (same or similar signature), recurring errors, and preventive
actions a human should take. Success per (signature, strategy) is not ranked here: the one
success table is ``healing_knowledge`` (see ``store/schemas/healing_knowledge.py``).
Limits (rows kept, retention, similarity, sample sizes) come from policy ``healing.memory``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from autonomous.core.clock import Clock, iso
from autonomous.self_healing.signatures import similarity
from autonomous.store import Store

__all__ = ["FailureMemory"]

_PREVENT = {
    "RESOURCE": "raise spec.resources of {service} or find the leak/overload: it failed "
                "{count} times for lack of resources",
    "CONFIGURATION": "test {service}'s desired-state changes before they land (regression "
                     "tests, staged rollout): {count} bad configurations needed a rollback",
    "DEPENDENCY": "declare spec.fallback for {service} or make what it depends on highly "
                  "available: {count} failures came from a dependency",
    "FATAL": "fix the crash in {service} (it cannot heal by itself): {count} fatal failures",
    "TRANSIENT": "investigate {service}: the same transient error came back {count} times; "
                 "healing hides it, it does not fix it",
}


class FailureMemory:
    """``policy`` returns the ``healing.memory`` policy section in force."""

    def __init__(self, store: Store, clock: Clock, policy: Callable[[], dict[str, Any]]) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy

    # -- writing -----------------------------------------------------------------------------
    def record_failure(self, error_signature: str, *, context: dict[str, Any] | None = None,
                       recovery_used: str | None = None, success: bool | None = None,
                       notes: str | None = None, service: str | None = None,
                       error_type: str | None = None, duration_s: float | None = None) -> int:
        """Store one failure (its outcome may follow with ``update``); returns its id."""
        cur = self.store.execute(
            "INSERT INTO healing_failures(error_signature, service, error_type, timestamp, "
            "context, recovery_used, success, notes, duration_s) VALUES (?,?,?,?,?,?,?,?,?)",
            (error_signature, service, error_type, self.clock.now(),
             json.dumps(context or {}, default=str), recovery_used,
             None if success is None else int(success), notes, duration_s))
        self.prune()
        return int(cur.lastrowid or 0)

    def update(self, record_id: int, *, recovery_used: str | None, success: bool | None,
               notes: str | None = None, duration_s: float | None = None) -> None:
        """Set how the failure ended."""
        self.store.execute("UPDATE healing_failures SET recovery_used=?, success=?, notes=?, "
                           "duration_s=? WHERE id=?",
                           (recovery_used, None if success is None else int(success), notes,
                            duration_s, record_id))

    def prune(self) -> int:
        """Drop rows past the retention or beyond ``max_records`` (oldest first)."""
        p = self.policy()
        cutoff = self.clock.now() - p["retention_days"] * 86400
        n = self.store.execute("DELETE FROM healing_failures WHERE timestamp < ?",
                               (cutoff,)).rowcount
        n += self.store.execute(
            "DELETE FROM healing_failures WHERE id NOT IN (SELECT id FROM healing_failures "
            "ORDER BY id DESC LIMIT ?)", (p["max_records"],)).rowcount
        return n

    # -- reading -----------------------------------------------------------------------------
    def get_similar_failures(self, error_signature: str, limit: int = 20) -> list[dict[str, Any]]:
        """Failures with the same signature, then similar ones, newest first within each."""
        threshold = self.policy()["similarity_threshold"]
        sigs = self.store.query("SELECT error_signature, MAX(timestamp) t FROM healing_failures "
                                "GROUP BY error_signature ORDER BY t DESC LIMIT 2000")
        scored = [(similarity(error_signature, r["error_signature"]), r["error_signature"])
                  for r in sigs]
        scored = sorted(((s, sig) for s, sig in scored if s >= threshold or sig ==
                         error_signature), key=lambda x: -x[0])
        out: list[dict[str, Any]] = []
        for score, sig in scored:
            rows = self.store.query("SELECT * FROM healing_failures WHERE error_signature=? "
                                    "ORDER BY id DESC LIMIT ?", (sig, limit - len(out)))
            out += [{**_row(r), "similarity": round(1.0 if sig == error_signature else score, 3)}
                    for r in rows]
            if len(out) >= limit:
                break
        return out

    def get_recurring_errors(self, window_seconds: float | None = None,
                             min_count: int | None = None) -> list[dict[str, Any]]:
        """Signatures seen at least ``min_count`` times in the window (policy defaults)."""
        p = self.policy()
        window = p["recurring_window_seconds"] if window_seconds is None else window_seconds
        least = p["recurring_min_count"] if min_count is None else min_count
        rows = self.store.query(
            "SELECT error_signature, COUNT(*) n, MIN(timestamp) first, MAX(timestamp) last, "
            "GROUP_CONCAT(DISTINCT service) services, MAX(error_type) error_type, "
            "SUM(success) ok, COUNT(success) judged FROM healing_failures WHERE timestamp >= ? "
            "GROUP BY error_signature HAVING n >= ? ORDER BY n DESC",
            (self.clock.now() - window, least))
        return [{"error_signature": r["error_signature"], "count": r["n"],
                 "first": iso(r["first"]), "last": iso(r["last"]),
                 "services": sorted((r["services"] or "").split(",")) if r["services"] else [],
                 "error_type": r["error_type"],
                 "success_rate": round(r["ok"] / r["judged"], 3) if r["judged"] else None}
                for r in rows]

    def generate_preventive_actions(self) -> list[dict[str, Any]]:
        """What a human could change so recurring failures stop happening at all."""
        out = []
        for rec in self.get_recurring_errors():
            service = ", ".join(rec["services"]) or "the service"
            template = _PREVENT.get(rec["error_type"] or "TRANSIENT", _PREVENT["TRANSIENT"])
            action = template.format(service=service, count=rec["count"])
            if rec["success_rate"] is not None and rec["success_rate"] < \
                    self.policy()["min_success_rate"]:
                action += (f"; healing succeeds only {rec['success_rate']:.0%} of the time for "
                           f"it: force another strategy with 'atlas-autonomous heal trigger {service} "
                           "--strategy STRATEGY'")
            out.append({"error_signature": rec["error_signature"],
                        "error_type": rec["error_type"], "count": rec["count"],
                        "services": rec["services"], "action": action})
        return out

    def stats(self) -> dict[str, Any]:
        """Row counts by type and outcome."""
        rows = self.store.query("SELECT error_type, success, COUNT(*) n FROM healing_failures "
                                "GROUP BY error_type, success")
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for r in rows:
            key = {None: "open", 1: "healed", 0: "failed"}[r["success"]]
            out[r["error_type"] or "unknown"][key] = r["n"]
        return dict(out)


def _row(r: Any) -> dict[str, Any]:
    return {"id": r["id"], "error_signature": r["error_signature"], "service": r["service"],
            "error_type": r["error_type"], "timestamp": iso(r["timestamp"]),
            "context": json.loads(r["context"]), "recovery_used": r["recovery_used"],
            "success": None if r["success"] is None else bool(r["success"]),
            "notes": r["notes"], "duration_s": r["duration_s"]}
