"""SQLite files that are not the operator's own database (a service's data, a restored copy).

The operator's database is :class:`~autonomous.store.db.Store`'s; these are the other SQLite
files the backup engine meets in a service's data dir: recognised by their header, copied
with SQLite's online backup API (never a torn copy of a database in use), and checked with
``PRAGMA integrity_check`` after a restore, opened read-only so a check never writes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["integrity_check", "is_sqlite", "online_copy"]

_SQLITE_MAGIC = b"SQLite format 3\x00"


def is_sqlite(path: Path) -> bool:
    """Whether ``path`` starts with SQLite's file header (False when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == _SQLITE_MAGIC
    except OSError:
        return False


def online_copy(src: Path, dst: Path) -> None:
    """Consistent copy of the database ``src`` into ``dst`` (online backup API; ``src`` is
    opened read-only and may be written by its owner meanwhile)."""
    s = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    d = sqlite3.connect(dst)
    try:
        s.backup(d)
    finally:
        d.close()
        s.close()


def integrity_check(path: Path) -> str:
    """``PRAGMA integrity_check`` of the database at ``path``, opened read-only: ``"ok"`` or
    SQLite's first complaint."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()
