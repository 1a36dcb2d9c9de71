"""Update sets: several services updated as one ordered, all-or-nothing set.

A set is data the update-set controller (``controllers/evolution_sets.py``) reconciles; it
expresses its intent only as update proposals (one per member, in dependency order: the
evolution controller turns each into a staged rollout) and as two flags per member that the
evolution controller reads: ``commit_released`` (a member at FULL holds its commit until every
member reached FULL) and ``abort_reason`` (roll this member's rollout back: another failed).

States: ``pending`` → ``rolling`` (member ``current_index``) → ``committing`` (every member at
FULL: commits released together) → ``done``; or, when a member rolls back, ``rolling_back``
(the members already promoted are rolled back in reverse order) → ``rolled_back`` with the
reason and the failing member. Member statuses: pending, rolling, committed, rolled_back,
aborted (rolled back because another member failed), skipped (never started).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from autonomous.core.clock import Clock
from autonomous.core.errors import Conflict, NotFound
from autonomous.store.db import Store
from autonomous.supervisor.order import HasDependencies, topo_order

__all__ = ["MemberRow", "OPEN_SETS", "SetRow", "UpdateSetFacade", "UpdateSetStore",
           "order_members"]

SetState = Literal["pending", "rolling", "committing", "done", "rolling_back", "rolled_back"]
MemberStatus = Literal["pending", "rolling", "committed", "rolled_back", "aborted", "skipped"]
OPEN_SETS: tuple[SetState, ...] = ("pending", "rolling", "committing", "rolling_back")


@dataclass(frozen=True)
class MemberRow:
    set_id: int
    idx: int
    service: str
    from_version: str
    to_version: str
    command: list[str] | None
    status: MemberStatus
    proposal_id: int | None
    abort_reason: str | None
    commit_released: bool

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.idx, "service": self.service, "from_version": self.from_version,
                "to_version": self.to_version, "command": self.command, "status": self.status,
                "proposal_id": self.proposal_id, "abort_reason": self.abort_reason,
                "commit_released": self.commit_released}


@dataclass(frozen=True)
class SetRow:
    id: int
    state: SetState
    current_index: int
    failed_member: str | None
    reason: str
    origin: str
    created_at: float
    updated_at: float
    members: tuple[MemberRow, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "current_index": self.current_index,
                "failed_member": self.failed_member, "reason": self.reason,
                "origin": self.origin, "created_at": self.created_at,
                "updated_at": self.updated_at, "members": [m.as_dict() for m in self.members]}


def order_members(requested: Sequence[str], services: Mapping[str, HasDependencies]
                  ) -> list[str]:
    """The requested services in dependency order (the one ``topo_order``). NotFound for an
    undeclared service; Conflict for a duplicate or a dependency cycle among them."""
    seen: set[str] = set()
    for s in requested:
        if s not in services:
            raise NotFound(f"service {s!r} is not declared")
        if s in seen:
            raise Conflict(f"service {s!r} appears twice in the set")
        seen.add(s)
    sub = {s: services[s] for s in requested}

    def cyclic(n: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        if n in path:
            return path[path.index(n):] + (n,)
        for d in sorted(sub[n].depends_on):
            if d in sub and (c := cyclic(d, path + (n,))) is not None:
                return c
        return None

    for s in sorted(sub):
        if (c := cyclic(s, ())) is not None:
            raise Conflict(f"dependency cycle among the set's services: {' → '.join(c)}")
    return topo_order(sub)


def _member(r: Any) -> MemberRow:
    return MemberRow(int(r["set_id"]), int(r["idx"]), r["service"], r["from_version"],
                     r["to_version"], json.loads(r["command"]) if r["command"] else None,
                     r["status"], int(r["proposal_id"]) if r["proposal_id"] is not None
                     else None, r["abort_reason"], bool(r["commit_released"]))


class UpdateSetStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, members: Sequence[tuple[str, str, str, list[str] | None]], origin: str,
               now: float) -> int:
        """``members``: (service, from_version, to_version, command) in dependency order."""
        with self.store.transaction() as c:
            busy = [m[0] for m in members if c.execute(
                "SELECT 1 FROM evolution_update_set_members m JOIN evolution_update_sets s "
                "ON s.id = m.set_id WHERE m.service=? AND s.state IN (?,?,?,?)",
                (m[0], *OPEN_SETS)).fetchone()]
            if busy:
                raise Conflict(f"{', '.join(busy)} already in an open update set")
            cur = c.execute("INSERT INTO evolution_update_sets (state, current_index, "
                            "failed_member, reason, origin, created_at, updated_at) VALUES "
                            "('pending', 0, NULL, 'waiting to start', ?, ?, ?)",
                            (origin, now, now))
            sid = int(cur.lastrowid or 0)
            for i, (svc, frm, to, cmd) in enumerate(members):
                c.execute("INSERT INTO evolution_update_set_members (set_id, idx, service, "
                          "from_version, to_version, command, status) VALUES "
                          "(?,?,?,?,?,?,'pending')",
                          (sid, i, svc, frm, to, json.dumps(cmd) if cmd is not None else None))
        return sid

    def _set(self, r: Any) -> SetRow:
        ms = tuple(_member(m) for m in self.store.query(
            "SELECT * FROM evolution_update_set_members WHERE set_id=? ORDER BY idx",
            (r["id"],)))
        return SetRow(int(r["id"]), r["state"], int(r["current_index"]), r["failed_member"],
                      r["reason"], r["origin"], float(r["created_at"]), float(r["updated_at"]),
                      ms)

    def get(self, sid: int) -> SetRow:
        r = self.store.query_one("SELECT * FROM evolution_update_sets WHERE id=?", (sid,))
        if r is None:
            raise KeyError(sid)
        return self._set(r)

    def open(self) -> list[SetRow]:
        return [self._set(r) for r in self.store.query(
            "SELECT * FROM evolution_update_sets WHERE state IN (?,?,?,?) ORDER BY id",
            OPEN_SETS)]

    def list(self, limit: int = 100) -> "list[SetRow]":
        return [self._set(r) for r in self.store.query(
            "SELECT * FROM evolution_update_sets ORDER BY id DESC LIMIT ?", (limit,))]

    def set_state(self, sid: int, state: SetState, reason: str, now: float, *,
                  current_index: int | None = None, failed_member: str | None = None) -> None:
        with self.store.transaction() as c:
            c.execute("UPDATE evolution_update_sets SET state=?, reason=?, updated_at=?, "
                      "current_index=COALESCE(?, current_index), "
                      "failed_member=COALESCE(?, failed_member) WHERE id=?",
                      (state, reason, now, current_index, failed_member, sid))

    def start_member(self, sid: int, idx: int, proposal_id: int, now: float) -> None:
        """Member ``idx`` rolls (its proposal made), in one transaction with the set's index."""
        with self.store.transaction() as c:
            c.execute("UPDATE evolution_update_set_members SET status='rolling', proposal_id=? "
                      "WHERE set_id=? AND idx=?", (proposal_id, sid, idx))
            c.execute("UPDATE evolution_update_sets SET state='rolling', current_index=?, "
                      "reason=?, updated_at=? WHERE id=?",
                      (idx, f"member {idx} rolling", now, sid))

    def set_member(self, sid: int, idx: int, *, status: MemberStatus | None = None,
                   abort_reason: str | None = None) -> None:
        self.store.execute("UPDATE evolution_update_set_members SET "
                           "status=COALESCE(?, status), "
                           "abort_reason=COALESCE(?, abort_reason) WHERE set_id=? AND idx=?",
                           (status, abort_reason, sid, idx))

    def release_commits(self, sid: int, now: float) -> None:
        with self.store.transaction() as c:
            c.execute("UPDATE evolution_update_set_members SET commit_released=1 "
                      "WHERE set_id=?", (sid,))
            c.execute("UPDATE evolution_update_sets SET state='committing', reason=?, "
                      "updated_at=? WHERE id=?",
                      ("every member reached FULL: commits released together", now, sid))

    def intents(self) -> dict[tuple[str, str], tuple[bool, str | None]]:
        """(service, to_version) of rolling members of open sets → (hold the commit, abort
        reason). Read by the evolution controller; a rollout not in it is unconstrained."""
        rows = self.store.query(
            "SELECT m.* FROM evolution_update_set_members m JOIN evolution_update_sets s "
            "ON s.id = m.set_id WHERE m.status='rolling' AND s.state IN (?,?,?,?)", OPEN_SETS)
        return {(r["service"], r["to_version"]): (not bool(r["commit_released"]),
                                                  r["abort_reason"]) for r in rows}

    def prune(self, before_ts: float) -> int:
        """Retention: finished sets (and their members) last updated before ``before_ts``."""
        cur = self.store.execute("DELETE FROM evolution_update_sets WHERE state IN "
                                 "('done', 'rolled_back') AND updated_at < ?", (before_ts,))
        return cur.rowcount


class UpdateSetFacade:
    """What the API asks of update sets (``ctx.subsystems["update_sets"]``)."""

    def __init__(self, store: Store, clock: Clock, services: Any,
                 quarantined: Any) -> None:
        self.sets = UpdateSetStore(store)
        self.clock = clock
        self._services = services  # () -> {name: ServiceSpec}
        self._quarantined = quarantined  # () -> {(service, version)}

    def create(self, members: Sequence[tuple[str, str, list[str] | None]], actor: str
               ) -> dict[str, Any]:
        services: dict[str, Any] = self._services()
        wanted = {m[0]: m for m in members}
        ordered = order_members([m[0] for m in members], services)
        if len(wanted) != len(members):  # order_members already rejects duplicates
            raise Conflict("a service appears twice in the set")
        quarantined = self._quarantined()
        rows = []
        for s in ordered:
            _, version, command = wanted[s]
            cur = services[s].version
            if cur == version:
                raise Conflict(f"{s} already declares version {version}")
            if (s, version) in quarantined:
                raise Conflict(f"{s} {version} is quarantined (rolled back earlier); clear it "
                               "with POST /api/evolution/quarantine/clear first")
            if getattr(services[s], "traffic", None) is None:
                raise Conflict(f"{s} has no spec.traffic: a set member needs a staged "
                               "rollout behind the gateway (its old version kept running)")
            rows.append((s, cur, version, command))
        sid = self.sets.create(rows, f"api ({actor})", self.clock.now())
        return self.sets.get(sid).as_dict()

    def recent(self, limit: int) -> list[dict[str, Any]]:
        return [s.as_dict() for s in self.sets.list(limit)]

    def open(self) -> list[dict[str, Any]]:
        return [s.as_dict() for s in self.sets.open()]
