"""SQLite store: one database file in the data dir, WAL, versioned migrations per component.

Migrations live in ``autonomous/store/schemas/<component>.py``; each module defines
``COMPONENT`` (a name) and ``MIGRATIONS`` (a list of SQL scripts; version = index + 1).
They are discovered at open time and applied in order, each inside a transaction, and
recorded in ``schema_migrations``. Applied migrations are never edited: add a new one.

One connection, guarded by a re-entrant lock, is shared by the operator's event loop and
its worker threads. ``synchronous=NORMAL`` with WAL keeps every committed transaction
across a process kill (SIGKILL); only a power loss may drop the last few.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

#: Parameters of one SQL statement: positional values or named ones.
Params: TypeAlias = Sequence[Any] | Mapping[str, Any]

__all__ = ["Store", "discover_migrations"]


def discover_migrations() -> dict[str, list[str]]:
    """Map component name → ordered migration scripts from ``autonomous.store.schemas``."""
    from autonomous.store import schemas

    found: dict[str, list[str]] = {}
    for info in sorted(pkgutil.iter_modules(schemas.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{schemas.__name__}.{info.name}")
        comp = getattr(mod, "COMPONENT", None)
        if comp is None:
            continue
        if comp in found:
            raise RuntimeError(f"migration component {comp!r} defined twice ({info.name})")
        found[comp] = list(mod.MIGRATIONS)
    return found


def _private_files(path: Path) -> None:
    """The data dir 0700 and the database (+ ``-wal``/``-shm``) 0600: it holds env values.

    The folder is tightened only when this user owns it and it is not a shared sticky one
    (``/tmp``: root pointing the data dir there must not lock every other user out of it).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.parent.stat()
    if st.st_uid == os.getuid() and not st.st_mode & stat.S_ISVTX:
        os.chmod(path.parent, 0o700)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists() and not p.is_symlink():
            os.chmod(p, 0o600)


MMAP_BYTES = 256 * 1024 * 1024


class Store:
    """The operator's database. ``Store(path).open()`` connects and migrates."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> Store:
        _private_files(self.path)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                               timeout=30.0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        # reads through a memory map (writes still use write()): indexed lookups without a
        # read() syscall per page; the knowledge graph's `why` is served this way at 100k
        # entities (bench/bench_graph.py). Address space only; pages are the OS cache's.
        conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        self._conn = conn
        self.migrate()
        _private_files(self.path)  # -wal and -shm exist now
        return self

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Store:
        return self.open() if self._conn is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def lock(self) -> threading.RLock:
        """The one lock every use of the connection holds (re-entrant). State kept in memory
        beside tables (the knowledge graph) shares it instead of having its own: two locks
        taken in opposite orders by two threads — a transaction that records into the graph,
        a graph prune that reads the store — deadlock the operator."""
        return self._lock

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"store {self.path} is not open: call Store.open() first")
        return self._conn

    # -- migrations ------------------------------------------------------------------------
    def migrate(self) -> dict[str, int]:
        """Apply pending migrations; return component → schema version now in force."""
        with self._lock:
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT NOT NULL, "
                "version INTEGER NOT NULL, applied_at REAL NOT NULL, "
                "PRIMARY KEY (component, version))")
            versions: dict[str, int] = {}
            for comp, scripts in discover_migrations().items():
                row = self.conn.execute(
                    "SELECT MAX(version) FROM schema_migrations WHERE component=?",
                    (comp,)).fetchone()
                current = row[0] or 0
                for version, script in enumerate(scripts, start=1):
                    if version <= current:
                        continue
                    self._apply(comp, version, script)
                versions[comp] = len(scripts)
            return versions

    def _apply(self, comp: str, version: int, script: str) -> None:
        statements = [s for s in _split_sql(script) if s.strip()]
        with self.transaction() as c:
            for stmt in statements:
                c.execute(stmt)
            c.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                      (comp, version, time.time()))

    def schema_versions(self) -> dict[str, int]:
        rows = self.query("SELECT component, MAX(version) v FROM schema_migrations "
                          "GROUP BY component")
        return {r["component"]: r["v"] for r in rows}

    # -- queries ---------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolls back on any exception. Nests (savepoints)."""
        with self._lock:
            conn = self.conn
            if conn.in_transaction:
                name = f"sp{threading.get_ident()}_{id(conn)}_{time.monotonic_ns()}"
                conn.execute(f"SAVEPOINT {name}")
                try:
                    yield conn
                except BaseException:
                    conn.execute(f"ROLLBACK TO {name}")
                    conn.execute(f"RELEASE {name}")
                    raise
                conn.execute(f"RELEASE {name}")
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        with self._lock:
            return self.conn.execute(sql, params)

    def executemany(self, sql: str, seq: Iterable[Params]) -> sqlite3.Cursor:
        with self._lock:
            if self.conn.in_transaction:
                return self.conn.executemany(sql, seq)
            with self.transaction() as c:
                return c.executemany(sql, seq)

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def query_tuples(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Like ``query`` with plain tuples: about a quarter cheaper per row than
        ``sqlite3.Row``, for bulk reads of many rows (time series)."""
        with self._lock:
            cur = self.conn.cursor()
            cur.row_factory = None
            return cur.execute(sql, params).fetchall()

    def read_apart(self, *sqls: str) -> list[list[tuple[Any, ...]]]:
        """Run read-only queries without the store's lock, on a connection of their own, in one
        read transaction: they see the same committed state (WAL readers do not wait for the
        writer, nor it for them). For bulk reads that would hold every other user of the
        store up; inside an open transaction of this thread, which another connection cannot
        see, they run on the store's connection instead."""
        if self._lock.acquire(blocking=False):  # free, or this thread's own (re-entrant)
            try:
                if self.conn.in_transaction:
                    return [self.query_tuples(sql) for sql in sqls]
            finally:
                self._lock.release()
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                               isolation_level=None, timeout=30.0)
        try:
            conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            conn.execute("BEGIN")
            out = [conn.execute(sql).fetchall() for sql in sqls]
            conn.execute("COMMIT")
            return out
        finally:
            conn.close()

    def query_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        with self._lock:
            return self.conn.execute(sql, params).fetchone()

    # -- small key/value settings (JSON values) ----------------------------------------------
    def kv_get(self, key: str, default: Any = None) -> Any:
        row = self.query_one("SELECT value FROM kv WHERE key=?", (key,))
        return default if row is None else json.loads(row["value"])

    def kv_set(self, key: str, value: Any) -> None:
        self.execute("INSERT INTO kv(key, value, updated_at) VALUES (?, ?, ?) "
                     "ON CONFLICT(key) DO UPDATE SET value=excluded.value, "
                     "updated_at=excluded.updated_at", (key, json.dumps(value), time.time()))

    # -- online backup (used by the backup engine: never a torn copy) -------------------------
    def backup_to(self, target: str | Path) -> None:
        """Copy the live database to ``target`` with SQLite's online backup API."""
        dst = sqlite3.connect(str(target))
        try:
            with self._lock:
                self.conn.backup(dst)
        finally:
            dst.close()


def _split_sql(script: str) -> list[str]:
    """Split a migration script on ``;`` at statement ends (uses sqlite3.complete_statement)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf)
            buf = ""
    if buf.strip():
        out.append(buf)
    return out
