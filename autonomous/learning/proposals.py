"""Learned proposals in the store: one row per proposed change and its lifecycle events.

A proposal is a :class:`~autonomous.learning.proposal_patch.Patch` (one scalar of a
git-tracked YAML file, old → new; the inverse is the revert) with the generation it was
computed against, its evidence (knowledge-graph ids, metric deltas with intervals, sample
size), its offline evaluation beside the value in force and the guard its bake is judged by.
States and their legal moves are :mod:`autonomous.learning.proposal_rules`; this module only
records them (every move is an event: who, when, why).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from autonomous.core.clock import Clock, iso
from autonomous.core.errors import Conflict, NotFound
from autonomous.learning.proposal_patch import Key, Patch
from autonomous.learning.proposal_rules import can_transition
from autonomous.store import Store

__all__ = ["Proposal", "ProposalStore", "patch_key"]

OPEN = ("proposed", "evaluated", "awaiting_approval", "approved", "baking")


def patch_key(file: str, path: tuple[Key, ...]) -> str:
    """The parameter a patch changes: ``file#a.b.0.c`` (one change per key per bake)."""
    return f"{file}#{'.'.join(map(str, path))}"


@dataclass(frozen=True)
class Proposal:
    id: str
    source: str
    title: str
    patch: Patch
    state: str
    generation: int | None
    cycle: int
    low: float | None = None
    high: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    guard: dict[str, Any] = field(default_factory=dict)
    approval_id: str | None = None
    applied_at: float | None = None
    bake_until: float | None = None
    apply_commit: str | None = None
    revert_commit: str | None = None
    closed_cycle: int | None = None
    reason: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def key(self) -> str:
        return patch_key(self.patch.file, self.patch.path)

    def as_dict(self) -> dict[str, Any]:
        p = self.patch
        return {"id": self.id, "source": self.source, "title": self.title, "key": self.key,
                "file": p.file, "path": list(p.path), "old": p.old, "new": p.new,
                "inverse": {"file": p.file, "path": list(p.path), "old": p.new, "new": p.old},
                "low": self.low, "high": self.high, "state": self.state,
                "generation": self.generation, "cycle": self.cycle,
                "evidence": self.evidence, "evaluation": self.evaluation, "guard": self.guard,
                "approval_id": self.approval_id,
                "applied_at": iso(self.applied_at) if self.applied_at else None,
                "bake_until": iso(self.bake_until) if self.bake_until else None,
                "apply_commit": self.apply_commit, "revert_commit": self.revert_commit,
                "closed_cycle": self.closed_cycle, "reason": self.reason,
                "created_at": iso(self.created_at), "updated_at": iso(self.updated_at)}


def _from_row(r: Any) -> Proposal:
    return Proposal(
        id=r["id"], source=r["source"], title=r["title"],
        patch=Patch(r["file"], tuple(json.loads(r["path"])), json.loads(r["old"]),
                    json.loads(r["new"])),
        state=r["state"], generation=r["generation"], cycle=r["cycle"], low=r["low"],
        high=r["high"], evidence=json.loads(r["evidence"]),
        evaluation=json.loads(r["evaluation"]), guard=json.loads(r["guard"]),
        approval_id=r["approval_id"], applied_at=r["applied_at"], bake_until=r["bake_until"],
        apply_commit=r["apply_commit"], revert_commit=r["revert_commit"],
        closed_cycle=r["closed_cycle"], reason=r["reason"], created_at=r["created_at"],
        updated_at=r["updated_at"])


_UPDATABLE = frozenset({"approval_id", "applied_at", "bake_until", "apply_commit",
                        "revert_commit", "closed_cycle", "evaluation", "generation"})


class ProposalStore:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def create(self, *, source: str, title: str, patch: Patch, generation: int | None,
               cycle: int, evidence: dict[str, Any], guard: dict[str, Any],
               low: float | None = None, high: float | None = None) -> Proposal:
        pid = f"prop-{uuid.uuid4().hex[:10]}"
        now = self.clock.now()
        with self.store.transaction():
            self.store.execute(
                "INSERT INTO learning_proposals(id, key, source, title, file, path, old, new, "
                "low, high, state, generation, cycle, evidence, evaluation, guard, reason, "
                "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (pid, patch_key(patch.file, patch.path), source, title, patch.file,
                 json.dumps(list(patch.path)), json.dumps(patch.old), json.dumps(patch.new),
                 low, high, "proposed", generation, cycle, json.dumps(evidence, default=str),
                 "{}", json.dumps(guard, default=str), "computed by " + source, now, now))
            self._event(pid, None, "proposed", source, title, now)
        return self.get(pid)

    def get(self, pid: str) -> Proposal:
        r = self.store.query_one("SELECT * FROM learning_proposals WHERE id=?", (pid,))
        if r is None:
            raise NotFound(f"no proposal {pid!r}")
        return _from_row(r)

    def find(self, pid: str) -> Proposal | None:
        r = self.store.query_one("SELECT * FROM learning_proposals WHERE id=?", (pid,))
        return None if r is None else _from_row(r)

    def recent(self, state: str | None = None, limit: int = 100) -> list[Proposal]:
        if state is None:
            rows = self.store.query("SELECT * FROM learning_proposals ORDER BY created_at DESC,"
                                    " id LIMIT ?", (limit,))
        else:
            rows = self.store.query("SELECT * FROM learning_proposals WHERE state=? ORDER BY "
                                    "created_at DESC, id LIMIT ?", (state, limit))
        return [_from_row(r) for r in rows]

    def open(self) -> list[Proposal]:
        marks = ",".join("?" * len(OPEN))
        rows = self.store.query(f"SELECT * FROM learning_proposals WHERE state IN ({marks}) "
                                "ORDER BY created_at, id", OPEN)
        return [_from_row(r) for r in rows]

    def all(self) -> list[Proposal]:
        return [_from_row(r) for r in self.store.query(
            "SELECT * FROM learning_proposals ORDER BY created_at, id")]

    def closed_at_cycle(self) -> dict[str, int]:
        """Key → the latest cycle a change to it was rejected or reverted."""
        rows = self.store.query("SELECT key, MAX(closed_cycle) c FROM learning_proposals "
                                "WHERE state IN ('rejected', 'reverted') AND closed_cycle IS "
                                "NOT NULL GROUP BY key")
        return {r["key"]: int(r["c"]) for r in rows}

    def events(self, pid: str) -> list[dict[str, Any]]:
        return [{"ts": iso(r["ts"]), "from": r["from_state"], "to": r["to_state"],
                 "actor": r["actor"], "reason": r["reason"]}
                for r in self.store.query("SELECT * FROM learning_proposal_events WHERE "
                                          "proposal_id=? ORDER BY id", (pid,))]

    def transition(self, pid: str, to: str, *, actor: str, reason: str,
                   **fields: Any) -> Proposal:
        """Move ``pid`` to state ``to`` (a legal move only) and set ``fields``; one event."""
        bad = set(fields) - _UPDATABLE
        if bad:
            raise ValueError(f"not updatable: {sorted(bad)}")
        with self.store.transaction():
            cur = self.get(pid)
            if not can_transition(cur.state, to):
                raise Conflict(f"proposal {pid} is {cur.state}; it cannot become {to}")
            now = self.clock.now()
            sets = ["state=?", "reason=?", "updated_at=?"]
            vals: list[Any] = [to, reason, now]
            for k, v in fields.items():
                sets.append(f"{k}=?")
                vals.append(json.dumps(v, default=str) if k == "evaluation" else v)
            self.store.execute(f"UPDATE learning_proposals SET {', '.join(sets)} WHERE id=?",
                               (*vals, pid))
            self._event(pid, cur.state, to, actor, reason, now)
        return self.get(pid)

    def set_approval(self, pid: str, approval_id: str) -> None:
        """The approval request now standing for an awaiting proposal (a new generation
        makes the executor ask again; the old request is stale)."""
        self.store.execute("UPDATE learning_proposals SET approval_id=?, updated_at=? WHERE "
                           "id=? AND state='awaiting_approval'",
                           (approval_id, self.clock.now(), pid))

    def note(self, pid: str, actor: str, reason: str) -> None:
        """An event that changes no state (e.g. frozen by emergency_stop: recorded, not done);
        the same note twice in a row is kept once."""
        cur = self.get(pid)
        last = self.store.query_one("SELECT to_state, reason FROM learning_proposal_events "
                                    "WHERE proposal_id=? ORDER BY id DESC LIMIT 1", (pid,))
        if last is not None and last["reason"] == reason and last["to_state"] == cur.state:
            return
        self._event(pid, cur.state, cur.state, actor, reason, self.clock.now())

    def _event(self, pid: str, src: str | None, dst: str, actor: str, reason: str,
               ts: float) -> None:
        self.store.execute("INSERT INTO learning_proposal_events(proposal_id, ts, from_state, "
                           "to_state, actor, reason) VALUES (?,?,?,?,?,?)",
                           (pid, ts, src, dst, actor, reason))

    # -- export / import (the learned knowledge round trip) -----------------------------------
    def export_rows(self) -> dict[str, list[dict[str, Any]]]:
        return {t: [dict(r) for r in self.store.query(f"SELECT * FROM {t} ORDER BY {o}")]
                for t, o in (("learning_proposals", "id"), ("learning_proposal_events", "id"))}
