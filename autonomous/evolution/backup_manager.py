"""Snapshots before an update, on the one backup engine
(:class:`~autonomous.backup.engine.BackupEngine`, the same one disaster recovery uses): one
backup plan per service, ``evolution-<service>``, in the same deduplicated repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autonomous.backup.engine import BackupEngine
from autonomous.backup.manifest import Manifest

__all__ = ["BackupManager"]


class BackupManager:
    def __init__(self, engine: BackupEngine) -> None:
        self.engine = engine

    @staticmethod
    def plan(service: str) -> str:
        return f"evolution-{service}"

    def create_snapshot(self, service: str, paths: list[str],
                        exclude: list[str] | None = None) -> dict[str, Any]:
        """A full snapshot of ``paths`` (root-relative or ``{data_dir}/...``)."""
        return self.engine.create_full_backup(self.plan(service),
                                              {"paths": paths, "exclude": exclude or []})

    def list_snapshots(self, service: str) -> list[dict[str, Any]]:
        """Newest first."""
        return self.engine.list_backups(self.plan(service))

    def verify_snapshot(self, snapshot_id: str) -> dict[str, Any]:
        return self.engine.verify_backup_integrity(snapshot_id)

    def manifest(self, snapshot_id: str) -> Manifest:
        """The snapshot's manifest: its sources (label → live path) and entries."""
        return self.engine.get(snapshot_id)

    def restore_snapshot(self, snapshot_id: str, target: Path) -> dict[str, Any]:
        """Byte-identical restore into ``target`` (new or empty folder), or refuse."""
        return self.engine.restore_from_disaster(snapshot_id, target)

    def cleanup_old_snapshots(self, service: str, keep_last: int) -> dict[str, Any]:
        return self.engine.prune(self.plan(service),
                                 {"keep_last": keep_last, "keep_daily": 0, "keep_weekly": 0})
