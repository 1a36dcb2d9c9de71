"""Vetting jobs on record: the background pre-rollout checks of update proposals.

The evolution controller runs a proposal's checks (snapshot → regression suite → sandbox) as a
background job and observes it; this is what survives the operator: per proposal, the step
running now and its detail (progress), the operator process running the job, the process
groups it started (pid, create time) and the attempt. :func:`stop_left_groups` ends the groups
a dead operator's job left (identity: a group's leader pid with its create time, or — the
leader killed by PDEATHSIG — the members of that process group started since the job).
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass

import psutil

from autonomous.store.db import Store

__all__ = ["VettingRow", "VettingStore", "stop_left_groups"]


@dataclass(frozen=True)
class VettingRow:
    proposal_id: int
    step: str
    detail: str
    operator_pid: int
    procs: tuple[tuple[int, float], ...]  # process groups started: (leader pid, create time)
    attempt: int
    started_at: float
    updated_at: float


class VettingStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def begin(self, pid: int, attempt: int, now: float) -> None:
        self.store.execute(
            "INSERT OR REPLACE INTO evolution_vetting VALUES (?,?,?,?,?,?,?,?)",
            (pid, "queued", "checks starting", os.getpid(), "[]", attempt, now, now))

    def progress(self, pid: int, step: str, detail: str, now: float) -> None:
        self.store.execute("UPDATE evolution_vetting SET step=?, detail=?, updated_at=? "
                           "WHERE proposal_id=?", (step, detail, now, pid))

    def spawned(self, pid: int, leader: int, create_time: float) -> None:
        row = self.get(pid)
        if row is None:
            return
        procs = [*row.procs, (leader, create_time)]
        self.store.execute("UPDATE evolution_vetting SET procs=? WHERE proposal_id=?",
                           (json.dumps(procs), pid))

    def get(self, pid: int) -> VettingRow | None:
        r = self.store.query_one("SELECT * FROM evolution_vetting WHERE proposal_id=?", (pid,))
        if r is None:
            return None
        return VettingRow(int(r["proposal_id"]), r["step"], r["detail"], int(r["operator_pid"]),
                          tuple((int(p), float(t)) for p, t in json.loads(r["procs"])),
                          int(r["attempt"]), float(r["started_at"]), float(r["updated_at"]))

    def all(self) -> dict[int, VettingRow]:
        rows = self.store.query("SELECT proposal_id FROM evolution_vetting")
        return {int(r["proposal_id"]): row for r in rows
                if (row := self.get(int(r["proposal_id"]))) is not None}

    def end(self, pid: int) -> None:
        self.store.execute("DELETE FROM evolution_vetting WHERE proposal_id=?", (pid,))


def _members(leader: int, create_time: float) -> list[psutil.Process]:
    """Live processes of the group ``leader`` led (started no earlier than it)."""
    out = []
    for p in psutil.process_iter(["pid", "create_time"]):
        try:
            if os.getpgid(p.pid) == leader and p.info["create_time"] >= create_time - 0.01 \
                    and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (ProcessLookupError, psutil.Error):
            continue
    return out


def stop_left_groups(procs: tuple[tuple[int, float], ...], timeout: float = 5.0) -> list[int]:
    """SIGKILL every live member of the recorded process groups (a dead operator's vetting
    job: its suite, its sandboxed candidate, what they started); the pids stopped."""
    stopped: list[int] = []
    for leader, ctime in procs:
        members = _members(leader, ctime)
        for p in members:
            try:
                p.send_signal(signal.SIGKILL)
                stopped.append(p.pid)
            except psutil.Error:
                continue
        psutil.wait_procs(members, timeout=timeout)
    return sorted(stopped)
