"""Intents: a subsystem asking the owner of a world object to change it.

One controller owns each world object (the services controller owns processes); everything
else expresses what it wants as an intent row the owner reconciles — never by calling the
owner's actuator. Each intent has an id, a target (``Service/nexus``), a reason, who asked,
and the decision / incident that asked for it, so ``why`` can walk from the owner's action
back to the observation behind the request.

Kinds:

* ``restart_requested`` — one-shot: restart the process ``params.pid`` (or whatever runs, when
  no pid is given). The owner consumes it with its restart; if that process is already gone
  (the owner restarted it on its own) it is consumed as satisfied — a crash is restarted once.
* ``isolate``, ``pause`` — standing: keep the service stopped while active. The requester
  releases it; the owner expires it when a new desired revision of the service arrives
  (``params.spec_hash`` no longer the desired one): a fixed configuration is started at once.
* ``use_revision`` — standing: run the last known-good revision instead of ``params.from``.
* ``degrade``, ``fallback`` — standing: features off (``params.features``, or every non-core
  feature when absent; the feature-flag owner, ``controllers/features.py``, reconciles it) /
  traffic to the declared fallback. Several requesters' ``degrade`` intents on one service add
  up (``PER_REQUESTER``): a new one replaces only its own requester's.
* ``survival_requested`` — one-shot, for the resilience controller: enter or leave survival
  mode (``params.op``), asked for through the API; it runs behind the governance gate.

States: ``active`` → ``consumed`` (one-shot, by the owner) | ``released`` (by the requester)
| ``expired`` (owner: stale or past ``intents.request_ttl_seconds``). Settled rows are deleted
after ``intents.keep_days`` (:meth:`IntentStore.prune`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from autonomous.core.clock import Clock
from autonomous.core.events import EventBus
from autonomous.store import Store

__all__ = ["KINDS", "ONE_SHOT", "PER_REQUESTER", "STANDING", "Intent", "IntentStore"]

ONE_SHOT = ("restart_requested", "survival_requested")
STANDING = ("isolate", "pause", "degrade", "use_revision", "fallback")
KINDS = ONE_SHOT + STANDING
PER_REQUESTER = ("degrade",)  # standing kinds where requesters' intents coexist
_DAY = 86400.0


@dataclass(frozen=True)
class Intent:
    id: str
    kind: str
    target: str  # "Service/nexus"
    reason: str
    requester: str
    decision: str | None
    incident: str | None
    params: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    state: str = "active"
    settled_at: float | None = None
    outcome: str | None = None

    @property
    def service(self) -> str:
        return self.target.split("/", 1)[1] if "/" in self.target else self.target

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "target": self.target, "reason": self.reason,
                "requester": self.requester, "decision": self.decision,
                "incident": self.incident, "params": dict(self.params),
                "created_at": self.created_at, "state": self.state,
                "settled_at": self.settled_at, "outcome": self.outcome}


def _row(r: Any) -> Intent:
    return Intent(r["id"], r["kind"], r["target"], r["reason"], r["requester"], r["decision"],
                  r["incident"], json.loads(r["params"]), r["created_at"], r["state"],
                  r["settled_at"], r["outcome"])


class IntentStore:
    """The one reader/writer of the ``intents`` table."""

    def __init__(self, store: Store, clock: Clock, bus: EventBus | None = None) -> None:
        self.store = store
        self.clock = clock
        self.bus = bus

    # -- requester side ------------------------------------------------------------------------
    def request(self, kind: str, target: str, *, reason: str, requester: str,
                decision: str | None = None, incident: str | None = None,
                params: dict[str, Any] | None = None) -> Intent:
        """Record an intent. A standing kind replaces the active one of the same kind and
        target (released, "superseded"; for ``PER_REQUESTER`` kinds only the same
        requester's); a one-shot restart for the same pid is not
        duplicated (the active one is returned)."""
        if kind not in KINDS:
            raise ValueError(f"intent kind {kind!r} is not one of {', '.join(KINDS)}")
        p = dict(params or {})
        now = self.clock.now()
        with self.store.transaction():
            for cur in self.active(target, (kind,)):
                if kind in ONE_SHOT and cur.params.get("pid") == p.get("pid"):
                    return cur
                if kind in STANDING and (kind not in PER_REQUESTER
                                         or cur.requester == requester):
                    self._settle(cur.id, "released", f"superseded by a new {kind} intent", now)
            intent = Intent(uuid.uuid4().hex[:12], kind, target, reason, requester, decision,
                            incident, p, now)
            self.store.execute(
                "INSERT INTO intents(id, kind, target, reason, requester, decision, incident, "
                "params, created_at, state) VALUES (?,?,?,?,?,?,?,?,?, 'active')",
                (intent.id, kind, target, reason, requester, decision, incident,
                 json.dumps(p, sort_keys=True, default=str), now))
        if self.bus is not None:
            self.bus.publish("intent.requested", id=intent.id, kind=kind, target=target,
                             requester=requester, reason=reason)
        return intent

    def release(self, kind: str, target: str, reason: str,
                requester: str | None = None) -> int:
        """The requester withdraws its standing intents of ``kind`` on ``target`` (only
        ``requester``'s when given)."""
        now = self.clock.now()
        n = 0
        for cur in self.active(target, (kind,)):
            if requester is None or cur.requester == requester:
                n += self._settle(cur.id, "released", reason, now)
        if n and self.bus is not None:
            self.bus.publish("intent.released", kind=kind, target=target, reason=reason)
        return n

    def release_one(self, intent_id: str, reason: str) -> bool:
        """The requester withdraws one standing intent (by id)."""
        cur = self.get(intent_id)
        n = self._settle(intent_id, "released", reason, self.clock.now())
        if n and cur is not None and self.bus is not None:
            self.bus.publish("intent.released", kind=cur.kind, target=cur.target, reason=reason)
        return bool(n)

    # -- owner side ------------------------------------------------------------------------------
    def consume(self, intent_id: str, outcome: str) -> bool:
        """The owner acted on a one-shot intent (or found it already satisfied)."""
        return bool(self._settle(intent_id, "consumed", outcome, self.clock.now()))

    def note(self, intent_id: str, outcome: str) -> bool:
        """Say where an active intent stands (e.g. awaiting approval) without settling it."""
        n = self.store.execute("UPDATE intents SET outcome=? WHERE id=? AND state='active'",
                               (outcome[:500], intent_id)).rowcount
        if n and self.bus is not None:
            self.bus.publish("intent.noted", id=intent_id, outcome=outcome)
        return bool(n)

    async def wait(self, intent_id: str, timeout: float, poll: float = 0.05) -> Intent | None:
        """The intent once settled or noted (or as it is after ``timeout`` seconds of real
        time: a caller — an HTTP request — waits in real time whatever the operator's clock)."""
        deadline = time.monotonic() + timeout
        while True:
            it = self.get(intent_id)
            if it is None or it.state != "active" or it.outcome is not None:
                return it
            if time.monotonic() >= deadline:
                return it
            await asyncio.sleep(poll)

    def expire(self, intent_id: str, outcome: str) -> bool:
        return bool(self._settle(intent_id, "expired", outcome, self.clock.now()))

    def expire_due(self, ttl_seconds: float) -> int:
        """Expire one-shot intents no owner acted on within ``ttl_seconds``."""
        now = self.clock.now()
        marks = ",".join("?" * len(ONE_SHOT))
        return self.store.execute(
            f"UPDATE intents SET state='expired', settled_at=?, outcome=? WHERE state='active' "
            f"AND kind IN ({marks}) AND created_at < ?",
            (now, f"not acted on within {ttl_seconds:g}s", *ONE_SHOT, now - ttl_seconds)).rowcount

    def prune(self, keep_days: float) -> int:
        """Delete settled intents older than ``keep_days`` (retention)."""
        return self.store.execute("DELETE FROM intents WHERE state != 'active' AND "
                                  "settled_at < ?",
                                  (self.clock.now() - keep_days * _DAY,)).rowcount

    # -- reads -------------------------------------------------------------------------------------
    def active(self, target: str | None = None,
               kinds: tuple[str, ...] | None = None) -> list[Intent]:
        sql, args = "SELECT * FROM intents WHERE state='active'", []
        if target is not None:
            sql += " AND target=?"
            args.append(target)
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args += list(kinds)
        return [_row(r) for r in self.store.query(sql + " ORDER BY created_at, id", args)]

    def get(self, intent_id: str) -> Intent | None:
        r = self.store.query_one("SELECT * FROM intents WHERE id=?", (intent_id,))
        return _row(r) if r is not None else None

    def list(self, target: str | None = None, limit: int = 100) -> list[Intent]:
        sql, args = "SELECT * FROM intents", []
        if target is not None:
            sql += " WHERE target=?"
            args.append(target)
        rows = self.store.query(sql + " ORDER BY created_at DESC LIMIT ?", (*args, limit))
        return [_row(r) for r in rows]

    def _settle(self, intent_id: str, state: str, outcome: str, now: float) -> int:
        n = self.store.execute("UPDATE intents SET state=?, settled_at=?, outcome=? WHERE id=? "
                               "AND state='active'", (state, now, outcome[:500], intent_id))
        return int(n.rowcount)
