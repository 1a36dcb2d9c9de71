"""ServiceLogTailer: index the supervised services' stdout/stderr files.

The process supervisor writes each service's output to ``<log_dir>/<service>.log``. Each
``collect()`` reads what was appended since the last call (offsets persisted in the store, so
a restart neither loses nor repeats lines; a truncated or replaced file is read from the
start) and hands structured lines to the logs collector: JSON lines keep their fields, plain
lines get a level guessed from their words. A JSON line that describes a served request
(``trace_id``, ``span_id``, ``duration_ms``) is also passed to ``on_span`` so the service's
side of a trace lands in the tracing system.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autonomous.core.clock import Clock
from autonomous.store.db import Store

__all__ = ["ServiceLogTailer", "parse_line"]

_LEVEL_WORDS = re.compile(r"\b(CRITICAL|FATAL|ERROR|Traceback|Exception|WARN(?:ING)?|DEBUG)\b")
_WORD_LEVEL = {"CRITICAL": "CRITICAL", "FATAL": "CRITICAL", "ERROR": "ERROR",
               "Traceback": "ERROR", "Exception": "ERROR", "WARN": "WARNING",
               "WARNING": "WARNING", "DEBUG": "DEBUG"}
_MAX_READ = 4 * 1024 * 1024  # bytes read per file and call; the rest comes next call


def parse_line(text: str, service: str) -> dict[str, Any]:
    """A structured line from one line of a service's output."""
    text = text.rstrip("\r\n")
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            obj.setdefault("service", service)
            obj.setdefault("logger", service)
            obj.setdefault("message", "")
            return obj
    m = _LEVEL_WORDS.search(text)
    return {"level": _WORD_LEVEL[m.group(1)] if m else "INFO", "logger": f"{service}.stdout",
            "service": service, "message": text}


class ServiceLogTailer:
    """Reads new output of every ``*.log`` file in ``log_dir`` into the logs collector."""

    def __init__(self, store: Store, clock: Clock, log_dir: Path,
                 sink: Callable[[list[dict[str, Any]]], None],  # indexes, in our transaction
                 on_span: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.store = store
        self.clock = clock
        self.log_dir = Path(log_dir)
        self.sink = sink
        self.on_span = on_span

    def collect(self) -> int:
        """Index what was appended to each service log since last time; returns lines read."""
        total = 0
        for path in sorted(self.log_dir.glob("*.log")):
            total += self._tail(path)
        return total

    def _tail(self, path: Path) -> int:
        try:
            st = path.stat()
        except FileNotFoundError:
            return 0
        row = self.store.query_one("SELECT inode, offset FROM log_offsets WHERE path=?",
                                   (str(path),))
        offset = 0
        if row is not None and row["inode"] == st.st_ino and row["offset"] <= st.st_size:
            offset = row["offset"]
        if offset >= st.st_size:
            return 0
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read(_MAX_READ)
        end = chunk.rfind(b"\n")
        if end < 0:
            return 0  # no complete line yet
        chunk = chunk[:end + 1]
        service = path.stem
        lines = [parse_line(raw.decode("utf-8", "replace"), service)
                 for raw in chunk.splitlines() if raw.strip()]
        with self.store.transaction() as conn:  # lines and offset commit together
            self.sink(lines)
            conn.execute(
                "INSERT INTO log_offsets(path, inode, offset, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT(path) DO UPDATE SET inode=excluded.inode, offset=excluded.offset, "
                "updated_at=excluded.updated_at",
                (str(path), st.st_ino, offset + len(chunk), self.clock.now()))
        if self.on_span is not None:
            for line in lines:
                if line.get("trace_id") and line.get("span_id") and "duration_ms" in line:
                    self.on_span(line)
        return len(lines)


