"""The one backup engine: content-defined, deduplicated, compressed (optionally sealed) backups
of declared paths, integrity verification, byte-identical restore, repair and retention.

One :class:`BackupEngine` per repository folder. Disaster recovery
(:class:`~autonomous.resilience.disaster_recovery.DisasterRecovery`: schedules, drills) and
evolution (:class:`~autonomous.evolution.backup_manager.BackupManager`: snapshots before an
update) both use it; nothing else writes a repository. The pieces underneath: ``chunks``
(chunk store, repository lock), ``manifest``, ``create`` (the writer), ``restore``,
``retention``, ``repair``, ``space`` (the fits-or-refuse check), ``crypto`` (sealed repositories)
and ``target`` (where a restore may write).

Methods block (file and network I/O): async callers run them with ``asyncio.to_thread``.
Every run is recorded in the operator database when a store is given (``backup_runs``); the
repository itself stays self-describing for an offline restore.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autonomous.backup.chunks import EngineParams, open_repository, repo_lock
from autonomous.backup.create import BackupWriter, resolve_sources
from autonomous.backup.manifest import (
    Manifest,
    damaged_manifests,
    list_manifests,
    load_manifest,
    new_backup_id,
    save_manifest,
)
from autonomous.backup.repair import repair_chunks
from autonomous.backup.restore import restore_manifest, verify_manifest
from autonomous.backup.retention import prune
from autonomous.backup.space import check_fits
from autonomous.core.clock import Clock, SystemClock
from autonomous.core.errors import NotFound

__all__ = ["BackupEngine", "Progress"]

Progress = Callable[[int, int], None]


class BackupEngine:
    """Backups of declared paths into ``repo``. ``store`` (the operator's) is copied with its
    online backup API when a plan names its file, and records runs."""

    def __init__(self, repo: Path, params: EngineParams, *, root: Path, data_dir: Path,
                 store: Any = None, clock: Clock | None = None,
                 key_file: Path | None = None) -> None:
        self.repo = Path(repo).absolute()
        self.chunks = open_repository(self.repo, params, key_file=key_file)
        self.params = self.chunks.params
        self.root, self.data_dir = Path(root), Path(data_dir)
        self.store = store
        self.clock = clock or SystemClock()

    # -- backups ---------------------------------------------------------------------------
    def create_full_backup(self, plan: str, spec: dict[str, Any], *,
                           progress: Progress | None = None) -> dict[str, Any]:
        """Read every declared file again (unchanged chunks are still deduplicated)."""
        return self._backup(plan, spec, "full", progress)

    def create_incremental_backup(self, plan: str, spec: dict[str, Any], *,
                                  progress: Progress | None = None) -> dict[str, Any]:
        """Reuse the chunk lists of files unchanged since the plan's latest backup (a full one
        when the plan has none yet)."""
        return self._backup(plan, spec, "incremental", progress)

    def _backup(self, plan: str, spec: dict[str, Any], kind: str,
                progress: Progress | None) -> dict[str, Any]:
        started, t0 = self.clock.now(), time.monotonic()
        backup_id = new_backup_id(started)
        try:
            with repo_lock(self.repo, exclusive=True):
                manifest = self._write(plan, spec, kind, backup_id, started, progress)
        except Exception as exc:
            self._record_run(backup_id, plan, kind, started, False, f"{type(exc).__name__}: "
                             f"{exc}", {})
            raise
        manifest.stats["seconds"] = round(time.monotonic() - t0, 3)
        self._record_run(backup_id, plan, manifest.kind, started, True, None, manifest.stats)
        return manifest.summary()

    def _write(self, plan: str, spec: dict[str, Any], kind: str, backup_id: str,
               started: float, progress: Progress | None) -> Manifest:
        sources = resolve_sources(spec["paths"], root=self.root, data_dir=self.data_dir)
        everything = list_manifests(self.repo)
        mine = [m for m in everything if m.plan == plan]
        parent = mine[-1] if kind == "incremental" and mine else None
        store_path = Path(self.store.path).absolute() if self.store is not None else None
        writer = BackupWriter(self.chunks, exclude=list(spec.get("exclude", [])),
                              skip=[self.repo], operator_db=store_path,
                              backup_db=self.store.backup_to if self.store else None,
                              progress=progress)
        tmp = self.repo / "tmp"
        tmp.mkdir(exist_ok=True)
        check_fits(plan, writer.walk(sources), mine[-1] if mine else None, self.repo)
        self.chunks.begin_pass()
        entries = writer.run(sources, parent=parent, tmp_dir=tmp)
        writer.stats["repaired_chunks"] = len(self.chunks.rewritten)
        manifest = Manifest(id=backup_id, plan=plan, kind=kind if parent or kind == "full"
                            else "full", parent=parent.id if parent else None,
                            created_at=started, sources={s.label: str(s.path) for s in sources},
                            entries=entries, stats=writer.stats,
                            seq=max((m.seq for m in everything), default=0) + 1)
        save_manifest(self.repo, manifest, fsync=self.params.fsync)
        return manifest

    def latest(self, plan: str) -> Manifest | None:
        found = list_manifests(self.repo, plan)
        return found[-1] if found else None

    def list_backups(self, plan: str | None = None) -> list[dict[str, Any]]:
        """Summaries of the readable backups, newest first."""
        return [m.summary() for m in reversed(list_manifests(self.repo, plan))]

    def get(self, backup_id: str) -> Manifest:
        try:
            return load_manifest(self.repo, backup_id)
        except (FileNotFoundError, ValueError):
            raise NotFound(f"backup {backup_id!r} is not in {self.repo}; list them with "
                           "'atlas-autonomous backups --plan PLAN'") from None

    # -- integrity / restore ---------------------------------------------------------------
    def verify_backup_integrity(self, backup_id: str, *,
                                progress: Progress | None = None) -> dict[str, Any]:
        """Re-hash every chunk of the backup; report each damaged chunk and file by name."""
        try:
            manifest = self.get(backup_id)
        except Exception as exc:  # a damaged manifest is a finding, not a crash
            if isinstance(exc, NotFound):
                raise
            return {"backup": backup_id, "ok": False, "manifest": str(exc),
                    "damaged_chunks": {}, "damaged_files": [], "unsafe_entries": []}
        with repo_lock(self.repo, exclusive=False):
            return verify_manifest(manifest, self.chunks, workers=self.params.workers,
                                   progress=progress)

    def repair(self, backup_id: str) -> dict[str, Any]:
        """Verify, rewrite damaged chunks from live data where it still hashes to the chunk
        name, verify again; the report names what was repaired and what could not be."""
        before = self.verify_backup_integrity(backup_id)
        if before.get("manifest") or not before["damaged_chunks"]:
            return {**before, "repaired": [], "unrepairable": before["damaged_chunks"]}
        with repo_lock(self.repo, exclusive=True):
            fixed = repair_chunks(self.get(backup_id), self.chunks, before["damaged_chunks"])
        after = self.verify_backup_integrity(backup_id)
        return {**after, **fixed}

    def restore_from_disaster(self, backup_id: str, target: Path, *,
                              progress: Progress | None = None) -> dict[str, Any]:
        """Restore into ``target`` (new or empty folder), byte-identical, or refuse."""
        manifest = self.get(backup_id)
        t0 = time.monotonic()
        with repo_lock(self.repo, exclusive=False):
            out = restore_manifest(manifest, self.chunks, Path(target),
                                   workers=self.params.workers, progress=progress)
        out["seconds"] = round(time.monotonic() - t0, 3)
        return out

    def prune(self, plan: str, retention: dict[str, int]) -> dict[str, Any]:
        """Apply the plan's retention and delete chunks nothing references any more."""
        bad = damaged_manifests(self.repo)
        if bad:
            raise RuntimeError("prune refused: damaged manifests could reference chunks: "
                               + "; ".join(bad))
        with repo_lock(self.repo, exclusive=True):
            return prune(self.repo, self.chunks, plan, retention)

    # -- records ---------------------------------------------------------------------------
    def _record_run(self, backup_id: str, plan: str, kind: str, started: float, ok: bool,
                    error: str | None, stats: dict[str, Any]) -> None:
        if self.store is None:
            return
        self.store.execute(
            "INSERT OR REPLACE INTO backup_runs(id, plan, kind, repository, started_at, "
            "finished_at, ok, error, stats) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (backup_id, plan, kind, str(self.repo), started, self.clock.now(), int(ok), error,
             json.dumps(stats, default=str)))
