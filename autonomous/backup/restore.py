"""Checking and restoring a backup, file by file from our own manifest.

Nothing is extracted by ``tarfile``: every entry's path is checked first (relative, no ``..``,
no empty or ``.`` component, no NUL, no duplicates, never through a symlink of the backup)
and every link target must stay inside the restored tree (no absolute target, no ``..`` that
climbs out). A backup with any such entry is refused whole before anything is written.

Restore writes into a fresh staging folder beside the target (files opened with
``O_EXCL|O_NOFOLLOW``, each chunk re-hashed, each file's SHA-256 compared with the manifest)
and renames it to the target at the end; on any damage the staging folder is removed and the
damaged chunks and files are named.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from autonomous.backup.chunks import ChunkDamaged, ChunkStore
from autonomous.backup.manifest import Entry, Manifest
from autonomous.store.files import integrity_check

__all__ = [
    "RestoreRefused",
    "UnsafeBackup",
    "entry_problems",
    "restore_manifest",
    "restored_databases_integrity",
    "verify_manifest",
]

Progress = Callable[[int, int], None]


class UnsafeBackup(Exception):
    """The manifest holds paths or links that would escape the target."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("backup refused: " + "; ".join(problems))
        self.problems = problems


class RestoreRefused(Exception):
    """Restore stopped because chunks are damaged or a file does not match its SHA-256."""

    def __init__(self, message: str, damaged: dict[str, Any]) -> None:
        super().__init__(message)
        self.damaged = damaged


def _path_problem(path: str) -> str | None:
    if not path or "\x00" in path:
        return "empty path or NUL byte"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return "absolute path"
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "'..', '.' or empty component"
    return None


def _link_problem(entry: Entry) -> str | None:
    t = entry.target
    if not t or "\x00" in t:
        return "symlink without a target"
    if t.startswith("/"):
        return f"symlink to absolute path {t!r} points outside the restored tree"
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(entry.path), t))
    if resolved == ".." or resolved.startswith("../"):
        return f"symlink to {t!r} points outside the restored tree"
    return None


def entry_problems(manifest: Manifest) -> list[str]:
    """Every unsafe entry, as ``'<path>: <why>'``; empty when the backup can be restored."""
    problems: list[str] = []
    seen: set[str] = set()
    links = {e.path for e in manifest.entries if e.type == "symlink"}
    for e in manifest.entries:
        why = _path_problem(e.path)
        if why is None and e.path in seen:
            why = "listed twice"
        if why is None:
            parents = ["/".join(e.path.split("/")[:i]) for i in range(1, e.path.count("/") + 1)]
            via = next((p for p in parents if p in links), None)
            why = f"goes through symlink {via!r}" if via else None
        if why is None and e.type == "symlink":
            why = _link_problem(e)
        if why is None and e.type not in ("file", "dir", "symlink"):
            why = f"unknown entry type {e.type!r}"
        if why:
            problems.append(f"{e.path!r}: {why}")
        seen.add(e.path)
    return problems


def verify_manifest(manifest: Manifest, chunks: ChunkStore, *, workers: int = 2,
                    progress: Progress | None = None) -> dict[str, Any]:
    """Re-hash every chunk the backup uses; name each damaged chunk and the files using it."""
    refs = manifest.chunk_refs()
    digests = sorted(refs)
    damaged: dict[str, Any] = {}
    done = [0]
    lock = threading.Lock()

    def check(d: str) -> None:
        problem = chunks.check(d)
        with lock:
            if problem:
                damaged[d] = {"problem": problem, "files": refs[d]}
            done[0] += 1
            n = done[0]
        if progress:
            progress(n, len(digests))

    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(check, digests))
    unsafe = entry_problems(manifest)
    files = sorted({f for v in damaged.values() for f in v["files"]})
    return {"backup": manifest.id, "ok": not damaged and not unsafe, "chunks": len(digests),
            "damaged_chunks": damaged, "damaged_files": files, "unsafe_entries": unsafe}


def _empty_target(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise FileExistsError(f"restore target {target} exists and is not a folder")
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"restore target {target} is not empty: restore into a new "
                              "or empty folder")


def restore_manifest(manifest: Manifest, chunks: ChunkStore, target: Path, *,
                     workers: int = 2, progress: Progress | None = None) -> dict[str, Any]:
    """Restore every entry under ``target`` (new or empty); see the module docstring."""
    problems = entry_problems(manifest)
    if problems:
        raise UnsafeBackup(problems)
    target = Path(target).absolute()
    _empty_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.restoring-{manifest.id}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        written = _restore_into(manifest, chunks, staging, workers, progress)
        if target.exists():
            target.rmdir()
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"backup": manifest.id, "target": str(target), **written}


def _restore_into(manifest: Manifest, chunks: ChunkStore, root: Path, workers: int,
                  progress: Progress | None) -> dict[str, Any]:
    entries = sorted(manifest.entries, key=lambda e: e.path)
    for e in entries:
        if e.type == "dir":
            (root / e.path).mkdir(parents=True, exist_ok=True)
    files = [e for e in entries if e.type == "file"]
    writer = _FileWriter(chunks, root, sum(e.size for e in files), progress)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(writer.write, files))
    if writer.damaged:
        raise RestoreRefused(_damage_message(writer.damaged), writer.damaged)
    for e in entries:
        if e.type == "symlink":
            link = root / e.path
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(e.target or "", link)
            os.utime(link, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)
    for e in reversed(entries):
        if e.type == "dir":
            os.chmod(root / e.path, _safe_mode(e.mode))
            os.utime(root / e.path, ns=(e.mtime_ns, e.mtime_ns))
    return {"files": len(files), "bytes": writer.total,
            "links": sum(e.type == "symlink" for e in entries),
            "dirs": sum(e.type == "dir" for e in entries)}


def _safe_mode(mode: int) -> int:
    """Permission bits to restore: never setuid or setgid, whatever the manifest says."""
    return stat.S_IMODE(mode) & ~(stat.S_ISUID | stat.S_ISGID)


def _damage_message(damaged: dict[str, Any]) -> str:
    parts = [f"{k}: {v['problem']} (in {', '.join(v['files'])})" for k, v in damaged.items()]
    return "restore refused, backup is damaged: " + "; ".join(parts)


class _FileWriter:
    def __init__(self, chunks: ChunkStore, root: Path, total: int,
                 progress: Progress | None) -> None:
        self.chunks, self.root, self.total, self.progress = chunks, root, total, progress
        self.damaged: dict[str, Any] = {}
        self._done = 0
        self._lock = threading.Lock()
        self._real_root = os.path.realpath(root)

    def write(self, e: Entry) -> None:
        if self.damaged:
            return  # stop early: the restore is refused anyway
        path = self.root / e.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.realpath(path.parent).startswith(self._real_root + os.sep) and \
                os.path.realpath(path.parent) != self._real_root:
            raise UnsafeBackup([f"{e.path!r}: parent resolves outside the target"])
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as f:
                for digest in e.chunks:
                    data = self.chunks.get(digest)
                    h.update(data)
                    f.write(data)
                    self._advance(len(data))
        except ChunkDamaged as exc:
            self._damage(exc.digest, exc.problem, e.path)
            return
        if h.hexdigest() != e.sha256:
            self._damage(f"file:{e.path}", "restored content does not match the manifest's "
                         "SHA-256", e.path)
            return
        os.chmod(path, _safe_mode(e.mode))
        os.utime(path, ns=(e.mtime_ns, e.mtime_ns))

    def _damage(self, key: str, problem: str, path: str) -> None:
        with self._lock:
            self.damaged.setdefault(key, {"problem": problem, "files": []})["files"].append(path)

    def _advance(self, n: int) -> None:
        with self._lock:
            self._done += n
            done = self._done
        if self.progress:
            self.progress(done, max(self.total, done))


def restored_databases_integrity(manifest: Manifest, target: Path) -> dict[str, str]:
    """``PRAGMA integrity_check`` of each SQLite file of ``manifest`` restored under
    ``target`` (opened read-only), by its path in the backup."""
    results = {}
    for e in manifest.entries:
        if not e.sqlite:
            continue
        results[e.path] = integrity_check(target / e.path)
    return results
