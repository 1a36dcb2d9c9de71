"""Backup manifests: what one backup holds, file by file.

A manifest lists entries (``file``, ``dir``, ``symlink``) by their path inside the backup
(POSIX, relative: the first component is the label of the declared source path), with mode,
mtime (ns), size, the SHA-256 of the whole file and its ordered chunk list, or a link's target.
Manifests are stored as ``snapshots/<id>.json`` in the repository, written atomically; the
body's own SHA-256 is stored beside it so a damaged manifest is named too.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autonomous.backup.crypto import AuthenticationFailed, sealer_for

__all__ = [
    "Entry",
    "Manifest",
    "ManifestDamaged",
    "delete_manifest",
    "list_manifests",
    "load_manifest",
    "new_backup_id",
    "save_manifest",
]


@dataclass
class Entry:
    path: str
    type: str  # "file" | "dir" | "symlink"
    mode: int
    mtime_ns: int
    size: int = 0
    sha256: str | None = None
    chunks: list[str] = field(default_factory=list)
    target: str | None = None  # symlink target, as stored in the link
    sqlite: bool = False  # copied with SQLite's online backup API
    # change detection for incremental backups (not used by restore)
    ino: int = 0
    ctime_ns: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entry:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Manifest:
    id: str
    plan: str
    kind: str  # "full" | "incremental"
    parent: str | None
    created_at: float
    sources: dict[str, str]  # label -> original absolute path
    entries: list[Entry]
    stats: dict[str, Any] = field(default_factory=dict)
    seq: int = 0  # order of creation in the repository (ties on created_at)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["entries"] = [asdict(e) for e in self.entries]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        return cls(id=d["id"], plan=d["plan"], kind=d["kind"], parent=d.get("parent"),
                   created_at=d["created_at"], sources=dict(d["sources"]),
                   entries=[Entry.from_dict(e) for e in d["entries"]],
                   stats=dict(d.get("stats", {})), seq=int(d.get("seq", 0)))

    def chunk_refs(self) -> dict[str, list[str]]:
        """Chunk name → paths of the files using it."""
        refs: dict[str, list[str]] = {}
        for e in self.entries:
            for c in e.chunks:
                refs.setdefault(c, [])
                if not refs[c] or refs[c][-1] != e.path:
                    refs[c].append(e.path)
        return refs

    def summary(self) -> dict[str, Any]:
        files = [e for e in self.entries if e.type == "file"]
        return {"id": self.id, "plan": self.plan, "kind": self.kind, "parent": self.parent,
                "seq": self.seq,
                "created_at": self.created_at, "files": len(files),
                "bytes": sum(e.size for e in files), "sources": self.sources,
                "stats": self.stats}


class ManifestDamaged(Exception):
    pass


def new_backup_id(now: float) -> str:
    """Sortable id: UTC time to the second plus 6 random hex digits."""
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def _paths(repo: Path, backup_id: str) -> tuple[Path, Path]:
    if not backup_id or "/" in backup_id or backup_id.startswith("."):
        raise ValueError(f"{backup_id!r} is not a backup id")
    snap = Path(repo) / "snapshots"
    return snap / f"{backup_id}.json", snap / f"{backup_id}.sha256"


def save_manifest(repo: Path, manifest: Manifest, *, fsync: bool) -> Path:
    body = json.dumps(manifest.as_dict(), separators=(",", ":"), sort_keys=True).encode()
    path, digest_path = _paths(repo, manifest.id)
    sealer = sealer_for(repo)
    if sealer is not None:  # encrypted and authenticated, bound to its id
        body = sealer.seal(f"manifest:{manifest.id}", body)
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, data in ((digest_path, hashlib.sha256(body).hexdigest().encode()),
                         (path, body)):
        tmp = target.with_name(f".{target.name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    if fsync:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def load_manifest(repo: Path, backup_id: str) -> Manifest:
    """Read and check a manifest; raises FileNotFoundError or ManifestDamaged."""
    path, digest_path = _paths(repo, backup_id)
    body = path.read_bytes()
    try:
        expected = digest_path.read_text().strip()
    except FileNotFoundError:
        raise ManifestDamaged(f"{path}: its checksum file {digest_path.name} is missing") \
            from None
    if hashlib.sha256(body).hexdigest() != expected:
        raise ManifestDamaged(f"{path}: content does not match its SHA-256 (corrupted)")
    try:
        sealer = sealer_for(repo)
    except ValueError as exc:
        raise ManifestDamaged(str(exc)) from None
    if sealer is not None:
        try:
            body = sealer.open(f"manifest:{backup_id}", body)
        except AuthenticationFailed as exc:
            raise ManifestDamaged(f"{path}: {exc}") from None
    try:
        return Manifest.from_dict(json.loads(body))
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestDamaged(f"{path}: not a manifest: {exc}") from None


def list_manifests(repo: Path, plan: str | None = None) -> list[Manifest]:
    """Every readable manifest (oldest first), optionally of one plan; damaged ones skipped."""
    snap = Path(repo) / "snapshots"
    out: list[Manifest] = []
    for p in sorted(snap.glob("*.json")) if snap.exists() else []:
        try:
            m = load_manifest(repo, p.stem)
        except (ManifestDamaged, FileNotFoundError):
            continue
        if plan is None or m.plan == plan:
            out.append(m)
    return sorted(out, key=lambda m: (m.created_at, m.seq, m.id))


def damaged_manifests(repo: Path) -> list[str]:
    snap = Path(repo) / "snapshots"
    bad = []
    for p in sorted(snap.glob("*.json")) if snap.exists() else []:
        try:
            load_manifest(repo, p.stem)
        except ManifestDamaged as exc:
            bad.append(str(exc))
    return bad


def delete_manifest(repo: Path, backup_id: str) -> None:
    for p in _paths(repo, backup_id):
        p.unlink(missing_ok=True)


def referenced_chunks(manifests: Iterable[Manifest]) -> set[str]:
    return {c for m in manifests for e in m.entries for c in e.chunks}


__all__ += ["damaged_manifests", "referenced_chunks"]
