"""OTLP/HTTP export of finished spans (optional extra ``otlp``).

When ``spec.settings.telemetry.tracing.otlp_endpoint`` is set and
``opentelemetry-exporter-otlp`` is installed, the hub attaches an :class:`OtlpSpanExporter` to
the tracing system: every span row it writes to SQLite is also queued here and a background
thread POSTs the queue in batches (protobuf, ``/v1/traces``) through the OpenTelemetry OTLP
HTTP exporter, with each span's ``service`` as the resource ``service.name``. Export never
blocks a request or the store write; a failed batch is counted and dropped (the spans stay in
SQLite). Without the package, :func:`make_exporter` returns None with the reason.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any

from autonomous.telemetry.redact import redact_fields

__all__ = ["OtlpSpanExporter", "make_exporter", "otlp_available"]

log = logging.getLogger("atlas.telemetry.otlp")
_KINDS = ("internal", "server", "client", "producer", "consumer")


def otlp_available() -> str | None:
    """None when the OTLP HTTP exporter can be imported, else why not."""
    try:
        importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        importlib.import_module("opentelemetry.sdk.trace")
    except ImportError as exc:
        return (f"opentelemetry-exporter-otlp is not installed ({exc}); "
                "pip install 'atlas-autonomous[otlp]'")
    return None


def make_exporter(endpoint: str | None, **kwargs: Any) -> OtlpSpanExporter | None:
    """An exporter for ``endpoint``, or None (no endpoint, or the package is missing)."""
    if not endpoint:
        return None
    why = otlp_available()
    if why is not None:
        log.warning("tracing.otlp_endpoint is set but spans are not exported: %s", why)
        return None
    return OtlpSpanExporter(endpoint, **kwargs)


def _url(endpoint: str) -> str:
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def _attr(value: Any) -> Any:
    return value if isinstance(value, (str, bool, int, float)) else str(value)


class OtlpSpanExporter:
    """Queues span rows and sends them from a background thread."""

    def __init__(self, endpoint: str, *, timeout: float = 5.0, max_queue: int = 20000,
                 batch_size: int = 512) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        self.url = _url(endpoint)
        self._otlp = OTLPSpanExporter(endpoint=self.url, timeout=timeout)
        self.max_queue, self.batch_size = max_queue, batch_size
        self._queue: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closed = False
        self.exported = self.failed = self.dropped = 0
        self._thread = threading.Thread(target=self._loop, name="atlas-otlp-export", daemon=True)
        self._thread.start()

    def export(self, rows: list[tuple[Any, ...]]) -> None:
        """Queue span rows (as the tracing system stores them); returns at once."""
        with self._lock:
            self._queue.extend(rows)
            over = len(self._queue) - self.max_queue
            if over > 0:
                del self._queue[:over]
                self.dropped += over
            self._idle.clear()
        self._wake.set()

    def wait_idle(self, timeout: float) -> bool:
        """Block until the queue is sent (tests, shutdown)."""
        return self._idle.wait(timeout)

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while True:
                with self._lock:
                    batch = self._queue[:self.batch_size]
                    del self._queue[:self.batch_size]
                    if not batch:
                        self._idle.set()
                        break
                self._send(batch)
            if self._closed:
                return

    def _send(self, batch: list[tuple[Any, ...]]) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        try:
            ok = self._otlp.export([_readable(r) for r in batch]) == SpanExportResult.SUCCESS
        except Exception:  # an unreachable collector never stops tracing
            log.exception("OTLP export to %s failed", self.url)
            ok = False
        if ok:
            self.exported += len(batch)
        else:
            self.failed += len(batch)

    def close(self) -> None:
        """Send what is queued (bounded by the exporter timeout) and stop."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=10)
        self._otlp.shutdown()


def _readable(row: tuple[Any, ...]) -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    tid, sid, pid, name, kind, svc, start, end, status, attrs = row
    flags = TraceFlags(TraceFlags.SAMPLED)
    ctx = SpanContext(int(tid, 16), int(sid, 16), is_remote=False, trace_flags=flags)
    parent = SpanContext(int(tid, 16), int(pid, 16), is_remote=True, trace_flags=flags) \
        if pid else None
    code = {"ok": StatusCode.OK, "error": StatusCode.ERROR}.get(status, StatusCode.UNSET)
    clean = redact_fields(attrs or {})
    return ReadableSpan(
        name=name, context=ctx, parent=parent,
        resource=Resource.create({"service.name": svc}),
        attributes={str(k): _attr(v) for k, v in clean.items() if v is not None},
        kind=SpanKind[kind.upper()] if kind in _KINDS else SpanKind.INTERNAL,
        status=Status(code, clean.get("error") if code is StatusCode.ERROR else None),
        start_time=int(start * 1e9), end_time=int(end * 1e9))
