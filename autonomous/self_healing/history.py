"""Healing history: one row per incident (a failure of a service and what was done about it).

Rows carry the classification, every attempt (strategy, gate, result, timing), the final
state (``healed``, ``failed``, ``escalated``, ``awaiting_approval``, ``rejected``,
``dry_run``, ``skipped``), MTTR (detection → verified healthy) and the knowledge-graph node
of the outcome. ``stats`` gives attempts, successes and MTTR per error type.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from typing import Any

from autonomous.core.clock import Clock, iso
from autonomous.store import Store

__all__ = ["FINAL_STATES", "HealingHistory"]

FINAL_STATES = ("healed", "failed", "escalated", "rejected", "dry_run", "skipped")


class HealingHistory:
    def __init__(self, store: Store, clock: Clock, max_rows: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock
        self.max_rows = max_rows

    def save(self, row: dict[str, Any]) -> None:
        """Insert or replace an incident row (``attempts`` is a list, stored as JSON)."""
        cols = ("id", "service", "source", "error_type", "severity", "rule", "error_signature",
                "strategy", "gate", "state", "success", "message", "detected_at", "finished_at",
                "mttr_s", "attempts", "graph_node", "mode", "generation")
        values = [json.dumps(row.get(c) or [], default=str) if c == "attempts" else row.get(c)
                  for c in cols]
        values[cols.index("success")] = None if row.get("success") is None \
            else int(bool(row["success"]))
        self.store.execute(f"INSERT OR REPLACE INTO healing_history({', '.join(cols)}) VALUES "
                           f"({', '.join('?' * len(cols))})", values)
        self.store.execute("DELETE FROM healing_history WHERE id NOT IN (SELECT id FROM "
                           "healing_history ORDER BY detected_at DESC LIMIT ?)",
                           (self.max_rows(),))

    def list(self, *, service: str | None = None, error_type: str | None = None,
             strategy: str | None = None, state: str | None = None,
             success: bool | None = None, since: float | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
        """Incidents, newest first, filtered by any of the arguments."""
        sql = "SELECT * FROM healing_history WHERE 1=1"
        args: list[Any] = []
        for col, val in (("service", service), ("error_type", error_type),
                         ("strategy", strategy), ("state", state)):
            if val is not None:
                sql += f" AND {col}=?"
                args.append(val)
        if success is not None:
            sql += " AND success=?"
            args.append(int(success))
        if since is not None:
            sql += " AND detected_at>=?"
            args.append(since)
        rows = self.store.query(sql + " ORDER BY detected_at DESC LIMIT ?", (*args, limit))
        return [_out(r) for r in rows]

    def close_open(self, service: str, reason: str, now: float) -> int:
        """Close rows of ``service`` still open (left by an earlier operator process)."""
        return self.store.execute(
            "UPDATE healing_history SET state='closed', message=?, finished_at=? WHERE "
            "service=? AND state IN ('open', 'awaiting_approval', 'backoff')",
            (reason[:500], now, service)).rowcount

    def stats(self) -> dict[str, Any]:
        """Attempts, successes and MTTR (median, mean, max seconds) per error type."""
        # counted by SQLite (no row's attempts JSON decoded in Python); only the MTTR values,
        # needed for the median, come back as rows
        rows = self.store.query(
            "SELECT error_type, COUNT(*) AS incidents, "
            "COALESCE(SUM(json_array_length(attempts)), 0) AS attempts, "
            "SUM(state='healed') AS healed, SUM(state='failed') AS failed, "
            "SUM(state='escalated') AS escalated FROM healing_history GROUP BY error_type")
        per: dict[str, dict[str, Any]] = {
            r["error_type"]: {"incidents": r["incidents"], "attempts": r["attempts"],
                              "healed": r["healed"], "failed": r["failed"],
                              "escalated": r["escalated"], "_mttr": []} for r in rows}
        for etype, mttr in self.store.query_tuples(
                "SELECT error_type, mttr_s FROM healing_history WHERE mttr_s IS NOT NULL"):
            if etype in per:  # a row saved between the two reads is counted next time
                per[etype]["_mttr"].append(mttr)
        out = {}
        for etype, s in sorted(per.items()):
            m = s.pop("_mttr")
            s["mttr_s"] = {"median": round(statistics.median(m), 3), "mean":
                           round(statistics.fmean(m), 3), "max": round(max(m), 3)} if m else None
            out[etype] = s
        total = {k: sum(s[k] for s in out.values()) for k in ("incidents", "attempts", "healed",
                                                             "failed", "escalated")}
        return {"by_type": out, "total": total}


def _out(r: Any) -> dict[str, Any]:
    d = dict(r)
    d["attempts"] = json.loads(d["attempts"])
    d["success"] = None if d["success"] is None else bool(d["success"])
    d["detected_at"] = iso(d["detected_at"])
    d["finished_at"] = iso(d["finished_at"])
    return d
