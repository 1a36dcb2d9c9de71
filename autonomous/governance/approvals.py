"""Approval requests: bound to one generation and one exact action, with a TTL.

A controller whose action needs approval calls ``request``; a human approves or rejects by
id. Approving a request made for another generation is refused (409 Conflict); approving an
expired one is refused (410 Gone). The controller executes an approved action on its next
reconcile via ``take_approved`` — once.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from autonomous.core.clock import Clock, iso
from autonomous.core.errors import Conflict, Gone, NotFound
from autonomous.core.events import EventBus
from autonomous.store import Store

__all__ = ["Approvals", "approve_command"]


def approve_command(aid: str) -> str:
    """The command that approves request ``aid``, as messages and tables show it."""
    return f"atlas-autonomous approvals approve {aid}"


class Approvals:
    def __init__(self, store: Store, bus: EventBus, clock: Clock) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock

    def request(self, *, controller: str, resource: str, action_kind: str,
                action: dict[str, Any], action_hash: str, generation: int, mode: str,
                ttl: float) -> dict[str, Any]:
        """Create a pending request, or return the pending one for the same action+generation."""
        self.expire()
        row = self.store.query_one(
            "SELECT * FROM approvals WHERE action_hash=? AND generation=? AND state IN "
            "('pending', 'approved')", (action_hash, generation))
        if row is not None:
            return _row(row)
        now = self.clock.now()
        aid = uuid.uuid4().hex[:12]
        self.store.execute(
            "INSERT INTO approvals(id, controller, resource, action_kind, action, action_hash, "
            "generation, mode, created_at, expires_at, state) VALUES (?,?,?,?,?,?,?,?,?,?, "
            "'pending')", (aid, controller, resource, action_kind, json.dumps(action, default=str),
                           action_hash, generation, mode, now, now + ttl))
        self.bus.publish("approval.requested", id=aid, resource=resource, action=action_kind)
        return self.get(aid)

    def get(self, aid: str) -> dict[str, Any]:
        row = self.store.query_one("SELECT * FROM approvals WHERE id=?", (aid,))
        if row is None:
            raise NotFound(f"approval {aid!r} does not exist; list them with 'atlas-autonomous approvals list'")
        return _row(row)

    def list(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        self.expire()
        if state:
            rows = self.store.query("SELECT * FROM approvals WHERE state=? ORDER BY created_at "
                                    "DESC LIMIT ?", (state, limit))
        else:
            rows = self.store.query("SELECT * FROM approvals ORDER BY created_at DESC LIMIT ?",
                                    (limit,))
        return [_row(r) for r in rows]

    def expire(self) -> int:
        cur = self.store.execute("UPDATE approvals SET state='expired' WHERE state='pending' AND "
                                 "expires_at <= ?", (self.clock.now(),))
        return cur.rowcount

    def decide(self, aid: str, *, approve: bool, actor: str, current_generation: int | None,
               reason: str | None = None) -> dict[str, Any]:
        item = self.get(aid)
        if item["state"] == "pending" and self.clock.now() >= item["_expires_at"]:
            self.expire()
            item = self.get(aid)
        if item["state"] == "expired":
            raise Gone(f"approval {aid} expired at {item['expires_at']}; the controller will ask "
                       "again if the action is still needed")
        if item["state"] != "pending":
            raise Conflict(f"approval {aid} is already {item['state']}")
        if approve and current_generation != item["generation"]:
            self.store.execute("UPDATE approvals SET state='stale' WHERE id=?", (aid,))
            raise Conflict(f"approval {aid} was made for generation {item['generation']} but "
                           f"generation {current_generation} is in force; the action no longer "
                           "matches the desired state")
        state = "approved" if approve else "rejected"
        self.store.execute("UPDATE approvals SET state=?, decided_at=?, decided_by=?, reason=? "
                           "WHERE id=?", (state, self.clock.now(), actor, reason, aid))
        self.bus.publish(f"approval.{state}", id=aid, resource=item["resource"])
        return self.get(aid)

    def cancel(self, aid: str, reason: str) -> bool:
        """Withdraw a pending request that is no longer needed (its incident closed)."""
        n = self.store.execute("UPDATE approvals SET state='cancelled', decided_at=?, "
                               "decided_by='operator', reason=? WHERE id=? AND state='pending'",
                               (self.clock.now(), reason[:500], aid)).rowcount
        if n:
            self.bus.publish("approval.cancelled", id=aid, reason=reason)
        return bool(n)

    def take_approved(self, action_hash: str, generation: int) -> dict[str, Any] | None:
        """Consume an approved request for exactly this action and generation (once)."""
        row = self.store.query_one("SELECT * FROM approvals WHERE action_hash=? AND generation=? "
                                   "AND state='approved'", (action_hash, generation))
        if row is None:
            return None
        self.store.execute("UPDATE approvals SET state='executed' WHERE id=?", (row["id"],))
        return _row(row)

    def asked(self, *, controller: str, resource: str, since: float
              ) -> tuple[dict[str, Any], ...]:
        """One controller's requests for one resource made at or after ``since``, oldest
        first, in every state but executed and cancelled (pending, approved, expired,
        rejected): what a human has been asked about it and not yet seen done."""
        self.expire()
        rows = self.store.query(
            "SELECT * FROM approvals WHERE controller=? AND resource=? AND created_at>=? AND "
            "state IN ('pending', 'approved', 'expired', 'rejected') ORDER BY created_at",
            (controller, resource, since))
        return tuple(_row(r) for r in rows)

    def rejected(self, action_hash: str, generation: int) -> bool:
        return self.store.query_one("SELECT 1 FROM approvals WHERE action_hash=? AND "
                                    "generation=? AND state='rejected'",
                                    (action_hash, generation)) is not None


def _row(r: Any) -> dict[str, Any]:
    return {"id": r["id"], "controller": r["controller"], "resource": r["resource"],
            "action_kind": r["action_kind"], "action": json.loads(r["action"]),
            "generation": r["generation"], "mode": r["mode"], "state": r["state"],
            "created_at": iso(r["created_at"]), "expires_at": iso(r["expires_at"]),
            "_expires_at": r["expires_at"], "_created_at": r["created_at"],
            "decided_at": iso(r["decided_at"]),
            "decided_by": r["decided_by"], "reason": r["reason"]}
