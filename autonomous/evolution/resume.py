"""Resuming rollouts after the operator was SIGKILLed: finding the candidate it left behind.

A candidate process gets ``PR_SET_PDEATHSIG`` (it dies with the operator) and is recorded in
``supervised_processes`` (the services controller reaps those at start), so normally nothing
survives. Belt and braces: each rollout's candidate is also recorded by identity
(``evolution_candidates``: pid, the process's create time, argv, backend port). A restarted
operator looks for it — the recorded pid with the same create time and command line, or
whatever listens on the recorded port with that command line — and **stops** it (process
group SIGTERM, SIGKILL after a grace) instead of adopting it: an adopted process is not the
new operator's child, so nothing would see it exit (restarts are driven by the exit event),
and its death signal is tied to the dead operator, so it would outlive the next kill. The
rollout then starts a fresh candidate for its persisted phase, which restores the phase's
weight at the gateway (or rolls back, per ``rollout.on_operator_restart``).
"""

from __future__ import annotations

import os
import signal

import psutil

from autonomous.evolution.store import CandidateRecord
from autonomous.supervisor.processes import expand_argv

__all__ = ["find_orphan", "stop_orphan"]

_SAME_START = 0.5  # seconds: create times compared like the supervisor's reaper does


def _matches(p: psutil.Process, rec: CandidateRecord) -> bool:
    try:
        return (abs(p.create_time() - rec.create_time) < _SAME_START
                and p.cmdline() == expand_argv(list(rec.argv))
                and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _listener(port: int) -> int | None:
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            return int(c.pid)
    return None


def find_orphan(rec: CandidateRecord) -> int | None:
    """The pid of ``rec``'s process if it still runs (same pid, create time and command
    line), else of the process listening on ``rec.port`` with the same command line."""
    try:
        if _matches(psutil.Process(rec.pid), rec):
            return rec.pid
    except psutil.Error:
        pass
    pid = _listener(rec.port)
    if pid is None or pid == os.getpid():
        return None
    try:
        p = psutil.Process(pid)
        return pid if p.cmdline() == expand_argv(list(rec.argv)) else None
    except psutil.Error:
        return None


def stop_orphan(pid: int, grace: float) -> bool:
    """SIGTERM ``pid``'s process group (or the process), SIGKILL after ``grace`` seconds.
    True once it is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                return True
        try:
            psutil.Process(pid).wait(grace if sig == signal.SIGTERM else 5.0)
            return True
        except psutil.TimeoutExpired:
            continue
        except psutil.Error:
            return True
    return not psutil.pid_exists(pid)
