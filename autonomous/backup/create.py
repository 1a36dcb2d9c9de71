"""Taking a backup: walk the declared paths, snapshot SQLite files, chunk and store files.

Each declared path becomes a top-level *label* inside the backup (its base name, made unique).
SQLite databases (recognised by their header) are never read as plain files: the operator's
own database is copied with ``Store.backup_to`` and any other one with SQLite's online backup
API into a temporary file, and that consistent copy is what gets chunked; their ``-wal``,
``-shm`` and ``-journal`` companions are left out (the copy already holds their content).
An incremental backup reuses the chunk list of files whose size, mtime, ctime and inode match
the parent backup (SQLite copies are always taken afresh).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autonomous.backup.chunks import ChunkStore
from autonomous.backup.manifest import Entry, Manifest
from autonomous.store.files import is_sqlite, online_copy

__all__ = ["BackupWriter", "Source", "resolve_sources"]

_SIDE_FILES = ("-wal", "-shm", "-journal")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Source:
    label: str
    path: Path


def resolve_sources(paths: list[str], *, root: Path, data_dir: Path) -> list[Source]:
    """Declared paths → absolute sources with unique labels; missing paths are an error."""
    out: list[Source] = []
    used: set[str] = set()
    for raw in paths:
        p = Path(raw.replace("{data_dir}", str(data_dir)))
        p = p if p.is_absolute() else Path(root) / p
        if not p.exists() and not p.is_symlink():
            raise FileNotFoundError(f"backup path {raw!r} ({p}) does not exist")
        label, n = p.name or "root", 1
        while label in used:
            n += 1
            label = f"{p.name}.{n}"
        used.add(label)
        out.append(Source(label, p.absolute()))
    return out


class BackupWriter:
    """Produces the entries of one backup. ``operator_db`` is copied with ``backup_db``."""

    def __init__(self, chunks: ChunkStore, *, exclude: list[str], skip: list[Path],
                 operator_db: Path | None = None,
                 backup_db: Callable[[Path], None] | None = None,
                 progress: Progress | None = None) -> None:
        self.chunks = chunks
        self.exclude = exclude
        self.skip = [Path(s).absolute() for s in skip]
        self.operator_db = Path(operator_db).absolute() if operator_db else None
        self.backup_db = backup_db
        self.progress = progress
        self._lock = threading.Lock()
        self.stats: dict[str, Any] = {"files": 0, "bytes": 0, "new_chunks": 0,
                                      "reused_files": 0, "chunks": 0, "stored_bytes": 0,
                                      "new_bytes": 0, "sqlite_files": 0, "warnings": []}
        self._done = 0
        self._total = 0

    # -- walk ------------------------------------------------------------------------------
    def walk(self, sources: list[Source]) -> list[tuple[Entry, Path]]:
        """Entries (without content yet) with the absolute path each comes from."""
        found: list[tuple[Entry, Path]] = []
        for src in sources:
            self._visit(src.path, src.label, found)
            if src.path.is_dir() and not src.path.is_symlink():
                for d, dirs, files in os.walk(src.path):
                    dirs.sort()
                    rel = Path(d).relative_to(src.path)
                    for name in sorted(dirs) + sorted(files):
                        inside = f"{src.label}/{(rel / name).as_posix()}".replace("/./", "/")
                        self._visit(Path(d) / name, inside, found)
                    dirs[:] = [n for n in dirs if self._descend(Path(d) / n, rel, n, src)]
        return self._drop_sqlite_sides(found)

    def _descend(self, p: Path, rel: Path, name: str, src: Source) -> bool:
        inside = f"{src.label}/{(rel / name).as_posix()}"
        return not p.is_symlink() and not self._skipped(p, inside)

    def _skipped(self, p: Path, inside: str) -> bool:
        if any(p == s or s in p.parents for s in self.skip):
            return True
        return any(fnmatch.fnmatch(inside, pat) or fnmatch.fnmatch(p.name, pat)
                   for pat in self.exclude)

    def _visit(self, p: Path, inside: str, found: list[tuple[Entry, Path]]) -> None:
        inside = inside.replace("/./", "/").rstrip("/").removesuffix("/.")
        if self._skipped(p, inside):
            return
        st = os.lstat(p)
        base: dict[str, Any] = {"path": inside, "mode": stat.S_IMODE(st.st_mode), "mtime_ns": st.st_mtime_ns,
                "ino": st.st_ino, "ctime_ns": st.st_ctime_ns}
        if stat.S_ISLNK(st.st_mode):
            found.append((Entry(type="symlink", target=os.readlink(p), **base), p))
        elif stat.S_ISDIR(st.st_mode):
            found.append((Entry(type="dir", **base), p))
        elif stat.S_ISREG(st.st_mode):
            found.append((Entry(type="file", size=st.st_size, **base), p))
        else:
            self.stats["warnings"].append(f"{p}: skipped (not a file, folder or link)")

    def _drop_sqlite_sides(self, found: list[tuple[Entry, Path]]) -> list[tuple[Entry, Path]]:
        dbs = set()
        for e, p in found:
            if e.type == "file" and (p == self.operator_db or is_sqlite(p)):
                e.sqlite = True
                dbs.add(str(p))
        keep = []
        for e, p in found:
            side = next((s for s in _SIDE_FILES if str(p).endswith(s)), None)
            if side and str(p)[:-len(side)] in dbs:
                continue
            keep.append((e, p))
        return keep

    # -- content ---------------------------------------------------------------------------
    def run(self, sources: list[Source], *, parent: Manifest | None,
            tmp_dir: Path) -> list[Entry]:
        """Walk, then store every file's chunks (in ``workers`` threads); returns entries."""
        found = self.walk(sources)
        prev = {e.path: e for e in parent.entries} if parent else {}
        self._total = sum(e.size for e, _ in found if e.type == "file")
        files = [(e, p) for e, p in found if e.type == "file"]
        with ThreadPoolExecutor(max(1, self.chunks.params.workers)) as pool:
            list(pool.map(lambda ep: self._file(ep[0], ep[1], prev.get(ep[0].path), tmp_dir),
                          sorted(files, key=lambda ep: -ep[0].size)))
        return [e for e, _ in found]

    def _file(self, e: Entry, p: Path, old: Entry | None, tmp_dir: Path) -> None:
        if e.sqlite:
            self._sqlite(e, p, tmp_dir)
        elif old is not None and self._unchanged(e, old):
            e.sha256, e.chunks = old.sha256, list(old.chunks)
            self._count(e.size, reused=True, chunks=len(e.chunks))
        else:
            self._store(e, p)

    def _unchanged(self, e: Entry, old: Entry) -> bool:
        same = (old.type == "file" and not old.sqlite and old.size == e.size
                and old.mtime_ns == e.mtime_ns and old.ctime_ns == e.ctime_ns
                and old.ino == e.ino)
        return same and all(self.chunks.sound(c) for c in old.chunks)

    def _sqlite(self, e: Entry, p: Path, tmp_dir: Path) -> None:
        fd, name = tempfile.mkstemp(prefix="sqlite-", suffix=".db", dir=tmp_dir)
        os.close(fd)
        copy = Path(name)
        try:
            copy.unlink()
            if p == self.operator_db and self.backup_db is not None:
                self.backup_db(copy)
            else:
                online_copy(p, copy)
            e.size = copy.stat().st_size
            self._store(e, copy, counted_size=e.size)
            with self._lock:
                self.stats["sqlite_files"] += 1
        finally:
            copy.unlink(missing_ok=True)

    def _store(self, e: Entry, p: Path, counted_size: int | None = None) -> None:
        h = hashlib.sha256()
        chunks: list[str] = []
        new = new_bytes = stored = 0
        size = 0
        with open(p, "rb") as f:
            for piece in self.chunks.cut(f):
                length = len(piece)
                h.update(piece)
                digest, written, fresh = self.chunks.put(piece)
                chunks.append(digest)
                size += length
                new += fresh
                new_bytes += length if fresh else 0
                stored += written
                self._advance(length)
        if size != (counted_size if counted_size is not None else e.size):
            self.stats["warnings"].append(f"{p}: size changed while it was read")
        e.size, e.sha256, e.chunks = size, h.hexdigest(), chunks
        self._count(0, chunks=len(chunks), new=new, new_bytes=new_bytes, stored=stored)
        with self._lock:
            self.stats["files"] += 1
            self.stats["bytes"] += size

    def _count(self, advance: int, *, reused: bool = False, chunks: int = 0, new: int = 0,
               new_bytes: int = 0, stored: int = 0) -> None:
        with self._lock:
            if reused:
                self.stats["reused_files"] += 1
                self.stats["files"] += 1
                self.stats["bytes"] += advance
            self.stats["chunks"] += chunks
            self.stats["new_chunks"] += new
            self.stats["new_bytes"] += new_bytes
            self.stats["stored_bytes"] += stored
        if advance:
            self._advance(advance)

    def _advance(self, n: int) -> None:
        with self._lock:
            self._done += n
            done, total = self._done, self._total
        if self.progress:
            self.progress(done, max(total, done))
