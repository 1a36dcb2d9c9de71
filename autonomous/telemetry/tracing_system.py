"""TracingSystem: W3C Trace Context traces and spans stored in SQLite.

    tracing = TracingSystem(store, clock)
    with tracing.span("heal nexus") as root:            # a new trace (no current span)
        with tracing.span("restart", kind="client"):    # child of the current span
            ...
    tracing.get_trace(root.trace_id)
    tracing.analyze_slowest_traces(5)

The current span lives in a context variable, so asyncio tasks and the log handler see the
right one. ``traceparent`` headers (``00-<trace>-<span>-<flags>``) link the operator to the
services it calls; spans the services report (through their JSON logs) are added with
:meth:`add_span`, so one heal is one trace across processes.

Ending a span only appends a row to an in-memory buffer: the SQLite write never happens on
the request path. The buffer is written in one transaction by :meth:`flush` — on the
telemetry controller's tick, on every read, and by a background writer thread woken when
``batch_size`` rows are waiting. Past ``max_buffer`` rows (the store cannot keep up) the
oldest are dropped and counted in ``dropped``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from autonomous.core.clock import Clock
from autonomous.core.errors import NotFound
from autonomous.store.db import Store
from autonomous.telemetry.redact import redact_fields

__all__ = ["Span", "TracingSystem", "current_span", "parse_traceparent"]

log = logging.getLogger("atlas.telemetry.tracing")
_TP = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_CURRENT: ContextVar[Span | None] = ContextVar("atlas_current_span", default=None)
KINDS = ("internal", "server", "client", "producer", "consumer")


def parse_traceparent(header: str | None) -> tuple[str, str, bool] | None:
    """``(trace_id, parent_span_id, sampled)`` from a valid W3C header, else None."""
    m = _TP.match((header or "").strip().lower())
    if not m:
        return None
    version, trace_id, span_id, flags = m.groups()
    if version == "ff" or trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


def current_span() -> Span | None:
    """The span of the running task, if any."""
    return _CURRENT.get()


@dataclass
class Span:
    """One timed operation. ``end()`` records it (once)."""

    tracing: TracingSystem = field(repr=False)
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    service: str
    start: float
    sampled: bool = True
    attributes: dict[str, Any] = field(default_factory=dict)
    status: str = "unset"
    end_time: float | None = None
    _mono: float = 0.0

    def traceparent(self) -> str:
        """The header a callee needs to continue this trace under this span."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_status(self, status: str, message: str | None = None) -> None:
        """``"ok"`` or ``"error"`` (with a message kept as the ``error`` attribute)."""
        self.status = status
        if message:
            self.attributes["error"] = message

    def end(self) -> None:
        """Close the span (duration from the monotonic clock) and record it if sampled."""
        if self.end_time is not None:
            return
        elapsed = max(0.0, self.tracing.clock.monotonic() - self._mono)
        self.end_time = self.start + elapsed
        if self.sampled:
            self.tracing._record(self)

    @property
    def duration_ms(self) -> float | None:
        return None if self.end_time is None else (self.end_time - self.start) * 1000


class TracingSystem:
    """Creates, stores and analyses traces."""

    def __init__(self, store: Store, clock: Clock, *, service: str = "operator",
                 sample_ratio: float = 1.0, batch_size: int = 200, max_buffer: int = 20000,
                 rng: random.Random | None = None) -> None:
        self.store = store
        self.clock = clock
        self.service = service
        self.sample_ratio = sample_ratio
        self.batch_size = batch_size
        self._rng = rng or random.Random()
        self._buffer: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one writer at a time (reads, tick, thread)
        self.max_buffer = max(batch_size, max_buffer)
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        self._closed = False
        self.recorded = 0
        self.dropped = 0
        self.exporters: list[Any] = []  # each gets ``export(rows)`` after a flush

    # -- creating spans ---------------------------------------------------------------------
    def start_trace(self, name: str, *, kind: str = "internal",
                    attributes: dict[str, Any] | None = None) -> Span:
        """A new root span in a new trace (not made current; see :meth:`span`)."""
        sampled = self.sample_ratio >= 1 or self._rng.random() < self.sample_ratio
        return self._new(os.urandom(16).hex(), None, name, kind, attributes, sampled)

    def start_span(self, name: str, *, kind: str = "internal", parent: Span | str | None = None,
                   attributes: dict[str, Any] | None = None) -> Span:
        """A child of ``parent`` (a Span or a ``traceparent`` header), else of the current
        span; a new trace when there is neither."""
        if isinstance(parent, str):
            ctx = parse_traceparent(parent)
            if ctx is not None:
                return self._new(ctx[0], ctx[1], name, kind, attributes, ctx[2])
            parent = None
        parent = parent or _CURRENT.get()
        if parent is None:
            return self.start_trace(name, kind=kind, attributes=attributes)
        return self._new(parent.trace_id, parent.span_id, name, kind, attributes, parent.sampled)

    def _new(self, trace_id: str, parent_id: str | None, name: str, kind: str,
             attributes: dict[str, Any] | None, sampled: bool) -> Span:
        return Span(self, trace_id, os.urandom(8).hex(), parent_id, name,
                    kind if kind in KINDS else "internal", self.service, self.clock.now(),
                    sampled, dict(attributes or {}), _mono=self.clock.monotonic())

    @contextmanager
    def span(self, name: str, *, kind: str = "internal", parent: Span | str | None = None,
             attributes: dict[str, Any] | None = None) -> Iterator[Span]:
        """Run a block inside a new span made current; an exception marks it ``error``."""
        sp = self.start_span(name, kind=kind, parent=parent, attributes=attributes)
        token = _CURRENT.set(sp)
        try:
            yield sp
        except BaseException as exc:
            sp.set_status("error", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            _CURRENT.reset(token)
            if sp.status == "unset":
                sp.status = "ok"
            sp.end()

    def activate(self, span: Span | None) -> Any:
        """Make ``span`` current; returns a token for :meth:`deactivate`."""
        return _CURRENT.set(span)

    def deactivate(self, token: Any) -> None:
        _CURRENT.reset(token)

    def current_ids(self) -> tuple[str, str] | None:
        """(trace_id, span_id) of the current span, for log lines."""
        sp = _CURRENT.get()
        return None if sp is None else (sp.trace_id, sp.span_id)

    # -- recording --------------------------------------------------------------------------
    def add_span(self, trace_id: str, span_id: str, name: str, start: float, end: float, *,
                 parent_id: str | None = None, kind: str = "internal", service: str | None = None,
                 attributes: dict[str, Any] | None = None, status: str = "ok") -> None:
        """Record a finished span (one reported by another process, e.g. from its logs)."""
        self._buffer_row((trace_id, span_id, parent_id, name, kind, service or self.service,
                          start, end, status, attributes or {}))

    def add_span_from_log(self, line: dict[str, Any]) -> None:
        """Record a service's request span from its JSON log line (``trace_id``, ``span_id``,
        ``parent_span_id``, ``duration_ms``, ``ts``, ``method``, ``path``, ``status``)."""
        from autonomous.telemetry.logs_collector import _epoch

        end = _epoch(line.get("ts")) or self.clock.now()
        dur = float(line.get("duration_ms") or 0.0) / 1000
        code = line.get("status")
        name = f"{line.get('method', '')} {line.get('path', line.get('message', ''))}".strip()
        attrs: dict[str, Any] = {k: line[k] for k in ("method", "path", "status") if k in line}
        self.add_span(str(line["trace_id"]), str(line["span_id"]), name, end - dur, end,
                      parent_id=line.get("parent_span_id"), kind="server",
                      service=str(line.get("service") or "unknown"), attributes=attrs,
                      status="error" if isinstance(code, int) and code >= 500 else "ok")

    def _record(self, sp: Span) -> None:
        self._buffer_row((sp.trace_id, sp.span_id, sp.parent_id, sp.name, sp.kind, sp.service,
                          sp.start, sp.end_time, sp.status, sp.attributes))

    def _buffer_row(self, row: tuple[Any, ...]) -> None:
        """Append (O(1), no I/O); a full batch wakes the background writer."""
        with self._lock:
            self._buffer.append(row)
            n = len(self._buffer)
            if n > self.max_buffer:
                drop = n - self.max_buffer
                del self._buffer[:drop]
                self.dropped += drop
        if n >= self.batch_size and not self._closed:
            self._ensure_writer()
            self._wake.set()

    def _ensure_writer(self) -> None:
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(target=self._write_loop, name="atlas-span-writer",
                                            daemon=True)
            self._writer.start()

    def _write_loop(self) -> None:
        """Background writer: flushes whenever woken, until :meth:`close`."""
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            try:
                self.flush()
            except Exception:  # the next tick or read retries the rows
                log.exception("span flush failed")

    def close(self) -> None:
        """Stop the background writer and write what is buffered."""
        self._closed = True
        self._wake.set()
        if self._writer is not None and self._writer is not threading.current_thread():
            self._writer.join(timeout=5)
        self._writer = None
        self.flush()

    def flush(self) -> int:
        """Write buffered spans (and their trace summaries) in one transaction."""
        with self._flush_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
            if not batch:
                return 0
            try:
                self._write(batch)
            except BaseException:
                with self._lock:  # keep the rows for the next attempt
                    self._buffer[:0] = batch
                raise
            self.recorded += len(batch)
        for exporter in list(self.exporters):
            try:
                exporter.export(batch)
            except Exception:  # an exporter never loses stored spans
                log.exception("span exporter %s failed", type(exporter).__name__)
        return len(batch)

    def _write(self, batch: list[tuple[Any, ...]]) -> None:
        roots: dict[str, tuple[Any, ...]] = {}  # per trace, the row that may lead it
        rows = []
        for tid, sid, pid, name, kind, svc, start, end, status, attrs in batch:
            dur = (end - start) * 1000
            rows.append((tid, sid, pid, name, kind, svc, start, end, dur, status,
                         json.dumps(redact_fields(attrs), default=str)))
            best = roots.get(tid)
            if best is None or _leads(pid, start, best[2], best[5]):
                roots[tid] = (tid, sid, pid, name, svc, start, dur, status)
        with self.store.transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO spans VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                             rows)
            for r in roots.values():
                self._upsert_trace(conn, *r)

    @staticmethod
    def _upsert_trace(conn: Any, tid: str, sid: str, pid: str | None, name: str, svc: str,
                      start: float, dur: float, status: str) -> None:
        """The trace row follows its root: a span without parent, else the earliest span."""
        cur = conn.execute("SELECT root_parent, start FROM traces WHERE trace_id=?",
                           (tid,)).fetchone()
        if cur is not None and (cur[0] is None or (pid is not None and start >= cur[1])):
            return
        conn.execute("INSERT OR REPLACE INTO traces(trace_id, root_span_id, root_parent, name, "
                     "service, start, duration_ms, status) VALUES (?,?,?,?,?,?,?,?)",
                     (tid, sid, pid, name, svc, start, dur, status))

    # -- reading ----------------------------------------------------------------------------
    def get_trace(self, trace_id: str) -> dict[str, Any]:
        """The trace with its spans (parents before children), services and duration."""
        self.flush()
        rows = self.store.query("SELECT * FROM spans WHERE trace_id=? ORDER BY start",
                                (trace_id,))
        if not rows:
            raise NotFound(f"trace {trace_id!r} not found (spans are kept for the "
                           "configured retention)")
        spans = [_span_row(r) for r in rows]
        start = min(s["start"] for s in spans)
        end = max(s["end"] for s in spans)
        return {"trace_id": trace_id, "start": start, "duration_ms": (end - start) * 1000,
                "services": sorted({s["service"] for s in spans}),
                "root": next((s for s in spans if s["parent_id"] is None), spans[0])["span_id"],
                "error": any(s["status"] == "error" for s in spans), "spans": spans}

    def list_traces(self, limit: int = 50, since: float | None = None,
                    service: str | None = None, min_duration_ms: float | None = None
                    ) -> list[dict[str, Any]]:
        """Newest traces first (summary rows)."""
        self.flush()
        where, params = ["1=1"], []
        for cond, val in (("start >= ?", since), ("service = ?", service),
                          ("duration_ms >= ?", min_duration_ms)):
            if val is not None:
                where.append(cond)
                params.append(val)
        rows = self.store.query(f"SELECT * FROM traces WHERE {' AND '.join(where)} "
                                "ORDER BY start DESC LIMIT ?", [*params, max(1, int(limit))])
        return [dict(r) for r in rows]

    def analyze_slowest_traces(self, limit: int = 10, since: float | None = None
                               ) -> list[dict[str, Any]]:
        """The slowest traces by root duration, each with the span that dominates it (the
        largest self time: its duration minus its children's)."""
        self.flush()
        rows = self.store.query(
            "SELECT * FROM traces WHERE duration_ms IS NOT NULL AND start >= ? "
            "ORDER BY duration_ms DESC LIMIT ?", (since or 0.0, max(1, int(limit))))
        out = []
        for r in rows:
            trace = self.get_trace(r["trace_id"])
            out.append({**dict(r), "span_count": len(trace["spans"]),
                        "services": trace["services"], "dominant_span": _dominant(trace)})
        return out

    def apply_retention(self, keep_seconds: float, now: float | None = None) -> int:
        """Delete spans and traces that started before ``now - keep_seconds``."""
        self.flush()
        cutoff = (self.clock.now() if now is None else now) - keep_seconds
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM traces WHERE start < ?", (cutoff,))
            return conn.execute("DELETE FROM spans WHERE start < ?", (cutoff,)).rowcount


def _leads(pid: str | None, start: float, best_pid: str | None, best_start: float) -> bool:
    """Whether a span would replace ``best`` as its trace's summary row (root first, then
    the earliest)."""
    if best_pid is None:
        return False
    return pid is None or start < best_start


def _span_row(r: Any) -> dict[str, Any]:
    d = dict(r)
    d["attributes"] = json.loads(d["attributes"])
    return d


def _dominant(trace: dict[str, Any]) -> dict[str, Any] | None:
    spans = trace["spans"]
    child_ms: dict[str, float] = {}
    for s in spans:
        if s["parent_id"]:
            child_ms[s["parent_id"]] = child_ms.get(s["parent_id"], 0.0) + s["duration_ms"]
    best = max(spans, key=lambda s: s["duration_ms"] - child_ms.get(s["span_id"], 0.0))
    self_ms = max(0.0, best["duration_ms"] - child_ms.get(best["span_id"], 0.0))
    total = trace["duration_ms"] or 1.0
    return {"span_id": best["span_id"], "name": best["name"], "service": best["service"],
            "duration_ms": best["duration_ms"], "self_ms": self_ms,
            "share": round(min(1.0, self_ms / total), 4)}
