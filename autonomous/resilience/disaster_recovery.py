"""DisasterRecovery: the resilience face of the one backup engine — full and incremental
backups of the policy's plans, integrity checks, restore, retention — and disaster-recovery
drills (verify, restore into a temporary folder, check every SQLite copy, start the drill
service from the restored tree).

The backups themselves are :class:`~autonomous.backup.engine.BackupEngine`'s (``self.engine``);
evolution takes its snapshots on the same engine. The methods below keep the specification's
names and hand the work to the engine.

Methods block (file and network I/O): async callers run them with ``asyncio.to_thread``.
Drills are recorded in the operator database when a store is given (``drill_runs``).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autonomous.backup.chunks import ChunkStore, EngineParams
from autonomous.backup.engine import BackupEngine, Progress
from autonomous.backup.manifest import Manifest
from autonomous.backup.restore import restored_databases_integrity
from autonomous.core.clock import Clock
from autonomous.resilience.drill import run_drill_service
from autonomous.resilience.drill_reap import new_drill_dir

__all__ = ["DisasterRecovery"]


class DisasterRecovery:
    """Backups of declared paths into ``repo`` (on the one engine), plus drills."""

    def __init__(self, repo: Path, params: EngineParams, *, root: Path, data_dir: Path,
                 store: Any = None, clock: Clock | None = None,
                 drill_port_start: int = 20000, key_file: Path | None = None) -> None:
        self.engine = BackupEngine(repo, params, root=root, data_dir=data_dir, store=store,
                                   clock=clock, key_file=key_file)
        self.drill_port_start = drill_port_start

    @property
    def repo(self) -> Path:
        return self.engine.repo

    @property
    def chunks(self) -> ChunkStore:
        return self.engine.chunks

    @property
    def store(self) -> Any:
        return self.engine.store

    @property
    def clock(self) -> Clock:
        return self.engine.clock

    # -- backups (the engine's) ------------------------------------------------------------
    def create_full_backup(self, plan: str, spec: dict[str, Any], *,
                           progress: Progress | None = None) -> dict[str, Any]:
        return self.engine.create_full_backup(plan, spec, progress=progress)

    def create_incremental_backup(self, plan: str, spec: dict[str, Any], *,
                                  progress: Progress | None = None) -> dict[str, Any]:
        return self.engine.create_incremental_backup(plan, spec, progress=progress)

    def latest(self, plan: str) -> Manifest | None:
        return self.engine.latest(plan)

    def list_backups(self, plan: str | None = None) -> list[dict[str, Any]]:
        return self.engine.list_backups(plan)

    def get(self, backup_id: str) -> Manifest:
        return self.engine.get(backup_id)

    def verify_backup_integrity(self, backup_id: str, *,
                                progress: Progress | None = None) -> dict[str, Any]:
        return self.engine.verify_backup_integrity(backup_id, progress=progress)

    def repair(self, backup_id: str) -> dict[str, Any]:
        return self.engine.repair(backup_id)

    def restore_from_disaster(self, backup_id: str, target: Path, *,
                              progress: Progress | None = None) -> dict[str, Any]:
        return self.engine.restore_from_disaster(backup_id, target, progress=progress)

    def prune(self, plan: str, retention: dict[str, int]) -> dict[str, Any]:
        return self.engine.prune(plan, retention)

    # -- drill -----------------------------------------------------------------------------
    def test_disaster_recovery(self, backup_id: str, drill: dict[str, Any] | None = None
                               ) -> dict[str, Any]:
        """Verify, restore into a temporary folder, check every SQLite copy, start the drill
        service from the restored tree and wait for it to be healthy. Never raises for a
        failed step: the report says which step failed and why."""
        steps: list[dict[str, Any]] = []
        tmp = new_drill_dir()
        try:
            ok = self._drill_steps(backup_id, drill, tmp / "restored", steps)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        report = {"backup": backup_id, "ok": ok, "steps": steps, "at": self.clock.now()}
        self._record_drill(report)
        return report

    def _drill_steps(self, backup_id: str, drill: dict[str, Any] | None, target: Path,
                     steps: list[dict[str, Any]]) -> bool:
        checks: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("verify", lambda: _verified(self.verify_backup_integrity(backup_id))),
            ("restore", lambda: self.restore_from_disaster(backup_id, target)),
            ("sqlite_integrity", lambda: _sqlite_checks(self.get(backup_id), target)),
        ]
        if drill:
            checks.append(("service", lambda: run_drill_service(
                drill, target, port_start=self.drill_port_start)))
        for name, fn in checks:
            t0 = time.monotonic()
            try:
                detail, ok = fn(), True
            except Exception as exc:  # noqa: BLE001 - a failed step is the drill's finding
                detail, ok = {"error": f"{type(exc).__name__}: {exc}"}, False
            steps.append({"step": name, "ok": ok, "seconds": round(time.monotonic() - t0, 3),
                          "detail": detail})
            if not ok:
                return False
        return True

    # -- records ---------------------------------------------------------------------------
    def _record_drill(self, report: dict[str, Any]) -> None:
        if self.store is None:
            return
        self.store.execute("INSERT INTO drill_runs(backup_id, repository, ts, ok, report) "
                           "VALUES (?, ?, ?, ?, ?)", (report["backup"], str(self.repo),
                                                      report["at"], int(report["ok"]),
                                                      json.dumps(report, default=str)))


def _verified(report: dict[str, Any]) -> dict[str, Any]:
    if not report["ok"]:
        raise RuntimeError(f"backup damaged: chunks {sorted(report['damaged_chunks'])}, "
                           f"files {report['damaged_files']}, "
                           f"unsafe {report['unsafe_entries']} {report.get('manifest', '')}")
    return {"chunks": report["chunks"]}


def _sqlite_checks(manifest: Manifest, target: Path) -> dict[str, Any]:
    results = restored_databases_integrity(manifest, target)
    bad = {k: v for k, v in results.items() if v != "ok"}
    if bad:
        raise RuntimeError(f"PRAGMA integrity_check failed: {bad}")
    return {"databases": results}
