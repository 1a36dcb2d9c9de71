"""A staged rollout under a real operator, for kill-and-restart checks.

The tree: the sample ``nexus`` Service served through the gateway (Traefik) on a front port,
a ``Rollout`` of its version 2.0.0 (the sample stack's good variant) with short phases
(CANARY 10 % → BETA 25 % → FULL 100 %), the judge's sample counts lowered so a phase passes in
a few seconds, and the evolution subsystem reconciling every half second. What the tests
read is what the killed or restarted operator left: its database (opened read-only), the
gateway's dynamic configuration file (what Traefik serves), and the processes themselves.

Used by ``tests/autonomous/test_rollout_crash.py`` and the ``rollout`` operation of
``tests/autonomous/crash_harness.py``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

__all__ = ["PHASES", "Snapshot", "alive", "candidate_weight", "expected_weight",
           "gateway_backends", "integrity", "nexus_yaml", "prepare_rollout_tree",
           "rollout_yaml", "snapshot", "versions_running"]

PHASES = (("CANARY", 10), ("BETA", 25), ("FULL", 100))
SERVICE, TO_VERSION = "nexus", "2.0.0"


def nexus_yaml(port: int, front: int) -> str:
    return f"""apiVersion: atlas.autonomous/v1
kind: Service
metadata: {{name: {SERVICE}}}
spec:
  command: ["{{python}}", "-m", "autonomous.sample_stack", "--name", "{SERVICE}", "--port",
            "{port}", "--service-version", "1.0.0"]
  port: {port}
  version: "1.0.0"
  core: false
  traffic: {{port: {front}, device_paths: [/api/heartbeat]}}
  health: {{path: /health, readiness_path: /ready, period_seconds: 0.5, timeout_seconds: 1,
            failure_threshold: 3}}
  restart: {{policy: always}}
  stop_grace_seconds: 3
"""


def rollout_yaml(bake_seconds: float = 3, deadline_seconds: float = 300,
                 full_bake_seconds: float | None = None) -> str:
    """``full_bake_seconds``: FULL's bake (the watch before the commit point), if not
    ``bake_seconds``."""
    def bake(n: str) -> float:
        return full_bake_seconds if n == "FULL" and full_bake_seconds is not None \
            else bake_seconds
    phases = "\n".join(f"    - {{name: {n}, weight: {w}, min_bake_seconds: {bake(n)}, "
                       f"deadline_seconds: {max(deadline_seconds, bake(n) + 60)}}}"
                       for n, w in PHASES)
    return f"""apiVersion: atlas.autonomous/v1
kind: Rollout
metadata: {{name: {SERVICE}-2}}
spec:
  service: {SERVICE}
  from_version: "1.0.0"
  to_version: "{TO_VERSION}"
  command: ["{{python}}", "-m", "autonomous.sample_stack", "--name", "{SERVICE}", "--port",
            "{{port}}", "--service-version", "{TO_VERSION}"]
  env: {{ATLAS_SAMPLE_VARIANT: good}}
  probes_per_observe: 10
  phases:
{phases}
"""


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if old not in text:
        raise ValueError(f"{path}: {old!r} not found (the default tree changed)")
    path.write_text(text.replace(old, new))


def prepare_rollout_tree(root: Path, port: int, front: int,
                         on_operator_restart: str = "resume") -> Path:
    """Add the gateway-served ``nexus`` to an existing test tree and make rollouts quick;
    the ``Rollout`` itself is written later (``rollout_yaml``) so it starts when wanted."""
    (root / "desired_state" / f"{SERVICE}.yaml").write_text(nexus_yaml(port, front))
    _edit(root / "config" / "autonomous.yaml",
          "evolution: {enabled: true, interval_seconds: 60}",
          "evolution: {enabled: true, interval_seconds: 0.5}")
    pol = root / "policies" / "evolution.yaml"
    for old, new in (("min_samples: 50", "min_samples: 20"), ("min_rounds: 10", "min_rounds: 5"),
                     ("round_p_value: 0.01", "round_p_value: 0.05"),
                     ("on_operator_restart: resume",
                      f"on_operator_restart: {on_operator_restart}")):
        _edit(pol, old, new)
    return root


@dataclass(frozen=True)
class Snapshot:
    """The newest rollout of nexus → 2.0.0 and its recorded candidate, from the database."""

    rollout_id: int | None
    status: str | None
    phase_index: int | None
    reason: str
    candidate_pid: int | None
    candidate_ctime: float | None
    operator_pid: int | None
    events: tuple[str, ...]


def _ro(data: Path) -> sqlite3.Connection:
    con = sqlite3.connect(f"file:{data / 'atlas.db'}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    return con


def integrity(data: Path) -> str:
    con = _ro(data)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def snapshot(data: Path) -> Snapshot:
    con = _ro(data)
    try:
        r = con.execute("SELECT * FROM evolution_rollouts WHERE service=? AND to_version=? "
                        "ORDER BY id DESC LIMIT 1", (SERVICE, TO_VERSION)).fetchone()
        if r is None:
            return Snapshot(None, None, None, "", None, None, None, ())
        c = con.execute("SELECT * FROM evolution_candidates WHERE rollout_id=?",
                        (r["id"],)).fetchone()
        ev = tuple(e["action"] for e in con.execute(
            "SELECT action FROM evolution_events WHERE rollout_id=? ORDER BY id", (r["id"],)))
    finally:
        con.close()
    return Snapshot(int(r["id"]), r["status"], int(r["phase_index"]), r["reason"],
                    int(c["pid"]) if c else None, float(c["create_time"]) if c else None,
                    int(c["operator_pid"]) if c else None, ev)


def expected_weight(s: Snapshot) -> int:
    """The candidate's share the persisted state stands for (a rollback: 0, a commit: the
    candidate is gone, the Service itself runs the new version)."""
    if s.status != "running" or s.phase_index is None:
        return 0
    return PHASES[s.phase_index][1]


def candidate_weight(data: Path) -> tuple[int, str | None] | None:
    """(the candidate's weight in the written gateway configuration, where device paths go);
    None while no configuration is written."""
    path = data / "gateway" / "dynamic" / "atlas.yaml"
    if not path.exists():
        return None
    doc: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    http = doc.get("http", {})
    services = http.get("services", {})
    split = services.get(f"{SERVICE}-split", {}).get("weighted", {})
    want = f"{SERVICE}-v{TO_VERSION.replace('.', '-')}"
    weight = sum(int(s["weight"]) for s in split.get("services", [])
                 if _guarded(services, s["name"]) == want)
    device = http.get("routers", {}).get(f"{SERVICE}-device", {}).get("service")
    return weight, None if device is None else _guarded(services, device)


def _guarded(services: dict[str, Any], name: str) -> str:
    """A candidate's rollback-gate failover → the candidate's own service (its primary)."""
    return str((services.get(name) or {}).get("failover", {}).get("service", name))


def gateway_backends(data: Path) -> dict[str, list[str]]:
    """Traefik service → server URLs of the services the front's split routes to."""
    doc: dict[str, Any] = yaml.safe_load(
        (data / "gateway" / "dynamic" / "atlas.yaml").read_text()) or {}
    services = doc["http"]["services"]
    split = services[f"{SERVICE}-split"]["weighted"]["services"]
    names = [_guarded(services, s["name"]) for s in split]
    return {n: [x["url"] for x in services[n]["loadBalancer"]["servers"]] for n in names}


def versions_running(pids: list[int]) -> dict[str, list[int]]:
    """Among ``pids``: the sample-stack processes by their ``--service-version``."""
    out: dict[str, list[int]] = {}
    for pid in pids:
        try:
            argv = psutil.Process(pid).cmdline()
        except psutil.Error:
            continue
        if "--service-version" in argv and "autonomous.sample_stack" in argv:
            out.setdefault(argv[argv.index("--service-version") + 1], []).append(pid)
    return out


def alive(pid: int | None, ctime: float | None) -> bool:
    """The process ``pid`` started at ``ctime`` still runs (not a zombie)."""
    if pid is None or ctime is None:
        return False
    try:
        p = psutil.Process(pid)
        return abs(p.create_time() - ctime) < 0.5 and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
