"""Structured JSON log lines on stdout and W3C trace context (``traceparent``) handling.

Every line is one JSON object: ``ts`` (ISO 8601 UTC), ``level``, ``logger``, ``message``,
``service``, plus ``trace_id``/``span_id`` when a request carried a ``traceparent``, plus any
extra fields given. Lines are written whole under a lock, so threads never interleave them.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing import at run time: start-up speed matters here
    from typing import Any, TextIO

__all__ = ["JsonLogger", "TraceContext", "new_trace", "parse_traceparent"]

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class TraceContext:
    """One request's place in a trace: the caller's span is ``parent_id``, ours is ``span_id``."""

    __slots__ = ("flags", "parent_id", "span_id", "trace_id")

    def __init__(self, trace_id: str, span_id: str, parent_id: str | None, flags: str) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.flags = flags

    def header(self) -> str:
        """The ``traceparent`` header for our span (a child of the caller's)."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def _hex(nbytes: int) -> str:
    return os.urandom(nbytes).hex()


def parse_traceparent(value: str | None) -> TraceContext | None:
    """A child context of a valid ``traceparent`` header, or None for a missing/invalid one.

    Per W3C Trace Context, version ``ff`` and all-zero trace or parent ids are invalid.
    """
    m = _TRACEPARENT.match((value or "").strip().lower())
    if not m:
        return None
    version, trace_id, parent_id, flags = m.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return TraceContext(trace_id, _hex(8), parent_id, flags)


def new_trace() -> TraceContext:
    """A fresh root context (sampled) for a request that came without trace context."""
    return TraceContext(_hex(16), _hex(8), None, "01")


def _now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class JsonLogger:
    """Writes one JSON object per line to ``stream`` (stdout by default)."""

    def __init__(self, service: str, *, logger: str = "sample_stack",
                 stream: TextIO | None = None) -> None:
        self.service = service
        self.logger = logger
        self._stream = stream
        self._lock = threading.Lock()

    def log(self, level: str, message: str, *, trace: TraceContext | None = None,
            logger: str | None = None, **fields: Any) -> None:
        """Emit one line; ``fields`` are added as top-level keys."""
        rec: dict[str, Any] = {"ts": _now_iso(), "level": level, "logger": logger or self.logger,
                               "message": message, "service": self.service}
        if trace is not None:
            rec["trace_id"] = trace.trace_id
            rec["span_id"] = trace.span_id
            if trace.parent_id:
                rec["parent_span_id"] = trace.parent_id
        rec.update(fields)
        line = json.dumps(rec, default=str, separators=(",", ":")) + "\n"
        stream = self._stream or sys.stdout
        with self._lock:
            try:
                stream.write(line)
                stream.flush()
            except (OSError, ValueError):  # stdout closed or a broken pipe: logging never kills us
                pass

    def info(self, message: str, **fields: Any) -> None:
        """Log at INFO."""
        self.log("INFO", message, **fields)

    def warning(self, message: str, **fields: Any) -> None:
        """Log at WARNING."""
        self.log("WARNING", message, **fields)

    def error(self, message: str, **fields: Any) -> None:
        """Log at ERROR."""
        self.log("ERROR", message, **fields)
