"""Rollback that sticks for data too: put back what an update changed in its snapshot's paths.

Before a rollout the evolution controller snapshots the paths the Service's UpdateSource
declares (``checks.snapshot_paths``) on the one backup engine. When the rollout is rolled
back, :func:`restore_touched` restores that snapshot into a staging folder (the engine's
byte-identical restore, verified chunk by chunk), compares each file with the live one by
SHA-256, and replaces only the files the update touched — changed or deleted — each one
atomically (a copy beside it, fsync, ``os.replace``). Files created after the snapshot are
reported, never deleted (the old version may have written them). The staging folder is removed.
The caller restarts the service (a ``restart_requested`` intent to the services controller), so
a process holding an old file open reopens the restored one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from autonomous.backup.engine import BackupEngine

__all__ = ["DataRestore", "file_sha256", "restore_touched"]


@dataclass
class DataRestore:
    snapshot: str
    restored: list[str] = field(default_factory=list)  # live paths put back
    unchanged: int = 0
    created_since: list[str] = field(default_factory=list)  # reported, left in place

    def as_dict(self) -> dict[str, object]:
        return {"snapshot": self.snapshot, "restored": self.restored,
                "unchanged": self.unchanged, "created_since": self.created_since}


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of a file's bytes (None when there is no such file)."""
    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    except (FileNotFoundError, IsADirectoryError):
        return None


def _live_path(sources: dict[str, str], entry_path: str) -> Path:
    label, _, rest = entry_path.partition("/")
    base = Path(sources[label])
    return base / rest if rest else base


def _put_back(staged: Path, live: Path, mode: int) -> None:
    live.parent.mkdir(parents=True, exist_ok=True)
    tmp = live.with_name(f".{live.name}.atlas-restore")
    shutil.copyfile(staged, tmp)
    os.chmod(tmp, mode & 0o7777)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, live)


def restore_touched(engine: BackupEngine, snapshot_id: str, staging: Path) -> DataRestore:
    """Put back every file of ``snapshot_id`` whose live copy differs or is gone."""
    manifest = engine.get(snapshot_id)
    if staging.exists():
        shutil.rmtree(staging)
    engine.restore_from_disaster(snapshot_id, staging)
    out = DataRestore(snapshot_id)
    try:
        files = {e.path: e for e in manifest.entries if e.type == "file"}
        for path, e in sorted(files.items()):
            live = _live_path(manifest.sources, path)
            if file_sha256(live) == e.sha256:
                out.unchanged += 1
                continue
            _put_back(staging / path, live, e.mode)
            out.restored.append(str(live))
        known = {_live_path(manifest.sources, p) for p in files}
        for e in manifest.entries:
            if e.type != "dir":
                continue
            for p in sorted(_live_path(manifest.sources, e.path).iterdir()):
                if p.is_file() and p not in known:
                    out.created_since.append(str(p))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
