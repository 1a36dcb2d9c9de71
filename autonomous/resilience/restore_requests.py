"""Restore requests: what the API records and the resilience controller reconciles.

``POST .../restore`` adds a ``pending`` row; the controller plans a ``restore`` action for each
open row, which goes through the Executor's governance gate: ``awaiting_approval`` (with the
approval id) until a human approves, then ``done`` or ``failed``; ``rejected`` or ``dry_run``
when the gate says so. Waiters (the API call) are woken when a row settles or waits for a human.
Settled rows beyond ``restore_history_keep`` are deleted (retention).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from autonomous.core.aio import wait_or_timeout

__all__ = ["OPEN_STATES", "RestoreRequests"]

OPEN_STATES = ("pending", "awaiting_approval")


class RestoreRequests:
    def __init__(self, store: Any, clock: Any) -> None:
        self.store = store
        self.clock = clock
        self._changed: dict[str, asyncio.Event] = {}

    def add(self, backup_id: str, target: str, actor: str, keep: int) -> dict[str, Any]:
        rid = uuid.uuid4().hex[:12]
        self.store.execute(
            "INSERT INTO restore_requests(id, backup_id, target, actor, created_at, state) "
            "VALUES (?,?,?,?,?, 'pending')", (rid, backup_id, target, actor, self.clock.now()))
        self.store.execute(
            "DELETE FROM restore_requests WHERE state NOT IN ('pending', 'awaiting_approval') "
            "AND id NOT IN (SELECT id FROM restore_requests WHERE state NOT IN ('pending', "
            "'awaiting_approval') ORDER BY settled_at DESC LIMIT ?)", (keep,))
        self._changed[rid] = asyncio.Event()
        return self.get(rid)

    def get(self, rid: str) -> dict[str, Any]:
        row = self.store.query_one("SELECT * FROM restore_requests WHERE id=?", (rid,))
        if row is None:
            raise KeyError(rid)
        d = dict(row)
        d["result"] = json.loads(d["result"]) if d["result"] else None
        return d

    def open(self) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT id FROM restore_requests WHERE state IN ('pending', "
                                "'awaiting_approval') ORDER BY created_at")
        return [self.get(r["id"]) for r in rows]

    def update(self, rid: str, state: str, *, approval: str | None = None,
               error_kind: str | None = None, result: Any = None) -> None:
        settled = state not in OPEN_STATES
        self.store.execute(
            "UPDATE restore_requests SET state=?, approval=COALESCE(?, approval), "
            "settled_at=?, error_kind=?, result=? WHERE id=?",
            (state, approval, self.clock.now() if settled else None, error_kind,
             None if result is None else json.dumps(result, default=str), rid))
        ev = self._changed.get(rid)
        if ev is not None:
            ev.set()

    async def wait(self, rid: str, timeout: float) -> dict[str, Any]:
        """The row once it left ``pending`` (or as it is after ``timeout`` seconds)."""
        ev = self._changed.setdefault(rid, asyncio.Event())
        if self.get(rid)["state"] == "pending":
            await wait_or_timeout(ev.wait(), timeout)
        self._changed.pop(rid, None)
        return self.get(rid)
