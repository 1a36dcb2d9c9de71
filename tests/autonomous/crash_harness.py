"""Crash consistency: SIGKILL the real operator at a random moment of an operation, start it
again on the same data dir, and check what a person relies on.

One *run*: start ``atlas-autonomous run`` on a tree with a sample service whose probe always
fails (so ``service_down`` fires and its notice goes to a local webhook sink), make
acknowledged writes (a silence, a mode switch: each answered 2xx), start an operation
(``backup``, ``reconcile``, ``restore``, ``alert`` delivery or a staged ``rollout``) and
SIGKILL the operator after a random delay. Then:

* **no orphan**: every process the operator started (services, drill services) is gone —
  children die with the operator (``PR_SET_PDEATHSIG``);
* **consistent store**: ``PRAGMA integrity_check`` answers ``ok`` on the database as the
  killed operator left it;
* **no lost acknowledged write**: after a restart on the same data dir, the silence and the
  mode are there;
* **no duplicate notification**: across the kill and the restart, the sink never received
  one notice (outbox row) twice, and the alert's notice arrived at least once;
* **no half-applied restore** (``restore``): the approved restore request settles ``done``
  after the restart, its target is byte for byte what a second restore of the same backup
  writes, and no staging folder is left under ``<data_dir>/restores``;
* **no half-applied rollout** (``rollout``: killed 0–7.5 s after its candidate first served,
  so at any step from CANARY to the commit and the candidate's retirement): after the restart
  the rollout resumes its persisted phase with a fresh candidate and the gateway's written
  weight is that phase's, or it ended and its candidate is retired (a rollback: weight 0);
  see ``tests/autonomous/crash_rollout.py``.

Used by ``tests/autonomous/test_crash_consistency.py`` (a few runs) and
``bench/crash_consistency.py`` (100 runs). It opens the killed operator's database read-only
with ``sqlite3`` itself, which is why it lives with the tests and not in the package (only
the store connects to the operator's database).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import psutil

from autonomous.testing import (
    calm_gates,
    copy_default_tree,
    fast_alerting,
    free_port,
    serve_http,
    terminate,
    wait_for,
)
from tests.autonomous.crash_rollout import (
    PHASES,
    alive,
    candidate_weight,
    expected_weight,
    prepare_rollout_tree,
    rollout_yaml,
    snapshot,
)

__all__ = ["OPERATIONS", "RunResult", "Sink", "crash_run"]

OPERATIONS = ("reconcile", "backup", "restore", "alert", "rollout")
TOKEN = "crash-consistency-token"


@dataclass
class RunResult:
    operation: str
    kill_after_s: float
    integrity: str = ""
    orphans: list[int] = field(default_factory=list)
    lost_writes: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    half_applied: list[str] = field(default_factory=list)
    notices: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.integrity == "ok" and not self.orphans and not self.lost_writes
                and not self.duplicates and not self.half_applied and not self.problems)


class Sink:
    """A webhook receiver that records every delivery's notice key."""

    def __init__(self) -> None:
        self.deliveries: list[str] = []
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers.get("Idempotency-Key") or json.dumps(
                    [body["groupKey"], body["atlas"]["kind"], body["atlas"]["repeat"],
                     body["atlas"]["alert_ids"], body["status"]])
                with sink.lock:
                    sink.deliveries.append(key)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def duplicates(self) -> list[str]:
        with self.lock:
            seen: set[str] = set()
            dup = []
            for k in self.deliveries:
                if k in seen:
                    dup.append(k)
                seen.add(k)
            return dup


def _service(name: str, port: int) -> str:
    return f"""apiVersion: atlas.autonomous/v1
kind: Service
metadata: {{name: {name}}}
spec:
  command: ["{{python}}", "-m", "autonomous.sample_stack", "--name", "{name}", "--port", "{port}"]
  port: {port}
  core: false
  health: {{path: /not-served, period_seconds: 0.5, timeout_seconds: 1, failure_threshold: 2}}
  restart: {{policy: always}}
  stop_grace_seconds: 2
"""


def make_crash_tree(root: Path, sink_url: str) -> Path:
    """The default tree with one always-failing service, fast alerting, a webhook sink."""
    calm_gates(copy_default_tree(root))
    for f in (root / "desired_state").glob("*.yaml"):
        if "kind: Service" in f.read_text():
            f.unlink()
    (root / "desired_state" / "flaky.yaml").write_text(_service("flaky", free_port()))
    cfg = root / "config" / "autonomous.yaml"
    text = cfg.read_text().replace("receivers: {webhook: []",
                                   f"receivers: {{webhook: [{{name: sink, url: '{sink_url}'}}]")
    cfg.write_text(text)
    return fast_alerting(root, window_seconds=3)


class _Operator:
    def __init__(self, root: Path, data: Path) -> None:
        self.root, self.data, self.port = root, data, free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10,
                                headers={"Authorization": f"Bearer {TOKEN}"}, trust_env=False)

    def start(self, timeout: float = 30) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        log = open(self.data.parent / "operator.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controllers.cli", "run", "--root", str(self.root),
             "--data-dir", str(self.data), "--port", str(self.port)],
            stdout=log, stderr=log, env={**os.environ, "ATLAS_AUTONOMOUS_TOKEN": TOKEN})
        log.close()
        _wait(lambda: self.api.get("/healthz").status_code == 200, timeout, "operator API")

    def children(self) -> list[int]:
        if self.proc is None:
            return []
        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 30)
        self.api.close()


def _wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    wait_for(pred, what, timeout, errors=(httpx.HTTPError, ValueError, KeyError))


@contextmanager
def _sink() -> Iterator[tuple[Sink, str]]:
    sink = Sink()
    with serve_http(sink.handler()) as srv:
        yield sink, f"http://127.0.0.1:{srv.server_address[1]}/hook"


def _start_operation(op: _Operator, operation: str, approval: str | None = None) -> None:
    """Start ``operation`` without waiting for it (the kill lands while it runs)."""
    def fire() -> None:
        try:
            if operation == "restore" and approval is not None:
                op.api.post(f"/api/approvals/{approval}/approve", timeout=30)
            elif operation == "backup":
                op.api.post("/api/resilience/backup", json={"plan": "operator",
                                                            "kind": "full"}, timeout=60)
            elif operation == "reconcile":
                for name in ("services", "telemetry", "health"):
                    op.api.post(f"/api/reconcile/{name}/trigger", timeout=5)
        except httpx.HTTPError:
            pass  # the operator was killed under it: that is the point
    threading.Thread(target=fire, daemon=True).start()


def crash_run(tmp: Path, operation: str, rng: random.Random) -> RunResult:
    """One kill-and-restart run in ``tmp``."""
    kill_after = rng.uniform(0.0, 1.5)
    res = RunResult(operation, kill_after)
    with _sink() as (sink, url):
        root = make_crash_tree(tmp / "root", url)
        if operation == "rollout":
            prepare_rollout_tree(root, free_port(), free_port())
        op = _Operator(root, tmp / "data")
        try:
            op.start()
            # acknowledged writes
            r = op.api.post("/api/telemetry/silences", json={
                "matchers": {"alertname": "crash-consistency"}, "duration_seconds": 3600,
                "comment": "acknowledged before the kill"})
            silence_id = r.json()["id"] if r.status_code == 201 else None
            if silence_id is None:
                res.problems.append(f"silence answered {r.status_code}: {r.text[:120]}")
            r = op.api.put("/api/governance/mode", json={"mode": "growth",
                                                         "reason": "crash consistency"})
            if r.status_code >= 300:
                res.problems.append(f"mode switch answered {r.status_code}: {r.text[:120]}")
            restore: _Restore | None = None
            if operation == "alert":  # the kill lands around the first delivery
                _wait(lambda: bool(op.api.get("/api/telemetry/alerts").json()["active"]),
                      20, "service_down firing")
            elif operation == "restore":  # the kill lands while the approved restore runs
                restore = _Restore.start(op)
                _start_operation(op, operation, restore.approval)
            elif operation == "rollout":  # the kill lands somewhere from CANARY to retirement
                (root / "desired_state" / "rollout.yaml").write_text(rollout_yaml())
                _wait(lambda: candidate_weight(tmp / "data") == (PHASES[0][1], "nexus-v1-0-0"),
                      60, "the rollout's candidate served at CANARY")
                kill_after *= 5
                res.kill_after_s = kill_after
            else:
                _start_operation(op, operation)
            time.sleep(kill_after)  # the random point of the kill (not a proof of anything)
            children = op.children()
            op.kill()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(psutil.pid_exists(p) and
                                                      psutil.Process(p).status() != "zombie"
                                                      for p in children):
                time.sleep(0.05)
            res.orphans = [p for p in children if psutil.pid_exists(p)
                           and psutil.Process(p).status() != "zombie"]
            for p in res.orphans:  # leave nothing behind whatever the verdict
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            con = sqlite3.connect(f"file:{tmp / 'data' / 'atlas.db'}?mode=ro", uri=True)
            try:
                res.integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                con.close()
            op.stop()
            op = _Operator(root, tmp / "data")
            op.start()
            silences = op.api.get("/api/telemetry/silences").json()
            if silence_id is not None and not any(s["id"] == silence_id for s in silences):
                res.lost_writes.append(f"silence {silence_id}")
            mode = op.api.get("/api/governance/mode").json()
            if mode.get("mode") != "growth":
                res.lost_writes.append(f"mode growth (found {mode.get('mode')})")
            if restore is not None:
                res.half_applied = restore.check_after_restart(op, tmp / "data")
            if operation == "rollout":
                res.half_applied = _rollout_after_restart(op, tmp / "data")
            # the alert (still firing after the restart) is notified, and only once
            _wait(lambda: bool(sink.deliveries), 30, "a notice delivered")
        except (TimeoutError, httpx.HTTPError, KeyError, ValueError) as exc:
            res.problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            op.stop()
        res.duplicates = sink.duplicates()
        res.notices = len(sink.deliveries)
    return res


def _rollout_after_restart(op: _Operator, data: Path) -> list[str]:
    """What is half-applied about the rollout once the restarted operator settled it."""
    assert op.proc is not None
    pid = op.proc.pid

    def settled() -> bool:
        s = snapshot(data)
        w = candidate_weight(data)
        if s.status == "running":
            ok = (s.operator_pid == pid and alive(s.candidate_pid, s.candidate_ctime)
                  and w is not None and w[0] == expected_weight(s))
        else:
            ok = s.candidate_pid is None and w is not None and (
                s.status == "committed" or w[0] == 0)
        return ok
    try:
        _wait(settled, 60, "the rollout resumed at its phase's weight, or ended and retired")
    except AssertionError:
        s = snapshot(data)
        return [f"rollout {s.status} at phase {s.phase_index}: gateway weight "
                f"{candidate_weight(data)}, candidate pid {s.candidate_pid} (operator "
                f"{s.operator_pid}, now {pid})"]
    return []


@dataclass
class _Restore:
    """A restore of a fresh full backup into ``<data_dir>/restores/crash``, approved by the
    run (``restore: require_approval`` is the default policy)."""

    backup: str
    request: str
    approval: str | None

    @classmethod
    def start(cls, op: _Operator) -> _Restore:
        b = op.api.post("/api/resilience/backup", json={"plan": "operator", "kind": "full"},
                        timeout=60)
        b.raise_for_status()
        backup = b.json()["id"]
        r = op.api.post(f"/api/resilience/backups/{backup}/restore", json={"target": "crash"},
                        timeout=60)
        if r.status_code not in (200, 202):
            raise ValueError(f"restore answered {r.status_code}: {r.text[:200]}")
        body = r.json()
        return cls(backup, body.get("request", ""), body.get("approval"))

    def _state(self, data: Path) -> tuple[str, str | None]:
        con = sqlite3.connect(f"file:{data / 'atlas.db'}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT state, approval FROM restore_requests WHERE id=?",
                              (self.request,)).fetchone()
        finally:
            con.close()
        if row is None:
            raise KeyError(f"restore request {self.request} is gone")
        return row[0], row[1]

    def check_after_restart(self, op: _Operator, data: Path) -> list[str]:
        """What is half-applied after the restart (empty: nothing)."""
        found: list[str] = []
        state, approval = self._state(data)
        if state == "awaiting_approval" and approval:  # killed before the approval landed
            op.api.post(f"/api/approvals/{approval}/approve", timeout=30)
        _wait(lambda: self._state(data)[0] not in ("pending", "awaiting_approval"), 30,
              f"restore request {self.request} settled after the restart")
        state, _ = self._state(data)
        if state != "done":
            found.append(f"restore request ended {state!r}, not 'done'")
        restores = data / "restores"
        again = op.api.post(f"/api/resilience/backups/{self.backup}/restore",
                            json={"target": "crash-again"}, timeout=60)
        if again.status_code == 202 and again.json().get("approval"):
            op.api.post(f"/api/approvals/{again.json()['approval']}/approve", timeout=30)
            _wait(lambda: (restores / "crash-again").exists(), 30, "the second restore")
        found += _tree_differences(restores / "crash", restores / "crash-again")
        found += [f"staging left behind: {p.name}" for p in restores.iterdir()
                  if ".restoring-" in p.name]
        return found


def _tree_differences(a: Path, b: Path) -> list[str]:
    """Paths whose presence, type, mode or bytes differ between two restored trees."""
    if not a.is_dir():
        return [f"{a} is missing"]
    if not b.is_dir():
        return [f"{b} is missing"]

    def listing(root: Path) -> dict[str, Path]:
        return {str(p.relative_to(root)): p for p in root.rglob("*")}

    la, lb = listing(a), listing(b)
    out = [f"only in one restore: {k}" for k in sorted(set(la) ^ set(lb))]
    for k in sorted(set(la) & set(lb)):
        pa, pb = la[k], lb[k]
        if pa.is_symlink() or pb.is_symlink():
            if os.readlink(pa) != os.readlink(pb):
                out.append(f"{k}: link differs")
        elif pa.is_file() != pb.is_file():
            out.append(f"{k}: type differs")
        elif pa.is_file() and pa.read_bytes() != pb.read_bytes():
            out.append(f"{k}: bytes differ")
        elif pa.stat().st_mode != pb.stat().st_mode:
            out.append(f"{k}: mode differs")
    return out
