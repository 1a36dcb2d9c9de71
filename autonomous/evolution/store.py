"""Rollout state in the store: every transition is one transaction (state row + event +
quarantine), written *before* the gateway is reconfigured. The gateway configuration is a pure
function of the persisted states, so an operator SIGKILLed at any step rewrites the same
configuration on restart and continues from the recorded phase (or its rollback): never
half-applied. Each running rollout's candidate process is recorded by identity (pid, create
time, argv, port, the operator pid that started it): a restarted operator finds one the dead
operator left behind (``autonomous/evolution/resume.py``) and knows it is resuming."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from autonomous.evolution.staged_rollout import RolloutState
from autonomous.store.db import Store

__all__ = ["CandidateRecord", "RolloutStore"]


@dataclass(frozen=True)
class CandidateRecord:
    """The candidate process of running rollout ``rollout_id``, as recorded when started."""

    rollout_id: int
    service: str
    version: str
    pid: int
    create_time: float
    port: int
    argv: tuple[str, ...]
    operator_pid: int
    started_at: float


class RolloutStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, state: RolloutState, now: float) -> int:
        with self.store.transaction() as c:
            if c.execute("SELECT 1 FROM evolution_rollouts WHERE service=? AND status='running'",
                         (state.service,)).fetchone():
                raise ValueError(f"{state.service} already has a running rollout")
            cur = c.execute(
                "INSERT INTO evolution_rollouts (service, from_version, to_version, phase_index,"
                " phase_started_at, status, reason, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (state.service, state.from_version, state.to_version, state.phase_index,
                 state.phase_started_at, state.status, state.reason, now, now))
            rid = int(cur.lastrowid or 0)
            self._event(c, rid, now, "start", state, "rollout started", {})
        return rid

    def transition(self, rid: int, state: RolloutState, action: str, reason: str, now: float,
                   evidence: dict[str, Any] | None = None) -> None:
        with self.store.transaction() as c:
            c.execute("UPDATE evolution_rollouts SET phase_index=?, phase_started_at=?, "
                      "status=?, reason=?, updated_at=? WHERE id=?",
                      (state.phase_index, state.phase_started_at, state.status, state.reason,
                       now, rid))
            self._event(c, rid, now, action, state, reason, evidence or {})
            if state.status == "rolled_back":
                c.execute("INSERT OR REPLACE INTO evolution_quarantine VALUES (?,?,?,?)",
                          (state.service, state.to_version, reason, now))

    @staticmethod
    def _event(c: Any, rid: int, now: float, action: str, state: RolloutState, reason: str,
               evidence: dict[str, Any]) -> None:
        c.execute("INSERT INTO evolution_events (rollout_id, ts, action, phase_index, reason, "
                  "evidence) VALUES (?,?,?,?,?,?)",
                  (rid, now, action, state.phase_index, reason,
                   json.dumps(evidence, sort_keys=True, default=str)))

    def running(self) -> dict[int, RolloutState]:
        rows = self.store.query("SELECT * FROM evolution_rollouts WHERE status='running'")
        return {int(r["id"]): RolloutState(r["service"], r["from_version"], r["to_version"],
                                           int(r["phase_index"]), float(r["phase_started_at"]),
                                           r["status"], r["reason"]) for r in rows}

    def history(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT e.*, r.service, r.from_version, r.to_version FROM evolution_events e "
            "JOIN evolution_rollouts r ON r.id = e.rollout_id ORDER BY e.id DESC LIMIT ?",
            (limit,))
        return [dict(r) | {"evidence": json.loads(r["evidence"])} for r in rows]

    def quarantined(self) -> set[tuple[str, str]]:
        return {(r["service"], r["version"])
                for r in self.store.query("SELECT service, version FROM evolution_quarantine")}

    def quarantine(self, service: str, version: str, reason: str, now: float) -> None:
        """Keep ``version`` of ``service`` from being proposed or rolled out again (a failed
        pre-rollout check; a rolled-back rollout is quarantined by :meth:`transition`)."""
        self.store.execute("INSERT OR REPLACE INTO evolution_quarantine VALUES (?,?,?,?)",
                           (service, version, reason, now))

    def clear_quarantine(self, service: str, version: str) -> bool:
        cur = self.store.execute("DELETE FROM evolution_quarantine WHERE service=? AND version=?",
                                 (service, version))
        return cur.rowcount > 0

    def note(self, rid: int, action: str, phase_index: int, reason: str, now: float,
             evidence: dict[str, Any] | None = None) -> None:
        """An event of rollout ``rid`` that changes no state (an orphan stopped, a retirement)."""
        with self.store.transaction() as c:
            c.execute("INSERT INTO evolution_events (rollout_id, ts, action, phase_index, "
                      "reason, evidence) VALUES (?,?,?,?,?,?)",
                      (rid, now, action, phase_index, reason,
                       json.dumps(evidence or {}, sort_keys=True, default=str)))

    # -- candidate processes ------------------------------------------------------------------
    def record_candidate(self, rec: CandidateRecord) -> None:
        self.store.execute(
            "INSERT OR REPLACE INTO evolution_candidates (rollout_id, service, version, pid, "
            "create_time, port, argv, operator_pid, started_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (rec.rollout_id, rec.service, rec.version, rec.pid, rec.create_time, rec.port,
             json.dumps(list(rec.argv)), rec.operator_pid, rec.started_at))

    def forget_candidate(self, rid: int) -> None:
        self.store.execute("DELETE FROM evolution_candidates WHERE rollout_id=?", (rid,))

    def candidates(self) -> dict[int, CandidateRecord]:
        """Recorded candidate processes by rollout id (alive or not: see resume.py)."""
        return {int(r["rollout_id"]): CandidateRecord(
            int(r["rollout_id"]), r["service"], r["version"], int(r["pid"]),
            float(r["create_time"]), int(r["port"]), tuple(json.loads(r["argv"])),
            int(r["operator_pid"]), float(r["started_at"]))
            for r in self.store.query("SELECT * FROM evolution_candidates")}

    def prune(self, before_ts: float) -> int:
        """Retention: finished rollouts (their events and candidate rows cascade) last updated
        before ``before_ts``. The quarantine is kept: it is what makes a rollback stick."""
        with self.store.transaction() as c:
            cur = c.execute("DELETE FROM evolution_rollouts WHERE status != 'running' "
                            "AND updated_at < ?", (before_ts,))
            return int(cur.rowcount)

    def updated_at(self, rid: int) -> float | None:
        r = self.store.query_one("SELECT updated_at FROM evolution_rollouts WHERE id=?", (rid,))
        return float(r["updated_at"]) if r is not None else None

    def latest(self, service: str, to_version: str) -> tuple[int, RolloutState] | None:
        """The newest rollout of ``service`` to ``to_version`` (any status)."""
        rows = self.store.query("SELECT * FROM evolution_rollouts WHERE service=? AND "
                                "to_version=? ORDER BY id DESC LIMIT 1", (service, to_version))
        if not rows:
            return None
        r = rows[0]
        return int(r["id"]), RolloutState(r["service"], r["from_version"], r["to_version"],
                                          int(r["phase_index"]), float(r["phase_started_at"]),
                                          r["status"], r["reason"])
