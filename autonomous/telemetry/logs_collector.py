"""LogsCollector: structured JSON logs to rotating files and an SQLite FTS5 index.

    logs = LogsCollector(store, clock, log_dir, settings)
    logs.install()                        # stdlib handler on the root logger
    logging.getLogger("x").warning("disk %s", "full", extra={"service": "nexus"})
    logs.flush()
    logs.search_logs("disk", level="WARNING", service="nexus")
    logs.aggregate_errors(since=t0)       # grouped by normalised signature
    logs.export_logs(path)                # NDJSON

Every line is ``{ts, level, logger, message, service, trace_id, span_id, ...extra}`` with
secrets redacted before it reaches a file or the index. The supervised services' stdout and
stderr (``<log_dir>/<service>.log``) are read by :class:`~.log_tail.ServiceLogTailer` and
indexed the same way.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import IO, Any

from autonomous.core.clock import Clock
from autonomous.core.errors import Problem, ValidationFailed
from autonomous.core.signature import normalise
from autonomous.store.db import Store
from autonomous.telemetry.redact import redact_fields, redact_text

__all__ = [
    "LEVELS",
    "LEVEL_NAMES",
    "OPERATOR_LOG",
    "LogsCollector",
    "TelemetryLogHandler",
    "error_signature",
    "normalise_level",
]

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL", "ERR": "ERROR", "TRACE": "DEBUG"}
LEVEL_NAMES = (*LEVELS, *_ALIASES)  # every name ``level`` filters accept (any case)
OPERATOR_LOG = "operator.jsonl"
_STD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "service"}
_CORE = {"ts", "level", "logger", "service", "message", "trace_id", "span_id"}
_COLUMNS = ("id", "ts", "level", "logger", "service", "message", "trace_id", "span_id", "extra")


def normalise_level(level: str | int | None) -> str:
    """``'warn'`` → ``'WARNING'``; numbers map to the nearest standard level name."""
    if isinstance(level, int):
        return max((n for n, v in LEVELS.items() if v <= level), key=LEVELS.__getitem__,
                   default="DEBUG")
    name = str(level or "INFO").upper()
    name = _ALIASES.get(name, name)
    return name if name in LEVELS else "INFO"


def error_signature(logger: str, message: str) -> str:
    """``logger: first line`` with ids, numbers, paths and quoted values replaced by
    placeholders (the one normaliser, shared with self-healing's failure signatures)."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return f"{logger}: {normalise(first, 300)}"[:300]


def _bad(path: str, message: str) -> ValidationFailed:
    return ValidationFailed([Problem("", 0, path, message)])


def _fts_query(text: str) -> str:
    """Free text → an FTS5 query: every word must appear (``word*`` keeps a prefix search)."""
    words = re.findall(r"[\w.:-]+\*?", text, re.UNICODE)
    if not words:
        raise _bad("query", f"{text!r} has no word to search for")
    return " ".join(f'"{w[:-1]}"*' if w.endswith("*") else f'"{w}"' for w in words)


class TelemetryLogHandler(logging.Handler):
    """A stdlib handler: each record becomes one redacted structured line for the collector."""

    def __init__(self, collector: LogsCollector, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.collector = collector
        self._busy = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._busy, "on", False):  # a log call made while we index: drop it
            return
        self._busy.on = True
        try:
            self.collector.ingest([self.collector.from_record(record)])
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)
        finally:
            self._busy.on = False


class LogsCollector:
    """Structured log pipeline: files, FTS5 index, search, error aggregation, export."""

    def __init__(self, store: Store, clock: Clock, log_dir: Path, *, service: str = "operator",
                 max_bytes: int, backup_count: int, batch_size: int,
                 trace_ids: Callable[[], tuple[str, str] | None] | None = None,
                 on_errors: Callable[[dict[str, int]], None] | None = None) -> None:
        self.store = store
        self.clock = clock
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.service = service
        self.batch_size = batch_size
        self.trace_ids = trace_ids
        self.on_errors = on_errors
        self._file = RotatingFileHandler(self.log_dir / OPERATOR_LOG, maxBytes=max_bytes,
                                         backupCount=backup_count, encoding="utf-8", delay=True)
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._handler: TelemetryLogHandler | None = None
        self.indexed = 0

    # -- capture ----------------------------------------------------------------------------
    def install(self, logger: logging.Logger | None = None, level: str = "INFO") -> None:
        """Attach the handler to ``logger`` (the root logger by default)."""
        self._handler = TelemetryLogHandler(self, LEVELS[normalise_level(level)])
        target = logger or logging.getLogger()
        target.addHandler(self._handler)
        if target.level == logging.NOTSET or target.level > self._handler.level:
            target.setLevel(self._handler.level)
        self._target = target

    def uninstall(self) -> None:
        """Detach the handler, index what is buffered and close the file."""
        if self._handler is not None:
            self._target.removeHandler(self._handler)
            self._handler = None
        self.flush()
        self._file.close()

    def rotate(self) -> str | None:
        """Roll the operator log over now (disk pressure): the oldest backup beyond
        ``backup_count`` is deleted. The file rolled, or None when there is none yet."""
        path = self.log_dir / OPERATOR_LOG
        if not path.exists() or path.stat().st_size == 0:
            return None
        with self._lock:
            self._file.acquire()
            try:
                self._file.doRollover()
            finally:
                self._file.release()
        return str(path)

    def from_record(self, record: logging.LogRecord) -> dict[str, Any]:
        """A structured line from a stdlib record (extra= fields are kept)."""
        extra = {k: v for k, v in vars(record).items() if k not in _STD and not k.startswith("_")}
        if record.exc_info:
            extra["exc"] = logging.Formatter().formatException(record.exc_info)
        line = {"ts": self.clock.now(), "level": record.levelname, "logger": record.name,
                "message": record.getMessage(),
                "service": getattr(record, "service", None) or self.service, **extra}
        ids = self.trace_ids() if self.trace_ids and "trace_id" not in extra else None
        if ids:
            line["trace_id"], line["span_id"] = ids
        return line

    def ingest(self, lines: Iterable[dict[str, Any]], *, write_file: bool = True) -> None:
        """Redact and buffer lines; operator lines also go to the JSON file. Flushes the index
        when the buffer reaches the batch size."""
        clean = [self._clean(line) for line in lines]
        if write_file:
            for line in clean:
                self._file.emit(logging.makeLogRecord(
                    {"msg": _dump(line), "levelno": LEVELS[line["level"]], "args": None}))
        with self._lock:
            self._buffer.extend(clean)
            full = len(self._buffer) >= self.batch_size
        if full:
            self.flush()

    def _clean(self, line: dict[str, Any]) -> dict[str, Any]:
        out = redact_fields(dict(line))
        ts = out.get("ts")
        epoch = _epoch(ts) if ts is not None else None
        out["ts"] = epoch if epoch is not None else self.clock.now()
        out["level"] = normalise_level(out.get("level"))
        msg = out.get("message", "")
        out["message"] = msg if isinstance(msg, str) else redact_text(str(msg))
        out["logger"] = str(out.get("logger") or "")
        out["service"] = str(out.get("service") or self.service)
        return out

    def flush(self) -> int:
        """Write buffered lines to the index in one transaction; returns lines indexed."""
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        errors: dict[str, int] = {}
        with self.store.transaction() as conn:
            first = conn.execute("SELECT COALESCE(MAX(id), 0) FROM log_lines").fetchone()[0] + 1
            rows, fts = [], []
            for i, line in enumerate(batch, start=first):
                row, text = self._row(i, line, errors)
                rows.append(row)
                fts.append((i, line["message"], text))
            conn.executemany("INSERT INTO log_lines(id, ts, level, levelno, logger, service, "
                             "message, trace_id, span_id, signature, extra) VALUES "
                             "(?,?,?,?,?,?,?,?,?,?,?)", rows)
            conn.executemany("INSERT INTO log_fts(rowid, message, fields) VALUES (?,?,?)", fts)
        self.indexed += len(batch)
        if errors and self.on_errors is not None:
            self.on_errors(errors)
        return len(batch)

    @staticmethod
    def _row(i: int, line: dict[str, Any], errors: dict[str, int]
             ) -> tuple[tuple[Any, ...], str]:
        """The log_lines row and the FTS ``fields`` text of one clean line."""
        extra = {k: v for k, v in line.items() if k not in _CORE}
        levelno = LEVELS[line["level"]]
        sig = None
        if levelno >= LEVELS["ERROR"]:
            sig = error_signature(line["logger"], line["message"])
            errors[line["service"]] = errors.get(line["service"], 0) + 1
        row = (i, line["ts"], line["level"], levelno, line["logger"], line["service"],
               line["message"], line.get("trace_id"), line.get("span_id"), sig, _dump(extra))
        text = " ".join(str(x) for x in (line["level"], line["logger"], line["service"],
                                         line.get("trace_id") or "", line.get("span_id") or "",
                                         *_flat_values(extra)))
        return row, text

    # -- queries ----------------------------------------------------------------------------
    def search_logs(self, query: str | None = None, level: str | None = None,
                    service: str | None = None, since: float | None = None,
                    until: float | None = None, limit: int = 100, *,
                    trace_id: str | None = None, logger: str | None = None
                    ) -> list[dict[str, Any]]:
        """Newest first: lines matching every word of ``query`` (full text over message and
        fields), at ``level`` or above, from ``service``/``logger``/``trace_id``, in
        ``[since, until]``."""
        self.flush()
        where, params = self._filters(level, service, since, until, trace_id, logger)
        limit = max(1, min(int(limit), 10_000))
        if query:
            sql = ("SELECT l.* FROM log_fts f JOIN log_lines l ON l.id=f.rowid "
                   f"WHERE log_fts MATCH ? {''.join(' AND ' + w for w in where)} "
                   "ORDER BY f.rowid DESC LIMIT ?")
            params = [_fts_query(query), *params, limit]
        else:
            sql = (f"SELECT * FROM log_lines l {'WHERE ' + ' AND '.join(where) if where else ''}"
                   " ORDER BY l.id DESC LIMIT ?")
            params = [*params, limit]
        return [_row(r) for r in self.store.query(sql, params)]

    @staticmethod
    def _filters(level: str | None, service: str | None, since: float | None,
                 until: float | None, trace_id: str | None, logger: str | None
                 ) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if level:
            name = str(level).upper()
            if _ALIASES.get(name, name) not in LEVELS:
                raise _bad("level", f"{level!r} is not one of {', '.join(LEVELS)}")
            where.append("l.levelno >= ?")
            params.append(LEVELS[_ALIASES.get(name, name)])
        for col, val in (("service", service), ("trace_id", trace_id), ("logger", logger)):
            if val:
                where.append(f"l.{col} = ?")
                params.append(val)
        if since is not None:
            where.append("l.ts >= ?")
            params.append(float(since))
        if until is not None:
            where.append("l.ts <= ?")
            params.append(float(until))
        return where, params

    def aggregate_errors(self, since: float | None = None, until: float | None = None,
                         service: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """ERROR and CRITICAL lines grouped by (service, normalised signature), most frequent
        first, with counts, first/last seen and one example."""
        self.flush()
        where, params = self._filters(None, service, since, until, None, None)
        where.insert(0, "l.signature IS NOT NULL")
        rows = self.store.query(
            "SELECT l.service, l.signature, COUNT(*) n, MIN(l.ts) first, MAX(l.ts) last, "
            "MAX(l.id) example, MAX(l.levelno) lv FROM log_lines l WHERE "
            + " AND ".join(where) + " GROUP BY l.service, l.signature ORDER BY n DESC, last DESC "
            "LIMIT ?", [*params, max(1, int(limit))])
        out = []
        for r in rows:
            ex = self.store.query_one("SELECT message FROM log_lines WHERE id=?", (r["example"],))
            out.append({"service": r["service"], "signature": r["signature"], "count": r["n"],
                        "first_seen": r["first"], "last_seen": r["last"],
                        "level": normalise_level(int(r["lv"])),
                        "example": ex["message"] if ex else None})
        return out

    def export_logs(self, dest: Path | IO[str] | None = None, **filters: Any) -> int | str:
        """NDJSON of the lines matching ``filters`` (as :meth:`search_logs`), oldest first.
        Writes to ``dest`` (path or text stream) and returns the line count, or returns the
        text when ``dest`` is None."""
        filters.setdefault("limit", 10_000)
        lines = [_dump(r) + "\n" for r in reversed(self.search_logs(**filters))]
        if dest is None:
            return "".join(lines)
        if isinstance(dest, (str, Path)):
            Path(dest).write_text("".join(lines), encoding="utf-8")
        else:
            dest.writelines(lines)
        return len(lines)

    def apply_retention(self, keep_seconds: float, now: float | None = None) -> int:
        """Delete indexed lines older than ``now - keep_seconds``; returns lines deleted."""
        self.flush()
        cutoff = (self.clock.now() if now is None else now) - keep_seconds
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM log_fts WHERE rowid IN "
                         "(SELECT id FROM log_lines WHERE ts < ?)", (cutoff,))
            return conn.execute("DELETE FROM log_lines WHERE ts < ?", (cutoff,)).rowcount

    def iter_lines(self, since_id: int = 0, limit: int = 1000) -> Iterator[dict[str, Any]]:
        """Indexed lines with id above ``since_id``, oldest first (for followers)."""
        for r in self.store.query("SELECT * FROM log_lines WHERE id > ? ORDER BY id LIMIT ?",
                                  (since_id, limit)):
            yield _row(r)


def _epoch(ts: Any) -> float | None:
    """Seconds since the epoch from a number or an ISO 8601 string; None if unreadable."""
    if isinstance(ts, (int, float)) and not isinstance(ts, bool):
        return float(ts)
    try:
        parsed = datetime.fromisoformat(str(ts))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _dump(obj: Any) -> str:
    return json.dumps(obj, default=str, separators=(",", ":"), ensure_ascii=False)


def _flat_values(extra: dict[str, Any]) -> Iterator[str]:
    for v in extra.values():
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            yield str(v)[:200]


def _row(r: Any) -> dict[str, Any]:
    out = {c: r[c] for c in _COLUMNS}
    out.update(json.loads(out.pop("extra") or "{}"))
    return out
