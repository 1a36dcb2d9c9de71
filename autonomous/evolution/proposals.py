"""Update proposals: a found (or asked-for) version of a Service, as data the evolution
controller reconciles, and the desired-state patch that makes it the Service's version.

States: ``proposed`` (waiting for the governance gate: applied in growth, an approval in
governed, recorded only — the proposal stays ``proposed`` — in emergency_stop) → ``vetting``
(its checks run as a background job; ``autonomous/evolution/vetting.py``) →
``rolling_out`` (a Service with ``spec.traffic``: a staged rollout runs; the file is patched at
its commit) → ``applied`` (the Service's YAML file carries the version), or ``rolled_back`` /
``failed`` with the reason. A proposal for a quarantined version is never made.

The patch edits only the scalars it changes (``spec.version``, and the argv elements that
differ), through the learned-proposal patch module (comments and layout stay byte for byte,
refused when the file no longer holds the values it was computed against), and commits the
file when the root is a git checkout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from autonomous.learning.proposal_patch import (Patch, PatchConflict, apply_patch,
                                                commit_if_checkout)
from autonomous.store.db import Store

__all__ = ["PatchConflict", "ProposalRow", "ProposalStore", "patch_service", "proposal_of",
           "rollout_name"]

_ROLLOUT_PREFIX = "proposal-"


def rollout_name(pid: int) -> str:
    """The name of the Rollout a ``rolling_out`` proposal is served as."""
    return f"{_ROLLOUT_PREFIX}{pid}"


def proposal_of(rollout: str) -> int | None:
    """The proposal a Rollout name serves, or None for a Rollout declared in the desired
    state."""
    rest = rollout.removeprefix(_ROLLOUT_PREFIX)
    return int(rest) if rest != rollout and rest.isdigit() else None

State = Literal["proposed", "vetting", "rolling_out", "applied", "rolled_back", "failed"]
OPEN: tuple[State, ...] = ("proposed", "vetting", "rolling_out")
_OPEN_MARKS = ",".join("?" * len(OPEN))


@dataclass(frozen=True)
class ProposalRow:
    id: int
    service: str
    current: str
    version: str
    origin: str
    command: list[str] | None
    state: State
    reason: str
    created_at: float
    updated_at: float

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "service": self.service, "current": self.current,
                "version": self.version, "origin": self.origin, "command": self.command,
                "state": self.state, "reason": self.reason, "created_at": self.created_at,
                "updated_at": self.updated_at}


def _row(r: Any) -> ProposalRow:
    return ProposalRow(int(r["id"]), r["service"], r["current"], r["version"], r["origin"],
                       json.loads(r["command"]) if r["command"] else None, r["state"],
                       r["reason"], float(r["created_at"]), float(r["updated_at"]))


class ProposalStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, service: str, current: str, version: str, origin: str,
            command: list[str] | None, now: float) -> tuple[ProposalRow, bool]:
        """(the proposal, whether it is new): an open one for the same version is reused."""
        with self.store.transaction() as c:
            row = c.execute("SELECT * FROM evolution_proposals WHERE service=? AND version=? "
                            f"AND state IN ({_OPEN_MARKS}) ORDER BY id DESC LIMIT 1",  # noqa: S608
                            (service, version, *OPEN)).fetchone()
            if row is not None:
                return _row(row), False
            cur = c.execute(
                "INSERT INTO evolution_proposals (service, current, version, origin, command, "
                "state, reason, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (service, current, version, origin,
                 json.dumps(command) if command is not None else None, "proposed",
                 "waiting for the governance gate", now, now))
            pid = int(cur.lastrowid or 0)
        return self.get(pid), True

    def get(self, pid: int) -> ProposalRow:
        r = self.store.query_one("SELECT * FROM evolution_proposals WHERE id=?", (pid,))
        if r is None:
            raise KeyError(pid)
        return _row(r)

    def with_state(self, *states: State) -> list[ProposalRow]:
        marks = ",".join("?" * len(states))
        return [_row(r) for r in self.store.query(
            f"SELECT * FROM evolution_proposals WHERE state IN ({marks}) ORDER BY id",  # noqa: S608
            states)]

    def rolling_out(self, service: str, version: str) -> ProposalRow | None:
        r = self.store.query_one("SELECT * FROM evolution_proposals WHERE service=? AND "
                                 "version=? AND state='rolling_out' ORDER BY id DESC LIMIT 1",
                                 (service, version))
        return _row(r) if r is not None else None

    def set_state(self, pid: int, state: State, reason: str, now: float) -> None:
        self.store.execute("UPDATE evolution_proposals SET state=?, reason=?, updated_at=? "
                           "WHERE id=?", (state, reason, now, pid))

    def set_snapshot(self, pid: int, service: str, backup_id: str, repository: str,
                     now: float) -> None:
        """The backup the proposal's checks took (restored from if its rollout rolls back)."""
        self.store.execute("INSERT OR REPLACE INTO evolution_snapshots VALUES (?,?,?,?,?)",
                           (pid, service, backup_id, repository, now))

    def snapshot(self, pid: int) -> tuple[str, str] | None:
        """(backup id, repository) of the proposal's pre-update snapshot, if one was taken."""
        rows = self.store.query("SELECT backup_id, repository FROM evolution_snapshots "
                                "WHERE proposal_id=?", (pid,))
        return (rows[0]["backup_id"], rows[0]["repository"]) if rows else None

    def list(self, limit: int = 100) -> list[ProposalRow]:
        return [_row(r) for r in self.store.query(
            "SELECT * FROM evolution_proposals ORDER BY id DESC LIMIT ?", (limit,))]

    def prune(self, before_ts: float) -> int:
        """Retention: closed proposals last updated before ``before_ts``."""
        sql = f"DELETE FROM evolution_proposals WHERE state NOT IN ({_OPEN_MARKS}) AND " \
              "updated_at < ?"  # noqa: S608
        cur = self.store.execute(sql, (*OPEN, before_ts))
        return cur.rowcount


def patch_service(root: Path, file: str, old_version: str, new_version: str,
                  old_command: list[str], new_command: list[str] | None,
                  message: str) -> str | None:
    """Patch the Service's ``spec.version`` (and the argv elements of ``spec.command`` that
    change) in ``root / file``; commit it in a git checkout. Returns the commit id or None.
    :class:`PatchConflict` when the file moved on or the argv changes length (edit by hand)."""
    patches = [Patch(file, ("spec", "version"), old_version, new_version)]
    if new_command is not None and new_command != old_command:
        if len(new_command) != len(old_command):
            raise PatchConflict(f"{file}: spec.command: the new argv has {len(new_command)} "
                                f"elements, the file {len(old_command)}; patched only element "
                                "by element: edit the file by hand")
        patches += [Patch(file, ("spec", "command", i), o, n)
                    for i, (o, n) in enumerate(zip(old_command, new_command)) if o != n]
    before = (root / file).read_bytes()
    try:
        for p in patches:
            apply_patch(root, p)
    except (PatchConflict, OSError):
        (root / file).write_bytes(before)  # all or nothing
        raise
    return commit_if_checkout(root, file, message)
